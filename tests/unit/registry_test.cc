#include "keel/registry/registry.h"

#include <gtest/gtest.h>

#include "tests/unit/test_util.h"

namespace keel::registry {
namespace {

using keel::testing::TempDir;

class RegistryTest : public ::testing::Test {
 protected:
  RegistryTest()
      : db_(keel::testing::OpenTestDb(dir_)), clock_(1'700'000'000'000), registry_(*db_, clock_) {
    EXPECT_TRUE(registry_.CreateRegisteredModel("churn", {}, "").ok());
  }

  std::string NewVersion() {
    clock_.Advance(1000);
    auto v = registry_.CreateModelVersion(
        {"churn", "mlflow-artifacts:/1/r/artifacts/model", "r", "", "", "alice", {}});
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? v->version : "";
  }

  TempDir dir_;
  std::unique_ptr<store::Database> db_;
  ManualClock clock_;
  RegistryService registry_;
};

TEST_F(RegistryTest, VersionNumbersAreNeverReused) {
  EXPECT_EQ(NewVersion(), "1");
  EXPECT_EQ(NewVersion(), "2");
  EXPECT_EQ(NewVersion(), "3");
  ASSERT_OK(registry_.DeleteModelVersion("churn", "3"));
  EXPECT_EQ(NewVersion(), "4");
  ASSERT_OK(registry_.DeleteRegisteredModel("churn"));
  EXPECT_EQ(registry_.GetRegisteredModel("churn").status().message(),
            "Registered Model with name=churn not found");
  ASSERT_TRUE(registry_.CreateRegisteredModel("churn", {}, "").ok());
  EXPECT_EQ(NewVersion(), "5");
}

TEST_F(RegistryTest, NewVersionIsReadyInStageNone) {
  NewVersion();
  auto v = registry_.GetModelVersion("churn", "1");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->status, "READY");
  EXPECT_EQ(v->current_stage, "None");
  EXPECT_EQ(registry_.GetModelVersion("churn", "9").status().message(),
            "Model Version (name=churn, version=9) not found");
  EXPECT_EQ(registry_.CreateRegisteredModel("churn", {}, "").status().code(),
            StatusCode::kAlreadyExists);
}

// A version given up while it was being registered (its registering process
// taken for dead: AbandonPendingVersion) stays FAILED_REGISTRATION when the
// registration ends after all; only pending versions are abandoned.
TEST_F(RegistryTest, AnAbandonedRegistrationStaysFailed) {
  registry_.SetVersionValidator([this](const ModelVersion& pending) {
    auto abandoned = registry_.AbandonPendingVersion(pending.name, pending.version, "given up");
    EXPECT_TRUE(abandoned.ok() && *abandoned);
    return OkStatus();  // the check itself passes
  });
  auto v = registry_.CreateModelVersion(
      {"churn", "mlflow-artifacts:/1/r/artifacts/model", "r", "", "", "alice", {}});
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->status, "FAILED_REGISTRATION");
  EXPECT_EQ(v->status_message, "given up");
  registry_.SetVersionValidator(nullptr);
  const std::string ready = NewVersion();
  auto again = registry_.AbandonPendingVersion("churn", ready, "too late");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  EXPECT_EQ(registry_.GetModelVersion("churn", ready)->status, "READY");
  EXPECT_EQ(registry_.AbandonPendingVersion("churn", "x", "bad").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(RegistryTest, StagesAndLatestVersions) {
  NewVersion();
  NewVersion();
  ASSERT_TRUE(registry_.TransitionStage("churn", "1", "production", false).ok());
  auto v2 = registry_.TransitionStage("churn", "2", "PRODUCTION", true);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->current_stage, "Production");
  EXPECT_EQ(registry_.GetModelVersion("churn", "1")->current_stage, "Archived");
  auto latest = registry_.GetLatestVersions("churn", {"Production"});
  ASSERT_EQ(latest->size(), 1u);
  EXPECT_EQ((*latest)[0].version, "2");
  EXPECT_FALSE(registry_.TransitionStage("churn", "1", "Shipping", false).ok());
}

TEST_F(RegistryTest, AliasChangesAreRecordedAndRollBack) {
  NewVersion();
  NewVersion();
  NewVersion();
  EXPECT_EQ(registry_.GetVersionByAlias("churn", "champion").status().message(),
            "Registered model alias champion not found.");
  EXPECT_EQ(registry_.GetVersionByAlias("churn", "champion").status().code(),
            StatusCode::kInvalidArgument);
  ASSERT_OK(registry_.SetAlias("churn", "champion", "1", {"alice", "first"}));
  clock_.Advance(10);
  ASSERT_OK(registry_.SetAlias("churn", "champion", "3", {"bob", "better auc"}));
  ASSERT_OK(registry_.SetAlias("churn", "champion", "3", {"bob", "no-op"}));  // not recorded
  auto history = *registry_.AliasHistory("churn", "champion");
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(*history[0].from_version, "1");
  EXPECT_EQ(*history[0].to_version, "3");
  EXPECT_EQ(history[0].actor, "bob");
  EXPECT_EQ(history[0].reason, "better auc");
  EXPECT_FALSE(history[1].from_version.has_value());

  auto change = registry_.Rollback("churn", "champion", {"carol", "latency regression"});
  ASSERT_TRUE(change.ok()) << change.status().ToString();
  EXPECT_EQ(*change->from_version, "3");
  EXPECT_EQ(*change->to_version, "1");
  EXPECT_EQ(registry_.GetVersionByAlias("churn", "champion")->version, "1");
  EXPECT_EQ(registry_.AliasHistory("churn", "champion")->size(), 3u);
  EXPECT_GT(change->id, 0);
  // Rolling back again undoes the rollback.
  EXPECT_EQ(*registry_.Rollback("churn", "champion", {"carol", ""})->to_version, "3");
}

TEST_F(RegistryTest, SetAliasIfIsACompareAndSet) {
  NewVersion();
  NewVersion();
  NewVersion();
  // Expected unset: only while the alias does not exist.
  ASSERT_OK(registry_.SetAliasIf("churn", "champion", std::nullopt, "1", {"job", "first"}));
  Status s = registry_.SetAliasIf("churn", "champion", std::nullopt, "2", {"job", "again"});
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "churn@champion is version 1, not unset as expected: it was moved meanwhile");
  // Someone moves it; a change decided on the old reading is refused.
  ASSERT_OK(registry_.SetAlias("churn", "champion", "3", {"alice", "manual"}));
  s = registry_.SetAliasIf("churn", "champion", std::string("1"), "2", {"job", "gate passed"});
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "churn@champion is version 3, not version 1 as expected: it was moved meanwhile");
  EXPECT_EQ(registry_.GetVersionByAlias("churn", "champion")->version, "3");
  ASSERT_OK(registry_.SetAliasIf("churn", "champion", std::string("3"), "2", {"job", "gate"}));
  EXPECT_EQ(registry_.GetVersionByAlias("churn", "champion")->version, "2");
  EXPECT_EQ(registry_.AliasHistory("churn", "champion")->size(), 3u);
}

