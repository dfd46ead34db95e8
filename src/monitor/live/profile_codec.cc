// The stored form of a window profile (keel/monitor/window_profile.h,
// EncodeProfile / DecodeProfile).
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "keel/monitor/window_profile.h"

namespace keel::monitor {
namespace internal {

namespace {

constexpr char kMagic[3] = {'K', 'W', 'P'};
constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderBytes = sizeof kMagic + 1 + 4;  // magic, version, CRC-32

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Le(v, 4); }
  void U64(uint64_t v) { Le(v, 8); }
  void I32(int32_t v) { U32(static_cast<uint32_t>(v)); }
  void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
  void F64(double v) { U64(std::bit_cast<uint64_t>(v)); }
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  std::string Take() && { return std::move(out_); }

 private:
  void Le(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  size_t left() const { return bytes_.size() - at_; }

  Status Damaged(const std::string& what) const {
    return InvalidArgument("stored window profile: " + what + " (at byte " +
                           std::to_string(at_ + kHeaderBytes) + ")");
  }
  Status U8(uint8_t& v, const char* what) {
    uint64_t x = 0;
    KEEL_RETURN_IF_ERROR(Le(x, 1, what));
    v = static_cast<uint8_t>(x);
    return OkStatus();
  }
  Status U32(uint32_t& v, const char* what) {
    uint64_t x = 0;
    KEEL_RETURN_IF_ERROR(Le(x, 4, what));
    v = static_cast<uint32_t>(x);
    return OkStatus();
  }
  Status U64(uint64_t& v, const char* what) { return Le(v, 8, what); }
  Status I32(int32_t& v, const char* what) {
    uint32_t x = 0;
    KEEL_RETURN_IF_ERROR(U32(x, what));
    v = static_cast<int32_t>(x);
    return OkStatus();
  }
  Status I64(int64_t& v, const char* what) {
    uint64_t x = 0;
    KEEL_RETURN_IF_ERROR(U64(x, what));
    v = static_cast<int64_t>(x);
    return OkStatus();
  }
  Status F64(double& v, const char* what) {
    uint64_t x = 0;
    KEEL_RETURN_IF_ERROR(U64(x, what));
    v = std::bit_cast<double>(x);
    return OkStatus();
  }
  Status Str(std::string& s, const char* what) {
    uint32_t n = 0;
    KEEL_RETURN_IF_ERROR(U32(n, what));
    if (n > left()) return Damaged(std::string(what) + " longer than the bytes left");
    s.assign(bytes_.substr(at_, n));
    at_ += n;
    return OkStatus();
  }
  // A count of items of at least `item_bytes` each, checked against the bytes left.
  Status Count(uint32_t& n, size_t item_bytes, const char* what) {
    KEEL_RETURN_IF_ERROR(U32(n, what));
    if (uint64_t{n} * item_bytes > left()) {
      return Damaged(std::string(what) + ": " + std::to_string(n) + " items do not fit in the " +
                     std::to_string(left()) + " bytes left");
    }
    return OkStatus();
  }

 private:
  Status Le(uint64_t& v, size_t bytes, const char* what) {
    if (left() < bytes) return Damaged(std::string("truncated in ") + what);
    v = 0;
    for (size_t i = 0; i < bytes; ++i) {
      v |= uint64_t{static_cast<unsigned char>(bytes_[at_ + i])} << (8 * i);
    }
    at_ += bytes;
    return OkStatus();
  }

  std::string_view bytes_;
  size_t at_ = 0;
};

// FNV-1a over what decides the meaning of a profile's parts.
class Fingerprint {
 public:
  void Bytes(std::string_view s) {
    U64(s.size());
    for (char c : s) Byte(static_cast<unsigned char>(c));
  }
  void U64(uint64_t v) {
    for (int i = 0; i < 8; ++i) Byte(static_cast<unsigned char>(v >> (8 * i)));
  }
  void Column(const ProfileLayout::Column& c) {
    if (c.ref == nullptr) {
      U64(0);
      return;
    }
    U64(1);
    Bytes(c.ref->name);
    U64(c.numeric ? 1 : 0);
    U64(c.ref->boolean ? 1 : 0);
    const auto& sorted = c.ref->numeric.sorted;
    U64(sorted.size());
    U64(c.ref->bins.edges.size());
    for (double e : c.ref->bins.edges) U64(std::bit_cast<uint64_t>(e));
    // The reference values the grid is cut from (a sample of them), and the
    // codes the grid gives them and values beyond them: another reference or
    // another grid rule changes this.
    if (sorted.empty()) return;
    const size_t step = std::max<size_t>(1, sorted.size() / kSampled);
    for (size_t i = 0; i < sorted.size(); i += step) Value(c, sorted[i]);
    Value(c, sorted.back());
    for (double beyond : {1.0, 1e3, 1e9}) {
      Value(c, sorted.front() - beyond);
      Value(c, sorted.back() + beyond);
    }
  }
  // Codes of fixed probes on a grid that is not a reference column's.
  void Grid(const ValueGrid& grid) {
    for (double v : {0.0, 1e-6, 0.5, 1.0, 7.0, 1e3, 1e6, 1e9}) {
      U64(static_cast<uint64_t>(static_cast<int64_t>(grid.Code(v))));
    }
  }
  uint64_t value() const { return h_; }

