#include "keel/tracking/tracking.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>
#include <unordered_map>

#include "keel/core/json.h"
#include "keel/core/util.h"
#include "src/tracking/metric_chunks.h"
#include "src/tracking/run_names.h"
#include "src/tracking/search_filter.h"

namespace keel::tracking {

using store::Connection;
using store::RowView;
using store::Value;

namespace {

constexpr std::string_view kActive = "active";
constexpr std::string_view kDeleted = "deleted";

Result<int64_t> ParseExperimentId(const std::string& id) {
  int64_t v = 0;
  if (id.empty() || id.size() > 18 ||
      !std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return NotFound("Could not find experiment with ID " + id);
  }
  for (char c : id) v = v * 10 + (c - '0');
  return v;
}

// posixpath.normpath for relative and absolute POSIX paths.
std::string NormPath(const std::string& path) {
  if (path.empty()) return ".";
  bool absolute = path.front() == '/';
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string_view seg(path.data() + start, end - start);
    if (seg.empty() || seg == ".") {
    } else if (seg == ".." && !parts.empty() && parts.back() != "..") {
      parts.pop_back();
    } else if (!(seg == ".." && absolute)) {
      parts.push_back(seg);
    }
    start = end + 1;
  }
  std::string out = absolute ? "/" : "";
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? "/" : "") + std::string(parts[i]);
  return out.empty() ? "." : out;
}

// MLflow 2.x's rules for metric, param and tag names.
Status ValidateKey(std::string_view kind, const std::string& key) {
  if (key.empty()) {
    return InvalidArgument("Invalid " + std::string(kind) + " name: ''. Names may not be empty.");
  }
  if (key.size() > kMaxKeyLength) {
    return InvalidArgument(std::string(kind) + " key '" + key.substr(0, 32) + "...' had length " +
                           std::to_string(key.size()) + ", which exceeded length limit of " +
                           std::to_string(kMaxKeyLength));
  }
  for (char c : key) {
    unsigned char u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) || c == '_' || c == '-' || c == '.' || c == ' ' || c == '/' ||
          c == ':' || u >= 0x80)) {
      return InvalidArgument("Invalid " + std::string(kind) + " name: '" + key +
                             "'. Names may only contain alphanumerics, underscores (_), dashes "
                             "(-), periods (.), spaces ( ), colon(:) and slashes (/).");
    }
  }
  std::string norm = NormPath(key);
  if (norm != key || norm == "." || norm.starts_with("..") || norm.starts_with("/")) {
    return InvalidArgument("Invalid " + std::string(kind) + " name: '" + key +
                           "'. Names cannot resolve to a different path when normalized, or be "
                           "absolute or outside the run (e.g. 'a//b', './a', '../a', '/a').");
  }
  return OkStatus();
}

// Key rules plus MLflow's value length limit for the kind ("Param", "Tag").
Status ValidateKeyValue(std::string_view kind, const Tag& t, size_t max_value) {
  std::string lower(kind);
  lower[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(lower[0])));
  KEEL_RETURN_IF_ERROR(ValidateKey(lower, t.key));
  if (t.value.size() > max_value) {
    return InvalidArgument(std::string(kind) + " value for key '" + t.key + "' had length " +
                           std::to_string(t.value.size()) + ", which exceeded length limit of " +
                           std::to_string(max_value));
  }
  return OkStatus();
}

Status ValidateParam(const Param& p) { return ValidateKeyValue("Param", p, kMaxParamValueLength); }
Status ValidateTag(const Tag& t) { return ValidateKeyValue("Tag", t, kMaxTagValueLength); }

bool IsTerminal(std::string_view status) {
  return status == "FINISHED" || status == "FAILED" || status == "KILLED";
}

Status ValidateRunStatus(const std::string& status) {
  static const char* kStatuses[] = {"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"};
  for (const char* s : kStatuses) {
    if (status == s) return OkStatus();
  }
  return InvalidArgument("Invalid value '" + status +
                         "' for parameter 'status': expected one of RUNNING, SCHEDULED, "
                         "FINISHED, FAILED, KILLED");
}

struct RunRef {
  int64_t run_key = 0;
  int64_t experiment_id = 0;
  std::string lifecycle_stage;
};

Result<RunRef> FindRun(Connection& c, const std::string& run_id) {
  RunRef ref;
  bool found = false;
  KEEL_RETURN_IF_ERROR(c.Query(
      "SELECT run_key, experiment_id, lifecycle_stage FROM runs WHERE run_uuid = ?",
      {Value(std::string_view(run_id))}, [&](const RowView& r) {
        ref.run_key = r.Int(0);
        ref.experiment_id = r.Int(1);
        ref.lifecycle_stage = std::string(r.Text(2));
        found = true;
        return OkStatus();
      }));
  if (!found) return NotFound("Run with id=" + run_id + " not found");
  return ref;
}

Result<RunRef> FindActiveRun(Connection& c, const std::string& run_id) {
  KEEL_ASSIGN_OR_RETURN(RunRef ref, FindRun(c, run_id));
  if (ref.lifecycle_stage != kActive) {
    return InvalidArgument("The run " + run_id + " must be in the 'active' state. Current state is " +
                           ref.lifecycle_stage + ".");
  }
  return ref;
}

Status InsertParams(Connection& c, const RunRef& ref, const std::string& run_id,
                    const std::vector<Param>& params) {
  for (const Param& p : params) {
    KEEL_RETURN_IF_ERROR(c.Exec(
        "INSERT INTO params(run_key, key, value) VALUES (?, ?, ?) ON CONFLICT (run_key, key) DO "
        "NOTHING",
        {Value(ref.run_key), Value(std::string_view(p.key)), Value(std::string_view(p.value))}));
    if (c.ChangedRows() == 0) {
      std::string existing;
      KEEL_RETURN_IF_ERROR(c.Query("SELECT value FROM params WHERE run_key = ? AND key = ?",
                                   {Value(ref.run_key), Value(std::string_view(p.key))},
                                   [&](const RowView& r) {
                                     existing = std::string(r.Text(0));
                                     return OkStatus();
                                   }));
      if (existing != p.value) {
        return InvalidArgument("Changing param values is not allowed. Param with key='" + p.key +
                               "' was already logged with value='" + existing +
                               "' for run ID='" + run_id + "'. Attempted logging new value '" +
                               p.value + "'.");
      }
    }
  }
  return OkStatus();
}

