#include "keel/core/status.h"

#include <array>

namespace keel {
namespace {

struct CodeInfo {
  StatusCode code;
  std::string_view name;
  int http_status;
  std::string_view mlflow_code;
};

// The one table from codes to HTTP statuses and MLflow error codes.
constexpr std::array<CodeInfo, 12> kCodeTable = {{
    {StatusCode::kOk, "OK", 200, "OK"},
    {StatusCode::kInvalidArgument, "INVALID_ARGUMENT", 400, "INVALID_PARAMETER_VALUE"},
    {StatusCode::kNotFound, "NOT_FOUND", 404, "RESOURCE_DOES_NOT_EXIST"},
    {StatusCode::kAlreadyExists, "ALREADY_EXISTS", 400, "RESOURCE_ALREADY_EXISTS"},
    {StatusCode::kFailedPrecondition, "FAILED_PRECONDITION", 409, "INVALID_STATE"},
    {StatusCode::kPermissionDenied, "PERMISSION_DENIED", 403, "PERMISSION_DENIED"},
    {StatusCode::kUnauthenticated, "UNAUTHENTICATED", 401, "UNAUTHENTICATED"},
    {StatusCode::kResourceExhausted, "RESOURCE_EXHAUSTED", 413, "RESOURCE_LIMIT_EXCEEDED"},
    {StatusCode::kUnavailable, "UNAVAILABLE", 503, "TEMPORARILY_UNAVAILABLE"},
    {StatusCode::kDataLoss, "DATA_LOSS", 500, "DATA_LOSS"},
    {StatusCode::kUnimplemented, "UNIMPLEMENTED", 501, "NOT_IMPLEMENTED"},
    {StatusCode::kInternal, "INTERNAL", 500, "INTERNAL_ERROR"},
}};

const CodeInfo& InfoOf(StatusCode code) {
  for (const auto& info : kCodeTable) {
    if (info.code == code) return info;
  }
  return kCodeTable.back();
}

const std::string kEmpty;

}  // namespace

std::string_view StatusCodeName(StatusCode code) { return InfoOf(code).name; }

Status::Status(StatusCode code, std::string message) {
  if (code != StatusCode::kOk) {
    rep_ = std::make_shared<const Rep>(Rep{code, std::move(message), {}});
  }
}

const std::string& Status::message() const { return rep_ ? rep_->message : kEmpty; }
const std::string& Status::mlflow_code() const { return rep_ ? rep_->mlflow_code : kEmpty; }

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  Status s;
  s.rep_ = std::make_shared<const Rep>(
      Rep{rep_->code, std::string(context) + ": " + rep_->message, rep_->mlflow_code});
  return s;
}

Status Status::WithMlflowCode(std::string mlflow_code) const {
  if (ok()) return *this;
  Status s;
  s.rep_ = std::make_shared<const Rep>(Rep{rep_->code, rep_->message, std::move(mlflow_code)});
  return s;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(StatusCodeName(code())) + ": " + message();
}

Status InvalidArgument(std::string m) { return Status(StatusCode::kInvalidArgument, std::move(m)); }
Status NotFound(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
Status AlreadyExists(std::string m) { return Status(StatusCode::kAlreadyExists, std::move(m)); }
Status FailedPrecondition(std::string m) {
  return Status(StatusCode::kFailedPrecondition, std::move(m));
}
Status PermissionDenied(std::string m) {
  return Status(StatusCode::kPermissionDenied, std::move(m));
}
Status Unauthenticated(std::string m) { return Status(StatusCode::kUnauthenticated, std::move(m)); }
Status ResourceExhausted(std::string m) {
  return Status(StatusCode::kResourceExhausted, std::move(m));
}
Status Unavailable(std::string m) { return Status(StatusCode::kUnavailable, std::move(m)); }
Status DataLoss(std::string m) { return Status(StatusCode::kDataLoss, std::move(m)); }
Status Unimplemented(std::string m) { return Status(StatusCode::kUnimplemented, std::move(m)); }
Status Internal(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }

int HttpStatusOf(const Status& status) { return InfoOf(status.code()).http_status; }

StatusCode StatusCodeOf(std::string_view mlflow_error_code, int http_status) {
  for (const auto& info : kCodeTable) {
    if (info.code != StatusCode::kOk && info.mlflow_code == mlflow_error_code) return info.code;
  }
  switch (http_status) {
    case 401:
      return StatusCode::kUnauthenticated;
    case 403:
      return StatusCode::kPermissionDenied;
    case 404:
      return StatusCode::kNotFound;
    case 409:
      return StatusCode::kFailedPrecondition;
    case 413:
      return StatusCode::kResourceExhausted;
    case 501:
      return StatusCode::kUnimplemented;
    default:
      if (http_status / 100 == 2) return StatusCode::kOk;
      return http_status / 100 == 4 ? StatusCode::kInvalidArgument : StatusCode::kUnavailable;
  }
}

std::string MlflowErrorCodeOf(const Status& status) {
  if (!status.mlflow_code().empty()) return status.mlflow_code();
  return std::string(InfoOf(status.code()).mlflow_code);
}

}  // namespace keel
