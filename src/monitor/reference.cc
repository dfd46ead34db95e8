// Reference profiles: building, the .keelref file format (keel/monitor/reference.h).
//
// File: the 8 bytes "KEELREF1", u64 body size, u32 CRC-32 (zlib) of the body,
// u32 zero, then the body. Body layout (little-endian):
//   u64 rows, u32 bins, u32 column count, then per column:
//   str name, u8 kind (0 numeric, 1 categorical), u8 boolean, u64 missing,
//   numeric:     u64 n, n x f64 sorted values, u32 e, e x f64 edges,
//                (e + 1) x f64 reference shares, u64 reference count
//   categorical: u32 k, k x (str category, u64 count)
//   then str prediction column, str target column, u32 m, m x (str metric, f64 value),
//   u32 c, c x f64 calibration x, c x f64 calibration y,
//   where str = u32 length + bytes.
#include "keel/monitor/reference.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

#include "keel/core/util.h"
#include "src/monitor/columns.h"

namespace keel::monitor {
namespace internal {

ColumnKind KindOf(data::ColumnType type) {
  return type == data::ColumnType::kNumeric ? ColumnKind::kNumeric : ColumnKind::kCategorical;
}

CategoricalSample CategoricalOf(const data::Column& column) {
  CategoricalSample s;
  if (column.type() == data::ColumnType::kBoolean) {
    uint64_t counts[2] = {0, 0};
    for (double v : column.values()) {
      if (std::isnan(v)) {
        ++s.missing;
      } else {
        ++counts[v != 0 ? 1 : 0];
      }
    }
    if (counts[0] > 0) s.Add("false", counts[0]);
    if (counts[1] > 0) s.Add("true", counts[1]);
    return s;
  }
  const std::vector<std::string>& dict = column.dictionary();
  std::vector<uint64_t> counts(dict.size(), 0);
  for (int32_t code : column.codes()) {
    if (code < 0) {
      ++s.missing;
    } else {
      ++counts[static_cast<size_t>(code)];
    }
  }
  for (size_t i = 0; i < dict.size(); ++i) {
    if (counts[i] > 0) s.Add(dict[i], counts[i]);
  }
  return s;
}

}  // namespace internal

namespace {

constexpr char kMagic[8] = {'K', 'E', 'E', 'L', 'R', 'E', 'F', '1'};
constexpr size_t kHeaderBytes = 24;  // magic, u64 size, u32 CRC-32, u32 zero
constexpr int kMaxBins = 1 << 20;

class Writer {
 public:
  template <typename T>
  void Put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
    out_.append(b, sizeof(T));
  }
  void Str(std::string_view s) {
    Put<uint32_t>(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void Doubles(std::span<const double> v) {
    out_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(double));
  }
  std::string Take() && { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(std::string_view data, std::string_view source) : data_(data), source_(source) {}
  template <typename T>
  Status Get(T& v, const char* what) {
    if (data_.size() - pos_ < sizeof(T)) return Truncated(what);
    std::memcpy(&v, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return OkStatus();
  }
  Status Str(std::string& s, const char* what) {
    uint32_t n = 0;
    KEEL_RETURN_IF_ERROR(Get(n, what));
    if (data_.size() - pos_ < n) return Truncated(what);
    s.assign(data_.data() + pos_, n);
    pos_ += n;
    return OkStatus();
  }
  template <typename Vector>
  Status Doubles(Vector& v, uint64_t n, const char* what) {
    if ((data_.size() - pos_) / sizeof(double) < n) return Truncated(what);
    v.resize(n);
    if (n > 0) std::memcpy(v.data(), data_.data() + pos_, n * sizeof(double));
    pos_ += n * sizeof(double);
    return OkStatus();
  }
  bool AtEnd() const { return pos_ == data_.size(); }
  Status Damaged(const std::string& what) const {
    return DataLoss(std::string(source_) + ": damaged reference profile: " + what);
  }

 private:
  Status Truncated(const char* what) const { return Damaged(std::string("truncated in ") + what); }
  std::string_view data_;
  std::string_view source_;
  size_t pos_ = 0;
};

bool AscendingFinite(std::span<const double> v) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i]) || (i > 0 && v[i] < v[i - 1])) return false;
  }
  return true;
}

}  // namespace