Status UpsertTag(Connection& c, int64_t run_key, const Tag& t) {
  return c.Exec(
      "INSERT INTO tags(run_key, key, value) VALUES (?, ?, ?) ON CONFLICT (run_key, key) DO "
      "UPDATE SET value = excluded.value",
      {Value(run_key), Value(std::string_view(t.key)), Value(std::string_view(t.value))});
}

Status SetTags(Connection& c, const RunRef& ref, const std::vector<Tag>& tags) {
  for (const Tag& t : tags) {
    KEEL_RETURN_IF_ERROR(UpsertTag(c, ref.run_key, t));
    if (t.key == "mlflow.runName") {
      KEEL_RETURN_IF_ERROR(c.Exec("UPDATE runs SET name = ? WHERE run_key = ?",
                                  {Value(std::string_view(t.value)), Value(ref.run_key)}));
    }
  }
  return OkStatus();
}

// Latest point per key ordering: (step, timestamp, value), NaN below numbers.
bool Newer(const Metric& a, const Metric& b) {
  if (a.step != b.step) return a.step > b.step;
  if (a.timestamp != b.timestamp) return a.timestamp > b.timestamp;
  if (std::isnan(b.value)) return !std::isnan(a.value);
  if (std::isnan(a.value)) return false;
  return a.value > b.value;
}

// One chunk per key per call (points in call order) and one latest_metrics upsert per key.
Status InsertMetrics(Connection& c, const RunRef& ref, const std::vector<Metric>& metrics) {
  struct KeyBatch {
    std::string points;
    const Metric* latest = nullptr;
    int64_t n = 0;
  };
  std::vector<std::pair<std::string_view, KeyBatch>> batches;  // few keys: linear lookup
  for (const Metric& m : metrics) {
    KeyBatch* batch = nullptr;
    for (auto& [key, b] : batches) {
      if (key == m.key) batch = &b;
    }
    if (batch == nullptr) batch = &batches.emplace_back(m.key, KeyBatch{}).second;
    internal::AppendPoint(batch->points, m);
    ++batch->n;
    if (batch->latest == nullptr || Newer(m, *batch->latest)) batch->latest = &m;
  }
  for (const auto& [key, b] : batches) {
    KEEL_RETURN_IF_ERROR(c.Exec(
        "INSERT INTO metric_chunks(run_key, key, n, points) VALUES (?, ?, ?, ?)",
        {Value(ref.run_key), Value(key), Value(b.n), Value(store::Blob{b.points})}));
    const Metric& m = *b.latest;
    bool nan = std::isnan(m.value);
    // NaN sorts below every number: stored value 0 with is_nan 1, compared
    // through the sort key (step, timestamp, 1 - is_nan, value).
    KEEL_RETURN_IF_ERROR(c.Exec(
        "INSERT INTO latest_metrics(run_key, key, step, timestamp, value, is_nan) VALUES (?, ?, "
        "?, ?, ?, ?) ON CONFLICT (run_key, key) DO UPDATE SET step = excluded.step, timestamp = "
        "excluded.timestamp, value = excluded.value, is_nan = excluded.is_nan WHERE "
        "(excluded.step, excluded.timestamp, 1 - excluded.is_nan, excluded.value) > "
        "(latest_metrics.step, latest_metrics.timestamp, 1 - latest_metrics.is_nan, "
        "latest_metrics.value)",
        {Value(ref.run_key), Value(key), Value(m.step), Value(m.timestamp),
         Value(nan ? 0.0 : m.value), Value(int64_t{nan ? 1 : 0})}));
  }
  return OkStatus();
}

Experiment ReadExperiment(const RowView& r) {
  Experiment e;
  e.experiment_id = std::to_string(r.Int(0));
  e.name = std::string(r.Text(1));
  e.artifact_location = std::string(r.Text(2));
  e.lifecycle_stage = std::string(r.Text(3));
  e.creation_time = r.Int(4);
  e.last_update_time = r.Int(5);
  return e;
}

constexpr const char* kExperimentColumns =
    "experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time";

Status LoadExperimentTags(Connection& c, Experiment& e) {
  return c.Query("SELECT key, value FROM experiment_tags WHERE experiment_id = ? ORDER BY key",
                 {Value(std::stoll(e.experiment_id))}, [&](const RowView& r) {
                   e.tags.push_back({std::string(r.Text(0)), std::string(r.Text(1))});
                   return OkStatus();
                 });
}

constexpr const char* kRunColumns =
    "r.run_key, r.run_uuid, r.experiment_id, r.name, r.user_id, r.status, r.start_time, "
    "r.end_time, r.artifact_uri, r.lifecycle_stage";

RunInfo ReadRunInfo(const RowView& r) {
  RunInfo info;
  info.run_id = std::string(r.Text(1));
  info.experiment_id = std::to_string(r.Int(2));
  info.run_name = std::string(r.Text(3));
  info.user_id = std::string(r.Text(4));
  info.status = std::string(r.Text(5));
  if (!r.IsNull(6)) info.start_time = r.Int(6);
  if (!r.IsNull(7)) info.end_time = r.Int(7);
  info.artifact_uri = std::string(r.Text(8));
  info.lifecycle_stage = std::string(r.Text(9));
  return info;
}

