#include "keel/retrain/policy.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "keel/core/json.h"
#include "keel/monitor/alerts.h"

namespace keel::retrain {
namespace {

constexpr char kGateMetrics[] =
    "auc, log_loss, accuracy, precision, recall, f1, f1_macro, rmse, mae, r2";

bool IsGateMetric(const std::string& name) {
  static const std::set<std::string> kNames = {"auc", "log_loss", "accuracy", "precision", "recall",
                                               "f1",  "f1_macro", "rmse",     "mae",       "r2"};
  return kNames.count(name) > 0;
}

// Reads one policy mapping; every error names source, model and key path.
class PolicyReader {
 public:
  PolicyReader(const std::string& source, std::string model)
      : source_(source), model_(std::move(model)) {}

  Status Error(const std::string& key, const std::string& why) const {
    return InvalidArgument(source_ + ": policy '" + model_ + "': " + key + ": " + why);
  }

  // Refuses keys of `node` not in `known`.
  Status OnlyKeys(const YAML::Node& node, const std::string& path,
                  const std::set<std::string>& known) const {
    if (!node.IsMap()) return Error(path.empty() ? "policy" : path, "expected a mapping");
    for (const auto& kv : node) {
      const std::string key = kv.first.as<std::string>();
      if (known.count(key) == 0) {
        std::string list;
        for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
        return Error(path.empty() ? key : path + "." + key, "unknown key (known: " + list + ")");
      }
    }
    return OkStatus();
  }

  Result<std::string> Text(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) return Error(key, "expected a text value");
    return node.as<std::string>();
  }

