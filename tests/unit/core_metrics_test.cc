// keel::metrics: metric semantics, validation, the Prometheus text format
// (0.0.4) produced by Registry::Render, reference stability across Remove,
// and exact totals under concurrent lock-free updates.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "keel/core/metrics.h"

namespace keel::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The sample lines (not comments) of a render.
std::vector<std::string> SampleLines(const std::string& text) {
  std::vector<std::string> out;
  for (const std::string& l : Lines(text)) {
    if (!l.empty() && l[0] != '#') out.push_back(l);
  }
  return out;
}

// Renders a registry holding one label-less gauge set to `v` and returns its
// value text.
std::string FormatViaGauge(double v) {
  Registry r;
  r.AddGauge("g", "h").WithLabels({}).Set(v);
  std::vector<std::string> samples = SampleLines(r.Render());
  EXPECT_EQ(samples.size(), 1u);
  if (samples.empty()) return "";
  const std::string& line = samples[0];
  EXPECT_EQ(line.rfind("g ", 0), 0u) << line;
  return line.substr(2);
}

// ---------------------------------------------------------------------------
// Metric semantics.

TEST(Counter, IncrementsAndIgnoresNegativeAndNaN) {
  Counter c;
  EXPECT_EQ(c.Value(), 0.0);
  c.Inc();
  c.Inc(2.5);
  EXPECT_EQ(c.Value(), 3.5);
  c.Inc(-1.0);
  c.Inc(kNaN);
  EXPECT_EQ(c.Value(), 3.5);
  c.Inc(0.0);
  EXPECT_EQ(c.Value(), 3.5);
}

TEST(Gauge, SetIncDec) {
  Gauge g;
  EXPECT_EQ(g.Value(), 0.0);
  g.Set(10);
  g.Inc();
  g.Inc(4);
  g.Dec();
  g.Dec(20);
  EXPECT_EQ(g.Value(), -6.0);
  g.Set(-kInf);
  EXPECT_EQ(g.Value(), -kInf);
}

TEST(Histogram, BucketsCountSumAndLeBoundary) {
  Histogram h({1, 2, 5});
  EXPECT_EQ(h.bounds(), (std::vector<double>{1, 2, 5}));
  EXPECT_EQ(h.Count(), 0u);
  EXPECT_EQ(h.CumulativeCounts(), (std::vector<uint64_t>{0, 0, 0, 0}));

  h.Observe(1.0);   // equal to a bound: that bound's bucket (le = "less or equal")
  h.Observe(0.5);   // le=1
  h.Observe(1.5);   // le=2
  h.Observe(2.0);   // le=2 (boundary)
  h.Observe(5.0);   // le=5 (boundary)
  h.Observe(5.01);  // +Inf
  h.Observe(-3);    // below every bound: le=1
  EXPECT_EQ(h.Count(), 7u);
  EXPECT_DOUBLE_EQ(h.Sum(), 1.0 + 0.5 + 1.5 + 2.0 + 5.0 + 5.01 - 3);
  EXPECT_EQ(h.CumulativeCounts(), (std::vector<uint64_t>{3, 5, 6, 7}));
}

TEST(Histogram, NonFiniteObservationsGoToTheRightBuckets) {
  Histogram h({1, 2});
  h.Observe(kInf);
  EXPECT_EQ(h.CumulativeCounts(), (std::vector<uint64_t>{0, 0, 1}));
  h.Observe(-kInf);
  EXPECT_EQ(h.CumulativeCounts(), (std::vector<uint64_t>{1, 1, 2}));
  h.Observe(kNaN);  // never in a finite bucket
  EXPECT_EQ(h.CumulativeCounts(), (std::vector<uint64_t>{1, 1, 3}));
  EXPECT_TRUE(std::isnan(h.Sum()));
}

TEST(Histogram, NoBoundsHasOnlyTheInfBucket) {
  Histogram h({});
  h.Observe(42);
  EXPECT_EQ(h.CumulativeCounts(), (std::vector<uint64_t>{1}));
  EXPECT_EQ(h.Count(), 1u);
}

