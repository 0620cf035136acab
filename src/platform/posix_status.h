// errno to absl::Status, and struct stat to FileInfo, for the POSIX platform files only
// (mapped_file_posix.cc, fs_posix.cc).
#ifndef MAPKV_PLATFORM_POSIX_STATUS_H_
#define MAPKV_PLATFORM_POSIX_STATUS_H_

#include <errno.h>
#include <sys/stat.h>

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "src/platform/fs.h"

namespace mapkv::internal {

// "PATH: WHAT: strerror", with the code a caller can act on.
inline absl::Status ErrnoStatus(int err, const std::string& path, absl::string_view what) {
  std::string message = absl::StrCat(path, ": ", what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EFBIG:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

// `n` in octal digits (permission bits in messages).
inline std::string Octal(uint32_t n) {
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + (n & 7)));
    n >>= 3;
  } while (n != 0);
  return digits;
}

// What stat, lstat or fstat found.
inline FileInfo FileInfoOf(const struct stat& st) {
  FileInfo info;
  info.size = static_cast<uint64_t>(st.st_size);
  info.allocated = static_cast<uint64_t>(st.st_blocks) * 512;  // POSIX: st_blocks counts 512 B
  info.mode = static_cast<uint32_t>(st.st_mode & 07777);
  info.uid = st.st_uid;
  info.gid = st.st_gid;
  info.device = st.st_dev;
  info.inode = st.st_ino;
  info.regular = S_ISREG(st.st_mode);
  info.symlink = S_ISLNK(st.st_mode);
  return info;
}

}  // namespace mapkv::internal

#endif  // MAPKV_PLATFORM_POSIX_STATUS_H_
