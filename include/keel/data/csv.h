// File: keel/data/csv.h
//
// RFC 4180 CSV: a streaming record reader with bounded memory, and a reader
// of whole files into a typed Table.
//
//   // Streaming (batch scoring of files larger than RAM):
//   KEEL_ASSIGN_OR_RETURN(auto reader, keel::data::CsvReader::Open("big.csv"));
//   const std::vector<std::string>& header = reader->header();
//   while (true) {
//     KEEL_ASSIGN_OR_RETURN(bool more, reader->Next());
//     if (!more) break;
//     Use(reader->fields(), reader->line());   // views valid until the next Next()
//   }
//
//   // Whole file with type inference (training):
//   keel::data::CsvOptions options;
//   options.types["area_code"] = keel::data::ColumnType::kCategorical;
//   KEEL_ASSIGN_OR_RETURN(keel::data::Table t, keel::data::ReadCsvTable("churn.csv", options));
//
// Format accepted by CsvReader:
//   - Fields separated by `delimiter`; records end with LF, CRLF or a lone CR;
//     the last record may lack a line end.
//   - A field starting with '"' is quoted: it may hold delimiters, line ends
//     and doubled quotes ("" is one quote). After the closing quote only a
//     delimiter or a line end may follow. A quote inside an unquoted field is
//     kept as an ordinary character.
//   - A UTF-8 byte-order mark at the start is skipped.
//   - Empty lines are skipped (so a one-column file writes a missing value as
//     "" rather than as an empty line).
//   - With has_header (default) the first record names the columns; every
//     record must then have as many fields as the header, else the error is
//     "<source>:<line>: 21 fields, header has 20". Without a header the first
//     record sets the count.
//   - Line numbers are 1-based physical lines; a record's line is the line it
//     starts on (line ends inside quoted fields count).
//   Errors are InvalidArgument naming "<source>:<line>: <reason>", e.g.
//   "data.csv:9: unterminated quote starting at line 9"; a file that does not
//   exist is NotFound, one that cannot be opened InvalidArgument, a failed
//   read Internal; a record longer than max_record_bytes is ResourceExhausted.
//
// Memory: a reader holds one buffer of block_size bytes, which holds the
// record being parsed; it doubles only while a single record does not fit in
// half of it, so it stays under 2 * max_record_bytes + block_size.
//
// Type inference in ReadCsvTable (per column, over every row):
//   - A field is missing when it equals one of `missing_markers` after
//     stripping spaces/tabs (default: DefaultMissingMarkers() in table.h).
//   - numeric: every non-missing field is a number: optional sign ('+'
//     allowed), decimal digits, optional fraction and exponent, surrounding
//     spaces/tabs ignored; "inf"/"infinity" (any case, optional sign) are
//     +-infinity; "nan" (any case) is NaN and so counts as missing. Quoted
//     numbers ("3") are numbers. No hex, no thousands separators.
//   - boolean: every non-missing field is true or false (any case); stored as
//     1/0. yes/no, 1/0 and t/f are not booleans by inference.
//   - categorical: otherwise; categories are the exact field text (not
//     trimmed), dictionary in first-seen order.
//   - A column with no non-missing value is numeric (all NaN).
//   - `types` overrides inference per column name and wins; naming a column
//     the file lacks is InvalidArgument. A numeric override refuses fields that
//     are not numbers; a boolean override also accepts yes/no and 1/0 (any
//     case); both errors name source:line and the column.
//   Inference decides after the whole file is read. A column that changes from
//   numeric/boolean to categorical part-way is completed by re-reading the
//   start of the source (files always can be; a stream must be seekable).
//
// Threads: a CsvReader is used by one thread at a time. ReadCsvTable is
// thread-safe; see CsvOptions::read_in_parts for the threads it uses.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "keel/core/result.h"
#include "keel/data/table.h"

namespace keel::data {

struct CsvReaderOptions {
  char delimiter = ',';
  bool has_header = true;
  // Bytes read from the source at a time.
  size_t block_size = size_t{1} << 20;
  // Longest record accepted (usually reached by an unterminated quote).
  size_t max_record_bytes = size_t{64} << 20;
  // Return records whose field count differs from the header's as they are
  // (the caller checks fields().size(), e.g. to reject that row and go on);
  // otherwise such a record is an error naming its line.
  bool allow_ragged = false;
  // Called after each block is read with the bytes consumed so far and the
  // source size (0 when unknown). Runs on the reading thread.
  std::function<void(uint64_t bytes_read, uint64_t total_bytes)> progress;
};

class CsvReader {
 public:
  // Opens a file and reads the header when options.has_header. Errors name
  // the file by `path` as given.
  static Result<std::unique_ptr<CsvReader>> Open(const std::string& path,
                                                 CsvReaderOptions options = {});
  // Reads from `in`, which must outlive the reader. `source_name` prefixes
  // error messages.
  static Result<std::unique_ptr<CsvReader>> FromStream(std::istream& in, std::string source_name,
                                                       CsvReaderOptions options = {});
  // Reads from an owned copy of `text`.
  static Result<std::unique_ptr<CsvReader>> FromString(std::string text, std::string source_name,
                                                       CsvReaderOptions options = {});

