#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "src/platform/fs.h"
#include "src/platform/posix_status.h"

namespace mapkv::internal {
namespace {

absl::Status SyncPath(const std::string& path, int flags, absl::string_view what) {
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, path, absl::StrCat("open (", what, ")"));
  absl::Status status;
  if (fsync(fd) != 0) status = ErrnoStatus(errno, path, absl::StrCat("fsync (", what, ")"));
  close(fd);
  return status;
}

}  // namespace

absl::StatusOr<FileInfo> StatFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, path, "stat");
  return FileInfoOf(st);
}

absl::StatusOr<FileInfo> StatLink(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return ErrnoStatus(errno, path, "lstat");
  return FileInfoOf(st);
}

absl::StatusOr<bool> PathExists(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0) return true;
  if (errno == ENOENT) return false;
  return ErrnoStatus(errno, path, "stat");
}

absl::StatusOr<std::string> ResolvePath(const std::string& path) {
  char* resolved = realpath(path.c_str(), nullptr);
  if (resolved == nullptr) return ErrnoStatus(errno, path, "realpath");
  std::string out(resolved);
  free(resolved);
  return out;
}

absl::Status SetMode(const std::string& path, uint32_t mode) {
  if (chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    return ErrnoStatus(errno, path, absl::StrCat("chmod to 0", Octal(mode)));
  }
  return absl::OkStatus();
}

absl::Status ReplaceFile(const std::string& from, const std::string& to) {
  if (rename(from.c_str(), to.c_str()) != 0) {
    return ErrnoStatus(errno, to, absl::StrCat("rename from ", from));
  }
  return absl::OkStatus();
}

bool ReplaceFailsWhileMapped() { return false; }

absl::Status RenameNoReplace(const std::string& from, const std::string& to) {
  if (renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
    return absl::OkStatus();
  }
  if (errno != EINVAL && errno != ENOSYS) {
    return ErrnoStatus(errno, to, absl::StrCat("rename (no replace) from ", from));
  }
  // A file system without RENAME_NOREPLACE: link() never replaces either.
  if (link(from.c_str(), to.c_str()) != 0) {
    return ErrnoStatus(errno, to, absl::StrCat("link from ", from));
  }
  if (unlink(from.c_str()) != 0) return ErrnoStatus(errno, from, "unlink");
  return absl::OkStatus();
}

absl::Status ExchangeFiles(const std::string& a, const std::string& b) {
  if (renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0) {
    return absl::OkStatus();
  }
  if (errno == EINVAL || errno == ENOSYS) {
    return absl::UnimplementedError(absl::StrCat(
        b, ": the file system cannot exchange two names in one step (RENAME_EXCHANGE)"));
  }
  return ErrnoStatus(errno, b, absl::StrCat("rename (exchange) with ", a));
}

absl::Status SyncDirectoryOf(const std::string& path) {
  return SyncPath(DirName(path), O_RDONLY | O_DIRECTORY, "directory");
}

absl::Status RemovePath(const std::string& path) {
  if (unlink(path.c_str()) != 0) return ErrnoStatus(errno, path, "unlink");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus(errno, dir, "opendir");
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    dirent* entry = readdir(d);
    if (entry == nullptr) break;
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  int err = errno;
  closedir(d);
  if (err != 0) return ErrnoStatus(err, dir, "readdir");
  return names;
}

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace mapkv::internal
