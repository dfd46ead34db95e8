// The prediction log: a queue filled by Append and drained by one writer
// thread in multi-row INSERT transactions; labels and reads over the store.
//
// Sequence numbers: every queued record gets the next number (enqueued_seq_
// counts them). The writer takes records from the front of the queue in
// order, so a batch is always the range [committed_seq_, committed_seq_ + n);
// when its transaction has finished (committed or failed) committed_seq_
// moves to its end and done_cv_ wakes the strict Appends and Flushes whose
// ranges it covers. A Waiter overlapping a failed batch gets its error.
#include "keel/serve/prediction_log.h"

#include <simdjson.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <random>
#include <string_view>
#include <system_error>
#include <utility>

namespace keel::serve {
namespace {

using store::Connection;
using store::RowView;
using store::Value;

constexpr size_t kColumns = 8;
// Rows per multi-row INSERT; one fixed size keeps the statement cache hot.
// 64 * 8 parameters stay far below SQLite's and PostgreSQL's limits.
constexpr size_t kChunkRows = 64;
// A repeating commit error is reported again at most this often.
constexpr int64_t kReportEveryMs = 60'000;

std::string InsertSql(size_t rows) {
  std::string sql =
      "INSERT INTO predictions (request_id, time, model, version, endpoint, input, output, "
      "latency_us) VALUES ";
  for (size_t i = 0; i < rows; ++i) {
    sql += i == 0 ? "(?, ?, ?, ?, ?, ?, ?, ?)" : ", (?, ?, ?, ?, ?, ?, ?, ?)";
  }
  sql += " ON CONFLICT (request_id) DO NOTHING";
  return sql;
}

const std::string& ChunkInsertSql() {
  static const std::string sql = InsertSql(kChunkRows);
  return sql;
}

const std::string& SingleInsertSql() {
  static const std::string sql = InsertSql(1);
  return sql;
}

void BindRecord(const PredictionRecord& r, std::vector<Value>& params) {
  params.emplace_back(std::string_view(r.request_id));
  params.emplace_back(int64_t{r.time_ms});
  params.emplace_back(std::string_view(r.model));
  params.emplace_back(std::string_view(r.version));
  params.emplace_back(std::string_view(r.endpoint));
  params.emplace_back(std::string_view(r.input_json));
  params.emplace_back(std::string_view(r.output_json));
  params.emplace_back(r.latency_us);
}

// Queued records at which the writer commits without waiting for the
// interval: max_batch, or a full queue when that is smaller.
size_t CommitThreshold(const PredictionLogOptions& o) {
  return std::min(o.max_batch, o.queue_capacity);
}

uint64_t SeedFromRandomDevice() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ static_cast<uint64_t>(rd());
}

bool SameError(const Status& a, const Status& b) {
  return a.code() == b.code() && a.message() == b.message();
}

// Validates a label as a JSON scalar and returns it minified.
Result<std::string> NormaliseLabel(simdjson::dom::parser& parser, const Label& label) {
  if (label.request_id.empty()) return InvalidArgument("label with an empty request id");
  simdjson::dom::element root;
  auto error = parser.parse(label.label_json.data(), label.label_json.size()).get(root);
  if (error) {
    return InvalidArgument("label for request " + label.request_id +
                           " is not valid JSON: " + simdjson::error_message(error));
  }
  switch (root.type()) {
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE:
    case simdjson::dom::element_type::STRING:
    case simdjson::dom::element_type::BOOL:
      return simdjson::minify(root);
    default:
      return InvalidArgument("label for request " + label.request_id +
                             " must be a JSON number, string or boolean");
  }
}

// The FROM/WHERE part shared by ReadPredictions and CountPredictions, and its
// parameters. Only four SQL texts result (version filter x labelled_only).
Status BuildFilter(const PredictionQuery& q, std::string* sql, std::vector<Value>* params) {
  if (q.model.empty()) return InvalidArgument("prediction query needs a model");
  *sql += q.labelled_only ? " FROM predictions p JOIN labels l ON l.request_id = p.request_id"
                          : " FROM predictions p LEFT JOIN labels l ON l.request_id = p.request_id";
  *sql += " WHERE p.model = ?";
  params->emplace_back(std::string_view(q.model));
  if (!q.version.empty()) {
    *sql += " AND p.version = ?";
    params->emplace_back(std::string_view(q.version));
  }
  *sql += " AND p.time >= ? AND p.time < ?";
  params->emplace_back(int64_t{q.from_ms});
  params->emplace_back(int64_t{q.to_ms});
  return OkStatus();
}

}  // namespace

