#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "keel/artifacts/artifacts.h"
#include "keel/core/util.h"

namespace keel::artifacts {
namespace fs = std::filesystem;

namespace {

Status CheckDecoded(std::string_view path, std::string_view original) {
  auto refuse = [&](std::string_view why) {
    return InvalidArgument("Invalid artifact path '" + std::string(original) + "': " +
                           std::string(why));
  };
  if (path.find('\0') != std::string_view::npos) return refuse("contains a NUL byte");
  if (path.find('\\') != std::string_view::npos) return refuse("contains a backslash");
  if (!path.empty() && path.front() == '/') return refuse("absolute paths are not allowed");
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view segment = path.substr(start, end - start);
    if (segment == "..") return refuse("'..' is not allowed");
    if (segment.starts_with(".keel-")) return refuse("names starting with '.keel-' are reserved");
    start = end + 1;
  }
  return OkStatus();
}

std::string Normalize(std::string_view relative) {
  std::string out;
  size_t start = 0;
  while (start <= relative.size()) {
    size_t end = relative.find('/', start);
    if (end == std::string_view::npos) end = relative.size();
    std::string_view seg = relative.substr(start, end - start);
    if (!seg.empty() && seg != ".") {
      if (!out.empty()) out += '/';
      out += seg;
    }
    start = end + 1;
  }
  return out;
}

bool IsUnder(const fs::path& path, const fs::path& root) {
  auto p = path.lexically_normal().string();
  auto r = root.string();
  return p == r || (p.size() > r.size() && p.compare(0, r.size(), r) == 0 && p[r.size()] == '/');
}

// Makes a rename inside `dir` durable.
Status SyncDirectory(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Unavailable("opening " + dir.string() + ": " + std::strerror(errno));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Unavailable("fsync " + dir.string() + ": " + std::strerror(errno));
  return OkStatus();
}

class LocalWriter final : public ArtifactWriter {
 public:
  LocalWriter(fs::path final_path, fs::path temp_path, int fd)
      : final_(std::move(final_path)), temp_(std::move(temp_path)), fd_(fd) {}
  ~LocalWriter() override {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
  }

  Status Append(std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Unavailable("writing " + final_.string() + ": " + std::strerror(errno));
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return OkStatus();
  }

  Status Commit() override {
    if (::fsync(fd_) != 0) return Unavailable("fsync " + temp_.string() + ": " + std::strerror(errno));
    ::close(fd_);
    fd_ = -1;
    if (::rename(temp_.c_str(), final_.c_str()) != 0) {
      return Unavailable("rename to " + final_.string() + ": " + std::strerror(errno));
    }
    committed_ = true;
    return SyncDirectory(final_.parent_path());
  }

 private:
  fs::path final_;
  fs::path temp_;
  int fd_;
  bool committed_ = false;
};

}  // namespace

Status CheckRelativePath(std::string_view relative) {
  std::string current(relative);
  KEEL_RETURN_IF_ERROR(CheckDecoded(current, relative));
  // Double (or deeper) encoding: keep decoding while it changes anything.
  for (int depth = 0; depth < 4 && current.find('%') != std::string::npos; ++depth) {
    auto decoded = UrlDecode(current, false);
    if (!decoded || *decoded == current) break;
    current = std::move(*decoded);
    KEEL_RETURN_IF_ERROR(CheckDecoded(current, relative));
  }
  return OkStatus();
}

Result<std::string> ArtifactUriToPath(std::string_view uri) {
  constexpr std::string_view kScheme = "mlflow-artifacts:";
  if (!uri.starts_with(kScheme)) {
    return InvalidArgument("Unsupported artifact URI '" + std::string(uri) +
                           "': expected mlflow-artifacts:/...");
  }
  std::string_view rest = uri.substr(kScheme.size());
  // mlflow-artifacts://host:port/path or mlflow-artifacts:/path
  if (rest.starts_with("//")) {
    size_t slash = rest.find('/', 2);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  }
  while (rest.starts_with("/")) rest.remove_prefix(1);
  KEEL_RETURN_IF_ERROR(CheckRelativePath(rest));
  return Normalize(rest);
}

LocalArtifactStore::LocalArtifactStore(fs::path root) {
  std::error_code ec;
  fs::create_directories(root, ec);
  root_ = fs::weakly_canonical(root, ec);
  if (ec) root_ = fs::absolute(root).lexically_normal();
  std::string s = root_.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  root_ = s;
}

