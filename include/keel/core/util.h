// File: keel/core/util.h
//
// Small helpers shared by every module: random ids, base64, string checks,
// whole-file writes.
//
//   std::string id = keel::RandomHex(16);          // 32 hex chars
//   std::string token = keel::Base64Encode(R"({"offset": 2})");
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "keel/core/status.h"

namespace keel {

// `bytes` random bytes as lower-case hex (2*bytes characters). Thread-safe.
std::string RandomHex(size_t bytes);
std::string Base64Encode(std::string_view data);
// nullopt when `text` is not valid base64.
std::optional<std::string> Base64Decode(std::string_view text);
// Percent-decodes a URL component; nullopt on a bad escape. '+' stays '+'
// unless plus_as_space.
std::optional<std::string> UrlDecode(std::string_view text, bool plus_as_space);
std::string UrlEncode(std::string_view text);
bool IsValidUtf8(std::string_view text);
// Writes `bytes` to a temporary sibling ("<path>.tmp") and renames it over
// `path`, so readers see the old file or the whole new one. InvalidArgument
// when it cannot be created, Internal when writing or renaming fails.
[[nodiscard]] Status WriteFileAtomically(const std::filesystem::path& path, std::string_view bytes);

}  // namespace keel