 private:
  static constexpr size_t kSampled = 256;
  void Value(const ProfileLayout::Column& c, double v) {
    U64(std::bit_cast<uint64_t>(v));
    if (c.grid != nullptr) U64(static_cast<uint64_t>(static_cast<int64_t>(c.grid->Code(v))));
  }
  void Byte(unsigned char b) {
    h_ ^= b;
    h_ *= 0x100000001b3ULL;
  }
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

uint64_t LayoutFingerprint(const ProfileLayout& layout) {
  Fingerprint f;
  f.Bytes(layout.info().task);
  f.U64(layout.info().classes.size());
  for (const std::string& c : layout.info().classes) f.Bytes(c);
  f.U64(layout.inputs().size());
  for (const ProfileLayout::Column& c : layout.inputs()) f.Column(c);
  f.Column(layout.prediction());
  f.Grid(layout.latency_grid());
  f.Grid(layout.score_grid());
  return f.value();
}

uint32_t Crc(std::string_view body) {
  return static_cast<uint32_t>(
      crc32_z(0, reinterpret_cast<const unsigned char*>(body.data()), body.size()));
}

bool AddsTo(uint64_t a, uint64_t b, uint64_t total) { return a <= total && total - a == b; }

}  // namespace

struct ProfileCodec {
  static void Put(Writer& w, const ValueCounts& v) {
    w.U64(v.count_);
    w.U32(static_cast<uint32_t>(v.exact_.size()));
    for (double d : v.exact_) w.F64(d);
    w.U32(static_cast<uint32_t>(v.grid_.size()));
    for (const auto& [code, n] : v.grid_) {
      w.I32(code);
      w.U64(n);
    }
  }

