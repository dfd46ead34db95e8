// Window profiles: mergeable summaries of the prediction log
// (keel/monitor/window_profile.h), and the reading rules of logged records
// (keel/monitor/live.h).
#include "keel/monitor/window_profile.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <mutex>

#include <simdjson.h>

#include "keel/core/json.h"
#include "keel/monitor/cbpe.h"
#include "keel/train/metrics.h"

namespace keel::monitor {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---------------------------------------------------------------------------
// Grids

constexpr int32_t kTailSpan = 2000;      // tail buckets per side: 1.02^2000 ~ 1e17
constexpr int32_t kUpperBase = 1 << 24;  // interior codes stay below (bins <= 2^20 + 1000)
constexpr double kTailGrowth = 1.02;     // stand-in within 1% of the distance
constexpr int kGridQuantiles = 1000;
constexpr size_t kAtoms = 4096;

class RefGrid final : public ValueGrid {
 public:
  explicit RefGrid(const ReferenceColumn& c) : column_(c), sorted_(c.numeric.sorted) {}

  int32_t Code(double x) const override {
    std::call_once(built_, [this] { Build(); });
    if (x > max_) return kUpperBase + TailBucket(x - max_) + kTailSpan;
    if (x < min_) return -1 - (TailBucket(min_ - x) + kTailSpan);
    return static_cast<int32_t>(std::upper_bound(edges_.begin(), edges_.end(), x) -
                                edges_.begin()) -
           1;
  }

  void Fill(int32_t code, uint64_t count, std::vector<double>& out) const override {
    std::call_once(built_, [this] { Build(); });
    if (code >= kUpperBase) {
      out.insert(out.end(), count, max_ + TailCentre(code - kUpperBase - kTailSpan));
      return;
    }
    if (code < 0) {
      out.insert(out.end(), count, min_ - TailCentre(-1 - code - kTailSpan));
      return;
    }
    const size_t i = static_cast<size_t>(code);
    const auto lo = std::lower_bound(sorted_.begin(), sorted_.end(), edges_[i]);
    const auto hi = i + 1 < edges_.size()
                        ? std::lower_bound(sorted_.begin(), sorted_.end(), edges_[i + 1])
                        : sorted_.end();
    const uint64_t m = static_cast<uint64_t>(hi - lo);
    if (m == 0) {
      out.insert(out.end(), count, edges_[i]);
      return;
    }
    // The bin's reference values at evenly spaced ranks.
    for (uint64_t j = 0; j < count; ++j)
      out.push_back(lo[static_cast<ptrdiff_t>(((2 * j + 1) * m) / (2 * count))]);
  }

  bool Holds(int32_t code) const override {
    std::call_once(built_, [this] { Build(); });
    if (code >= kUpperBase) return code <= kUpperBase + 2 * kTailSpan;
    if (code < 0) return code >= -1 - 2 * kTailSpan;
    return static_cast<size_t>(code) < edges_.size();
  }

 private:
  // The grid's edges, built on first use (an exact profile never needs them).
  void Build() const {
    if (sorted_.empty()) {
      edges_ = {0.0};
      min_ = max_ = 0;
    } else {
      const size_t n = sorted_.size();
      edges_.assign(column_.bins.edges.begin(), column_.bins.edges.end());
      for (int k = 0; k < kGridQuantiles; ++k) {
        edges_.push_back(sorted_[(static_cast<size_t>(k) * n) / kGridQuantiles]);
      }
      // Repeated values (atoms: flags, counts, rounded amounts) are edges of
      // their own, so a window of one rare reference value keeps it: every
      // distinct value when there are at most kAtoms, else the kAtoms most
      // repeated ones.
      std::vector<std::pair<size_t, double>> runs;  // (length, value), length >= 2
      size_t distinct = 0;
      for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && sorted_[j] == sorted_[i]) ++j;
        ++distinct;
        if (j - i >= 2) runs.emplace_back(j - i, sorted_[i]);
        i = j;
      }
      if (distinct <= kAtoms) {
        for (size_t i = 0; i < n; ++i) {
          if (i == 0 || sorted_[i] != sorted_[i - 1]) edges_.push_back(sorted_[i]);
        }
      } else {
        const size_t keep = std::min(runs.size(), kAtoms);
        std::partial_sort(runs.begin(), runs.begin() + static_cast<ptrdiff_t>(keep), runs.end(),
                          [](const auto& a, const auto& b) { return a.first > b.first; });
        for (size_t i = 0; i < keep; ++i) edges_.push_back(runs[i].second);
      }
      edges_.push_back(sorted_.back());
      std::sort(edges_.begin(), edges_.end());
      edges_.erase(std::unique(edges_.begin(), edges_.end()), edges_.end());
      min_ = sorted_.front();
      max_ = sorted_.back();
    }
    scale_ = std::max({max_ - min_, std::fabs(min_), std::fabs(max_)});
    if (!(scale_ > 0) || !std::isfinite(scale_)) scale_ = 1;
  }

  int32_t TailBucket(double distance) const {
    const double k = std::floor(std::log(distance / scale_) / std::log(kTailGrowth));
    return static_cast<int32_t>(std::clamp(k, double{-kTailSpan}, double{kTailSpan}));
  }
  double TailCentre(int32_t k) const { return scale_ * std::pow(kTailGrowth, k + 0.5); }

  const ReferenceColumn& column_;
  const SortedValues& sorted_;
  mutable std::once_flag built_;
  // Set once by Build().
  mutable std::vector<double> edges_;
  mutable double min_ = 0, max_ = 0, scale_ = 1;
};