// Fills metrics/params/tags/inputs of `runs` (run_keys parallel to runs).
Status LoadRunData(Connection& c, const std::vector<int64_t>& keys, std::vector<Run>& runs) {
  if (keys.empty()) return OkStatus();
  std::unordered_map<int64_t, size_t> index;
  index.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) index.emplace(keys[i], i);
  constexpr size_t kChunk = 500;
  for (size_t start = 0; start < keys.size(); start += kChunk) {
    size_t end = std::min(keys.size(), start + kChunk);
    std::string in = "(";
    std::vector<Value> params;
    params.reserve(end - start);
    for (size_t i = start; i < end; ++i) {
      in += (i == start ? "?" : ",?");
      params.emplace_back(keys[i]);
    }
    in += ")";
    KEEL_RETURN_IF_ERROR(c.Query(
        "SELECT run_key, key, value, timestamp, step, is_nan FROM latest_metrics WHERE run_key IN " +
            in,
        params, [&](const RowView& r) {
          Metric m{std::string(r.Text(1)), r.Int(5) ? std::nan("") : r.Double(2), r.Int(3),
                   r.Int(4)};
          runs[index[r.Int(0)]].metrics.push_back(std::move(m));
          return OkStatus();
        }));
    KEEL_RETURN_IF_ERROR(c.Query("SELECT run_key, key, value FROM params WHERE run_key IN " + in,
                                 params, [&](const RowView& r) {
                                   runs[index[r.Int(0)]].params.push_back(
                                       {std::string(r.Text(1)), std::string(r.Text(2))});
                                   return OkStatus();
                                 }));
    KEEL_RETURN_IF_ERROR(c.Query("SELECT run_key, key, value FROM tags WHERE run_key IN " + in,
                                 params, [&](const RowView& r) {
                                   runs[index[r.Int(0)]].tags.push_back(
                                       {std::string(r.Text(1)), std::string(r.Text(2))});
                                   return OkStatus();
                                 }));
    std::map<std::pair<int64_t, std::string>, size_t> input_pos;
    KEEL_RETURN_IF_ERROR(c.Query(
        "SELECT i.run_key, d.dataset_uuid, d.name, d.digest, d.source_type, d.source, "
        "d.schema_json, d.profile FROM run_inputs i JOIN datasets d ON d.dataset_uuid = "
        "i.dataset_uuid WHERE i.run_key IN " +
            in + " ORDER BY i.run_key, d.name",
        params, [&](const RowView& r) {
          DatasetInput di;
          di.dataset = {std::string(r.Text(2)), std::string(r.Text(3)), std::string(r.Text(4)),
                        std::string(r.Text(5)), std::string(r.Text(6)), std::string(r.Text(7))};
          auto& inputs = runs[index[r.Int(0)]].inputs;
          input_pos[{r.Int(0), std::string(r.Text(1))}] = inputs.size();
          inputs.push_back(std::move(di));
          return OkStatus();
        }));
    if (!input_pos.empty()) {
      KEEL_RETURN_IF_ERROR(c.Query(
          "SELECT run_key, dataset_uuid, key, value FROM run_input_tags WHERE run_key IN " + in,
          params, [&](const RowView& r) {
            auto it = input_pos.find({r.Int(0), std::string(r.Text(1))});
            if (it != input_pos.end()) {
              runs[index[r.Int(0)]].inputs[it->second].tags.push_back(
                  {std::string(r.Text(2)), std::string(r.Text(3))});
            }
            return OkStatus();
          }));
    }
  }
  return OkStatus();
}

Status ValidateMaxResults(int64_t max_results) {
  if (max_results <= 0 || max_results > kMaxSearchResults) {
    return InvalidArgument("Invalid value " + std::to_string(max_results) +
                           " for parameter 'max_results' supplied. It must be a positive "
                           "integer <= " + std::to_string(kMaxSearchResults));
  }
  return OkStatus();
}

void AppendLifecycleFilter(ViewType view, const char* column, std::string& where) {
  if (view == ViewType::kActiveOnly) {
    where += std::string(" AND ") + column + " = 'active'";
  } else if (view == ViewType::kDeletedOnly) {
    where += std::string(" AND ") + column + " = 'deleted'";
  }
}

}  // namespace

Result<ViewType> ParseViewType(std::string_view text) {
  if (text.empty() || text == "ACTIVE_ONLY" || text == "1") return ViewType::kActiveOnly;
  if (text == "DELETED_ONLY" || text == "2") return ViewType::kDeletedOnly;
  if (text == "ALL" || text == "3") return ViewType::kAll;
  return InvalidArgument("Invalid value '" + std::string(text) +
                         "' for view type: expected ACTIVE_ONLY, DELETED_ONLY or ALL");
}

TrackingService::TrackingService(store::Database& db, const Clock& clock, TrackingOptions options)
    : db_(db), clock_(clock), options_(std::move(options)) {
  while (!options_.default_artifact_root.empty() && options_.default_artifact_root.back() == '/') {
    options_.default_artifact_root.pop_back();
  }
}

// ---------------------------------------------------------------- experiments

Result<std::string> TrackingService::CreateExperiment(const std::string& name,
                                                      const std::string& artifact_location,
                                                      const std::vector<Tag>& tags) {
  if (name.empty()) return InvalidArgument("Invalid experiment name: ''");
  if (name.size() > 500) return InvalidArgument("Experiment name exceeds 500 characters");
  for (const Tag& t : tags) KEEL_RETURN_IF_ERROR(ValidateTag(t));
  int64_t id = 0;
  int64_t now = clock_.NowMillis();
  Status s = db_.Write([&](Connection& c) -> Status {
    std::string existing_stage;
    KEEL_RETURN_IF_ERROR(c.Query("SELECT lifecycle_stage FROM experiments WHERE name = ?",
                                 {Value(std::string_view(name))}, [&](const RowView& r) {
                                   existing_stage = std::string(r.Text(0));
                                   return OkStatus();
                                 }));
    if (existing_stage == kDeleted) {
      return AlreadyExists("Experiment '" + name +
                           "' already exists in deleted state. You can restore the experiment, "
                           "or permanently delete the experiment to create a new one.");
    }
    if (!existing_stage.empty()) {
      return AlreadyExists("Experiment(name=" + name + ") already exists.");
    }
    KEEL_ASSIGN_OR_RETURN(id, store::NextSequenceValue(c, "experiment_id"));
    std::string location = artifact_location.empty()
                               ? options_.default_artifact_root + "/" + std::to_string(id)
                               : artifact_location;
    KEEL_RETURN_IF_ERROR(c.Exec(
        "INSERT INTO experiments(experiment_id, name, artifact_location, lifecycle_stage, "
        "creation_time, last_update_time) VALUES (?, ?, ?, 'active', ?, ?)",
        {Value(id), Value(std::string_view(name)), Value(location), Value(now), Value(now)}));
    for (const Tag& t : tags) {
      KEEL_RETURN_IF_ERROR(c.Exec(
          "INSERT INTO experiment_tags(experiment_id, key, value) VALUES (?, ?, ?) ON CONFLICT "
          "(experiment_id, key) DO UPDATE SET value = excluded.value",
          {Value(id), Value(std::string_view(t.key)), Value(std::string_view(t.value))}));
    }
    return OkStatus();
  });
  KEEL_RETURN_IF_ERROR(s);
  return std::to_string(id);
}

