// Alert rules, evaluation, storage with folding, subscribers and webhook
// delivery (keel/monitor/alerts.h).
#include "keel/monitor/alerts.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "keel/core/json.h"
#include "keel/core/sha256.h"
#include "keel/train/metrics.h"
#include "src/monitor/format.h"

namespace keel::monitor {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool Crosses(double value, std::string_view op, double threshold) {
  if (op == ">") return value > threshold;
  if (op == ">=") return value >= threshold;
  if (op == "<") return value < threshold;
  if (op == "<=") return value <= threshold;
  return false;
}

bool KnownMetric(std::string_view m) {
  for (std::string_view prefix : {"drift.column.", "performance."}) {
    if (m.starts_with(prefix) && m.size() > prefix.size()) return true;
  }
  static const std::set<std::string_view> kFixed = {"drift.dataset",
                                                    "drift.share",
                                                    "drift.drifted_columns",
                                                    "drift.prediction",
                                                    "operational.latency_p50_us",
                                                    "operational.latency_p95_us",
                                                    "operational.latency_p99_us",
                                                    "operational.latency_max_us",
                                                    "operational.rate_per_s",
                                                    "operational.predictions",
                                                    "operational.unreadable_share"};
  return kFixed.count(m) > 0;
}

}  // namespace

Result<int64_t> ParseDuration(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[digits])) != 0 || text[digits] == '.')) {
    ++digits;
  }
  const std::string number(text.substr(0, digits));
  const std::string_view unit = text.substr(digits);
  char* end = nullptr;
  const double n = number.empty() ? 0 : std::strtod(number.c_str(), &end);
  const double scale = unit == "ms"  ? 1
                       : unit == "s" ? 1e3
                       : unit == "m" ? 6e4
                       : unit == "h" ? 3.6e6
                       : unit == "d" ? 8.64e7
                       : unit == "w" ? 6.048e8
                                     : 0;
  if (number.empty() || end != number.c_str() + number.size() || scale == 0 || !(n > 0)) {
    return InvalidArgument("'" + std::string(text) +
                           "' is not a duration (e.g. 500ms, 90s, 30m, 1h, 7d, 2w)");
  }
  const double ms = n * scale;
  constexpr double kTenYears = 10 * 365.25 * 86'400'000.0;
  if (!(ms >= 1) || !(ms <= kTenYears)) {
    return InvalidArgument("'" + std::string(text) + "' is outside 1ms .. 10 years");
  }
  return static_cast<int64_t>(std::llround(ms));
}