PredictionLog::PredictionLog(store::Database& db, const Clock& clock, PredictionLogOptions options)
    : db_(db), clock_(clock), options_(std::move(options)) {}

PredictionLog::~PredictionLog() { Stop(); }

Status PredictionLog::Start() {
  const PredictionLogOptions& o = options_;
  if (!(o.sample_rate >= 0.0 && o.sample_rate <= 1.0)) {
    return InvalidArgument("prediction log sample_rate must be in [0, 1]");
  }
  if (o.queue_capacity == 0) return InvalidArgument("prediction log queue_capacity must be > 0");
  if (o.max_batch == 0) return InvalidArgument("prediction log max_batch must be > 0");
  if (o.flush_interval.count() < 0) {
    return InvalidArgument("prediction log flush_interval must not be negative");
  }
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return FailedPrecondition("prediction log is stopped");
    if (started_) return FailedPrecondition("prediction log is already started");
    started_ = true;
  }
  try {
    writer_ = std::thread(&PredictionLog::WriterLoop, this);
  } catch (const std::system_error& e) {
    std::lock_guard<std::mutex> lock(mu_);
    started_ = false;
    return Internal(std::string("cannot start the prediction log writer: ") + e.what());
  }
  return OkStatus();
}

Status PredictionLog::Append(std::vector<PredictionRecord> records) {
  const size_t n = records.size();
  const bool strict = options_.durability == Durability::kStrict;
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) return FailedPrecondition("prediction log is stopped");
  if (!started_) return FailedPrecondition("prediction log is not started");
  if (n == 0) return OkStatus();
  if (queue_.size() + n > options_.queue_capacity) {
    if (options_.when_full == WhenFull::kDrop) {
      dropped_.fetch_add(n, std::memory_order_relaxed);
      if (!strict) return OkStatus();
      return ResourceExhausted("prediction log queue is full; " + std::to_string(n) +
                               " records dropped");
    }
    // kBlock: wait for room; more records than the capacity go in once the
    // queue is empty.
    ++blocked_appenders_;
    work_cv_.notify_one();
    done_cv_.wait(lock, [&] {
      return stopping_ || queue_.empty() || queue_.size() + n <= options_.queue_capacity;
    });
    --blocked_appenders_;
    if (stopping_) return FailedPrecondition("prediction log is stopped");
  }
  const bool was_empty = queue_.empty();
  for (PredictionRecord& r : records) queue_.push_back(std::move(r));
  if (was_empty) oldest_ = std::chrono::steady_clock::now();
  const uint64_t begin = enqueued_seq_;
  enqueued_seq_ += n;
  const uint64_t end = enqueued_seq_;
  if (!strict) {
    // The writer sleeps without a deadline only on an empty queue and
    // otherwise until the oldest record is due: wake it on those changes.
    const bool wake = was_empty || queue_.size() >= CommitThreshold(options_);
    lock.unlock();
    if (wake) work_cv_.notify_one();
    return OkStatus();
  }
  Waiter waiter{begin, end, OkStatus()};
  waiters_.push_back(&waiter);
  work_cv_.notify_one();
  done_cv_.wait(lock, [&] { return committed_seq_ >= end; });
  waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &waiter));
  return waiter.status;
}

bool PredictionLog::Sample() {
  const double rate = options_.sample_rate;
  bool yes;
  if (rate >= 1.0) {
    yes = true;
  } else if (!(rate > 0.0)) {
    yes = false;
  } else {
    thread_local std::mt19937_64 gen(SeedFromRandomDevice());
    // 53 random bits as a double in [0, 1).
    yes = static_cast<double>(gen() >> 11) * 0x1.0p-53 < rate;
  }
  if (!yes) sampled_out_.fetch_add(1, std::memory_order_relaxed);
  return yes;
}

Status PredictionLog::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  if (committed_seq_ >= enqueued_seq_) return OkStatus();
  Waiter waiter{committed_seq_, enqueued_seq_, OkStatus()};
  waiters_.push_back(&waiter);
  ++flush_waiters_;
  work_cv_.notify_one();
  done_cv_.wait(lock, [&] { return committed_seq_ >= waiter.end; });
  --flush_waiters_;
  waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &waiter));
  return waiter.status;
}

