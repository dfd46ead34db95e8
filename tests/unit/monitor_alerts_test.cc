// Alert rules, evaluation, storage with folding, the bus and webhook delivery
// (keel/monitor/alerts.h). The server's monitor loop end to end (with a real
// webhook receiver) is tests/e2e/test_alerts.py.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "keel/core/sha256.h"
#include "keel/monitor/alerts.h"
#include "tests/unit/test_util.h"

namespace keel::monitor {
namespace {

using keel::testing::OpenTestDb;
using keel::testing::TempDir;

constexpr char kRules[] = R"(rules:
  - name: drift
    metric: drift.dataset
    op: ">="
    threshold: 1
    window: 30m
    min_samples: 10
  - name: auc
    model: churn
    metric: performance.auc.drop
    threshold: 0.05
    window: 1d
    min_samples: 5
    severity: critical
    cooldown: 2h
)";

TEST(AlertRulesTest, ParseDefaultsAndRoundTrip) {
  auto rules = ParseAlertRules(kRules, "rules.yaml");
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  ASSERT_EQ(rules->size(), 2u);
  const AlertRule& a = (*rules)[0];
  EXPECT_EQ(a.model, "*");
  EXPECT_EQ(a.op, ">=");
  EXPECT_EQ(a.window_ms, 30 * 60'000);
  EXPECT_EQ(a.severity, "warning");
  EXPECT_EQ(a.cooldown_ms, 6 * 3'600'000);
  const AlertRule& b = (*rules)[1];
  EXPECT_EQ(b.op, ">");
  EXPECT_EQ(b.cooldown_ms, 2 * 3'600'000);
  EXPECT_TRUE(b.AppliesTo("churn"));
  EXPECT_FALSE(b.AppliesTo("fraud"));

  auto again = ParseAlertRules(AlertRulesToYaml(*rules), "again");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(AlertRulesToYaml(*again), AlertRulesToYaml(*rules));
  for (const char* task : {"binary", "multiclass", "regression"}) {
    const std::vector<AlertRule> d = DefaultAlertRules("m", task);
    auto parsed = ParseAlertRules(AlertRulesToYaml(d), "defaults");
    ASSERT_TRUE(parsed.ok()) << task << ": " << parsed.status().ToString();
    EXPECT_EQ(parsed->size(), 4u);
  }
}

TEST(AlertRulesTest, BadFilesNameTheRuleAndField) {
  struct Case {
    const char* yaml;
    const char* needle;
  };
  for (const Case& c : {
           Case{"rules: 3", "top-level 'rules:' list"},
           Case{"rules:\n  - name: a\n    metric: drift.dataset\n    threshold: 1\n    colour: "
                "red\n",
                "rules.yaml:2: rule 1: unknown key 'colour'"},
           Case{"rules:\n  - name: a\n    metric: drift.dataset\n", "required"},
           Case{"rules:\n  - name: a\n    metric: drift.dataset\n    threshold: 1\n    op: '=='\n",
                "op '=='"},
           Case{"rules:\n  - name: a\n    metric: drift.dataset\n    threshold: 1\n    window: "
                "soon\n",
                "window: 'soon' is not a duration"},
           Case{"rules:\n  - name: a\n    metric: vibes\n    threshold: 1\n",
                "unknown metric 'vibes'"},
           Case{"rules:\n  - name: a\n    metric: drift.share\n    threshold: x\n", "rule 1"},
           Case{"rules:\n  - {name: a, metric: drift.share, threshold: 1}\n  - {name: a, metric: "
                "drift.share, threshold: 2}\n",
                "repeated rule name"},
           Case{"rules: [\n", "rules.yaml:"},
       }) {
    auto r = ParseAlertRules(c.yaml, "rules.yaml");
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos) << r.status().message();
  }
}

TEST(AlertRulesTest, Durations) {
  EXPECT_EQ(*ParseDuration("500ms"), 500);
  EXPECT_EQ(*ParseDuration("90s"), 90'000);
  EXPECT_EQ(*ParseDuration("1.5h"), 5'400'000);
  EXPECT_EQ(*ParseDuration("2w"), 2 * 604'800'000LL);
  EXPECT_FALSE(ParseDuration("0s").ok());
  EXPECT_FALSE(ParseDuration("h").ok());
  EXPECT_FALSE(ParseDuration("5 m").ok());
  EXPECT_FALSE(ParseDuration("0.1ms").ok());                  // rounds to nothing
  EXPECT_FALSE(ParseDuration("99999999999999999999w").ok());  // beyond 10 years
  EXPECT_FALSE(ParseDuration("1e3s").ok());
  EXPECT_EQ(FormatDuration(90'000), "90s");
  EXPECT_EQ(FormatDuration(86'400'000), "1d");
  EXPECT_EQ(FormatDuration(1500), "1500ms");
}

// A window of 300 predictions, 120 labelled, with the dataset and the
// prediction drifting and AUC 0.08 below validation.
WindowReport Window() {
  WindowReport w;
  w.query.model = "churn";
  w.query.version = "3";
  w.rows = 300;
  w.unreadable = 3;
  w.drift.dataset = {.columns = 4, .drifted = 2, .share = 0.5, .drift_share = 0.5, .drift = true};
  ColumnReport x;
  x.name = "x";
  x.drift.drift = true;
  ColumnReport p;
  p.name = "p";
  p.role = ColumnRole::kPrediction;
  p.drift.drift = true;
  w.drift.columns = {x, p};
  w.drift.prediction_index = 1;
  w.performance.labelled = 120;
  w.performance.live = {{"auc", 0.80}, {"log_loss", 0.40}};
  w.performance.reference = {{"auc", 0.88}, {"log_loss", 0.30}};
  w.operational.predictions = 300;
  w.operational.latency_p99_us = 2500;
  w.operational.rate_per_s = std::nan("");
  return w;
}

TEST(AlertRulesTest, WindowMetrics) {
  const WindowReport w = Window();
  uint64_t n = 0;
  EXPECT_EQ(*WindowMetric(w, "drift.dataset", &n), 1.0);
  EXPECT_EQ(n, 300u);
  EXPECT_EQ(*WindowMetric(w, "drift.share", &n), 0.5);
  EXPECT_EQ(*WindowMetric(w, "drift.drifted_columns", &n), 2.0);
  EXPECT_EQ(*WindowMetric(w, "drift.prediction", &n), 1.0);
  EXPECT_EQ(*WindowMetric(w, "drift.column.x", &n), 1.0);
  EXPECT_EQ(WindowMetric(w, "drift.column.nope", &n).status().code(), StatusCode::kNotFound);
  EXPECT_NEAR(*WindowMetric(w, "performance.auc", &n), 0.80, 1e-15);
  EXPECT_EQ(n, 120u);
  EXPECT_NEAR(*WindowMetric(w, "performance.auc.drop", &n), 0.08, 1e-12);
  EXPECT_NEAR(*WindowMetric(w, "performance.log_loss.drop", &n), 0.10, 1e-12);  // a rise is worse
  EXPECT_EQ(WindowMetric(w, "performance.rmse", &n).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*WindowMetric(w, "operational.latency_p99_us", &n), 2500);
  EXPECT_EQ(WindowMetric(w, "operational.rate_per_s", &n).status().code(), StatusCode::kNotFound);
  EXPECT_NEAR(*WindowMetric(w, "operational.unreadable_share", &n), 0.01, 1e-15);
}

TEST(AlertRulesTest, EvaluateHonoursModelOpAndMinSamples) {
  auto rules = ParseAlertRules(kRules, "rules.yaml");
  ASSERT_TRUE(rules.ok());
  WindowReport w = Window();
  std::vector<Alert> fired = EvaluateRules(w, *rules, 1'000);
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[0].rule, "drift");
  EXPECT_EQ(fired[1].rule, "auc");
  EXPECT_EQ(fired[1].severity, "critical");
  EXPECT_NEAR(fired[1].value, 0.08, 1e-12);
  EXPECT_EQ(fired[1].version, "3");
  EXPECT_NE(fired[1].summary.find("critical: churn version 3: auc: performance.auc.drop = 0.08"),
            std::string::npos)
      << fired[1].summary;

  w.query.model = "fraud";  // the auc rule is for churn only
  EXPECT_EQ(EvaluateRules(w, *rules, 1'000).size(), 1u);
  w = Window();
  w.performance.labelled = 4;  // below the auc rule's min_samples
  EXPECT_EQ(EvaluateRules(w, *rules, 1'000).size(), 1u);
  w = Window();
  w.performance.live = {{"auc", 0.86}};  // only 0.02 worse
  EXPECT_EQ(EvaluateRules(w, *rules, 1'000).size(), 1u);
}

TEST(AlertStoreTest, StoredWindowsFilterByLengthAndPageBackWithoutGapsOrRepeats) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ASSERT_NE(db, nullptr);
  // Three passes; each stores a 5-minute and a 1-hour window at the same time.
  ASSERT_TRUE(db->Write([](store::Connection& c) -> Status {
                  for (int64_t pass = 1; pass <= 3; ++pass) {
                    for (int64_t len : {300'000, 3'600'000}) {
                      const int64_t t = pass * 1'000'000;
                      KEEL_RETURN_IF_ERROR(
                          c.Exec("INSERT INTO monitor_windows(model, version, from_time, to_time, "
                                 "computed_time, report) VALUES ('churn', '1', ?, ?, ?, '{}')",
                                 {store::Value(t - len), store::Value(t), store::Value(t)}));
                    }
                  }
                  return OkStatus();
                }).ok());
  WindowHistoryQuery q;
  q.model = "churn";
  q.limit = 100;
  auto all = ListStoredWindows(*db, q);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 6u);
  std::vector<int64_t> paged;
  q.limit = 4;  // a page ends between two windows of one pass
  for (int page = 0; page < 4; ++page) {
    auto got = ListStoredWindows(*db, q);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    for (const StoredWindow& w : *got) paged.push_back(w.id);
    if (got->size() < q.limit) break;
    q.before_id = got->back().id;
  }
  std::vector<int64_t> expected;
  for (const StoredWindow& w : *all) expected.push_back(w.id);
  EXPECT_EQ(paged, expected);
  WindowHistoryQuery hourly;
  hourly.model = "churn";
  hourly.window_ms = 3'600'000;
  auto h = ListStoredWindows(*db, hourly);
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->size(), 3u);
  for (const StoredWindow& w : *h) EXPECT_EQ(w.to_ms - w.from_ms, 3'600'000);
  hourly.until_ms = 3'000'000;  // computed before the third pass
  h = ListStoredWindows(*db, hourly);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->size(), 2u);
  WindowHistoryQuery one;
  one.model = "churn";
  one.id = expected[2];
  auto o = ListStoredWindows(*db, one);
  ASSERT_TRUE(o.ok());
  ASSERT_EQ(o->size(), 1u);
  EXPECT_EQ((*o)[0].id, expected[2]);

  // Every (version, length) with stored windows, however many there are.
  ASSERT_TRUE(db->Write([](store::Connection& c) {
                  return c.Exec(
                      "INSERT INTO monitor_windows(model, version, from_time, to_time, "
                      "computed_time, report) VALUES ('churn', '2', 0, 60000, 1, '{}')",
                      {});
                }).ok());
  auto kinds = ListWindowKinds(*db, "churn");
  ASSERT_TRUE(kinds.ok()) << kinds.status().ToString();
  ASSERT_EQ(kinds->size(), 3u);
  EXPECT_EQ((*kinds)[0].version, "1");
  EXPECT_EQ((*kinds)[0].window_ms, 300'000);
  EXPECT_EQ((*kinds)[0].windows, 3);
  EXPECT_EQ((*kinds)[0].newest_to_ms, 3'000'000);
  EXPECT_EQ((*kinds)[1].window_ms, 3'600'000);
  EXPECT_EQ((*kinds)[2].version, "2");
  EXPECT_EQ((*kinds)[2].window_ms, 60'000);
  EXPECT_EQ((*kinds)[2].windows, 1);
  auto none = ListWindowKinds(*db, "fraud");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(ListWindowKinds(*db, "").status().code(), StatusCode::kInvalidArgument);
}

TEST(AlertStoreTest, FoldsWithinCooldownOfTheFirstFiringAndListsNewestFirst) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  auto rules = ParseAlertRules(kRules, "rules.yaml");
  ASSERT_TRUE(rules.ok());
  const int64_t hour = 3'600'000;
  auto fire = [&](int64_t now) {
    std::vector<Alert> fired = EvaluateRules(Window(), *rules, now);
    return RecordAlert(*db, fired[1], (*rules)[1].cooldown_ms);  // the auc rule, 2h cooldown
  };
  auto first = fire(10 * hour);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->is_new);
  EXPECT_GT(first->alert.id, 0);
  auto second = fire(11 * hour);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->is_new);
  EXPECT_EQ(second->alert.id, first->alert.id);
  EXPECT_EQ(second->alert.count, 2u);
  EXPECT_EQ(second->alert.first_ms, 10 * hour);
  // 2.5 h after the open alert's first firing: past the cooldown, a new alert
  // (a condition that persists is notified once per cooldown).
  auto third = fire(12 * hour + 30 * 60'000);
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE(third->is_new);
  EXPECT_NE(third->alert.id, first->alert.id);
  auto fourth = fire(13 * hour);  // folded into the third
  ASSERT_TRUE(fourth.ok());
  EXPECT_FALSE(fourth->is_new);
  EXPECT_EQ(fourth->alert.id, third->alert.id);
  EXPECT_EQ(fourth->alert.count, 2u);

  auto listed = ListAlerts(*db, {});
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].id, third->alert.id);
  EXPECT_EQ((*listed)[0].last_ms, 13 * hour);
  EXPECT_EQ((*listed)[1].id, first->alert.id);
  EXPECT_EQ((*listed)[1].count, 2u);
  EXPECT_EQ((*listed)[1].last_ms, 11 * hour);
  EXPECT_EQ((*listed)[1].rule, "auc");
  auto recent = ListAlerts(*db, {.model = "", .since_ms = 12 * hour});
  ASSERT_TRUE(recent.ok());
  EXPECT_EQ(recent->size(), 1u);
  auto other = ListAlerts(*db, {.model = "fraud"});
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->empty());
}

TEST(AlertBusTest, SubscribersInOrderAndUnsubscribe) {
  AlertBus bus;
  std::vector<std::string> seen;
  const int a = bus.Subscribe([&](const Alert& x) { seen.push_back("a:" + x.rule); });
  bus.Subscribe([&](const Alert& x) { seen.push_back("b:" + x.rule); });
  Alert alert;
  alert.rule = "r";
  bus.Publish(alert);
  bus.Unsubscribe(a);
  bus.Publish(alert);
  EXPECT_EQ(seen, (std::vector<std::string>{"a:r", "b:r", "b:r"}));
}

TEST(WebhookTest, HmacMatchesRfc4231) {
  // RFC 4231, test case 2.
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(WebhookTest, SignsRetriesWithBackoffAndGivesUp) {
  std::mutex mu;
  std::vector<std::string> bodies;
  std::vector<std::string> signatures;
  std::vector<std::chrono::steady_clock::time_point> times;
  std::atomic<int> calls{0};
  // Transport error, then 503, then 200; later alerts get 400 (not retried).
  WebhookNotifier::Options o;
  o.url = "http://hooks.example/keel";
  o.secret = "s3cret";
  o.initial_backoff = std::chrono::milliseconds(20);
  o.max_attempts = 4;
  WebhookNotifier hook(
      o,
      [&](const std::string& url, const std::string& body,
          const std::vector<std::pair<std::string, std::string>>& headers) -> Result<int> {
        EXPECT_EQ(url, "http://hooks.example/keel");
        std::lock_guard<std::mutex> lock(mu);
        bodies.push_back(body);
        for (const auto& [k, v] : headers) {
          if (k == "X-Keel-Signature") signatures.push_back(v);
        }
        times.push_back(std::chrono::steady_clock::now());
        const int n = calls++;
        if (n == 0) return Unavailable("connection refused");
        if (n == 1) return 503;
        if (n == 2) return 200;
        return 400;
      });
  Alert a;
  a.id = 7;
  a.rule = "auc";
  hook.Enqueue(a);
  ASSERT_TRUE(hook.Drain(std::chrono::seconds(10)));
  EXPECT_EQ(hook.delivered(), 1u);
  EXPECT_EQ(hook.attempts(), 3u);
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(bodies.size(), 3u);
    EXPECT_EQ(bodies[0], a.ToJson());
    EXPECT_EQ(bodies[2], bodies[0]);
    EXPECT_EQ(signatures[0], "sha256=" + HmacSha256Hex("s3cret", bodies[0]));
    // Backoff doubles: >= 20 ms, then >= 40 ms.
    EXPECT_GE(times[1] - times[0], std::chrono::milliseconds(20));
    EXPECT_GE(times[2] - times[1], std::chrono::milliseconds(40));
  }
  hook.Enqueue(a);
  ASSERT_TRUE(hook.Drain(std::chrono::seconds(10)));
  EXPECT_EQ(hook.failed(), 1u);
  EXPECT_EQ(hook.attempts(), 4u);  // a 400 is not retried
}

TEST(WebhookTest, EnqueueNeverBlocksAndCountsDrops) {
  std::atomic<bool> release{false};
  WebhookNotifier::Options o;
  o.url = "http://x/";
  o.queue_capacity = 2;
  WebhookNotifier hook(o,
                       [&](const std::string&, const std::string&,
                           const std::vector<std::pair<std::string, std::string>>&) -> Result<int> {
                         while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
                         return 204;
                       });
  Alert a;
  for (int i = 0; i < 10; ++i) hook.Enqueue(a);  // one sending, two queued, the rest dropped
  EXPECT_GE(hook.dropped(), 7u);
  EXPECT_LE(hook.dropped(), 8u);
  release = true;
  ASSERT_TRUE(hook.Drain(std::chrono::seconds(10)));
  EXPECT_EQ(hook.delivered() + hook.dropped(), 10u);
}

}  // namespace
}  // namespace keel::monitor
