// GetLastError() codes to absl::Status, UTF-8 paths to the wide strings of the W APIs, and a
// handle's file information to FileInfo, for the Windows platform files only (mapped_file_win32.cc,
// fs_win32.cc, ...).
#ifndef MAPKV_PLATFORM_WIN32_STATUS_H_
#define MAPKV_PLATFORM_WIN32_STATUS_H_

#include <windows.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "src/platform/fs.h"

namespace mapkv::internal {

// The system's message for `err` ("error N" when it has none), without the trailing newline.
inline std::string Win32Message(DWORD err) {
  char* text = nullptr;
  const DWORD n = FormatMessageA(
      FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
      nullptr, err, 0, reinterpret_cast<char*>(&text), 0, nullptr);
  std::string message = n == 0 ? absl::StrCat("error ", err) : std::string(text, n);
  if (text != nullptr) LocalFree(text);
  while (!message.empty() && (message.back() == '\n' || message.back() == '\r' ||
                              message.back() == ' ' || message.back() == '.')) {
    message.pop_back();
  }
  return absl::StrCat(message, " (Windows error ", err, ")");
}

// "PATH: WHAT: message", with the code a caller can act on (as ErrnoStatus on POSIX).
inline absl::Status Win32Status(DWORD err, const std::string& path, absl::string_view what) {
  std::string message = absl::StrCat(path, ": ", what, ": ", Win32Message(err));
  switch (err) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
      return absl::NotFoundError(message);
    case ERROR_FILE_EXISTS:
    case ERROR_ALREADY_EXISTS:
      return absl::AlreadyExistsError(message);
    case ERROR_ACCESS_DENIED:
    case ERROR_WRITE_PROTECT:
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION:
      return absl::PermissionDeniedError(message);
    case ERROR_DISK_FULL:
    case ERROR_HANDLE_DISK_FULL:
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_COMMITMENT_LIMIT:
    case ERROR_FILE_TOO_LARGE:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

inline absl::Status LastErrorStatus(const std::string& path, absl::string_view what) {
  return Win32Status(GetLastError(), path, what);
}

// UTF-8 to UTF-16 for the W functions (mapkv's paths are UTF-8 strings on every platform).
inline std::wstring Widen(const std::string& utf8) {
  if (utf8.empty()) return std::wstring();
  const int n =
      MultiByteToWideChar(CP_UTF8, 0, utf8.data(), static_cast<int>(utf8.size()), nullptr, 0);
  std::wstring wide(static_cast<size_t>(n), L'\0');
  MultiByteToWideChar(CP_UTF8, 0, utf8.data(), static_cast<int>(utf8.size()), wide.data(), n);
  return wide;
}

inline std::string Narrow(const wchar_t* wide, size_t size) {
  if (size == 0) return std::string();
  const int n =
      WideCharToMultiByte(CP_UTF8, 0, wide, static_cast<int>(size), nullptr, 0, nullptr, nullptr);
  std::string utf8(static_cast<size_t>(n), '\0');
  WideCharToMultiByte(CP_UTF8, 0, wide, static_cast<int>(size), utf8.data(), n, nullptr, nullptr);
  return utf8;
}

// What GetFileInformationByHandle found. Windows has no uid/gid (owners are ACLs): 0:0. Permission
// bits stand for the read-only attribute. `allocated` is the size here; callers that can ask for
// the allocation set it.
inline FileInfo FileInfoOf(const BY_HANDLE_FILE_INFORMATION& info) {
  FileInfo out;
  out.size = (uint64_t{info.nFileSizeHigh} << 32) | info.nFileSizeLow;
  out.allocated = out.size;
  const bool directory = info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY;
  out.mode = (info.dwFileAttributes & FILE_ATTRIBUTE_READONLY) ? 0444 : 0666;
  if (directory) out.mode |= 0111;
  out.device = info.dwVolumeSerialNumber;
  out.inode = (uint64_t{info.nFileIndexHigh} << 32) | info.nFileIndexLow;
  out.regular = !directory && !(info.dwFileAttributes & FILE_ATTRIBUTE_DEVICE);
  return out;
}

}  // namespace mapkv::internal

#endif  // MAPKV_PLATFORM_WIN32_STATUS_H_
