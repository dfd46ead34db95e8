#include "keel/batch/batch.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>

#include "keel/core/json.h"
#include "keel/core/sha256.h"
#include "keel/core/util.h"
#include "keel/data/csv.h"
#include "src/batch/streams.h"

namespace keel::batch {
namespace {

// Appends one CSV field, quoted when it holds a delimiter, quote or line break.
void AppendField(std::string& out, std::string_view v) {
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) {
    out.append(v);
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

void AppendFloat(std::string& out, float v) {
  if (std::isnan(v)) return;  // an empty field
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  (void)ec;
  out.append(buf, end);
}

// Passes the bytes of `src` through, hashing and counting them.
class DigestBuf : public std::streambuf {
 public:
  explicit DigestBuf(std::streambuf* src) : src_(src), buf_(1 << 16) {}
  std::string HexDigest() { return sha_.HexDigest(); }
  uint64_t bytes() const { return bytes_; }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    const std::streamsize n = src_->sgetn(buf_.data(), static_cast<std::streamsize>(buf_.size()));
    if (n <= 0) return traits_type::eof();
    sha_.Update({buf_.data(), static_cast<size_t>(n)});
    bytes_ += static_cast<uint64_t>(n);
    setg(buf_.data(), buf_.data(), buf_.data() + n);
    return traits_type::to_int_type(*gptr());
  }

 private:
  std::streambuf* src_;
  std::vector<char> buf_;
  Sha256 sha_;
  uint64_t bytes_ = 0;
};

// Reads a string in place.
class MemoryBuf : public std::streambuf {
 public:
  explicit MemoryBuf(std::string_view text) {
    char* begin = const_cast<char*>(text.data());  // only read: get area
    setg(begin, begin, begin + text.size());
  }
  uint64_t consumed() const { return static_cast<uint64_t>(gptr() - eback()); }
};

// Appends a text field as a JSON value: a number when it is a JSON number
// token, else a string.
void AppendJsonField(std::string& out, std::string_view v) {
  if (IsJsonNumber(v)) {
    out.append(v);
    return;
  }
  out += '"';
  AppendJsonEscaped(out, v);
  out += '"';
}

// Where scored rows go: a temporary file (compressed by the final name's
// extension) renamed into place on Commit, or stdout.
class Output {
 public:
  static Result<std::unique_ptr<Output>> Open(const std::string& path) {
    std::unique_ptr<Output> o(new Output());
    if (path == "-") {
      o->sink_ = internal::OutputSink::Stdout();
      return o;
    }
    o->final_ = path;
    o->tmp_ = path + ".tmp-" + RandomHex(4);
    KEEL_ASSIGN_OR_RETURN(o->sink_, internal::OutputSink::Create(o->tmp_, internal::CodecOf(path)));
    return o;
  }
  ~Output() {
    if (!tmp_.empty() && !committed_) {
      sink_.reset();
      std::error_code ec;
      std::filesystem::remove(tmp_, ec);
    }
  }
  Status Write(std::string_view text) { return sink_->Write(text); }
  Status Commit() {
    KEEL_RETURN_IF_ERROR(sink_->Close());
    if (final_.empty()) return OkStatus();
    std::error_code ec;
    std::filesystem::rename(tmp_, final_, ec);
    if (ec) return Unavailable("cannot rename " + tmp_ + " to " + final_ + ": " + ec.message());
    committed_ = true;
    return OkStatus();
  }

