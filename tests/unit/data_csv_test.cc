#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "keel/data/csv.h"
#include "src/data/text.h"
#include "test_util.h"

namespace keel::data {
namespace {

using Records = std::vector<std::vector<std::string>>;

const std::string kCsvDir = KEEL_SOURCE_DIR "/tests/data/csv/";

struct ReadResult {
  std::vector<std::string> header;
  Records records;
  std::vector<uint64_t> lines;
  Status status;
};

ReadResult ReadAllRecords(std::unique_ptr<CsvReader> reader) {
  ReadResult out;
  out.header = reader->header();
  while (true) {
    Result<bool> more = reader->Next();
    if (!more.ok()) {
      out.status = more.status();
      break;
    }
    if (!*more) break;
    out.records.emplace_back(reader->fields().begin(), reader->fields().end());
    out.lines.push_back(reader->line());
  }
  return out;
}

ReadResult ReadString(std::string text, CsvReaderOptions options = {}) {
  auto reader = CsvReader::FromString(std::move(text), "mem.csv", options);
  if (!reader.ok()) {
    ReadResult r;
    r.status = reader.status();
    return r;
  }
  return ReadAllRecords(std::move(*reader));
}

ReadResult ReadFile(const std::string& path, CsvReaderOptions options = {}) {
  auto reader = CsvReader::Open(path, options);
  if (!reader.ok()) {
    ReadResult r;
    r.status = reader.status();
    return r;
  }
  return ReadAllRecords(std::move(*reader));
}

TEST(CsvReaderTest, QuotedFieldsCrlfAndLineNumbers) {
  ReadResult r = ReadFile(kCsvDir + "quoted_crlf.csv");
  ASSERT_OK(r.status);
  EXPECT_EQ(r.header, (std::vector<std::string>{"name", "quote", "note"}));
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[0],
            (std::vector<std::string>{"Smith, J.", "He said \"hi\"", "two\r\nlines"}));
  EXPECT_EQ(r.records[1], (std::vector<std::string>{"plain", "", "x"}));
  // The second record starts after the quoted line break.
  EXPECT_EQ(r.lines, (std::vector<uint64_t>{2, 4}));
}

TEST(CsvReaderTest, ByteOrderMarkIsSkipped) {
  ReadResult r = ReadFile(kCsvDir + "bom.csv");
  ASSERT_OK(r.status);
  EXPECT_EQ(r.header, (std::vector<std::string>{"id", "label"}));
  EXPECT_EQ(r.records, (Records{{"1", "a"}, {"2", "b"}}));
}

TEST(CsvReaderTest, QuotingEdgeCases) {
  ReadResult r = ReadString(
      "a,b,c\n"
      "\"\",,\"\"\"\"\n"                // empty quoted, empty, a lone quote
      "\"a,b\",\"x\"\"y\"\"z\",q\"r\n"  // delimiter inside quotes; doubled quotes; bare quote
      "1,2,");                          // trailing empty field, no final line end
  ASSERT_OK(r.status);
  EXPECT_EQ(r.records, (Records{{"", "", "\""}, {"a,b", "x\"y\"z", "q\"r"}, {"1", "2", ""}}));
  EXPECT_EQ(r.lines, (std::vector<uint64_t>{2, 3, 4}));
}

TEST(CsvReaderTest, LoneCrLineEndsAndBlankLines) {
  ReadResult r = ReadString("a,b\r1,2\r\r\n\n3,4\n\n");
  ASSERT_OK(r.status);
  EXPECT_EQ(r.records, (Records{{"1", "2"}, {"3", "4"}}));
  EXPECT_EQ(r.lines, (std::vector<uint64_t>{2, 5}));
}

TEST(CsvReaderTest, RaggedRowNamesFileAndLine) {
  ReadResult r = ReadFile(kCsvDir + "ragged.csv");
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status.message(), kCsvDir + "ragged.csv:5: 3 fields, header has 2");
  EXPECT_EQ(r.records.size(), 2u);
}

TEST(CsvReaderTest, AllowRaggedReturnsTheRecordAsItIs) {
  CsvReaderOptions options;
  options.allow_ragged = true;
  ReadResult r = ReadString("a,b\n1,2\n3\n4,5,6\n7,8\n", options);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.records.size(), 4u);
  EXPECT_EQ(r.records[1], (std::vector<std::string>{"3"}));
  EXPECT_EQ(r.records[2], (std::vector<std::string>{"4", "5", "6"}));
  EXPECT_EQ(r.lines, (std::vector<uint64_t>{2, 3, 4, 5}));
}

