#include "keel/registry/registry.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>

#include "keel/core/json.h"
#include "keel/core/util.h"
#include "src/tracking/search_filter.h"

namespace keel::registry {

using store::Connection;
using store::RowView;
using store::Value;
namespace filter = tracking::internal;

namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
char ToLower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

Status RegisteredModelNotFound(const std::string& name) {
  return NotFound("Registered Model with name=" + name + " not found");
}

Status VersionNotFound(const std::string& name, const std::string& version) {
  return NotFound("Model Version (name=" + name + ", version=" + version + ") not found");
}

Result<int64_t> ParseVersion(const std::string& name, const std::string& version) {
  if (version.empty() || version.size() > 18 ||
      !std::all_of(version.begin(), version.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return InvalidArgument("Parameter 'version' must be an integer, got '" + version + "'.");
  }
  return std::stoll(version);
}

Status ValidateModelName(const std::string& name) {
  if (name.empty()) return InvalidArgument("Registered model name cannot be empty.");
  if (name.size() > 256) return InvalidArgument("Registered model name exceeds 256 characters.");
  if (name.find('/') != std::string::npos || name.find(':') != std::string::npos) {
    return InvalidArgument("Invalid registered model name '" + name +
                           "': names may not contain '/' or ':'.");
  }
  return OkStatus();
}

Status ValidateAlias(const std::string& alias) {
  if (alias.empty()) return InvalidArgument("Alias name cannot be empty.");
  if (alias.size() > 255) return InvalidArgument("Alias name exceeds 255 characters.");
  std::string lower = alias;
  std::transform(lower.begin(), lower.end(), lower.begin(), ToLower);
  bool version_like =
      lower.size() > 1 && lower[0] == 'v' && std::all_of(lower.begin() + 1, lower.end(), IsDigit);
  if (lower == "latest" || version_like) {
    return InvalidArgument("'" + alias +
                           "' is a reserved alias name: 'latest' and 'v<number>' are reserved.");
  }
  for (char c : alias) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) {
      return InvalidArgument("Invalid alias name '" + alias +
                             "': aliases may only contain alphanumerics, underscores and dashes.");
    }
  }
  return OkStatus();
}

constexpr const char* kVersionColumns =
    "v.name, v.version, v.creation_time, v.last_updated_time, v.description, v.user_id, "
    "v.current_stage, v.source, v.run_id, v.run_link, v.status, v.status_message";

ModelVersion ReadVersion(const RowView& r) {
  ModelVersion v;
  v.name = std::string(r.Text(0));
  v.version = std::to_string(r.Int(1));
  v.creation_timestamp = r.Int(2);
  v.last_updated_timestamp = r.Int(3);
  v.description = std::string(r.Text(4));
  v.user_id = std::string(r.Text(5));
  v.current_stage = std::string(r.Text(6));
  v.source = std::string(r.Text(7));
  v.run_id = std::string(r.Text(8));
  v.run_link = std::string(r.Text(9));
  v.status = std::string(r.Text(10));
  v.status_message = std::string(r.Text(11));
  return v;
}

// Loads tags and aliases of a version.
Status FillVersion(Connection& c, ModelVersion& v) {
  int64_t num = std::stoll(v.version);
  KEEL_RETURN_IF_ERROR(c.Query(
      "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ? ORDER BY key",
      {Value(std::string_view(v.name)), Value(num)}, [&](const RowView& r) {
        v.tags.push_back({std::string(r.Text(0)), std::string(r.Text(1))});
        return OkStatus();
      }));
  return c.Query(
      "SELECT alias FROM registered_model_aliases WHERE name = ? AND version = ? ORDER BY alias",
      {Value(std::string_view(v.name)), Value(num)}, [&](const RowView& r) {
        v.aliases.emplace_back(r.Text(0));
        return OkStatus();
      });
}

Result<ModelVersion> LoadVersion(Connection& c, const std::string& name, const std::string& version,
                                 bool with_details) {
  KEEL_ASSIGN_OR_RETURN(int64_t num, ParseVersion(name, version));
  std::optional<ModelVersion> v;
  KEEL_RETURN_IF_ERROR(c.Query(std::string("SELECT ") + kVersionColumns +
                                   " FROM model_versions v WHERE v.name = ? AND v.version = ?",
                               {Value(std::string_view(name)), Value(num)}, [&](const RowView& r) {
                                 v = ReadVersion(r);
                                 return OkStatus();
                               }));
  if (!v) return VersionNotFound(name, version);
  if (with_details) KEEL_RETURN_IF_ERROR(FillVersion(c, *v));
  return *v;
}

Status RequireModel(Connection& c, const std::string& name) {
  bool found = false;
  KEEL_RETURN_IF_ERROR(c.Query("SELECT 1 FROM registered_models WHERE name = ?",
                               {Value(std::string_view(name))}, [&](const RowView&) {
                                 found = true;
                                 return OkStatus();
                               }));
  return found ? OkStatus() : RegisteredModelNotFound(name);
}