  Result<double> Number(const YAML::Node& node, const std::string& key) const {
    KEEL_ASSIGN_OR_RETURN(std::string text, Text(node, key));
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v)) {
      return Error(key, "expected a number, got '" + text + "'");
    }
    return v;
  }

  Result<uint64_t> Count(const YAML::Node& node, const std::string& key) const {
    KEEL_ASSIGN_OR_RETURN(std::string text, Text(node, key));
    uint64_t v = 0;
    size_t used = 0;
    try {
      if (!text.empty() && text[0] != '-') v = std::stoull(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (text.empty() || used != text.size()) {
      return Error(key, "expected a non-negative integer, got '" + text + "'");
    }
    return v;
  }

  Result<bool> Flag(const YAML::Node& node, const std::string& key) const {
    KEEL_ASSIGN_OR_RETURN(std::string text, Text(node, key));
    if (text == "true" || text == "yes" || text == "on") return true;
    if (text == "false" || text == "no" || text == "off") return false;
    return Error(key, "expected true or false, got '" + text + "'");
  }

  Result<int64_t> Duration(const YAML::Node& node, const std::string& key) const {
    KEEL_ASSIGN_OR_RETURN(std::string text, Text(node, key));
    Result<int64_t> ms = monitor::ParseDuration(text);
    if (!ms.ok()) return Error(key, ms.status().message());
    return *ms;
  }

 private:
  const std::string& source_;
  std::string model_;
};

Result<RetrainPolicy> ParseOne(const YAML::Node& node, const std::string& source, size_t index) {
  RetrainPolicy p;
  p.source = source;
  if (!node.IsMap()) {
    return InvalidArgument(source + ": policy " + std::to_string(index + 1) +
                           ": expected a mapping");
  }
  if (!node["model"] || !node["model"].IsScalar() || node["model"].as<std::string>().empty()) {
    return InvalidArgument(source + ": policy " + std::to_string(index + 1) +
                           ": model: required (the registered model's name)");
  }
  p.model = node["model"].as<std::string>();
  const PolicyReader r(source, p.model);
  KEEL_RETURN_IF_ERROR(
      r.OnlyKeys(node, "",
                 {"model", "train", "schedule", "timezone", "missed", "on_alerts", "window", "gate",
                  "shadow", "promote", "watch", "continuous", "job"}));

  const YAML::Node train = node["train"];
  if (!train) return r.Error("train", "required ({data, target, ...} or {command})");
  KEEL_RETURN_IF_ERROR(
      r.OnlyKeys(train, "train", {"data", "target", "model", "params", "command"}));
  if (train["data"]) {
    KEEL_ASSIGN_OR_RETURN(p.train.data, r.Text(train["data"], "train.data"));
  }
  if (train["target"]) {
    KEEL_ASSIGN_OR_RETURN(p.train.target, r.Text(train["target"], "train.target"));
  }
  if (train["model"]) {
    KEEL_ASSIGN_OR_RETURN(p.train.model, r.Text(train["model"], "train.model"));
  }
  if (train["command"]) {
    KEEL_ASSIGN_OR_RETURN(p.train.command, r.Text(train["command"], "train.command"));
  }
  if (train["params"]) {
    if (!train["params"].IsMap()) return r.Error("train.params", "expected a mapping");
    for (const auto& kv : train["params"]) {
      const std::string key = kv.first.as<std::string>();
      KEEL_ASSIGN_OR_RETURN(std::string value, r.Text(kv.second, "train.params." + key));
      p.train.params.emplace_back(key, value);
    }
  }
  if (p.train.data.empty() == p.train.command.empty()) {
    return r.Error("train", "give exactly one of data (keel trains) and command (your trainer)");
  }
  if (p.train.target.empty()) {
    return r.Error("train.target", "required (the label column; logged labels fill it)");
  }

  if (node["timezone"]) {
    KEEL_ASSIGN_OR_RETURN(p.timezone, r.Text(node["timezone"], "timezone"));
    Result<CronSchedule> tz_check = CronSchedule::Parse("* * * * *", p.timezone);
    if (!tz_check.ok()) return r.Error("timezone", tz_check.status().message());
  }
  if (node["schedule"]) {
    KEEL_ASSIGN_OR_RETURN(std::string cron, r.Text(node["schedule"], "schedule"));
    Result<CronSchedule> s = CronSchedule::Parse(cron, p.timezone);
    if (!s.ok()) return r.Error("schedule", s.status().message());
    p.schedule = std::move(s).value();
  }
  if (node["missed"]) {
    KEEL_ASSIGN_OR_RETURN(p.missed, r.Text(node["missed"], "missed"));
    if (p.missed != "run_once" && p.missed != "skip") {
      return r.Error("missed", "expected run_once or skip, got '" + p.missed + "'");
    }
  }
  if (node["on_alerts"]) {
    const YAML::Node list = node["on_alerts"];
    if (list.IsScalar()) {
      p.on_alerts.push_back(list.as<std::string>());
    } else if (list.IsSequence()) {
      for (const YAML::Node& item : list) {
        KEEL_ASSIGN_OR_RETURN(std::string name, r.Text(item, "on_alerts"));
        p.on_alerts.push_back(name);
      }
    } else {
      return r.Error("on_alerts", "expected a list of alert rule names");
    }
  }
  if (const YAML::Node w = node["window"]) {
    KEEL_RETURN_IF_ERROR(r.OnlyKeys(w, "window", {"recent", "include_labeled_predictions"}));
    if (w["recent"]) {
      KEEL_ASSIGN_OR_RETURN(p.window.recent_ms, r.Duration(w["recent"], "window.recent"));
    }
    if (w["include_labeled_predictions"]) {
      KEEL_ASSIGN_OR_RETURN(
          p.window.include_labeled_predictions,
          r.Flag(w["include_labeled_predictions"], "window.include_labeled_predictions"));
    }
  }
  if (const YAML::Node g = node["gate"]) {
    KEEL_RETURN_IF_ERROR(r.OnlyKeys(
        g, "gate",
        {"metric", "min_delta", "max_regression", "min_rows", "holdout", "holdout_fraction"}));
    if (g["metric"]) {
      KEEL_ASSIGN_OR_RETURN(p.gate.metric, r.Text(g["metric"], "gate.metric"));
      if (!IsGateMetric(p.gate.metric)) {
        return r.Error("gate.metric", "'" + p.gate.metric + "' is not a metric keel computes (" +
                                          std::string(kGateMetrics) + ")");
      }
    }
    if (g["min_delta"]) {
      KEEL_ASSIGN_OR_RETURN(p.gate.min_delta, r.Number(g["min_delta"], "gate.min_delta"));
    }
    if (g["max_regression"]) {
      KEEL_ASSIGN_OR_RETURN(p.gate.max_regression,
                            r.Number(g["max_regression"], "gate.max_regression"));
      if (p.gate.max_regression < 0) return r.Error("gate.max_regression", "must not be negative");
    }
    if (g["min_rows"]) {
      KEEL_ASSIGN_OR_RETURN(p.gate.min_rows, r.Count(g["min_rows"], "gate.min_rows"));
    }
    if (g["holdout"]) {
      KEEL_ASSIGN_OR_RETURN(p.gate.holdout, r.Text(g["holdout"], "gate.holdout"));
      if (p.gate.holdout != "recent") {
        return r.Error("gate.holdout", "expected recent (the newest labeled predictions), got '" +
                                           p.gate.holdout + "'");
      }
    }
    if (g["holdout_fraction"]) {
      KEEL_ASSIGN_OR_RETURN(p.gate.holdout_fraction,
                            r.Number(g["holdout_fraction"], "gate.holdout_fraction"));
      if (!(p.gate.holdout_fraction > 0 && p.gate.holdout_fraction < 1)) {
        return r.Error("gate.holdout_fraction", "must be between 0 and 1");
      }
    }
  }
  if (const YAML::Node s = node["shadow"]) {
    KEEL_RETURN_IF_ERROR(r.OnlyKeys(s, "shadow", {"duration", "min_requests"}));
    if (s["duration"]) {
      KEEL_ASSIGN_OR_RETURN(p.shadow.duration_ms, r.Duration(s["duration"], "shadow.duration"));
    }
    if (s["min_requests"]) {
      KEEL_ASSIGN_OR_RETURN(p.shadow.min_requests,
                            r.Count(s["min_requests"], "shadow.min_requests"));
      if (p.shadow.min_requests > kMaxShadowRequests) {
        return r.Error("shadow.min_requests", "at most " + std::to_string(kMaxShadowRequests) +
                                                  " (the requests a shadow phase compares)");
      }
    }
  }
  if (node["promote"]) {
    KEEL_ASSIGN_OR_RETURN(p.promote, r.Text(node["promote"], "promote"));
    if (p.promote.empty() || p.promote == "challenger") {
      return r.Error("promote", "name the alias the winner takes (not 'challenger')");
    }
  }
  if (const YAML::Node w = node["watch"]) {
    KEEL_RETURN_IF_ERROR(r.OnlyKeys(w, "watch", {"duration", "rollback_if"}));
    if (w["duration"]) {
      KEEL_ASSIGN_OR_RETURN(p.watch.duration_ms, r.Duration(w["duration"], "watch.duration"));
    }
    if (const YAML::Node rb = w["rollback_if"]) {
      KEEL_RETURN_IF_ERROR(r.OnlyKeys(rb, "watch.rollback_if", {"metric", "drop_more_than"}));
      if (rb["metric"]) {
        KEEL_ASSIGN_OR_RETURN(p.watch.metric, r.Text(rb["metric"], "watch.rollback_if.metric"));
        if (!IsGateMetric(p.watch.metric)) {
          return r.Error("watch.rollback_if.metric", "'" + p.watch.metric +
                                                         "' is not a metric keel computes (" +
                                                         std::string(kGateMetrics) + ")");
        }
      }
      if (rb["drop_more_than"]) {
        KEEL_ASSIGN_OR_RETURN(p.watch.drop_more_than,
                              r.Number(rb["drop_more_than"], "watch.rollback_if.drop_more_than"));
        if (p.watch.drop_more_than < 0) {
          return r.Error("watch.rollback_if.drop_more_than", "must not be negative");
        }
      }
    }
  }
  if (const YAML::Node c = node["continuous"]) {
    KEEL_RETURN_IF_ERROR(
        r.OnlyKeys(c, "continuous", {"every", "min_rows", "rounds", "learning_rate"}));
    if (!c["every"]) return r.Error("continuous.every", "required (the cadence, e.g. 1h)");
    KEEL_ASSIGN_OR_RETURN(p.continuous.every_ms, r.Duration(c["every"], "continuous.every"));
    if (p.continuous.every_ms < 1000) {
      return r.Error("continuous.every", "at least 1s");
    }
    if (c["min_rows"]) {
      KEEL_ASSIGN_OR_RETURN(p.continuous.min_rows, r.Count(c["min_rows"], "continuous.min_rows"));
      if (p.continuous.min_rows == 0) return r.Error("continuous.min_rows", "at least 1");
    }
    if (c["rounds"]) {
      KEEL_ASSIGN_OR_RETURN(uint64_t n, r.Count(c["rounds"], "continuous.rounds"));
      if (n == 0 || n > 10000) return r.Error("continuous.rounds", "between 1 and 10000");
      p.continuous.rounds = static_cast<int>(n);
    }
    if (c["learning_rate"]) {
      KEEL_ASSIGN_OR_RETURN(p.continuous.learning_rate,
                            r.Number(c["learning_rate"], "continuous.learning_rate"));
      if (!(p.continuous.learning_rate > 0)) {
        return r.Error("continuous.learning_rate", "must be positive");
      }
    }
    if (!p.train.command.empty()) {
      return r.Error("continuous",
                     "updates keel-trained models; a policy with train.command "
                     "has no continuous mode");
    }
    // An update's holdout is its newest rows: too few and the gate always
    // rejects, after training and registering a version each time.
    const auto holdout = static_cast<uint64_t>(
        std::ceil(static_cast<double>(p.continuous.min_rows) * p.gate.holdout_fraction));
    if (holdout < p.gate.min_rows) {
      return r.Error("continuous.min_rows",
                     std::to_string(p.continuous.min_rows) + " new rows give a holdout of " +
                         std::to_string(holdout) + " (gate.holdout_fraction " +
                         FormatDouble(p.gate.holdout_fraction) + "), below gate.min_rows " +
                         std::to_string(p.gate.min_rows) +
                         "; raise continuous.min_rows or lower gate.min_rows");
    }
  }
  if (const YAML::Node j = node["job"]) {
    KEEL_RETURN_IF_ERROR(r.OnlyKeys(j, "job", {"timeout", "retries", "retry_backoff"}));
    if (j["timeout"]) {
      KEEL_ASSIGN_OR_RETURN(p.job.timeout_ms, r.Duration(j["timeout"], "job.timeout"));
    }
    if (j["retries"]) {
      KEEL_ASSIGN_OR_RETURN(uint64_t n, r.Count(j["retries"], "job.retries"));
      if (n > 10) return r.Error("job.retries", "at most 10");
      p.job.retries = static_cast<int>(n);
    }
    if (j["retry_backoff"]) {
      KEEL_ASSIGN_OR_RETURN(p.job.retry_backoff_ms,
                            r.Duration(j["retry_backoff"], "job.retry_backoff"));
    }
  }
  return p;
}

}  // namespace

