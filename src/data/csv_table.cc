// ReadCsvTable: one streaming pass with per-column type inference, and a
// partial second pass for columns that turn categorical part-way; large files
// without quoted fields are read in parts on all cores (ReadInParts).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "keel/core/big_buffer.h"
#include "keel/core/thread_pool.h"
#include "keel/data/csv.h"
#include "src/data/csv_parts.h"
#include "src/data/csv_source.h"
#include "src/data/text.h"

namespace keel::data {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr uint64_t kEstimateAfter = 1000;  // rows read before sizing columns

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Dictionary encoder: strings to codes in first-seen order.
class Interner {
 public:
  int32_t Intern(std::string_view text) {
    auto it = index_.find(text);
    if (it != index_.end()) return it->second;
    auto code = static_cast<int32_t>(strings_.size());
    strings_.emplace_back(text);
    index_.emplace(strings_.back(), code);
    return code;
  }
  const std::vector<std::string>& strings() const { return strings_; }
  std::vector<std::string> TakeStrings() && { return std::move(strings_); }

 private:
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> index_;
  std::vector<std::string> strings_;
};

enum class State { kEmpty, kNumeric, kBoolean, kCategorical };

// Rows of column storage a bulk read faults in ahead of the rows read: its
// memory beyond the rows used is at most this many rows per column.
constexpr size_t kPrefaultRows = size_t{1} << 16;

// v.reserve(n) for a size known exactly; with `bulk` (CsvOptions::bulk_memory)
// the fresh capacity is also faulted in at once. (Storage sized from an
// estimate, which may be far too large, is faulted in by PrefaultAhead.)
template <typename T>
void ReserveExact(std::vector<T>& v, size_t n, bool bulk) {
  v.reserve(n);
  if (bulk) PrefaultPages(v.data() + v.size(), (v.capacity() - v.size()) * sizeof(T));
}

// Faults in v's capacity up to kPrefaultRows past its size, from `*mark`
// (elements already faulted in; reset when the storage moved, `*base`).
template <typename T>
void PrefaultAhead(std::vector<T>& v, size_t* mark, const void** base) {
  if (*base != v.data()) {
    *base = v.data();
    *mark = v.size();
  }
  const size_t want = std::min(v.capacity(), v.size() + kPrefaultRows);
  const size_t from = std::max(*mark, v.size());
  if (want <= from) return;
  PrefaultPages(v.data() + from, (want - from) * sizeof(T));
  *mark = want;
}

struct ColumnBuilder {
  std::string name;
  bool forced = false;  // type fixed by a schema override
  State state = State::kEmpty;
  std::vector<double> values;  // kEmpty, kNumeric, kBoolean
  std::vector<int32_t> codes;  // kCategorical
  Interner dictionary;
  // Rows [0, pending_rows) held numbers/booleans before the column turned
  // categorical; their text is read again in a second pass.
  size_t pending_rows = 0;
  // CsvOptions::bulk_memory: elements of the storage at prefault_base
  // faulted in so far (PrefaultAhead).
  size_t prefaulted = 0;
  const void* prefault_base = nullptr;

  void ToCategorical() {
    pending_rows = state == State::kEmpty ? 0 : values.size();
    codes.assign(values.size(), -1);
    std::vector<double>().swap(values);
    state = State::kCategorical;
  }
};

class TableReader {
 public:
  explicit TableReader(const CsvOptions& options)
      : options_(&options), missing_(options.missing_markers) {}