Result<RegisteredModel> LoadModel(Connection& c, const std::string& name) {
  std::optional<RegisteredModel> m;
  KEEL_RETURN_IF_ERROR(c.Query(
      "SELECT name, creation_time, last_updated_time, description FROM registered_models WHERE "
      "name = ?",
      {Value(std::string_view(name))}, [&](const RowView& r) {
        RegisteredModel rm;
        rm.name = std::string(r.Text(0));
        rm.creation_timestamp = r.Int(1);
        rm.last_updated_timestamp = r.Int(2);
        rm.description = std::string(r.Text(3));
        m = std::move(rm);
        return OkStatus();
      }));
  if (!m) return RegisteredModelNotFound(name);
  // Newest version per stage.
  std::map<std::string, ModelVersion> latest;
  KEEL_RETURN_IF_ERROR(c.Query(std::string("SELECT ") + kVersionColumns +
                                   " FROM model_versions v WHERE v.name = ? ORDER BY v.version",
                               {Value(std::string_view(name))}, [&](const RowView& r) {
                                 ModelVersion v = ReadVersion(r);
                                 latest[v.current_stage] = std::move(v);
                                 return OkStatus();
                               }));
  std::vector<ModelVersion> versions;
  for (auto& [stage, v] : latest) versions.push_back(std::move(v));
  std::sort(versions.begin(), versions.end(), [](const ModelVersion& a, const ModelVersion& b) {
    return std::stoll(a.version) < std::stoll(b.version);
  });
  m->latest_versions = std::move(versions);
  KEEL_RETURN_IF_ERROR(
      c.Query("SELECT key, value FROM registered_model_tags WHERE name = ? ORDER BY key",
              {Value(std::string_view(name))}, [&](const RowView& r) {
                m->tags.push_back({std::string(r.Text(0)), std::string(r.Text(1))});
                return OkStatus();
              }));
  KEEL_RETURN_IF_ERROR(
      c.Query("SELECT alias, version FROM registered_model_aliases WHERE name = ? ORDER BY alias",
              {Value(std::string_view(name))}, [&](const RowView& r) {
                m->aliases.push_back({std::string(r.Text(0)), std::to_string(r.Int(1))});
                return OkStatus();
              }));
  return *m;
}

Status TouchModel(Connection& c, const std::string& name, int64_t now) {
  return c.Exec("UPDATE registered_models SET last_updated_time = ? WHERE name = ?",
                {Value(now), Value(std::string_view(name))});
}

Result<std::optional<int64_t>> CurrentAlias(Connection& c, const std::string& name,
                                            const std::string& alias) {
  std::optional<int64_t> version;
  KEEL_RETURN_IF_ERROR(c.Query(
      "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
      {Value(std::string_view(name)), Value(std::string_view(alias))}, [&](const RowView& r) {
        version = r.Int(0);
        return OkStatus();
      }));
  return version;
}

// Appends one alias_history row; returns its id.
Result<int64_t> RecordAliasChange(Connection& c, const std::string& name, const std::string& alias,
                                  std::optional<int64_t> from, std::optional<int64_t> to,
                                  const ChangeContext& ctx, int64_t now) {
  KEEL_ASSIGN_OR_RETURN(int64_t id, store::NextSequenceValue(c, "alias_history_id"));
  KEEL_RETURN_IF_ERROR(c.Exec(
      "INSERT INTO alias_history(id, name, alias, from_version, to_version, actor, reason, time) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      {Value(id), Value(std::string_view(name)), Value(std::string_view(alias)),
       from ? Value(*from) : Value(), to ? Value(*to) : Value(), Value(std::string_view(ctx.actor)),
       Value(std::string_view(ctx.reason)), Value(now)}));
  // Replicas following the alias hear of it on commit (PostgreSQL).
  KEEL_RETURN_IF_ERROR(c.NotifyChange(store::kAliasChannel, name));
  return id;
}

// Drops every alias of `name` (recording each in the history).
Status DropAliases(Connection& c, const std::string& name, std::optional<int64_t> version,
                   const ChangeContext& ctx, int64_t now) {
  std::vector<std::pair<std::string, int64_t>> aliases;
  std::string where = " WHERE name = ?";
  std::vector<Value> params{Value(std::string_view(name))};
  if (version) {
    where += " AND version = ?";
    params.emplace_back(*version);
  }
  KEEL_RETURN_IF_ERROR(c.Query("SELECT alias, version FROM registered_model_aliases" + where,
                               params, [&](const RowView& r) {
                                 aliases.emplace_back(std::string(r.Text(0)), r.Int(1));
                                 return OkStatus();
                               }));
  for (const auto& [alias, v] : aliases) {
    KEEL_RETURN_IF_ERROR(RecordAliasChange(c, name, alias, v, std::nullopt, ctx, now).status());
  }
  return c.Exec("DELETE FROM registered_model_aliases" + where, params);
}