Result<Experiment> TrackingService::GetExperiment(const std::string& experiment_id) {
  KEEL_ASSIGN_OR_RETURN(int64_t id, ParseExperimentId(experiment_id));
  std::optional<Experiment> exp;
  KEEL_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(c.Query(std::string("SELECT ") + kExperimentColumns +
                                     " FROM experiments WHERE experiment_id = ?",
                                 {Value(id)}, [&](const RowView& r) {
                                   exp = ReadExperiment(r);
                                   return OkStatus();
                                 }));
    if (!exp) return NotFound("No Experiment with id=" + experiment_id + " exists");
    return LoadExperimentTags(c, *exp);
  }));
  return *exp;
}

Result<Experiment> TrackingService::GetExperimentByName(const std::string& name) {
  std::optional<Experiment> exp;
  KEEL_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(c.Query(std::string("SELECT ") + kExperimentColumns +
                                     " FROM experiments WHERE name = ?",
                                 {Value(std::string_view(name))}, [&](const RowView& r) {
                                   exp = ReadExperiment(r);
                                   return OkStatus();
                                 }));
    if (!exp) return NotFound("Could not find experiment with name '" + name + "'");
    return LoadExperimentTags(c, *exp);
  }));
  return *exp;
}

Result<ExperimentsPage> TrackingService::SearchExperiments(const SearchExperimentsRequest& req) {
  KEEL_RETURN_IF_ERROR(ValidateMaxResults(req.max_results));
  KEEL_ASSIGN_OR_RETURN(auto comparisons, internal::ParseFilter(req.filter, internal::ExperimentFilterSchema()));
  KEEL_ASSIGN_OR_RETURN(int64_t offset, internal::DecodeOffsetToken(req.page_token));
  std::string where = "WHERE 1=1";
  std::vector<Value> params;
  AppendLifecycleFilter(req.view, "e.lifecycle_stage", where);
  for (const auto& c : comparisons) {
    where += " AND ";
    if (c.entity == internal::Entity::kTag) {
      where += "EXISTS (SELECT 1 FROM experiment_tags t WHERE t.experiment_id = e.experiment_id "
               "AND t.key = ? AND ";
      params.emplace_back(c.key);
      internal::AppendStringPredicate("t.value", c, params, where);
      where += ")";
    } else if (internal::ExperimentFilterSchema().IsNumeric(c.key)) {
      where += "e." + c.key + " " + std::string(internal::OpSql(c.op)) + " ?";
      params.emplace_back(std::get<double>(c.value));
    } else {
      internal::AppendStringPredicate("e.name", c, params, where);
    }
  }
  std::string order;
  for (const std::string& clause : req.order_by) {
    std::string text = clause;
    bool asc = true;
    auto lower = text;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (lower.ends_with(" desc")) {
      asc = false;
      text = text.substr(0, text.size() - 5);
    } else if (lower.ends_with(" asc")) {
      text = text.substr(0, text.size() - 4);
    }
    if (text.starts_with("attribute.")) text = text.substr(10);
    if (text != "name" && text != "experiment_id" && text != "creation_time" &&
        text != "last_update_time") {
      return InvalidArgument("Invalid order_by clause '" + clause +
                             "': expected name, experiment_id, creation_time or "
                             "last_update_time");
    }
    order += (order.empty() ? "" : ", ") + ("e." + text) + (asc ? " ASC" : " DESC");
  }
  if (order.empty()) order = "e.creation_time DESC";
  order += ", e.experiment_id ASC";

  ExperimentsPage page;
  params.emplace_back(req.max_results + 1);
  params.emplace_back(offset);
  KEEL_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(c.Query(std::string("SELECT ") + kExperimentColumns +
                                     " FROM experiments e " + where + " ORDER BY " + order +
                                     " LIMIT ? OFFSET ?",
                                 params, [&](const RowView& r) {
                                   page.experiments.push_back(ReadExperiment(r));
                                   return OkStatus();
                                 }));
    if (static_cast<int64_t>(page.experiments.size()) > req.max_results) {
      page.experiments.pop_back();
      page.next_page_token = internal::EncodeOffsetToken(offset + req.max_results);
    }
    for (auto& e : page.experiments) KEEL_RETURN_IF_ERROR(LoadExperimentTags(c, e));
    return OkStatus();
  }));
  return page;
}

Status TrackingService::RenameExperiment(const std::string& experiment_id,
                                         const std::string& new_name) {
  KEEL_ASSIGN_OR_RETURN(int64_t id, ParseExperimentId(experiment_id));
  if (new_name.empty()) return InvalidArgument("Invalid experiment name: ''");
  return db_.Write([&](Connection& c) -> Status {
    std::string stage;
    KEEL_RETURN_IF_ERROR(c.Query("SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?",
                                 {Value(id)}, [&](const RowView& r) {
                                   stage = std::string(r.Text(0));
                                   return OkStatus();
                                 }));
    if (stage.empty()) return NotFound("No Experiment with id=" + experiment_id + " exists");
    if (stage != kActive) return InvalidArgument("Cannot rename a non-active experiment.");
    bool taken = false;
    KEEL_RETURN_IF_ERROR(c.Query(
        "SELECT 1 FROM experiments WHERE name = ? AND experiment_id != ?",
        {Value(std::string_view(new_name)), Value(id)}, [&](const RowView&) {
          taken = true;
          return OkStatus();
        }));
    if (taken) return AlreadyExists("Experiment(name=" + new_name + ") already exists.");
    return c.Exec("UPDATE experiments SET name = ?, last_update_time = ? WHERE experiment_id = ?",
                  {Value(std::string_view(new_name)), Value(clock_.NowMillis()), Value(id)});
  });
}