TEST(CsvReaderTest, RaggedWithoutHeaderComparesWithFirstRecord) {
  CsvReaderOptions options;
  options.has_header = false;
  ReadResult r = ReadString("1,2\n3\n", options);
  EXPECT_EQ(r.status.message(), "mem.csv:2: 1 fields, first record has 2");
  EXPECT_TRUE(r.header.empty());
  EXPECT_EQ(r.records, (Records{{"1", "2"}}));
}

TEST(CsvReaderTest, UnterminatedQuoteNamesRecordAndQuoteLines) {
  ReadResult r = ReadFile(kCsvDir + "unterminated.csv");
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.message(),
            kCsvDir + "unterminated.csv:5: unterminated quote starting at line 6");
  EXPECT_EQ(r.records.size(), 2u);
}

TEST(CsvReaderTest, GarbageAfterClosingQuote) {
  ReadResult r = ReadString("a,b\n1,\"x\"y\n");
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.message(),
            "mem.csv:2: unexpected character 'y' after a closing quote (field 2)");
}

TEST(CsvReaderTest, EmptyAndHeaderOnly) {
  ReadResult empty = ReadFile(kCsvDir + "empty.csv");
  ASSERT_OK(empty.status);
  EXPECT_TRUE(empty.header.empty());
  EXPECT_TRUE(empty.records.empty());

  ReadResult header_only = ReadFile(kCsvDir + "header_only.csv");
  ASSERT_OK(header_only.status);
  EXPECT_EQ(header_only.header, (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_TRUE(header_only.records.empty());
}

TEST(CsvReaderTest, MissingFileIsNotFound) {
  auto r = CsvReader::Open(kCsvDir + "no_such_file.csv");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST(CsvReaderTest, RecordLongerThanLimitIsResourceExhausted) {
  CsvReaderOptions options;
  options.block_size = 64;
  options.max_record_bytes = 1000;
  std::string text = "a,b\n1,\"" + std::string(5000, 'x') + "\"\n";
  ReadResult r = ReadString(text, options);
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.code(), StatusCode::kResourceExhausted);

  // The same record fits when the limit allows it.
  options.max_record_bytes = 10000;
  r = ReadString(text, options);
  ASSERT_OK(r.status);
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0][1].size(), 5000u);
}

TEST(CsvReaderTest, OtherDelimiterAndBadDelimiter) {
  CsvReaderOptions options;
  options.delimiter = ';';
  ReadResult r = ReadString("a;b\n\"1;2\";3\n", options);
  ASSERT_OK(r.status);
  EXPECT_EQ(r.records, (Records{{"1;2", "3"}}));
  options.delimiter = '"';
  EXPECT_FALSE(CsvReader::FromString("a\n", "x", options).ok());
}

// Random records with every awkward feature, written with random line ends,
// parsed with block sizes that split records, quotes, "" pairs and CRLF pairs
// at every position.
TEST(CsvReaderTest, RandomRecordsSurviveAnyBlockSize) {
  std::mt19937 rng(1234);
  const std::vector<std::string> pieces = {"a",    "bc", ",",   "\"",  "\n",
                                           "\r\n", " ",  "x y", "1.5", ""};
  const std::vector<std::string> line_ends = {"\n", "\r\n"};
  const size_t kFields = 4;
  Records expected;
  std::string text = "f0,f1,f2,f3\n";
  std::vector<uint64_t> expected_lines;
  uint64_t line = 2;
  for (int r = 0; r < 300; ++r) {
    std::vector<std::string> rec;
    expected_lines.push_back(line);
    for (size_t f = 0; f < kFields; ++f) {
      std::string value;
      int n = static_cast<int>(rng() % 4);
      for (int i = 0; i < n; ++i) value += pieces[rng() % pieces.size()];
      if (r % 7 == 0 && f == 0) value = std::string(300, 'L');  // longer than a small block
      bool needs_quotes =
          value.find_first_of(",\"\r\n") != std::string::npos || value.empty() || rng() % 3 == 0;
      if (f > 0) text += ',';
      if (needs_quotes) {
        text += '"';
        for (char c : value) {
          if (c == '"') text += '"';
          text += c;
        }
        text += '"';
      } else {
        text += value;
      }
      for (char c : value) line += c == '\n';
      rec.push_back(value);
    }
    text += line_ends[rng() % line_ends.size()];
    ++line;
    expected.push_back(rec);
  }
  for (size_t block : {64, 65, 97, 128, 1000, 1 << 20}) {
    CsvReaderOptions options;
    options.block_size = block;
    ReadResult r = ReadString(text, options);
    ASSERT_OK(r.status);
    EXPECT_EQ(r.records, expected) << "block " << block;
    EXPECT_EQ(r.lines, expected_lines) << "block " << block;
  }
}