std::string FormatDuration(int64_t ms) {
  struct Unit {
    int64_t ms;
    const char* suffix;
  };
  for (Unit u : {Unit{604'800'000, "w"}, Unit{86'400'000, "d"}, Unit{3'600'000, "h"},
                 Unit{60'000, "m"}, Unit{1000, "s"}}) {
    if (ms % u.ms == 0) return std::to_string(ms / u.ms) + u.suffix;
  }
  return std::to_string(ms) + "ms";
}

Result<std::vector<AlertRule>> ParseAlertRules(std::string_view yaml, std::string_view source) {
  const std::string where(source);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(where + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!root.IsMap() || !root["rules"] || !root["rules"].IsSequence()) {
    return InvalidArgument(where + ": expected a top-level 'rules:' list");
  }
  static const std::set<std::string> kKeys = {"name",        "model",     "metric",
                                              "op",          "threshold", "window",
                                              "min_samples", "severity",  "cooldown"};
  std::vector<AlertRule> rules;
  std::set<std::string> names;
  size_t index = 0;
  for (const YAML::Node& node : root["rules"]) {
    ++index;
    const std::string at =
        where + ":" + std::to_string(node.Mark().line + 1) + ": rule " + std::to_string(index);
    if (!node.IsMap()) return InvalidArgument(at + ": expected a mapping");
    AlertRule r;
    try {
      for (const auto& kv : node) {
        const std::string key = kv.first.as<std::string>();
        if (kKeys.count(key) == 0) return InvalidArgument(at + ": unknown key '" + key + "'");
      }
      if (!node["name"] || !node["metric"] || !node["threshold"]) {
        return InvalidArgument(at + ": name, metric and threshold are required");
      }
      r.name = node["name"].as<std::string>();
      r.metric = node["metric"].as<std::string>();
      r.threshold = node["threshold"].as<double>();
      if (node["model"]) r.model = node["model"].as<std::string>();
      if (node["op"]) r.op = node["op"].as<std::string>();
      if (node["min_samples"]) r.min_samples = node["min_samples"].as<uint64_t>();
      if (node["severity"]) r.severity = node["severity"].as<std::string>();
      for (const auto& [key, field] :
           {std::pair{"window", &r.window_ms}, std::pair{"cooldown", &r.cooldown_ms}}) {
        if (!node[key]) continue;
        Result<int64_t> d = ParseDuration(node[key].as<std::string>());
        if (!d.ok())
          return InvalidArgument(at + " (" + r.name + "): " + key + ": " + d.status().message());
        *field = *d;
      }
    } catch (const YAML::Exception& e) {
      return InvalidArgument(at + ": " + e.msg);
    }
    const std::string named = at + " (" + r.name + ")";
    if (r.op != ">" && r.op != ">=" && r.op != "<" && r.op != "<=") {
      return InvalidArgument(named + ": op '" + r.op + "' is not one of >, >=, <, <=");
    }
    if (r.severity != "info" && r.severity != "warning" && r.severity != "critical") {
      return InvalidArgument(named + ": severity '" + r.severity +
                             "' is not one of info, warning, critical");
    }
    if (!KnownMetric(r.metric)) {
      return InvalidArgument(named + ": unknown metric '" + r.metric +
                             "' (drift.*, performance.*, operational.*: see docs/monitoring.md)");
    }
    if (!std::isfinite(r.threshold)) return InvalidArgument(named + ": threshold is not finite");
    if (!names.insert(r.name).second) return InvalidArgument(named + ": repeated rule name");
    rules.push_back(std::move(r));
  }
  return rules;
}

std::string AlertRulesToYaml(std::span<const AlertRule> rules) {
  YAML::Emitter y;
  y << YAML::BeginMap << YAML::Key << "rules" << YAML::Value << YAML::BeginSeq;
  for (const AlertRule& r : rules) {
    y << YAML::BeginMap;
    y << YAML::Key << "name" << YAML::Value << r.name;
    y << YAML::Key << "model" << YAML::Value << r.model;
    y << YAML::Key << "metric" << YAML::Value << r.metric;
    y << YAML::Key << "op" << YAML::Value << YAML::DoubleQuoted << r.op;
    y << YAML::Key << "threshold" << YAML::Value << FormatDouble(r.threshold);
    y << YAML::Key << "window" << YAML::Value << FormatDuration(r.window_ms);
    y << YAML::Key << "min_samples" << YAML::Value << r.min_samples;
    y << YAML::Key << "severity" << YAML::Value << r.severity;
    y << YAML::Key << "cooldown" << YAML::Value << FormatDuration(r.cooldown_ms);
    y << YAML::EndMap;
  }
  y << YAML::EndSeq << YAML::EndMap;
  return std::string(y.c_str()) + "\n";
}

std::vector<AlertRule> DefaultAlertRules(std::string_view model, std::string_view task) {
  const std::string m(model);
  std::vector<AlertRule> rules;
  rules.push_back({.name = "data_drift",
                   .model = m,
                   .metric = "drift.dataset",
                   .op = ">=",
                   .threshold = 1,
                   .window_ms = 3'600'000,
                   .min_samples = 100,
                   .severity = "warning",
                   .cooldown_ms = 6 * 3'600'000});
  rules.push_back({.name = "prediction_drift",
                   .model = m,
                   .metric = "drift.prediction",
                   .op = ">=",
                   .threshold = 1,
                   .window_ms = 3'600'000,
                   .min_samples = 100,
                   .severity = "warning",
                   .cooldown_ms = 6 * 3'600'000});
  const std::string decay = task == "binary"       ? "performance.auc.drop"
                            : task == "multiclass" ? "performance.accuracy.drop"
                                                   : "performance.rmse.drop";
  // AUC and accuracy: 0.05 worse than at validation. RMSE: a rise of 0.05 in
  // the target's units is scale-dependent; users should tune it.
  rules.push_back({.name = "performance_decay",
                   .model = m,
                   .metric = decay,
                   .op = ">",
                   .threshold = 0.05,
                   .window_ms = 86'400'000,
                   .min_samples = 200,
                   .severity = "critical",
                   .cooldown_ms = 86'400'000});
  rules.push_back({.name = "latency_p99",
                   .model = m,
                   .metric = "operational.latency_p99_us",
                   .op = ">",
                   .threshold = 100'000,
                   .window_ms = 300'000,
                   .min_samples = 50,
                   .severity = "warning",
                   .cooldown_ms = 3'600'000});
  return rules;
}

Result<double> WindowMetric(const WindowReport& w, std::string_view metric, uint64_t* samples) {
  *samples = w.rows;
  const DriftReport& d = w.drift;
  auto missing = [&]() -> Status {
    return NotFound("the window has no value for '" + std::string(metric) + "'");
  };
  if (metric == "drift.dataset") return d.dataset.drift ? 1.0 : 0.0;
  if (metric == "drift.share") return d.dataset.share;
  if (metric == "drift.drifted_columns") return static_cast<double>(d.dataset.drifted);
  if (metric == "drift.prediction") {
    if (d.prediction_index < 0) return missing();
    const ColumnReport& p = d.columns[static_cast<size_t>(d.prediction_index)];
    if (!p.error.empty()) return missing();
    return p.drift.drift ? 1.0 : 0.0;
  }
  if (metric.starts_with("drift.column.")) {
    const std::string_view name = metric.substr(std::string_view("drift.column.").size());
    for (const ColumnReport& c : d.columns) {
      if (c.name == name && c.error.empty()) return c.drift.drift ? 1.0 : 0.0;
    }
    return missing();
  }
  if (metric.starts_with("performance.")) {
    *samples = w.performance.labelled - w.performance.unmatched_labels;
    std::string name(metric.substr(std::string_view("performance.").size()));
    const bool drop = name.ends_with(".drop");
    if (drop) name.resize(name.size() - 5);
    const double live = w.performance.Live(name);
    if (std::isnan(live)) return missing();
    if (!drop) return live;
    const double change = w.performance.Change(name);
    if (std::isnan(change)) return missing();
    return train::HigherIsBetter(name) ? -change : change;
  }
  const OperationalSummary& o = w.operational;
  if (metric == "operational.latency_p50_us") return o.latency_p50_us;
  if (metric == "operational.latency_p95_us") return o.latency_p95_us;
  if (metric == "operational.latency_p99_us") return o.latency_p99_us;
  if (metric == "operational.latency_max_us") return o.latency_max_us;
  if (metric == "operational.rate_per_s") {
    if (std::isnan(o.rate_per_s)) return missing();
    return o.rate_per_s;
  }
  if (metric == "operational.predictions") return static_cast<double>(o.predictions);
  if (metric == "operational.unreadable_share") {
    return w.rows == 0 ? 0.0 : static_cast<double>(w.unreadable) / static_cast<double>(w.rows);
  }
  return missing();
}

std::vector<Alert> EvaluateRules(const WindowReport& window, std::span<const AlertRule> rules,
                                 int64_t now_ms) {
  std::vector<Alert> out;
  for (const AlertRule& r : rules) {
    if (!r.AppliesTo(window.query.model)) continue;
    uint64_t samples = 0;
    Result<double> value = WindowMetric(window, r.metric, &samples);
    if (!value.ok() || std::isnan(*value) || samples < r.min_samples) continue;
    if (!Crosses(*value, r.op, r.threshold)) continue;
    Alert a;
    a.model = window.query.model;
    a.version = window.query.version;
    a.rule = r.name;
    a.severity = r.severity;
    a.metric = r.metric;
    a.op = r.op;
    a.value = *value;
    a.threshold = r.threshold;
    a.window_ms = r.window_ms;
    a.first_ms = now_ms;
    a.last_ms = now_ms;
    a.summary = r.severity + ": " + a.model + (a.version.empty() ? "" : " version " + a.version) +
                ": " + r.name + ": " + r.metric + " = " + internal::Num(*value) + " " + r.op + " " +
                internal::Num(r.threshold) + " over " + FormatDuration(r.window_ms) + " (" +
                std::to_string(samples) + " samples)";
    out.push_back(std::move(a));
  }
  return out;
}

std::string Alert::ToJson() const {
  JsonWriter w(512);
  const auto number = [&w](double v) { internal::JsonNumber(w, v); };
  w.BeginObject();
  w.Key("id");
  w.Int(id);
  w.Key("model");
  w.String(model);
  w.Key("version");
  w.String(version);
  w.Key("rule");
  w.String(rule);
  w.Key("severity");
  w.String(severity);
  w.Key("metric");
  w.String(metric);
  w.Key("op");
  w.String(op);
  w.Key("value");
  number(value);
  w.Key("threshold");
  number(threshold);
  w.Key("window_ms");
  w.Int(window_ms);
  w.Key("first_ms");
  w.Int(first_ms);
  w.Key("last_ms");
  w.Int(last_ms);
  w.Key("count");
  w.Int(static_cast<int64_t>(count));
  w.Key("summary");
  w.String(summary);
  w.EndObject();
  return std::move(w).Take();
}

Result<RecordedAlert> RecordAlert(store::Database& db, const Alert& alert, int64_t cooldown_ms) {
  RecordedAlert out;
  out.alert = alert;
  KEEL_RETURN_IF_ERROR(db.Write([&](store::Connection& c) -> Status {
    int64_t id = 0;
    int64_t first = 0;
    int64_t count = 0;
    KEEL_RETURN_IF_ERROR(c.Query(
        "SELECT alert_id, first_time, fire_count FROM alerts WHERE model = ? AND version = ? AND "
        "rule = ? AND first_time >= ? ORDER BY last_time DESC LIMIT 1",
        {store::Value(alert.model), store::Value(alert.version), store::Value(alert.rule),
         store::Value(alert.last_ms - cooldown_ms)},
        [&](const store::RowView& row) {
          id = row.Int(0);
          first = row.Int(1);
          count = row.Int(2);
          return OkStatus();
        }));
    if (id != 0) {
      out.is_new = false;
      out.alert.id = id;
      out.alert.first_ms = first;
      out.alert.count = static_cast<uint64_t>(count) + 1;
      return c.Exec(
          "UPDATE alerts SET last_time = ?, fire_count = ?, value = ?, details = ? WHERE "
          "alert_id = ?",
          {store::Value(alert.last_ms), store::Value(count + 1), store::Value(alert.value),
           store::Value(out.alert.ToJson()), store::Value(id)});
    }
    out.is_new = true;
    out.alert.count = 1;
    KEEL_RETURN_IF_ERROR(c.Query(
        "INSERT INTO alerts(model, version, rule, severity, metric, value, threshold, first_time, "
        "last_time, fire_count, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, '') RETURNING "
        "alert_id",
        {store::Value(alert.model), store::Value(alert.version), store::Value(alert.rule),
         store::Value(alert.severity), store::Value(alert.metric), store::Value(alert.value),
         store::Value(alert.threshold), store::Value(alert.first_ms), store::Value(alert.last_ms)},
        [&](const store::RowView& row) {
          out.alert.id = row.Int(0);
          return OkStatus();
        }));
    return c.Exec("UPDATE alerts SET details = ? WHERE alert_id = ?",
                  {store::Value(out.alert.ToJson()), store::Value(out.alert.id)});
  }));
  return out;
}

Result<std::vector<Alert>> ListAlerts(store::Database& db, const AlertQuery& query) {
  std::vector<Alert> out;
  std::string sql = "SELECT details FROM alerts WHERE last_time >= ?";
  std::vector<store::Value> params = {store::Value(query.since_ms)};
  if (!query.model.empty()) {
    sql += " AND model = ?";
    params.emplace_back(query.model);
  }
  sql += " ORDER BY last_time DESC, alert_id DESC LIMIT ?";
  params.emplace_back(static_cast<int64_t>(query.limit));
  Status parse_error;
  KEEL_RETURN_IF_ERROR(db.Read([&](store::Connection& c) {
    return c.Query(sql, params, [&](const store::RowView& row) -> Status {
      KEEL_ASSIGN_OR_RETURN(JsonDoc doc, ParseJsonObject(row.Text(0)));
      simdjson::dom::element e = doc.root();
      Alert a;
      auto str = [&](const char* key) {
        std::string_view s;
        return e[key].get_string().get(s) ? std::string() : std::string(s);
      };
      auto num = [&](const char* key) {
        double d = kNaN;
        if (e[key].get_double().get(d)) d = kNaN;
        return d;
      };
      auto integer = [&](const char* key) {
        int64_t i = 0;
        if (e[key].get_int64().get(i)) i = 0;
        return i;
      };
      a.id = integer("id");
      a.model = str("model");
      a.version = str("version");
      a.rule = str("rule");
      a.severity = str("severity");
      a.metric = str("metric");
      a.op = str("op");
      a.value = num("value");
      a.threshold = num("threshold");
      a.window_ms = integer("window_ms");
      a.first_ms = integer("first_ms");
      a.last_ms = integer("last_ms");
      a.count = static_cast<uint64_t>(integer("count"));
      a.summary = str("summary");
      out.push_back(std::move(a));
      return OkStatus();
    });
  }));
  return out;
}

Result<std::vector<StoredWindow>> ListStoredWindows(store::Database& db,
                                                    const WindowHistoryQuery& query) {
  if (query.model.empty()) return InvalidArgument("a model name is required");
  std::string sql =
      "SELECT window_id, model, version, from_time, to_time, computed_time, report FROM "
      "monitor_windows WHERE model = ? AND computed_time >= ?";
  std::vector<store::Value> params = {store::Value(query.model), store::Value(query.since_ms)};
  if (!query.version.empty()) {
    sql += " AND version = ?";
    params.emplace_back(query.version);
  }
  if (query.until_ms > 0) {
    sql += " AND computed_time < ?";
    params.emplace_back(query.until_ms);
  }
  if (query.before_id > 0) {
    // Keyset paging on (computed_time, window_id), the order of the list.
    sql +=
        " AND (computed_time < (SELECT computed_time FROM monitor_windows WHERE window_id = ?) "
        "OR (computed_time = (SELECT computed_time FROM monitor_windows WHERE window_id = ?) "
        "AND window_id < ?))";
    params.emplace_back(query.before_id);
    params.emplace_back(query.before_id);
    params.emplace_back(query.before_id);
  }
  if (query.window_ms > 0) {
    sql += " AND to_time - from_time = ?";
    params.emplace_back(query.window_ms);
  }
  if (query.id > 0) {
    sql += " AND window_id = ?";
    params.emplace_back(query.id);
  }
  sql += " ORDER BY computed_time DESC, window_id DESC LIMIT ?";
  params.emplace_back(static_cast<int64_t>(query.limit));
  std::vector<StoredWindow> out;
  KEEL_RETURN_IF_ERROR(db.Read([&](store::Connection& c) {
    return c.Query(sql, params, [&](const store::RowView& row) {
      StoredWindow w;
      w.id = row.Int(0);
      w.model = row.Text(1);
      w.version = row.Text(2);
      w.from_ms = row.Int(3);
      w.to_ms = row.Int(4);
      w.computed_ms = row.Int(5);
      w.report_json = row.Text(6);
      out.push_back(std::move(w));
      return OkStatus();
    });
  }));
  return out;
}

Result<std::vector<WindowKind>> ListWindowKinds(store::Database& db, const std::string& model) {
  if (model.empty()) return InvalidArgument("a model name is required");
  std::vector<WindowKind> out;
  KEEL_RETURN_IF_ERROR(db.Read([&](store::Connection& c) {
    out.clear();
    return c.Query(
        "SELECT version, to_time - from_time, COUNT(*), MAX(to_time) FROM monitor_windows "
        "WHERE model = ? GROUP BY version, to_time - from_time ORDER BY version, 2",
        {store::Value(model)}, [&](const store::RowView& row) {
          out.push_back(WindowKind{std::string(row.Text(0)), row.Int(1), row.Int(2), row.Int(3)});
          return OkStatus();
        });
  }));
  return out;
}

int AlertBus::Subscribe(Subscriber subscriber) {
  std::lock_guard<std::mutex> lock(mu_);
  const int id = next_id_++;
  subscribers_.emplace(id, std::move(subscriber));
  return id;
}

void AlertBus::Unsubscribe(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  subscribers_.erase(id);
}

void AlertBus::Publish(const Alert& alert) {
  std::vector<Subscriber> copy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, s] : subscribers_) copy.push_back(s);
  }
  for (const Subscriber& s : copy) s(alert);
}

