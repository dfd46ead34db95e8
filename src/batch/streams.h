// Internal: files read and written through gzip or zstd by their extension
// (.gz, .zst), plain otherwise; "-" is stdin / stdout.
#pragma once

#include <istream>
#include <memory>
#include <string>
#include <string_view>

#include "keel/core/result.h"

namespace keel::batch::internal {

enum class Codec { kNone, kGzip, kZstd };

// By the path's last extension: .gz -> gzip, .zst/.zstd -> zstd.
Codec CodecOf(std::string_view path);
// The path without a compression extension ("a.jsonl.gz" -> "a.jsonl").
std::string_view WithoutCodecExtension(std::string_view path);

// An input stream over `path` ("-" = stdin), decompressing by extension.
// A decompression error ends the stream (reads see end of file); error()
// then says why, so callers check it when they reach the end or fail.
class InputStream {
 public:
  static Result<std::unique_ptr<InputStream>> Open(const std::string& path);
  virtual ~InputStream() = default;
  virtual std::istream& stream() = 0;
  // Empty, or why reading failed (corrupt or truncated compressed data).
  virtual std::string error() const = 0;
};

// A byte sink compressing by the codec; Close() finishes the frame.
class OutputSink {
 public:
  // Writes `path` (a file; the caller renames it into place).
  static Result<std::unique_ptr<OutputSink>> Create(const std::string& path, Codec codec);
  // Writes stdout, uncompressed.
  static std::unique_ptr<OutputSink> Stdout();
  virtual ~OutputSink() = default;
  virtual Status Write(std::string_view bytes) = 0;
  virtual Status Close() = 0;
};

}  // namespace keel::batch::internal