TEST(Histogram, RejectsBadBounds) {
  EXPECT_THROW(Histogram({1, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({2, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({1, kInf}), std::invalid_argument);
  EXPECT_THROW(Histogram({-kInf, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({1, kNaN}), std::invalid_argument);
  EXPECT_NO_THROW(Histogram({-1, 0, 0.5}));
}

TEST(LatencyBuckets, ExactValuesInSeconds) {
  EXPECT_EQ(LatencyBuckets(),
            (std::vector<double>{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}));
  EXPECT_NO_THROW(Histogram{LatencyBuckets()});
}

// ---------------------------------------------------------------------------
// Rendering.

TEST(Render, EmptyRegistryIsEmpty) {
  Registry r;
  EXPECT_EQ(r.Render(), "");
}

TEST(Render, LabelLessCounterHasOneSeriesFromTheStart) {
  Registry r;
  r.AddCounter("keel_things_total", "Things done.");
  EXPECT_EQ(r.Render(),
            "# HELP keel_things_total Things done.\n"
            "# TYPE keel_things_total counter\n"
            "keel_things_total 0\n");
}

TEST(Render, LabelLessFamilyWithLabelsReturnsTheSameSeries) {
  Registry r;
  auto& fam = r.AddCounter("c_total", "h");
  Counter& a = fam.WithLabels({});
  Counter& b = fam.WithLabels(std::vector<std::string>{});
  EXPECT_EQ(&a, &b);
  a.Inc(3);
  EXPECT_EQ(SampleLines(r.Render()), (std::vector<std::string>{"c_total 3"}));
}

TEST(Render, FamilyWithoutSeriesStillPrintsHelpAndType) {
  Registry r;
  r.AddCounter("a_total", "A.", {"model"});
  r.AddGauge("b", "B.", {"model"});
  r.AddHistogram("c_seconds", "C.", {"model"}, {1});
  EXPECT_EQ(r.Render(),
            "# HELP a_total A.\n"
            "# TYPE a_total counter\n"
            "# HELP b B.\n"
            "# TYPE b gauge\n"
            "# HELP c_seconds C.\n"
            "# TYPE c_seconds histogram\n");
}

TEST(Render, CounterWithLabelsInOrderOfFirstUse) {
  Registry r;
  auto& requests =
      r.AddCounter("keel_requests_total", "Requests answered.", {"model", "endpoint", "code"});
  requests.WithLabels({"churn", "predict", "200"}).Inc();
  requests.WithLabels({"churn", "predict", "200"}).Inc();
  requests.WithLabels({"alpha", "predict", "500"}).Inc(0.5);
  requests.WithLabels(std::vector<std::string>{"churn", "predict", "200"}).Inc(40);
  EXPECT_EQ(r.Render(),
            "# HELP keel_requests_total Requests answered.\n"
            "# TYPE keel_requests_total counter\n"
            "keel_requests_total{model=\"churn\",endpoint=\"predict\",code=\"200\"} 42\n"
            "keel_requests_total{model=\"alpha\",endpoint=\"predict\",code=\"500\"} 0.5\n");
}

TEST(Render, GaugeWithLabels) {
  Registry r;
  auto& g = r.AddGauge("keel_model_info", "Loaded models.", {"model", "version"});
  g.WithLabels({"churn", "3"}).Set(1);
  g.WithLabels({"fraud", "12"}).Set(-2.25);
  EXPECT_EQ(SampleLines(r.Render()),
            (std::vector<std::string>{"keel_model_info{model=\"churn\",version=\"3\"} 1",
                                      "keel_model_info{model=\"fraud\",version=\"12\"} -2.25"}));
}

TEST(Render, EscapesHelpAndLabelValues) {
  Registry r;
  auto& c = r.AddCounter("esc_total", "Back\\slash, \"quotes\" and\nnewline.", {"v"});
  c.WithLabels({"a\\b\"c\nd"}).Inc();
  c.WithLabels({""}).Inc(2);
  c.WithLabels({"ünï{c}=,"}).Inc(3);
  EXPECT_EQ(r.Render(),
            // HELP escapes only backslash and newline; quotes stay as they are.
            "# HELP esc_total Back\\\\slash, \"quotes\" and\\nnewline.\n"
            "# TYPE esc_total counter\n"
            "esc_total{v=\"a\\\\b\\\"c\\nd\"} 1\n"
            "esc_total{v=\"\"} 2\n"
            "esc_total{v=\"ünï{c}=,\"} 3\n");
}

TEST(Render, EmptyHelpKeepsTheHelpLine) {
  Registry r;
  r.AddGauge("g", "");
  EXPECT_EQ(r.Render(), "# HELP g \n# TYPE g gauge\ng 0\n");
}

TEST(Render, ValueFormatting) {
  EXPECT_EQ(FormatViaGauge(0), "0");
  EXPECT_EQ(FormatViaGauge(-0.0), "0");
  EXPECT_EQ(FormatViaGauge(42), "42");
  EXPECT_EQ(FormatViaGauge(-7), "-7");
  EXPECT_EQ(FormatViaGauge(1e15), "1000000000000000");
  EXPECT_EQ(FormatViaGauge(9007199254740991.0), "9007199254740991");  // 2^53 - 1
  EXPECT_EQ(FormatViaGauge(-9007199254740991.0), "-9007199254740991");
  EXPECT_EQ(FormatViaGauge(0.5), "0.5");
  EXPECT_EQ(FormatViaGauge(-2.25), "-2.25");
  EXPECT_EQ(FormatViaGauge(0.1), "0.1");
  EXPECT_EQ(FormatViaGauge(kInf), "+Inf");
  EXPECT_EQ(FormatViaGauge(-kInf), "-Inf");
  EXPECT_EQ(FormatViaGauge(kNaN), "NaN");
  // At and beyond 2^53 integers are no longer all exact: shortest round trip.
  for (double v : {9007199254740992.0, 1e300, 0.1 + 0.2, 1.0 / 3, 2.5e-300, 1e-5, -123.456}) {
    std::string text = FormatViaGauge(v);
    EXPECT_EQ(std::stod(text), v) << text;
    EXPECT_LE(text.size(), 24u) << text;
  }
  EXPECT_EQ(FormatViaGauge(0.1 + 0.2), "0.30000000000000004");
  // Beyond the integer rule the layout is Go's strconv 'g', -1 (the reference
  // Prometheus client): an exponent below 1e-4 and from 1e6 up.
  EXPECT_EQ(FormatViaGauge(9007199254740992.0), "9.007199254740992e+15");  // 2^53
  EXPECT_EQ(FormatViaGauge(1e16), "1e+16");
  EXPECT_EQ(FormatViaGauge(123456.5), "123456.5");
  EXPECT_EQ(FormatViaGauge(1234567.5), "1.2345675e+06");
  EXPECT_EQ(FormatViaGauge(0.0001), "0.0001");
  EXPECT_EQ(FormatViaGauge(0.00005), "5e-05");
  EXPECT_EQ(FormatViaGauge(-1e300), "-1e+300");
}

TEST(Render, HistogramFullText) {
  Registry r;
  auto& lat = r.AddHistogram("keel_request_duration_seconds", "Time from request to response.",
                             {"endpoint"}, {0.005, 0.25, 1, 2.5});
  Histogram& predict = lat.WithLabels({"predict"});
  predict.Observe(0.001);
  predict.Observe(0.005);  // boundary: le="0.005"
  predict.Observe(0.1);
  predict.Observe(1);  // boundary: le="1"
  predict.Observe(100);
  lat.WithLabels({"health"});  // created, never observed
  EXPECT_EQ(r.Render(),
            "# HELP keel_request_duration_seconds Time from request to response.\n"
            "# TYPE keel_request_duration_seconds histogram\n"
            "keel_request_duration_seconds_bucket{endpoint=\"predict\",le=\"0.005\"} 2\n"
            "keel_request_duration_seconds_bucket{endpoint=\"predict\",le=\"0.25\"} 3\n"
            "keel_request_duration_seconds_bucket{endpoint=\"predict\",le=\"1\"} 4\n"
            "keel_request_duration_seconds_bucket{endpoint=\"predict\",le=\"2.5\"} 4\n"
            "keel_request_duration_seconds_bucket{endpoint=\"predict\",le=\"+Inf\"} 5\n"
            "keel_request_duration_seconds_sum{endpoint=\"predict\"} 101.106\n"
            "keel_request_duration_seconds_count{endpoint=\"predict\"} 5\n"
            "keel_request_duration_seconds_bucket{endpoint=\"health\",le=\"0.005\"} 0\n"
            "keel_request_duration_seconds_bucket{endpoint=\"health\",le=\"0.25\"} 0\n"
            "keel_request_duration_seconds_bucket{endpoint=\"health\",le=\"1\"} 0\n"
            "keel_request_duration_seconds_bucket{endpoint=\"health\",le=\"2.5\"} 0\n"
            "keel_request_duration_seconds_bucket{endpoint=\"health\",le=\"+Inf\"} 0\n"
            "keel_request_duration_seconds_sum{endpoint=\"health\"} 0\n"
            "keel_request_duration_seconds_count{endpoint=\"health\"} 0\n");
}

TEST(Render, LabelLessHistogram) {
  Registry r;
  auto& h = r.AddHistogram("batch_rows", "Rows per batch.", {}, {10, 100});
  h.WithLabels({}).Observe(7);
  h.WithLabels({}).Observe(70);
  h.WithLabels({}).Observe(700);
  EXPECT_EQ(r.Render(),
            "# HELP batch_rows Rows per batch.\n"
            "# TYPE batch_rows histogram\n"
            "batch_rows_bucket{le=\"10\"} 1\n"
            "batch_rows_bucket{le=\"100\"} 2\n"
            "batch_rows_bucket{le=\"+Inf\"} 3\n"
            "batch_rows_sum 777\n"
            "batch_rows_count 3\n");
}

TEST(Render, LatencyBucketLabelsAreShortest) {
  Registry r;
  r.AddHistogram("lat_seconds", "h", {}, LatencyBuckets());
  std::vector<std::string> les;
  std::regex le_re("le=\"([^\"]*)\"");
  for (const std::string& l : SampleLines(r.Render())) {
    std::smatch m;
    if (std::regex_search(l, m, le_re)) les.push_back(m[1]);
  }
  EXPECT_EQ(les, (std::vector<std::string>{"5e-05", "0.0001", "0.00025", "0.0005", "0.001",
                                           "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                                           "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"}));
}

TEST(Render, HistogramBucketsAreCumulativeAndCountMatchesInf) {
  Registry r;
  auto& h = r.AddHistogram("x_seconds", "h", {"k"}, LatencyBuckets()).WithLabels({"v"});
  for (int i = 0; i < 1000; ++i) h.Observe(i * 0.011);  // 0 .. 10.989 s
  std::vector<std::string> samples = SampleLines(r.Render());
  ASSERT_EQ(samples.size(), LatencyBuckets().size() + 3);
  uint64_t prev = 0;
  for (size_t i = 0; i <= LatencyBuckets().size(); ++i) {
    const std::string& l = samples[i];
    ASSERT_EQ(l.rfind("x_seconds_bucket{k=\"v\",le=\"", 0), 0u) << l;
    uint64_t n = std::stoull(l.substr(l.rfind(' ') + 1));
    EXPECT_GE(n, prev) << l;
    prev = n;
  }
  EXPECT_EQ(samples[LatencyBuckets().size()], "x_seconds_bucket{k=\"v\",le=\"+Inf\"} 1000");
  EXPECT_EQ(samples.back(), "x_seconds_count{k=\"v\"} 1000");
  // 0, 0.011 .. 0.099 are <= 0.1: ten observations.
  EXPECT_EQ(samples[10], "x_seconds_bucket{k=\"v\",le=\"0.1\"} 10");
}

TEST(Render, FamiliesInRegistrationOrder) {
  Registry r;
  r.AddGauge("zeta", "z");
  r.AddCounter("alpha_total", "a");
  r.AddGaugeCallback("mid", "m", [] { return 1.0; });
  std::vector<std::string> types;
  for (const std::string& l : Lines(r.Render())) {
    if (l.rfind("# TYPE ", 0) == 0) types.push_back(l);
  }
  EXPECT_EQ(types, (std::vector<std::string>{"# TYPE zeta gauge", "# TYPE alpha_total counter",
                                             "# TYPE mid gauge"}));
}

TEST(Render, CounterCallbackRendersAsCounter) {
  Registry r;
  uint64_t written = 41;
  r.AddCounterCallback("keel_prediction_log_written_total", "Records committed.",
                       [&] { return static_cast<double>(written); });
  written = 42;
  EXPECT_EQ(r.Render(),
            "# HELP keel_prediction_log_written_total Records committed.\n"
            "# TYPE keel_prediction_log_written_total counter\n"
            "keel_prediction_log_written_total 42\n");
  EXPECT_THROW(
      r.AddCounterCallback("keel_prediction_log_written_total", "again", [] { return 0.0; }),
      std::invalid_argument);
  EXPECT_THROW(r.AddCounterCallback("ok_total", "empty", nullptr), std::invalid_argument);
}

TEST(Render, GaugeCallbackIsReadAtEachRender) {
  Registry r;
  int depth = 3;
  int calls = 0;
  r.AddGaugeCallback("keel_prediction_log_queue_depth", "Records waiting.", [&] {
    ++calls;
    return static_cast<double>(depth);
  });
  EXPECT_EQ(r.Render(),
            "# HELP keel_prediction_log_queue_depth Records waiting.\n"
            "# TYPE keel_prediction_log_queue_depth gauge\n"
            "keel_prediction_log_queue_depth 3\n");
  depth = 17;
  EXPECT_EQ(SampleLines(r.Render()),
            (std::vector<std::string>{"keel_prediction_log_queue_depth 17"}));
  EXPECT_EQ(calls, 2);
}

TEST(Render, GaugeCallbackNonFinite) {
  Registry r;
  r.AddGaugeCallback("nan_gauge", "h", [] { return kNaN; });
  r.AddGaugeCallback("inf_gauge", "h", [] { return kInf; });
  EXPECT_EQ(SampleLines(r.Render()), (std::vector<std::string>{"nan_gauge NaN", "inf_gauge +Inf"}));
}

// Every line is a comment (HELP/TYPE) or a sample matching the text format's
// sample grammar; every family announces HELP then TYPE before its samples.
TEST(Render, EveryLineParses) {
  Registry r;
  auto& c = r.AddCounter("keel_requests_total", "Requests.\nSecond line \\ here.",
                         {"model", "endpoint", "code"});
  c.WithLabels({"churn", "predict", "200"}).Inc();
  c.WithLabels({"we ird\"", "a\nb", "c\\"}).Inc(2.5);
  r.AddCounter("plain_total", "p");
  auto& g = r.AddGauge("ns:gauge", "g", {"x"});
  g.WithLabels({"1"}).Set(kNaN);
  g.WithLabels({"2"}).Set(-kInf);
  g.WithLabels({"3"}).Set(1e300);
  g.WithLabels({"4"}).Set(1e-300);
  auto& h = r.AddHistogram("keel_request_duration_seconds", "Lat.", {"endpoint"}, LatencyBuckets());
  h.WithLabels({"predict"}).Observe(0.0003);
  h.WithLabels({"space here"}).Observe(7);
  r.AddHistogram("empty_seconds", "e", {}, {});
  r.AddGaugeCallback("_cb", "", [] { return 0.1; });

  const std::regex sample_re(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? \S+$)");
  const std::regex help_re(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) [^\n]*$)");
  const std::regex type_re(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$)");
  const std::string text = r.Render();
  ASSERT_FALSE(text.empty());
  ASSERT_EQ(text.back(), '\n');
  std::string last_help, last_type;
  int samples = 0;
  for (const std::string& line : Lines(text)) {
    std::smatch m;
    if (line.rfind("#", 0) == 0) {
      if (std::regex_match(line, m, help_re)) {
        last_help = m[1];
      } else {
        ASSERT_TRUE(std::regex_match(line, m, type_re)) << line;
        EXPECT_EQ(m[1], last_help) << "TYPE without preceding HELP: " << line;
        last_type = m[1];
      }
      continue;
    }
    ++samples;
    ASSERT_TRUE(std::regex_match(line, sample_re)) << "bad sample line: " << line;
    // The sample belongs to the last announced family.
    EXPECT_EQ(line.rfind(last_type, 0), 0u) << line;
    // The value parses as a Prometheus float.
    std::string value = line.substr(line.rfind(' ') + 1);
    if (value != "NaN" && value != "+Inf" && value != "-Inf") {
      size_t used = 0;
      (void)std::stod(value, &used);
      EXPECT_EQ(used, value.size()) << line;
    }
  }
  // 2 + 1 counters, 4 gauges, 2 * (18 + 2) + (1 + 2) histogram lines, 1 callback.
  EXPECT_EQ(samples, 3 + 4 + 40 + 3 + 1);
}

// ---------------------------------------------------------------------------
// Remove and reference stability.

TEST(Family, RemoveStopsRenderingButKeepsReferenceAlive) {
  Registry r;
  auto& fam = r.AddCounter("loads_total", "h", {"model", "version"});
  Counter& v1 = fam.WithLabels({"churn", "1"});
  Counter& v2 = fam.WithLabels({"churn", "2"});
  v1.Inc(5);
  v2.Inc(7);
  fam.Remove({"churn", "1"});
  EXPECT_EQ(SampleLines(r.Render()),
            (std::vector<std::string>{"loads_total{model=\"churn\",version=\"2\"} 7"}));
  // The removed object is still alive and usable (just no longer rendered).
  v1.Inc(1);
  EXPECT_EQ(v1.Value(), 6.0);
  // Removing again, or removing a series that never existed, is a no-op.
  fam.Remove({"churn", "1"});
  fam.Remove({"nope", "0"});
  // The same label values later start a fresh series at the end of the order.
  Counter& again = fam.WithLabels({"churn", "1"});
  EXPECT_NE(&again, &v1);
  EXPECT_EQ(again.Value(), 0.0);
  again.Inc();
  EXPECT_EQ(SampleLines(r.Render()),
            (std::vector<std::string>{"loads_total{model=\"churn\",version=\"2\"} 7",
                                      "loads_total{model=\"churn\",version=\"1\"} 1"}));
  EXPECT_EQ(v1.Value(), 6.0);
}

TEST(Family, RemoveHistogramAndGaugeSeries) {
  Registry r;
  auto& g = r.AddGauge("g", "h", {"a"});
  auto& h = r.AddHistogram("h_seconds", "h", {"a"}, {1});
  Gauge& gx = g.WithLabels({"x"});
  Histogram& hx = h.WithLabels({"x"});
  gx.Set(3);
  hx.Observe(0.5);
  g.Remove({"x"});
  h.Remove({"x"});
  EXPECT_TRUE(SampleLines(r.Render()).empty());
  gx.Inc();
  hx.Observe(2);
  EXPECT_EQ(gx.Value(), 4.0);
  EXPECT_EQ(hx.Count(), 2u);
}

TEST(Family, RemoveTheLabelLessSeries) {
  Registry r;
  auto& fam = r.AddCounter("c_total", "h");
  Counter& c = fam.WithLabels({});
  fam.Remove({});
  EXPECT_EQ(r.Render(), "# HELP c_total h\n# TYPE c_total counter\n");
  c.Inc();
  EXPECT_EQ(c.Value(), 1.0);
}

TEST(Family, ReferencesStayValidAsSeriesGrow) {
  Registry r;
  auto& fam = r.AddGauge("g", "h", {"i"});
  std::vector<Gauge*> refs;
  for (int i = 0; i < 2000; ++i) {
    Gauge& g = fam.WithLabels({std::to_string(i)});
    g.Set(i);
    refs.push_back(&g);
  }
  for (int i = 0; i < 2000; i += 3) fam.Remove({std::to_string(i)});
  for (int i = 0; i < 2000; ++i) {
    EXPECT_EQ(refs[i]->Value(), i);
    if (i % 3 != 0) {
      EXPECT_EQ(&fam.WithLabels({std::to_string(i)}), refs[i]);
    }
  }
  EXPECT_EQ(SampleLines(r.Render()).size(), 2000u - 667u);
}

TEST(Family, LabelValueTuplesDoNotCollide) {
  Registry r;
  auto& fam = r.AddCounter("c_total", "h", {"a", "b"});
  // Values that a naive separator join would confuse.
  Counter& x = fam.WithLabels({"a,b", "c"});
  Counter& y = fam.WithLabels({"a", "b,c"});
  Counter& z = fam.WithLabels({"a\xff", "b"});
  Counter& w = fam.WithLabels({"a",
                               "\xff"
                               "b"});
  Counter& e1 = fam.WithLabels({"", "1:x"});
  Counter& e2 = fam.WithLabels({"1:x", ""});
  std::vector<Counter*> all = {&x, &y, &z, &w, &e1, &e2};
  for (size_t i = 0; i < all.size(); ++i) {
    for (size_t j = i + 1; j < all.size(); ++j) EXPECT_NE(all[i], all[j]) << i << "," << j;
  }
  EXPECT_EQ(&fam.WithLabels(std::vector<std::string>{"a,b", "c"}), &x);
}

// ---------------------------------------------------------------------------
// Validation.

TEST(Validation, DuplicateNamesThrow) {
  Registry r;
  r.AddCounter("dup_total", "h");
  EXPECT_THROW(r.AddCounter("dup_total", "again"), std::invalid_argument);
  EXPECT_THROW(r.AddGauge("dup_total", "h"), std::invalid_argument);
  EXPECT_THROW(r.AddHistogram("dup_total", "h", {}, {1}), std::invalid_argument);
  EXPECT_THROW(r.AddGaugeCallback("dup_total", "h", [] { return 0.0; }), std::invalid_argument);
  r.AddGaugeCallback("cb", "h", [] { return 0.0; });
  EXPECT_THROW(r.AddCounter("cb", "h"), std::invalid_argument);
  // A failed registration leaves nothing behind.
  EXPECT_EQ(Lines(r.Render()).size(), 6u);
}

TEST(Validation, HistogramSeriesNamesCollide) {
  Registry r;
  r.AddHistogram("lat", "h", {}, {1});
  EXPECT_THROW(r.AddCounter("lat_count", "h"), std::invalid_argument);
  EXPECT_THROW(r.AddGauge("lat_sum", "h"), std::invalid_argument);
  EXPECT_THROW(r.AddGauge("lat_bucket", "h"), std::invalid_argument);
  r.AddGauge("other_count", "h");
  EXPECT_THROW(r.AddHistogram("other", "h", {}, {1}), std::invalid_argument);
  EXPECT_NO_THROW(r.AddGauge("other", "h"));  // the histogram was not registered
}

TEST(Validation, DuplicateMessageNamesTheMetric) {
  Registry r;
  r.AddCounter("dup_total", "h");
  try {
    r.AddCounter("dup_total", "h");
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("dup_total"), std::string::npos) << e.what();
  }
}

TEST(Validation, BadMetricNamesThrow) {
  Registry r;
  for (const char* name : {"", "1abc", "a-b", "a b", "a.b", "é", "a{b}", "-x", "a\n"}) {
    EXPECT_THROW(r.AddCounter(name, "h"), std::invalid_argument) << name;
    EXPECT_THROW(r.AddGauge(name, "h"), std::invalid_argument) << name;
    EXPECT_THROW(r.AddHistogram(name, "h", {}, {1}), std::invalid_argument) << name;
    EXPECT_THROW(r.AddGaugeCallback(name, "h", [] { return 0.0; }), std::invalid_argument) << name;
  }
  for (const char* name : {"a", "_a", ":a", "a:b_c9", "ABC_total", "__x"}) {
    EXPECT_NO_THROW(r.AddGauge(name, "h")) << name;
  }
}

TEST(Validation, BadLabelNamesThrow) {
  Registry r;
  for (const char* label : {"", "1a", "a-b", "a:b", "__reserved", "__", "a b"}) {
    EXPECT_THROW(r.AddCounter("c_total", "h", {label}), std::invalid_argument) << label;
    EXPECT_THROW(r.AddGauge("g", "h", {"ok", label}), std::invalid_argument) << label;
    EXPECT_THROW(r.AddHistogram("h", "h", {label}, {1}), std::invalid_argument) << label;
  }
  EXPECT_THROW(r.AddCounter("c_total", "h", {"a", "a"}), std::invalid_argument);
  EXPECT_THROW(r.AddHistogram("h", "h", {"le"}, {1}), std::invalid_argument);
  EXPECT_NO_THROW(r.AddGauge("le_gauge", "h", {"le"}));  // "le" is reserved only in histograms
  EXPECT_NO_THROW(r.AddCounter("c_total", "h", {"_a", "a_1", "A"}));
}

TEST(Validation, BadBoundsThrowAndRegisterNothing) {
  Registry r;
  EXPECT_THROW(r.AddHistogram("h", "h", {}, {1, 0.5}), std::invalid_argument);
  EXPECT_THROW(r.AddHistogram("h", "h", {}, {1, kInf}), std::invalid_argument);
  EXPECT_THROW(r.AddHistogram("h", "h", {}, {kNaN}), std::invalid_argument);
  EXPECT_EQ(r.Render(), "");
  EXPECT_NO_THROW(r.AddHistogram("h", "h", {}, {1, 2}));
}

TEST(Validation, EmptyCallbackThrows) {
  Registry r;
  EXPECT_THROW(r.AddGaugeCallback("g", "h", nullptr), std::invalid_argument);
  EXPECT_EQ(r.Render(), "");
}

TEST(Validation, WrongLabelCountThrows) {
  Registry r;
  auto& c = r.AddCounter("c_total", "h", {"a", "b"});
  EXPECT_THROW(c.WithLabels({"x"}), std::invalid_argument);
  EXPECT_THROW(c.WithLabels({"x", "y", "z"}), std::invalid_argument);
  EXPECT_THROW(c.WithLabels({}), std::invalid_argument);
  EXPECT_THROW(c.WithLabels(std::vector<std::string>{"x"}), std::invalid_argument);
  EXPECT_THROW(c.Remove({"x"}), std::invalid_argument);
  auto& none = r.AddGauge("g", "h");
  EXPECT_THROW(none.WithLabels({"x"}), std::invalid_argument);
  auto& h = r.AddHistogram("h", "h", {"a"}, {1});
  EXPECT_THROW(h.WithLabels({"x", "y"}), std::invalid_argument);
  // Nothing was created by the failed calls.
  EXPECT_EQ(SampleLines(r.Render()), (std::vector<std::string>{"g 0"}));
}

// ---------------------------------------------------------------------------
// Concurrency.

TEST(Concurrency, CounterIncrementsAreExact) {
  Registry r;
  auto& fam = r.AddCounter("hits_total", "h", {"k"});
  Counter& shared = fam.WithLabels({"shared"});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) shared.Inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(shared.Value(), static_cast<double>(kThreads) * kPerThread);
  EXPECT_EQ(SampleLines(r.Render()), (std::vector<std::string>{"hits_total{k=\"shared\"} 400000"}));
}

TEST(Concurrency, GaugeAndHistogramUpdatesAreExact) {
  Registry r;
  Gauge& g = r.AddGauge("g", "h").WithLabels({});
  Histogram& h = r.AddHistogram("h_seconds", "h", {}, {0.5}).WithLabels({});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        g.Inc(2);
        g.Dec();
        h.Observe(t % 2 == 0 ? 0.25 : 1.0);  // exactly representable
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(g.Value(), kThreads * kPerThread);
  EXPECT_EQ(h.Count(), static_cast<uint64_t>(kThreads) * kPerThread);
  EXPECT_EQ(h.CumulativeCounts(), (std::vector<uint64_t>{200000, 400000}));
  EXPECT_EQ(h.Sum(), 2 * kPerThread * 0.25 + 2 * kPerThread * 1.0);
}

// WithLabels, Remove and Render race with updates: every thread ends up with
// the same series per label value, and rendering never sees a torn family.
TEST(Concurrency, WithLabelsRemoveAndRenderFromManyThreads) {
  Registry r;
  auto& fam = r.AddCounter("c_total", "h", {"k"});
  auto& hist = r.AddHistogram("h_seconds", "h", {"k"}, LatencyBuckets());
  constexpr int kThreads = 4;
  constexpr int kKeys = 50;
  constexpr int kRounds = 200;
  std::atomic<bool> stop{false};
  std::thread renderer([&] {
    while (!stop.load()) {
      for (const std::string& l : SampleLines(r.Render())) {
        ASSERT_TRUE(l.rfind("c_total{k=\"", 0) == 0 || l.rfind("h_seconds_", 0) == 0) << l;
      }
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        for (int k = 0; k < kKeys; ++k) {
          fam.WithLabels({std::to_string(k)}).Inc();
          hist.WithLabels({std::to_string(k)}).Observe(0.001 * k);
        }
        if (t == 0 && round % 10 == 0) fam.Remove({"temp"});
        if (t == 1) fam.WithLabels({"temp"}).Inc();
      }
    });
  }
  for (auto& t : threads) t.join();
  stop = true;
  renderer.join();
  for (int k = 0; k < kKeys; ++k) {
    EXPECT_EQ(fam.WithLabels({std::to_string(k)}).Value(), kThreads * kRounds) << k;
    EXPECT_EQ(hist.WithLabels({std::to_string(k)}).Count(),
              static_cast<uint64_t>(kThreads) * kRounds)
        << k;
  }
}

}  // namespace
}  // namespace keel::metrics