  // Pass one over `reader`, whose records have the fields `header` names.
  Status ReadAll(CsvReader& reader, const std::vector<std::string>& header) {
    if (header.empty())
      return InvalidArgument(reader.source_name() + ": empty file, no header row");
    std::unordered_map<std::string_view, size_t> seen;
    for (size_t i = 0; i < header.size(); ++i) {
      if (!seen.emplace(header[i], i).second) {
        return InvalidArgument(reader.source_name() + ":1: duplicate column name '" + header[i] +
                               "'");
      }
    }
    for (const auto& [name, type] : options_->types) {
      if (!seen.contains(name)) {
        return InvalidArgument(reader.source_name() + ": schema names column '" + name +
                               "', which the header lacks");
      }
    }
    columns_.resize(header.size());
    for (size_t i = 0; i < header.size(); ++i) {
      ColumnBuilder& b = columns_[i];
      b.name = header[i];
      auto it = options_->types.find(header[i]);
      if (it != options_->types.end()) {
        b.forced = true;
        b.state = it->second == ColumnType::kNumeric   ? State::kNumeric
                  : it->second == ColumnType::kBoolean ? State::kBoolean
                                                       : State::kCategorical;
      }
    }
    const uint64_t header_bytes = reader.position();
    while (true) {
      KEEL_ASSIGN_OR_RETURN(bool more, reader.Next());
      if (!more) break;
      if (reader.records() == kEstimateAfter) Reserve(reader, header_bytes);
      if (options_->bulk_memory && reader.records() % kPrefaultRows == kEstimateAfter) {
        for (ColumnBuilder& b : columns_) {
          if (b.state == State::kCategorical) {
            PrefaultAhead(b.codes, &b.prefaulted, &b.prefault_base);
          } else {
            PrefaultAhead(b.values, &b.prefaulted, &b.prefault_base);
          }
        }
      }
      const std::vector<std::string_view>& fields = reader.fields();
      if (fields.size() != columns_.size()) {
        return InvalidArgument(reader.source_name() + ":" + std::to_string(reader.line()) + ": " +
                               std::to_string(fields.size()) + " fields, header has " +
                               std::to_string(columns_.size()));
      }
      for (size_t j = 0; j < fields.size(); ++j) {
        KEEL_RETURN_IF_ERROR(Add(columns_[j], fields[j], reader));
      }
    }
    num_rows_ = reader.records();
    return OkStatus();
  }

  // Sizes column storage from the bytes per row seen so far, so large files
  // do not pay for repeated reallocation.
  void Reserve(const CsvReader& reader, uint64_t header_bytes) {
    const uint64_t total = reader.total_bytes();
    const uint64_t used = reader.position() - header_bytes;
    if (total == 0 || used == 0) return;
    const double rows = static_cast<double>(total - header_bytes) / static_cast<double>(used) *
                        static_cast<double>(kEstimateAfter) * 1.05;
    const auto n = static_cast<size_t>(std::min(rows, 4.0e9));
    for (ColumnBuilder& b : columns_) {
      if (b.state == State::kCategorical) {
        b.codes.reserve(n);
      } else {
        b.values.reserve(n);
      }
    }
  }

  size_t MaxPendingRows() const {
    size_t n = 0;
    for (const ColumnBuilder& b : columns_) n = std::max(n, b.pending_rows);
    return n;
  }

  // Pass two: the text of pending rows.
  Status ReadPending(CsvReader& reader) {
    const size_t max_rows = MaxPendingRows();
    std::vector<Interner> prefix(columns_.size());
    for (size_t row = 0; row < max_rows; ++row) {
      KEEL_ASSIGN_OR_RETURN(bool more, reader.Next());
      if (!more) return Internal(reader.source_name() + ": the source changed while being read");
      const std::vector<std::string_view>& fields = reader.fields();
      for (size_t j = 0; j < columns_.size(); ++j) {
        ColumnBuilder& b = columns_[j];
        if (row >= b.pending_rows) continue;
        b.codes[row] = missing_.Matches(fields[j]) ? -1 : prefix[j].Intern(fields[j]);
      }
    }
    // Merge: prefix strings first (first seen), then those first seen later.
    for (size_t j = 0; j < columns_.size(); ++j) {
      ColumnBuilder& b = columns_[j];
      if (b.pending_rows == 0) continue;
      Interner merged = std::move(prefix[j]);
      std::vector<int32_t> remap;
      for (const std::string& s : b.dictionary.strings()) remap.push_back(merged.Intern(s));
      for (size_t row = b.pending_rows; row < b.codes.size(); ++row) {
        if (b.codes[row] >= 0) b.codes[row] = remap[static_cast<size_t>(b.codes[row])];
      }
      b.dictionary = std::move(merged);
      b.pending_rows = 0;
    }
    return OkStatus();
  }

