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

// Where scored rows go: a temporary file renamed into place on Commit, or stdout.
class Output {
 public:
  static Result<std::unique_ptr<Output>> Open(const std::string& path) {
    std::unique_ptr<Output> o(new Output());
    if (path == "-") return o;
    o->final_ = path;
    o->tmp_ = path + ".tmp-" + RandomHex(4);
    o->file_.open(o->tmp_, std::ios::binary | std::ios::trunc);
    if (!o->file_) return InvalidArgument("cannot write " + o->tmp_);
    return o;
  }
  ~Output() {
    if (!tmp_.empty() && !committed_) {
      file_.close();
      std::error_code ec;
      std::filesystem::remove(tmp_, ec);
    }
  }
  Status Write(const std::string& text) {
    if (final_.empty()) {
      if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) {
        return Unavailable("cannot write to stdout");
      }
      return OkStatus();
    }
    file_.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!file_) return Unavailable("cannot write " + tmp_);
    return OkStatus();
  }
  Status Commit() {
    if (final_.empty()) {
      return std::fflush(stdout) == 0 ? OkStatus() : Unavailable("cannot write to stdout");
    }
    file_.close();
    if (!file_) return Unavailable("cannot write " + tmp_);
    std::error_code ec;
    std::filesystem::rename(tmp_, final_, ec);
    if (ec) return Unavailable("cannot rename " + tmp_ + " to " + final_ + ": " + ec.message());
    committed_ = true;
    return OkStatus();
  }

 private:
  Output() = default;
  std::string final_, tmp_;
  std::ofstream file_;
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

}  // namespace

Result<BatchSummary> ScoreCsv(const model::LoadedModel& model, const BatchOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (options.chunk_rows == 0) return InvalidArgument("chunk_rows must be positive");
  std::unique_ptr<data::CsvReader> reader;
  data::CsvReaderOptions reader_options;
  reader_options.allow_ragged = true;  // a short or long row is rejected, not fatal
  if (options.input == "-") {
    KEEL_ASSIGN_OR_RETURN(reader, data::CsvReader::FromStream(std::cin, "stdin", reader_options));
  } else {
    KEEL_ASSIGN_OR_RETURN(reader, data::CsvReader::Open(options.input, reader_options));
  }
  const std::vector<std::string>& header = reader->header();
  if (header.empty()) return InvalidArgument(options.input + ": no header row");
  const data::FeaturePipeline& pipeline = model.pipeline;
  auto mapped = pipeline.MapCsvHeader(header);
  if (!mapped.ok()) return mapped.status().WithContext(options.input);
  const data::ColumnMap map = std::move(*mapped);
  // Copied columns: the id, then the kept ones.
  std::vector<size_t> copied;
  std::vector<std::string> copied_names;
  if (!options.id_column.empty()) {
    KEEL_ASSIGN_OR_RETURN(size_t f, FieldOf(header, options.id_column, "id"));
    copied.push_back(f);
    copied_names.push_back(options.id_column);
  }
  for (const std::string& keep : options.keep_columns) {
    KEEL_ASSIGN_OR_RETURN(size_t f, FieldOf(header, keep, "kept"));
    copied.push_back(f);
    copied_names.push_back(keep);
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
  std::vector<std::string> kept(chunk * copied.size());
  BatchSummary summary;
  BatchProgress progress;
  bool more = true;
  while (more) {
    size_t n = 0;
    while (n < chunk) {
      KEEL_ASSIGN_OR_RETURN(more, reader->Next());
      if (!more) break;
      ++summary.rows_in;
      const auto& fields = reader->fields();
      Status s = pipeline.EncodeCsvFields(fields, map, x.data() + n * nf);
      if (!s.ok()) {
        KEEL_RETURN_IF_ERROR(rejects.Add(reader->line(), s.message()));
        if (rejects.count() > options.max_rejects) {
          return InvalidArgument(
              std::to_string(rejects.count()) + " rows rejected (more than --max-rejects " +
              std::to_string(options.max_rejects) + "); first: " + rejects.first());
        }
        continue;
      }
      for (size_t c = 0; c < copied.size(); ++c) {
        kept[n * copied.size() + c].assign(fields[copied[c]]);
      }
      ++n;
    }
    if (n > 0) {
      model.predictor.PredictBatch(x.data(), n, y.data(), pool);
      text.clear();
      for (size_t r = 0; r < n; ++r) {
        for (size_t c = 0; c < copied.size(); ++c) {
          AppendField(text, kept[r * copied.size() + c]);
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
    progress.bytes_read = reader->position();
    progress.total_bytes = reader->total_bytes();
    if (options.progress) options.progress(progress);
  }
  KEEL_RETURN_IF_ERROR(out->Commit());
  summary.rejected = rejects.count();
  summary.reject_file = rejects.where();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace keel::batch