class LogGridImpl final : public ValueGrid {
 public:
  int32_t Code(double x) const override {
    if (!(x > 0)) return std::numeric_limits<int32_t>::min();
    const double k = std::floor(std::log(x) / std::log(kGrowth));
    return static_cast<int32_t>(std::clamp(k, double{-kSpan}, double{kSpan}));
  }
  void Fill(int32_t code, uint64_t count, std::vector<double>& out) const override {
    out.insert(out.end(), count,
               code == std::numeric_limits<int32_t>::min() ? 0.0 : std::pow(kGrowth, code + 0.5));
  }
  bool Holds(int32_t code) const override {
    return code == std::numeric_limits<int32_t>::min() || (code >= -kSpan && code <= kSpan);
  }

 private:
  static constexpr double kGrowth = 1.01;  // the centre is within 0.5% of every value in a bucket
  static constexpr int32_t kSpan = 30000;  // codes -kSpan..kSpan: 1.01^30000 ~ 1e129
};

// ---------------------------------------------------------------------------
// Reading logged records

bool ParseDouble(std::string_view text, double* out) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

// A number for a numeric or boolean column; false when present but unreadable
// (the value is then NaN: missing).
bool ReadNumber(simdjson::dom::element v, bool boolean, double* d) {
  bool b;
  std::string_view s;
  *d = kNaN;
  if (!v.get_double().get(*d)) return true;
  if (!v.get_bool().get(b)) {
    *d = b ? 1.0 : 0.0;
    return true;
  }
  if (v.get_string().get(s)) return false;
  if (boolean) {
    std::string lower(s);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    if (lower == "true" || lower == "yes" || lower == "1") *d = 1;
    if (lower == "false" || lower == "no" || lower == "0") *d = 0;
    return !std::isnan(*d);
  }
  if (ParseDouble(s, d)) return true;
  *d = kNaN;
  return false;
}

// Text for a categorical column; false when present but unreadable.
bool ReadText(simdjson::dom::element v, std::string* text) {
  std::string_view s;
  double d;
  bool b;
  int64_t i;
  if (!v.get_string().get(s)) {
    text->assign(s);
  } else if (!v.get_int64().get(i)) {
    *text = std::to_string(i);
  } else if (!v.get_double().get(d)) {
    *text = FormatDouble(d);
  } else if (!v.get_bool().get(b)) {
    *text = b ? "true" : "false";
  } else {
    text->clear();
    return false;
  }
  return true;
}

// Adds one cell (`present` false: absent) to a column's profile; false when
// the cell is present but unreadable (it is then missing).
bool AddCell(const ProfileLayout::Column& col, ColumnProfile& p, simdjson::dom::element v,
             bool present, uint64_t exact_limit) {
  if (!present || v.is_null()) {
    if (col.numeric) {
      ++p.missing;
    } else {
      p.categories.AddMissing();
    }
    return true;
  }
  if (col.numeric || col.ref->boolean) {
    double d;
    const bool ok = ReadNumber(v, col.ref->boolean, &d);
    if (col.numeric) {
      if (std::isfinite(d)) {
        p.values.Add(d, *col.grid, exact_limit);
      } else {
        ++p.missing;
      }
    } else if (d == 0 || d == 1) {
      p.categories.Add(d == 1 ? "1" : "0");
    } else {
      p.categories.AddMissing();  // not a boolean
    }
    return ok;
  }
  std::string text;
  const bool ok = ReadText(v, &text);
  if (text.empty()) {
    p.categories.AddMissing();
  } else {
    p.categories.Add(text);
  }
  return ok;
}

