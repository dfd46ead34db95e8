#include "keel/batch/distributed.h"

#include <nats/nats.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "keel/core/json.h"
#include "keel/core/sha256.h"
#include "keel/core/util.h"
#include "src/batch/streams.h"
#include "src/jetstream/jetstream.h"

namespace keel::batch {
namespace {

using jetstream::NatsText;

// A connection and its JetStream context; both freed on destruction.
struct Conn {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  std::string url;
  Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() {
    if (js != nullptr) jsCtx_Destroy(js);
    if (nc != nullptr) {
      natsConnection_Close(nc);
      natsConnection_Destroy(nc);
    }
  }
};

Status Connect(Conn& c, const std::string& url, const std::string& name) {
  c.url = url;
  return jetstream::Connect({.url = url, .name = name, .jetstream_wait_ms = 10000}, nullptr, &c.nc,
                            &c.js);
}

std::string TasksSubject(const QueueOptions& q, std::string_view job) {
  return q.subject_prefix + ".tasks." + std::string(job);
}
std::string ResultsSubject(const QueueOptions& q, std::string_view job) {
  return q.subject_prefix + ".results." + std::string(job);
}

// Creates the work-queue stream of tasks and the results stream when missing.
Status EnsureStreams(Conn& c, const QueueOptions& q) {
  struct Want {
    const std::string& name;
    std::string subjects;
    jsRetentionPolicy retention;
  };
  // Both are work queues: a task leaves when a worker acks it, a result when
  // its coordinator does. What no one acks (a coordinator killed mid-job)
  // expires after a day.
  const Want wants[] = {{q.stream, q.subject_prefix + ".tasks.>", js_WorkQueuePolicy},
                        {q.results_stream, q.subject_prefix + ".results.>", js_WorkQueuePolicy}};
  for (const Want& w : wants) {
    KEEL_ASSIGN_OR_RETURN(jetstream::StreamLookup found,
                          jetstream::LookupStream(c.js, w.name, c.url));
    auto check = [&]() -> Status {
      if (found.retention == js_WorkQueuePolicy) return OkStatus();
      return InvalidArgument("JetStream stream " + w.name +
                             " exists and is not a work queue (choose another name)");
    };
    if (found.exists) {
      KEEL_RETURN_IF_ERROR(check());
      continue;
    }
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = w.name.c_str();
    const char* subjects[] = {w.subjects.c_str()};
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = w.retention;
    cfg.Duplicates = int64_t{120} * 1000000000;  // 2 min duplicate window
    cfg.MaxAge = int64_t{86400} * 1000000000;    // 1 day
    KEEL_ASSIGN_OR_RETURN(const bool created, jetstream::AddStream(c.js, cfg));
    if (!created) {  // another process made one of that name meanwhile: is it a work queue?
      KEEL_ASSIGN_OR_RETURN(found, jetstream::LookupStream(c.js, w.name, c.url));
      KEEL_RETURN_IF_ERROR(check());
    }
  }
  return OkStatus();
}

bool ParseU64(std::string_view text, uint64_t& out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && p == text.data() + text.size() && !text.empty();
}

// What a partition or a result may decompress to (partitions are cut near
// the NATS max payload, at most 64 MiB, plus one record).
constexpr unsigned long long kMaxDecompressed = (1ull << 30);

std::string Compress(std::string_view text) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), text.data(), text.size(), 1);
  if (ZSTD_isError(n)) return {};
  out.resize(n);
  return out;
}

Result<std::string> Decompress(const char* data, size_t size) {
  const unsigned long long n = ZSTD_getFrameContentSize(data, size);
  if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN) {
    return InvalidArgument("body is not a zstd frame with its size");
  }
  if (n > kMaxDecompressed) {
    return InvalidArgument("body decompresses to " + std::to_string(n) + " bytes, over " +
                           std::to_string(kMaxDecompressed));
  }
  std::string out(static_cast<size_t>(n), '\0');
  const size_t got = ZSTD_decompress(out.data(), out.size(), data, size);
  if (ZSTD_isError(got) || got != n) {
    return InvalidArgument(std::string("corrupt zstd body: ") + ZSTD_getErrorName(got));
  }
  return out;
}

// Splits an input into partitions at record boundaries, following the
// rules of data/csv.h: records end with LF, CRLF or a lone CR outside quoted
// fields; quoted fields may hold line ends and doubled quotes; a UTF-8
// byte-order mark at the start is not text; empty lines are not records (they
// stay in the text, so line numbers hold). JSON Lines records are lines
// (LF-terminated, as JsonLinesSource reads them) with non-blank text. Lines
// are counted as CsvReader counts them (CRLF is one line end).
class Splitter {
 public:
  Splitter(std::istream& in, bool csv, Sha256& sha, std::string name)
      : in_(in), csv_(csv), sha_(sha), name_(std::move(name)) {}

  // CSV: reads the header record (its text, line end included).
  Status ReadHeader(std::string& header, uint64_t& header_lines) {
    header.clear();
    header_lines = 0;
    Part part;
    const bool read = NextRecords(1, SIZE_MAX, part);
    KEEL_RETURN_IF_ERROR(error_);
    if (!read || part.records == 0) return InvalidArgument(name_ + ": no header row");
    header = std::move(part.text);
    header_lines = lines_;
    return OkStatus();
  }