 private:
  Output() = default;
  std::string final_, tmp_;
  std::unique_ptr<internal::OutputSink> sink_;
  bool committed_ = false;
};

// Rejected rows: "line,reason" CSV in a file opened at the first reject, or
// stderr lines when the scores go to stdout.
class Rejects {
 public:
  // To the file `path` (stderr when empty), or with `memory` set, appended
  // there as "line,reason" rows without a header.
  explicit Rejects(std::string path, std::string* memory = nullptr)
      : path_(std::move(path)), memory_(memory) {}
  Status Add(uint64_t line, std::string_view reason) {
    ++count_;
    if (first_.empty()) first_ = "line " + std::to_string(line) + ": " + std::string(reason);
    if (memory_ != nullptr) {
      *memory_ += std::to_string(line);
      *memory_ += ',';
      AppendField(*memory_, reason);
      *memory_ += '\n';
      return OkStatus();
    }
    if (path_.empty()) {
      std::cerr << "rejected line " << line << ": " << reason << "\n";
      return OkStatus();
    }
    if (!file_.is_open()) {
      file_.open(path_, std::ios::binary | std::ios::trunc);
      if (!file_) return InvalidArgument("cannot write the reject file " + path_);
      file_ << "line,reason\n";
    }
    std::string row = std::to_string(line) + ",";
    AppendField(row, reason);
    row += '\n';
    file_ << row;
    return file_ ? OkStatus() : Unavailable("cannot write the reject file " + path_);
  }
  uint64_t count() const { return count_; }
  const std::string& first() const { return first_; }
  std::string where() const { return file_.is_open() ? path_ : std::string(); }

 private:
  std::string path_;
  std::string* memory_;
  std::ofstream file_;
  uint64_t count_ = 0;
  std::string first_;
};

Result<size_t> FieldOf(const std::vector<std::string>& header, const std::string& name,
                       std::string_view role) {
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == name) return i;
  }
  return InvalidArgument(std::string(role) + " column '" + name + "' is not in the CSV header");
}

// One input row at a time: encoded into the model's vector, with the copied
// columns' text and, when `raw` is given, the record as a JSON object. A row
// that cannot be encoded is reported in *reject.
class RowSource {
 public:
  virtual ~RowSource() = default;
  // False at the end of the input.
  virtual Result<bool> Next(float* x, std::string* copied, std::string* raw, Status* reject) = 0;
  virtual uint64_t line() const = 0;
};

class CsvSource : public RowSource {
 public:
  static Result<std::unique_ptr<RowSource>> Open(std::istream& in, const std::string& name,
                                                 const data::FeaturePipeline& pipeline,
                                                 const std::vector<std::string>& copied_names) {
    std::unique_ptr<CsvSource> src(new CsvSource(pipeline));
    data::CsvReaderOptions reader_options;
    reader_options.allow_ragged = true;  // a short or long row is rejected, not fatal
    KEEL_ASSIGN_OR_RETURN(src->reader_, data::CsvReader::FromStream(in, name, reader_options));
    const std::vector<std::string>& header = src->reader_->header();
    if (header.empty()) return InvalidArgument(name + ": no header row");
    auto mapped = pipeline.MapCsvHeader(header);
    if (!mapped.ok()) return mapped.status().WithContext(name);
    src->map_ = std::move(*mapped);
    for (size_t i = 0; i < copied_names.size(); ++i) {
      KEEL_ASSIGN_OR_RETURN(size_t f, FieldOf(header, copied_names[i], "copied"));
      src->copied_.push_back(f);
    }
    return std::unique_ptr<RowSource>(std::move(src));
  }
  Result<bool> Next(float* x, std::string* copied, std::string* raw, Status* reject) override {
    KEEL_ASSIGN_OR_RETURN(bool more, reader_->Next());
    if (!more) return false;
    const auto& fields = reader_->fields();
    *reject = pipeline_.EncodeCsvFields(fields, map_, x);
    if (!reject->ok()) return true;
    for (size_t c = 0; c < copied_.size(); ++c) copied[c].assign(fields[copied_[c]]);
    if (raw != nullptr) {
      const std::vector<std::string>& header = reader_->header();
      raw->assign("{");
      for (size_t f = 0; f < fields.size(); ++f) {
        if (f) *raw += ',';
        *raw += '"';
        AppendJsonEscaped(*raw, header[f]);
        *raw += "\":";
        AppendJsonField(*raw, fields[f]);
      }
      *raw += '}';
    }
    return true;
  }
  uint64_t line() const override { return reader_->line(); }

 private:
  explicit CsvSource(const data::FeaturePipeline& p) : pipeline_(p) {}
  const data::FeaturePipeline& pipeline_;
  std::unique_ptr<data::CsvReader> reader_;
  data::ColumnMap map_;
  std::vector<size_t> copied_;
};