// The class index a label names, or -1: a class name, a boolean or number
// whose text is a class name.
int ClassOf(simdjson::dom::element v, const std::vector<std::string>& classes) {
  std::string text;
  if (v.is_null() || v.is_array() || v.is_object() || !ReadText(v, &text)) return -1;
  // true/false and 1/0 name the same class.
  const std::string alias = text == "true"    ? "1"
                            : text == "false" ? "0"
                            : text == "1"     ? "true"
                            : text == "0"     ? "false"
                                              : "";
  for (size_t k = 0; k < classes.size(); ++k) {
    if (classes[k] == text || (!alias.empty() && classes[k] == alias)) return static_cast<int>(k);
    // Booleans and 0/1 against capitalised or numeric class names.
    if (classes[k].size() == text.size() &&
        std::equal(text.begin(), text.end(), classes[k].begin(), [](char a, char b2) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b2));
        })) {
      return static_cast<int>(k);
    }
  }
  return -1;
}

// The output: a number, or an array of numbers; empty when unreadable.
std::vector<float> ReadScores(simdjson::dom::parser& parser, const std::string& output_json) {
  std::vector<float> scores;
  simdjson::dom::element out;
  if (parser.parse(output_json).get(out)) return scores;
  double d;
  simdjson::dom::array arr;
  if (!out.get_double().get(d)) {
    scores.push_back(static_cast<float>(d));
  } else if (!out.get_array().get(arr)) {
    for (simdjson::dom::element e : arr) {
      double x;
      if (e.get_double().get(x)) return {};
      scores.push_back(static_cast<float>(x));
    }
  }
  return scores;
}

void MergeColumn(const ProfileLayout::Column& col, ColumnProfile& into, const ColumnProfile& from,
                 uint64_t exact_limit) {
  if (col.numeric) {
    into.values.Merge(from.values, *col.grid, exact_limit);
    into.missing += from.missing;
  } else {
    into.categories.Merge(from.categories);
  }
}

// The column of a profile as table cells.
Result<data::Column> Materialize(const ProfileLayout::Column& col, const ColumnProfile& p) {
  const std::string& name = col.ref->name;
  if (col.numeric) {
    std::vector<double> values;
    values.reserve(p.values.count() + p.missing);
    p.values.AppendTo(*col.grid, values);
    values.insert(values.end(), p.missing, kNaN);
    return data::Column::Numeric(name, std::move(values));
  }
  if (col.ref->boolean) {
    std::vector<double> values;
    values.reserve(p.categories.rows());
    for (const auto& [text, n] : p.categories.counts) values.insert(values.end(), n, text == "1");
    values.insert(values.end(), p.categories.missing, kNaN);
    return data::Column::Boolean(name, std::move(values));
  }
  // Categories that are missing markers ("NA", "null", ...) are missing, as
  // in a table read from text.
  std::vector<std::string> names;
  for (const auto& [text, n] : p.categories.counts) names.push_back(text);
  const data::Column marked = data::Column::CategoricalFromText("", names);
  std::vector<std::string> dictionary;
  std::vector<int32_t> codes;
  codes.reserve(p.categories.rows());
  size_t k = 0;
  for (const auto& [text, n] : p.categories.counts) {
    if (marked.codes()[k++] < 0) {
      codes.insert(codes.end(), n, -1);
      continue;
    }
    codes.insert(codes.end(), n, static_cast<int32_t>(dictionary.size()));
    dictionary.push_back(text);
  }
  codes.insert(codes.end(), p.categories.missing, -1);
  return data::Column::Categorical(name, std::move(codes), std::move(dictionary));
}

std::vector<float> Floats(const ValueCounts& v, const ValueGrid& grid) {
  std::vector<double> d;
  d.reserve(v.count());
  v.AppendTo(grid, d);
  return std::vector<float>(d.begin(), d.end());
}

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return kNaN;
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