  struct Part {
    std::string text;
    uint64_t records = 0;
    uint64_t first_line = 0;  // physical lines before the part's text
  };
  // Reads up to max_records records into a new part, stopping at the first
  // record boundary at or after max_bytes; false at the end of the input
  // with nothing read, or on an error (error() says which).
  bool NextRecords(uint64_t max_records, size_t max_bytes, Part& part) {
    part.text.clear();
    part.records = 0;
    part.first_line = lines_;
    bool in_record = false;   // bytes of an unfinished record were taken
    size_t record_start = 0;  // offset in part.text of the unfinished record
    while (in_record || (part.records < max_records && part.text.size() < max_bytes)) {
      if (pos_ == buf_.size() && !Fill()) {
        if (state_ == kQuoted) {
          error_ = InvalidArgument(name_ + ":" + std::to_string(lines_ + 1) +
                                   ": unterminated quote starting at line " +
                                   std::to_string(quote_line_));
          return false;
        }
        if (content_) ++part.records;  // a last record without a line end
        content_ = false;
        state_ = kFieldStart;
        break;
      }
      if (!in_record) record_start = part.text.size();
      size_t i = pos_;
      bool ended = false;
      for (; i < buf_.size(); ++i) {
        const char ch = buf_[i];
        if (skip_ > 0) {  // the byte-order mark
          --skip_;
          continue;
        }
        const bool after_cr = prev_cr_;
        prev_cr_ = ch == '\r';
        if (ch == '\n' || (csv_ && ch == '\r')) {
          if (!(ch == '\n' && after_cr)) ++lines_;  // CRLF is one line end
          if (!csv_ || state_ != kQuoted) {
            ended = true;
            ++i;
            // A CR's LF belongs to the same line end.
            if (ch == '\r' && i < buf_.size() && buf_[i] == '\n') {
              ++i;
              prev_cr_ = false;
            }
            break;
          }
          continue;
        }
        if (!csv_) {
          if (ch != ' ' && ch != '\t' && ch != '\r') content_ = true;
          continue;
        }
        content_ = true;
        switch (state_) {
          case kFieldStart:
          case kQuoteInQuoted:
            if (ch == '"' && state_ == kFieldStart) quote_line_ = lines_ + 1;
            state_ = ch == '"' ? kQuoted : ch == ',' ? kFieldStart : kUnquoted;
            break;
          case kUnquoted:
            if (ch == ',') state_ = kFieldStart;
            break;
          case kQuoted:
            if (ch == '"') state_ = kQuoteInQuoted;
            break;
        }
      }
      part.text.append(buf_, pos_, i - pos_);
      pos_ = i;
      in_record = !ended;
      if (ended) {
        if (content_) ++part.records;
        content_ = false;
        state_ = kFieldStart;
      } else if (part.text.size() - record_start > kMaxRecordBytes) {
        error_ =
            ResourceExhausted(name_ + ":" + std::to_string(lines_ + 1) + ": a record over " +
                              std::to_string(kMaxRecordBytes) + " bytes (an unterminated quote?)");
        return false;
      }
    }
    return !part.text.empty();
  }

  const Status& error() const { return error_; }
  uint64_t bytes() const { return bytes_; }
  uint64_t lines() const { return lines_; }

 private:
  // As CsvReaderOptions::max_record_bytes.
  static constexpr size_t kMaxRecordBytes = size_t{64} << 20;

  bool Fill() {
    if (eof_) return false;
    buf_.resize(1 << 20);
    in_.read(buf_.data(), static_cast<std::streamsize>(buf_.size()));
    const auto n = static_cast<size_t>(in_.gcount());
    buf_.resize(n);
    pos_ = 0;
    if (n < (1u << 20)) eof_ = true;
    if (n == 0) return false;
    if (bytes_ == 0 && csv_ && n >= 3 && buf_.compare(0, 3, "\xEF\xBB\xBF") == 0) skip_ = 3;
    sha_.Update(buf_);
    bytes_ += n;
    return true;
  }
  enum State { kFieldStart, kUnquoted, kQuoted, kQuoteInQuoted };
  std::istream& in_;
  bool csv_;
  Sha256& sha_;
  std::string name_;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  State state_ = kFieldStart;
  bool content_ = false;     // the current record has text
  bool prev_cr_ = false;     // the last byte scanned was a CR
  int skip_ = 0;             // bytes of a byte-order mark still to pass
  uint64_t quote_line_ = 0;  // where the open quoted field started
  uint64_t lines_ = 0;
  uint64_t bytes_ = 0;
  Status error_ = OkStatus();
};

// A result the coordinator holds until its turn to be written.
struct PartResult {
  std::string body;  // compressed
  uint64_t header_bytes = 0, output_bytes = 0, rows_in = 0, rows_out = 0, rejected = 0;
};

// The coordinator's pull consumer on the job's results; deleted at the end.
class ResultConsumer {
 public:
  ~ResultConsumer() { Close(); }
  // Unbinds and deletes the consumer (workers then drop the job's tasks).
  void Close() {
    if (sub_ != nullptr) {
      natsSubscription_Unsubscribe(sub_);
      natsSubscription_Destroy(sub_);
      sub_ = nullptr;
    }
    if (!name_.empty()) {
      jsErrCode jerr = static_cast<jsErrCode>(0);
      (void)js_DeleteConsumer(c_->js, stream_.c_str(), name_.c_str(), nullptr, &jerr);
      name_.clear();
    }
  }
  Status Open(Conn& c, const std::string& stream, const std::string& subject,
              const std::string& name) {
    c_ = &c;
    stream_ = stream;
    jsConsumerConfig cfg;
    jsConsumerConfig_Init(&cfg);
    cfg.Durable = name.c_str();
    cfg.Description = "keel batch coordinator";
    cfg.DeliverPolicy = js_DeliverAll;
    cfg.AckPolicy = js_AckExplicit;
    cfg.FilterSubject = subject.c_str();
    cfg.AckWait = int64_t{60} * 1000000000;
    // A coordinator that dies leaves its consumer; the server drops it after
    // 5 minutes without a fetch, and workers then drop the job's tasks.
    cfg.InactiveThreshold = int64_t{300} * 1000000000;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_AddConsumer(nullptr, c.js, stream.c_str(), &cfg, nullptr, &jerr);
    if (s != NATS_OK) return Unavailable("cannot create the results consumer: " + NatsText(s));
    name_ = name;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream.c_str();
    so.Consumer = name.c_str();
    s = js_PullSubscribe(&sub_, c.js, subject.c_str(), name.c_str(), nullptr, &so, &jerr);
    if (s != NATS_OK) {
      sub_ = nullptr;
      return Unavailable("cannot bind to the results consumer: " + NatsText(s));
    }
    return OkStatus();
  }
  natsSubscription* sub() { return sub_; }