TEST(CsvReaderTest, StreamSourceAndProgress) {
  std::string text = "a,b\n";
  for (int i = 0; i < 1000; ++i) text += std::to_string(i) + ",\"v" + std::to_string(i) + "\"\n";
  std::istringstream in(text);
  CsvReaderOptions options;
  options.block_size = 256;
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  options.progress = [&](uint64_t done, uint64_t total) { calls.emplace_back(done, total); };
  ASSERT_OK_AND_ASSIGN(auto reader, CsvReader::FromStream(in, "stream.csv", options));
  ReadResult r = ReadAllRecords(std::move(reader));
  ASSERT_OK(r.status);
  ASSERT_EQ(r.records.size(), 1000u);
  EXPECT_EQ(r.records[999], (std::vector<std::string>{"999", "v999"}));
  ASSERT_GT(calls.size(), 10u);
  for (size_t i = 1; i < calls.size(); ++i) EXPECT_GT(calls[i].first, calls[i - 1].first);
  EXPECT_EQ(calls.back().first, text.size());
  EXPECT_EQ(calls.back().second, text.size());
}

// --- ReadCsvTable ------------------------------------------------------------------

TEST(ReadCsvTableTest, InfersTypesWithMissingMarkers) {
  ASSERT_OK_AND_ASSIGN(Table t, ReadCsvTable(kCsvDir + "types.csv"));
  ASSERT_EQ(t.num_rows(), 6u);
  ASSERT_EQ(t.num_columns(), 6u);

  const Column& num = t.column(0);
  EXPECT_EQ(num.type(), ColumnType::kNumeric);
  ASSERT_EQ(num.values().size(), 6u);
  EXPECT_EQ(num.values()[0], 1.5);
  EXPECT_EQ(num.values()[1], 2.0);  // "+2"
  EXPECT_EQ(num.values()[2], 3.0);  // quoted "3"
  EXPECT_TRUE(std::isnan(num.values()[3]));
  EXPECT_EQ(num.values()[4], -1000.0);
  EXPECT_EQ(num.values()[5], HUGE_VAL);  // "inf"
  EXPECT_EQ(num.missing_count(), 1u);

  const Column& flag = t.column(1);
  EXPECT_EQ(flag.type(), ColumnType::kBoolean);
  EXPECT_EQ(flag.values()[0], 1.0);
  EXPECT_EQ(flag.values()[1], 0.0);  // FALSE
  EXPECT_EQ(flag.values()[2], 1.0);  // True
  EXPECT_TRUE(std::isnan(flag.values()[4]));
  EXPECT_EQ(flag.missing_count(), 1u);

  const Column& yn = t.column(2);
  EXPECT_EQ(yn.type(), ColumnType::kCategorical);
  EXPECT_EQ(yn.dictionary(), (std::vector<std::string>{"yes", "no"}));
  EXPECT_EQ(yn.codes(), (std::vector<int32_t>{0, 1, 0, 1, 1, 0}));

  // Numeric for three rows, then "abc": categorical, with the original text
  // of the earlier rows ("1.50", "007"), first-seen order.
  const Column& mixed = t.column(3);
  EXPECT_EQ(mixed.type(), ColumnType::kCategorical);
  EXPECT_EQ(mixed.dictionary(), (std::vector<std::string>{"10", "20", "1.50", "abc", "007"}));
  EXPECT_EQ(mixed.codes(), (std::vector<int32_t>{0, 1, 2, 3, 4, -1}));
  EXPECT_EQ(mixed.missing_count(), 1u);

  const Column& allna = t.column(4);
  EXPECT_EQ(allna.type(), ColumnType::kNumeric);
  EXPECT_EQ(allna.missing_count(), 6u);

  EXPECT_EQ(t.column(5).type(), ColumnType::kNumeric);
  EXPECT_EQ(t.ColumnIndex("code"), 5);
  EXPECT_EQ(t.ColumnIndex("nope"), -1);
}

