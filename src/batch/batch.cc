#include "keel/batch/batch.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

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
  Status Write(const std::string& text) { return sink_->Write(text); }
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
  explicit Rejects(std::string path) : path_(std::move(path)) {}
  Status Add(uint64_t line, std::string_view reason) {
    ++count_;
    if (first_.empty()) first_ = "line " + std::to_string(line) + ": " + std::string(reason);
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
// columns' text. A row that cannot be encoded is reported in *reject.
class RowSource {
 public:
  virtual ~RowSource() = default;
  // False at the end of the input.
  virtual Result<bool> Next(float* x, std::string* copied, Status* reject) = 0;
  virtual uint64_t line() const = 0;
  virtual uint64_t position() const = 0;
  virtual uint64_t total_bytes() const = 0;
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
  Result<bool> Next(float* x, std::string* copied, Status* reject) override {
    KEEL_ASSIGN_OR_RETURN(bool more, reader_->Next());
    if (!more) return false;
    const auto& fields = reader_->fields();
    *reject = pipeline_.EncodeCsvFields(fields, map_, x);
    if (reject->ok()) {
      for (size_t c = 0; c < copied_.size(); ++c) copied[c].assign(fields[copied_[c]]);
    }
    return true;
  }
  uint64_t line() const override { return reader_->line(); }
  uint64_t position() const override { return reader_->position(); }
  uint64_t total_bytes() const override { return reader_->total_bytes(); }

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
  Result<bool> Next(float* x, std::string* copied, Status* reject) override {
    do {
      if (!std::getline(in_, text_)) return false;
      ++line_;
      position_ += text_.size() + 1;
    } while (text_.find_first_not_of(" \t\r") == std::string::npos);
    *reject = pipeline_.EncodeJsonObject(text_, x);
    if (!reject->ok() || copied_names_.empty()) return true;
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
  uint64_t position() const override { return position_; }
  uint64_t total_bytes() const override { return 0; }

 private:
  std::istream& in_;
  const data::FeaturePipeline& pipeline_;
  std::vector<std::string> copied_names_;
  simdjson::dom::parser parser_;
  std::string text_;
  uint64_t line_ = 0, position_ = 0;
};

bool IsJsonLines(std::string_view path) {
  const std::string_view p = internal::WithoutCodecExtension(path);
  return p.ends_with(".jsonl") || p.ends_with(".ndjson");
}

}  // namespace

Result<BatchSummary> ScoreFile(const model::LoadedModel& model, const BatchOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (options.chunk_rows == 0) return InvalidArgument("chunk_rows must be positive");
  const data::FeaturePipeline& pipeline = model.pipeline;
  // Copied columns: the id, then the kept ones.
  std::vector<std::string> copied_names;
  if (!options.id_column.empty()) copied_names.push_back(options.id_column);
  for (const std::string& keep : options.keep_columns) copied_names.push_back(keep);
  const size_t ncopied = copied_names.size();

  KEEL_ASSIGN_OR_RETURN(std::unique_ptr<internal::InputStream> input,
                        internal::InputStream::Open(options.input));
  const bool json_lines =
      options.format == InputFormat::kJsonLines ||
      (options.format == InputFormat::kByExtension && IsJsonLines(options.input));
  std::unique_ptr<RowSource> source;
  const std::string name = options.input == "-" ? "stdin" : options.input;
  if (json_lines) {
    source = std::make_unique<JsonLinesSource>(input->stream(), pipeline, copied_names);
  } else {
    KEEL_ASSIGN_OR_RETURN(source, CsvSource::Open(input->stream(), name, pipeline, copied_names));
  }

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

  KEEL_ASSIGN_OR_RETURN(std::unique_ptr<Output> out, Output::Open(options.output));
  std::string reject_path = options.reject_file;
  if (reject_path.empty() && options.output != "-") reject_path = options.output + ".rejects.csv";
  Rejects rejects(reject_path);

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
  KEEL_RETURN_IF_ERROR(out->Write(text));

  ThreadPool* pool = options.pool != nullptr ? options.pool : &ThreadPool::Default();
  const size_t chunk = options.chunk_rows;
  std::vector<float> x(chunk * nf), y(chunk * no);
  std::vector<std::string> kept(chunk * ncopied);
  BatchSummary summary;
  BatchProgress progress;
  bool more = true;
  while (more) {
    size_t n = 0;
    while (n < chunk) {
      Status reject;
      KEEL_ASSIGN_OR_RETURN(more,
                            source->Next(x.data() + n * nf, kept.data() + n * ncopied, &reject));
      if (!more) break;
      ++summary.rows_in;
      if (!reject.ok()) {
        KEEL_RETURN_IF_ERROR(rejects.Add(source->line(), reject.message()));
        if (rejects.count() > options.max_rejects) {
          return InvalidArgument(
              std::to_string(rejects.count()) + " rows rejected (more than --max-rejects " +
              std::to_string(options.max_rejects) + "); first: " + rejects.first());
        }
        continue;
      }
      ++n;
    }
    if (n > 0) {
      model.predictor.PredictBatch(x.data(), n, y.data(), pool);
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
      KEEL_RETURN_IF_ERROR(out->Write(text));
      summary.rows_out += n;
    }
    progress.rows = summary.rows_in;
    progress.rejected = rejects.count();
    progress.bytes_read = source->position();
    progress.total_bytes = source->total_bytes();
    if (options.progress) options.progress(progress);
  }
  // A compressed input that ends early reads as a short file: fail instead.
  if (std::string why = input->error(); !why.empty()) {
    return InvalidArgument(name + ": " + why);
  }
  KEEL_RETURN_IF_ERROR(out->Commit());
  summary.rejected = rejects.count();
  summary.reject_file = rejects.where();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace keel::batch