 private:
  Conn* c_ = nullptr;
  std::string stream_, name_;
  natsSubscription* sub_ = nullptr;
};

void PurgeSubject(Conn& c, const std::string& stream, const std::string& subject) {
  jsOptions o;
  jsOptions_Init(&o);
  o.Stream.Purge.Subject = subject.c_str();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  (void)js_PurgeStream(c.js, stream.c_str(), &o, &jerr);
}

std::string OptionsJson(const BatchOptions& o, const std::string& name) {
  std::string j = "{\"input\":\"";
  AppendJsonEscaped(j, name);
  j += "\",\"id_column\":\"";
  AppendJsonEscaped(j, o.id_column);
  j += "\",\"keep_columns\":[";
  for (size_t i = 0; i < o.keep_columns.size(); ++i) {
    if (i) j += ',';
    j += '"';
    AppendJsonEscaped(j, o.keep_columns[i]);
    j += '"';
  }
  j += "],\"chunk_rows\":" + std::to_string(o.chunk_rows) + "}";
  return j;
}

bool IsJsonLinesPath(std::string_view path) {
  const std::string_view p = internal::WithoutCodecExtension(path);
  return p.ends_with(".jsonl") || p.ends_with(".ndjson");
}

// Checks a CSV header against the model and the copied columns, as the
// workers will, before anything is published.
Status CheckHeader(const model::LoadedModel& model, const BatchOptions& options,
                   const std::string& header) {
  BatchOptions probe = options;
  probe.max_rejects = UINT64_MAX;
  probe.on_scored = nullptr;
  probe.progress = nullptr;
  probe.format = InputFormat::kCsv;
  auto scored = ScoreText(model, header, probe);
  if (!scored.ok()) return scored.status();
  if (scored->summary.rows_in != 0) return Internal("the header row was read as data");
  return OkStatus();
}

// "line N: reason" from the first "line,reason" CSV row of `rejects`.
std::string FirstReject(std::string_view rejects) {
  const size_t comma = rejects.find(',');
  if (comma == std::string_view::npos) return std::string(rejects.substr(0, rejects.find('\n')));
  std::string reason;
  size_t i = comma + 1;
  if (i < rejects.size() && rejects[i] == '"') {
    for (++i; i < rejects.size(); ++i) {
      if (rejects[i] == '"') {
        if (i + 1 < rejects.size() && rejects[i + 1] == '"') {
          reason += '"';
          ++i;
          continue;
        }
        break;
      }
      reason += rejects[i];
    }
  } else {
    reason = rejects.substr(i, rejects.find('\n', i) - i);
  }
  return "line " + std::string(rejects.substr(0, comma)) + ": " + reason;
}

class Coordinator {
 public:
  Coordinator(const model::LoadedModel& model, const std::string& model_ref,
              const BatchOptions& options, const DistributedOptions& d)
      : model_(model), ref_(model_ref), o_(options), d_(d), q_(d.queue) {}

  Result<DistributedSummary> Run() {
    const auto start = std::chrono::steady_clock::now();
    if (o_.output.empty() || o_.output == "-") {
      return InvalidArgument("a distributed job writes a file: give --output a path");
    }
    if (d_.partition_rows == 0 || d_.window == 0) {
      return InvalidArgument("partition_rows and window must be positive");
    }
    summary_.job = RandomHex(8);
    job_ = summary_.job;
    KEEL_RETURN_IF_ERROR(Connect(conn_, q_.nats_url, "keel batch coordinator"));
    KEEL_RETURN_IF_ERROR(EnsureStreams(conn_, q_));
    max_payload_ = static_cast<size_t>(natsConnection_GetMaxPayload(conn_.nc));
    KEEL_RETURN_IF_ERROR(
        results_.Open(conn_, q_.results_stream, ResultsSubject(q_, job_), "keel-batch-" + job_));
    Status st = Drive();
    // Whatever the outcome, the job's messages leave the streams. Results a
    // worker publishes after this (a partition it was scoring when the job
    // failed) are dropped after a day.
    results_.Close();
    PurgeSubject(conn_, q_.stream, TasksSubject(q_, job_));
    PurgeSubject(conn_, q_.results_stream, ResultsSubject(q_, job_));
    if (!st.ok()) return st;
    summary_.batch.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return summary_;
  }