TEST_F(RegistryTest, DeleteAliasIfIsACompareAndDelete) {
  NewVersion();
  NewVersion();
  Status s = registry_.DeleteAliasIf("churn", "shadow", "1", {"job", "done"});
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "churn@shadow is unset, not version 1 as expected: it was moved meanwhile");
  ASSERT_OK(registry_.SetAlias("churn", "shadow", "2", {"job 2", "gate passed"}));
  s = registry_.DeleteAliasIf("churn", "shadow", "1", {"job 1", "done"});
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "churn@shadow is version 2, not version 1 as expected: it was moved meanwhile");
  EXPECT_EQ(registry_.GetVersionByAlias("churn", "shadow")->version, "2");
  ASSERT_OK(registry_.DeleteAliasIf("churn", "shadow", "2", {"job 2", "done"}));
  EXPECT_FALSE(registry_.GetVersionByAlias("churn", "shadow").ok());
  auto history = *registry_.AliasHistory("churn", "shadow");
  ASSERT_EQ(history.size(), 2u);
  EXPECT_FALSE(history.front().to_version.has_value());
  EXPECT_EQ(history.front().actor, "job 2");
}

TEST_F(RegistryTest, RollbackWithoutHistoryOrToADeletedVersionFails) {
  NewVersion();
  NewVersion();
  ASSERT_OK(registry_.SetAlias("churn", "prod", "1", {}));
  EXPECT_EQ(registry_.Rollback("churn", "prod", {}).status().code(),
            StatusCode::kFailedPrecondition);
  ASSERT_OK(registry_.SetAlias("churn", "prod", "2", {}));
  ASSERT_OK(registry_.DeleteModelVersion("churn", "1"));
  EXPECT_EQ(registry_.Rollback("churn", "prod", {}).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(registry_.GetVersionByAlias("churn", "prod")->version, "2");
}

TEST_F(RegistryTest, DeletingAVersionDropsItsAliasesWithAHistoryEntry) {
  NewVersion();
  ASSERT_OK(registry_.SetAlias("churn", "champion", "1", {}));
  ASSERT_OK(registry_.DeleteModelVersion("churn", "1"));
  EXPECT_FALSE(registry_.GetVersionByAlias("churn", "champion").ok());
  auto history = *registry_.AliasHistory("churn", "champion");
  ASSERT_EQ(history.size(), 2u);
  EXPECT_FALSE(history[0].to_version.has_value());
}

TEST_F(RegistryTest, HistoryOfADeletedModelIsNotUsedForRollback) {
  NewVersion();
  NewVersion();
  ASSERT_OK(registry_.SetAlias("churn", "champion", "1", {}));
  ASSERT_OK(registry_.SetAlias("churn", "champion", "2", {}));
  ASSERT_OK(registry_.DeleteRegisteredModel("churn"));
  auto history = *registry_.AliasHistory("churn", "champion");
  ASSERT_EQ(history.size(), 3u);
  EXPECT_FALSE(history[0].to_version.has_value());  // the delete is recorded
  // Another model renamed onto the old name does not inherit a rollback target.
  ASSERT_TRUE(registry_.CreateRegisteredModel("other", {}, "").ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(registry_.CreateModelVersion({"other", "s", "", "", "", "", {}}).ok());
  }
  ASSERT_OK(registry_.SetAlias("other", "champion", "3", {}));
  ASSERT_TRUE(registry_.RenameRegisteredModel("other", "churn").ok());
  EXPECT_EQ(registry_.Rollback("churn", "champion", {}).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(registry_.GetVersionByAlias("churn", "champion")->version, "3");
  // Numbering continues above both names' numbers (old churn reached 2, other 3).
  EXPECT_EQ(registry_.CreateModelVersion({"churn", "s", "", "", "", "", {}})->version, "4");
}

TEST_F(RegistryTest, AliasNamesAreValidated) {
  NewVersion();
  EXPECT_FALSE(registry_.SetAlias("churn", "latest", "1", {}).ok());
  EXPECT_FALSE(registry_.SetAlias("churn", "v3", "1", {}).ok());
  EXPECT_FALSE(registry_.SetAlias("churn", "a b", "1", {}).ok());
  EXPECT_EQ(registry_.SetAlias("churn", "ok", "7", {}).code(), StatusCode::kNotFound);
}

TEST_F(RegistryTest, ResolvesModelUris) {
  NewVersion();
  NewVersion();
  ASSERT_OK(registry_.SetAlias("churn", "champion", "1", {}));
  EXPECT_EQ(registry_.ResolveModelUri("models:/churn@champion")->version, "1");
  EXPECT_EQ(registry_.ResolveModelUri("models:/churn/2")->version, "2");
  EXPECT_EQ(registry_.ResolveModelUri("models:/churn/latest")->version, "2");
  ASSERT_TRUE(registry_.TransitionStage("churn", "1", "Staging", false).ok());
  EXPECT_EQ(registry_.ResolveModelUri("models:/churn/staging")->version, "1");
  EXPECT_FALSE(registry_.ResolveModelUri("models:/churn").ok());
}

TEST_F(RegistryTest, RenameKeepsVersionsAliasesAndNumbering) {
  NewVersion();
  ASSERT_OK(registry_.SetAlias("churn", "champion", "1", {}));
  ASSERT_TRUE(registry_.RenameRegisteredModel("churn", "churn2").ok());
  EXPECT_EQ(registry_.GetVersionByAlias("churn2", "champion")->version, "1");
  auto v = registry_.CreateModelVersion({"churn2", "s", "", "", "", "", {}});
  EXPECT_EQ(v->version, "2");
}

TEST_F(RegistryTest, SearchFiltersByNameAndTag) {
  ASSERT_TRUE(registry_.CreateRegisteredModel("fraud", {{"team", "risk"}}, "").ok());
  auto page = registry_.SearchRegisteredModels({"name LIKE 'ch%'", 100, {}, ""});
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->models.size(), 1u);
  EXPECT_EQ(page->models[0].name, "churn");
  page = registry_.SearchRegisteredModels({"tags.team = 'risk'", 100, {}, ""});
  ASSERT_EQ(page->models.size(), 1u);
  EXPECT_EQ(page->models[0].name, "fraud");
  EXPECT_FALSE(registry_.SearchRegisteredModels({"metrics.x > 1", 100, {}, ""}).ok());
}

}  // namespace
}  // namespace keel::registry