Result<std::string> OrderSql(const std::vector<std::string>& order_by,
                             const std::vector<std::string_view>& allowed,
                             const std::string& prefix) {
  std::string out;
  for (const std::string& clause : order_by) {
    std::string text = clause;
    std::string lower = text;
    std::transform(lower.begin(), lower.end(), lower.begin(), ToLower);
    bool asc = true;
    if (lower.ends_with(" desc")) {
      asc = false;
      text.resize(text.size() - 5);
    } else if (lower.ends_with(" asc")) {
      text.resize(text.size() - 4);
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    std::string column = text == "timestamp" || text == "creation_timestamp" ? "creation_time"
                         : text == "last_updated_timestamp"                  ? "last_updated_time"
                         : text == "version_number"                          ? "version"
                                                                             : text;
    if (std::find(allowed.begin(), allowed.end(), column) == allowed.end()) {
      return InvalidArgument("Invalid order_by clause '" + clause + "'");
    }
    out += (out.empty() ? "" : ", ") + prefix + column + (asc ? " ASC" : " DESC");
  }
  return out;
}

}  // namespace

Result<std::string> CanonicalStage(std::string_view stage) {
  static const char* kStages[] = {"None", "Staging", "Production", "Archived"};
  for (const char* s : kStages) {
    std::string_view sv(s);
    if (sv.size() == stage.size() &&
        std::equal(sv.begin(), sv.end(), stage.begin(),
                   [](char a, char b) { return ToLower(a) == ToLower(b); })) {
      return std::string(sv);
    }
  }
  return InvalidArgument("Invalid Model Version stage: " + std::string(stage) +
                         ". Value must be one of None, Staging, Production, Archived.");
}

RegistryService::RegistryService(store::Database& db, const Clock& clock)
    : db_(db), clock_(clock) {}

Result<RegisteredModel> RegistryService::CreateRegisteredModel(const std::string& name,
                                                               const std::vector<Tag>& tags,
                                                               const std::string& description) {
  KEEL_RETURN_IF_ERROR(ValidateModelName(name));
  int64_t now = clock_.NowMillis();
  Status s = db_.Write([&](Connection& c) -> Status {
    Status exists = RequireModel(c, name);
    if (exists.ok()) return AlreadyExists("Registered Model (name=" + name + ") already exists.");
    KEEL_RETURN_IF_ERROR(
        c.Exec("INSERT INTO registered_models(name, creation_time, last_updated_time, description) "
               "VALUES (?, ?, ?, ?)",
               {Value(std::string_view(name)), Value(now), Value(now),
                Value(std::string_view(description))}));
    for (const Tag& t : tags) {
      KEEL_RETURN_IF_ERROR(
          c.Exec("INSERT INTO registered_model_tags(name, key, value) VALUES (?, ?, ?) ON CONFLICT "
                 "(name, key) DO UPDATE SET value = excluded.value",
                 {Value(std::string_view(name)), Value(std::string_view(t.key)),
                  Value(std::string_view(t.value))}));
    }
    return OkStatus();
  });
  KEEL_RETURN_IF_ERROR(s);
  return GetRegisteredModel(name);
}

Result<RegisteredModel> RegistryService::GetRegisteredModel(const std::string& name) {
  std::optional<RegisteredModel> m;
  KEEL_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(m, LoadModel(c, name));
    return OkStatus();
  }));
  return *m;
}

Result<RegisteredModelsPage> RegistryService::SearchRegisteredModels(const SearchRequest& req) {
  if (req.max_results <= 0 || req.max_results > 1000) {
    return InvalidArgument("Invalid value for max_results. It must be at most 1000, but got " +
                           std::to_string(req.max_results));
  }
  KEEL_ASSIGN_OR_RETURN(auto comparisons,
                        filter::ParseFilter(req.filter, filter::RegisteredModelFilterSchema()));
  KEEL_ASSIGN_OR_RETURN(int64_t offset, filter::DecodeOffsetToken(req.page_token));
  KEEL_ASSIGN_OR_RETURN(
      std::string order,
      OrderSql(req.order_by, {"name", "creation_time", "last_updated_time"}, "m."));
  std::string sql = "SELECT m.name FROM registered_models m WHERE 1=1";
  std::vector<Value> params;
  for (const auto& c : comparisons) {
    sql += " AND ";
    if (c.entity == filter::Entity::kTag) {
      sql +=
          "EXISTS (SELECT 1 FROM registered_model_tags t WHERE t.name = m.name AND t.key = ? "
          "AND ";
      params.emplace_back(c.key);
      filter::AppendStringPredicate("t.value", c, params, sql);
      sql += ")";
    } else {
      filter::AppendStringPredicate("m.name", c, params, sql);
    }
  }
  sql += " ORDER BY " + (order.empty() ? std::string("m.name ASC") : order + ", m.name ASC") +
         " LIMIT ? OFFSET ?";
  params.emplace_back(req.max_results + 1);
  params.emplace_back(offset);
  RegisteredModelsPage page;
  KEEL_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    std::vector<std::string> names;
    KEEL_RETURN_IF_ERROR(c.Query(sql, params, [&](const RowView& r) {
      names.emplace_back(r.Text(0));
      return OkStatus();
    }));
    if (static_cast<int64_t>(names.size()) > req.max_results) {
      names.pop_back();
      page.next_page_token = filter::EncodeOffsetToken(offset + req.max_results);
    }
    for (const auto& n : names) {
      KEEL_ASSIGN_OR_RETURN(RegisteredModel m, LoadModel(c, n));
      page.models.push_back(std::move(m));
    }
    return OkStatus();
  }));
  return page;
}

