// Read endpoints for retraining (keel/retrain/retrain.h), for the dashboard
// and scripts:
//
//   GET /api/2.0/keel/retrain/jobs?model=churn&limit=50
//       {"jobs": [RetrainJob::ToJson(), ...]}        newest first; every model
//                                                    when model is not given
//
// What `keel retrain history --json` prints, read from the same store.
#include "keel/api/app.h"
#include "keel/retrain/retrain.h"
#include "src/api/handler_util.h"
#include "src/api/params.h"

namespace keel::api {
namespace {

using internal::Params;

constexpr int64_t kMaxJobs = 1000;

Result<std::string> ListJobs(App& app, const Request& request) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(request));
  KEEL_ASSIGN_OR_RETURN(std::optional<std::string> model, p.Str("model"));
  KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> limit, p.Int("limit"));
  const int64_t n = limit.value_or(50);
  if (n < 1 || n > kMaxJobs) {
    return InvalidArgument("limit must be between 1 and " + std::to_string(kMaxJobs));
  }
  KEEL_ASSIGN_OR_RETURN(
      std::vector<retrain::RetrainJob> jobs,
      retrain::RetrainHistory(app.db(), model.value_or(""), static_cast<size_t>(n)));
  std::string out = "{\"jobs\":[";
  for (size_t i = 0; i < jobs.size(); ++i) out += (i ? "," : "") + jobs[i].ToJson();
  return out + "]}";
}

const std::array kRetrainRoutes = {
    Route{"GET", "/api/2.0/keel/retrain/jobs", &internal::Wrap<&ListJobs>, Access::kRead},
};

}  // namespace

std::span<const Route> RetrainRoutes() { return kRetrainRoutes; }

}  // namespace keel::api