// Numbers must read exactly as std::from_chars reads them, whatever path the
// parser takes (plain decimals have a fast path).
TEST(ReadCsvTableTest, NumbersMatchFromChars) {
  std::mt19937_64 rng(99);
  std::vector<std::string> texts;
  for (int i = 0; i < 20000; ++i) {
    std::string t;
    if (rng() % 3 == 0) t += '-';
    int int_digits = static_cast<int>(rng() % 21);
    for (int d = 0; d < int_digits; ++d) t += static_cast<char>('0' + rng() % 10);
    if (rng() % 2 == 0 || int_digits == 0) {
      t += '.';
      int frac = static_cast<int>(rng() % 26) + (int_digits == 0 ? 1 : 0);
      for (int d = 0; d < frac; ++d) t += static_cast<char>('0' + rng() % 10);
    }
    if (rng() % 10 == 0) t += "e" + std::to_string(static_cast<int>(rng() % 40) - 20);
    texts.push_back(t);
  }
  texts.insert(texts.end(),
               {"9007199254740993", "9007199254740992.5", "0.1", "-0", "1e308", "4.9e-324",
                "123456789012345678901234567890", "0.3000000000000000444"});
  std::string csv = "v\n";
  for (const std::string& t : texts) csv += t + "\n";
  std::istringstream in(csv);
  ASSERT_OK_AND_ASSIGN(Table table, ReadCsvTable(in, "numbers.csv"));
  const Column& v = table.column(0);
  ASSERT_EQ(v.type(), ColumnType::kNumeric);
  ASSERT_EQ(v.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    double want = 0;
    auto res = std::from_chars(texts[i].data(), texts[i].data() + texts[i].size(), want);
    ASSERT_EQ(res.ec, std::errc()) << texts[i];
    ASSERT_EQ(std::signbit(v.values()[i]), std::signbit(want)) << texts[i];
    ASSERT_EQ(v.values()[i], want) << texts[i];
  }
}

// Decimals of 17-19 digits (most shortest round-trip texts of doubles) take
// one extended-precision division; it must give std::from_chars's double, or
// decline. Texts within a few units of the 19th digit of a halfway point
// between two doubles are where a second rounding could go wrong.
TEST(ReadCsvTableTest, LongDecimalsMatchFromChars) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  uint64_t checked = 0, declined = 0;
  auto check = [&](const std::string& text) {
    double want = 0;
    auto res = std::from_chars(text.data(), text.data() + text.size(), want);
    ASSERT_EQ(res.ec, std::errc()) << text;
    double got = 0;
    ASSERT_TRUE(internal::ParseNumber(text, &got)) << text;
    ASSERT_EQ(std::bit_cast<uint64_t>(got), std::bit_cast<uint64_t>(want)) << text;
    // The division alone, on the text's digits.
    uint64_t mantissa = 0;
    int digits = 0, fraction = -1;
    for (char c : text) {
      if (c == '.') {
        fraction = 0;
      } else if (c != '-') {
        mantissa = mantissa * 10 + static_cast<uint64_t>(c - '0');
        ++digits;
        if (fraction >= 0) ++fraction;
      }
    }
    fraction = std::max(fraction, 0);
    if (digits > 19 || fraction > 22) return;  // outside the division's domain
    double direct = 0;
    if (internal::DivideExtended(mantissa, fraction, &direct)) {
      ASSERT_EQ(std::bit_cast<uint64_t>(text[0] == '-' ? -direct : direct),
                std::bit_cast<uint64_t>(want))
          << text;
    } else {
      ++declined;
    }
    ++checked;
  };
  char buf[64];
  for (int i = 0; i < 200000; ++i) {
    // Shortest round-trip texts of doubles of several magnitudes.
    const double x = (unit(rng) - 0.5) * std::pow(10.0, static_cast<int>(rng() % 7) - 2);
    auto r = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::fixed);
    check(std::string(buf, r.ptr));
  }
  for (int i = 0; i < 200000; ++i) {
    // Near the halfway point between a double and the next one up: exact in
    // long double, printed to 19 significant digits, then nudged.
    const double d = 1.0 + unit(rng) * 999.0;
    const long double mid =
        (static_cast<long double>(d) + static_cast<long double>(std::nextafter(d, 2e3))) / 2;
    const int int_digits = d < 10 ? 1 : (d < 100 ? 2 : 3);
    const int n = std::snprintf(buf, sizeof buf, "%.*Lf", 19 - int_digits, mid);
    std::string text(buf, static_cast<size_t>(n));
    const int nudge = static_cast<int>(rng() % 5) - 2;  // -2..+2 in the last digit
    if (nudge != 0 && text.back() - '0' + nudge >= 0 && text.back() - '0' + nudge <= 9) {
      text.back() = static_cast<char>(text.back() + nudge);
    }
    check(text);
  }
  EXPECT_GT(checked, 300000u);
  // Some texts land on a halfway point of the 64-bit quotient and go to the
  // general path; far from all.
  EXPECT_GT(declined, 0u);
  EXPECT_LT(declined, checked / 10);
}