const ReferenceColumn* ReferenceProfile::Find(std::string_view name) const {
  for (const ReferenceColumn& c : columns) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

namespace {

// Profiles the chosen columns of a table with `rows` rows; `consumable` is
// empty or the same columns, mutable, whose values may be sorted in place.
Result<ReferenceProfile> Build(size_t rows, std::span<const data::Column> columns,
                               std::span<data::Column> consumable,
                               const ReferenceOptions& options) {
  if (options.bins < 1 || options.bins > kMaxBins) {
    return InvalidArgument("bins must be between 1 and " + std::to_string(kMaxBins));
  }
  std::vector<size_t> chosen;
  if (options.columns.empty()) {
    for (size_t i = 0; i < columns.size(); ++i) chosen.push_back(i);
  } else {
    for (const std::string& name : options.columns) {
      const auto it = std::find_if(columns.begin(), columns.end(),
                                   [&](const data::Column& c) { return c.name() == name; });
      if (it == columns.end()) return InvalidArgument("column '" + name + "' is not in the data");
      chosen.push_back(static_cast<size_t>(it - columns.begin()));
    }
  }
  // A column listed once may be sorted in place; one listed twice is read.
  std::vector<int> uses(columns.size(), 0);
  for (size_t i : chosen) ++uses[i];
  ReferenceProfile profile;
  profile.rows = rows;
  profile.bins = options.bins;
  profile.columns.resize(chosen.size());
  ThreadPool& pool = options.pool != nullptr ? *options.pool : ThreadPool::Default();
  pool.ParallelFor(
      chosen.size(),
      [&](size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) {
          const data::Column& c = columns[chosen[i]];
          ReferenceColumn& out = profile.columns[i];
          out.name = c.name();
          out.kind = internal::KindOf(c.type());
          out.boolean = c.type() == data::ColumnType::kBoolean;
          if (out.kind == ColumnKind::kNumeric) {
            const bool consume = !consumable.empty() && uses[chosen[i]] == 1;
            out.numeric =
                consume
                    ? NumericSample::FromValues(std::move(consumable[chosen[i]]).ReleaseValues())
                    : NumericSample::FromValues(c.values());
            if (!out.numeric.sorted.empty()) {
              // Cannot fail: bins >= 1 and the values are sorted and finite.
              out.bins = FitQuantileBins(out.numeric.sorted, options.bins).value();
            }
          } else {
            out.categorical = internal::CategoricalOf(c);
          }
        }
      },
      1);
  return profile;
}

}  // namespace

Result<ReferenceProfile> BuildReference(const data::Table& table, const ReferenceOptions& options) {
  return Build(table.num_rows(), table.columns(), {}, options);
}

Result<ReferenceProfile> BuildReference(data::Table&& table, const ReferenceOptions& options) {
  const size_t rows = table.num_rows();
  std::vector<data::Column> columns = std::move(table).ReleaseColumns();
  return Build(rows, columns, columns, options);
}