// Live metrics from the profile's performance part, named and ordered as
// keel/train/metrics.h gives them.
std::vector<std::pair<std::string, double>> LiveMetrics(const ProfileLayout& layout,
                                                        const WindowProfile& p) {
  const double n = static_cast<double>(p.scored);
  if (p.scored == 0) return {};
  if (layout.binary()) {
    std::vector<float> probs = Floats(p.negatives, layout.score_grid());
    std::vector<float> labels(probs.size(), 0.0f);
    const std::vector<float> pos = Floats(p.positives, layout.score_grid());
    probs.insert(probs.end(), pos.begin(), pos.end());
    labels.insert(labels.end(), pos.size(), 1.0f);
    const double tn = static_cast<double>(p.confusion[0]), fp = static_cast<double>(p.confusion[1]);
    const double fn = static_cast<double>(p.confusion[2]), tp = static_cast<double>(p.confusion[3]);
    const train::ClassRates r = train::RatesOf(tp, fp, fn);
    return {{"auc", train::RocAuc(probs, labels)},
            {"log_loss", p.log_loss_sum / n},
            {"accuracy", (tp + tn) / n},
            {"precision", r.precision},
            {"recall", r.recall},
            {"f1", r.f1}};
  }
  if (layout.multiclass()) {
    const size_t k = layout.info().classes.size();
    double correct = 0, f1_sum = 0;
    for (size_t c = 0; c < k; ++c) {
      double tp = static_cast<double>(p.confusion[c * k + c]), fp = 0, fn = 0;
      for (size_t o = 0; o < k; ++o) {
        if (o == c) continue;
        fp += static_cast<double>(p.confusion[o * k + c]);
        fn += static_cast<double>(p.confusion[c * k + o]);
      }
      correct += tp;
      f1_sum += train::RatesOf(tp, fp, fn).f1;
    }
    return {{"accuracy", correct / n},
            {"log_loss", p.log_loss_sum / n},
            {"f1_macro", f1_sum / static_cast<double>(k)}};
  }
  return {{"rmse", std::sqrt(p.sse / n)},
          {"mae", p.sae / n},
          {"r2", p.label_m2 > 0 ? 1 - p.sse / p.label_m2 : kNaN}};
}

// The performance part of one logged prediction: its label against `scores`.
void AddLabelled(const ProfileLayout& layout, const std::vector<float>& scores,
                 const serve::LoggedPrediction& lp, simdjson::dom::parser& parser,
                 WindowProfile& p) {
  const uint64_t limit = p.exact_limit;
  const bool binary = layout.binary();
  if (!lp.label_json || scores.empty()) return;
  simdjson::dom::element label;
  if (parser.parse(*lp.label_json).get(label)) return;
  ++p.labelled;
  const std::vector<std::string>& classes = layout.info().classes;
  if (binary || layout.multiclass()) {
    const int k = ClassOf(label, classes);
    if (k < 0 || (binary && scores.size() != 1) || (!binary && scores.size() != classes.size())) {
      ++p.unmatched_labels;
      return;
    }
    ++p.scored;
    if (binary) {
      const float s = scores[0];
      const bool actual = k == 1;
      const bool predicted = s >= 0.5;
      ++p.confusion[(actual ? 2 : 0) + (predicted ? 1 : 0)];
      const double prob = std::clamp(static_cast<double>(s), 1e-15, 1 - 1e-15);
      p.log_loss_sum -= actual ? std::log(prob) : std::log(1 - prob);
      if (std::isfinite(s)) (actual ? p.positives : p.negatives).Add(s, layout.score_grid(), limit);
    } else {
      const size_t best =
          static_cast<size_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
      ++p.confusion[static_cast<size_t>(k) * classes.size() + best];
      p.log_loss_sum -=
          std::log(std::clamp(static_cast<double>(scores[static_cast<size_t>(k)]), 1e-15, 1.0));
    }
    return;
  }
  double y;
  if (label.get_double().get(y) || scores.size() != 1) {
    ++p.unmatched_labels;
    return;
  }
  const float yf = static_cast<float>(y);
  const double e = static_cast<double>(scores[0]) - yf;
  ++p.scored;
  p.sse += e * e;
  p.sae += std::fabs(e);
  const double delta = yf - p.label_mean;
  p.label_mean += delta / static_cast<double>(p.scored);
  p.label_m2 += delta * (yf - p.label_mean);
}

}  // namespace

// ---------------------------------------------------------------------------

std::unique_ptr<ValueGrid> ReferenceGrid(const ReferenceColumn& column) {
  return std::make_unique<RefGrid>(column);
}