TEST(ReadCsvTableTest, FractionDigitsReadEightAtATime) {
  // Every byte value at every position of both eight-digit words of the
  // fraction: a text is a number exactly when from_chars reads all of it.
  const std::string base = "-12.3456789012345678";  // 16 fraction digits: two words
  for (size_t at = 4; at < base.size(); ++at) {
    for (int byte = 1; byte < 256; ++byte) {
      std::string text = base;
      text[at] = static_cast<char>(byte);
      double want = 0;
      const auto r = std::from_chars(text.data(), text.data() + text.size(), want);
      const bool number = r.ec == std::errc() && r.ptr == text.data() + text.size();
      double got = 0;
      const bool parsed = internal::ParseSimpleDecimal(text, &got);
      if (number && parsed) {
        ASSERT_EQ(std::bit_cast<uint64_t>(got), std::bit_cast<uint64_t>(want)) << text;
      } else if (!number) {
        ASSERT_FALSE(parsed) << "byte " << byte << " at " << at;
      }
    }
  }
  // Fractions of 7 to 25 digits around the word boundaries; past 19 digits
  // in all the text goes to the general path, which still reads it.
  for (int digits = 7; digits <= 25; ++digits) {
    std::string text = "0.";
    for (int i = 0; i < digits; ++i) text += static_cast<char>('1' + (i * 7) % 9);
    double want = 0;
    std::from_chars(text.data(), text.data() + text.size(), want);
    double got = 0;
    EXPECT_EQ(internal::ParseSimpleDecimal(text, &got), digits + 1 <= 19) << text;
    ASSERT_TRUE(internal::ParseNumber(text, &got)) << text;
    EXPECT_EQ(std::bit_cast<uint64_t>(got), std::bit_cast<uint64_t>(want)) << text;
  }
  EXPECT_EQ(internal::EightDigitsValue(internal::LoadEightBytes("01234567")), 1234567u);
  EXPECT_EQ(internal::EightDigitsValue(internal::LoadEightBytes("99999999")), 99999999u);
  EXPECT_FALSE(internal::EightDigits(internal::LoadEightBytes("1234567/")));
  EXPECT_FALSE(internal::EightDigits(internal::LoadEightBytes(":1234567")));
}

TEST(ReadCsvTableTest, BlanksAroundNumbersAndNonNumbers) {
  std::istringstream in("a,b,c\n 1 ,\"1,234\",0x10\n\t2.5,5,  \n");
  ASSERT_OK_AND_ASSIGN(Table t, ReadCsvTable(in, "blanks.csv"));
  EXPECT_EQ(t.column(0).type(), ColumnType::kNumeric);
  EXPECT_EQ(t.column(0).values(), (std::vector<double>{1, 2.5}));
  EXPECT_EQ(t.column(1).type(), ColumnType::kCategorical);  // thousands separator
  EXPECT_EQ(t.column(1).dictionary(), (std::vector<std::string>{"1,234", "5"}));
  EXPECT_EQ(t.column(2).type(), ColumnType::kCategorical);  // hex; "  " is missing
  EXPECT_EQ(t.column(2).codes(), (std::vector<int32_t>{0, -1}));
}

