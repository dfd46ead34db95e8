// File: keel/serve/engine.h
//
// The serving engine: the set of models a server answers for, each followed
// by registry alias and hot-swapped when the alias moves. No HTTP: the
// server's routes (src/api/serving_routes.cc), `keel serve` and `keel server`
// are clients of these calls.
//
//   keel::serve::EngineOptions opts;                  // default alias: champion
//   keel::serve::ServingEngine engine(registry, resolve_source, clock, &metrics, opts);
//   KEEL_RETURN_IF_ERROR(engine.Add("churn@champion"));   // loads and warms up now
//   KEEL_RETURN_IF_ERROR(engine.Start());                 // follows the aliases
//   KEEL_ASSIGN_OR_RETURN(auto d, engine.Get("churn"));  // shared_ptr<const Deployment>
//   d->model->predictor.PredictBatch(x, n, out);          // d stays valid while held
//
// Model references: "name@alias" follows the alias; "name/3" pins version 3;
// "name" means "name@<default_alias>". Get() accepts all three forms;
// without load_on_demand it also takes a bare name when exactly one served
// reference has that name (so `keel serve churn@staging` answers
// /predict/churn). With load_on_demand, a reference that failed to load is
// answered with the same error for 5 s before it is tried again.
//
// Hot swap: a served alias is checked every poll_interval, at once after
// Notify(), and synchronously by Refresh() (keel server calls it after each
// alias change it commits, so when that call returns the new version is
// already answering). When it points at a new version, that version is loaded and
// warmed up (its input example scored, then a few predictions) off the
// request path, then published with one atomic store. Requests that already
// hold the previous Deployment finish on it; the old model is freed when the
// last holder drops it. A version that fails to load or warm up is never
// published: the previous deployment keeps serving, the failure is counted
// (keel_model_loads_total{result="failure"}, keel_model_load_failed = 1)
// and reported in Served(); that version is not retried until the alias
// moves away and back, or Refresh(force).
//
// Shadow: every served alias (not pinned versions) also follows the model's
// `shadow` alias (kShadowAlias; set by a retraining job for its
// challenger's shadow phase, keel/retrain/retrain.h), unless
// follow_shadow is off. The version it names is loaded and warmed up the
// same way, off the request path, and Shadow() returns it; it never answers.
// When the alias is deleted, or moves to a version that fails to load, the
// shadow is dropped; a failed shadow version is logged, shown in Served()
// and not retried until the alias moves or Refresh(force).
//
// Threads: Get, Add, Served, Shadow and Notify are thread-safe. `mu_` (shared)
// guards the entry table; each entry's deployment is a
// std::atomic<std::shared_ptr> read without locks; `load_mu_` serialises
// loads (follower thread and on-demand Adds). The follower thread is owned
// by the engine and joined by Stop() (also called by the destructor).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "keel/core/clock.h"
#include "keel/core/metrics.h"
#include "keel/core/result.h"
#include "keel/model/package.h"
#include "keel/registry/registry.h"

namespace keel::serve {

// The registry alias whose version scores traffic beside the served one.
inline constexpr char kShadowAlias[] = "shadow";

struct ModelRef {
  std::string name;
  std::string alias;    // set for name@alias (and name, after defaulting)
  std::string version;  // set for name/N