std::unique_ptr<ValueGrid> LogGrid() { return std::make_unique<LogGridImpl>(); }

void ValueCounts::Add(double value, const ValueGrid& grid, uint64_t exact_limit) {
  ++count_;
  if (grid_.empty() && exact_.size() < exact_limit) {
    exact_.push_back(value);
    return;
  }
  ToGrid(grid);
  AddCode(grid.Code(value), 1);
}

void ValueCounts::AddCode(int32_t code, uint64_t n) {
  const auto it = std::lower_bound(grid_.begin(), grid_.end(), code,
                                   [](const auto& e, int32_t c) { return e.first < c; });
  if (it != grid_.end() && it->first == code) {
    it->second += n;
  } else {
    grid_.insert(it, {code, n});
  }
}

void ValueCounts::AddGrid(std::vector<std::pair<int32_t, uint64_t>> other) {
  std::vector<std::pair<int32_t, uint64_t>> merged;
  merged.reserve(grid_.size() + other.size());
  size_t i = 0, j = 0;
  while (i < grid_.size() || j < other.size()) {
    if (j == other.size() || (i < grid_.size() && grid_[i].first < other[j].first)) {
      merged.push_back(grid_[i++]);
    } else if (i == grid_.size() || other[j].first < grid_[i].first) {
      merged.push_back(other[j++]);
    } else {
      merged.emplace_back(grid_[i].first, grid_[i].second + other[j].second);
      ++i;
      ++j;
    }
  }
  grid_ = std::move(merged);
}

// Codes of exact values, sorted and counted.
std::vector<std::pair<int32_t, uint64_t>> ValueCounts::Coded(std::span<const double> values,
                                                             const ValueGrid& grid) {
  std::vector<int32_t> codes;
  codes.reserve(values.size());
  for (double v : values) codes.push_back(grid.Code(v));
  std::sort(codes.begin(), codes.end());
  std::vector<std::pair<int32_t, uint64_t>> out;
  for (int32_t c : codes) {
    if (!out.empty() && out.back().first == c) {
      ++out.back().second;
    } else {
      out.emplace_back(c, 1);
    }
  }
  return out;
}

void ValueCounts::ToGrid(const ValueGrid& grid) {
  if (exact_.empty()) return;
  AddGrid(Coded(exact_, grid));
  exact_.clear();
  exact_.shrink_to_fit();
}

void ValueCounts::Merge(const ValueCounts& other, const ValueGrid& grid, uint64_t exact_limit) {
  if (exact() && other.exact() && count_ + other.count_ <= exact_limit) {
    exact_.insert(exact_.end(), other.exact_.begin(), other.exact_.end());
  } else {
    ToGrid(grid);
    if (!other.exact_.empty()) AddGrid(Coded(other.exact_, grid));
    if (!other.grid_.empty()) AddGrid(other.grid_);
  }
  count_ += other.count_;
}

void ValueCounts::AppendTo(const ValueGrid& grid, std::vector<double>& out) const {
  out.insert(out.end(), exact_.begin(), exact_.end());
  for (const auto& [code, n] : grid_) grid.Fill(code, n, out);
}

ProfileLayout::ProfileLayout(const ReferenceProfile& reference, const model::PackageInfo& info)
    : reference_(&reference), info_(&info), latency_grid_(LogGrid()) {
  const auto column = [](const ReferenceColumn& c) {
    Column col;
    col.ref = &c;
    col.numeric = c.kind == ColumnKind::kNumeric;
    if (col.numeric) col.grid = ReferenceGrid(c);
    return col;
  };
  for (const ReferenceColumn& c : reference.columns) {
    // The label is not a model input (labels arrive separately).
    if (c.name == reference.prediction_column || c.name == reference.target_column) continue;
    inputs_.push_back(column(c));
  }
  const ReferenceColumn* pred =
      reference.prediction_column.empty() ? nullptr : reference.Find(reference.prediction_column);
  if (pred != nullptr) prediction_ = column(*pred);
  score_grid_ =
      pred != nullptr && pred->kind == ColumnKind::kNumeric ? ReferenceGrid(*pred) : LogGrid();
}