Result<RegisteredModel> RegistryService::UpdateRegisteredModel(const std::string& name,
                                                               const std::string& description) {
  KEEL_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(RequireModel(c, name));
    return c.Exec(
        "UPDATE registered_models SET description = ?, last_updated_time = ? WHERE name = ?",
        {Value(std::string_view(description)), Value(clock_.NowMillis()),
         Value(std::string_view(name))});
  }));
  return GetRegisteredModel(name);
}

Result<RegisteredModel> RegistryService::RenameRegisteredModel(const std::string& name,
                                                               const std::string& new_name) {
  KEEL_RETURN_IF_ERROR(ValidateModelName(new_name));
  KEEL_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(RequireModel(c, name));
    if (RequireModel(c, new_name).ok()) {
      return AlreadyExists("Registered Model (name=" + new_name + ") already exists.");
    }
    Value from(std::string_view{name}), to(std::string_view{new_name});
    for (const char* table : {"registered_models", "registered_model_tags", "model_versions",
                              "model_version_tags", "registered_model_aliases", "alias_history"}) {
      KEEL_RETURN_IF_ERROR(
          c.Exec(std::string("UPDATE ") + table + " SET name = ? WHERE name = ?", {to, from}));
    }
    // Numbering continues above both names' numbers, so none is ever reused.
    int64_t last = 0;
    KEEL_RETURN_IF_ERROR(c.Query(
        "SELECT COALESCE(MAX(last_version), 0) FROM model_version_counters WHERE name IN (?, ?)",
        {from, to}, [&](const RowView& r) {
          last = r.Int(0);
          return OkStatus();
        }));
    KEEL_RETURN_IF_ERROR(
        c.Exec("DELETE FROM model_version_counters WHERE name IN (?, ?)", {from, to}));
    KEEL_RETURN_IF_ERROR(c.Exec(
        "INSERT INTO model_version_counters(name, last_version) VALUES (?, ?)", {to, Value(last)}));
    return TouchModel(c, new_name, clock_.NowMillis());
  }));
  return GetRegisteredModel(new_name);
}

Status RegistryService::DeleteRegisteredModel(const std::string& name) {
  int64_t now = clock_.NowMillis();
  return db_.Write([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(RequireModel(c, name));
    KEEL_RETURN_IF_ERROR(DropAliases(c, name, std::nullopt, {"keel", "model deleted"}, now));
    Value n(std::string_view{name});
    for (const char* table :
         {"registered_models", "registered_model_tags", "model_versions", "model_version_tags"}) {
      KEEL_RETURN_IF_ERROR(c.Exec(std::string("DELETE FROM ") + table + " WHERE name = ?", {n}));
    }
    return OkStatus();
  });
}

Status RegistryService::SetRegisteredModelTag(const std::string& name, const Tag& tag) {
  if (tag.key.empty() || tag.key.size() > 250) {
    return InvalidArgument("Invalid tag key '" + tag.key + "'");
  }
  return db_.Write([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(RequireModel(c, name));
    return c.Exec(
        "INSERT INTO registered_model_tags(name, key, value) VALUES (?, ?, ?) ON CONFLICT (name, "
        "key) DO UPDATE SET value = excluded.value",
        {Value(std::string_view(name)), Value(std::string_view(tag.key)),
         Value(std::string_view(tag.value))});
  });
}

Status RegistryService::DeleteRegisteredModelTag(const std::string& name, const std::string& key) {
  return db_.Write([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(RequireModel(c, name));
    KEEL_RETURN_IF_ERROR(c.Exec("DELETE FROM registered_model_tags WHERE name = ? AND key = ?",
                                {Value(std::string_view(name)), Value(std::string_view(key))}));
    if (c.ChangedRows() == 0) {
      return NotFound("No tag with key '" + key + "' on registered model " + name);
    }
    return OkStatus();
  });
}

Result<std::vector<ModelVersion>> RegistryService::GetLatestVersions(
    const std::string& name, const std::vector<std::string>& stages) {
  std::vector<std::string> canonical;
  for (const auto& s : stages) {
    KEEL_ASSIGN_OR_RETURN(std::string st, CanonicalStage(s));
    canonical.push_back(std::move(st));
  }
  KEEL_ASSIGN_OR_RETURN(RegisteredModel m, GetRegisteredModel(name));
  std::vector<ModelVersion> out;
  for (auto& v : m.latest_versions) {
    if (canonical.empty() ||
        std::find(canonical.begin(), canonical.end(), v.current_stage) != canonical.end()) {
      out.push_back(std::move(v));
    }
  }
  return out;
}