 private:
  Status Drive() {
    KEEL_ASSIGN_OR_RETURN(std::unique_ptr<internal::InputStream> input,
                          internal::InputStream::Open(o_.input));
    const std::string name = o_.input == "-" ? "stdin" : o_.input;
    const bool json_lines = o_.format == InputFormat::kJsonLines ||
                            (o_.format == InputFormat::kByExtension && IsJsonLinesPath(o_.input));
    Sha256 sha;
    Splitter split(input->stream(), !json_lines, sha, name);
    auto input_error = [&](Status other) -> Status {
      if (std::string why = input->error(); !why.empty()) return InvalidArgument(name + ": " + why);
      return other;
    };
    std::string header;
    uint64_t header_lines = 0;
    if (!json_lines) {
      if (Status st = split.ReadHeader(header, header_lines); !st.ok()) return input_error(st);
      BatchOptions named = o_;
      named.input = name;
      if (Status st = CheckHeader(model_, named, header); !st.ok()) return input_error(st);
    }
    // Output: a temporary file renamed into place once complete.
    const std::string tmp = o_.output + ".tmp-" + RandomHex(4);
    struct TmpGuard {
      std::string path;
      bool keep = false;
      ~TmpGuard() {
        std::error_code ec;
        if (!keep) std::filesystem::remove(path, ec);
      }
    } guard{tmp};
    KEEL_ASSIGN_OR_RETURN(out_, internal::OutputSink::Create(tmp, internal::CodecOf(o_.output)));
    reject_path_ = o_.reject_file.empty() ? o_.output + ".rejects.csv" : o_.reject_file;

    // By default a partition's text is at most about the max payload, so its
    // compressed form fits it whatever the data.
    const size_t byte_cap = d_.partition_bytes > 0 ? d_.partition_bytes
                            : max_payload_ > 12288 ? max_payload_ - 8192
                                                   : 4096;
    const std::string options_json = OptionsJson(o_, name);
    const std::string format = json_lines ? "jsonl" : "csv";
    bool input_done = false;
    auto last_progress = std::chrono::steady_clock::now();
    Splitter::Part part;
    while (!input_done || next_write_ < Published()) {
      if (o_.cancel != nullptr && o_.cancel->load()) {
        return Unavailable("interrupted after " + std::to_string(next_write_) + " partitions");
      }
      // Publish while the window has room.
      while (!input_done && Published() < next_write_ + d_.window) {
        if (!split.NextRecords(d_.partition_rows, byte_cap, part)) {
          KEEL_RETURN_IF_ERROR(input_error(split.error()));
          input_done = true;
          break;
        }
        if (part.records == 0) continue;  // blank lines only
        std::string text = json_lines ? std::move(part.text) : header + part.text;
        std::string body = Compress(text);
        if (body.empty()) return Internal("zstd compression failed");
        if (body.size() + 4096 > max_payload_) {
          return InvalidArgument(
              "partition " + std::to_string(Published()) + " is " + std::to_string(body.size()) +
              " bytes compressed, over the NATS server's max payload of " +
              std::to_string(max_payload_) + "; use a smaller --partition-bytes");
        }
        const uint64_t offset = json_lines ? part.first_line : part.first_line - header_lines;
        KEEL_RETURN_IF_ERROR(
            Publish(body, Published(), offset, part.records, format, options_json));
        expected_rows_.push_back(part.records);
      }
      // Collect results.
      KEEL_ASSIGN_OR_RETURN(bool progressed, Collect());
      const auto now = std::chrono::steady_clock::now();
      if (progressed) {
        last_progress = now;
        if (d_.progress) d_.progress(next_write_, Published(), input_done, summary_.batch.rows_in);
      } else if (now - last_progress > d_.stall_timeout) {
        return Unavailable(
            "no partition finished in " +
            std::to_string(
                std::chrono::duration_cast<std::chrono::seconds>(d_.stall_timeout).count()) +
            " s (" + std::to_string(next_write_) + " of " + std::to_string(Published()) +
            " published partitions done); are `keel worker` processes running against " +
            q_.nats_url + "?" +
            (last_fetch_error_.empty() ? "" : " (last: " + last_fetch_error_ + ")"));
      }
    }
    KEEL_RETURN_IF_ERROR(input_error(OkStatus()));
    if (next_write_ == 0) {
      // No records: the output is the header alone, as ScoreFile writes it.
      KEEL_ASSIGN_OR_RETURN(ScoredText empty, ScoreText(model_, header, HeaderProbe(json_lines)));
      KEEL_RETURN_IF_ERROR(out_->Write(empty.header));
    }
    // Completeness: every partition written, each with the records sent.
    uint64_t expected = 0;
    for (uint64_t r : expected_rows_) expected += r;
    if (summary_.batch.rows_in != expected || next_write_ != Published()) {
      return Internal("incomplete output: " + std::to_string(summary_.batch.rows_in) + " of " +
                      std::to_string(expected) + " rows");
    }
    if (rejects_file_.is_open()) {
      rejects_file_.close();
      if (!rejects_file_) return Unavailable("cannot write the reject file " + reject_path_);
      summary_.batch.reject_file = reject_path_;
    }
    KEEL_RETURN_IF_ERROR(out_->Close());
    std::error_code ec;
    std::filesystem::rename(tmp, o_.output, ec);
    if (ec) return Unavailable("cannot rename " + tmp + " to " + o_.output + ": " + ec.message());
    guard.keep = true;
    summary_.batch.input_sha256 = sha.HexDigest();
    summary_.batch.input_bytes = split.bytes();
    summary_.partitions = Published();
    return OkStatus();
  }

  BatchOptions HeaderProbe(bool json_lines) const {
    BatchOptions probe = o_;
    probe.format = json_lines ? InputFormat::kJsonLines : InputFormat::kCsv;
    probe.on_scored = nullptr;
    return probe;
  }

