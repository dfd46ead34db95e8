#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>

#include "keel/data/csv.h"
#include "src/data/csv_source.h"

namespace keel::data {

namespace {

class FileSource : public CsvReader::Source {
 public:
  FileSource(int fd, std::string path, uint64_t size)
      : fd_(fd), path_(std::move(path)), size_(size) {}
  ~FileSource() override { ::close(fd_); }

  Result<size_t> Read(char* dst, size_t n) override {
    while (true) {
      ssize_t got = ::read(fd_, dst, n);
      if (got >= 0) return static_cast<size_t>(got);
      if (errno == EINTR) continue;
      return Internal(path_ + ": read failed: " + std::strerror(errno));
    }
  }
  uint64_t Size() const override { return size_; }

 private:
  int fd_;
  std::string path_;
  uint64_t size_;
};

class StreamSource : public CsvReader::Source {
 public:
  StreamSource(std::istream& in, std::string name) : in_(in), name_(std::move(name)) {
    std::streampos here = in_.tellg();
    if (here != std::streampos(-1) && in_.seekg(0, std::ios::end)) {
      std::streampos last = in_.tellg();
      if (last != std::streampos(-1) && last >= here) {
        size_ = static_cast<uint64_t>(last - here);
      }
      in_.seekg(here);
    }
    in_.clear();
  }

  Result<size_t> Read(char* dst, size_t n) override {
    if (in_.eof()) return size_t{0};
    in_.read(dst, static_cast<std::streamsize>(n));
    if (in_.bad()) return Internal(name_ + ": read failed");
    return static_cast<size_t>(in_.gcount());
  }
  uint64_t Size() const override { return size_; }

 private:
  std::istream& in_;
  std::string name_;
  uint64_t size_ = 0;
};

class StringSource : public CsvReader::Source {
 public:
  explicit StringSource(std::string text) : text_(std::move(text)) {}
  Result<size_t> Read(char* dst, size_t n) override {
    size_t k = std::min(n, text_.size() - pos_);
    std::memcpy(dst, text_.data() + pos_, k);
    pos_ += k;
    return k;
  }
  uint64_t Size() const override { return text_.size(); }

 private:
  std::string text_;
  size_t pos_ = 0;
};

// Bytes that end an unquoted field: '\n', '\r' and the delimiter.
std::array<bool, 256> StopTable(char delimiter) {
  std::array<bool, 256> t{};
  t['\n'] = true;
  t['\r'] = true;
  t[static_cast<unsigned char>(delimiter)] = true;
  return t;
}

// Readable bytes after the sentinel, so FindFieldEnd can load 16 bytes at
// any position up to the sentinel.
constexpr size_t kScanPadding = 16;

// The first byte at or after `p` that ends an unquoted field: the delimiter
// `delim` or a line end (the bytes `stop` marks). The buffer's '\n' sentinel
// bounds the search, and kScanPadding bytes after it may be read (their
// contents do not matter: the sentinel comes first). Sixteen bytes per step
// with SSE2, else one.
inline const char* FindFieldEnd(const char* p, char delim, const std::array<bool, 256>& stop) {
#if defined(__SSE2__)
  (void)stop;
  const __m128i d = _mm_set1_epi8(delim);
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i cr = _mm_set1_epi8('\r');
  while (true) {
    const __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i hit =
        _mm_or_si128(_mm_cmpeq_epi8(chunk, d),
                     _mm_or_si128(_mm_cmpeq_epi8(chunk, lf), _mm_cmpeq_epi8(chunk, cr)));
    const auto mask = static_cast<unsigned>(_mm_movemask_epi8(hit));
    if (mask != 0) return p + std::countr_zero(mask);
    p += 16;
  }
#else
  (void)delim;
  while (!stop[static_cast<unsigned char>(*p)]) ++p;
  return p;
#endif
}

Status CheckOptions(const CsvReaderOptions& options) {
  char d = options.delimiter;
  if (d == '"' || d == '\n' || d == '\r') {
    return InvalidArgument("CSV delimiter cannot be a quote or a line end");
  }
  return OkStatus();
}

}  // namespace

CsvReader::CsvReader(std::unique_ptr<Source> source, std::string source_name,
                     CsvReaderOptions options)
    : source_(std::move(source)),
      source_name_(std::move(source_name)),
      options_(std::move(options)) {
  options_.block_size = std::max<size_t>(options_.block_size, 64);
  if (options_.max_record_bytes == 0) options_.max_record_bytes = 1;
  buf_.resize(options_.block_size + 1 + kScanPadding);
  buf_[0] = '\n';
  stop_ = StopTable(options_.delimiter);
  total_bytes_ = source_->Size();
}

CsvReader::~CsvReader() = default;

Result<std::unique_ptr<CsvReader>> CsvReader::Open(const std::string& path,
                                                   CsvReaderOptions options) {
  KEEL_RETURN_IF_ERROR(CheckOptions(options));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string msg = path + ": " + std::strerror(err);
    return err == ENOENT ? NotFound(msg) : InvalidArgument(msg);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    ::close(fd);
    return InvalidArgument(path + ": not a readable file");
  }
#ifdef POSIX_FADV_SEQUENTIAL
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
  auto source = std::make_unique<FileSource>(fd, path, static_cast<uint64_t>(st.st_size));
  std::unique_ptr<CsvReader> reader(new CsvReader(std::move(source), path, std::move(options)));
  KEEL_RETURN_IF_ERROR(reader->ReadHeader());
  return reader;
}