  Result<Table> Finish() && {
    Table table;
    for (ColumnBuilder& b : columns_) {
      KEEL_ASSIGN_OR_RETURN(Column column, MakeColumn(b));
      KEEL_RETURN_IF_ERROR(table.AddColumn(std::move(column)));
    }
    return table;
  }

  // The type inference would give column j over all `parts` read in order
  // (each part a whole number of records of one file).
  static State CombinedState(const std::vector<TableReader>& parts, size_t j) {
    bool numeric = false, boolean = false;
    for (const TableReader& part : parts) {
      const ColumnBuilder& b = part.columns_[j];
      if (b.forced || b.state == State::kCategorical) return b.state;
      numeric |= b.state == State::kNumeric;
      boolean |= b.state == State::kBoolean;
    }
    if (numeric && boolean) return State::kCategorical;  // a number, then "true"
    return numeric ? State::kNumeric : (boolean ? State::kBoolean : State::kEmpty);
  }

  // Names of the columns that `part` read as numbers or booleans but the
  // whole file holds as categories: the part must be read again with them
  // typed categorical.
  static std::vector<std::string> ToReadAsCategories(const std::vector<TableReader>& parts,
                                                     size_t part) {
    std::vector<std::string> out;
    for (size_t j = 0; j < parts[part].columns_.size(); ++j) {
      const State own = parts[part].columns_[j].state;
      if ((own == State::kNumeric || own == State::kBoolean) &&
          CombinedState(parts, j) == State::kCategorical) {
        out.push_back(parts[part].columns_[j].name);
      }
    }
    return out;
  }

  // One table from parts read in file order, none of which holds a column as
  // numbers or booleans that another holds as categories (ToReadAsCategories
  // is empty for all). Categories keep first-seen order over the whole file.
  // Columns are joined at once on `pool`, each part's storage released as its
  // column is appended.
  static Result<Table> Concatenate(std::vector<TableReader>& parts, ThreadPool& pool) {
    const bool bulk = parts.front().options_->bulk_memory;
    size_t rows = 0;
    for (const TableReader& part : parts) rows += part.num_rows_;
    const size_t n_columns = parts.front().columns_.size();
    std::vector<std::optional<Result<Column>>> columns(n_columns);
    pool.ParallelFor(
        n_columns,
        [&](size_t begin, size_t end) {
          for (size_t j = begin; j < end; ++j) columns[j] = JoinColumn(parts, j, rows, bulk);
        },
        1);
    Table table;
    for (std::optional<Result<Column>>& column : columns) {
      if (!column->ok()) return column->status();
      KEEL_RETURN_IF_ERROR(table.AddColumn(std::move(*column).value()));
    }
    return table;
  }

 private:
  // Column j of every part, in order (see Concatenate); `rows` in all.
  static Result<Column> JoinColumn(std::vector<TableReader>& parts, size_t j, size_t rows,
                                   bool bulk) {
    ColumnBuilder all;
    all.name = parts.front().columns_[j].name;
    all.state = CombinedState(parts, j);
    if (all.state != State::kCategorical) {
      ReserveExact(all.values, rows, bulk);
    } else {
      ReserveExact(all.codes, rows, bulk);
    }
    for (TableReader& part : parts) {
      ColumnBuilder& b = part.columns_[j];
      if (all.state != State::kCategorical) {
        all.values.insert(all.values.end(), b.values.begin(), b.values.end());
      } else if (b.state == State::kCategorical) {
        std::vector<int32_t> remap;
        remap.reserve(b.dictionary.strings().size());
        for (const std::string& text : b.dictionary.strings()) {
          remap.push_back(all.dictionary.Intern(text));
        }
        for (int32_t code : b.codes) {
          all.codes.push_back(code < 0 ? -1 : remap[static_cast<size_t>(code)]);
        }
      } else {  // nothing but missing values in this part
        all.codes.insert(all.codes.end(), b.values.size(), -1);
      }
      ColumnBuilder released;
      std::swap(b, released);
    }
    return MakeColumn(all);
  }

