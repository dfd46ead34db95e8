#include "keel/core/sha256.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace keel {
namespace {

// FIPS 180-2 test vectors.
TEST(Sha256Test, KnownVectors) {
  Sha256 empty;
  EXPECT_EQ(empty.HexDigest(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 abc;
  abc.Update("abc");
  EXPECT_EQ(abc.HexDigest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, IncrementalEqualsWholeAndFile) {
  const std::string text = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  Sha256 parts;
  parts.Update(text.substr(0, 5));
  parts.Update("");
  parts.Update(text.substr(5));
  const std::string want = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
  EXPECT_EQ(parts.HexDigest(), want);
  const auto path = std::filesystem::temp_directory_path() / "keel_sha256_test.txt";
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  auto file = Sha256File(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(*file, want);
  std::filesystem::remove(path);
  EXPECT_EQ(Sha256File(path).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace keel