  // "churn@champion", "churn/3" or "churn" (alias = default_alias).
  // InvalidArgument for empty parts, a non-numeric version or both forms.
  static Result<ModelRef> Parse(std::string_view text, std::string_view default_alias);
  // The canonical text: name@alias or name/version.
  std::string ToString() const;
};

// One loaded model version. Immutable; shared by the requests using it.
struct Deployment {
  std::string name;     // registered model name
  std::string version;  // registered version number
  std::string ref;      // the served reference it was loaded for
  std::shared_ptr<const model::LoadedModel> model;
  int64_t loaded_at_ms = 0;
  // Outputs per row (1 for binary and regression, the class count for multiclass).
  size_t outputs_per_row = 1;
};

// The local model directory of a registered version, or an error saying why
// the version cannot be served (e.g. its source is outside the artifact root).
using SourceResolver = std::function<Result<std::filesystem::path>(const registry::ModelVersion&)>;

struct EngineOptions {
  std::string default_alias = "champion";
  std::chrono::milliseconds poll_interval{500};
  // Get() of a reference not yet served adds it (keel server); otherwise NotFound.
  bool load_on_demand = false;
  size_t max_models = 64;  // on-demand Adds beyond this are ResourceExhausted
  // Follow each model's `shadow` alias (off when nothing would score with it,
  // e.g. without a prediction log).
  bool follow_shadow = true;
};

struct ServedStatus {
  std::string ref;      // the served reference
  std::string version;  // the published version; empty before the first load
  int64_t loaded_at_ms = 0;
  std::string last_error;      // the last failed load, if any
  std::string failed_version;  // the version that failed
  int64_t last_error_ms = 0;
  uint64_t loads = 0, failures = 0, swaps = 0;
  std::string shadow_version;         // the version in its shadow phase, if any
  std::string shadow_failed_version;  // a shadow version that failed to load
};

class ServingEngine {
 public:
  ServingEngine(registry::RegistryService& registry, SourceResolver resolve, const Clock& clock,
                metrics::Registry* metrics, EngineOptions options);
  ~ServingEngine();
  ServingEngine(const ServingEngine&) = delete;
  ServingEngine& operator=(const ServingEngine&) = delete;

  // Serves `ref` (see ModelRef) and loads it now; an error when the first
  // load fails (the reference is not added). Adding a served reference again
  // is a no-op.
  Status Add(std::string_view ref);
  // The current deployment for a reference; NotFound when it is not served
  // (and not loadable on demand), Unavailable while it has none.
  Result<std::shared_ptr<const Deployment>> Get(std::string_view ref);
  // Starts the follower thread.
  Status Start();
  void Stop();
  // Wakes the follower thread to check the served aliases soon.
  void Notify();
  // Checks the served aliases now, on the calling thread (all of them, or
  // those of model `only_name`), loading and publishing versions that moved;
  // with `force`, versions that failed before are tried again. When it
  // returns, every alias change committed before the call is published (or
  // its failure recorded).
  void Refresh(bool force = false, std::string_view only_name = {});

  // The shadow deployment beside served reference `ref` (Deployment::ref),
  // or null when none is followed (or it is the version being served).
  // Lock-free when no shadow is followed anywhere.
  std::shared_ptr<const Deployment> Shadow(std::string_view ref) const;

  std::vector<ServedStatus> Served() const;
  // The served references (canonical text), in the order they were added.
  std::vector<std::string> Refs() const;
  // True when every served reference has a deployment.
  bool Ready() const;
  size_t size() const;
  const EngineOptions& options() const { return options_; }

 private:
  struct Entry;
  Result<std::shared_ptr<Deployment>> LoadPackage(const Entry& entry,
                                                  const registry::ModelVersion& version);
  keel::Status LoadInto(Entry& entry, const registry::ModelVersion& version);
  void RefreshShadow(Entry& entry, bool force);  // requires load_mu_
  Result<registry::ModelVersion> Lookup(const ModelRef& ref);
  Entry* Find(std::string_view ref_text) const;  // requires mu_ (shared)
  void FollowLoop();

  registry::RegistryService& registry_;
  SourceResolver resolve_;
  const Clock& clock_;
  EngineOptions options_;

  mutable std::shared_mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_;                   // guarded by mu_
  std::unordered_map<std::string, Entry*> by_ref_;                // canonical ref; guarded by mu_
  std::unordered_map<std::string, std::vector<Entry*>> by_name_;  // guarded by mu_
  mutable std::mutex load_mu_;   // taken before mu_ when both are held
  std::atomic<int> shadows_{0};  // entries with a shadow deployment

  std::mutex follow_mu_;
  std::condition_variable follow_cv_;
  bool follow_stop_ = false;      // guarded by follow_mu_
  bool follow_notified_ = false;  // guarded by follow_mu_
  std::thread follower_;

  metrics::CounterFamily* loads_ = nullptr;  // {model, result}
  metrics::CounterFamily* swaps_ = nullptr;  // {model}
  metrics::GaugeFamily* info_ = nullptr;     // {model, ref, version} = 1
  metrics::GaugeFamily* failed_ = nullptr;   // {model, ref} = 1 while a load is failing
  // On-demand Adds that failed: key -> (when, why); guarded by load_mu_.
  std::unordered_map<std::string, std::pair<int64_t, keel::Status>> failed_adds_;
};

}  // namespace keel::serve
