// Prometheus metrics (text exposition format 0.0.4); see keel/core/metrics.h.
//
// Layout: a Registry owns its families (never destroyed before the registry);
// a Family owns its series through std::unique_ptr so a Metric never moves,
// and a removed series is parked in a graveyard instead of being destroyed,
// which is what keeps every reference returned by WithLabels valid for the
// registry's lifetime.
#include "keel/core/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <mutex>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>

namespace keel::metrics {
namespace {

constexpr std::memory_order kRelaxed = std::memory_order_relaxed;

// ---------------------------------------------------------------------------
// Validation.

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool IsValidMetricName(std::string_view name) {
  if (name.empty() || !(IsNameStart(name[0]) || name[0] == ':')) return false;
  for (char c : name) {
    if (!(IsNameStart(c) || IsDigit(c) || c == ':')) return false;
  }
  return true;
}

// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved by Prometheus).
bool IsValidLabelName(std::string_view name) {
  if (name.empty() || !IsNameStart(name[0])) return false;
  if (name.substr(0, 2) == "__") return false;
  for (char c : name) {
    if (!(IsNameStart(c) || IsDigit(c))) return false;
  }
  return true;
}

[[noreturn]] void Fail(const std::string& what) {
  throw std::invalid_argument("keel::metrics: " + what);
}

void ValidateMetricName(const std::string& name) {
  if (!IsValidMetricName(name)) {
    Fail("invalid metric name \"" + name + "\" (must match [a-zA-Z_:][a-zA-Z0-9_:]*)");
  }
}

// Throws unless every label name is valid and distinct; histograms also
// reserve "le" for their bucket label.
void ValidateLabelNames(const std::string& metric, const std::vector<std::string>& label_names,
                        bool histogram) {
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string& l = label_names[i];
    if (!IsValidLabelName(l)) {
      Fail("metric \"" + metric + "\": invalid label name \"" + l +
           "\" (must match [a-zA-Z_][a-zA-Z0-9_]* and not start with \"__\")");
    }
    if (histogram && l == "le") {
      Fail("histogram \"" + metric + "\": label name \"le\" is reserved for buckets");
    }
    for (size_t j = 0; j < i; ++j) {
      if (label_names[j] == l)
        Fail("metric \"" + metric + "\": duplicate label name \"" + l + "\"");
    }
  }
}

// ---------------------------------------------------------------------------
// Text format helpers.

// Appends `v` as a Prometheus float: NaN, +Inf, -Inf; an exact integer with
// magnitude below 2^53 in plain decimal ("42", "-3", "0"); anything else in
// the shortest digits that round-trip, with an exponent only below 1e-4 or
// from 1e6 up, like Go's strconv.FormatFloat(v, 'g', -1, 64) in the reference
// client ("0.25", "0.0001", "5e-05", "1.2345675e+06"). The same rule formats
// histogram `le` labels.
void AppendValue(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[64];
  std::to_chars_result r;
  if (std::fabs(v) < 9007199254740992.0 && v == std::trunc(v)) {
    r = std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(v));
  } else {
    r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::general);
  }
  out.append(buf, r.ptr);
}

void AppendValue(std::string& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

// HELP text: backslash and newline are escaped.
void AppendEscapedHelp(std::string& out, std::string_view s) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// Label values: backslash, double quote and newline are escaped.
void AppendEscapedLabelValue(std::string& out, std::string_view s) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// Appends a length-prefixed value ("<size>:<bytes>") to a series key, so keys
// of different label-value tuples never collide whatever bytes they hold.
void AppendKeyPart(std::string& key, std::string_view v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v.size());
  key.append(buf, r.ptr);
  key += ':';
  key.append(v);
}

void AppendHeader(std::string& out, const std::string& name, const std::string& help,
                  std::string_view type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  AppendEscapedHelp(out, help);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// Empty if `bounds` are valid histogram bucket bounds, else the reason.
std::string BoundsError(const std::vector<double>& bounds) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) return "bucket bounds must be finite (+Inf is implied)";
    if (i > 0 && !(bounds[i - 1] < bounds[i])) return "bucket bounds must be strictly increasing";
  }
  return {};
}

