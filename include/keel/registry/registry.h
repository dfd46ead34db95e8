// File: keel/registry/registry.h
//
// The model registry: registered models, numbered versions, stages, aliases
// and the audit trail of every alias change (with rollback).
//
//   keel::registry::RegistryService registry(db, clock);
//   KEEL_RETURN_IF_ERROR(registry.CreateRegisteredModel("churn", {}, "").status());
//   KEEL_ASSIGN_OR_RETURN(auto v, registry.CreateModelVersion({.name = "churn",
//                                                               .source = uri, .run_id = id}));
//   KEEL_RETURN_IF_ERROR(registry.SetAlias("churn", "champion", v.version,
//                                          {.actor = "alice", .reason = "AUC +0.01"}));
//   KEEL_ASSIGN_OR_RETURN(auto change, registry.Rollback("churn", "champion", {...}));
//
// Version numbers are per model, start at 1 and are never reused, even after
// the version or the whole model is deleted. Every SetAlias/DeleteAlias/
// Rollback appends one AliasChange record in the same transaction.
// Threads: all methods are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "keel/core/clock.h"
#include "keel/core/result.h"
#include "keel/store/store.h"
#include "keel/tracking/tracking.h"

namespace keel::registry {

using tracking::Tag;

struct ModelVersion {
  std::string name;
  std::string version;
  int64_t creation_timestamp = 0;
  int64_t last_updated_timestamp = 0;
  std::string description;
  std::string user_id;
  std::string current_stage;  // None | Staging | Production | Archived
  std::string source;
  std::string run_id;
  std::string run_link;
  std::string status;  // PENDING_REGISTRATION, READY or FAILED_REGISTRATION
  std::string status_message;
  std::vector<Tag> tags;
  std::vector<std::string> aliases;
};

struct AliasRef {
  std::string alias;
  std::string version;
};

struct RegisteredModel {
  std::string name;
  int64_t creation_timestamp = 0;
  int64_t last_updated_timestamp = 0;
  std::string description;
  std::vector<ModelVersion> latest_versions;  // newest per stage
  std::vector<Tag> tags;
  std::vector<AliasRef> aliases;
};

struct AliasChange {
  int64_t id = 0;
  std::string name;
  std::string alias;
  std::optional<std::string> from_version;  // nullopt: alias did not exist
  std::optional<std::string> to_version;    // nullopt: alias deleted
  std::string actor;
  std::string reason;
  int64_t time = 0;
};

// Who changes an alias and why (recorded in the alias history).
struct ChangeContext {
  std::string actor = "unknown";
  std::string reason;
};

struct CreateVersionRequest {
  std::string name;
  std::string source;
  std::string run_id;
  std::string run_link;
  std::string description;
  std::string user_id;
  std::vector<Tag> tags;
};

struct SearchRequest {
  std::string filter;
  int64_t max_results = 100;
  std::vector<std::string> order_by;
  std::string page_token;
};

struct RegisteredModelsPage {
  std::vector<RegisteredModel> models;
  std::string next_page_token;
};

struct ModelVersionsPage {
  std::vector<ModelVersion> versions;
  std::string next_page_token;
};

// Canonical stage name for case-insensitive input ("production" -> "Production").
Result<std::string> CanonicalStage(std::string_view stage);

// Checks a new version before it becomes READY (for example: the model loads
// and scores its input example). OK -> READY; an error -> FAILED_REGISTRATION
// with the error's message as status_message. Runs outside any transaction.
using VersionValidator = std::function<Status(const ModelVersion&)>;

// Told after an alias change has committed (SetAlias, DeleteAlias, Rollback),
// on the thread that made it; e.g. a serving engine in the same process
// re-reads the alias at once instead of at its next poll. Must not throw.
using AliasObserver = std::function<void(const std::string& name, const std::string& alias)>;

class RegistryService {
 public:
  RegistryService(store::Database& db, const Clock& clock);

  // Installs the validator CreateModelVersion runs. Call before serving
  // requests (not synchronized with concurrent CreateModelVersion calls).
  void SetVersionValidator(VersionValidator validator) { validator_ = std::move(validator); }
  // Installs the alias-change observer; same rule as SetVersionValidator.
  void SetAliasObserver(AliasObserver observer) { alias_observer_ = std::move(observer); }