WindowProfile EmptyProfile(const ProfileLayout& layout, const ProfileOptions& options) {
  WindowProfile p;
  p.exact_limit = options.exact_limit;
  p.inputs.resize(layout.inputs().size());
  const size_t k = layout.info().classes.size();
  if (layout.binary()) p.confusion.assign(4, 0);
  if (layout.multiclass()) p.confusion.assign(k * k, 0);
  return p;
}

void AddToProfile(const ProfileLayout& layout, const serve::LoggedPrediction& lp,
                  WindowProfile& p) {
  // Called per logged row: the parser and its buffers are kept per thread.
  thread_local simdjson::dom::parser parser;
  const serve::PredictionRecord& r = lp.record;
  const uint64_t limit = p.exact_limit;
  ++p.rows;
  ++p.endpoints[r.endpoint];
  p.latency_us.Add(r.latency_us, layout.latency_grid(), limit);
  p.first_ms = std::min(p.first_ms, r.time_ms);
  p.last_ms = std::max(p.last_ms, r.time_ms);
  simdjson::dom::element input;
  const bool input_ok = !parser.parse(r.input_json).get(input) && input.is_object();
  if (!input_ok) ++p.unreadable;
  for (size_t i = 0; i < layout.inputs().size(); ++i) {
    const ProfileLayout::Column& col = layout.inputs()[i];
    simdjson::dom::element v;
    const bool present = input_ok && !input.at_key(col.ref->name).get(v);
    if (!AddCell(col, p.inputs[i], v, present, limit)) ++p.unreadable;
  }
  const std::vector<float> scores = ReadScores(parser, r.output_json);
  if (scores.empty()) ++p.unreadable;
  const bool binary = layout.binary();
  if (binary && scores.size() == 1 && std::isfinite(scores[0])) {
    p.scores.Add(scores[0], layout.score_grid(), limit);
  }
  const ProfileLayout::Column& pred = layout.prediction();
  if (pred.ref != nullptr) {
    if (!pred.numeric) {
      if (scores.empty()) {
        p.prediction.categories.AddMissing();
      } else {
        const size_t best =
            static_cast<size_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
        const std::vector<std::string>& classes = layout.info().classes;
        p.prediction.categories.Add(best < classes.size() ? classes[best] : std::to_string(best));
      }
    } else if (scores.size() == 1 && std::isfinite(scores[0])) {
      p.prediction.values.Add(scores[0], *pred.grid, limit);
    } else {
      ++p.prediction.missing;
    }
  }
  AddLabelled(layout, scores, lp, parser, p);
}

void AddPerformance(const ProfileLayout& layout, const serve::LoggedPrediction& lp,
                    WindowProfile& p) {
  thread_local simdjson::dom::parser parser;
  AddLabelled(layout, ReadScores(parser, lp.record.output_json), lp, parser, p);
}

void ClearPerformance(const ProfileLayout& layout, WindowProfile& p) {
  const WindowProfile empty = EmptyProfile(layout, {.exact_limit = p.exact_limit});
  p.labelled = p.unmatched_labels = p.scored = 0;
  p.log_loss_sum = p.sse = p.sae = p.label_mean = p.label_m2 = 0;
  p.positives = empty.positives;
  p.negatives = empty.negatives;
  p.confusion = empty.confusion;
}

WindowProfile ProfileOf(const ProfileLayout& layout, std::span<const serve::LoggedPrediction> rows,
                        const ProfileOptions& options) {
  WindowProfile p = EmptyProfile(layout, options);
  for (const serve::LoggedPrediction& row : rows) AddToProfile(layout, row, p);
  return p;
}

void WindowProfile::Merge(const WindowProfile& o, const ProfileLayout& layout) {
  const uint64_t limit = exact_limit;
  rows += o.rows;
  unreadable += o.unreadable;
  first_ms = std::min(first_ms, o.first_ms);
  last_ms = std::max(last_ms, o.last_ms);
  for (size_t i = 0; i < inputs.size() && i < o.inputs.size(); ++i) {
    MergeColumn(layout.inputs()[i], inputs[i], o.inputs[i], limit);
  }
  if (layout.prediction().ref != nullptr) {
    MergeColumn(layout.prediction(), prediction, o.prediction, limit);
  }
  for (const auto& [name, n] : o.endpoints) endpoints[name] += n;
  latency_us.Merge(o.latency_us, layout.latency_grid(), limit);
  labelled += o.labelled;
  unmatched_labels += o.unmatched_labels;
  log_loss_sum += o.log_loss_sum;
  scores.Merge(o.scores, layout.score_grid(), limit);
  positives.Merge(o.positives, layout.score_grid(), limit);
  negatives.Merge(o.negatives, layout.score_grid(), limit);
  for (size_t i = 0; i < confusion.size() && i < o.confusion.size(); ++i) {
    confusion[i] += o.confusion[i];
  }
  sse += o.sse;
  sae += o.sae;
  // Chan et al.'s pairwise update of the labels' mean and squared deviations.
  if (o.scored > 0 && !layout.binary() && !layout.multiclass()) {
    const double na = static_cast<double>(scored), nb = static_cast<double>(o.scored);
    const double delta = o.label_mean - label_mean;
    label_mean += delta * nb / (na + nb);
    label_m2 += o.label_m2 + delta * delta * na * nb / (na + nb);
  }
  scored += o.scored;
}