namespace {

Status SetExperimentStage(store::Database& db, const Clock& clock, const std::string& experiment_id,
                          std::string_view from, std::string_view to) {
  KEEL_ASSIGN_OR_RETURN(int64_t id, ParseExperimentId(experiment_id));
  return db.Write([&](Connection& c) -> Status {
    std::string stage;
    KEEL_RETURN_IF_ERROR(c.Query("SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?",
                                 {Value(id)}, [&](const RowView& r) {
                                   stage = std::string(r.Text(0));
                                   return OkStatus();
                                 }));
    if (stage.empty()) return NotFound("No Experiment with id=" + experiment_id + " exists");
    if (id == 0 && to == kDeleted) {
      return InvalidArgument("Cannot delete the default experiment '0'. This is an internally "
                             "reserved experiment.");
    }
    if (stage != from) {
      return InvalidArgument("Cannot change the lifecycle stage of experiment " + experiment_id +
                             ": it is " + stage);
    }
    int64_t now = clock.NowMillis();
    KEEL_RETURN_IF_ERROR(c.Exec(
        "UPDATE experiments SET lifecycle_stage = ?, last_update_time = ? WHERE experiment_id = ?",
        {Value(to), Value(now), Value(id)}));
    // Runs follow their experiment (as MLflow does).
    return c.Exec(
        "UPDATE runs SET lifecycle_stage = ?, deleted_time = ? WHERE experiment_id = ? AND "
        "lifecycle_stage = ?",
        {Value(to), to == kDeleted ? Value(now) : Value(), Value(id), Value(from)});
  });
}

}  // namespace

Status TrackingService::DeleteExperiment(const std::string& experiment_id) {
  return SetExperimentStage(db_, clock_, experiment_id, kActive, kDeleted);
}

Status TrackingService::RestoreExperiment(const std::string& experiment_id) {
  return SetExperimentStage(db_, clock_, experiment_id, kDeleted, kActive);
}

Status TrackingService::SetExperimentTag(const std::string& experiment_id, const Tag& tag) {
  KEEL_ASSIGN_OR_RETURN(int64_t id, ParseExperimentId(experiment_id));
  KEEL_RETURN_IF_ERROR(ValidateTag(tag));
  return db_.Write([&](Connection& c) -> Status {
    std::string stage;
    KEEL_RETURN_IF_ERROR(c.Query("SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?",
                                 {Value(id)}, [&](const RowView& r) {
                                   stage = std::string(r.Text(0));
                                   return OkStatus();
                                 }));
    if (stage.empty()) return NotFound("No Experiment with id=" + experiment_id + " exists");
    if (stage != kActive) {
      return InvalidArgument("The experiment " + experiment_id +
                             " must be in the 'active' state. Current state is " + stage + ".");
    }
    return c.Exec(
        "INSERT INTO experiment_tags(experiment_id, key, value) VALUES (?, ?, ?) ON CONFLICT "
        "(experiment_id, key) DO UPDATE SET value = excluded.value",
        {Value(id), Value(std::string_view(tag.key)), Value(std::string_view(tag.value))});
  });
}

// ----------------------------------------------------------------------- runs

Result<Run> TrackingService::CreateRun(const CreateRunRequest& request) {
  KEEL_ASSIGN_OR_RETURN(int64_t exp_id, ParseExperimentId(request.experiment_id));
  for (const Tag& t : request.tags) KEEL_RETURN_IF_ERROR(ValidateTag(t));
  Run run;
  run.info.run_id = RandomHex(16);
  run.info.experiment_id = request.experiment_id;
  run.info.user_id = request.user_id;
  run.info.status = "RUNNING";
  run.info.start_time = request.start_time.value_or(clock_.NowMillis());
  run.info.lifecycle_stage = std::string(kActive);
  // Name: explicit, else the mlflow.runName tag, else generated; the two must agree.
  std::string name = request.run_name;
  for (const Tag& t : request.tags) {
    if (t.key != "mlflow.runName") continue;
    if (!request.run_name.empty() && t.value != request.run_name) {
      return InvalidArgument("Both 'run_name' argument and 'mlflow.runName' tag are specified, "
                             "but with different values (run_name='" + request.run_name +
                             "', mlflow.runName='" + t.value + "').");
    }
    if (name.empty()) name = t.value;
  }
  if (name.empty()) name = internal::GenerateRunName();
  run.info.run_name = name;
  run.tags = request.tags;
  bool has_name_tag = false;
  for (Tag& t : run.tags) {
    if (t.key == "mlflow.runName") {
      t.value = name;
      has_name_tag = true;
    }
  }
  if (!has_name_tag) run.tags.push_back({"mlflow.runName", name});

  KEEL_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    std::string location, stage;
    KEEL_RETURN_IF_ERROR(c.Query(
        "SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ?",
        {Value(exp_id)}, [&](const RowView& r) {
          location = std::string(r.Text(0));
          stage = std::string(r.Text(1));
          return OkStatus();
        }));
    if (stage.empty()) return NotFound("No Experiment with id=" + request.experiment_id + " exists");
    if (stage != kActive) {
      return InvalidArgument("The experiment " + request.experiment_id +
                             " must be in the 'active' state. Current state is " + stage + ".");
    }
    run.info.artifact_uri = location + "/" + run.info.run_id + "/artifacts";
    KEEL_ASSIGN_OR_RETURN(int64_t key, store::NextSequenceValue(c, "run_key"));
    KEEL_RETURN_IF_ERROR(c.Exec(
        "INSERT INTO runs(run_key, run_uuid, experiment_id, name, user_id, status, start_time, "
        "end_time, lifecycle_stage, artifact_uri) VALUES (?, ?, ?, ?, ?, 'RUNNING', ?, NULL, "
        "'active', ?)",
        {Value(key), Value(std::string_view(run.info.run_id)), Value(exp_id),
         Value(std::string_view(name)), Value(std::string_view(run.info.user_id)),
         Value(*run.info.start_time), Value(std::string_view(run.info.artifact_uri))}));
    for (const Tag& t : run.tags) KEEL_RETURN_IF_ERROR(UpsertTag(c, key, t));
    return OkStatus();
  }));
  return run;
}