Result<ModelVersion> RegistryService::CreateModelVersion(const CreateVersionRequest& req) {
  if (req.source.empty()) return InvalidArgument("Missing value for required parameter 'source'.");
  int64_t now = clock_.NowMillis();
  int64_t version = 0;
  KEEL_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(RequireModel(c, req.name));
    Value n(std::string_view{req.name});
    KEEL_RETURN_IF_ERROR(c.Exec(
        "INSERT INTO model_version_counters(name, last_version) VALUES (?, 0) ON CONFLICT (name) "
        "DO NOTHING",
        {n}));
    KEEL_RETURN_IF_ERROR(
        c.Query("UPDATE model_version_counters SET last_version = last_version + 1 WHERE name = ? "
                "RETURNING last_version",
                {n}, [&](const RowView& r) {
                  version = r.Int(0);
                  return OkStatus();
                }));
    KEEL_RETURN_IF_ERROR(c.Exec(
        "INSERT INTO model_versions(name, version, creation_time, last_updated_time, "
        "description, user_id, current_stage, source, run_id, run_link, status, status_message) "
        "VALUES (?, ?, ?, ?, ?, ?, 'None', ?, ?, ?, ?, '')",
        {n, Value(version), Value(now), Value(now), Value(std::string_view(req.description)),
         Value(std::string_view(req.user_id)), Value(std::string_view(req.source)),
         Value(std::string_view(req.run_id)), Value(std::string_view(req.run_link)),
         Value(std::string_view(validator_ ? "PENDING_REGISTRATION" : "READY"))}));
    for (const Tag& t : req.tags) {
      KEEL_RETURN_IF_ERROR(c.Exec(
          "INSERT INTO model_version_tags(name, version, key, value) VALUES (?, ?, ?, ?) ON "
          "CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
          {n, Value(version), Value(std::string_view(t.key)), Value(std::string_view(t.value))}));
    }
    return TouchModel(c, req.name, now);
  }));
  if (validator_) {
    KEEL_ASSIGN_OR_RETURN(ModelVersion pending, GetModelVersion(req.name, std::to_string(version)));
    Status valid;
    try {
      valid = validator_(pending);
    } catch (const std::exception& e) {
      valid = Internal(std::string("model check failed: ") + e.what());
    }
    KEEL_RETURN_IF_ERROR(SetVersionStatus(req.name, version,
                                          valid.ok() ? "READY" : "FAILED_REGISTRATION",
                                          valid.ok() ? "" : valid.message()));
  }
  return GetModelVersion(req.name, std::to_string(version));
}

Status RegistryService::SetVersionStatus(const std::string& name, int64_t version,
                                         const std::string& status, const std::string& message) {
  // Part of creating the version: last_updated_time stays the creation time,
  // as MLflow reports it for a new version. Only while it is pending: a
  // version given up as abandoned (AbandonPendingVersion) stays so.
  return db_.Write([&](Connection& c) -> Status {
    return c.Exec(
        "UPDATE model_versions SET status = ?, status_message = ? WHERE status = "
        "'PENDING_REGISTRATION' AND name = ? AND "
        "version = ?",
        {Value(std::string_view(status)), Value(std::string_view(message)),
         Value(std::string_view(name)), Value(version)});
  });
}

Result<bool> RegistryService::AbandonPendingVersion(const std::string& name,
                                                    const std::string& version,
                                                    const std::string& message) {
  int64_t number = 0;
  const auto [end, ec] = std::from_chars(version.data(), version.data() + version.size(), number);
  if (ec != std::errc() || end != version.data() + version.size()) {
    return InvalidArgument("model version must be an integer, got '" + version + "'");
  }
  bool abandoned = false;
  KEEL_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(
        c.Exec("UPDATE model_versions SET status = 'FAILED_REGISTRATION', status_message = ? WHERE "
               "name = ? AND version = ? AND status = 'PENDING_REGISTRATION'",
               {Value(std::string_view(message)), Value(std::string_view(name)), Value(number)}));
    abandoned = c.ChangedRows() > 0;
    return OkStatus();
  }));
  return abandoned;
}

Result<ModelVersion> RegistryService::GetModelVersion(const std::string& name,
                                                      const std::string& version) {
  std::optional<ModelVersion> v;
  KEEL_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(v, LoadVersion(c, name, version, true));
    return OkStatus();
  }));
  return *v;
}

Result<ModelVersion> RegistryService::UpdateModelVersion(const std::string& name,
                                                         const std::string& version,
                                                         const std::string& description) {
  KEEL_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(ModelVersion v, LoadVersion(c, name, version, false));
    return c.Exec(
        "UPDATE model_versions SET description = ?, last_updated_time = ? WHERE name = ? AND "
        "version = ?",
        {Value(std::string_view(description)), Value(clock_.NowMillis()),
         Value(std::string_view(name)), Value(std::stoll(version))});
  }));
  return GetModelVersion(name, version);
}

Status RegistryService::DeleteModelVersion(const std::string& name, const std::string& version) {
  int64_t now = clock_.NowMillis();
  return db_.Write([&](Connection& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(ModelVersion v, LoadVersion(c, name, version, false));
    Value n(std::string_view{name});
    Value num(std::stoll(version));
    // Aliases pointing at the version go with it; the history records that.
    KEEL_RETURN_IF_ERROR(DropAliases(c, name, std::get<int64_t>(num),
                                     {"keel", "model version " + version + " deleted"}, now));
    KEEL_RETURN_IF_ERROR(
        c.Exec("DELETE FROM model_version_tags WHERE name = ? AND version = ?", {n, num}));
    KEEL_RETURN_IF_ERROR(
        c.Exec("DELETE FROM model_versions WHERE name = ? AND version = ?", {n, num}));
    return TouchModel(c, name, now);
  });
}