Result<WindowReport> EvaluateProfile(const ProfileLayout& layout, const WindowProfile& profile,
                                     const WindowQuery& query, const DriftOptions& options,
                                     uint64_t total_rows) {
  if (profile.rows == 0) {
    return NotFound("no logged predictions of " + query.model +
                    (query.version.empty() ? "" : " version " + query.version) + " in the window");
  }
  const ReferenceProfile& reference = layout.reference();
  WindowReport report;
  report.query = query;
  report.rows = profile.rows;
  report.truncated = total_rows > profile.rows;
  report.unreadable = profile.unreadable;

  data::Table current;
  for (size_t i = 0; i < layout.inputs().size(); ++i) {
    KEEL_ASSIGN_OR_RETURN(data::Column c, Materialize(layout.inputs()[i], profile.inputs[i]));
    KEEL_RETURN_IF_ERROR(current.AddColumn(std::move(c)));
  }
  DriftOptions drift_options = options;
  if (!reference.target_column.empty()) drift_options.exclude.push_back(reference.target_column);
  if (layout.prediction().ref != nullptr) {
    KEEL_ASSIGN_OR_RETURN(data::Column c, Materialize(layout.prediction(), profile.prediction));
    KEEL_RETURN_IF_ERROR(current.AddColumn(std::move(c)));
    drift_options.prediction = layout.prediction().ref->name;
  }
  KEEL_ASSIGN_OR_RETURN(report.drift, CompareToReference(reference, current, drift_options));
  report.drift.current_name = "window";

  // Performance against the validation performance recorded at training.
  PerformanceSummary& perf = report.performance;
  perf.labelled = profile.labelled;
  perf.unmatched_labels = profile.unmatched_labels;
  perf.reference = reference.performance;
  if (layout.binary() && profile.scores.count() > 0) {
    perf.estimated =
        EstimateBinaryPerformance(Floats(profile.scores, layout.score_grid()),
                                  reference.calibration.empty() ? nullptr : &reference.calibration);
  }
  perf.live = LiveMetrics(layout, profile);

  // Operational figures.
  OperationalSummary& ops = report.operational;
  ops.predictions = std::max<uint64_t>(total_rows, profile.rows);
  const bool open = query.from_ms <= 0 || query.to_ms == std::numeric_limits<int64_t>::max();
  ops.seconds = open ? static_cast<double>(profile.last_ms - profile.first_ms) / 1000.0
                     : static_cast<double>(query.to_ms - query.from_ms) / 1000.0;
  ops.rate_per_s = ops.seconds > 0 ? static_cast<double>(ops.predictions) / ops.seconds : kNaN;
  std::vector<double> latencies;
  latencies.reserve(profile.latency_us.count());
  profile.latency_us.AppendTo(layout.latency_grid(), latencies);
  std::sort(latencies.begin(), latencies.end());
  ops.latency_p50_us = Percentile(latencies, 0.50);
  ops.latency_p95_us = Percentile(latencies, 0.95);
  ops.latency_p99_us = Percentile(latencies, 0.99);
  ops.latency_max_us = latencies.empty() ? kNaN : latencies.back();
  for (const auto& [name, n] : profile.endpoints) ops.endpoints.emplace_back(name, n);
  return report;
}

int LabelClass(std::string_view label_json, const std::vector<std::string>& classes) {
  // Called once per labeled row (the retraining gate and watch): the parser
  // and its buffers are kept per thread rather than built per label.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element v;
  if (parser.parse(label_json.data(), label_json.size()).get(v)) return -1;
  return ClassOf(v, classes);
}

}  // namespace keel::monitor