  Status Publish(const std::string& body, uint64_t partition, uint64_t offset, uint64_t rows,
                 const std::string& format, const std::string& options_json) {
    const std::string subject = TasksSubject(q_, job_);
    natsMsg* msg = nullptr;
    natsStatus s =
        natsMsg_Create(&msg, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size()));
    const std::string p = std::to_string(partition);
    const std::string msg_id = job_ + ":" + p;
    const std::string off = std::to_string(offset), nrows = std::to_string(rows);
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Keel-Job", job_.c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Keel-Partition", p.c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Keel-Model", ref_.c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Keel-Format", format.c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Keel-Line-Offset", off.c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Keel-Rows", nrows.c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Keel-Options", options_json.c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Nats-Msg-Id", msg_id.c_str());
    // A publish that times out is sent again: the Nats-Msg-Id makes it once.
    for (int attempt = 0; s == NATS_OK && attempt < 5; ++attempt) {
      jsPubAck* ack = nullptr;
      jsErrCode jerr = static_cast<jsErrCode>(0);
      s = js_PublishMsg(&ack, conn_.js, msg, nullptr, &jerr);
      if (ack != nullptr) jsPubAck_Destroy(ack);
      if (s == NATS_OK) break;
      if (s != NATS_TIMEOUT && s != NATS_NO_RESPONDERS) break;
      if (attempt < 4) s = NATS_OK;
      std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
    }
    natsMsg_Destroy(msg);
    if (s != NATS_OK) {
      return Unavailable("cannot publish partition " + p + " to " + subject + ": " + NatsText(s));
    }
    return OkStatus();
  }

  // Fetches what results are there (waiting up to 250 ms) and writes the
  // ones whose turn it is; true when a partition was written.
  Result<bool> Collect() {
    natsMsgList list{};
    natsStatus s = natsSubscription_Fetch(&list, results_.sub(), 64, 250, nullptr);
    if (s == NATS_TIMEOUT) return false;
    if (s != NATS_OK) {
      if (s == NATS_CONNECTION_CLOSED) {
        return Unavailable("the NATS connection closed: " + NatsText(s));
      }
      last_fetch_error_ = "fetching results: " + NatsText(s);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      return false;
    }
    last_fetch_error_.clear();
    Status st = OkStatus();
    for (int i = 0; i < list.Count; ++i) {
      natsMsg* m = list.Msgs[i];
      if (st.ok()) st = Take(m);
      natsMsg_Ack(m, nullptr);
    }
    natsMsgList_Destroy(&list);
    KEEL_RETURN_IF_ERROR(st);
    const uint64_t before = next_write_;
    while (true) {
      auto it = pending_.find(next_write_);
      if (it == pending_.end()) break;
      KEEL_RETURN_IF_ERROR(Write(next_write_, it->second));
      pending_.erase(it);
      ++next_write_;
    }
    return next_write_ > before;
  }

  Status Take(natsMsg* m) {
    uint64_t partition = 0;
    if (!ParseU64(jetstream::Header(m, "Keel-Partition"), partition) || partition >= Published()) {
      return Internal("a result names no partition of this job");
    }
    const std::string worker = jetstream::Header(m, "Keel-Worker");
    uint64_t deliveries = 0;
    if (ParseU64(jetstream::Header(m, "Keel-Deliveries"), deliveries) && deliveries > 1) {
      ++summary_.redelivered;
    }
    if (partition < next_write_ || pending_.count(partition) > 0) {
      ++summary_.duplicates;  // an error from a later copy does not matter either
      return OkStatus();
    }
    if (std::string error = jetstream::Header(m, "Keel-Error"); !error.empty()) {
      uint64_t code = 0;
      const auto status_code = ParseU64(jetstream::Header(m, "Keel-Error-Code"), code) &&
                                       code <= static_cast<uint64_t>(StatusCode::kInternal) &&
                                       code > 0
                                   ? static_cast<StatusCode>(code)
                                   : StatusCode::kInternal;
      return Status(status_code,
                    "worker " + worker + ", partition " + std::to_string(partition) + ": " + error);
    }
    PartResult r;
    if (!ParseU64(jetstream::Header(m, "Keel-Rows-In"), r.rows_in) ||
        !ParseU64(jetstream::Header(m, "Keel-Rows-Out"), r.rows_out) ||
        !ParseU64(jetstream::Header(m, "Keel-Rejected"), r.rejected) ||
        !ParseU64(jetstream::Header(m, "Keel-Header-Bytes"), r.header_bytes) ||
        !ParseU64(jetstream::Header(m, "Keel-Output-Bytes"), r.output_bytes)) {
      return Internal("the result of partition " + std::to_string(partition) + " from " + worker +
                      " lacks its counts");
    }
    if (r.rows_in != expected_rows_[partition] || r.rows_out + r.rejected != r.rows_in) {
      return Internal("the result of partition " + std::to_string(partition) + " from " + worker +
                      " has " + std::to_string(r.rows_in) + " rows in (" +
                      std::to_string(r.rows_out) + " scored, " + std::to_string(r.rejected) +
                      " rejected); " + std::to_string(expected_rows_[partition]) + " were sent");
    }
    if (!worker.empty() && std::find(summary_.workers.begin(), summary_.workers.end(), worker) ==
                               summary_.workers.end()) {
      summary_.workers.push_back(worker);
    }
    r.body.assign(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)));
    pending_.emplace(partition, std::move(r));
    return OkStatus();
  }

  Status Write(uint64_t partition, const PartResult& r) {
    KEEL_ASSIGN_OR_RETURN(std::string text, Decompress(r.body.data(), r.body.size()));
    if (r.header_bytes + r.output_bytes > text.size()) {
      return Internal("the result of partition " + std::to_string(partition) + " is short");
    }
    if (partition == 0)
      KEEL_RETURN_IF_ERROR(out_->Write(std::string_view(text).substr(0, r.header_bytes)));
    KEEL_RETURN_IF_ERROR(
        out_->Write(std::string_view(text).substr(r.header_bytes, r.output_bytes)));
    const std::string_view rejects = std::string_view(text).substr(r.header_bytes + r.output_bytes);
    if (!rejects.empty()) {
      if (first_reject_.empty()) first_reject_ = FirstReject(rejects);
      if (!rejects_file_.is_open()) {
        rejects_file_.open(reject_path_, std::ios::binary | std::ios::trunc);
        if (!rejects_file_) return InvalidArgument("cannot write the reject file " + reject_path_);
        rejects_file_ << "line,reason\n";
      }
      rejects_file_.write(rejects.data(), static_cast<std::streamsize>(rejects.size()));
    }
    summary_.batch.rows_in += r.rows_in;
    summary_.batch.rows_out += r.rows_out;
    summary_.batch.rejected += r.rejected;
    if (summary_.batch.rejected > o_.max_rejects) {
      return InvalidArgument(std::to_string(summary_.batch.rejected) +
                             " rows rejected by partition " + std::to_string(partition) +
                             " (more than --max-rejects " + std::to_string(o_.max_rejects) +
                             "); first: " + first_reject_);
    }
    return OkStatus();
  }

  uint64_t Published() const { return expected_rows_.size(); }

  const model::LoadedModel& model_;
  const std::string& ref_;
  const BatchOptions& o_;
  const DistributedOptions& d_;
  const QueueOptions& q_;
  Conn conn_;
  ResultConsumer results_;
  std::string job_;
  size_t max_payload_ = 1 << 20;
  DistributedSummary summary_;
  std::unique_ptr<internal::OutputSink> out_;
  std::string reject_path_;
  std::ofstream rejects_file_;
  std::string first_reject_;
  std::string last_fetch_error_;  // the last failed fetch since a good one
  std::vector<uint64_t>
      expected_rows_;  // one entry per published partition  // records sent per partition
  std::map<uint64_t, PartResult> pending_;
  uint64_t next_write_ = 0;
};

}  // namespace

