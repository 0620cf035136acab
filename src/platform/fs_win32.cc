// fs.h on Windows. Paths are UTF-8 and may use '/' or '\' as separators.
//
// What has no Windows counterpart: owners are ACLs rather than uid/gid (StatFile reports 0:0);
// permission bits are the read-only attribute (mode 0444 or 0666 for a file); directories cannot
// be flushed (NTFS journals its metadata, and renames here ask for write-through instead), so
// SyncDirectoryOf does nothing; two names cannot be exchanged in one step (ExchangeFiles is
// Unimplemented).
#include <windows.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "src/platform/fs.h"
#include "src/platform/win32_status.h"

// <windows.h> names a function ReplaceFile too (a macro for ReplaceFileW); ours is fs.h's.
#undef ReplaceFile

namespace mapkv::internal {
namespace {

// A handle for asking about `path` (no data access, directories too). `flags`
// FILE_FLAG_OPEN_REPARSE_POINT: the name itself, not what a symbolic link there points to.
HANDLE OpenForQuery(const std::string& path, DWORD flags = 0) {
  return CreateFileW(Widen(path).c_str(), 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                     nullptr, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS | flags, nullptr);
}

absl::StatusOr<FileInfo> StatPath(const std::string& path, bool follow) {
  HANDLE h = OpenForQuery(path, follow ? 0 : FILE_FLAG_OPEN_REPARSE_POINT);
  if (h == INVALID_HANDLE_VALUE) {
    return LastErrorStatus(path, follow ? "CreateFile (stat)" : "CreateFile (lstat)");
  }
  BY_HANDLE_FILE_INFORMATION info;
  const bool ok = GetFileInformationByHandle(h, &info);
  const DWORD err = GetLastError();
  CloseHandle(h);
  if (!ok) return Win32Status(err, path, "GetFileInformationByHandle");
  FileInfo out = FileInfoOf(info);
  if (!follow && (info.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT)) {
    // A symbolic link or a junction: what it leads to is not the name's own.
    out.symlink = true;
    out.regular = false;
    return out;
  }
  DWORD high = 0;
  const DWORD low = GetCompressedFileSizeW(Widen(path).c_str(), &high);
  if (low != INVALID_FILE_SIZE || GetLastError() == NO_ERROR) {
    out.allocated = (uint64_t{high} << 32) | low;
  }
  return out;
}

size_t LastSeparator(const std::string& path) { return path.find_last_of("/\\"); }

}  // namespace

absl::StatusOr<FileInfo> StatFile(const std::string& path) { return StatPath(path, true); }

absl::StatusOr<FileInfo> StatLink(const std::string& path) { return StatPath(path, false); }

absl::StatusOr<bool> PathExists(const std::string& path) {
  if (GetFileAttributesW(Widen(path).c_str()) != INVALID_FILE_ATTRIBUTES) return true;
  const DWORD err = GetLastError();
  if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND) return false;
  return Win32Status(err, path, "GetFileAttributes");
}

absl::StatusOr<std::string> ResolvePath(const std::string& path) {
  HANDLE h = OpenForQuery(path);
  if (h == INVALID_HANDLE_VALUE) return LastErrorStatus(path, "CreateFile (resolving)");
  wchar_t buffer[32768];
  const DWORD n = GetFinalPathNameByHandleW(h, buffer, 32768, FILE_NAME_NORMALIZED);
  const DWORD err = GetLastError();
  CloseHandle(h);
  if (n == 0 || n >= 32768) return Win32Status(err, path, "GetFinalPathNameByHandle");
  std::wstring_view resolved(buffer, n);
  if (resolved.substr(0, 4) == L"\\\\?\\") resolved.remove_prefix(4);
  return Narrow(resolved.data(), resolved.size());
}

absl::Status SetMode(const std::string& path, uint32_t mode) {
  const std::wstring wide = Widen(path);
  DWORD attributes = GetFileAttributesW(wide.c_str());
  if (attributes == INVALID_FILE_ATTRIBUTES) return LastErrorStatus(path, "GetFileAttributes");
  attributes = (mode & 0222) ? attributes & ~DWORD{FILE_ATTRIBUTE_READONLY}
                             : attributes | FILE_ATTRIBUTE_READONLY;
  if (!SetFileAttributesW(wide.c_str(), attributes)) {
    return LastErrorStatus(path, "SetFileAttributes");
  }
  return absl::OkStatus();
}

absl::Status ReplaceFile(const std::string& from, const std::string& to) {
  if (!MoveFileExW(Widen(from).c_str(), Widen(to).c_str(),
                   MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
    return LastErrorStatus(to, absl::StrCat("MoveFileEx from ", from));
  }
  return absl::OkStatus();
}

bool ReplaceFailsWhileMapped() { return true; }

absl::Status RenameNoReplace(const std::string& from, const std::string& to) {
  if (!MoveFileExW(Widen(from).c_str(), Widen(to).c_str(), MOVEFILE_WRITE_THROUGH)) {
    return LastErrorStatus(to, absl::StrCat("MoveFileEx (no replace) from ", from));
  }
  return absl::OkStatus();
}

// Windows has no call that swaps two names; MoveFileEx replaces, and a caller falls back on it.
absl::Status ExchangeFiles(const std::string&, const std::string& b) {
  return absl::UnimplementedError(
      absl::StrCat(b, ": Windows cannot exchange two names in one step"));
}

absl::Status SyncDirectoryOf(const std::string&) { return absl::OkStatus(); }

absl::Status RemovePath(const std::string& path) {
  if (!DeleteFileW(Widen(path).c_str())) return LastErrorStatus(path, "DeleteFile");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir) {
  WIN32_FIND_DATAW entry;
  HANDLE find = FindFirstFileW(Widen(dir + "\\*").c_str(), &entry);
  if (find == INVALID_HANDLE_VALUE) return LastErrorStatus(dir, "FindFirstFile");
  std::vector<std::string> names;
  do {
    std::wstring_view name = entry.cFileName;
    if (name != L"." && name != L"..") names.push_back(Narrow(name.data(), name.size()));
  } while (FindNextFileW(find, &entry));
  const DWORD err = GetLastError();
  FindClose(find);
  if (err != ERROR_NO_MORE_FILES) return Win32Status(err, dir, "FindNextFile");
  return names;
}

std::string DirName(const std::string& path) {
  size_t slash = LastSeparator(path);
  if (slash == std::string::npos) return ".";
  if (slash == 0 || (slash == 2 && path[1] == ':')) return path.substr(0, slash + 1);
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  size_t slash = LastSeparator(path);
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace mapkv::internal