// JSON Lines: one object per line (blank lines skipped); absent fields are
// missing values; copied columns are taken as text (strings unquoted, other
// values as JSON, absent or null empty).
class JsonLinesSource : public RowSource {
 public:
  JsonLinesSource(std::istream& in, const data::FeaturePipeline& pipeline,
                  std::vector<std::string> copied_names)
      : in_(in), pipeline_(pipeline), copied_names_(std::move(copied_names)) {}
  Result<bool> Next(float* x, std::string* copied, std::string* raw, Status* reject) override {
    do {
      if (!std::getline(in_, text_)) return false;
      ++line_;
    } while (text_.find_first_not_of(" \t\r") == std::string::npos);
    *reject = pipeline_.EncodeJsonObject(text_, x);
    if (!reject->ok()) return true;
    if (raw != nullptr) {
      const size_t begin = text_.find_first_not_of(" \t");
      const size_t end = text_.find_last_not_of(" \t\r");
      raw->assign(text_, begin, end + 1 - begin);
    }
    if (copied_names_.empty()) return true;
    simdjson::dom::element root;
    if (auto err = parser_.parse(text_).get(root); err) {
      *reject = InvalidArgument(std::string("malformed JSON: ") + simdjson::error_message(err));
      return true;
    }
    for (size_t c = 0; c < copied_names_.size(); ++c) {
      simdjson::dom::element v;
      copied[c].clear();
      if (root[copied_names_[c]].get(v) != simdjson::SUCCESS || v.is_null()) continue;
      std::string_view str;
      if (v.get_string().get(str) == simdjson::SUCCESS) {
        copied[c].assign(str);
      } else {
        copied[c] = simdjson::minify(v);
      }
    }
    return true;
  }
  uint64_t line() const override { return line_; }

 private:
  std::istream& in_;
  const data::FeaturePipeline& pipeline_;
  std::vector<std::string> copied_names_;
  simdjson::dom::parser parser_;
  std::string text_;
  uint64_t line_ = 0;
};

bool IsJsonLines(std::string_view path) {
  const std::string_view p = internal::WithoutCodecExtension(path);
  return p.ends_with(".jsonl") || p.ends_with(".ndjson");
}

// What ScoreFile and ScoreText share: the records of `in` (named `name` in
// errors) scored chunk by chunk; the output CSV, header first, goes through
// `write`, rejected rows to `rejects`.
struct CoreIo {
  std::istream& in;
  std::string name;
  bool json_lines = false;
  std::function<Status(std::string_view)> write;
  Rejects& rejects;
  // Maps an error to the input's own (a corrupt compressed input) when it has one.
  std::function<Status(Status)> input_error;
  std::function<uint64_t()> bytes_read;
  uint64_t total_bytes = 0;
};