Result<DistributedSummary> ScoreDistributed(const model::LoadedModel& model,
                                            const std::string& model_ref,
                                            const BatchOptions& options,
                                            const DistributedOptions& distributed) {
  Coordinator c(model, model_ref, options, distributed);
  return c.Run();
}

// ----------------------------------------------------------------------------
// Worker

namespace {

// A task's partition scored this many times without a result is answered
// with an error (a worker crashing on it would otherwise loop forever).
constexpr uint64_t kMaxDeliveries = 10;

// Calls `beat` every `every` until Stop() (or destruction).
class Heartbeat {
 public:
  Heartbeat(std::chrono::milliseconds every, std::function<void()> beat)
      : thread_([this, every, beat = std::move(beat)] {
          std::unique_lock<std::mutex> lock(mu_);
          while (!cv_.wait_for(lock, every, [this] { return done_; })) beat();
        }) {}
  ~Heartbeat() { Stop(); }
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace

struct BatchWorker::Impl {
  ModelLoader loader;
  WorkerOptions options;
  Conn conn;
  natsSubscription* sub = nullptr;
  // Loaded models by reference (a worker serves few; the oldest is dropped).
  std::vector<std::pair<std::string, std::shared_ptr<const model::LoadedModel>>> models;
  struct JobState {
    bool alive = true;
    std::chrono::steady_clock::time_point checked;
  };
  std::map<std::string, JobState> jobs;  // Run thread only
  mutable std::mutex stats_mu;
  WorkerStats stats;  // guarded by stats_mu
  std::mutex ack_mu;  // guards acks and in-progress marks of the current task

  ~Impl() {
    if (sub != nullptr) {
      natsSubscription_Unsubscribe(sub);
      natsSubscription_Destroy(sub);
    }
  }

  Status EnsureConsumer() {
    const QueueOptions& q = options.queue;
    const int64_t ack_wait_ns = static_cast<int64_t>(options.ack_wait.count()) * 1000000;
    const std::string filter = q.subject_prefix + ".tasks.>";
    for (int attempt = 0; attempt < 3; ++attempt) {
      jsConsumerInfo* ci = nullptr;
      jsErrCode jerr = static_cast<jsErrCode>(0);
      natsStatus s =
          js_GetConsumerInfo(&ci, conn.js, q.stream.c_str(), q.durable.c_str(), nullptr, &jerr);
      if (s == NATS_OK) {
        Status st = OkStatus();
        if (ci->Config->AckWait != ack_wait_ns) {
          jsConsumerConfig cfg = *ci->Config;
          cfg.AckWait = ack_wait_ns;
          s = js_UpdateConsumer(nullptr, conn.js, q.stream.c_str(), &cfg, nullptr, &jerr);
          if (s != NATS_OK)
            st = Unavailable("cannot update consumer " + q.durable + ": " + NatsText(s));
        }
        jsConsumerInfo_Destroy(ci);
        return st;
      }
      if (s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr) {
        return Unavailable("cannot read consumer " + q.durable + ": " + NatsText(s));
      }
      jsConsumerConfig cfg;
      jsConsumerConfig_Init(&cfg);
      cfg.Durable = q.durable.c_str();
      cfg.Description = "keel worker";
      cfg.DeliverPolicy = js_DeliverAll;
      cfg.AckPolicy = js_AckExplicit;
      cfg.AckWait = ack_wait_ns;
      cfg.MaxDeliver = -1;
      cfg.FilterSubject = filter.c_str();
      s = js_AddConsumer(nullptr, conn.js, q.stream.c_str(), &cfg, nullptr, &jerr);
      if (s == NATS_OK) return OkStatus();
      if (attempt == 2) {
        return Unavailable("cannot create consumer " + q.durable + ": " + NatsText(s));
      }
    }
    return Unavailable("cannot create consumer " + q.durable);
  }

  // False once the job's coordinator is gone (its results consumer deleted:
  // the job ended or failed, or the coordinator died 5 minutes ago). Checked
  // at most once a second per job.
  bool JobAlive(const std::string& job) {
    const auto now = std::chrono::steady_clock::now();
    auto it = jobs.find(job);
    if (it != jobs.end() && now - it->second.checked < std::chrono::seconds(1)) {
      return it->second.alive;
    }
    jsConsumerInfo* ci = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const std::string consumer = "keel-batch-" + job;
    const natsStatus s = js_GetConsumerInfo(&ci, conn.js, options.queue.results_stream.c_str(),
                                            consumer.c_str(), nullptr, &jerr);
    if (ci != nullptr) jsConsumerInfo_Destroy(ci);
    // Only a definite "not found" ends a job; other errors leave it alive.
    const bool alive = !(s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr);
    if (jobs.size() > 64) jobs.clear();
    jobs[job] = JobState{alive, now};
    return alive;
  }