  class Source;  // where bytes come from (defined in src/data/csv_source.h)
  // Reads from `source` (the library's own sources: files, streams, strings,
  // file ranges).
  static Result<std::unique_ptr<CsvReader>> FromSource(std::unique_ptr<Source> source,
                                                       std::string source_name,
                                                       CsvReaderOptions options = {});

  ~CsvReader();
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;

  // Header fields (empty without has_header, or for an empty source).
  const std::vector<std::string>& header() const { return header_; }
  // Advances to the next record: true when there is one, false at the end.
  // After an error the reader should not be used again.
  Result<bool> Next();
  // Fields of the current record. The views point into the reader's buffers
  // and stay valid until the next call to Next().
  const std::vector<std::string_view>& fields() const { return fields_; }
  // 1-based line on which the current record starts.
  uint64_t line() const { return record_line_; }
  // Records returned so far, header excluded.
  uint64_t records() const { return records_; }
  // Bytes read from the source so far (whole blocks).
  uint64_t bytes_read() const { return bytes_read_; }
  // Bytes of the source up to the end of the current record.
  uint64_t position() const { return bytes_read_ - (end_ - begin_); }
  // Size of the source in bytes, 0 when unknown.
  uint64_t total_bytes() const { return total_bytes_; }
  const std::string& source_name() const { return source_name_; }

 private:
  CsvReader(std::unique_ptr<Source> source, std::string source_name, CsvReaderOptions options);
  Status ReadHeader();
  // Reads more bytes, keeping the unparsed tail [begin_, end_).
  Status Refill();
  enum class Parse { kRecord, kBlank, kNeedMore };
  Result<Parse> ParseRecord();
  Status Error(uint64_t line, std::string_view reason) const;

  std::unique_ptr<Source> source_;
  std::string source_name_;
  CsvReaderOptions options_;
  std::array<bool, 256> stop_{};  // bytes ending an unquoted field
  std::vector<char> buf_;         // data in [begin_, end_), then a '\n' sentinel
  size_t begin_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
  bool at_start_ = true;  // BOM check pending
  std::vector<std::string> header_;
  size_t expected_fields_ = 0;  // 0 until set by the header/first record
  std::vector<std::string_view> fields_;
  std::string scratch_;  // unescaped quoted fields of the current record
  struct ScratchField {
    size_t field;
    size_t offset;
    size_t size;
  };
  std::vector<ScratchField> scratch_fields_;
  uint64_t line_ = 1;  // line at begin_
  uint64_t record_line_ = 0;
  uint64_t records_ = 0;
  uint64_t bytes_read_ = 0;
  uint64_t total_bytes_ = 0;
};

struct CsvOptions {
  CsvReaderOptions reader;
  std::vector<std::string> missing_markers = DefaultMissingMarkers();
  // Column name -> type, overriding inference.
  std::map<std::string, ColumnType, std::less<>> types;
  // ReadCsvTable(path): a file of 16 MiB or more with no quote after its
  // header is cut at line ends into parts read at once on
  // ThreadPool::Default() (the result is the one-thread read's; progress is
  // then reported from any of the pool's threads, one at a time). Turn off
  // when the cores are busy otherwise, e.g. while reading two files at once.
  bool read_in_parts = true;
  // Column storage, once sized, is faulted in ahead of the rows read, 65,536
  // rows at a time (PrefaultPages): one system call instead of a page fault
  // per 4 KiB while filling it, at the price of up to 65,536 rows per column
  // backed before they are read. For bulk readers such as `keel drift`.
  // (Transparent huge pages were tried and dropped: on a machine whose
  // memory holds a large page cache, their faults compact memory, 0.2-0.6 s
  // of system time per drift run; docs/benchmarks.md.)
  bool bulk_memory = false;
};

// Reads a whole CSV file (with a header row) into a Table. Duplicate header
// names are InvalidArgument; an empty file is InvalidArgument ("no header
// row"); a header-only file gives a table with zero rows.
Result<Table> ReadCsvTable(const std::string& path, const CsvOptions& options = {});
// As above from a stream (seekable if a column changes type part-way).
Result<Table> ReadCsvTable(std::istream& in, std::string source_name,
                           const CsvOptions& options = {});

}  // namespace keel::data