Status ScoreCore(const model::LoadedModel& model, const BatchOptions& options, CoreIo& io,
                 BatchSummary& summary) {
  if (options.chunk_rows == 0) return InvalidArgument("chunk_rows must be positive");
  if (!(options.sample_rate >= 0 && options.sample_rate <= 1)) {
    return InvalidArgument("sample_rate must be in [0, 1]");
  }
  const data::FeaturePipeline& pipeline = model.pipeline;
  // Copied columns: the id, then the kept ones.
  std::vector<std::string> copied_names;
  if (!options.id_column.empty()) copied_names.push_back(options.id_column);
  for (const std::string& keep : options.keep_columns) copied_names.push_back(keep);
  const size_t ncopied = copied_names.size();
  std::unique_ptr<RowSource> source;
  if (io.json_lines) {
    source = std::make_unique<JsonLinesSource>(io.in, pipeline, copied_names);
  } else {
    auto opened = CsvSource::Open(io.in, io.name, pipeline, copied_names);
    if (!opened.ok()) return io.input_error(opened.status());
    source = std::move(*opened);
  }
  const uint64_t line_offset = options.line_offset;

  const size_t nf = pipeline.num_features();
  const size_t no = static_cast<size_t>(model.predictor.num_outputs());
  std::vector<std::string> output_names;
  if (no == 1) {
    output_names.push_back(model.info.output_name);
  } else {
    for (size_t j = 0; j < no; ++j) {
      output_names.push_back(
          model.info.output_name + "_" +
          (j < model.info.classes.size() ? model.info.classes[j] : std::to_string(j)));
    }
  }
  Rejects& rejects = io.rejects;

  std::string text;
  for (size_t i = 0; i < copied_names.size(); ++i) {
    AppendField(text, copied_names[i]);
    text += ',';
  }
  for (size_t j = 0; j < output_names.size(); ++j) {
    if (j) text += ',';
    AppendField(text, output_names[j]);
  }
  text += '\n';
  KEEL_RETURN_IF_ERROR(io.write(text));

  ThreadPool* pool = options.pool != nullptr ? options.pool : &ThreadPool::Default();
  const size_t chunk = options.chunk_rows;
  std::vector<float> x(chunk * nf), y(chunk * no);
  std::vector<std::string> kept(chunk * ncopied);
  // Monitoring sample: per chunk, the sampled rows' index in the chunk, line and raw record.
  const bool sampling = options.on_scored != nullptr && options.sample_rate > 0;
  std::mt19937_64 rng(options.sample_seed);
  std::bernoulli_distribution pick(sampling ? options.sample_rate : 0.0);
  std::vector<ScoredRow> scored;
  std::vector<size_t> scored_index;
  std::string raw;
  BatchProgress progress;
  bool more = true;
  while (more) {
    if (options.cancel != nullptr && options.cancel->load()) {
      return Unavailable("interrupted after " + std::to_string(summary.rows_in) + " rows");
    }
    size_t n = 0;
    scored.clear();
    scored_index.clear();
    while (n < chunk) {
      Status reject;
      const bool sample = sampling && pick(rng);
      auto next = source->Next(x.data() + n * nf, kept.data() + n * ncopied,
                               sample ? &raw : nullptr, &reject);
      if (!next.ok()) return io.input_error(next.status());
      more = *next;
      if (!more) break;
      ++summary.rows_in;
      if (!reject.ok()) {
        KEEL_RETURN_IF_ERROR(rejects.Add(source->line() + line_offset, reject.message()));
        if (rejects.count() > options.max_rejects) {
          return io.input_error(InvalidArgument(
              std::to_string(rejects.count()) + " rows rejected (more than --max-rejects " +
              std::to_string(options.max_rejects) + "); first: " + rejects.first()));
        }
        continue;
      }
      if (sample) {
        scored.push_back(
            ScoredRow{.line = source->line() + line_offset, .input_json = std::move(raw)});
        scored_index.push_back(n);
        raw.clear();
      }
      ++n;
    }
    if (n > 0) {
      const auto predict_start = std::chrono::steady_clock::now();
      model.predictor.PredictBatch(x.data(), n, y.data(), pool);
      const double latency_us = std::chrono::duration<double, std::micro>(
                                    std::chrono::steady_clock::now() - predict_start)
                                    .count() /
                                static_cast<double>(n);
      text.clear();
      for (size_t r = 0; r < n; ++r) {
        for (size_t c = 0; c < ncopied; ++c) {
          AppendField(text, kept[r * ncopied + c]);
          text += ',';
        }
        for (size_t j = 0; j < no; ++j) {
          if (j) text += ',';
          AppendFloat(text, y[r * no + j]);
        }
        text += '\n';
      }
      KEEL_RETURN_IF_ERROR(io.write(text));
      summary.rows_out += n;
      if (!scored.empty()) {
        for (size_t i = 0; i < scored.size(); ++i) {
          scored[i].outputs = y.data() + scored_index[i] * no;
          scored[i].latency_us = latency_us;
        }
        KEEL_RETURN_IF_ERROR(options.on_scored(scored));
        summary.sampled += scored.size();
      }
    }
    progress.rows = summary.rows_in;
    progress.rejected = rejects.count();
    progress.bytes_read = io.bytes_read();
    progress.total_bytes = io.total_bytes;
    if (options.progress) options.progress(progress);
  }
  // A compressed input that ends early reads as a short file: fail instead.
  KEEL_RETURN_IF_ERROR(io.input_error(OkStatus()));
  summary.rejected = rejects.count();
  return OkStatus();
}

}  // namespace