  // The shared consumer's ack wait now (this worker's own when unreadable).
  std::chrono::milliseconds EffectiveAckWait() {
    jsConsumerInfo* ci = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    std::chrono::milliseconds wait = options.ack_wait;
    if (js_GetConsumerInfo(&ci, conn.js, options.queue.stream.c_str(),
                           options.queue.durable.c_str(), nullptr, &jerr) == NATS_OK) {
      wait = std::min(wait, std::chrono::milliseconds(ci->Config->AckWait / 1000000));
      jsConsumerInfo_Destroy(ci);
    }
    return wait;
  }

  Result<std::shared_ptr<const model::LoadedModel>> Model(const std::string& ref) {
    for (auto& [r, m] : models) {
      if (r == ref) return m;
    }
    KEEL_ASSIGN_OR_RETURN(std::shared_ptr<const model::LoadedModel> m, loader(ref));
    if (models.size() >= 4) models.erase(models.begin());
    models.emplace_back(ref, m);
    return m;
  }

  // Publishes a partition's result (body and headers) to the job's results subject.
  Status PublishResult(const std::string& job, const std::string& partition,
                       const std::string& body,
                       const std::vector<std::pair<const char*, std::string>>& headers) {
    const std::string subject = ResultsSubject(options.queue, job);
    natsMsg* msg = nullptr;
    natsStatus s =
        natsMsg_Create(&msg, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size()));
    const std::string msg_id = job + ":" + partition + ":result";
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Keel-Job", job.c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Keel-Partition", partition.c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Keel-Worker", options.name.c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Nats-Msg-Id", msg_id.c_str());
    for (const auto& [k, v] : headers) {
      if (s == NATS_OK) s = natsMsgHeader_Set(msg, k, v.c_str());
    }
    jsErrCode jerr = static_cast<jsErrCode>(0);
    jsPubAck* ack = nullptr;
    if (s == NATS_OK) s = js_PublishMsg(&ack, conn.js, msg, nullptr, &jerr);
    if (ack != nullptr) jsPubAck_Destroy(ack);
    natsMsg_Destroy(msg);
    if (s != NATS_OK) return Unavailable("cannot publish the result: " + NatsText(s));
    return OkStatus();
  }