Status RegistryService::SetModelVersionTag(const std::string& name, const std::string& version,
                                           const Tag& tag) {
  if (tag.key.empty() || tag.key.size() > 250) {
    return InvalidArgument("Invalid tag key '" + tag.key + "'");
  }
  return db_.Write([&](Connection& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(ModelVersion v, LoadVersion(c, name, version, false));
    return c.Exec(
        "INSERT INTO model_version_tags(name, version, key, value) VALUES (?, ?, ?, ?) ON "
        "CONFLICT (name, version, key) DO UPDATE SET value = excluded.value",
        {Value(std::string_view(name)), Value(std::stoll(version)),
         Value(std::string_view(tag.key)), Value(std::string_view(tag.value))});
  });
}

Status RegistryService::DeleteModelVersionTag(const std::string& name, const std::string& version,
                                              const std::string& key) {
  return db_.Write([&](Connection& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(ModelVersion v, LoadVersion(c, name, version, false));
    KEEL_RETURN_IF_ERROR(c.Exec(
        "DELETE FROM model_version_tags WHERE name = ? AND version = ? AND key = ?",
        {Value(std::string_view(name)), Value(std::stoll(version)), Value(std::string_view(key))}));
    if (c.ChangedRows() == 0) {
      return NotFound("No tag with key '" + key + "' on model version " + name + "/" + version);
    }
    return OkStatus();
  });
}

Result<ModelVersionsPage> RegistryService::SearchModelVersions(const SearchRequest& req) {
  if (req.max_results <= 0 || req.max_results > 200000) {
    return InvalidArgument("Invalid value for max_results: " + std::to_string(req.max_results));
  }
  KEEL_ASSIGN_OR_RETURN(auto comparisons,
                        filter::ParseFilter(req.filter, filter::ModelVersionFilterSchema()));
  KEEL_ASSIGN_OR_RETURN(int64_t offset, filter::DecodeOffsetToken(req.page_token));
  KEEL_ASSIGN_OR_RETURN(
      std::string order,
      OrderSql(req.order_by, {"name", "version", "creation_time", "last_updated_time"}, "v."));
  std::string sql = std::string("SELECT ") + kVersionColumns + " FROM model_versions v WHERE 1=1";
  std::vector<Value> params;
  for (const auto& c : comparisons) {
    sql += " AND ";
    if (c.entity == filter::Entity::kTag) {
      sql +=
          "EXISTS (SELECT 1 FROM model_version_tags t WHERE t.name = v.name AND t.version = "
          "v.version AND t.key = ? AND ";
      params.emplace_back(c.key);
      filter::AppendStringPredicate("t.value", c, params, sql);
      sql += ")";
    } else if (c.key == "version_number") {
      sql += "v.version " + std::string(filter::OpSql(c.op)) + " ?";
      params.emplace_back(std::get<double>(c.value));
    } else {
      filter::AppendStringPredicate(c.key == "source_path" ? "v.source" : "v." + c.key, c, params,
                                    sql);
    }
  }
  sql += " ORDER BY " + (order.empty() ? std::string() : order + ", ") +
         "v.name ASC, v.version DESC LIMIT ? OFFSET ?";
  params.emplace_back(req.max_results + 1);
  params.emplace_back(offset);
  ModelVersionsPage page;
  KEEL_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(c.Query(sql, params, [&](const RowView& r) {
      page.versions.push_back(ReadVersion(r));
      return OkStatus();
    }));
    if (static_cast<int64_t>(page.versions.size()) > req.max_results) {
      page.versions.pop_back();
      page.next_page_token = filter::EncodeOffsetToken(offset + req.max_results);
    }
    for (auto& v : page.versions) KEEL_RETURN_IF_ERROR(FillVersion(c, v));
    return OkStatus();
  }));
  return page;
}

Result<std::string> RegistryService::GetDownloadUri(const std::string& name,
                                                    const std::string& version) {
  KEEL_ASSIGN_OR_RETURN(ModelVersion v, GetModelVersion(name, version));
  return v.source;
}

Result<ModelVersion> RegistryService::TransitionStage(const std::string& name,
                                                      const std::string& version,
                                                      const std::string& stage,
                                                      bool archive_existing) {
  KEEL_ASSIGN_OR_RETURN(std::string canonical, CanonicalStage(stage));
  int64_t now = clock_.NowMillis();
  KEEL_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    KEEL_ASSIGN_OR_RETURN(ModelVersion v, LoadVersion(c, name, version, false));
    Value n(std::string_view{name});
    if (archive_existing && (canonical == "Staging" || canonical == "Production")) {
      KEEL_RETURN_IF_ERROR(c.Exec(
          "UPDATE model_versions SET current_stage = 'Archived', last_updated_time = ? WHERE "
          "name = ? AND current_stage = ? AND version != ?",
          {Value(now), n, Value(std::string_view(canonical)), Value(std::stoll(version))}));
    }
    KEEL_RETURN_IF_ERROR(c.Exec(
        "UPDATE model_versions SET current_stage = ?, last_updated_time = ? WHERE name = ? AND "
        "version = ?",
        {Value(std::string_view(canonical)), Value(now), n, Value(std::stoll(version))}));
    return TouchModel(c, name, now);
  }));
  return GetModelVersion(name, version);
}

