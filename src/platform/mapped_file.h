// The one interface to the OS for a database file: open, map, grow, flush, byte-range locks.
// OS errors become absl::Status here and nowhere else. One implementation per platform
// (mapped_file_posix.cc, ...), chosen by CMake.
#ifndef MAPKV_PLATFORM_MAPPED_FILE_H_
#define MAPKV_PLATFORM_MAPPED_FILE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "src/platform/fs.h"

namespace mapkv::internal {

struct FileOpenOptions {
  bool create = true;      // create when missing (POSIX: O_EXCL, never through a link)
  bool exclusive = false;  // fail with AlreadyExists when it exists
  uint64_t reserve = 0;    // bytes of address space to map (at least the file's size)
  bool read_only = false;  // open and map for reading only (no create); writes through base() fault
  uint32_t mode = 0600;    // permission bits of a new file (the umask may narrow them)
  bool huge_pages = false;  // ask for transparent huge pages (a hint; ignored where unsupported)
};

// A lock byte that the platform layer keeps for itself (Windows serialises lock probes on it,
// mapped_file_win32.cc); format.h's lock bytes stay clear of it.
inline constexpr uint64_t kPlatformLockByte = (uint64_t{1} << 50) - 2;

class MappedFile {
 public:
  virtual ~MappedFile() = default;

  // Opens (or creates) and maps `path` read-write (or read-only), shared between processes.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path,
                                                          const FileOpenOptions& options);

  virtual const std::string& path() const = 0;
  // The mapping: address space reserved for [0, mapped_size()); bytes past size() or past
  // covered() must not be touched.
  virtual char* base() const = 0;
  virtual uint64_t mapped_size() const = 0;
  // The prefix of the mapping that maps the file now: [0, covered()). POSIX maps the whole
  // reserved range at Open, so this is mapped_size() there. Windows cannot map a view larger than
  // the file, so it maps views as the file grows and this is the end of the last one.
  virtual uint64_t covered() const { return mapped_size(); }
  // Makes [0, end) of the mapping map the file (end <= the file's size): maps what this or another
  // process added to the file since. Never changes the file. Thread-safe. FailedPrecondition when
  // the file is shorter than `end`.
  virtual absl::Status Cover(uint64_t /*end*/) { return absl::OkStatus(); }
  // The file's size now (asks the OS).
  virtual absl::StatusOr<uint64_t> Size() = 0;
  // Extends the file to `size` bytes with blocks allocated (so a full disk is an error here, not a
  // fault later) and covers it in this mapping. Never shrinks. Other processes see the new bytes
  // through their own mappings (after Cover() where covered() is short of them).
  virtual absl::Status Grow(uint64_t size) = 0;
  // Makes the mapping's bytes [offset, offset + length) durable (msync MS_SYNC / FlushViewOfFile).
  virtual absl::Status Flush(uint64_t offset, uint64_t length) = 0;
  // Makes the file's data and metadata durable (fsync / FlushFileBuffers).
  virtual absl::Status Sync() = 0;
  // Starts writing the mapping's bytes [offset, offset + length) to the disk and returns without
  // waiting (Linux: sync_file_range), so that a Flush of them later finds little left to write.
  // A hint: nothing where the platform has no such call.
  virtual void StartFlush(uint64_t /*offset*/, uint64_t /*length*/) {}
  // Zeroes the file's bytes [offset, offset + length), and the mapping sees zeros there at once;
  // durable after Sync(). The blocks stay allocated (ResourceExhausted where taking them again
  // fails), so that a store there never meets a full disk.
  virtual absl::Status Zero(uint64_t offset, uint64_t length) = 0;

  // Gives the file system back the blocks of [offset, offset + length), whole pages inside it
  // (the file's size stays; reads there see zeros, in every mapping at once). For a range that no
  // one will write again: Unimplemented where the platform cannot.
  virtual absl::Status Punch(uint64_t /*offset*/, uint64_t /*length*/) {
    return absl::UnimplementedError(absl::StrCat(path(), ": cannot give blocks back here"));
  }
  // This handle is done with the file: beyond its first `keep` bytes the mapping reads zeros
  // from here on (what it read there before is gone, for a reader still racing this: nothing
  // faults), the address space past the file's end goes back, and the descriptor is closed
  // (with its locks). The first `keep` bytes stay mapped to the file. Nothing may call this
  // handle but to read [0, size) through base() afterwards. A no-op where unsupported.
  virtual void Retire(uint64_t /*keep*/) {}

  // A hint: map [offset, offset + length), inside the file, for writing now rather than page by
  // page at the first stores (MADV_POPULATE_WRITE). Never changes the bytes; failures are ignored.
  virtual void Prefault(uint64_t /*offset*/, uint64_t /*length*/) {}

  // Byte-range locks on bytes that are never read or written. Held per open file (two handles in
  // one process conflict), released by the kernel when the process dies.
  // Returns false (and no lock) when `wait` is false and another handle holds a conflicting lock.
  // Locking a byte the handle holds already converts its lock (shared <-> exclusive), as fcntl
  // does; Windows has no conversion, and mapped_file_win32.cc says how it stands in.
  virtual absl::StatusOr<bool> Lock(uint64_t byte, bool exclusive, bool wait) = 0;
  virtual absl::Status Unlock(uint64_t byte) = 0;
  // True when another handle (any process) holds a lock on `byte`.
  virtual absl::StatusOr<bool> IsLockedByOther(uint64_t byte) = 0;
  // True when `path` still names the file this handle has open (it may have been renamed over).
  virtual absl::StatusOr<bool> StillNamedBy(const std::string& /*path*/) { return true; }

  // The open file's identity, size, owner and permission bits, asked of the handle (fstat), not
  // of its name, which anyone who may write the directory can point elsewhere meanwhile. A
  // file that is not the OS's (a test's stand-in) has none: Unimplemented.
  virtual absl::StatusOr<FileInfo> Stat() { return NoOsFile("Stat"); }
  // Sets the open file's permission bits (fchmod), whatever the umask.
  virtual absl::Status SetMode(uint32_t /*mode*/) { return NoOsFile("SetMode"); }
  // Gives the open file the owner and group `uid`:`gid` (fchown), for a file made on behalf of
  // another user.
  virtual absl::Status SetOwner(uint32_t /*uid*/, uint32_t /*gid*/) { return NoOsFile("SetOwner"); }

 private:
  absl::Status NoOsFile(const char* call) const {
    return absl::UnimplementedError(absl::StrCat(path(), ": ", call, ": not a file of the OS"));
  }
};

}  // namespace mapkv::internal

#endif  // MAPKV_PLATFORM_MAPPED_FILE_H_