  // Scores one task; the result is published before the task is acked.
  void Handle(natsMsg* task, const OnPartition& on_partition) {
    const auto start = std::chrono::steady_clock::now();
    const std::string job = jetstream::Header(task, "Keel-Job");
    const std::string partition = jetstream::Header(task, "Keel-Partition");
    uint64_t deliveries = 1;
    if (jsMsgMetaData* meta = nullptr; natsMsg_GetMetaData(&meta, task) == NATS_OK) {
      deliveries = meta->NumDelivered;
      jsMsgMetaData_Destroy(meta);
    }
    if (deliveries > 1) {
      std::lock_guard<std::mutex> lock(stats_mu);
      ++stats.redelivered;
    }
    uint64_t part_index = 0;
    if (job.empty() || !ParseU64(partition, part_index)) {
      std::lock_guard<std::mutex> lock(ack_mu);
      natsMsg_Term(task, nullptr);  // not a keel task
      return;
    }
    if (!JobAlive(job)) {
      std::lock_guard<std::mutex> lock(ack_mu);
      natsMsg_Term(task, nullptr);  // its coordinator is gone
      std::lock_guard<std::mutex> stats_lock(stats_mu);
      ++stats.dropped;
      return;
    }
    // In-progress marks while this task is held, at a third of the ack wait
    // the consumer has now (another worker may have changed it).
    const auto every = std::max(std::chrono::milliseconds(100), EffectiveAckWait() / 3);
    Heartbeat beat(every, [&] {
      std::lock_guard<std::mutex> ack_lock(ack_mu);
      natsMsg_InProgress(task, nullptr);
    });
    Status error = OkStatus();
    bool retry = false;
    uint64_t rows = 0;
    std::string body;
    std::vector<std::pair<const char*, std::string>> headers;
    headers.emplace_back("Keel-Deliveries", std::to_string(deliveries));
    auto scored = [&]() -> Result<ScoredText> {
      if (deliveries > kMaxDeliveries) {
        return Internal("delivered " + std::to_string(deliveries) +
                        " times without a result (do workers crash on it?)");
      }
      KEEL_ASSIGN_OR_RETURN(std::shared_ptr<const model::LoadedModel> model,
                            Model(jetstream::Header(task, "Keel-Model")));
      KEEL_ASSIGN_OR_RETURN(
          std::string text,
          Decompress(natsMsg_GetData(task), static_cast<size_t>(natsMsg_GetDataLength(task))));
      BatchOptions o;
      o.input = "partition " + partition;
      std::string_view input_name;
      const std::string format = jetstream::Header(task, "Keel-Format");
      o.format = format == "jsonl" ? InputFormat::kJsonLines : InputFormat::kCsv;
      if (!ParseU64(jetstream::Header(task, "Keel-Line-Offset"), o.line_offset)) {
        return InvalidArgument("the task has no Keel-Line-Offset");
      }
      o.max_rejects = UINT64_MAX;  // the coordinator applies the job's limit
      simdjson::dom::parser parser;
      simdjson::dom::element root;
      const std::string options_json = jetstream::Header(task, "Keel-Options");
      if (parser.parse(options_json).get(root) != simdjson::SUCCESS) {
        return InvalidArgument("the task's Keel-Options is not JSON");
      }
      if (root["input"].get_string().get(input_name) == simdjson::SUCCESS) o.input = input_name;
      std::string_view id;
      if (root["id_column"].get_string().get(id) == simdjson::SUCCESS) o.id_column = id;
      simdjson::dom::array keep;
      if (root["keep_columns"].get_array().get(keep) == simdjson::SUCCESS) {
        for (simdjson::dom::element k : keep) {
          std::string_view v;
          if (k.get_string().get(v) == simdjson::SUCCESS) o.keep_columns.emplace_back(v);
        }
      }
      uint64_t chunk = 0;
      if (root["chunk_rows"].get_uint64().get(chunk) == simdjson::SUCCESS && chunk > 0) {
        o.chunk_rows = static_cast<size_t>(std::min<uint64_t>(chunk, 1 << 24));
      }
      return ScoreText(*model, text, o);
    }();
    if (scored.ok()) {
      const ScoredText& s = *scored;
      rows = s.summary.rows_in;
      std::string all;
      all.reserve(s.header.size() + s.rows.size() + s.rejects.size());
      all.append(s.header).append(s.rows).append(s.rejects);
      body = Compress(all);
      headers.emplace_back("Keel-Rows-In", std::to_string(s.summary.rows_in));
      headers.emplace_back("Keel-Rows-Out", std::to_string(s.summary.rows_out));
      headers.emplace_back("Keel-Rejected", std::to_string(s.summary.rejected));
      headers.emplace_back("Keel-Header-Bytes", std::to_string(s.header.size()));
      headers.emplace_back("Keel-Output-Bytes", std::to_string(s.rows.size()));
      const size_t max_payload = static_cast<size_t>(natsConnection_GetMaxPayload(conn.nc));
      if (body.empty() || body.size() + 4096 > max_payload) {
        error = InvalidArgument("the output of the partition is " + std::to_string(body.size()) +
                                " bytes compressed, over the NATS max payload of " +
                                std::to_string(max_payload) + "; use a smaller --partition-bytes");
      }
    } else {
      error = scored.status();
      retry = error.code() == StatusCode::kUnavailable;
    }
    Status published = OkStatus();
    if (!retry) {
      if (!error.ok()) {
        body.clear();
        std::string message = error.message();
        for (char& c : message) {
          if (c == '\r' || c == '\n') c = ' ';  // header values are one line
        }
        headers.emplace_back("Keel-Error", message);
        headers.emplace_back("Keel-Error-Code", std::to_string(static_cast<int>(error.code())));
      }
      published = PublishResult(job, partition, body, headers);
    }
    beat.Stop();
    {
      std::lock_guard<std::mutex> lock(ack_mu);
      if (retry || !published.ok()) {
        natsMsg_NakWithDelay(task, 1000, nullptr);
      } else {
        jsErrCode jerr = static_cast<jsErrCode>(0);
        natsMsg_AckSync(task, nullptr, &jerr);
      }
    }
    {
      std::lock_guard<std::mutex> lock(stats_mu);
      if (!retry && published.ok()) {
        if (error.ok()) {
          ++stats.partitions;
          stats.rows += rows;
        } else {
          ++stats.failed;
        }
      }
    }
    if (on_partition) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      on_partition(job, part_index, rows, seconds, !published.ok() ? published : error);
    }
  }
};

BatchWorker::BatchWorker(ModelLoader loader, WorkerOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->loader = std::move(loader);
  impl_->options = std::move(options);
  if (impl_->options.name.empty()) {
    char host[256] = {0};
    if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
    impl_->options.name = std::string(host) + ":" + std::to_string(::getpid());
  }
}

BatchWorker::~BatchWorker() = default;

Status BatchWorker::Start() {
  Impl& w = *impl_;
  if (w.options.ack_wait < std::chrono::seconds(1)) {
    return InvalidArgument("ack_wait must be at least 1 s");
  }
  KEEL_RETURN_IF_ERROR(Connect(w.conn, w.options.queue.nats_url, "keel worker " + w.options.name));
  KEEL_RETURN_IF_ERROR(EnsureStreams(w.conn, w.options.queue));
  KEEL_RETURN_IF_ERROR(w.EnsureConsumer());
  const QueueOptions& q = w.options.queue;
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = q.stream.c_str();
  so.Consumer = q.durable.c_str();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const std::string filter = q.subject_prefix + ".tasks.>";
  natsStatus s =
      js_PullSubscribe(&w.sub, w.conn.js, filter.c_str(), q.durable.c_str(), nullptr, &so, &jerr);
  if (s != NATS_OK) {
    w.sub = nullptr;
    return Unavailable("cannot bind to consumer " + q.durable + ": " + NatsText(s));
  }
  return OkStatus();
}

Status BatchWorker::Run(const std::atomic<bool>& stop, const OnPartition& on_partition) {
  Impl& w = *impl_;
  if (w.sub == nullptr) return FailedPrecondition("BatchWorker::Run before Start");
  while (!stop.load()) {
    natsMsgList list{};
    natsStatus s = natsSubscription_Fetch(&list, w.sub, 1, 500, nullptr);
    if (s == NATS_TIMEOUT) continue;
    if (s == NATS_CONNECTION_CLOSED || s == NATS_INVALID_SUBSCRIPTION) {
      return Unavailable("the NATS connection closed: " + NatsText(s));
    }
    if (s != NATS_OK) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    for (int i = 0; i < list.Count; ++i) w.Handle(list.Msgs[i], on_partition);
    natsMsgList_Destroy(&list);
  }
  return OkStatus();
}

WorkerStats BatchWorker::stats() const {
  std::lock_guard<std::mutex> lock(impl_->stats_mu);
  return impl_->stats;
}

const WorkerOptions& BatchWorker::options() const { return impl_->options; }

}  // namespace keel::batch