Result<Run> TrackingService::GetRun(const std::string& run_id) {
  std::vector<Run> runs(1);
  std::vector<int64_t> keys;
  KEEL_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(c.Query(std::string("SELECT ") + kRunColumns +
                                     " FROM runs r WHERE r.run_uuid = ?",
                                 {Value(std::string_view(run_id))}, [&](const RowView& r) {
                                   runs[0].info = ReadRunInfo(r);
                                   keys.push_back(r.Int(0));
                                   return OkStatus();
                                 }));
    if (keys.empty()) return NotFound("Run with id=" + run_id + " not found");
    return LoadRunData(c, keys, runs);
  }));
  return std::move(runs[0]);
}

Result<RunInfo> TrackingService::UpdateRun(const UpdateRunRequest& request) {
  if (request.status) KEEL_RETURN_IF_ERROR(ValidateRunStatus(*request.status));
  KEEL_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(RunRef ref, FindActiveRun(c, request.run_id));
    if (request.status) {
      KEEL_RETURN_IF_ERROR(c.Exec("UPDATE runs SET status = ? WHERE run_key = ?",
                                  {Value(std::string_view(*request.status)), Value(ref.run_key)}));
      if (*request.status == "RUNNING") {
        KEEL_RETURN_IF_ERROR(
            c.Exec("UPDATE runs SET end_time = NULL WHERE run_key = ?", {Value(ref.run_key)}));
      }
    }
    if (request.end_time) {
      KEEL_RETURN_IF_ERROR(c.Exec("UPDATE runs SET end_time = ? WHERE run_key = ?",
                                  {Value(*request.end_time), Value(ref.run_key)}));
    } else if (request.status && IsTerminal(*request.status)) {
      KEEL_RETURN_IF_ERROR(c.Exec("UPDATE runs SET end_time = ? WHERE run_key = ?",
                                  {Value(clock_.NowMillis()), Value(ref.run_key)}));
    }
    if (request.run_name && !request.run_name->empty()) {
      KEEL_RETURN_IF_ERROR(SetTags(c, ref, {{"mlflow.runName", *request.run_name}}));
    }
    return OkStatus();
  }));
  KEEL_ASSIGN_OR_RETURN(Run run, GetRun(request.run_id));
  return run.info;
}

namespace {

Status SetRunStage(store::Database& db, const Clock& clock, const std::string& run_id,
                   std::string_view to) {
  return db.Write([&](Connection& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(RunRef ref, FindRun(c, run_id));
    return c.Exec("UPDATE runs SET lifecycle_stage = ?, deleted_time = ? WHERE run_key = ?",
                  {Value(to), to == kDeleted ? Value(clock.NowMillis()) : Value(),
                   Value(ref.run_key)});
  });
}

}  // namespace

Status TrackingService::DeleteRun(const std::string& run_id) {
  return SetRunStage(db_, clock_, run_id, kDeleted);
}

Status TrackingService::RestoreRun(const std::string& run_id) {
  return SetRunStage(db_, clock_, run_id, kActive);
}

Status TrackingService::LogMetric(const std::string& run_id, const Metric& metric) {
  return LogBatch(run_id, {metric}, {}, {});
}

Status TrackingService::LogParam(const std::string& run_id, const Param& param) {
  return LogBatch(run_id, {}, {param}, {});
}

Status TrackingService::SetTag(const std::string& run_id, const Tag& tag) {
  return LogBatch(run_id, {}, {}, {tag});
}

Status TrackingService::DeleteTag(const std::string& run_id, const std::string& key) {
  return db_.Write([&](Connection& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(RunRef ref, FindActiveRun(c, run_id));
    KEEL_RETURN_IF_ERROR(c.Exec("DELETE FROM tags WHERE run_key = ? AND key = ?",
                                {Value(ref.run_key), Value(std::string_view(key))}));
    if (c.ChangedRows() == 0) {
      return NotFound("No tag with name: " + key + " in run with id " + run_id);
    }
    return OkStatus();
  });
}

Status TrackingService::LogBatch(const std::string& run_id, const std::vector<Metric>& metrics,
                                 const std::vector<Param>& params, const std::vector<Tag>& tags) {
  if (metrics.size() > kMaxMetricsPerBatch) {
    return InvalidArgument("A batch logging request can contain at most " +
                           std::to_string(kMaxMetricsPerBatch) + " metrics. Got " +
                           std::to_string(metrics.size()) +
                           " metrics. Please split up metrics across multiple requests and try "
                           "again.");
  }
  if (params.size() > kMaxParamsPerBatch) {
    return InvalidArgument("A batch logging request can contain at most " +
                           std::to_string(kMaxParamsPerBatch) + " params. Got " +
                           std::to_string(params.size()) +
                           " params. Please split up params across multiple requests and try "
                           "again.");
  }
  if (tags.size() > kMaxTagsPerBatch) {
    return InvalidArgument("A batch logging request can contain at most " +
                           std::to_string(kMaxTagsPerBatch) + " tags. Got " +
                           std::to_string(tags.size()) +
                           " tags. Please split up tags across multiple requests and try again.");
  }
  size_t total = metrics.size() + params.size() + tags.size();
  if (total > kMaxEntitiesPerBatch) {
    return InvalidArgument("A batch logging request can contain at most " +
                           std::to_string(kMaxEntitiesPerBatch) +
                           " total metrics, params, and tags. Got " + std::to_string(total) +
                           " total. Please split up across multiple requests and try again.");
  }
  for (const Metric& m : metrics) KEEL_RETURN_IF_ERROR(ValidateKey("metric", m.key));
  for (const Param& p : params) KEEL_RETURN_IF_ERROR(ValidateParam(p));
  for (const Tag& t : tags) KEEL_RETURN_IF_ERROR(ValidateTag(t));
  // Duplicate keys with different values in one request are an error (MLflow).
  if (params.size() > 1) {
    std::unordered_map<std::string_view, std::string_view> seen;
    for (const Param& p : params) {
      auto [it, inserted] = seen.emplace(p.key, p.value);
      if (!inserted && it->second != p.value) {
        return InvalidArgument("Duplicate parameter keys have been submitted: ['" + p.key +
                               "']. Please ensure the request contains only one param value per "
                               "param key.");
      }
    }
  }
  return db_.Write([&](Connection& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(RunRef ref, FindActiveRun(c, run_id));
    KEEL_RETURN_IF_ERROR(InsertParams(c, ref, run_id, params));
    KEEL_RETURN_IF_ERROR(InsertMetrics(c, ref, metrics));
    return SetTags(c, ref, tags);
  });
}

