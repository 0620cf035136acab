// File-system operations on whole files and directories, for offline compaction (src/compact.cc)
// and the `mapkv` tool: sizes and owners, atomic renames, flushing a directory entry, temporary
// names, directory listing, and whether a standard stream is a terminal. OS errors become
// absl::Status here, each naming the path and the call that failed. One implementation per
// platform (fs_posix.cc, ...), chosen by CMake.
#ifndef MAPKV_PLATFORM_FS_H_
#define MAPKV_PLATFORM_FS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mapkv::internal {

struct FileInfo {
  uint64_t size = 0;
  uint64_t allocated = 0;  // bytes of disk the file takes (holes and sparse tails take none)
  uint32_t mode = 0;       // permission bits (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t device = 0;  // with inode: the file's identity, whatever name reaches it
  uint64_t inode = 0;
  bool regular = false;  // a regular file (not a directory, device, pipe...)
  bool symlink = false;  // a symbolic link (only StatLink() sees one: the others follow it)
};

// Whether `a` and `b` describe one file, whatever names reach it.
inline bool SameFile(const FileInfo& a, const FileInfo& b) {
  return a.device == b.device && a.inode == b.inode;
}

// What `path` names (following symbolic links). NotFound when nothing does.
absl::StatusOr<FileInfo> StatFile(const std::string& path);

// What the name `path` itself is, without following a symbolic link there (lstat): a link is
// reported as one (symlink true, regular false), never as the file it points to. NotFound when
// nothing is there. For deciding what to do with a name in a directory that others may write.
absl::StatusOr<FileInfo> StatLink(const std::string& path);

// True when `path` names something; false when nothing does; an error when it cannot be told
// (a directory on the way that cannot be searched, ...).
absl::StatusOr<bool> PathExists(const std::string& path);

// The canonical absolute path of `path`, symbolic links resolved (realpath). NotFound when
// nothing is there.
absl::StatusOr<std::string> ResolvePath(const std::string& path);

// Sets the permission bits of `path` (chmod), whatever the umask. Follows a symbolic link: for a
// file made on behalf of another in a directory others may write, use MappedFile::SetMode on the
// open file instead.
absl::Status SetMode(const std::string& path, uint32_t mode);

// Renames `from` to `to` in one step: `to`, if it exists, is replaced atomically, so any process
// that opens `to` by name finds the old file or the new one, never neither (POSIX rename).
// Both must be on one file system.
absl::Status ReplaceFile(const std::string& from, const std::string& to);

// Whether ReplaceFile() fails while a process (this one included) has `to` mapped: Windows refuses
// to replace a file with mapped views; POSIX replaces the name and leaves the mappings on the old
// file.
bool ReplaceFailsWhileMapped();

// As ReplaceFile, but fails with AlreadyExists, changing nothing, when `to` exists.
absl::Status RenameNoReplace(const std::string& from, const std::string& to);

// Swaps the names `a` and `b` in one step (Linux: renameat2 with RENAME_EXCHANGE): each then names
// the file the other named, and both exist throughout. Unlike ReplaceFile this can be undone by
// swapping again, so a caller that finds the wrong file under `b` afterwards can put the old one
// back. Both must exist, on one file system. Unimplemented where the platform or the file system
// has no such call: then ReplaceFile is what there is.
absl::Status ExchangeFiles(const std::string& a, const std::string& b);

// Makes the entries of the directory that holds `path` durable (fsync of the directory), so a
// rename or creation in it survives a power cut.
absl::Status SyncDirectoryOf(const std::string& path);

// Removes a file; NotFound when missing.
absl::Status RemovePath(const std::string& path);

// The names in directory `dir` (not "." and ".."), in no particular order.
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir);

// The directory part of `path` ("." for a bare name) and the last component.
std::string DirName(const std::string& path);
std::string BaseName(const std::string& path);

// A name next to `path`, in its directory, that no other process picks:
// "<path>.<tag>-<pid>-<random hex>.tmp". IsTempPathOf() recognises such names (of any process)
// for `path`'s base name and `tag`.
std::string UniqueTempPath(const std::string& path, std::string_view tag);
bool IsTempNameOf(std::string_view name, const std::string& path, std::string_view tag);

}  // namespace mapkv::internal

#endif  // MAPKV_PLATFORM_FS_H_