Result<std::vector<RetrainPolicy>> ParsePolicies(const std::string& yaml,
                                                 const std::string& source) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(yaml);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  std::vector<YAML::Node> nodes;
  for (const YAML::Node& doc : docs) {
    if (!doc || doc.IsNull()) continue;
    if (doc.IsMap() && doc["policies"]) {
      if (doc.size() != 1)
        return InvalidArgument(source + ": beside 'policies' no other key is allowed");
      if (!doc["policies"].IsSequence())
        return InvalidArgument(source + ": policies: expected a list");
      for (const YAML::Node& n : doc["policies"]) nodes.push_back(n);
    } else {
      nodes.push_back(doc);
    }
  }
  if (nodes.empty()) return InvalidArgument(source + ": no retraining policy in the file");
  std::vector<RetrainPolicy> out;
  std::set<std::string> seen;
  for (size_t i = 0; i < nodes.size(); ++i) {
    Result<RetrainPolicy> p = [&]() -> Result<RetrainPolicy> {
      try {
        return ParseOne(nodes[i], source, i);
      } catch (const YAML::Exception& e) {
        return InvalidArgument(source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
      }
    }();
    KEEL_RETURN_IF_ERROR(p.status());
    if (!seen.insert(p->model).second) {
      return InvalidArgument(source + ": two policies for model '" + p->model + "'");
    }
    out.push_back(std::move(p).value());
  }
  return out;
}

Result<std::vector<RetrainPolicy>> LoadPolicies(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot open the retraining policy file");
  std::stringstream text;
  text << in.rdbuf();
  KEEL_ASSIGN_OR_RETURN(std::vector<RetrainPolicy> policies, ParsePolicies(text.str(), path));
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  for (RetrainPolicy& p : policies) {
    if (!p.train.data.empty() && std::filesystem::path(p.train.data).is_relative()) {
      p.train.data = (folder / p.train.data).lexically_normal().string();
    }
  }
  return policies;
}

}  // namespace keel::retrain