Status TrackingService::LogModel(const std::string& run_id, const std::string& model_json) {
  auto doc = ParseJsonObject(model_json);
  if (!doc.ok()) {
    return InvalidArgument("Malformed model info. \n" + model_json + "\n is not a valid JSON.");
  }
  for (const char* field : {"artifact_path", "flavors", "utc_time_created", "run_id"}) {
    simdjson::dom::element e;
    if (doc->root()[field].get(e)) {
      return InvalidArgument(std::string("Model json is missing mandatory fields: ['") + field +
                             "']");
    }
  }
  return db_.Write([&](Connection& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(RunRef ref, FindActiveRun(c, run_id));
    std::string history;
    KEEL_RETURN_IF_ERROR(c.Query("SELECT value FROM tags WHERE run_key = ? AND key = ?",
                                 {Value(ref.run_key), Value(std::string_view("mlflow.log-model.history"))},
                                 [&](const RowView& r) {
                                   history = std::string(r.Text(0));
                                   return OkStatus();
                                 }));
    if (history.size() >= 2 && history.front() == '[' && history.back() == ']') {
      history.pop_back();
      if (history.size() > 1) history += ", ";
      history += model_json + "]";
    } else {
      history = "[" + model_json + "]";
    }
    return UpsertTag(c, ref.run_key, {"mlflow.log-model.history", history});
  });
}

Status TrackingService::LogInputs(const std::string& run_id,
                                  const std::vector<DatasetInput>& inputs) {
  for (const auto& in : inputs) {
    if (in.dataset.name.empty() || in.dataset.digest.empty() || in.dataset.source_type.empty() ||
        in.dataset.source.empty()) {
      return InvalidArgument(
          "Dataset is missing a required field: name, digest, source_type and source are "
          "required");
    }
    for (const Tag& t : in.tags) KEEL_RETURN_IF_ERROR(ValidateTag(t));
  }
  return db_.Write([&](Connection& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(RunRef ref, FindActiveRun(c, run_id));
    for (const auto& in : inputs) {
      const Dataset& d = in.dataset;
      std::string uuid;
      KEEL_RETURN_IF_ERROR(c.Query(
          "SELECT dataset_uuid FROM datasets WHERE experiment_id = ? AND name = ? AND digest = ?",
          {Value(ref.experiment_id), Value(std::string_view(d.name)),
           Value(std::string_view(d.digest))},
          [&](const RowView& r) {
            uuid = std::string(r.Text(0));
            return OkStatus();
          }));
      if (uuid.empty()) {
        uuid = RandomHex(16);
        KEEL_RETURN_IF_ERROR(c.Exec(
            "INSERT INTO datasets(dataset_uuid, experiment_id, name, digest, source_type, source, "
            "schema_json, profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            {Value(uuid), Value(ref.experiment_id), Value(std::string_view(d.name)),
             Value(std::string_view(d.digest)), Value(std::string_view(d.source_type)),
             Value(std::string_view(d.source)), Value(std::string_view(d.schema)),
             Value(std::string_view(d.profile))}));
      }
      KEEL_RETURN_IF_ERROR(c.Exec(
          "INSERT INTO run_inputs(run_key, dataset_uuid) VALUES (?, ?) ON CONFLICT DO NOTHING",
          {Value(ref.run_key), Value(uuid)}));
      for (const Tag& t : in.tags) {
        KEEL_RETURN_IF_ERROR(c.Exec(
            "INSERT INTO run_input_tags(run_key, dataset_uuid, key, value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (run_key, dataset_uuid, key) DO UPDATE SET value = excluded.value",
            {Value(ref.run_key), Value(uuid), Value(std::string_view(t.key)),
             Value(std::string_view(t.value))}));
      }
    }
    return OkStatus();
  });
}

Result<MetricHistoryPage> TrackingService::GetMetricHistory(const std::string& run_id,
                                                            const std::string& key,
                                                            int64_t max_results,
                                                            const std::string& page_token) {
  if (max_results <= 0) max_results = 25000;
  KEEL_ASSIGN_OR_RETURN(int64_t offset, internal::DecodeOffsetToken(page_token));
  std::vector<internal::Point> points;
  KEEL_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(RunRef ref, FindRun(c, run_id));
    return c.Query("SELECT points FROM metric_chunks WHERE run_key = ? AND key = ? ORDER BY "
                   "chunk_id",
                   {Value(ref.run_key), Value(std::string_view(key))}, [&](const RowView& r) {
                     if (!internal::DecodePoints(r.Bytes(0), points)) {
                       return DataLoss("corrupt metric chunk for run " + run_id + " key " + key);
                     }
                     return OkStatus();
                   });
  }));
  // Order by (step, timestamp, value) with NaN first among equals, then drop identical points.
  auto less = [](const internal::Point& a, const internal::Point& b) {
    if (a.step != b.step) return a.step < b.step;
    if (a.timestamp != b.timestamp) return a.timestamp < b.timestamp;
    bool an = std::isnan(a.value), bn = std::isnan(b.value);
    if (an != bn) return an;
    return !an && a.value < b.value;
  };
  auto same = [](const internal::Point& a, const internal::Point& b) {
    return a.step == b.step && a.timestamp == b.timestamp &&
           (a.value == b.value || (std::isnan(a.value) && std::isnan(b.value)));
  };
  std::stable_sort(points.begin(), points.end(), less);
  points.erase(std::unique(points.begin(), points.end(), same), points.end());
  MetricHistoryPage page;
  size_t begin = std::min(points.size(), static_cast<size_t>(offset));
  size_t end = std::min(points.size(), begin + static_cast<size_t>(max_results));
  page.metrics.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) {
    page.metrics.push_back({key, points[i].value, points[i].timestamp, points[i].step});
  }
  if (end < points.size()) page.next_page_token = internal::EncodeOffsetToken(static_cast<int64_t>(end));
  return page;
}