  Status Add(ColumnBuilder& b, std::string_view text, const CsvReader& reader) {
    if (missing_.Matches(text)) {
      if (b.state == State::kCategorical) {
        b.codes.push_back(-1);
      } else {
        b.values.push_back(kNaN);
      }
      return OkStatus();
    }
    double number;
    bool flag;
    switch (b.state) {
      case State::kNumeric:
        if (internal::ParseNumber(text, &number)) {
          b.values.push_back(number);
          return OkStatus();
        }
        if (b.forced) return Refused(b, text, reader, "not a number");
        b.ToCategorical();
        break;
      case State::kBoolean:
        if (b.forced ? internal::ParseLooseBool(text, &flag)
                     : internal::ParseStrictBool(text, &flag)) {
          b.values.push_back(flag ? 1.0 : 0.0);
          return OkStatus();
        }
        if (b.forced) return Refused(b, text, reader, "not a boolean");
        b.ToCategorical();
        break;
      case State::kEmpty:
        if (internal::ParseNumber(text, &number)) {
          b.state = State::kNumeric;
          b.values.push_back(number);
          return OkStatus();
        }
        if (internal::ParseStrictBool(text, &flag)) {
          b.state = State::kBoolean;
          b.values.push_back(flag ? 1.0 : 0.0);
          return OkStatus();
        }
        b.ToCategorical();
        break;
      case State::kCategorical:
        break;
    }
    b.codes.push_back(b.dictionary.Intern(text));
    return OkStatus();
  }

  static Result<Column> MakeColumn(ColumnBuilder& b) {
    switch (b.state) {
      case State::kBoolean:
        return Column::Boolean(std::move(b.name), std::move(b.values));
      case State::kCategorical:
        return Column::Categorical(std::move(b.name), std::move(b.codes),
                                   std::move(b.dictionary).TakeStrings());
      case State::kEmpty:
      case State::kNumeric:
        break;
    }
    return Column::Numeric(std::move(b.name), std::move(b.values));
  }

  Status Refused(const ColumnBuilder& b, std::string_view text, const CsvReader& reader,
                 std::string_view what) const {
    std::string shown(text.substr(0, 64));
    return InvalidArgument(reader.source_name() + ":" + std::to_string(reader.line()) +
                           ": column '" + b.name + "' is " +
                           std::string(ColumnTypeName(options_->types.find(b.name)->second)) +
                           " by schema, '" + shown + "' is " + std::string(what));
  }

  const CsvOptions* options_;  // outlives the reader
  internal::MissingMatcher missing_;
  std::vector<ColumnBuilder> columns_;
  size_t num_rows_ = 0;
};

CsvReaderOptions WithHeader(const CsvReaderOptions& options) {
  CsvReaderOptions o = options;
  o.has_header = true;
  return o;
}

// Bytes [begin, end) of a file, read with pread (one descriptor serves every
// range). Stops with kAborted at a quote, since a line end found by looking
// is a record boundary only when no field is quoted, or once `cancel` is set
// (FailedPrecondition: the caller then reads the file serially).
class FileRangeSource : public CsvReader::Source {
 public:
  FileRangeSource(int fd, uint64_t begin, uint64_t end, const std::atomic<bool>& cancel)
      : fd_(fd), pos_(begin), begin_(begin), end_(end), cancel_(cancel) {}

  Result<size_t> Read(char* dst, size_t n) override {
    if (cancel_.load(std::memory_order_relaxed)) return FailedPrecondition("cancelled");
    n = static_cast<size_t>(std::min<uint64_t>(n, end_ - pos_));
    if (n == 0) return size_t{0};
    ssize_t got;
    do {
      got = ::pread(fd_, dst, n, static_cast<off_t>(pos_));
    } while (got < 0 && errno == EINTR);
    if (got <= 0) return FailedPrecondition("short read");  // the file shrank: read it serially
    if (std::memchr(dst, '"', static_cast<size_t>(got)) != nullptr)
      return FailedPrecondition("quoted");
    pos_ += static_cast<uint64_t>(got);
    return static_cast<size_t>(got);
  }
  uint64_t Size() const override { return end_ - begin_; }

