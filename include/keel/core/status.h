// File: keel/core/status.h
//
// Status and the canonical error codes every keel module returns.
//
//   keel::Status s = store->Exec("...");
//   if (!s.ok()) return s;                       // or KEEL_RETURN_IF_ERROR(...)
//   return keel::NotFound(fmt::format("Run with id={} not found", id));
//
// A Status is cheap to copy when OK (no allocation). Codes are closed; the one
// table that maps them to HTTP statuses and MLflow error_code strings lives in
// status.cc (HttpStatusOf / MlflowErrorCodeOf).
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace keel {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument,     // bad input from a caller (400)
  kNotFound,            // the named thing does not exist (404)
  kAlreadyExists,       // unique name taken (MLflow answers 400)
  kFailedPrecondition,  // state forbids the call (409)
  kPermissionDenied,    // authenticated but not allowed (403)
  kUnauthenticated,     // no or bad credentials (401)
  kResourceExhausted,   // limits exceeded (413/429)
  kUnavailable,         // try again later (503)
  kDataLoss,            // stored data unreadable (500)
  kUnimplemented,       // (501)
  kInternal,            // a keel bug or an unexpected third-party error (500)
};

// Stable upper-case name of a code ("NOT_FOUND").
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message);

  static Status Ok() { return Status(); }

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  const std::string& message() const;
  // An MLflow error_code to report instead of the default for code(), e.g.
  // "INVALID_PARAMETER_VALUE" for a kNotFound alias lookup. Empty when unset.
  const std::string& mlflow_code() const;

  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(std::string_view context) const;
  Status WithMlflowCode(std::string mlflow_code) const;

  std::string ToString() const;
  // Marks an intentionally dropped status.
  void IgnoreError() const {}

 private:
  struct Rep {
    StatusCode code;
    std::string message;
    std::string mlflow_code;
  };
  std::shared_ptr<const Rep> rep_;
};

inline Status OkStatus() { return Status(); }
Status InvalidArgument(std::string message);
Status NotFound(std::string message);
Status AlreadyExists(std::string message);
Status FailedPrecondition(std::string message);
Status PermissionDenied(std::string message);
Status Unauthenticated(std::string message);
Status ResourceExhausted(std::string message);
Status Unavailable(std::string message);
Status DataLoss(std::string message);
Status Unimplemented(std::string message);
Status Internal(std::string message);

// The single code -> HTTP status table.
int HttpStatusOf(const Status& status);
// MLflow's error_code string for a status (status.mlflow_code() when set).
std::string MlflowErrorCodeOf(const Status& status);
// The inverse, for a client reading an answer: the code of an MLflow
// error_code and HTTP status (RESOURCE_ALREADY_EXISTS -> kAlreadyExists; an
// unknown error_code falls back to the HTTP status's code).
StatusCode StatusCodeOf(std::string_view mlflow_error_code, int http_status);

}  // namespace keel

#define KEEL_RETURN_IF_ERROR(expr)          \
  do {                                      \
    ::keel::Status keel_status_ = (expr);   \
    if (!keel_status_.ok()) return keel_status_; \
  } while (0)