Result<std::unique_ptr<CsvReader>> CsvReader::FromStream(std::istream& in, std::string source_name,
                                                         CsvReaderOptions options) {
  KEEL_RETURN_IF_ERROR(CheckOptions(options));
  auto source = std::make_unique<StreamSource>(in, source_name);
  std::unique_ptr<CsvReader> reader(
      new CsvReader(std::move(source), std::move(source_name), std::move(options)));
  KEEL_RETURN_IF_ERROR(reader->ReadHeader());
  return reader;
}

Result<std::unique_ptr<CsvReader>> CsvReader::FromString(std::string text, std::string source_name,
                                                         CsvReaderOptions options) {
  KEEL_RETURN_IF_ERROR(CheckOptions(options));
  auto source = std::make_unique<StringSource>(std::move(text));
  std::unique_ptr<CsvReader> reader(
      new CsvReader(std::move(source), std::move(source_name), std::move(options)));
  KEEL_RETURN_IF_ERROR(reader->ReadHeader());
  return reader;
}

Result<std::unique_ptr<CsvReader>> CsvReader::FromSource(std::unique_ptr<Source> source,
                                                         std::string source_name,
                                                         CsvReaderOptions options) {
  KEEL_RETURN_IF_ERROR(CheckOptions(options));
  std::unique_ptr<CsvReader> reader(
      new CsvReader(std::move(source), std::move(source_name), std::move(options)));
  KEEL_RETURN_IF_ERROR(reader->ReadHeader());
  return reader;
}

Status CsvReader::Error(uint64_t line, std::string_view reason) const {
  return InvalidArgument(source_name_ + ":" + std::to_string(line) + ": " + std::string(reason));
}

Status CsvReader::ReadHeader() {
  if (!options_.has_header) return OkStatus();
  KEEL_ASSIGN_OR_RETURN(bool any, Next());
  if (!any) return OkStatus();
  header_.assign(fields_.begin(), fields_.end());
  records_ = 0;
  return OkStatus();
}

Status CsvReader::Refill() {
  size_t tail = end_ - begin_;
  if (tail > options_.max_record_bytes) {
    return ResourceExhausted(source_name_ + ":" + std::to_string(line_) +
                             ": record is longer than " +
                             std::to_string(options_.max_record_bytes) +
                             " bytes (max_record_bytes; an unterminated quote?)");
  }
  if (begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, tail);
    begin_ = 0;
    end_ = tail;
  }
  // One byte for the sentinel, then the padding FindFieldEnd may read.
  size_t capacity = buf_.size() - 1 - kScanPadding;
  if (tail > capacity / 2) {
    buf_.resize(2 * capacity + 1 + kScanPadding);
    capacity = buf_.size() - 1 - kScanPadding;
  }
  KEEL_ASSIGN_OR_RETURN(size_t got, source_->Read(buf_.data() + end_, capacity - end_));
  if (got == 0) eof_ = true;
  end_ += got;
  buf_[end_] = '\n';
  bytes_read_ += got;
  if (at_start_ && (end_ >= 3 || eof_)) {
    at_start_ = false;
    if (end_ >= 3 && std::memcmp(buf_.data(), "\xEF\xBB\xBF", 3) == 0) begin_ = 3;
  }
  if (options_.progress && got > 0) options_.progress(bytes_read_, total_bytes_);
  return OkStatus();
}

