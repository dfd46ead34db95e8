#include "keel/artifacts/artifacts.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/unit/test_util.h"

namespace keel::artifacts {
namespace {

using keel::testing::TempDir;
namespace fs = std::filesystem;

TEST(ArtifactPathTest, RefusesTraversalInEveryEncoding) {
  for (std::string bad : std::vector<std::string>{"../x", "a/../../x", "/etc/passwd", "a/..", "..", "a\\..\\x",
                          std::string("a\0b", 3), "%2e%2e/x", "a/%2E%2E/%2e%2e/x",
                          "%252e%252e/x", "%25252e%25252e/x", "%2fetc/passwd", "a/%00b",
                          ".keel-spool/x", "a/.keel-tmp-1"}) {
    Status s = CheckRelativePath(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "accepted: " << bad;
  }
  for (std::string good : std::vector<std::string>{"", "a", "1/abc/artifacts/model/MLmodel", "a/./b", "a..b/c",
                           "with space/x%20y", "dots.../x", "a:b.txt"}) {
    EXPECT_TRUE(CheckRelativePath(good).ok()) << "refused: " << good;
  }
}

TEST(ArtifactPathTest, ArtifactUriToPath) {
  EXPECT_EQ(*ArtifactUriToPath("mlflow-artifacts:/1/abc/artifacts"), "1/abc/artifacts");
  EXPECT_EQ(*ArtifactUriToPath("mlflow-artifacts://127.0.0.1:5000/1/abc"), "1/abc");
  EXPECT_FALSE(ArtifactUriToPath("s3://bucket/x").ok());
  EXPECT_FALSE(ArtifactUriToPath("mlflow-artifacts:/../x").ok());
}

class LocalArtifactsTest : public ::testing::Test {
 protected:
  LocalArtifactsTest() : store_(dir_.path() / "root") {}
  std::string Read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  TempDir dir_;
  LocalArtifactStore store_;
};

TEST_F(LocalArtifactsTest, WriteListReadDelete) {
  auto w = store_.OpenWriter("1/run/artifacts/model/MLmodel");
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_OK((*w)->Append("flavors: {}\n"));
  // Invisible until committed.
  EXPECT_EQ(store_.FileForRead("1/run/artifacts/model/MLmodel").status().code(), StatusCode::kNotFound);
  ASSERT_OK((*w)->Commit());
  auto path = store_.FileForRead("1/run/artifacts/model/MLmodel");
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(Read(*path), "flavors: {}\n");
  auto list = store_.List("1/run/artifacts");
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].path, "model");
  EXPECT_TRUE((*list)[0].is_dir);
  list = store_.List("1/run/artifacts/model");
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].file_size, 12);
  EXPECT_TRUE(store_.List("nothing/here")->empty());
  ASSERT_OK(store_.Delete("1/run/artifacts/model"));
  EXPECT_TRUE(store_.List("1/run/artifacts")->empty());
  EXPECT_EQ(store_.Delete("1/run/artifacts/model").code(), StatusCode::kNotFound);
  EXPECT_FALSE(store_.Delete("").ok());
}

TEST_F(LocalArtifactsTest, AbandonedWriterLeavesNothing) {
  {
    auto w = store_.OpenWriter("a/b.bin");
    ASSERT_TRUE(w.ok());
    ASSERT_OK((*w)->Append("partial"));
  }
  EXPECT_TRUE(store_.List("a")->empty());
  size_t files = 0;
  for (auto& e : fs::recursive_directory_iterator(store_.root())) files += e.is_regular_file();
  EXPECT_EQ(files, 0u);
}

TEST_F(LocalArtifactsTest, SymlinksLeavingTheRootAreRefused) {
  fs::create_directories(dir_.path() / "outside");
  std::ofstream(dir_.path() / "outside" / "secret") << "s";
  fs::create_symlink(dir_.path() / "outside", store_.root() / "escape");
  fs::create_symlink(dir_.path() / "outside" / "secret", store_.root() / "secret-link");
  EXPECT_EQ(store_.FileForRead("escape/secret").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_.FileForRead("secret-link").status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(store_.OpenWriter("escape/new").ok());
  EXPECT_FALSE(store_.List("escape").ok());
  EXPECT_FALSE(store_.Delete("escape/secret").ok());
  EXPECT_FALSE(fs::exists(dir_.path() / "outside" / "new"));
  EXPECT_TRUE(fs::exists(dir_.path() / "outside" / "secret"));
  // The listing of the root does not show links that leave it.
  auto root_listing = store_.List("");
  ASSERT_TRUE(root_listing.ok());
  for (const auto& f : *root_listing) EXPECT_NE(f.path, "escape");
  // A symlink that stays inside is fine.
  ASSERT_OK((*store_.OpenWriter("inside/f"))->Commit());
  fs::create_symlink(store_.root() / "inside", store_.root() / "alias");
  EXPECT_TRUE(store_.FileForRead("alias/f").ok());
}

}  // namespace
}  // namespace keel::artifacts