TEST(ReadCsvTableTest, StreamWithLateTypeChangeIsReadTwice) {
  std::string text = "x\n";
  for (int i = 0; i < 5000; ++i) text += std::to_string(i) + "\n";
  text += "oops\n";
  std::istringstream in(text);
  CsvOptions options;
  options.reader.block_size = 4096;
  ASSERT_OK_AND_ASSIGN(Table t, ReadCsvTable(in, "late.csv", options));
  const Column& x = t.column(0);
  ASSERT_EQ(x.type(), ColumnType::kCategorical);
  ASSERT_EQ(x.dictionary().size(), 5001u);
  EXPECT_EQ(x.dictionary()[0], "0");
  EXPECT_EQ(x.dictionary()[4999], "4999");
  EXPECT_EQ(x.dictionary()[5000], "oops");
  for (int32_t i = 0; i <= 5000; ++i) ASSERT_EQ(x.codes()[static_cast<size_t>(i)], i);
}

TEST(ReadCsvTableTest, SchemaOverridesWin) {
  CsvOptions options;
  options.types["code"] = ColumnType::kCategorical;
  options.types["num"] = ColumnType::kNumeric;
  options.types["yn"] = ColumnType::kBoolean;
  ASSERT_OK_AND_ASSIGN(Table t, ReadCsvTable(kCsvDir + "types.csv", options));
  const Column* code = t.FindColumn("code");
  ASSERT_NE(code, nullptr);
  EXPECT_EQ(code->type(), ColumnType::kCategorical);
  EXPECT_EQ(code->dictionary(), (std::vector<std::string>{"415", "510", "408"}));
  const Column* yn = t.FindColumn("yn");
  EXPECT_EQ(yn->type(), ColumnType::kBoolean);
  EXPECT_EQ(yn->values(), (std::vector<double>{1, 0, 1, 0, 0, 1}));
}

TEST(ReadCsvTableTest, OverrideErrors) {
  CsvOptions options;
  options.types["absent"] = ColumnType::kNumeric;
  auto r = ReadCsvTable(kCsvDir + "types.csv", options);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("schema names column 'absent'"), std::string::npos)
      << r.status().message();

  options.types.clear();
  options.types["mixed"] = ColumnType::kNumeric;
  r = ReadCsvTable(kCsvDir + "types.csv", options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), kCsvDir +
                                      "types.csv:5: column 'mixed' is numeric by schema, 'abc' "
                                      "is not a number");
}

TEST(ReadCsvTableTest, CustomMissingMarkers) {
  std::string text = "a,b\n1,x\n-,y\n3,\n";
  CsvOptions options;
  options.missing_markers = {"-"};
  std::istringstream in(text);
  ASSERT_OK_AND_ASSIGN(Table t, ReadCsvTable(in, "m.csv", options));
  EXPECT_EQ(t.column(0).type(), ColumnType::kNumeric);
  EXPECT_EQ(t.column(0).missing_count(), 1u);
  // "" is no longer missing: a category of its own.
  EXPECT_EQ(t.column(1).dictionary(), (std::vector<std::string>{"x", "y", ""}));
  EXPECT_EQ(t.column(1).missing_count(), 0u);
}

TEST(ReadCsvTableTest, EmptyHeaderOnlyAndDuplicates) {
  auto empty = ReadCsvTable(kCsvDir + "empty.csv");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().message(), kCsvDir + "empty.csv: empty file, no header row");

  ASSERT_OK_AND_ASSIGN(Table header_only, ReadCsvTable(kCsvDir + "header_only.csv"));
  EXPECT_EQ(header_only.num_rows(), 0u);
  EXPECT_EQ(header_only.ColumnNames(), (std::vector<std::string>{"x", "y", "z"}));

  std::istringstream dup("a,b,a\n1,2,3\n");
  auto d = ReadCsvTable(dup, "dup.csv");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), "dup.csv:1: duplicate column name 'a'");

  auto ragged = ReadCsvTable(kCsvDir + "ragged.csv");
  ASSERT_FALSE(ragged.ok());
  EXPECT_EQ(ragged.status().message(), kCsvDir + "ragged.csv:5: 3 fields, header has 2");
}