WebhookNotifier::WebhookNotifier(Options options, Sender sender)
    : options_(std::move(options)), sender_(std::move(sender)) {
  thread_ = std::thread([this] { Run(); });
}

WebhookNotifier::~WebhookNotifier() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void WebhookNotifier::Enqueue(const Alert& alert) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= options_.queue_capacity) {
      ++dropped_;
      return;
    }
    queue_.push_back(alert.ToJson());
  }
  cv_.notify_all();
}

bool WebhookNotifier::Drain(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return queue_.empty() && !busy_; });
}

uint64_t WebhookNotifier::delivered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return delivered_;
}
uint64_t WebhookNotifier::failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_;
}
uint64_t WebhookNotifier::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}
uint64_t WebhookNotifier::attempts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return attempts_;
}

void WebhookNotifier::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    std::string body = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    const std::vector<std::pair<std::string, std::string>> headers = {
        {"X-Keel-Signature", "sha256=" + HmacSha256Hex(options_.secret, body)},
        {"X-Keel-Event", "alert"}};
    std::chrono::milliseconds backoff = options_.initial_backoff;
    const int max_attempts = std::max(options_.max_attempts, 1);
    bool done = false;
    for (int attempt = 1; !done; ++attempt) {
      ++attempts_;
      lock.unlock();
      Result<int> status = sender_(options_.url, body, headers);
      lock.lock();
      const bool retryable = !status.ok() || *status >= 500 || *status == 429;
      if (status.ok() && *status >= 200 && *status < 300) {
        ++delivered_;
        done = true;
      } else if (!retryable || attempt >= max_attempts || stop_) {
        ++failed_;  // refused (1xx, 3xx, 4xx), out of attempts, or shutting down
        done = true;
      } else {
        cv_.wait_for(lock, backoff, [this] { return stop_; });
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(60));
      }
    }
    busy_ = false;
    cv_.notify_all();
  }
}

}  // namespace keel::monitor