std::string ReferenceProfile::Serialize() const {
  Writer w;
  w.Put<uint64_t>(rows);
  w.Put<uint32_t>(static_cast<uint32_t>(bins));
  w.Put<uint32_t>(static_cast<uint32_t>(columns.size()));
  for (const ReferenceColumn& c : columns) {
    w.Str(c.name);
    w.Put<uint8_t>(c.kind == ColumnKind::kNumeric ? 0 : 1);
    w.Put<uint8_t>(c.boolean ? 1 : 0);
    if (c.kind == ColumnKind::kNumeric) {
      w.Put<uint64_t>(c.numeric.missing);
      w.Put<uint64_t>(c.numeric.sorted.size());
      w.Doubles(c.numeric.sorted);
      w.Put<uint32_t>(static_cast<uint32_t>(c.bins.edges.size()));
      w.Doubles(c.bins.edges);
      if (!c.numeric.sorted.empty()) w.Doubles(c.bins.ref_shares);
      w.Put<uint64_t>(c.bins.ref_count);
    } else {
      w.Put<uint64_t>(c.categorical.missing);
      w.Put<uint32_t>(static_cast<uint32_t>(c.categorical.counts.size()));
      for (const auto& [name, count] : c.categorical.counts) {
        w.Str(name);
        w.Put<uint64_t>(count);
      }
    }
  }
  w.Str(prediction_column);
  w.Str(target_column);
  w.Put<uint32_t>(static_cast<uint32_t>(performance.size()));
  for (const auto& [name, value] : performance) {
    w.Str(name);
    w.Put<double>(value);
  }
  w.Put<uint32_t>(static_cast<uint32_t>(calibration.x.size()));
  w.Doubles(calibration.x);
  w.Doubles(calibration.y);
  const std::string body = std::move(w).Take();
  std::string out(kMagic, sizeof kMagic);
  const uint64_t size = body.size();
  const uint32_t crc = static_cast<uint32_t>(
      crc32_z(0, reinterpret_cast<const unsigned char*>(body.data()), body.size()));
  const uint32_t zero = 0;
  out.append(reinterpret_cast<const char*>(&size), sizeof size);
  out.append(reinterpret_cast<const char*>(&crc), sizeof crc);
  out.append(reinterpret_cast<const char*>(&zero), sizeof zero);
  out += body;
  return out;
}