template <typename Metric>
std::unique_ptr<Metric> NewMetric(const std::vector<double>& bounds) {
  if constexpr (std::is_same_v<Metric, Histogram>) {
    return std::make_unique<Histogram>(bounds);
  } else {
    return std::make_unique<Metric>();
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Counter, Gauge, Histogram.

void Counter::Inc(double v) {
  if (!(v >= 0)) return;  // negative or NaN: ignored
  value_.fetch_add(v, kRelaxed);
}

double Counter::Value() const { return value_.load(kRelaxed); }

void Gauge::Set(double v) { value_.store(v, kRelaxed); }
void Gauge::Inc(double v) { value_.fetch_add(v, kRelaxed); }
void Gauge::Dec(double v) { value_.fetch_sub(v, kRelaxed); }
double Gauge::Value() const { return value_.load(kRelaxed); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  if (std::string err = BoundsError(bounds_); !err.empty()) Fail("histogram: " + err);
}

// Bucket i holds values in (bounds_[i-1], bounds_[i]]: the first bound >= v,
// so a value equal to a bound lands in that bound's bucket. Values above every
// bound, +Inf and NaN land in the implicit +Inf bucket (NaN also makes the sum
// NaN, as in the reference Prometheus clients).
void Histogram::Observe(double v) {
  size_t i = bounds_.size();
  if (!std::isnan(v)) {
    i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  }
  counts_[i].fetch_add(1, kRelaxed);
  sum_.fetch_add(v, kRelaxed);
}

uint64_t Histogram::Count() const {
  uint64_t n = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) n += counts_[i].load(kRelaxed);
  return n;
}

double Histogram::Sum() const { return sum_.load(kRelaxed); }

// Each bucket is read once, so the result is monotonic and its last element
// equals the total even while other threads observe (it may then differ from
// a separate Count() call).
std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t n = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    n += counts_[i].load(kRelaxed);
    out[i] = n;
  }
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1.0,   2.5,    5.0,   10.0};
}

// ---------------------------------------------------------------------------
// Family.

template <typename Metric>
struct Family<Metric>::Impl {
  struct Series {
    std::string key;     // length-prefixed label values (see AppendKeyPart)
    std::string labels;  // rendered `l1="v1",l2="v2"` (escaped), empty if label-less
    std::unique_ptr<Metric> metric;
  };

  std::string name;
  std::vector<std::string> label_names;
  std::vector<double> bounds;  // histograms only

  std::mutex mu;
  std::vector<Series> series;                      // render order = order of first use
  std::unordered_map<std::string, Metric*> index;  // key -> live series' metric
  std::vector<std::unique_ptr<Metric>> graveyard;  // removed, kept alive for references

  // Throws unless `n` label values match the family's label names.
  void CheckArity(size_t n) const {
    if (n != label_names.size()) {
      Fail("metric \"" + name + "\": got " + std::to_string(n) + " label values, expected " +
           std::to_string(label_names.size()));
    }
  }

  template <typename Values>
  static std::string Key(const Values& values) {
    std::string key;
    for (const auto& v : values) AppendKeyPart(key, v);
    return key;
  }

  // The live series for `values`, created (and appended to the render order)
  // on first use.
  template <typename Values>
  Metric& GetOrCreate(const Values& values) {
    CheckArity(values.size());
    std::string key = Key(values);
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = index.find(key); it != index.end()) return *it->second;
    std::string labels;
    size_t i = 0;
    for (const auto& v : values) {
      if (i > 0) labels += ',';
      labels += label_names[i++];
      labels += "=\"";
      AppendEscapedLabelValue(labels, v);
      labels += '"';
    }
    auto metric = NewMetric<Metric>(bounds);
    Metric* raw = metric.get();
    index.emplace(key, raw);
    series.push_back(Series{std::move(key), std::move(labels), std::move(metric)});
    return *raw;
  }

  void Remove(const std::vector<std::string>& values) {
    CheckArity(values.size());
    std::string key = Key(values);
    std::lock_guard<std::mutex> lock(mu);
    if (index.erase(key) == 0) return;
    auto it =
        std::find_if(series.begin(), series.end(), [&](const Series& s) { return s.key == key; });
    graveyard.push_back(std::move(it->metric));
    series.erase(it);
  }
};