void PredictionLog::Stop() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  done_cv_.notify_all();  // kBlock Appends give up
  if (writer_.joinable()) writer_.join();
}

void PredictionLog::WriterLoop() {
  const bool strict = options_.durability == Durability::kStrict;
  const size_t threshold = CommitThreshold(options_);
  std::vector<PredictionRecord> batch;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (queue_.empty()) {
      if (stopping_) break;
      work_cv_.wait(lock);
      continue;
    }
    const bool due = strict || stopping_ || flush_waiters_ > 0 || blocked_appenders_ > 0 ||
                     queue_.size() >= threshold;
    if (!due) {
      const auto deadline = *oldest_ + options_.flush_interval;
      if (std::chrono::steady_clock::now() < deadline) {
        work_cv_.wait_until(lock, deadline);
        continue;
      }
    }
    const size_t n = std::min(queue_.size(), options_.max_batch);
    batch.clear();
    batch.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    // What remains arrived after the old oldest_; keeping it only makes the
    // remainder due sooner.
    if (queue_.empty()) oldest_.reset();
    const uint64_t begin = committed_seq_;
    const uint64_t end = begin + n;
    if (options_.when_full == WhenFull::kBlock) done_cv_.notify_all();
    lock.unlock();

    uint64_t inserted = 0;
    Status status = WriteBatch(batch, &inserted);

    lock.lock();
    if (status.ok()) {
      written_.fetch_add(inserted, std::memory_order_relaxed);
      duplicates_.fetch_add(n - inserted, std::memory_order_relaxed);
      commits_.fetch_add(1, std::memory_order_relaxed);
    } else {
      failed_.fetch_add(n, std::memory_order_relaxed);
      for (Waiter* w : waiters_) {
        if (w->begin < end && begin < w->end && w->status.ok()) w->status = status;
      }
      if (!strict) ReportFailure(status, n);
      last_error_ = status;
    }
    committed_seq_ = end;
    done_cv_.notify_all();
  }
}

Status PredictionLog::WriteBatch(std::vector<PredictionRecord>& batch, uint64_t* inserted) {
  // Inserted in request id order: neighbouring rows then share primary-key
  // index pages, which matters for random ids. The sort is stable, so of
  // several records with one id the first queued is still inserted first.
  std::vector<const PredictionRecord*> order;
  order.reserve(batch.size());
  for (const PredictionRecord& r : batch) order.push_back(&r);
  std::stable_sort(order.begin(), order.end(),
                   [](const PredictionRecord* a, const PredictionRecord* b) {
                     return a->request_id < b->request_id;
                   });
  uint64_t count = 0;
  Status s = db_.Write([&](Connection& c) -> Status {
    count = 0;
    std::vector<Value> params;
    params.reserve(kChunkRows * kColumns);
    size_t i = 0;
    for (; i + kChunkRows <= order.size(); i += kChunkRows) {
      params.clear();
      for (size_t j = i; j < i + kChunkRows; ++j) BindRecord(*order[j], params);
      KEEL_RETURN_IF_ERROR(c.Exec(ChunkInsertSql(), params));
      count += static_cast<uint64_t>(c.ChangedRows());
    }
    for (; i < order.size(); ++i) {
      params.clear();
      BindRecord(*order[i], params);
      KEEL_RETURN_IF_ERROR(c.Exec(SingleInsertSql(), params));
      count += static_cast<uint64_t>(c.ChangedRows());
    }
    return OkStatus();
  });
  if (s.ok()) *inserted = count;
  return s;
}

void PredictionLog::ReportFailure(const Status& status, size_t records) {
  const int64_t now = clock_.NowMillis();
  if (!last_error_.ok() && SameError(status, last_error_) &&
      now - last_error_report_ms_ < kReportEveryMs) {
    unreported_failures_ += records;
    return;
  }
  std::string repeats;
  if (unreported_failures_ > 0) {
    repeats = " (" + std::to_string(unreported_failures_) +
              " more records lost to failed commits since the last report)";
  }
  std::fprintf(stderr,
               "keel: prediction log: commit of %zu records failed, records dropped: %s%s\n",
               records, status.ToString().c_str(), repeats.c_str());
  last_error_report_ms_ = now;
  unreported_failures_ = 0;
}

