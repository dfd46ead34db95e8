// Shadow scoring (keel/serve/shadow.h).
#include "keel/serve/shadow.h"

#include <chrono>
#include <cstdio>
#include <utility>

#include "keel/core/json.h"

namespace keel::serve {
namespace {

using store::Connection;
using store::Value;

constexpr char kInsertSql[] =
    "INSERT INTO shadow_predictions (request_id, version, model, time, output, latency_us, "
    "error) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id, version) DO NOTHING";

}  // namespace

ShadowScorer::ShadowScorer(store::Database& db, metrics::Registry* metrics, ShadowOptions options)
    : db_(db), options_(options) {
  if (metrics != nullptr) {
    rows_ = &metrics->AddCounter(
        "keel_shadow_rows_total",
        "Requests scored by a model in its shadow phase, by result (scored, error, dropped).",
        {"model", "result"});
  }
}

ShadowScorer::~ShadowScorer() { Stop(); }

Status ShadowScorer::Start() {
  std::lock_guard<std::mutex> life(lifecycle_mu_);
  if (worker_.joinable()) return OkStatus();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return FailedPrecondition("the shadow scorer was stopped");
    started_ = true;
  }
  worker_ = std::thread([this] { WorkerLoop(); });
  return OkStatus();
}

void ShadowScorer::Stop() {
  std::lock_guard<std::mutex> life(lifecycle_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  // Rows queued without a worker (never started) are dropped.
  std::lock_guard<std::mutex> lock(mu_);
  for (const Item& item : queue_) CountDropped(item);
  queue_.clear();
  queued_rows_ = 0;
  done_seq_ = enqueued_seq_;
  done_cv_.notify_all();
}

bool ShadowScorer::Submit(std::shared_ptr<const Deployment> shadow, std::vector<ShadowRow> rows) {
  if (!shadow || rows.empty()) return true;
  const size_t n = rows.size();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_ && queued_rows_ + n <= options_.queue_rows) {
      queued_rows_ += n;
      enqueued_seq_ += n;
      queue_.push_back(Item{std::move(shadow), std::move(rows), enqueued_seq_});
      work_cv_.notify_one();
      return true;
    }
  }
  CountDropped(Item{std::move(shadow), std::move(rows), 0});
  return false;
}

void ShadowScorer::CountDropped(const Item& item) {
  dropped_.fetch_add(item.rows.size(), std::memory_order_relaxed);
  if (rows_) {
    rows_->WithLabels({item.shadow->name, "dropped"}).Inc(static_cast<double>(item.rows.size()));
  }
}

Status ShadowScorer::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!started_) return FailedPrecondition("the shadow scorer is not started");
  const uint64_t target = enqueued_seq_;
  const uint64_t failures_before = failed_commits_;
  done_cv_.wait(lock, [&] { return done_seq_ >= target; });
  if (failed_commits_ != failures_before) return last_error_;
  return OkStatus();
}

void ShadowScorer::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    std::vector<Item> batch;
    size_t rows = 0;
    while (!queue_.empty() &&
           (batch.empty() || rows + queue_.front().rows.size() <= options_.max_batch)) {
      rows += queue_.front().rows.size();
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    queued_rows_ -= rows;
    const uint64_t end = batch.back().seq_end;
    lock.unlock();
    uint64_t scored = 0, errors = 0;
    Status s = Write(batch, &scored, &errors);
    if (s.ok()) {
      scored_.fetch_add(scored, std::memory_order_relaxed);
      errors_.fetch_add(errors, std::memory_order_relaxed);
    } else {
      for (const Item& item : batch) CountDropped(item);
      std::fprintf(stderr, "keel: shadow scoring: commit of %zu rows failed, rows dropped: %s\n",
                   rows, s.ToString().c_str());
    }
    lock.lock();
    if (!s.ok()) {
      last_error_ = s;
      ++failed_commits_;
    }
    done_seq_ = end;
    done_cv_.notify_all();
  }
}