 private:
  int fd_;
  uint64_t pos_, begin_, end_;
  const std::atomic<bool>& cancel_;
};

// The offset just past the first '\n' at or after `from`, or 0 when none
// comes within 4 MiB (or before `end`).
uint64_t NextLineStart(int fd, uint64_t from, uint64_t end) {
  char window[1 << 16];
  for (uint64_t pos = from; pos < end && pos < from + (uint64_t{4} << 20);) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(sizeof window, end - pos));
    ssize_t got;
    do {
      got = ::pread(fd, window, want, static_cast<off_t>(pos));
    } while (got < 0 && errno == EINTR);
    if (got <= 0) return 0;
    if (const void* nl = std::memchr(window, '\n', static_cast<size_t>(got))) {
      return pos + static_cast<uint64_t>(static_cast<const char*>(nl) - window) + 1;
    }
    pos += static_cast<uint64_t>(got);
  }
  return 0;
}

}  // namespace

namespace internal {

// The records after the header are cut at line ends into parts, each read by
// its own TableReader, and the parts are joined (Concatenate).
std::optional<Table> ReadInParts(const std::string& path, const CsvOptions& options,
                                 uint64_t part_bytes) {
  ThreadPool& pool = ThreadPool::Default();
  if (!options.read_in_parts || pool.size() < 2 || part_bytes == 0) return std::nullopt;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < 2 * part_bytes) return std::nullopt;

  CsvReaderOptions head = WithHeader(options.reader);
  head.progress = nullptr;
  Result<std::unique_ptr<CsvReader>> header_reader = CsvReader::Open(path, head);
  if (!header_reader.ok() || (*header_reader)->header().empty()) return std::nullopt;
  const std::vector<std::string> header = (*header_reader)->header();
  const uint64_t data_begin = (*header_reader)->position();
  header_reader->reset();

  const uint64_t data_bytes = size - data_begin;
  const uint64_t wanted =
      std::min<uint64_t>(static_cast<uint64_t>(pool.size()) * 4, data_bytes / part_bytes);
  if (wanted < 2) return std::nullopt;
  std::vector<uint64_t> cuts = {data_begin};
  for (uint64_t k = 1; k < wanted; ++k) {
    const uint64_t at = NextLineStart(fd, data_begin + data_bytes * k / wanted, size);
    if (at == 0) return std::nullopt;
    if (at > cuts.back() && at < size) cuts.push_back(at);
  }
  cuts.push_back(size);
  const size_t n_parts = cuts.size() - 1;
  if (n_parts < 2) return std::nullopt;

  // Progress: bytes of every part, reported by one thread at a time.
  std::atomic<uint64_t> done{0};
  std::mutex progress_mu;
  auto part_progress = [&](size_t) -> std::function<void(uint64_t, uint64_t)> {
    if (!options.reader.progress) return nullptr;
    return [&, last = uint64_t{0}](uint64_t read, uint64_t) mutable {
      done.fetch_add(read - last);
      last = read;
      std::unique_lock<std::mutex> lock(progress_mu, std::try_to_lock);
      // Read under the lock: each report is at least the one before.
      if (lock.owns_lock()) options.reader.progress(data_begin + done.load(), size);
    };
  };