Status RegistryService::SetAlias(const std::string& name, const std::string& alias,
                                 const std::string& version, const ChangeContext& context) {
  return SetAliasChecked(name, alias, nullptr, version, context);
}

Status RegistryService::SetAliasIf(const std::string& name, const std::string& alias,
                                   const std::optional<std::string>& expected,
                                   const std::string& version, const ChangeContext& context) {
  return SetAliasChecked(name, alias, &expected, version, context);
}

Status RegistryService::SetAliasChecked(const std::string& name, const std::string& alias,
                                        const std::optional<std::string>* expected,
                                        const std::string& version, const ChangeContext& context) {
  KEEL_RETURN_IF_ERROR(ValidateAlias(alias));
  int64_t now = clock_.NowMillis();
  KEEL_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(RequireModel(c, name));
    KEEL_ASSIGN_OR_RETURN(ModelVersion v, LoadVersion(c, name, version, false));
    int64_t num = std::stoll(version);
    KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> current, CurrentAlias(c, name, alias));
    if (expected != nullptr) {
      const std::optional<std::string> now_at =
          current ? std::optional<std::string>(std::to_string(*current)) : std::nullopt;
      if (now_at != *expected) {
        return FailedPrecondition(
            name + "@" + alias + " is " + (now_at ? "version " + *now_at : std::string("unset")) +
            ", not " + (*expected ? "version " + **expected : std::string("unset")) +
            " as expected: it was moved meanwhile");
      }
    }
    if (current && *current == num) return OkStatus();  // no change, no history entry
    KEEL_RETURN_IF_ERROR(c.Exec(
        "INSERT INTO registered_model_aliases(name, alias, version) VALUES (?, ?, ?) ON CONFLICT "
        "(name, alias) DO UPDATE SET version = excluded.version",
        {Value(std::string_view(name)), Value(std::string_view(alias)), Value(num)}));
    return RecordAliasChange(c, name, alias, current, num, context, now).status();
  }));
  NotifyAlias(name, alias);
  return OkStatus();
}

Status RegistryService::DeleteAlias(const std::string& name, const std::string& alias,
                                    const ChangeContext& context) {
  return DeleteAliasChecked(name, alias, nullptr, context);
}

Status RegistryService::DeleteAliasIf(const std::string& name, const std::string& alias,
                                      const std::string& expected, const ChangeContext& context) {
  return DeleteAliasChecked(name, alias, &expected, context);
}

Status RegistryService::DeleteAliasChecked(const std::string& name, const std::string& alias,
                                           const std::string* expected,
                                           const ChangeContext& context) {
  int64_t now = clock_.NowMillis();
  KEEL_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(RequireModel(c, name));
    KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> current, CurrentAlias(c, name, alias));
    if (expected != nullptr && (!current || std::to_string(*current) != *expected)) {
      return FailedPrecondition(name + "@" + alias + " is " +
                                (current ? "version " + std::to_string(*current) : "unset") +
                                ", not version " + *expected +
                                " as expected: it was moved meanwhile");
    }
    if (!current) return OkStatus();  // MLflow: deleting a missing alias succeeds
    KEEL_RETURN_IF_ERROR(c.Exec("DELETE FROM registered_model_aliases WHERE name = ? AND alias = ?",
                                {Value(std::string_view(name)), Value(std::string_view(alias))}));
    return RecordAliasChange(c, name, alias, current, std::nullopt, context, now).status();
  }));
  NotifyAlias(name, alias);
  return OkStatus();
}

Result<ModelVersion> RegistryService::GetVersionByAlias(const std::string& name,
                                                        const std::string& alias) {
  std::optional<ModelVersion> v;
  KEEL_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(RequireModel(c, name));
    KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> current, CurrentAlias(c, name, alias));
    if (!current) {
      // MLflow answers an unknown alias with 400 INVALID_PARAMETER_VALUE; clients rely on it.
      return InvalidArgument("Registered model alias " + alias + " not found.");
    }
    KEEL_ASSIGN_OR_RETURN(v, LoadVersion(c, name, std::to_string(*current), true));
    return OkStatus();
  }));
  return *v;
}

Result<std::vector<AliasChange>> RegistryService::AliasHistory(const std::string& name,
                                                               const std::string& alias) {
  std::vector<AliasChange> out;
  KEEL_RETURN_IF_ERROR(db_.Read([&](Connection& c) -> Status {
    std::string sql =
        "SELECT id, name, alias, from_version, to_version, actor, reason, time FROM "
        "alias_history WHERE name = ?";
    std::vector<Value> params{Value(std::string_view(name))};
    if (!alias.empty()) {
      sql += " AND alias = ?";
      params.emplace_back(std::string_view(alias));
    }
    sql += " ORDER BY id DESC";
    return c.Query(sql, params, [&](const RowView& r) {
      AliasChange ch;
      ch.id = r.Int(0);
      ch.name = std::string(r.Text(1));
      ch.alias = std::string(r.Text(2));
      if (!r.IsNull(3)) ch.from_version = std::to_string(r.Int(3));
      if (!r.IsNull(4)) ch.to_version = std::to_string(r.Int(4));
      ch.actor = std::string(r.Text(5));
      ch.reason = std::string(r.Text(6));
      ch.time = r.Int(7);
      out.push_back(std::move(ch));
      return OkStatus();
    });
  }));
  return out;
}

