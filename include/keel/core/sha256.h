// File: keel/core/sha256.h
//
// SHA-256 digests (OpenSSL), incremental or of a whole file, as lower-case hex.
//
//   keel::Sha256 h;
//   h.Update(chunk1);
//   h.Update(chunk2);
//   std::string hex = h.HexDigest();                    // 64 hex chars
//   KEEL_ASSIGN_OR_RETURN(std::string f, keel::Sha256File("data.csv"));
//
// Threads: a Sha256 object is used by one thread at a time.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "keel/core/result.h"

namespace keel {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view bytes);
  // The digest of everything given so far. Call once; later Updates start
  // nothing new (the object is spent).
  std::string HexDigest();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// HMAC-SHA256 of `message` under `key`, as lower-case hex (64 characters):
// how webhook payloads are signed.
std::string HmacSha256Hex(std::string_view key, std::string_view message);

// The SHA-256 of a file's bytes. NotFound when it cannot be opened.
[[nodiscard]] Result<std::string> Sha256File(const std::filesystem::path& path);

}  // namespace keel
