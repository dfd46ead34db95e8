// ReadCsvTable of a large file reads it in parts on all cores
// (internal::ReadInParts); these tests check that the parts give exactly what
// the one-thread read gives (the stream overload never reads in parts), that
// ReadInParts declines what it cannot read the same way, and that errors are
// the serial read's. Parts of 64 KiB keep the files small.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "keel/core/thread_pool.h"
#include "keel/data/csv.h"
#include "src/data/csv_parts.h"
#include "test_util.h"

namespace keel::data {
namespace {

using keel::testing::TempDir;

constexpr uint64_t kPart = 64 << 10;
constexpr size_t kRows = 60000;  // about 2.3 MB: some 35 parts

void ExpectSameTable(const Table& got, const Table& want) {
  ASSERT_EQ(got.num_rows(), want.num_rows());
  ASSERT_EQ(got.num_columns(), want.num_columns());
  for (size_t j = 0; j < want.num_columns(); ++j) {
    const Column& g = got.column(j);
    const Column& w = want.column(j);
    SCOPED_TRACE(w.name());
    EXPECT_EQ(g.name(), w.name());
    ASSERT_EQ(g.type(), w.type());
    EXPECT_EQ(g.missing_count(), w.missing_count());
    EXPECT_EQ(g.dictionary(), w.dictionary());  // first-seen order over the whole file
    EXPECT_EQ(g.codes(), w.codes());
    ASSERT_EQ(g.values().size(), w.values().size());
    for (size_t i = 0; i < w.values().size(); ++i) {
      const double a = g.values()[i], b = w.values()[i];
      if (!(a == b || (std::isnan(a) && std::isnan(b)))) {
        ADD_FAILURE() << "row " << i << ": " << a << " vs " << b;
        return;
      }
    }
  }
}

Table ReadSerially(const std::string& path, const CsvOptions& options = {}) {
  std::ifstream in(path, std::ios::binary);
  Result<Table> t = ReadCsvTable(in, path, options);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : Table();
}

// Columns that exercise every inference path across parts: numbers, text,
// booleans, a column missing in the whole first half, numbers that turn to
// text late in the file (categorical overall: early parts are read again), a
// column of numbers then "true" (categorical), and CRLF line ends with blank
// lines.
std::string MakeCsv(size_t rows, const std::string& tail_row = "") {
  std::ostringstream out;
  out << "\xEF\xBB\xBFx,city,flag,late,turns,mixed,id,early,sparse\r\n";
  for (size_t i = 0; i < rows; ++i) {
    out << (i % 97 == 0 ? std::string("NA") : std::to_string(static_cast<double>(i) * 0.37 - 5))
        << ",c" << (i * 7919 % 53) << "," << (i % 3 == 0 ? "true" : "FALSE") << ","
        << (i < rows / 2 ? "" : std::to_string(i % 11)) << ","
        << (i + 1000 < rows ? std::to_string(i % 5) : "five") << ","
        << (i + 10 < rows ? "1.5" : "true") << "," << i << ","
        << (i < 20 ? "text" : std::to_string(i % 7)) << ","
        << (i < 100 || i + 100 >= rows ? "s" + std::to_string(i % 4) : "") << "\r\n";
    if (i % 5000 == 0) out << "\r\n";
  }
  out << tail_row;
  return out.str();
}

// Parts need a pool of two threads or more.
#define SKIP_ON_ONE_THREAD() \
  if (ThreadPool::Default().size() < 2) GTEST_SKIP() << "one thread: no parts"

TEST(ReadCsvInPartsTest, EqualsTheSerialRead) {
  SKIP_ON_ONE_THREAD();
  TempDir dir;
  const std::string path = (dir.path() / "big.csv").string();
  const std::string text = MakeCsv(kRows);
  std::ofstream(path, std::ios::binary) << text;
  uint64_t last_progress = 0;
  CsvOptions options;
  options.reader.progress = [&](uint64_t done, uint64_t total) {
    EXPECT_LE(done, total);
    last_progress = done;
  };
  std::optional<Table> parts = internal::ReadInParts(path, options, kPart);
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(last_progress, text.size());
  ExpectSameTable(*parts, ReadSerially(path));
  EXPECT_EQ(parts->column(0).type(), ColumnType::kNumeric);
  EXPECT_EQ(parts->column(1).type(), ColumnType::kCategorical);
  EXPECT_EQ(parts->column(2).type(), ColumnType::kBoolean);
  EXPECT_EQ(parts->column(3).type(), ColumnType::kNumeric);
  EXPECT_EQ(parts->column(4).type(), ColumnType::kCategorical);
  EXPECT_EQ(parts->column(5).type(), ColumnType::kCategorical);
  EXPECT_EQ(parts->column(7).type(), ColumnType::kCategorical);  // text first, numbers later
  EXPECT_EQ(parts->column(8).type(), ColumnType::kCategorical);  // missing in the middle parts
  EXPECT_EQ(parts->column(8).missing_count(), kRows - 200);
  EXPECT_EQ(parts->num_rows(), kRows);
}

// CsvOptions::bulk_memory changes how column storage is backed, never what
// is read: in parts, serially, and through ReadCsvTable.
TEST(ReadCsvInPartsTest, BulkMemoryReadsTheSame) {
  SKIP_ON_ONE_THREAD();
  TempDir dir;
  const std::string path = (dir.path() / "bulk.csv").string();
  std::ofstream(path, std::ios::binary) << MakeCsv(kRows);
  CsvOptions bulk;
  bulk.bulk_memory = true;
  const Table want = ReadSerially(path);
  std::optional<Table> parts = internal::ReadInParts(path, bulk, kPart);
  ASSERT_TRUE(parts.has_value());
  ExpectSameTable(*parts, want);
  ExpectSameTable(ReadSerially(path, bulk), want);
  bulk.read_in_parts = false;
  Result<Table> whole = ReadCsvTable(path, bulk);
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  ExpectSameTable(*whole, want);
}

TEST(ReadCsvInPartsTest, SchemaOverridesApplyToEveryPart) {
  SKIP_ON_ONE_THREAD();
  TempDir dir;
  const std::string path = (dir.path() / "typed.csv").string();
  std::ofstream(path, std::ios::binary) << MakeCsv(kRows);
  CsvOptions options;
  options.types["id"] = ColumnType::kCategorical;
  options.types["flag"] = ColumnType::kCategorical;
  std::optional<Table> parts = internal::ReadInParts(path, options, kPart);
  ASSERT_TRUE(parts.has_value());
  ExpectSameTable(*parts, ReadSerially(path, options));
  EXPECT_EQ(parts->FindColumn("id")->dictionary().size(), kRows);
}

TEST(ReadCsvInPartsTest, SmallFilesAndQuotedFieldsAreReadSerially) {
  SKIP_ON_ONE_THREAD();
  TempDir dir;
  const std::string small = (dir.path() / "small.csv").string();
  std::ofstream(small, std::ios::binary) << MakeCsv(1000);
  EXPECT_FALSE(internal::ReadInParts(small, {}, kPart).has_value());

  const std::string path = (dir.path() / "quoted.csv").string();
  // A quoted field holding a line end and a delimiter, near the end.
  std::ofstream(path, std::ios::binary)
      << MakeCsv(kRows, "1,\"two\nlines, one field\",true,1,1,1.5,-1,1,s1\r\n");
  EXPECT_FALSE(internal::ReadInParts(path, {}, kPart).has_value());
  ASSERT_OK_AND_ASSIGN(Table table, ReadCsvTable(path));
  ExpectSameTable(table, ReadSerially(path));
  const Column& city = *table.FindColumn("city");
  EXPECT_EQ(city.ValueText(table.num_rows() - 1), "two\nlines, one field");
}

TEST(ReadCsvInPartsTest, ErrorsNameTheSameLineAsTheSerialRead) {
  SKIP_ON_ONE_THREAD();
  TempDir dir;
  const std::string ragged = (dir.path() / "ragged.csv").string();
  std::ofstream(ragged, std::ios::binary) << MakeCsv(kRows, "1,2,3\n");
  EXPECT_FALSE(internal::ReadInParts(ragged, {}, kPart).has_value());
  Result<Table> got = ReadCsvTable(ragged);
  ASSERT_FALSE(got.ok());
  std::ifstream in(ragged, std::ios::binary);
  Result<Table> want = ReadCsvTable(in, ragged);
  ASSERT_FALSE(want.ok());
  EXPECT_EQ(got.status().ToString(), want.status().ToString());
  // Physical line: header, kRows records, one blank line per 5000 records.
  const size_t line = 1 + kRows + (kRows + 4999) / 5000 + 1;
  EXPECT_NE(got.status().message().find(":" + std::to_string(line) + ": 3 fields, header has 9"),
            std::string::npos)
      << got.status().ToString();

  const std::string bad_number = (dir.path() / "bad_number.csv").string();
  std::ofstream(bad_number, std::ios::binary) << MakeCsv(kRows);
  CsvOptions options;
  options.types["turns"] = ColumnType::kNumeric;  // "five" near the end is refused
  EXPECT_FALSE(internal::ReadInParts(bad_number, options, kPart).has_value());
  Result<Table> refused = ReadCsvTable(bad_number, options);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("column 'turns' is numeric by schema, 'five'"),
            std::string::npos)
      << refused.status().ToString();
}

}  // namespace
}  // namespace keel::data