Result<fs::path> LocalArtifactStore::Resolve(std::string_view relative) const {
  KEEL_RETURN_IF_ERROR(CheckRelativePath(relative));
  std::string norm = Normalize(relative);
  fs::path full = norm.empty() ? root_ : root_ / norm;
  auto outside = [&] {
    return InvalidArgument("Invalid artifact path '" + std::string(relative) +
                           "': it resolves outside the artifact root");
  };
  // Every symlink on the way, dangling ones included, must point inside the root.
  std::error_code ec;
  fs::path current = root_;
  for (const auto& segment : fs::path(norm)) {
    current /= segment;
    auto st = fs::symlink_status(current, ec);
    if (ec || st.type() == fs::file_type::not_found) break;
    if (st.type() == fs::file_type::symlink) {
      fs::path target = fs::read_symlink(current, ec);
      if (ec) return outside();
      if (target.is_relative()) target = current.parent_path() / target;
      if (!IsUnder(fs::weakly_canonical(target, ec), root_) || ec) return outside();
    }
  }
  fs::path resolved = fs::weakly_canonical(full, ec);
  if (ec) return InvalidArgument("Invalid artifact path '" + std::string(relative) + "'");
  if (!IsUnder(resolved, root_)) return outside();
  return full;
}

Result<std::vector<FileInfo>> LocalArtifactStore::List(std::string_view relative) const {
  KEEL_ASSIGN_OR_RETURN(fs::path dir, Resolve(relative));
  std::vector<FileInfo> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.starts_with(".keel-")) continue;  // temporary files and the upload spool
    std::error_code e2;
    // A symlink leaving the root is not listed.
    fs::path target = fs::weakly_canonical(entry.path(), e2);
    if (e2 || !IsUnder(target, root_)) continue;
    FileInfo info;
    info.path = name;
    info.is_dir = entry.is_directory(e2);
    if (!info.is_dir) info.file_size = static_cast<int64_t>(entry.file_size(e2));
    out.push_back(std::move(info));
  }
  if (ec) return Unavailable("listing " + dir.string() + ": " + ec.message());
  std::sort(out.begin(), out.end(),
            [](const FileInfo& a, const FileInfo& b) { return a.path < b.path; });
  return out;
}

Result<fs::path> LocalArtifactStore::FileForRead(std::string_view relative) const {
  KEEL_ASSIGN_OR_RETURN(fs::path path, Resolve(relative));
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return NotFound("Artifact '" + std::string(relative) + "' does not exist");
  }
  return path;
}

Result<fs::path> LocalArtifactStore::PrepareDestination(std::string_view relative) {
  KEEL_ASSIGN_OR_RETURN(fs::path path, Resolve(relative));
  if (Normalize(relative).empty()) return InvalidArgument("Artifact path is empty");
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec == std::errc::not_a_directory || ec == std::errc::file_exists) {
    return InvalidArgument("Artifact path '" + std::string(relative) +
                           "': a parent of it is a file, not a directory");
  }
  if (ec) return Unavailable("creating " + path.parent_path().string() + ": " + ec.message());
  // Re-check after creating directories: a symlinked parent must not escape.
  fs::path parent = fs::canonical(path.parent_path(), ec);
  if (ec || !IsUnder(parent, root_)) {
    return InvalidArgument("Invalid artifact path '" + std::string(relative) +
                           "': it resolves outside the artifact root");
  }
  if (fs::is_directory(path, ec)) {
    return InvalidArgument("Artifact path '" + std::string(relative) + "' is a directory");
  }
  return parent / path.filename();
}

Result<std::unique_ptr<ArtifactWriter>> LocalArtifactStore::OpenWriter(std::string_view relative) {
  KEEL_ASSIGN_OR_RETURN(fs::path destination, PrepareDestination(relative));
  fs::path temp = destination.parent_path() / (".keel-tmp-" + RandomHex(8));
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return Unavailable("creating " + temp.string() + ": " + std::strerror(errno));
  return std::unique_ptr<ArtifactWriter>(std::make_unique<LocalWriter>(destination, temp, fd));
}

Status LocalArtifactStore::Adopt(std::string_view relative, const fs::path& finished_file) {
  KEEL_ASSIGN_OR_RETURN(fs::path destination, PrepareDestination(relative));
  if (::rename(finished_file.c_str(), destination.c_str()) != 0) {
    return Unavailable("moving upload into " + destination.string() + ": " + std::strerror(errno));
  }
  return SyncDirectory(destination.parent_path());
}

Status LocalArtifactStore::Delete(std::string_view relative) {
  KEEL_ASSIGN_OR_RETURN(fs::path path, Resolve(relative));
  if (Normalize(relative).empty()) return InvalidArgument("Refusing to delete the artifact root");
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec))) {
    return NotFound("Artifact '" + std::string(relative) + "' does not exist");
  }
  fs::remove_all(path, ec);
  if (ec) return Unavailable("deleting " + path.string() + ": " + ec.message());
  return OkStatus();
}

}  // namespace keel::artifacts