  Result<RegisteredModel> CreateRegisteredModel(const std::string& name,
                                                const std::vector<Tag>& tags,
                                                const std::string& description);
  Result<RegisteredModel> GetRegisteredModel(const std::string& name);
  Result<RegisteredModelsPage> SearchRegisteredModels(const SearchRequest& request);
  Result<RegisteredModel> UpdateRegisteredModel(const std::string& name,
                                                const std::string& description);
  Result<RegisteredModel> RenameRegisteredModel(const std::string& name,
                                                const std::string& new_name);
  Status DeleteRegisteredModel(const std::string& name);
  Status SetRegisteredModelTag(const std::string& name, const Tag& tag);
  Status DeleteRegisteredModelTag(const std::string& name, const std::string& key);
  Result<std::vector<ModelVersion>> GetLatestVersions(const std::string& name,
                                                      const std::vector<std::string>& stages);

  // Creates the version as PENDING_REGISTRATION, runs the validator (if any)
  // and returns the version as READY or FAILED_REGISTRATION.
  Result<ModelVersion> CreateModelVersion(const CreateVersionRequest& request);
  Result<ModelVersion> GetModelVersion(const std::string& name, const std::string& version);
  // A version left PENDING_REGISTRATION by a process that died while
  // registering it becomes FAILED_REGISTRATION with `message` (compare-and-
  // set on the pending status). Returns whether it did.
  Result<bool> AbandonPendingVersion(const std::string& name, const std::string& version,
                                     const std::string& message);
  Result<ModelVersion> UpdateModelVersion(const std::string& name, const std::string& version,
                                          const std::string& description);
  Status DeleteModelVersion(const std::string& name, const std::string& version);
  Status SetModelVersionTag(const std::string& name, const std::string& version, const Tag& tag);
  Status DeleteModelVersionTag(const std::string& name, const std::string& version,
                               const std::string& key);
  Result<ModelVersionsPage> SearchModelVersions(const SearchRequest& request);
  Result<std::string> GetDownloadUri(const std::string& name, const std::string& version);
  Result<ModelVersion> TransitionStage(const std::string& name, const std::string& version,
                                       const std::string& stage, bool archive_existing);

  Status SetAlias(const std::string& name, const std::string& alias, const std::string& version,
                  const ChangeContext& context);
  // SetAlias only when the alias points at `expected` now (nullopt: the
  // alias must not exist), checked in the same transaction: a compare-and-set
  // for changes decided on an earlier reading. FailedPrecondition naming the
  // alias's current version otherwise.
  Status SetAliasIf(const std::string& name, const std::string& alias,
                    const std::optional<std::string>& expected, const std::string& version,
                    const ChangeContext& context);
  Status DeleteAlias(const std::string& name, const std::string& alias,
                     const ChangeContext& context);
  // Deletes the alias only while it points at `expected` (compare-and-
  // delete); FailedPrecondition naming where it points otherwise (unset
  // included).
  Status DeleteAliasIf(const std::string& name, const std::string& alias,
                       const std::string& expected, const ChangeContext& context);
  // An unknown alias is InvalidArgument (MLflow's 400 INVALID_PARAMETER_VALUE).
  Result<ModelVersion> GetVersionByAlias(const std::string& name, const std::string& alias);
  // Newest first; `alias` empty = all aliases of the model.
  Result<std::vector<AliasChange>> AliasHistory(const std::string& name, const std::string& alias);
  // Points `alias` back to the version it had before its last change.
  // FailedPrecondition when the alias does not exist, has no earlier version,
  // the earlier version was deleted, or the history does not end at the
  // alias's current version (rows left by a deleted model of the same name).
  Result<AliasChange> Rollback(const std::string& name, const std::string& alias,
                               const ChangeContext& context);
  // "models:/name@alias", "models:/name/3", "models:/name/Production".
  Result<ModelVersion> ResolveModelUri(const std::string& uri);

 private:
  Status SetVersionStatus(const std::string& name, int64_t version, const std::string& status,
                          const std::string& message);

  void NotifyAlias(const std::string& name, const std::string& alias);
  Status DeleteAliasChecked(const std::string& name, const std::string& alias,
                            const std::string* expected, const ChangeContext& context);
  Status SetAliasChecked(const std::string& name, const std::string& alias,
                         const std::optional<std::string>* expected, const std::string& version,
                         const ChangeContext& context);

  store::Database& db_;
  const Clock& clock_;
  VersionValidator validator_;
  AliasObserver alias_observer_;
};

}  // namespace keel::registry
