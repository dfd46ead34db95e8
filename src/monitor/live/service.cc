// MonitorService: monitoring passes inside the server (keel/monitor/alerts.h).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <set>

#include "keel/monitor/alerts.h"
#include "src/monitor/live/pieces.h"

namespace keel::monitor {
namespace {
const std::vector<std::string> kNoLabels;
}  // namespace

MonitorService::MonitorService(store::Database& db, const Clock& clock, Resolver resolve,
                               AlertBus& bus, Options options)
    : db_(db),
      clock_(clock),
      resolve_(std::move(resolve)),
      bus_(bus),
      options_(std::move(options)) {
  if (!options_.lease_holder.empty()) {
    const int64_t ttl = std::max<int64_t>(3 * options_.interval.count(), 3'000);
    lease_ = std::make_unique<store::Lease>(db_, clock_, "monitor", options_.lease_holder, ttl);
  }
  if (options_.metrics == nullptr) return;
  metrics::Registry& r = *options_.metrics;
  auto& windows = r.AddCounter("keel_monitor_windows_total",
                               "Monitoring windows computed, by where they were read from "
                               "(log: the prediction log; pieces: merged window profiles).",
                               {"source"});
  meters_ = Meters{
      &r.AddCounter("keel_monitor_passes_total", "Monitoring passes run.").WithLabels(kNoLabels),
      &r.AddCounter("keel_monitor_pass_errors_total",
                    "Errors in monitoring passes (one per version or window that failed).")
           .WithLabels(kNoLabels),
      &windows.WithLabels({"log"}),
      &windows.WithLabels({"pieces"}),
      &r.AddCounter("keel_monitor_alerts_total", "Alerts stored anew by monitoring passes.")
           .WithLabels(kNoLabels),
      &r.AddGauge("keel_monitor_last_pass_timestamp_seconds",
                  "When the last monitoring pass ended (Unix seconds).")
           .WithLabels(kNoLabels),
      &r.AddHistogram("keel_monitor_pass_duration_seconds", "Time a monitoring pass took.", {},
                      {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300})
           .WithLabels(kNoLabels),
      &r.AddGauge("keel_monitor_leader",
                  "1 while this process runs the monitoring passes (it holds the store's "
                  "monitor lease, or runs without one).")
           .WithLabels(kNoLabels),
  };
}

MonitorService::~MonitorService() { Stop(); }

void MonitorService::Start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = false;
  }
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
}

void MonitorService::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Another replica need not wait for the lease to expire.
  if (lease_ != nullptr) lease_->Release().IgnoreError();
}

uint64_t MonitorService::passes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return passes_;
}

MonitorService::PassSummary MonitorService::last_summary() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_;
}

void MonitorService::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    if (lease_ != nullptr) {
      // Replicas: only the lease holder runs the pass.
      Result<bool> mine = lease_->Acquire();
      if (meters_) meters_->leader->Set(mine.ok() && *mine ? 1 : 0);
      if (!mine.ok()) std::cerr << "keel monitor: lease: " << mine.status().message() << std::endl;
      if (!mine.ok() || !*mine) {
        lock.lock();
        cv_.wait_for(lock, options_.interval, [this] { return stop_; });
        continue;
      }
    } else if (meters_) {
      meters_->leader->Set(1);
    }
    // A failed pass (the store unavailable) is retried at the next interval.
    const auto started = std::chrono::steady_clock::now();
    Result<PassSummary> pass = RunOnce();
    PassSummary summary;
    if (pass.ok()) {
      summary = std::move(pass).value();
    } else {
      summary.errors.push_back(pass.status().message());
    }
    for (const std::string& e : summary.errors) std::cerr << "keel monitor: " << e << std::endl;
    if (meters_) {
      meters_->passes->Inc();
      meters_->errors->Inc(static_cast<double>(summary.errors.size()));
      meters_->windows_pieces->Inc(static_cast<double>(summary.windows_from_pieces));
      meters_->windows_log->Inc(static_cast<double>(summary.windows - summary.windows_from_pieces));
      meters_->alerts->Inc(static_cast<double>(summary.alerts_new));
      meters_->last_pass->Set(static_cast<double>(clock_.NowMillis()) / 1000.0);
      meters_->duration->Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
    lock.lock();
    ++passes_;
    last_ = std::move(summary);
    cv_.wait_for(lock, options_.interval, [this] { return stop_; });
  }
}