Result<AliasChange> RegistryService::Rollback(const std::string& name, const std::string& alias,
                                              const ChangeContext& context) {
  int64_t now = clock_.NowMillis();
  AliasChange change;
  KEEL_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(RequireModel(c, name));
    KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> current, CurrentAlias(c, name, alias));
    if (!current) {
      return FailedPrecondition("Alias " + name + "@" + alias + " does not exist.");
    }
    // The last change that moved the alias to its current value tells where it
    // came from; a history that does not end at the current value (e.g. rows of
    // a deleted model of the same name) is not trusted.
    std::optional<int64_t> previous, last_to;
    bool found = false;
    KEEL_RETURN_IF_ERROR(c.Query(
        "SELECT from_version, to_version FROM alias_history WHERE name = ? AND alias = ? ORDER BY "
        "id DESC LIMIT 1",
        {Value(std::string_view(name)), Value(std::string_view(alias))}, [&](const RowView& r) {
          found = true;
          if (!r.IsNull(0)) previous = r.Int(0);
          if (!r.IsNull(1)) last_to = r.Int(1);
          return OkStatus();
        }));
    if (!found || !previous || last_to != current) {
      return FailedPrecondition("Alias " + name + "@" + alias +
                                " has no previous version to roll back to.");
    }
    bool exists = false;
    KEEL_RETURN_IF_ERROR(c.Query("SELECT 1 FROM model_versions WHERE name = ? AND version = ?",
                                 {Value(std::string_view(name)), Value(*previous)},
                                 [&](const RowView&) {
                                   exists = true;
                                   return OkStatus();
                                 }));
    if (!exists) {
      return FailedPrecondition("Cannot roll back " + name + "@" + alias + " to version " +
                                std::to_string(*previous) + ": that version was deleted.");
    }
    KEEL_RETURN_IF_ERROR(c.Exec(
        "INSERT INTO registered_model_aliases(name, alias, version) VALUES (?, ?, ?) ON CONFLICT "
        "(name, alias) DO UPDATE SET version = excluded.version",
        {Value(std::string_view(name)), Value(std::string_view(alias)), Value(*previous)}));
    ChangeContext ctx = context;
    if (ctx.reason.empty()) ctx.reason = "rollback";
    KEEL_ASSIGN_OR_RETURN(change.id,
                          RecordAliasChange(c, name, alias, current, previous, ctx, now));
    change.name = name;
    change.alias = alias;
    if (current) change.from_version = std::to_string(*current);
    change.to_version = std::to_string(*previous);
    change.actor = ctx.actor;
    change.reason = ctx.reason;
    change.time = now;
    return OkStatus();
  }));
  NotifyAlias(name, alias);
  return change;
}

void RegistryService::NotifyAlias(const std::string& name, const std::string& alias) {
  if (alias_observer_) alias_observer_(name, alias);
}

Result<ModelVersion> RegistryService::ResolveModelUri(const std::string& uri) {
  constexpr std::string_view kPrefix = "models:/";
  std::string_view rest(uri);
  if (rest.starts_with(kPrefix)) rest.remove_prefix(kPrefix.size());
  if (rest.empty()) return InvalidArgument("Invalid model URI '" + uri + "'");
  size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    return GetVersionByAlias(std::string(rest.substr(0, at)), std::string(rest.substr(at + 1)));
  }
  size_t slash = rest.rfind('/');
  if (slash == std::string_view::npos) {
    return InvalidArgument("Invalid model URI '" + uri +
                           "': expected models:/name@alias or models:/name/version");
  }
  std::string name(rest.substr(0, slash));
  std::string ref(rest.substr(slash + 1));
  if (!ref.empty() && std::all_of(ref.begin(), ref.end(), IsDigit)) {
    return GetModelVersion(name, ref);
  }
  if (ref == "latest") {
    std::string quoted;
    for (char c : name) quoted += c == '\'' ? std::string("''") : std::string(1, c);
    KEEL_ASSIGN_OR_RETURN(
        auto page,
        SearchModelVersions({"name = '" + quoted + "'", 1, {"version_number DESC"}, ""}));
    if (page.versions.empty())
      return NotFound("Registered Model with name=" + name + " has no versions");
    return page.versions.front();
  }
  KEEL_ASSIGN_OR_RETURN(std::string stage, CanonicalStage(ref));
  KEEL_ASSIGN_OR_RETURN(auto versions, GetLatestVersions(name, {stage}));
  if (versions.empty()) return NotFound("No versions of model " + name + " in stage " + stage);
  return GetModelVersion(name, versions.front().version);
}

}  // namespace keel::registry