Result<BatchSummary> ScoreFile(const model::LoadedModel& model, const BatchOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (options.chunk_rows == 0) return InvalidArgument("chunk_rows must be positive");
  if (!(options.sample_rate >= 0 && options.sample_rate <= 1)) {
    return InvalidArgument("sample_rate must be in [0, 1]");
  }
  KEEL_ASSIGN_OR_RETURN(std::unique_ptr<internal::InputStream> input,
                        internal::InputStream::Open(options.input));
  DigestBuf digest(input->stream().rdbuf());
  std::istream in(&digest);
  uint64_t total_bytes = 0;
  if (options.input != "-" && internal::CodecOf(options.input) == internal::Codec::kNone) {
    std::error_code ec;
    total_bytes = std::filesystem::file_size(options.input, ec);
    if (ec) total_bytes = 0;
  }
  const std::string name = options.input == "-" ? "stdin" : options.input;
  KEEL_ASSIGN_OR_RETURN(std::unique_ptr<Output> out, Output::Open(options.output));
  std::string reject_path = options.reject_file;
  if (reject_path.empty() && options.output != "-") reject_path = options.output + ".rejects.csv";
  Rejects rejects(reject_path);
  CoreIo io{
      .in = in,
      .name = name,
      .json_lines = options.format == InputFormat::kJsonLines ||
                    (options.format == InputFormat::kByExtension && IsJsonLines(options.input)),
      .write = [&out](std::string_view text) { return out->Write(text); },
      .rejects = rejects,
      // A corrupt or truncated compressed input shows up as a parse error or
      // a ragged row first; the decompressor's error is the one to report.
      .input_error = [&](Status other) -> Status {
        if (std::string why = input->error(); !why.empty()) {
          return InvalidArgument(name + ": " + why);
        }
        return other;
      },
      .bytes_read = [&digest] { return digest.bytes(); },
      .total_bytes = total_bytes};
  BatchSummary summary;
  KEEL_RETURN_IF_ERROR(ScoreCore(model, options, io, summary));
  if (options.before_commit) KEEL_RETURN_IF_ERROR(options.before_commit());
  KEEL_RETURN_IF_ERROR(out->Commit());
  summary.reject_file = rejects.where();
  summary.input_sha256 = digest.HexDigest();
  summary.input_bytes = digest.bytes();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

Result<ScoredText> ScoreText(const model::LoadedModel& model, std::string_view text,
                             const BatchOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  MemoryBuf buf(text);
  std::istream in(&buf);
  ScoredText result;
  Rejects rejects("", &result.rejects);
  bool header_done = false;
  CoreIo io{.in = in,
            .name = options.input.empty() ? "input" : options.input,
            .json_lines = options.format == InputFormat::kJsonLines,
            .write =
                [&](std::string_view out) {
                  (header_done ? result.rows : result.header).append(out);
                  header_done = true;
                  return OkStatus();
                },
            .rejects = rejects,
            .input_error = [](Status other) { return other; },
            .bytes_read = [&buf] { return buf.consumed(); },
            .total_bytes = text.size()};
  if (Status st = ScoreCore(model, options, io, result.summary); !st.ok()) {
    // Errors of the CSV reader name "<name>:<line>:"; make it the line of the
    // whole input.
    const std::string prefix = io.name + ":";
    const std::string& m = st.message();
    if (options.line_offset > 0 && m.starts_with(prefix)) {
      const size_t colon = m.find(':', prefix.size());
      uint64_t line = 0;
      auto [end, ec] = std::from_chars(m.data() + prefix.size(), m.data() + colon, line);
      if (colon != std::string::npos && ec == std::errc() && end == m.data() + colon) {
        return Status(st.code(),
                      prefix + std::to_string(line + options.line_offset) + m.substr(colon));
      }
    }
    return st;
  }
  result.summary.input_bytes = text.size();
  result.summary.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace keel::batch