Result<bool> CsvReader::Next() {
  while (true) {
    if (begin_ == end_ || at_start_) {
      if (eof_ && begin_ == end_) {
        fields_.clear();
        return false;
      }
      KEEL_RETURN_IF_ERROR(Refill());
      continue;
    }
    KEEL_ASSIGN_OR_RETURN(Parse parsed, ParseRecord());
    if (parsed == Parse::kBlank) continue;
    if (parsed == Parse::kNeedMore) {
      KEEL_RETURN_IF_ERROR(Refill());
      continue;
    }
    if (expected_fields_ == 0) {
      expected_fields_ = fields_.size();
    } else if (fields_.size() != expected_fields_ && !options_.allow_ragged) {
      return Error(record_line_, std::to_string(fields_.size()) + " fields, " +
                                     (options_.has_header ? "header has " : "first record has ") +
                                     std::to_string(expected_fields_));
    }
    ++records_;
    return true;
  }
}

Result<CsvReader::Parse> CsvReader::ParseRecord() {
  const std::array<bool, 256>& stop = stop_;
  const char delim = options_.delimiter;
  const char* const base = buf_.data();
  const char* const end = base + end_;
  const char* p = base + begin_;

  // Blank line.
  if (*p == '\n' || *p == '\r') {
    if (*p == '\r') {
      if (p + 1 == end && !eof_) return Parse::kNeedMore;
      if (p + 1 < end && p[1] == '\n') ++p;
    }
    begin_ = static_cast<size_t>(p + 1 - base);
    ++line_;
    return Parse::kBlank;
  }

  fields_.clear();
  scratch_.clear();
  scratch_fields_.clear();
  uint64_t lines = 0;  // line ends consumed inside this record so far
  while (true) {
    char c;
    if (*p == '"') {
      const char* open = p;
      const uint64_t open_line = line_ + lines;
      ++p;
      const char* seg = p;
      bool escaped = false;
      const size_t scratch_offset = scratch_.size();
      while (true) {
        const auto* q = static_cast<const char*>(std::memchr(p, '"', static_cast<size_t>(end - p)));
        if (q == nullptr) {
          if (!eof_) return Parse::kNeedMore;
          return Error(line_, "unterminated quote starting at line " + std::to_string(open_line));
        }
        if (q + 1 == end && !eof_) return Parse::kNeedMore;
        if (q + 1 < end && q[1] == '"') {
          escaped = true;
          scratch_.append(seg, static_cast<size_t>(q + 1 - seg));
          p = q + 2;
          seg = p;
          continue;
        }
        lines += static_cast<uint64_t>(std::count(open + 1, q, '\n'));
        if (escaped) {
          scratch_.append(seg, static_cast<size_t>(q - seg));
          scratch_fields_.push_back(
              {fields_.size(), scratch_offset, scratch_.size() - scratch_offset});
          fields_.emplace_back();
        } else {
          fields_.emplace_back(open + 1, static_cast<size_t>(q - open - 1));
        }
        p = q + 1;
        break;
      }
      if (p == end) {
        if (!eof_) return Parse::kNeedMore;
        break;  // last record, no line end
      }
      c = *p;
      if (c != delim && c != '\n' && c != '\r') {
        return Error(line_ + lines, std::string("unexpected character '") + c +
                                        "' after a closing quote (field " +
                                        std::to_string(fields_.size()) + ")");
      }
    } else {
      const char* s = p;
      p = FindFieldEnd(p, delim, stop);
      if (p == end) {
        if (!eof_) return Parse::kNeedMore;
        fields_.emplace_back(s, static_cast<size_t>(p - s));
        break;  // last record, no line end
      }
      fields_.emplace_back(s, static_cast<size_t>(p - s));
      c = *p;
    }
    if (c == delim) {
      ++p;
      continue;
    }
    // A line end: "\n", "\r\n" or a lone "\r".
    ++p;
    if (c == '\r') {
      if (p == end && !eof_) return Parse::kNeedMore;
      if (p < end && *p == '\n') ++p;
    }
    ++lines;
    break;
  }
  record_line_ = line_;
  line_ += lines;
  begin_ = static_cast<size_t>(p - base);
  for (const ScratchField& f : scratch_fields_) {
    fields_[f.field] = std::string_view(scratch_.data() + f.offset, f.size);
  }
  return Parse::kRecord;
}

}  // namespace keel::data