size_t PredictionLog::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}
uint64_t PredictionLog::written() const { return written_.load(std::memory_order_relaxed); }
uint64_t PredictionLog::dropped() const { return dropped_.load(std::memory_order_relaxed); }
uint64_t PredictionLog::failed() const { return failed_.load(std::memory_order_relaxed); }
uint64_t PredictionLog::duplicates() const { return duplicates_.load(std::memory_order_relaxed); }
uint64_t PredictionLog::sampled_out() const { return sampled_out_.load(std::memory_order_relaxed); }
uint64_t PredictionLog::commits() const { return commits_.load(std::memory_order_relaxed); }

Result<LabelResult> RecordLabels(store::Database& db, std::span<const Label> labels,
                                 int64_t now_ms) {
  std::vector<std::string> normalised;
  normalised.reserve(labels.size());
  simdjson::dom::parser parser;
  for (const Label& label : labels) {
    KEEL_ASSIGN_OR_RETURN(std::string text, NormaliseLabel(parser, label));
    normalised.push_back(std::move(text));
  }
  LabelResult result;
  if (labels.empty()) return result;
  Status s = db.Write([&](Connection& c) -> Status {
    result = LabelResult{};
    for (size_t i = 0; i < labels.size(); ++i) {
      const std::string& id = labels[i].request_id;
      bool known = false;
      KEEL_RETURN_IF_ERROR(c.Query("SELECT 1 FROM predictions WHERE request_id = ?",
                                   {Value(std::string_view(id))}, [&](const RowView&) {
                                     known = true;
                                     return OkStatus();
                                   }));
      if (!known) {
        result.unknown_ids.push_back(id);
        continue;
      }
      KEEL_RETURN_IF_ERROR(
          c.Exec("INSERT INTO labels (request_id, label, time) VALUES (?, ?, ?) "
                 "ON CONFLICT (request_id) DO UPDATE SET label = excluded.label, "
                 "time = excluded.time",
                 {Value(std::string_view(id)), Value(std::string_view(normalised[i])),
                  Value(int64_t{now_ms})}));
      ++result.matched;
    }
    return OkStatus();
  });
  if (!s.ok()) return s;
  return result;
}

Result<std::vector<LoggedPrediction>> ReadPredictions(store::Database& db,
                                                      const PredictionQuery& query) {
  std::string sql =
      "SELECT p.request_id, p.time, p.model, p.version, p.endpoint, p.input, p.output, "
      "p.latency_us, l.label, l.time";
  std::vector<Value> params;
  KEEL_RETURN_IF_ERROR(BuildFilter(query, &sql, &params));
  sql += query.newest ? " ORDER BY p.time DESC, p.request_id DESC LIMIT ?"
                      : " ORDER BY p.time, p.request_id LIMIT ?";
  const uint64_t max_limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  params.emplace_back(static_cast<int64_t>(std::min<uint64_t>(query.limit, max_limit)));
  std::vector<LoggedPrediction> out;
  KEEL_RETURN_IF_ERROR(db.Read([&](Connection& c) {
    out.clear();
    return c.Query(sql, params, [&](const RowView& row) {
      LoggedPrediction p;
      p.record.request_id = row.Text(0);
      p.record.time_ms = row.Int(1);
      p.record.model = row.Text(2);
      p.record.version = row.Text(3);
      p.record.endpoint = row.Text(4);
      p.record.input_json = row.Text(5);
      p.record.output_json = row.Text(6);
      p.record.latency_us = row.Double(7);
      if (!row.IsNull(8)) {
        p.label_json = std::string(row.Text(8));
        p.label_time_ms = row.Int(9);
      }
      out.push_back(std::move(p));
      return OkStatus();
    });
  }));
  if (query.newest) std::reverse(out.begin(), out.end());
  return out;
}

Result<uint64_t> CountPredictions(store::Database& db, const PredictionQuery& query) {
  std::string sql = "SELECT COUNT(*)";
  std::vector<Value> params;
  KEEL_RETURN_IF_ERROR(BuildFilter(query, &sql, &params));
  uint64_t count = 0;
  KEEL_RETURN_IF_ERROR(db.Read([&](Connection& c) {
    return c.Query(sql, params, [&](const RowView& row) {
      count = static_cast<uint64_t>(row.Int(0));
      return OkStatus();
    });
  }));
  return count;
}

}  // namespace keel::serve