Result<ReferenceProfile> ReferenceProfile::Parse(std::string_view bytes, std::string_view source) {
  Reader outer(bytes, source);
  if (!LooksLikeReference(bytes)) {
    return outer.Damaged("not a keel reference profile (no KEELREF1 magic)");
  }
  if (bytes.size() < kHeaderBytes) return outer.Damaged("truncated header");
  uint64_t size = 0;
  uint32_t crc = 0;
  std::memcpy(&size, bytes.data() + sizeof kMagic, sizeof size);
  std::memcpy(&crc, bytes.data() + sizeof kMagic + sizeof size, sizeof crc);
  uint32_t reserved = 0;
  std::memcpy(&reserved, bytes.data() + sizeof kMagic + sizeof size + sizeof crc, sizeof reserved);
  if (reserved != 0) return outer.Damaged("reserved header bytes are not zero");
  const std::string_view body = bytes.substr(kHeaderBytes);
  if (body.size() != size) {
    return outer.Damaged("the body has " + std::to_string(body.size()) +
                         " bytes, the header says " + std::to_string(size));
  }
  if (crc32_z(0, reinterpret_cast<const unsigned char*>(body.data()), body.size()) != crc) {
    return outer.Damaged("checksum mismatch");
  }
  Reader r(body, source);
  ReferenceProfile p;
  uint32_t bins = 0;
  uint32_t count = 0;
  KEEL_RETURN_IF_ERROR(r.Get(p.rows, "the header"));
  KEEL_RETURN_IF_ERROR(r.Get(bins, "the header"));
  KEEL_RETURN_IF_ERROR(r.Get(count, "the header"));
  if (bins < 1 || bins > static_cast<uint32_t>(kMaxBins)) {
    return r.Damaged("bins " + std::to_string(bins));
  }
  p.bins = static_cast<int>(bins);
  for (uint32_t i = 0; i < count; ++i) {
    ReferenceColumn c;
    uint8_t kind = 0;
    uint8_t boolean = 0;
    KEEL_RETURN_IF_ERROR(r.Str(c.name, "a column name"));
    const std::string where = "column '" + c.name + "'";
    KEEL_RETURN_IF_ERROR(r.Get(kind, "a column kind"));
    KEEL_RETURN_IF_ERROR(r.Get(boolean, "a column kind"));
    if (kind > 1 || boolean > 1) return r.Damaged(where + ": unknown kind");
    c.kind = kind == 0 ? ColumnKind::kNumeric : ColumnKind::kCategorical;
    c.boolean = boolean == 1;
    if (c.kind == ColumnKind::kNumeric) {
      uint64_t n = 0;
      uint32_t edges = 0;
      KEEL_RETURN_IF_ERROR(r.Get(c.numeric.missing, "a column"));
      KEEL_RETURN_IF_ERROR(r.Get(n, "a column"));
      KEEL_RETURN_IF_ERROR(r.Doubles(c.numeric.sorted, n, "a column's values"));
      if (!AscendingFinite(c.numeric.sorted)) return r.Damaged(where + ": values not sorted");
      KEEL_RETURN_IF_ERROR(r.Get(edges, "a column's bins"));
      KEEL_RETURN_IF_ERROR(r.Doubles(c.bins.edges, edges, "a column's bins"));
      if (n > 0)
        KEEL_RETURN_IF_ERROR(r.Doubles(c.bins.ref_shares, uint64_t{edges} + 1, "a column's bins"));
      KEEL_RETURN_IF_ERROR(r.Get(c.bins.ref_count, "a column's bins"));
      if (c.bins.ref_count != n || (n == 0 && edges != 0) || edges >= bins ||
          !AscendingFinite(c.bins.edges)) {
        return r.Damaged(where + ": bins do not match the values");
      }
    } else {
      uint32_t k = 0;
      KEEL_RETURN_IF_ERROR(r.Get(c.categorical.missing, "a column"));
      KEEL_RETURN_IF_ERROR(r.Get(k, "a column's categories"));
      for (uint32_t j = 0; j < k; ++j) {
        std::string name;
        uint64_t n = 0;
        KEEL_RETURN_IF_ERROR(r.Str(name, "a category"));
        KEEL_RETURN_IF_ERROR(r.Get(n, "a category count"));
        if (!c.categorical.counts.emplace(std::move(name), n).second) {
          return r.Damaged(where + ": repeated category");
        }
      }
    }
    if (p.Find(c.name) != nullptr) return r.Damaged(where + ": repeated column");
    p.columns.push_back(std::move(c));
  }
  KEEL_RETURN_IF_ERROR(r.Str(p.prediction_column, "the prediction column"));
  if (!p.prediction_column.empty() && p.Find(p.prediction_column) == nullptr) {
    return r.Damaged("prediction column '" + p.prediction_column + "' has no profile");
  }
  KEEL_RETURN_IF_ERROR(r.Str(p.target_column, "the target column"));
  if (!p.target_column.empty() && p.Find(p.target_column) == nullptr) {
    return r.Damaged("target column '" + p.target_column + "' has no profile");
  }
  uint32_t metrics = 0;
  KEEL_RETURN_IF_ERROR(r.Get(metrics, "the metrics"));
  for (uint32_t i = 0; i < metrics; ++i) {
    std::string name;
    double value = 0;
    KEEL_RETURN_IF_ERROR(r.Str(name, "a metric"));
    KEEL_RETURN_IF_ERROR(r.Get(value, "a metric"));
    p.performance.emplace_back(std::move(name), value);
  }
  uint32_t knots = 0;
  KEEL_RETURN_IF_ERROR(r.Get(knots, "the calibration"));
  KEEL_RETURN_IF_ERROR(r.Doubles(p.calibration.x, knots, "the calibration"));
  KEEL_RETURN_IF_ERROR(r.Doubles(p.calibration.y, knots, "the calibration"));
  if (!AscendingFinite(p.calibration.x) || !AscendingFinite(p.calibration.y)) {
    return r.Damaged("calibration not ascending");
  }
  if (!r.AtEnd()) return r.Damaged("trailing bytes");
  return p;
}

bool LooksLikeReference(std::string_view bytes) {
  return bytes.size() >= sizeof kMagic && std::memcmp(bytes.data(), kMagic, sizeof kMagic) == 0;
}

Status WriteReferenceFile(const std::filesystem::path& path, const ReferenceProfile& profile) {
  return WriteFileAtomically(path, profile.Serialize());
}

Result<ReferenceProfile> ReadReferenceFile(const std::filesystem::path& path) {
  // Mapped, not read into a buffer: the values are copied once, from the
  // page cache into the profile.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound(path.string() + ": no such file");
    return InvalidArgument(path.string() + ": cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return InvalidArgument(path.string() + ": not a regular file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    close(fd);
    return ReferenceProfile::Parse({}, path.string());
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return Internal(path.string() + ": mmap: " + std::strerror(errno));
  Result<ReferenceProfile> profile =
      ReferenceProfile::Parse(std::string_view(static_cast<const char*>(map), size), path.string());
  munmap(map, size);
  return profile;
}

}  // namespace keel::monitor
