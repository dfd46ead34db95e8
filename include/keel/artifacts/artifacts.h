// File: keel/artifacts/artifacts.h
//
// The local artifact store: files under one root folder, addressed by
// relative paths that come from clients ("1/<run>/artifacts/model/MLmodel").
//
//   keel::artifacts::LocalArtifactStore store("/data/artifacts");
//   KEEL_ASSIGN_OR_RETURN(auto writer, store.OpenWriter("1/abc/artifacts/model.bin"));
//   KEEL_RETURN_IF_ERROR(writer->Append(chunk));          // streamed, bounded memory
//   KEEL_RETURN_IF_ERROR(writer->Commit());               // atomic rename into place
//   KEEL_ASSIGN_OR_RETURN(auto files, store.List("1/abc/artifacts"));
//
// Path safety (the contract every caller relies on): a path is refused with
// InvalidArgument, and nothing is read or written, when it is absolute,
// contains a ".." segment, a NUL byte or a backslash, still decodes to such a
// path after further percent-decoding (double-encoded traversal), or resolves
// through a symbolic link to a place outside the root.
//
// Threads: thread-safe; concurrent writers of one path each write a private
// temporary file and the last Commit wins.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "keel/core/result.h"

namespace keel::artifacts {

struct FileInfo {
  std::string path;  // relative to the listed directory
  bool is_dir = false;
  int64_t file_size = 0;  // 0 for directories
};

class ArtifactWriter {
 public:
  virtual ~ArtifactWriter() = default;
  virtual Status Append(std::string_view data) = 0;
  // Makes the file visible under its final name (durably). Without Commit
  // the destructor removes the temporary file.
  virtual Status Commit() = 0;
};

class LocalArtifactStore {
 public:
  explicit LocalArtifactStore(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }

  // Checks `relative` and returns the absolute path it names under the root.
  Result<std::filesystem::path> Resolve(std::string_view relative) const;
  // Entries of a directory, sorted by name; an absent directory lists as empty.
  Result<std::vector<FileInfo>> List(std::string_view relative) const;
  // A regular file to read; NotFound when absent or a directory.
  Result<std::filesystem::path> FileForRead(std::string_view relative) const;
  Result<std::unique_ptr<ArtifactWriter>> OpenWriter(std::string_view relative);
  // Moves a finished file (e.g. a spooled upload on the same filesystem) to
  // `relative`, atomically replacing any previous file.
  Status Adopt(std::string_view relative, const std::filesystem::path& finished_file);
  // Removes a file or a whole directory tree; NotFound when absent.
  Status Delete(std::string_view relative);

 private:
  // Checks `relative`, creates its parent folders, and returns the final path.
  Result<std::filesystem::path> PrepareDestination(std::string_view relative);

  std::filesystem::path root_;  // canonical, created on construction
};

// Checks a client path without touching the disk (the syntactic rules above).
Status CheckRelativePath(std::string_view relative);

// "mlflow-artifacts:/1/abc/artifacts" -> "1/abc/artifacts"; other schemes: InvalidArgument.
Result<std::string> ArtifactUriToPath(std::string_view uri);

}  // namespace keel::artifacts