Result<SearchRunsPage> TrackingService::SearchRuns(const SearchRunsRequest& req) {
  KEEL_RETURN_IF_ERROR(ValidateMaxResults(req.max_results));
  KEEL_ASSIGN_OR_RETURN(auto comparisons, internal::ParseRunFilter(req.filter));
  KEEL_ASSIGN_OR_RETURN(int64_t offset, internal::DecodeOffsetToken(req.page_token));
  std::vector<internal::OrderBy> orders;
  for (const auto& clause : req.order_by) {
    KEEL_ASSIGN_OR_RETURN(internal::OrderBy ob, internal::ParseRunOrderBy(clause));
    orders.push_back(std::move(ob));
  }
  SearchRunsPage page;
  if (req.experiment_ids.empty()) return page;

  std::vector<Value> params;
  std::string joins;
  std::string order_sql;
  // Joins for ORDER BY come first in the SQL, so their parameters bind first.
  for (size_t i = 0; i < orders.size(); ++i) {
    const auto& ob = orders[i];
    std::string alias = "o" + std::to_string(i);
    std::string dir = ob.ascending ? " ASC" : " DESC";
    switch (ob.entity) {
      case internal::Entity::kMetric:
        joins += " LEFT JOIN latest_metrics " + alias + " ON " + alias +
                 ".run_key = r.run_key AND " + alias + ".key = ?";
        params.emplace_back(ob.key);
        // Numbers first, then NaN, then runs without the metric (MLflow).
        order_sql += "CASE WHEN " + alias + ".is_nan = 1 THEN 1 WHEN " + alias +
                     ".value IS NULL THEN 2 ELSE 0 END, " + alias + ".value" + dir + ", ";
        break;
      case internal::Entity::kParam:
      case internal::Entity::kTag: {
        std::string table = ob.entity == internal::Entity::kParam ? "params" : "tags";
        joins += " LEFT JOIN " + table + " " + alias + " ON " + alias +
                 ".run_key = r.run_key AND " + alias + ".key = ?";
        params.emplace_back(ob.key);
        order_sql += "CASE WHEN " + alias + ".value IS NULL THEN 1 ELSE 0 END, " + alias +
                     ".value" + dir + ", ";
        break;
      }
      default: {
        std::string col = ob.key == "run_id" ? "run_uuid" : ob.key == "run_name" ? "name" : ob.key;
        order_sql += "CASE WHEN r." + col + " IS NULL THEN 1 ELSE 0 END, r." + col + dir + ", ";
        break;
      }
    }
  }
  order_sql += "r.start_time DESC, r.run_uuid ASC";

  std::string where = " WHERE r.experiment_id IN (";
  for (size_t i = 0; i < req.experiment_ids.size(); ++i) {
    auto id = ParseExperimentId(req.experiment_ids[i]);
    if (!id.ok()) return InvalidArgument("Invalid experiment id '" + req.experiment_ids[i] + "'");
    where += i ? ",?" : "?";
    params.emplace_back(*id);
  }
  where += ")";
  AppendLifecycleFilter(req.view, "r.lifecycle_stage", where);
  for (const auto& c : comparisons) {
    where += " AND ";
    switch (c.entity) {
      case internal::Entity::kMetric:
        where += "EXISTS (SELECT 1 FROM latest_metrics m WHERE m.run_key = r.run_key AND m.key = "
                 "? AND m.is_nan = 0 AND m.value " +
                 std::string(internal::OpSql(c.op)) + " ?)";
        params.emplace_back(c.key);
        params.emplace_back(std::get<double>(c.value));
        break;
      case internal::Entity::kParam:
      case internal::Entity::kTag: {
        std::string table = c.entity == internal::Entity::kParam ? "params" : "tags";
        // As in MLflow, != matches runs that have the key with another value.
        where += "EXISTS (SELECT 1 FROM " + table + " p WHERE p.run_key = r.run_key AND p.key = ? "
                 "AND ";
        params.emplace_back(c.key);
        internal::AppendStringPredicate("p.value", c, params, where);
        where += ")";
        break;
      }
      case internal::Entity::kDataset: {
        where += "EXISTS (SELECT 1 FROM run_inputs i JOIN datasets d ON d.dataset_uuid = "
                 "i.dataset_uuid ";
        if (c.key == "context") {
          where += "JOIN run_input_tags t ON t.run_key = i.run_key AND t.dataset_uuid = "
                   "i.dataset_uuid AND t.key = 'mlflow.data.context' WHERE i.run_key = r.run_key "
                   "AND ";
          internal::AppendStringPredicate("t.value", c, params, where);
        } else {
          where += "WHERE i.run_key = r.run_key AND ";
          internal::AppendStringPredicate("d." + c.key, c, params, where);
        }
        where += ")";
        break;
      }
      case internal::Entity::kAttribute: {
        if (internal::RunFilterSchema().IsNumeric(c.key)) {
          where += "r." + c.key + " " + std::string(internal::OpSql(c.op)) + " ?";
          params.emplace_back(std::get<double>(c.value));
        } else {
          std::string col = c.key == "run_id" ? "run_uuid" : c.key == "run_name" ? "name" : c.key;
          internal::AppendStringPredicate("r." + col, c, params, where);
        }
        break;
      }
    }
  }
  params.emplace_back(req.max_results + 1);
  params.emplace_back(offset);
  std::string sql = std::string("SELECT ") + kRunColumns + " FROM runs r" + joins + where +
                    " ORDER BY " + order_sql + " LIMIT ? OFFSET ?";
  std::vector<int64_t> keys;
  KEEL_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(c.Query(sql, params, [&](const RowView& r) {
      Run run;
      run.info = ReadRunInfo(r);
      keys.push_back(r.Int(0));
      page.runs.push_back(std::move(run));
      return OkStatus();
    }));
    if (static_cast<int64_t>(page.runs.size()) > req.max_results) {
      page.runs.pop_back();
      keys.pop_back();
      page.next_page_token = internal::EncodeOffsetToken(offset + req.max_results);
    }
    return LoadRunData(c, keys, page.runs);
  }));
  return page;
}

}  // namespace keel::tracking