  // Values as the encoder leaves them: exact (at most `exact_limit`) or
  // gridded, never both.
  static Status Get(Reader& r, const ValueGrid& grid, uint64_t exact_limit, ValueCounts& v,
                    const char* what) {
    uint32_t n = 0;
    KEEL_RETURN_IF_ERROR(r.U64(v.count_, what));
    KEEL_RETURN_IF_ERROR(r.Count(n, 8, what));
    if (n > exact_limit) {
      return r.Damaged(std::string(what) + ": " + std::to_string(n) +
                       " exact values, the limit is " + std::to_string(exact_limit));
    }
    v.exact_.resize(n);
    for (double& d : v.exact_) {
      KEEL_RETURN_IF_ERROR(r.F64(d, what));
      if (!std::isfinite(d)) return r.Damaged(std::string(what) + ": a non-finite value");
    }
    KEEL_RETURN_IF_ERROR(r.Count(n, 12, what));
    if (n > 0 && !v.exact_.empty()) {
      return r.Damaged(std::string(what) + ": exact and gridded values together");
    }
    v.grid_.resize(n);
    uint64_t total = v.exact_.size();
    for (size_t i = 0; i < v.grid_.size(); ++i) {
      auto& [code, count] = v.grid_[i];
      KEEL_RETURN_IF_ERROR(r.I32(code, what));
      KEEL_RETURN_IF_ERROR(r.U64(count, what));
      if (!grid.Holds(code)) {
        return r.Damaged(std::string(what) + ": code " + std::to_string(code) +
                         " is not on the grid");
      }
      if (i > 0 && code <= v.grid_[i - 1].first) {
        return r.Damaged(std::string(what) + ": grid codes not ascending");
      }
      if (count == 0 || count > UINT64_MAX - total) {
        return r.Damaged(std::string(what) + ": bad grid count");
      }
      total += count;
    }
    if (total != v.count_) {
      return r.Damaged(std::string(what) + ": " + std::to_string(v.count_) +
                       " values, parts hold " + std::to_string(total));
    }
    return OkStatus();
  }
};

namespace {

template <typename Map>
void PutCounts(Writer& w, const Map& m) {
  w.U32(static_cast<uint32_t>(m.size()));
  for (const auto& [name, n] : m) {
    w.Str(name);
    w.U64(n);
  }
}

// A string -> count map; its total in *sum (refused when it overflows).
template <typename Map>
Status GetCounts(Reader& r, Map& m, uint64_t* sum, const char* what) {
  uint32_t n = 0;
  KEEL_RETURN_IF_ERROR(r.Count(n, 12, what));
  *sum = 0;
  for (uint32_t i = 0; i < n; ++i) {
    std::string name;
    uint64_t count = 0;
    KEEL_RETURN_IF_ERROR(r.Str(name, what));
    KEEL_RETURN_IF_ERROR(r.U64(count, what));
    if (count == 0) return r.Damaged(std::string(what) + ": a name counted 0 times");
    if (count > UINT64_MAX - *sum) return r.Damaged(std::string(what) + ": counts overflow");
    *sum += count;
    // Ascending, as encoded: one encoding per profile.
    if (!m.empty() && !(m.rbegin()->first < name)) {
      return r.Damaged(std::string(what) + ": names not ascending");
    }
    m.emplace_hint(m.end(), std::move(name), count);
  }
  return OkStatus();
}

// Columns without a grid (categorical, or no prediction) hold no gridded values.
class NoGrid final : public ValueGrid {
 public:
  int32_t Code(double) const override { return 0; }
  void Fill(int32_t, uint64_t, std::vector<double>&) const override {}
  bool Holds(int32_t) const override { return false; }
};

void PutColumn(Writer& w, const ColumnProfile& c) {
  internal::ProfileCodec::Put(w, c.values);
  w.U64(c.missing);
  PutCounts(w, c.categories.counts);
  w.U64(c.categories.missing);
}

// A column of `layout_column`'s kind whose cells add up to `rows`.
Status GetColumn(Reader& r, const ProfileLayout::Column& layout_column, uint64_t rows,
                 uint64_t exact_limit, ColumnProfile& c, const char* what) {
  static const NoGrid kNoGrid;
  const ValueGrid& grid =
      layout_column.grid != nullptr ? *layout_column.grid : static_cast<const ValueGrid&>(kNoGrid);
  KEEL_RETURN_IF_ERROR(internal::ProfileCodec::Get(r, grid, exact_limit, c.values, what));
  KEEL_RETURN_IF_ERROR(r.U64(c.missing, what));
  uint64_t categorised = 0;
  KEEL_RETURN_IF_ERROR(GetCounts(r, c.categories.counts, &categorised, what));
  KEEL_RETURN_IF_ERROR(r.U64(c.categories.missing, what));
  const bool ok = layout_column.ref == nullptr ? c.values.count() == 0 && c.missing == 0 &&
                                                     categorised == 0 && c.categories.missing == 0
                  : layout_column.numeric ? AddsTo(c.values.count(), c.missing, rows) &&
                                                categorised == 0 && c.categories.missing == 0
                                          : c.values.count() == 0 && c.missing == 0 &&
                                                AddsTo(categorised, c.categories.missing, rows);
  if (!ok) return r.Damaged(std::string(what) + ": its cells do not add up to the profile's rows");
  return OkStatus();
}

size_t ConfusionSize(const ProfileLayout& layout) {
  const size_t k = layout.info().classes.size();
  return layout.binary() ? 4 : layout.multiclass() ? k * k : 0;
}

}  // namespace
}  // namespace internal

std::string EncodeProfile(const WindowProfile& p, const ProfileLayout& layout) {
  using internal::ProfileCodec;
  internal::Writer w;
  w.U64(internal::LayoutFingerprint(layout));
  w.U64(p.exact_limit);
  w.U64(p.rows);
  w.U64(p.unreadable);
  w.I64(p.first_ms);
  w.I64(p.last_ms);
  w.U32(static_cast<uint32_t>(p.inputs.size()));
  for (const ColumnProfile& c : p.inputs) internal::PutColumn(w, c);
  internal::PutColumn(w, p.prediction);
  internal::PutCounts(w, p.endpoints);
  ProfileCodec::Put(w, p.latency_us);
  w.U64(p.labelled);
  w.U64(p.unmatched_labels);
  w.U64(p.scored);
  w.F64(p.log_loss_sum);
  ProfileCodec::Put(w, p.scores);
  ProfileCodec::Put(w, p.positives);
  ProfileCodec::Put(w, p.negatives);
  w.U32(static_cast<uint32_t>(p.confusion.size()));
  for (uint64_t n : p.confusion) w.U64(n);
  w.F64(p.sse);
  w.F64(p.sae);
  w.F64(p.label_mean);
  w.F64(p.label_m2);
  const std::string body = std::move(w).Take();
  internal::Writer head;
  for (char c : internal::kMagic) head.U8(static_cast<uint8_t>(c));
  head.U8(internal::kVersion);
  head.U32(internal::Crc(body));
  return std::move(head).Take() + body;
}

Result<WindowProfile> DecodeProfile(std::string_view bytes, const ProfileLayout& layout) {
  using internal::ProfileCodec;
  if (bytes.size() < internal::kHeaderBytes ||
      std::memcmp(bytes.data(), internal::kMagic, sizeof internal::kMagic) != 0) {
    return InvalidArgument("stored window profile: not one (no KWP header, " +
                           std::to_string(bytes.size()) + " bytes)");
  }
  const uint8_t version = static_cast<uint8_t>(bytes[sizeof internal::kMagic]);
  if (version != internal::kVersion) {
    return InvalidArgument("stored window profile: version " + std::to_string(version) +
                           ", this build reads version " + std::to_string(internal::kVersion));
  }
  uint32_t crc = 0;
  for (int i = 0; i < 4; ++i) {
    crc |= uint32_t{static_cast<unsigned char>(bytes[sizeof internal::kMagic + 1 + i])} << (8 * i);
  }
  const std::string_view body = bytes.substr(internal::kHeaderBytes);
  if (internal::Crc(body) != crc)
    return InvalidArgument("stored window profile: checksum mismatch");

  internal::Reader r(body);
  WindowProfile p;
  uint64_t fingerprint = 0;
  KEEL_RETURN_IF_ERROR(r.U64(fingerprint, "the layout"));
  if (fingerprint != internal::LayoutFingerprint(layout)) {
    return InvalidArgument(
        "stored window profile: made with another layout (columns, kinds, reference bins or "
        "classes differ)");
  }
  KEEL_RETURN_IF_ERROR(r.U64(p.exact_limit, "the header"));
  KEEL_RETURN_IF_ERROR(r.U64(p.rows, "the header"));
  KEEL_RETURN_IF_ERROR(r.U64(p.unreadable, "the header"));
  KEEL_RETURN_IF_ERROR(r.I64(p.first_ms, "the header"));
  KEEL_RETURN_IF_ERROR(r.I64(p.last_ms, "the header"));
  uint32_t inputs = 0;
  KEEL_RETURN_IF_ERROR(r.U32(inputs, "the inputs"));
  if (inputs != layout.inputs().size()) {
    return r.Damaged(std::to_string(inputs) + " input columns, the layout has " +
                     std::to_string(layout.inputs().size()));
  }
  p.inputs.resize(inputs);
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    KEEL_RETURN_IF_ERROR(internal::GetColumn(r, layout.inputs()[i], p.rows, p.exact_limit,
                                             p.inputs[i], "an input column"));
  }
  KEEL_RETURN_IF_ERROR(internal::GetColumn(r, layout.prediction(), p.rows, p.exact_limit,
                                           p.prediction, "the prediction"));
  uint64_t endpoint_rows = 0;
  KEEL_RETURN_IF_ERROR(internal::GetCounts(r, p.endpoints, &endpoint_rows, "the endpoints"));
  if (endpoint_rows != p.rows) return r.Damaged("the endpoints' rows differ from the profile's");
  KEEL_RETURN_IF_ERROR(
      ProfileCodec::Get(r, layout.latency_grid(), p.exact_limit, p.latency_us, "latencies"));
  if (p.latency_us.count() != p.rows) return r.Damaged("latencies differ from the profile's rows");
  KEEL_RETURN_IF_ERROR(r.U64(p.labelled, "the performance"));
  KEEL_RETURN_IF_ERROR(r.U64(p.unmatched_labels, "the performance"));
  KEEL_RETURN_IF_ERROR(r.U64(p.scored, "the performance"));
  KEEL_RETURN_IF_ERROR(r.F64(p.log_loss_sum, "the performance"));
  if (!internal::AddsTo(p.unmatched_labels, p.scored, p.labelled)) {
    return r.Damaged("labelled rows are not the unmatched plus the scored");
  }
  KEEL_RETURN_IF_ERROR(
      ProfileCodec::Get(r, layout.score_grid(), p.exact_limit, p.scores, "the scores"));
  KEEL_RETURN_IF_ERROR(
      ProfileCodec::Get(r, layout.score_grid(), p.exact_limit, p.positives, "the positives"));
  KEEL_RETURN_IF_ERROR(
      ProfileCodec::Get(r, layout.score_grid(), p.exact_limit, p.negatives, "the negatives"));
  if (p.scores.count() > p.rows || p.positives.count() > p.scored ||
      p.negatives.count() > p.scored - p.positives.count()) {
    return r.Damaged("more scores than rows, or labelled scores than scored rows");
  }
  if (!layout.binary() && p.scores.count() + p.positives.count() + p.negatives.count() > 0) {
    return r.Damaged("scores in a profile of a " + layout.info().task + " model");
  }
  uint32_t cells = 0;
  KEEL_RETURN_IF_ERROR(r.Count(cells, 8, "the confusion matrix"));
  if (cells != internal::ConfusionSize(layout)) {
    return r.Damaged("a confusion matrix of " + std::to_string(cells) +
                     " cells, the layout's has " + std::to_string(internal::ConfusionSize(layout)));
  }
  p.confusion.resize(cells);
  uint64_t confused = 0;
  for (uint64_t& n : p.confusion) {
    KEEL_RETURN_IF_ERROR(r.U64(n, "the confusion matrix"));
    if (n > UINT64_MAX - confused) return r.Damaged("the confusion matrix overflows");
    confused += n;
  }
  if (cells > 0 && confused != p.scored) {
    return r.Damaged("the confusion matrix does not add up to the scored rows");
  }
  KEEL_RETURN_IF_ERROR(r.F64(p.sse, "the errors"));
  KEEL_RETURN_IF_ERROR(r.F64(p.sae, "the errors"));
  KEEL_RETURN_IF_ERROR(r.F64(p.label_mean, "the errors"));
  KEEL_RETURN_IF_ERROR(r.F64(p.label_m2, "the errors"));
  if (r.left() != 0) return r.Damaged(std::to_string(r.left()) + " bytes after the profile");
  return p;
}

}  // namespace keel::monitor
