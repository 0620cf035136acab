// errno to absl::Status, for the POSIX platform files only (mapped_file_posix.cc, fs_posix.cc).
#ifndef MAPKV_PLATFORM_POSIX_STATUS_H_
#define MAPKV_PLATFORM_POSIX_STATUS_H_

#include <errno.h>

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

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

}  // namespace mapkv::internal

#endif  // MAPKV_PLATFORM_POSIX_STATUS_H_
