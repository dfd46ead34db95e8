#include "keel/serve/engine.h"

#include <algorithm>
#include <iostream>

namespace keel::serve {
namespace {

// Messages name the version's source, never the server's own paths.
Status WithSource(const Status& s, const std::filesystem::path& dir, const std::string& source) {
  if (s.ok()) return s;
  std::string message = s.message();
  const std::string dir_text = dir.string();
  if (dir_text.empty()) return s;
  for (size_t at = 0; (at = message.find(dir_text, at)) != std::string::npos;) {
    message.replace(at, dir_text.size(), source);
    at += source.size();
  }
  return Status(s.code(), message);
}

// How long an on-demand load that failed is answered from memory before it
// is tried again.
constexpr int64_t kFailedAddRetryMs = 5000;

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

Result<ModelRef> ModelRef::Parse(std::string_view text, std::string_view default_alias) {
  ModelRef ref;
  const size_t at = text.find('@');
  const size_t slash = text.rfind('/');
  if (at != std::string_view::npos && slash != std::string_view::npos && slash > at) {
    return InvalidArgument("model reference '" + std::string(text) +
                           "': use name@alias or name/version, not both");
  }
  if (at != std::string_view::npos) {
    ref.name = std::string(text.substr(0, at));
    ref.alias = std::string(text.substr(at + 1));
    if (ref.alias.empty()) {
      return InvalidArgument("model reference '" + std::string(text) + "': empty alias");
    }
  } else if (slash != std::string_view::npos) {
    ref.name = std::string(text.substr(0, slash));
    ref.version = std::string(text.substr(slash + 1));
    if (!AllDigits(ref.version) || ref.version.size() > 18) {
      return InvalidArgument("model reference '" + std::string(text) +
                             "': the version after '/' must be a number");
    }
    ref.version.erase(0, std::min(ref.version.find_first_not_of('0'), ref.version.size() - 1));
  } else {
    ref.name = std::string(text);
    ref.alias = std::string(default_alias);
  }
  if (ref.name.empty()) {
    return InvalidArgument("model reference '" + std::string(text) + "': empty model name");
  }
  return ref;
}

std::string ModelRef::ToString() const {
  return version.empty() ? name + "@" + alias : name + "/" + version;
}

struct ServingEngine::Entry {
  ModelRef ref;
  std::string key;  // ref.ToString()
  std::atomic<std::shared_ptr<const Deployment>> current;
  // Guarded by load_mu_ (written by loads; read by Status under load_mu_).
  std::string failed_version;
  std::string last_error;
  int64_t last_error_ms = 0;
  uint64_t loads = 0, failures = 0, swaps = 0;
  // The version of the model's shadow alias, scoring beside `current`.
  std::atomic<std::shared_ptr<const Deployment>> shadow;
  std::string shadow_failed_version;  // guarded by load_mu_
};

ServingEngine::ServingEngine(registry::RegistryService& registry, SourceResolver resolve,
                             const Clock& clock, metrics::Registry* metrics, EngineOptions options)
    : registry_(registry),
      resolve_(std::move(resolve)),
      clock_(clock),
      options_(std::move(options)) {
  if (metrics != nullptr) {
    loads_ = &metrics->AddCounter("keel_model_loads_total",
                                  "Model version loads by the serving engine, by result.",
                                  {"model", "result"});
    swaps_ = &metrics->AddCounter(
        "keel_model_swaps_total",
        "Times a served reference switched to another model version (hot swaps).", {"model"});
    failed_ = &metrics->AddGauge(
        "keel_model_load_failed",
        "1 while a served reference points at a version that failed to load (the previous "
        "version keeps answering).",
        {"model", "ref"});
    info_ = &metrics->AddGauge("keel_model_info",
                               "1 for each served reference and the version it serves.",
                               {"model", "ref", "version"});
  }
}

ServingEngine::~ServingEngine() { Stop(); }

Result<registry::ModelVersion> ServingEngine::Lookup(const ModelRef& ref) {
  if (!ref.version.empty()) return registry_.GetModelVersion(ref.name, ref.version);
  auto v = registry_.GetVersionByAlias(ref.name, ref.alias);
  if (!v.ok() && v.status().code() == StatusCode::kInvalidArgument) {
    // The registry answers an unknown alias like MLflow (400); to a server it is "not found".
    return NotFound(v.status().message());
  }
  return v;
}

Result<std::shared_ptr<Deployment>> ServingEngine::LoadPackage(
    const Entry& entry, const registry::ModelVersion& version) {
  if (version.status != "READY") {
    return FailedPrecondition(
        "version " + version.version + " is " + version.status +
        (version.status_message.empty() ? std::string() : " (" + version.status_message + ")"));
  }
  auto path = resolve_(version);
  if (!path.ok()) return path.status();
  auto loaded = model::LoadModelPackage(*path);
  if (!loaded.ok()) return WithSource(loaded.status(), *path, version.source);
  const model::LoadedModel& m = **loaded;
  // Warm-up: the registration check (input example scored, output finite),
  // then a few predictions so first requests meet warm caches.
  if (Status s = model::CheckLoadedModel(m); !s.ok()) return WithSource(s, *path, version.source);
  const size_t nf = static_cast<size_t>(m.predictor.num_features());
  const size_t no = static_cast<size_t>(m.predictor.num_outputs());
  if (m.pipeline.num_features() != nf) {
    return FailedPrecondition("the pipeline encodes " + std::to_string(m.pipeline.num_features()) +
                              " features but the model reads " + std::to_string(nf));
  }
  {
    std::vector<float> x(nf), out(no);
    m.pipeline.InitRow(x.data());
    for (int i = 0; i < 8; ++i) m.predictor.PredictRow(x.data(), out.data());
  }
  auto d = std::make_shared<Deployment>();
  d->name = entry.ref.name;
  d->version = version.version;
  d->ref = entry.key;
  d->model = std::move(*loaded);
  d->loaded_at_ms = clock_.NowMillis();
  d->outputs_per_row = no;
  return d;
}

Status ServingEngine::LoadInto(Entry& entry, const registry::ModelVersion& version) {
  // Requires load_mu_.
  ++entry.loads;
  Result<std::shared_ptr<Deployment>> loaded = LoadPackage(entry, version);
  if (!loaded.ok()) {
    const Status& s = loaded.status();
    ++entry.failures;
    entry.failed_version = version.version;
    entry.last_error = s.message();
    entry.last_error_ms = clock_.NowMillis();
    if (loads_) loads_->WithLabels({entry.ref.name, "failure"}).Inc();
    if (failed_) failed_->WithLabels({entry.ref.name, entry.key}).Set(1);
    std::cerr << "keel serve: " << entry.key << ": version " << version.version
              << " not loaded: " << s.message() << std::endl;
    return s;
  }
  std::shared_ptr<Deployment> d = std::move(loaded).value();
  std::shared_ptr<const Deployment> previous = entry.current.exchange(std::move(d));
  entry.failed_version.clear();
  if (failed_) failed_->WithLabels({entry.ref.name, entry.key}).Set(0);
  if (loads_) loads_->WithLabels({entry.ref.name, "success"}).Inc();
  if (info_) {
    if (previous) info_->Remove({entry.ref.name, entry.key, previous->version});
    info_->WithLabels({entry.ref.name, entry.key, version.version}).Set(1);
  }
  if (previous) {
    ++entry.swaps;
    if (swaps_) swaps_->WithLabels({entry.ref.name}).Inc();
    std::cerr << "keel serve: " << entry.key << ": now serving version " << version.version
              << " (was " << previous->version << ")" << std::endl;
  }
  return OkStatus();
}

Status ServingEngine::Add(std::string_view ref_text) {
  KEEL_ASSIGN_OR_RETURN(ModelRef ref, ModelRef::Parse(ref_text, options_.default_alias));
  std::string key = ref.ToString();
  std::lock_guard<std::mutex> load_lock(load_mu_);
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    if (by_ref_.count(key)) return OkStatus();
    if (entries_.size() >= options_.max_models) {
      return Unavailable("already serving " + std::to_string(entries_.size()) +
                         " models (the limit); cannot add " + key);
    }
  }
  const int64_t now = clock_.NowMillis();
  if (auto it = failed_adds_.find(key); it != failed_adds_.end()) {
    if (now - it->second.first < kFailedAddRetryMs) return it->second.second;
    failed_adds_.erase(it);
  }
  auto entry = std::make_unique<Entry>();
  entry->ref = ref;
  entry->key = key;
  auto version = Lookup(ref);
  // A version that exists but cannot be loaded is the server's problem, not
  // the caller's: Unavailable (503), whatever the loader's code was.
  Status loaded = version.status();
  if (version.ok()) {
    if (Status s = LoadInto(*entry, *version); !s.ok()) {
      loaded = Unavailable("cannot serve " + key + " (version " + version->version +
                           "): " + s.message());
    }
  }
  if (!loaded.ok()) {
    if (failed_adds_.size() > 1024) failed_adds_.clear();
    failed_adds_[key] = {now, loaded};
    return loaded;
  }
  if (ref.version.empty()) RefreshShadow(*entry, false);
  std::unique_lock<std::shared_mutex> lock(mu_);
  Entry* e = entry.get();
  entries_.push_back(std::move(entry));
  by_ref_[key] = e;
  by_name_[ref.name].push_back(e);
  return OkStatus();
}

ServingEngine::Entry* ServingEngine::Find(std::string_view ref_text) const {
  // Fast path: the canonical text or a bare name.
  auto exact = by_ref_.find(std::string(ref_text));
  if (exact != by_ref_.end()) return exact->second;
  if (ref_text.find('@') == std::string_view::npos &&
      ref_text.find('/') == std::string_view::npos) {
    auto byname = by_name_.find(std::string(ref_text));
    if (byname == by_name_.end()) return nullptr;
    std::string def = std::string(ref_text) + "@" + options_.default_alias;
    for (Entry* e : byname->second) {
      if (e->key == def) return e;
    }
    // A replica started with one reference of this name answers the bare
    // name with it; a server loading on demand means name@default_alias.
    if (!options_.load_on_demand && byname->second.size() == 1) return byname->second.front();
    return nullptr;
  }
  auto parsed = ModelRef::Parse(ref_text, options_.default_alias);
  if (!parsed.ok()) return nullptr;
  auto it = by_ref_.find(parsed->ToString());
  return it == by_ref_.end() ? nullptr : it->second;
}

Result<std::shared_ptr<const Deployment>> ServingEngine::Get(std::string_view ref_text) {
  Entry* entry = nullptr;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    entry = Find(ref_text);
  }
  if (entry == nullptr) {
    if (!options_.load_on_demand) {
      return NotFound("model '" + std::string(ref_text) + "' is not served here");
    }
    KEEL_ASSIGN_OR_RETURN(ModelRef ref, ModelRef::Parse(ref_text, options_.default_alias));
    KEEL_RETURN_IF_ERROR(Add(ref_text));
    std::shared_lock<std::shared_mutex> lock(mu_);
    entry = Find(ref.ToString());
    if (entry == nullptr) return Internal("model '" + ref.ToString() + "' vanished after loading");
  }
  std::shared_ptr<const Deployment> d = entry->current.load();
  if (!d) return Unavailable("model '" + entry->key + "' is not loaded yet");
  return d;
}

