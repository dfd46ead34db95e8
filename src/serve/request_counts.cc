#include "keel/serve/request_counts.h"

#include <iostream>

namespace keel::serve {

using store::Connection;
using store::RowView;
using store::Value;

RequestCounts::RequestCounts(store::Database& db, const Clock& clock, RequestCountsOptions options)
    : db_(db), clock_(clock), options_(options) {}

RequestCounts::~RequestCounts() { Stop(); }

Status RequestCounts::Start() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  if (options_.flush_interval.count() <= 0) {
    return InvalidArgument("request counts: flush_interval must be positive");
  }
  try {
    thread_ = std::thread([this] { Loop(); });
  } catch (const std::system_error& e) {
    return Internal(std::string("request counts: cannot start a thread: ") + e.what());
  }
  return OkStatus();
}

void RequestCounts::Stop() {
  // One Stop at a time joins the thread; every Stop flushes what is pending
  // (counts recorded after an earlier Stop too).
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (Status st = Flush(); !st.ok()) {
    std::cerr << "keel: request counts not written at shutdown: " << st.message() << std::endl;
  }
}

void RequestCounts::Record(std::string_view model, std::string_view version, Outcome outcome) {
  const int64_t now = clock_.NowMillis();
  const int64_t minute = now - ((now % 60'000) + 60'000) % 60'000;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(KeyView{model, version, minute});
  if (it == pending_.end()) {
    it = pending_.emplace(Key{std::string(model), std::string(version), minute}, Counts{}).first;
  }
  Counts& c = it->second;
  ++c.requests;
  if (outcome == Outcome::kClientError) ++c.client_errors;
  if (outcome == Outcome::kServerError) ++c.server_errors;
}

Status RequestCounts::Flush() {
  std::lock_guard<std::mutex> flush_lock(flush_mu_);
  std::map<Key, Counts, KeyLess> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(pending_);
  }
  if (batch.empty()) return OkStatus();
  Status st = db_.Write([&](Connection& c) -> Status {
    for (const auto& [key, n] : batch) {
      const auto& [model, version, minute] = key;
      KEEL_RETURN_IF_ERROR(c.Exec(
          "INSERT INTO request_counts(model, version, minute, requests, client_errors, "
          "server_errors) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (model, version, minute) DO "
          "UPDATE SET requests = request_counts.requests + excluded.requests, client_errors = "
          "request_counts.client_errors + excluded.client_errors, server_errors = "
          "request_counts.server_errors + excluded.server_errors",
          {Value(std::string_view(model)), Value(std::string_view(version)), Value(minute),
           Value(static_cast<int64_t>(n.requests)), Value(static_cast<int64_t>(n.client_errors)),
           Value(static_cast<int64_t>(n.server_errors))}));
    }
    return OkStatus();
  });
  if (!st.ok()) {
    // Kept for the next flush: counts recorded meanwhile are added to them.
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, n] : batch) {
      Counts& c = pending_[key];
      c.requests += n.requests;
      c.client_errors += n.client_errors;
      c.server_errors += n.server_errors;
    }
  }
  return st;
}

void RequestCounts::Loop() {
  bool reported = false;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, options_.flush_interval, [this] { return stop_; });
    if (stop_) break;
    lock.unlock();
    Status st = Flush();
    if (!st.ok() && !reported) {
      std::cerr << "keel: request counts not written (kept for the next try): " << st.message()
                << std::endl;
    }
    reported = !st.ok();
    lock.lock();
  }
}

Result<std::vector<RequestPoint>> ReadRequestCounts(store::Database& db,
                                                    const RequestCountsQuery& q) {
  if (q.step_ms <= 0 || q.step_ms % 60'000 != 0) {
    return InvalidArgument("step_ms must be a positive multiple of 60000, got " +
                           std::to_string(q.step_ms));
  }
  // Unix milliseconds within about ±30,000 years; steps of at most a year.
  constexpr int64_t kMaxAbsMs = 1'000'000'000'000'000;
  if (q.step_ms > 366LL * 86'400'000) return InvalidArgument("step_ms must be at most a year");
  if (q.from_ms < -kMaxAbsMs || q.from_ms > kMaxAbsMs || q.to_ms < -kMaxAbsMs ||
      q.to_ms > kMaxAbsMs) {
    return InvalidArgument("from_ms and to_ms must be within ±10^15");
  }
  if (q.to_ms <= q.from_ms) {
    return InvalidArgument("to_ms must be after from_ms");
  }
  const int64_t from = q.from_ms - ((q.from_ms % q.step_ms) + q.step_ms) % q.step_ms;
  if ((q.to_ms - from + q.step_ms - 1) / q.step_ms > 10'000) {
    return InvalidArgument("more than 10000 steps of step_ms in [from_ms, to_ms)");
  }
  std::string sql =
      "SELECT minute, CAST(SUM(requests) AS BIGINT), CAST(SUM(client_errors) AS BIGINT), "
      "CAST(SUM(server_errors) AS BIGINT) FROM request_counts "
      "WHERE model = ? AND minute >= ? AND minute < ?";
  std::vector<Value> params = {Value(std::string_view(q.model)), Value(from), Value(q.to_ms)};
  if (!q.version.empty()) {
    sql += " AND version = ?";
    params.emplace_back(std::string_view(q.version));
  }
  sql += " GROUP BY minute ORDER BY minute";
  std::vector<RequestPoint> points;
  KEEL_RETURN_IF_ERROR(db.Read([&](Connection& c) {
    points.clear();
    return c.Query(sql, params, [&](const RowView& r) {
      const int64_t t = r.Int(0) - ((r.Int(0) - from) % q.step_ms);
      if (points.empty() || points.back().time_ms != t) points.push_back(RequestPoint{t});
      RequestPoint& p = points.back();
      p.requests += static_cast<uint64_t>(r.Int(1));
      p.client_errors += static_cast<uint64_t>(r.Int(2));
      p.server_errors += static_cast<uint64_t>(r.Int(3));
      return OkStatus();
    });
  }));
  return points;
}

}  // namespace keel::serve