Status ShadowScorer::Write(const std::vector<Item>& items, uint64_t* scored, uint64_t* errors) {
  // Score outside the transaction; one row of values per shadow row.
  struct Out {
    const ShadowRow* row;
    const Deployment* d;
    std::string output;
    double latency_us;
    std::string error;
  };
  std::vector<Out> outs;
  std::vector<float> x, y;
  for (const Item& item : items) {
    const Deployment& d = *item.shadow;
    const model::LoadedModel& m = *d.model;
    x.resize(static_cast<size_t>(m.pipeline.num_features()));
    y.resize(d.outputs_per_row);
    for (const ShadowRow& r : item.rows) {
      Out o{&r, &d, {}, 0, {}};
      const auto start = std::chrono::steady_clock::now();
      Status enc = m.pipeline.EncodeJsonObject(r.input_json, x.data());
      if (enc.ok()) {
        m.predictor.PredictRow(x.data(), y.data());
        o.latency_us =
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                .count();
        AppendJsonFloats(o.output, y.data(), y.size());
      } else {
        o.output = "null";
        o.error = enc.message();
      }
      outs.push_back(std::move(o));
    }
  }
  uint64_t ok_rows = 0, err_rows = 0;
  Status s = db_.Write([&](Connection& c) -> Status {
    ok_rows = err_rows = 0;
    for (const Out& o : outs) {
      KEEL_RETURN_IF_ERROR(c.Exec(
          kInsertSql, {Value(std::string_view(o.row->request_id)),
                       Value(std::string_view(o.d->version)), Value(std::string_view(o.d->name)),
                       Value(o.row->time_ms), Value(std::string_view(o.output)),
                       Value(o.latency_us), Value(std::string_view(o.error))}));
      (o.error.empty() ? ok_rows : err_rows) += 1;
    }
    return OkStatus();
  });
  if (!s.ok()) return s;
  *scored = ok_rows;
  *errors = err_rows;
  if (rows_) {
    for (const Out& o : outs) {
      rows_->WithLabels({o.d->name, o.error.empty() ? "scored" : "error"}).Inc();
    }
  }
  return OkStatus();
}

uint64_t ShadowScorer::scored() const { return scored_.load(std::memory_order_relaxed); }
uint64_t ShadowScorer::errors() const { return errors_.load(std::memory_order_relaxed); }
uint64_t ShadowScorer::dropped() const { return dropped_.load(std::memory_order_relaxed); }

namespace {

// The join of ReadShadowPairs after "SELECT <columns> ", and its parameters.
std::string PairsSql(const ShadowQuery& q, std::vector<Value>& params) {
  std::string sql =
      " FROM shadow_predictions s JOIN predictions p ON p.request_id = s.request_id "
      "LEFT JOIN labels l ON l.request_id = s.request_id WHERE s.model = ? AND s.version = ? "
      "AND s.time >= ? AND s.time < ?";
  params = {Value(q.model), Value(q.shadow_version), Value(q.from_ms), Value(q.to_ms)};
  if (!q.champion_version.empty()) {
    sql += " AND p.version = ?";
    params.emplace_back(q.champion_version);
  }
  return sql;
}

}  // namespace

Result<std::vector<ShadowPair>> ReadShadowPairs(store::Database& db, const ShadowQuery& query) {
  if (query.model.empty() || query.shadow_version.empty()) {
    return InvalidArgument("ReadShadowPairs needs a model and a shadow version");
  }
  std::vector<Value> params;
  const std::string sql =
      "SELECT s.request_id, s.time, p.version, p.output, s.output, s.latency_us, s.error, "
      "l.label" +
      PairsSql(query, params) + " ORDER BY s.time, s.request_id LIMIT ?";
  params.emplace_back(static_cast<int64_t>(query.limit));
  std::vector<ShadowPair> out;
  KEEL_RETURN_IF_ERROR(db.Read([&](Connection& c) {
    return c.Query(sql, params, [&](const store::RowView& row) -> Status {
      ShadowPair p;
      p.request_id = std::string(row.Text(0));
      p.time_ms = row.Int(1);
      p.champion_version = std::string(row.Text(2));
      p.champion_output = std::string(row.Text(3));
      p.shadow_output = std::string(row.Text(4));
      p.shadow_latency_us = row.Double(5);
      p.error = std::string(row.Text(6));
      if (!row.IsNull(7)) p.label_json = std::string(row.Text(7));
      out.push_back(std::move(p));
      return OkStatus();
    });
  }));
  return out;
}

Result<uint64_t> CountShadowPairs(store::Database& db, const ShadowQuery& query) {
  if (query.model.empty() || query.shadow_version.empty()) {
    return InvalidArgument("CountShadowPairs needs a model and a shadow version");
  }
  std::vector<Value> params;
  const std::string sql = "SELECT COUNT(*)" + PairsSql(query, params);
  uint64_t n = 0;
  KEEL_RETURN_IF_ERROR(db.Read([&](Connection& c) {
    return c.Query(sql, params, [&](const store::RowView& row) -> Status {
      n = static_cast<uint64_t>(row.Int(0));
      return OkStatus();
    });
  }));
  return n;
}

}  // namespace keel::serve