bool MonitorService::Stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stop_;
}

Result<MonitorService::PassSummary> MonitorService::RunOnce() {
  PassSummary summary;
  const int64_t now = clock_.NowMillis();
  // Every model's rules: the explicit ones applying to it, else the defaults.
  int64_t longest = 0;
  for (const AlertRule& r : options_.rules) longest = std::max(longest, r.window_ms);
  for (const AlertRule& r : DefaultAlertRules("*", "binary"))
    longest = std::max(longest, r.window_ms);

  // Registered models and the versions that logged predictions recently.
  std::vector<std::pair<std::string, std::string>> versions;
  KEEL_RETURN_IF_ERROR(db_.Read([&](store::Connection& c) -> Status {
    std::vector<std::string> models;
    KEEL_RETURN_IF_ERROR(c.Query("SELECT name FROM registered_models ORDER BY name", {},
                                 [&](const store::RowView& row) {
                                   models.emplace_back(row.Text(0));
                                   return OkStatus();
                                 }));
    for (const std::string& m : models) {
      KEEL_RETURN_IF_ERROR(c.Query(
          "SELECT DISTINCT version FROM predictions WHERE model = ? AND time >= ? AND time < ?",
          {store::Value(m), store::Value(now - longest), store::Value(now)},
          [&](const store::RowView& row) {
            versions.emplace_back(m, std::string(row.Text(0)));
            return OkStatus();
          }));
    }
    return OkStatus();
  }));

  // Hourly, the stored pieces no window reaches any more (of versions no
  // longer logging too); each version's cache drops its own as its window
  // moves.
  if (now - stale_pieces_dropped_ms_ >= 3'600'000) {
    const Status dropped = internal::DropStalePieces(db_, now - longest);
    if (dropped.ok()) {
      stale_pieces_dropped_ms_ = now;
    } else {
      summary.errors.push_back("dropping old pieces: " + dropped.message());
    }
  }

  for (const auto& model_version : versions) {
    // Named references, not structured bindings: lambdas below capture them.
    const std::string& model = model_version.first;
    const std::string& version = model_version.second;
    if (Stopping()) break;
    if (lease_ != nullptr && &model_version != &versions.front()) {
      // A long pass renews its lease as it goes (Loop() renewed it just
      // before the first version), and stops if another replica holds it
      // now (its own pass covers the rest).
      Result<bool> mine = lease_->Acquire();
      if (!mine.ok() || !*mine) break;
    }
    const std::string key = model + "/" + version;
    auto it = cache_.find(key);
    if (it == cache_.end()) {
      Cached entry;
      Result<std::shared_ptr<const model::LoadedModel>> loaded = resolve_(model, version);
      if (!loaded.ok()) {
        summary.errors.push_back(key + ": " + loaded.status().message());
        ++summary.skipped_versions;
        continue;  // not cached: retried next pass
      }
      entry.model = *loaded;
      const std::filesystem::path ref = entry.model->path / "keel" / "reference.keelref";
      std::error_code ec;
      if (std::filesystem::exists(ref, ec)) {
        Result<ReferenceProfile> profile = ReadReferenceFile(ref);
        if (!profile.ok()) {
          summary.errors.push_back(key + ": " + profile.status().message());
          ++summary.skipped_versions;
          continue;
        }
        entry.reference = std::make_shared<const ReferenceProfile>(std::move(profile).value());
        entry.layout = std::make_unique<ProfileLayout>(*entry.reference, entry.model->info);
      }
      if (cache_.size() >= kMaxCached) {
        cache_.erase(cache_order_.front());
        cache_order_.pop_front();
      }
      cache_order_.push_back(key);
      it = cache_.emplace(key, std::move(entry)).first;
    }
    Cached& cached = it->second;
    if (cached.reference == nullptr) {  // no profile stored with this version
      ++summary.skipped_versions;
      continue;
    }
    std::vector<AlertRule> rules;
    for (const AlertRule& r : options_.rules) {
      if (r.AppliesTo(model)) rules.push_back(r);
    }
    if (rules.empty()) rules = DefaultAlertRules(model, cached.model->info.task);
    std::set<int64_t> windows;
    for (const AlertRule& r : rules) windows.insert(r.window_ms);
    const int64_t bucket = internal::PieceBucket(*windows.rbegin());
    if (cached.pieces == nullptr || cached.pieces->bucket_ms() != bucket) {
      cached.pieces =
          std::make_unique<internal::PieceCache>(model, version, bucket, options_.settle_ms);
    }
    // Without up-to-date pieces every window is read from the log.
    const Status refreshed =
        cached.pieces->Refresh(db_, *cached.layout, now, *windows.rbegin(), options_.max_rows);
    if (!refreshed.ok()) {
      summary.errors.push_back(key + ": building its pieces: " + refreshed.message());
    }
    for (const std::string& e : cached.pieces->TakeStoreErrors()) {
      summary.errors.push_back(key + ": " + e);
    }
    for (int64_t window : windows) {
      if (Stopping()) break;
      WindowQuery q;
      q.model = model;
      q.version = version;
      q.from_ms = now - window;
      q.to_ms = now;
      q.max_rows = options_.max_rows;
      Result<WindowReport> report = [&]() -> Result<WindowReport> {
        if (!refreshed.ok() || cached.pieces->PieceRows(q.from_ms) <= options_.exact_rows) {
          return MonitorWindow(db_, *cached.reference, cached.model->info, q, options_.drift);
        }
        uint64_t total = 0;
        KEEL_ASSIGN_OR_RETURN(
            WindowProfile profile,
            cached.pieces->Window(db_, *cached.layout, q.from_ms, now, options_.max_rows, &total));
        ++summary.windows_from_pieces;
        return EvaluateProfile(*cached.layout, profile, q, options_.drift, total);
      }();
      if (report.status().code() == StatusCode::kNotFound) continue;  // nothing in this window
      if (!report.ok()) {
        summary.errors.push_back(key + " over " + FormatDuration(window) + ": " +
                                 report.status().message());
        continue;
      }
      ++summary.windows;
      // History keeps one report per window length per min(length, 1 hour).
      const std::string stored_key = key + "/" + std::to_string(window);
      auto last = stored_.find(stored_key);
      if (last == stored_.end() || now - last->second >= std::min<int64_t>(window, 3'600'000)) {
        const std::string json = report->ToJson();
        Status stored = db_.Write([&](store::Connection& c) {
          return c.Exec(
              "INSERT INTO monitor_windows(model, version, from_time, to_time, computed_time, "
              "report) VALUES (?, ?, ?, ?, ?, ?)",
              {store::Value(model), store::Value(version), store::Value(q.from_ms),
               store::Value(q.to_ms), store::Value(now), store::Value(json)});
        });
        if (stored.ok()) {
          stored_[stored_key] = now;
          ++summary.windows_stored;
        } else {
          summary.errors.push_back(key + ": storing its window: " + stored.message());
        }
      }
      std::vector<AlertRule> same_window;
      for (const AlertRule& r : rules) {
        if (r.window_ms == window) same_window.push_back(r);
      }
      for (const Alert& a : EvaluateRules(*report, same_window, now)) {
        const auto rule = std::find_if(same_window.begin(), same_window.end(),
                                       [&](const AlertRule& r) { return r.name == a.rule; });
        Result<RecordedAlert> stored = RecordAlert(db_, a, rule->cooldown_ms);
        if (!stored.ok()) {
          summary.errors.push_back(key + ": storing alert " + a.rule + ": " +
                                   stored.status().message());
          continue;
        }
        const RecordedAlert& recorded = *stored;
        if (recorded.is_new) {
          ++summary.alerts_new;
          bus_.Publish(recorded.alert);
        } else {
          ++summary.alerts_folded;
        }
      }
    }
  }
  return summary;
}

}  // namespace keel::monitor