template <typename Metric>
Family<Metric>::Family(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

template <typename Metric>
Family<Metric>::~Family() = default;

template <typename Metric>
Metric& Family<Metric>::WithLabels(std::initializer_list<std::string_view> values) {
  return impl_->GetOrCreate(values);
}

template <typename Metric>
Metric& Family<Metric>::WithLabels(const std::vector<std::string>& values) {
  return impl_->GetOrCreate(values);
}

template <typename Metric>
void Family<Metric>::Remove(const std::vector<std::string>& values) {
  impl_->Remove(values);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---------------------------------------------------------------------------
// Rendering of one family's series (called with the family's mutex held).

namespace {

template <typename Metric>
void AppendSeries(std::string& out, const std::string& name,
                  const typename Family<Metric>::Impl::Series& s) {
  out += name;
  if (!s.labels.empty()) {
    out += '{';
    out += s.labels;
    out += '}';
  }
  out += ' ';
  AppendValue(out, s.metric->Value());
  out += '\n';
}

void AppendHistogramSeries(std::string& out, const std::string& name,
                           const Family<Histogram>::Impl::Series& s) {
  const Histogram& h = *s.metric;
  std::vector<uint64_t> cumulative = h.CumulativeCounts();
  const std::vector<double>& bounds = h.bounds();
  for (size_t i = 0; i < cumulative.size(); ++i) {
    out += name;
    out += "_bucket{";
    if (!s.labels.empty()) {
      out += s.labels;
      out += ',';
    }
    out += "le=\"";
    if (i < bounds.size()) {
      AppendValue(out, bounds[i]);
    } else {
      out += "+Inf";
    }
    out += "\"} ";
    AppendValue(out, cumulative[i]);
    out += '\n';
  }
  const std::string braces = s.labels.empty() ? std::string() : "{" + s.labels + "}";
  out += name;
  out += "_sum";
  out += braces;
  out += ' ';
  AppendValue(out, h.Sum());
  out += '\n';
  // The +Inf bucket, so _count always agrees with the buckets rendered above.
  out += name;
  out += "_count";
  out += braces;
  out += ' ';
  AppendValue(out, cumulative.back());
  out += '\n';
}

template <typename Metric>
void RenderFamily(std::string& out, typename Family<Metric>::Impl& f) {
  std::lock_guard<std::mutex> lock(f.mu);
  for (const auto& s : f.series) {
    if constexpr (std::is_same_v<Metric, Histogram>) {
      AppendHistogramSeries(out, f.name, s);
    } else {
      AppendSeries<Metric>(out, f.name, s);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Registry.

struct Registry::Impl {
  struct Entry {
    std::string name;
    std::string help;
    // Exactly one alternative is set per entry; families live as long as the
    // registry, so references handed out by Add* stay valid.
    std::variant<std::unique_ptr<CounterFamily>, std::unique_ptr<GaugeFamily>,
                 std::unique_ptr<HistogramFamily>, std::function<double()>>
        metric;
    // For callbacks: the TYPE rendered ("gauge" or "counter").
    const char* callback_type = "gauge";
  };

  std::mutex mu;
  std::vector<std::unique_ptr<Entry>> entries;  // registration order; never erased
  std::unordered_set<std::string> names;        // every series name in use (incl. suffixes)

  // Names a family's samples use: a histogram's own name is only in HELP/TYPE,
  // but its `_bucket`, `_sum` and `_count` series must not collide either.
  static std::vector<std::string> ReservedNames(const std::string& name, bool histogram) {
    if (!histogram) return {name};
    return {name, name + "_bucket", name + "_sum", name + "_count"};
  }

  // Registers `entry` in order; throws if any of its names is already taken.
  // Callers validate everything else before, so a throw leaves no trace.
  void Add(std::unique_ptr<Entry> entry, bool histogram) {
    std::vector<std::string> reserved = ReservedNames(entry->name, histogram);
    std::lock_guard<std::mutex> lock(mu);
    for (const std::string& n : reserved) {
      if (names.count(n) != 0) {
        Fail("metric \"" + entry->name + "\" is already registered" +
             (n == entry->name ? std::string() : " (as \"" + n + "\")"));
      }
    }
    names.insert(reserved.begin(), reserved.end());
    entries.push_back(std::move(entry));
  }
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

namespace {

template <typename Metric>
std::unique_ptr<Family<Metric>> NewFamily(const std::string& name,
                                          std::vector<std::string> label_names,
                                          std::vector<double> bounds) {
  auto impl = std::make_unique<typename Family<Metric>::Impl>();
  impl->name = name;
  impl->label_names = std::move(label_names);
  impl->bounds = std::move(bounds);
  // A label-less family has its single series from the start (renders `name 0`).
  if (impl->label_names.empty()) impl->GetOrCreate(std::vector<std::string>{});
  return std::make_unique<Family<Metric>>(std::move(impl));
}

}  // namespace

CounterFamily& Registry::AddCounter(std::string name, std::string help,
                                    std::vector<std::string> label_names) {
  ValidateMetricName(name);
  ValidateLabelNames(name, label_names, /*histogram=*/false);
  auto family = NewFamily<Counter>(name, std::move(label_names), {});
  CounterFamily& ref = *family;
  impl_->Add(std::make_unique<Impl::Entry>(
                 Impl::Entry{std::move(name), std::move(help), std::move(family)}),
             false);
  return ref;
}

GaugeFamily& Registry::AddGauge(std::string name, std::string help,
                                std::vector<std::string> label_names) {
  ValidateMetricName(name);
  ValidateLabelNames(name, label_names, /*histogram=*/false);
  auto family = NewFamily<Gauge>(name, std::move(label_names), {});
  GaugeFamily& ref = *family;
  impl_->Add(std::make_unique<Impl::Entry>(
                 Impl::Entry{std::move(name), std::move(help), std::move(family)}),
             false);
  return ref;
}

HistogramFamily& Registry::AddHistogram(std::string name, std::string help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> bounds) {
  ValidateMetricName(name);
  ValidateLabelNames(name, label_names, /*histogram=*/true);
  if (std::string err = BoundsError(bounds); !err.empty()) {
    Fail("histogram \"" + name + "\": " + err);
  }
  auto family = NewFamily<Histogram>(name, std::move(label_names), std::move(bounds));
  HistogramFamily& ref = *family;
  impl_->Add(std::make_unique<Impl::Entry>(
                 Impl::Entry{std::move(name), std::move(help), std::move(family)}),
             true);
  return ref;
}

void Registry::AddGaugeCallback(std::string name, std::string help, std::function<double()> read) {
  ValidateMetricName(name);
  if (!read) Fail("gauge callback \"" + name + "\": empty function");
  impl_->Add(std::make_unique<Impl::Entry>(
                 Impl::Entry{std::move(name), std::move(help), std::move(read), "gauge"}),
             false);
}

void Registry::AddCounterCallback(std::string name, std::string help,
                                  std::function<double()> read) {
  ValidateMetricName(name);
  if (!read) Fail("counter callback \"" + name + "\": empty function");
  impl_->Add(std::make_unique<Impl::Entry>(
                 Impl::Entry{std::move(name), std::move(help), std::move(read), "counter"}),
             false);
}

// The registry's mutex is held only to snapshot the entry list (entries are
// never erased, so the pointers stay valid); families are then rendered one
// at a time under their own mutex, and callbacks run with no lock held. An
// exception thrown by a callback propagates to the caller.
std::string Registry::Render() const {
  std::vector<const Impl::Entry*> entries;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    entries.reserve(impl_->entries.size());
    for (const auto& e : impl_->entries) entries.push_back(e.get());
  }
  std::string out;
  for (const Impl::Entry* e : entries) {
    if (auto* c = std::get_if<std::unique_ptr<CounterFamily>>(&e->metric)) {
      AppendHeader(out, e->name, e->help, "counter");
      RenderFamily<Counter>(out, *(*c)->impl_);
    } else if (auto* g = std::get_if<std::unique_ptr<GaugeFamily>>(&e->metric)) {
      AppendHeader(out, e->name, e->help, "gauge");
      RenderFamily<Gauge>(out, *(*g)->impl_);
    } else if (auto* h = std::get_if<std::unique_ptr<HistogramFamily>>(&e->metric)) {
      AppendHeader(out, e->name, e->help, "histogram");
      RenderFamily<Histogram>(out, *(*h)->impl_);
    } else {
      const auto& read = std::get<std::function<double()>>(e->metric);
      double v = read();
      AppendHeader(out, e->name, e->help, e->callback_type);
      out += e->name;
      out += ' ';
      AppendValue(out, v);
      out += '\n';
    }
  }
  return out;
}

}  // namespace keel::metrics