  std::atomic<bool> failed{false};
  // Options per part: a part read again gets columns typed categorical.
  std::vector<CsvOptions> part_options(n_parts, options);
  std::vector<TableReader> parts;
  parts.reserve(n_parts);
  for (size_t i = 0; i < n_parts; ++i) parts.emplace_back(part_options[i]);
  auto read_part = [&](size_t i, std::function<void(uint64_t, uint64_t)> progress) -> Status {
    char bom[3] = {};
    if (::pread(fd, bom, 3, static_cast<off_t>(cuts[i])) == 3 &&
        std::memcmp(bom, "\xEF\xBB\xBF", 3) == 0) {
      return FailedPrecondition("a byte-order mark at a cut");
    }
    CsvReaderOptions ro = part_options[i].reader;
    ro.has_header = false;
    ro.allow_ragged = false;
    ro.progress = std::move(progress);
    auto open = [&]() {
      return CsvReader::FromSource(
          std::make_unique<FileRangeSource>(fd, cuts[i], cuts[i + 1], failed), path, ro);
    };
    parts[i] = TableReader(part_options[i]);
    KEEL_ASSIGN_OR_RETURN(auto reader, open());
    KEEL_RETURN_IF_ERROR(parts[i].ReadAll(*reader, header));
    if (parts[i].MaxPendingRows() > 0) {
      ro.progress = nullptr;
      KEEL_ASSIGN_OR_RETURN(auto again, open());
      KEEL_RETURN_IF_ERROR(parts[i].ReadPending(*again));
    }
    return OkStatus();
  };
  auto run = [&](const std::vector<size_t>& which, bool with_progress) {
    pool.ParallelFor(
        which.size(),
        [&](size_t begin, size_t end) {
          for (size_t k = begin; k < end && !failed.load(); ++k) {
            const size_t i = which[k];
            if (!read_part(i, with_progress ? part_progress(i) : nullptr).ok()) failed = true;
          }
        },
        1);
  };
  std::vector<size_t> all(n_parts);
  for (size_t i = 0; i < n_parts; ++i) all[i] = i;
  run(all, true);
  if (failed) return std::nullopt;
  // A column that is categorical over the whole file but numbers (or
  // booleans) in some part: those parts are read again with it typed so.
  std::vector<size_t> again;
  for (size_t i = 0; i < n_parts; ++i) {
    const std::vector<std::string> names = TableReader::ToReadAsCategories(parts, i);
    if (names.empty()) continue;
    for (const std::string& name : names) part_options[i].types[name] = ColumnType::kCategorical;
    again.push_back(i);
  }
  if (!again.empty()) {
    run(again, false);
    if (failed) return std::nullopt;
  }
  if (options.reader.progress) options.reader.progress(size, size);
  Result<Table> table = TableReader::Concatenate(parts, pool);
  if (!table.ok()) return std::nullopt;
  return std::move(table).value();
}

}  // namespace internal

Result<Table> ReadCsvTable(const std::string& path, const CsvOptions& options) {
  if (std::optional<Table> table = internal::ReadInParts(path, options)) {
    return std::move(*table);
  }
  TableReader builder(options);
  {
    KEEL_ASSIGN_OR_RETURN(auto reader, CsvReader::Open(path, WithHeader(options.reader)));
    KEEL_RETURN_IF_ERROR(builder.ReadAll(*reader, reader->header()));
  }
  if (builder.MaxPendingRows() > 0) {
    CsvReaderOptions again = WithHeader(options.reader);
    again.progress = nullptr;
    KEEL_ASSIGN_OR_RETURN(auto reader, CsvReader::Open(path, again));
    KEEL_RETURN_IF_ERROR(builder.ReadPending(*reader));
  }
  return std::move(builder).Finish();
}

Result<Table> ReadCsvTable(std::istream& in, std::string source_name, const CsvOptions& options) {
  const std::streampos start = in.tellg();
  TableReader builder(options);
  {
    KEEL_ASSIGN_OR_RETURN(auto reader,
                          CsvReader::FromStream(in, source_name, WithHeader(options.reader)));
    KEEL_RETURN_IF_ERROR(builder.ReadAll(*reader, reader->header()));
  }
  if (builder.MaxPendingRows() > 0) {
    in.clear();
    if (start == std::streampos(-1) || !in.seekg(start)) {
      return FailedPrecondition(source_name +
                                ": a column changes type part-way and the stream cannot be "
                                "read again; give its type in CsvOptions::types");
    }
    CsvReaderOptions again = WithHeader(options.reader);
    again.progress = nullptr;
    KEEL_ASSIGN_OR_RETURN(auto reader, CsvReader::FromStream(in, source_name, again));
    KEEL_RETURN_IF_ERROR(builder.ReadPending(*reader));
  }
  return std::move(builder).Finish();
}

}  // namespace keel::data