void ServingEngine::Refresh(bool force, std::string_view only_name) {
  std::vector<Entry*> entries;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    for (auto& e : entries_) {
      if (only_name.empty() || e->ref.name == only_name) entries.push_back(e.get());
    }
  }
  for (Entry* e : entries) {
    if (!e->ref.version.empty()) continue;  // pinned
    // Read the alias under load_mu_: a reading made before another Refresh
    // published a newer version must not be published after it.
    std::lock_guard<std::mutex> load_lock(load_mu_);
    RefreshShadow(*e, force);
    auto version = Lookup(e->ref);
    if (!version.ok()) continue;  // alias deleted or store busy: keep serving what we have
    std::shared_ptr<const Deployment> current = e->current.load();
    if (current && current->version == version->version) {
      // The alias came back to what is served: a failed version is no longer pending.
      if (!e->failed_version.empty()) {
        e->failed_version.clear();
        if (failed_) failed_->WithLabels({e->ref.name, e->key}).Set(0);
      }
      continue;
    }
    if (!force && e->failed_version == version->version) continue;
    LoadInto(*e, *version).IgnoreError();  // counted and logged; the old version keeps serving
  }
}

void ServingEngine::RefreshShadow(Entry& e, bool force) {
  if (!options_.follow_shadow) return;
  auto v = registry_.GetVersionByAlias(e.ref.name, kShadowAlias);
  std::shared_ptr<const Deployment> current = e.shadow.load();
  auto drop = [&](const char* why) {
    if (!current) return;
    e.shadow.store(nullptr);
    shadows_.fetch_sub(1);
    std::cerr << "keel serve: " << e.key << ": shadow of version " << current->version << " " << why
              << std::endl;
  };
  if (!v.ok()) {
    const StatusCode code = v.status().code();
    if (code != StatusCode::kInvalidArgument && code != StatusCode::kNotFound) return;  // busy
    e.shadow_failed_version.clear();
    drop("ended");
    return;
  }
  if (current && current->version == v->version) return;
  if (!force && e.shadow_failed_version == v->version) return;
  Result<std::shared_ptr<Deployment>> loaded = LoadPackage(e, *v);
  if (!loaded.ok()) {
    // The alias names another version now: the old shadow must not go on
    // scoring in its name.
    e.shadow_failed_version = v->version;
    std::cerr << "keel serve: " << e.key << ": shadow version " << v->version
              << " not loaded: " << loaded.status().message() << std::endl;
    drop("ended (the alias moved)");
    return;
  }
  e.shadow_failed_version.clear();
  e.shadow.store(std::move(loaded).value());
  if (!current) shadows_.fetch_add(1);
  std::cerr << "keel serve: " << e.key << ": version " << v->version
            << " scores in shadow (it does not answer)" << std::endl;
}