TEST(ReadCsvTableTest, ChurnDataset) {
  const std::string path = KEEL_SOURCE_DIR "/../shared/data/mlc_churn.csv";
  uint64_t last_done = 0, last_total = 1;
  CsvOptions options;
  options.reader.block_size = 64 * 1024;
  options.reader.progress = [&](uint64_t done, uint64_t total) {
    last_done = done;
    last_total = total;
  };
  ASSERT_OK_AND_ASSIGN(Table t, ReadCsvTable(path, options));
  EXPECT_EQ(last_done, last_total);
  ASSERT_EQ(t.num_rows(), 5000u);
  ASSERT_EQ(t.num_columns(), 20u);
  const std::vector<std::string> categorical = {"state", "area_code", "international_plan",
                                                "voice_mail_plan", "churn"};
  for (const Column& c : t.columns()) {
    bool cat = std::find(categorical.begin(), categorical.end(), c.name()) != categorical.end();
    EXPECT_EQ(c.type(), cat ? ColumnType::kCategorical : ColumnType::kNumeric) << c.name();
    EXPECT_EQ(c.missing_count(), 0u) << c.name();
  }
  const Column& state = *t.FindColumn("state");
  EXPECT_EQ(state.dictionary().size(), 51u);
  EXPECT_EQ(state.ValueText(0), "KS");
  EXPECT_EQ(state.ValueText(4999), "VT");
  EXPECT_EQ(t.FindColumn("area_code")->dictionary().size(), 3u);
  EXPECT_EQ(t.FindColumn("account_length")->values()[0], 128.0);
  EXPECT_EQ(t.FindColumn("total_day_charge")->values()[0], 45.07);
  EXPECT_EQ(t.FindColumn("total_intl_charge")->values()[4999], 2.51);
  const Column& churn = *t.FindColumn("churn");
  size_t yes = 0;
  for (size_t r = 0; r < t.num_rows(); ++r) yes += churn.ValueText(r) == "yes";
  EXPECT_EQ(yes, 707u);  // counted with awk on the file
}

// --- Table -----------------------------------------------------------------------

TEST(TableTest, TakeAndSplit) {
  Table t;
  ASSERT_OK(t.AddColumn(Column::Numeric("x", {0, 1, 2, 3, 4, 5, 6, 7, 8, 9})));
  ASSERT_OK(t.AddColumn(
      Column::CategoricalFromText("c", {"a", "b", "a", "b", "a", "b", "a", "b", "NA", "b"})));
  EXPECT_FALSE(t.AddColumn(Column::Numeric("x", std::vector<double>(10))).ok());
  EXPECT_FALSE(t.AddColumn(Column::Numeric("y", {1, 2})).ok());
  EXPECT_EQ(t.column(1).missing_count(), 1u);

  std::vector<uint32_t> rows = {9, 8, 0};
  ASSERT_OK_AND_ASSIGN(Table s, t.Take(rows));
  EXPECT_EQ(s.num_rows(), 3u);
  EXPECT_EQ(s.column(0).values(), (std::vector<double>{9, 8, 0}));
  EXPECT_EQ(s.column(1).codes(), (std::vector<int32_t>{1, -1, 0}));
  EXPECT_EQ(s.column(1).missing_count(), 1u);
  EXPECT_EQ(&s.column(1).dictionary(), &t.column(1).dictionary());  // shared
  std::vector<uint32_t> bad = {10};
  EXPECT_FALSE(t.Take(bad).ok());

  RowSplit a = SplitRows(1000, 0.2, 42);
  RowSplit b = SplitRows(1000, 0.2, 42);
  RowSplit c = SplitRows(1000, 0.2, 43);
  EXPECT_EQ(a.validation.size(), 200u);
  EXPECT_EQ(a.train.size(), 800u);
  EXPECT_EQ(a.validation, b.validation);
  EXPECT_NE(a.validation, c.validation);
  std::vector<uint32_t> all = a.train;
  all.insert(all.end(), a.validation.begin(), a.validation.end());
  std::sort(all.begin(), all.end());
  for (uint32_t i = 0; i < 1000; ++i) ASSERT_EQ(all[i], i);

  // Stratified: 10% positives stay 10% in each part.
  std::vector<double> label(1000, 0.0);
  for (size_t i = 0; i < 1000; i += 10) label[i] = 1.0;
  ASSERT_OK_AND_ASSIGN(Column y, Column::Boolean("y", label));
  RowSplit s2 = SplitRows(1000, 0.25, 7, &y);
  size_t pos_val = 0;
  for (uint32_t r : s2.validation) pos_val += label[r] == 1.0;
  EXPECT_EQ(s2.validation.size(), 250u);
  EXPECT_EQ(pos_val, 25u);
}

}  // namespace
}  // namespace keel::data