std::shared_ptr<const Deployment> ServingEngine::Shadow(std::string_view ref) const {
  if (shadows_.load(std::memory_order_relaxed) == 0) return nullptr;
  Entry* e = nullptr;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    auto it = by_ref_.find(std::string(ref));
    if (it == by_ref_.end()) return nullptr;
    e = it->second;
  }
  std::shared_ptr<const Deployment> s = e->shadow.load();
  if (!s) return nullptr;
  std::shared_ptr<const Deployment> c = e->current.load();
  if (c && c->version == s->version) return nullptr;
  return s;
}

Status ServingEngine::Start() {
  std::lock_guard<std::mutex> lock(follow_mu_);
  if (follower_.joinable()) return OkStatus();
  follow_stop_ = false;
  follower_ = std::thread([this] { FollowLoop(); });
  return OkStatus();
}

void ServingEngine::Stop() {
  {
    std::lock_guard<std::mutex> lock(follow_mu_);
    follow_stop_ = true;
  }
  follow_cv_.notify_all();
  if (follower_.joinable()) follower_.join();
}

void ServingEngine::Notify() {
  {
    std::lock_guard<std::mutex> lock(follow_mu_);
    follow_notified_ = true;
  }
  follow_cv_.notify_all();
}

void ServingEngine::FollowLoop() {
  std::unique_lock<std::mutex> lock(follow_mu_);
  while (!follow_stop_) {
    follow_cv_.wait_for(lock, options_.poll_interval,
                        [this] { return follow_stop_ || follow_notified_; });
    if (follow_stop_) break;
    follow_notified_ = false;
    lock.unlock();
    try {
      Refresh(false);
    } catch (const std::exception& e) {
      // A store or allocation failure must not take the server down; the next poll retries.
      std::cerr << "keel serve: alias check failed: " << e.what() << std::endl;
    }
    lock.lock();
  }
}

std::vector<ServedStatus> ServingEngine::Served() const {
  std::vector<ServedStatus> out;
  // Lock order everywhere: load_mu_, then mu_.
  std::lock_guard<std::mutex> load_lock(load_mu_);
  std::shared_lock<std::shared_mutex> lock(mu_);
  for (const auto& e : entries_) {
    ServedStatus s;
    s.ref = e->key;
    if (auto d = e->current.load()) {
      s.version = d->version;
      s.loaded_at_ms = d->loaded_at_ms;
    }
    s.last_error = e->last_error;
    s.failed_version = e->failed_version;
    s.last_error_ms = e->last_error_ms;
    s.loads = e->loads;
    s.failures = e->failures;
    s.swaps = e->swaps;
    if (auto sh = e->shadow.load()) s.shadow_version = sh->version;
    s.shadow_failed_version = e->shadow_failed_version;
    out.push_back(std::move(s));
  }
  return out;
}

bool ServingEngine::Ready() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  for (const auto& e : entries_) {
    if (!e->current.load()) return false;
  }
  return true;
}

std::vector<std::string> ServingEngine::Refs() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e->key);
  return out;
}

size_t ServingEngine::size() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return entries_.size();
}

}  // namespace keel::serve
