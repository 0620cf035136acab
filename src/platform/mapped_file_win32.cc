// MappedFile for Windows. The POSIX backend maps the whole reserved range once; Windows cannot map
// a view larger than the file (a file mapping object as large as the reserve would extend the file
// to it), so this one keeps the reserved range as address space and maps the file into it in
// consecutive views as the file grows:
//
//   [view 0: bytes 0..a)[view 1: a..b)[view 2: b..c)[reserved, not mapped: c..mapped_size())
//
// The base address and every byte already mapped stay where they are, which the engine relies on
// (the lock words and the records are read through plain pointers, with no lock). A new view goes
// where the reservation was: the reservation is released, the view mapped at that address, and
// the rest reserved again, under a per-handle mutex. Another thread of the process could take the
// released range in between; then the view cannot go there and Cover() or Grow() fails (nothing
// already mapped moves; the next call tries again). Windows 10's placeholders (VirtualAlloc2 with
// MEM_RESERVE_PLACEHOLDER, MapViewOfFile3 with MEM_REPLACE_PLACEHOLDER) close that window; wine 8,
// on which CI runs the suite, has no placeholders, so they are not used yet.
//
// Views start at multiples of the allocation granularity (64 KiB) of the file and of the address
// space, so each one must end on such a boundary for the next to follow it. The engine sizes
// files in multiples of 64 KiB (format.h: kSizeGranule). Any other file (cut short, or made by
// a tool) is mapped as it is, read and written in place, but cannot grow here: its last view
// would have to be unmapped and mapped again, under the feet of this process's readers, which
// read without locks. Grow says so with ResourceExhausted, as for a full file.
//
// The file is extended by CreateFileMapping with the new size: Windows refuses SetEndOfFile on a
// file with mapped views, but a new, larger mapping object extends the file and allocates its
// clusters, so a full disk is an error there rather than a fault on a store.
//
// Byte-range locks are LockFileEx locks on bytes far past the end of the file (format.h), which
// are never read or written: Windows enforces them on ReadFile/WriteFile (not on mapped views),
// and the kernel drops them when the handle is closed or its process ends.
#include <windows.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "src/platform/mapped_file.h"
#include "src/platform/win32_status.h"
#include "src/status_macros.h"

namespace mapkv::internal {
namespace {

constexpr uint64_t kGranule = 64 * 1024;  // the allocation granularity of Windows on x86-64

DWORD High(uint64_t v) { return static_cast<DWORD>(v >> 32); }
DWORD Low(uint64_t v) { return static_cast<DWORD>(v & 0xffffffffu); }

class Win32MappedFile final : public MappedFile {
 public:
  Win32MappedFile(std::string path, HANDLE file, char* base, uint64_t reserve, bool read_only)
      : path_(std::move(path)),
        file_(file),
        base_(base),
        reserve_(reserve),
        read_only_(read_only) {}

  ~Win32MappedFile() override {
    for (const View& v : views_) UnmapViewOfFile(base_ + v.offset);
    if (reserved_ != nullptr) VirtualFree(reserved_, 0, MEM_RELEASE);
    if (file_ != INVALID_HANDLE_VALUE) CloseHandle(file_);  // drops every byte lock it holds
  }

  // Gives the file handle back to the caller (Open tries again with another address range).
  HANDLE TakeFile() { return std::exchange(file_, INVALID_HANDLE_VALUE); }

  // Reserves the whole range and maps the file's first `size` bytes into it.
  absl::Status Start(uint64_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    reserved_ = static_cast<char*>(VirtualAlloc(base_, reserve_, MEM_RESERVE, PAGE_NOACCESS));
    if (reserved_ == nullptr) return LastErrorStatus(path_, "VirtualAlloc (re-reserving)");
    if (size == 0) return absl::OkStatus();
    return MapThrough(std::min(size, reserve_), false);
  }

  const std::string& path() const override { return path_; }
  char* base() const override { return base_; }
  uint64_t mapped_size() const override { return reserve_; }
  uint64_t covered() const override { return covered_.load(std::memory_order_acquire); }

  absl::StatusOr<uint64_t> Size() override {
    LARGE_INTEGER size;
    if (!GetFileSizeEx(file_, &size)) return LastErrorStatus(path_, "GetFileSizeEx");
    return static_cast<uint64_t>(size.QuadPart);
  }

  absl::Status Cover(uint64_t end) override {
    if (end <= covered()) return absl::OkStatus();
    std::lock_guard<std::mutex> lock(mu_);
    if (end <= covered()) return absl::OkStatus();
    if (end > reserve_) {
      return absl::OutOfRangeError(
          absl::StrCat(path_, ": ", end, " bytes asked for, past the mapped ", reserve_));
    }
    absl::StatusOr<uint64_t> size = Size();
    if (!size.ok()) return size.status();
    if (*size < end) {
      return absl::FailedPreconditionError(absl::StrCat(
          path_, ": the file is ", *size, " bytes, shorter than the ", end, " bytes to map"));
    }
    return MapThrough(std::min(*size, reserve_), false);
  }

  absl::Status Grow(uint64_t size) override {
    if (size > reserve_) {
      return absl::ResourceExhaustedError(
          absl::StrCat(path_, ": cannot grow to ", size, " bytes past the mapped ", reserve_));
    }
    std::lock_guard<std::mutex> lock(mu_);
    MAPKV_ASSIGN_OR_RETURN(uint64_t current, Size());
    if (size <= current) return MapThrough(std::min(current, reserve_), false);
    if (covered() % kGranule != 0) {
      return absl::ResourceExhaustedError(absl::StrCat(
          path_, ": cannot grow on Windows: the file is ", covered(),
          " bytes, not a multiple of 64 KiB, so no view can follow its last one (mapkv never "
          "makes such a file; `mapkv compact` rewrites it as one that can grow)"));
    }
    return MapThrough((size + kGranule - 1) / kGranule * kGranule, true);
  }

  absl::Status Flush(uint64_t offset, uint64_t length) override {
    // FlushViewOfFile works within one view: flush the part of each view in the range.
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t end = offset + length;
    for (const View& v : views_) {
      const uint64_t from = std::max(offset, v.offset), to = std::min(end, v.offset + v.length);
      if (from >= to) continue;
      if (!FlushViewOfFile(base_ + from, static_cast<SIZE_T>(to - from))) {
        return LastErrorStatus(path_, absl::StrCat("FlushViewOfFile of bytes ", from, "..", to));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    if (!FlushFileBuffers(file_)) return LastErrorStatus(path_, "FlushFileBuffers");
    return absl::OkStatus();
  }

  absl::Status Zero(uint64_t offset, uint64_t length) override {
    if (length == 0) return absl::OkStatus();
    // Through the mapping, so every view of the file sees the zeros at once (no hole punching:
    // FSCTL_SET_ZERO_DATA frees clusters only in sparse files, which mapkv files are not).
    if (offset + length > covered()) {
      return absl::OutOfRangeError(absl::StrCat(path_, ": zeroing bytes ", offset, "..",
                                                offset + length, " past the mapped ", covered()));
    }
    std::memset(base_ + offset, 0, length);
    return Flush(offset, length);
  }

  // Windows has no lock conversion: a handle that holds a byte and asks for the other mode gives
  // its lock up and then asks for the new one. Where the new one cannot be had at once (wait is
  // false), the old mode is taken back, waiting for it: the callers convert only on the open byte,
  // whose exclusive holders are first openers that finish (open.cc).
  //
  // IsLockedByOther() and a lock that must not wait run inside the probe gate (below), so that
  // they never fail because of another probe.
  absl::StatusOr<bool> Lock(uint64_t byte, bool exclusive, bool wait) override {
    std::lock_guard<std::mutex> lock(locks_mu_);
    auto held = held_.find(byte);
    if (held == held_.end()) return LockGated(byte, exclusive, wait);
    if (held->second == exclusive) return true;
    const bool old_mode = held->second;
    if (!UnlockByte(byte)) {
      return LastErrorStatus(path_, absl::StrCat("UnlockFileEx of byte ", byte));
    }
    held_.erase(held);
    absl::StatusOr<bool> got = LockGated(byte, exclusive, wait);
    if (got.ok() && !*got) {
      absl::StatusOr<bool> back = LockByte(byte, old_mode, /*wait=*/true);  // outside the gate
      if (!back.ok()) return back.status();
    }
    return got;
  }

  absl::Status Unlock(uint64_t byte) override {
    std::lock_guard<std::mutex> lock(locks_mu_);
    if (held_.erase(byte) == 0) return absl::OkStatus();  // fcntl: unlocking nothing is fine
    if (!UnlockByte(byte)) {
      return LastErrorStatus(path_, absl::StrCat("UnlockFileEx of byte ", byte));
    }
    return absl::OkStatus();
  }

  // Windows cannot ask who holds a lock: try to take the byte exclusively, and give it back at
  // once. The callers ask only about bytes this handle does not hold.
  absl::StatusOr<bool> IsLockedByOther(uint64_t byte) override {
    std::lock_guard<std::mutex> lock(locks_mu_);
    if (held_.count(byte) != 0) {
      return absl::InternalError(
          absl::StrCat(path_, ": asked who else locks byte ", byte, ", which this handle holds"));
    }
    ProbeGate gate(this);
    if (!gate.status.ok()) return gate.status;
    OVERLAPPED at = At(byte);
    if (LockFileEx(file_, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &at)) {
      UnlockByte(byte);
      return false;
    }
    const DWORD err = GetLastError();
    if (err == ERROR_LOCK_VIOLATION || err == ERROR_IO_PENDING) return true;
    return Win32Status(err, path_, absl::StrCat("LockFileEx of byte ", byte));
  }

  absl::StatusOr<bool> StillNamedBy(const std::string& path) override {
    BY_HANDLE_FILE_INFORMATION mine;
    if (!GetFileInformationByHandle(file_, &mine)) {
      return LastErrorStatus(path_, "GetFileInformationByHandle");
    }
    HANDLE named =
        CreateFileW(Widen(path).c_str(), 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                    nullptr, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, nullptr);
    if (named == INVALID_HANDLE_VALUE) {
      const DWORD err = GetLastError();
      if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND) return false;
      return Win32Status(err, path, "CreateFile");
    }
    BY_HANDLE_FILE_INFORMATION theirs;
    const bool ok = GetFileInformationByHandle(named, &theirs);
    const DWORD err = GetLastError();
    CloseHandle(named);
    if (!ok) return Win32Status(err, path, "GetFileInformationByHandle");
    return mine.dwVolumeSerialNumber == theirs.dwVolumeSerialNumber &&
           mine.nFileIndexHigh == theirs.nFileIndexHigh &&
           mine.nFileIndexLow == theirs.nFileIndexLow;
  }

  absl::StatusOr<FileInfo> Stat() override {
    BY_HANDLE_FILE_INFORMATION info;
    if (!GetFileInformationByHandle(file_, &info)) {
      return LastErrorStatus(path_, "GetFileInformationByHandle");
    }
    FileInfo out = FileInfoOf(info);
    FILE_STANDARD_INFO standard;
    if (GetFileInformationByHandleEx(file_, FileStandardInfo, &standard, sizeof(standard))) {
      out.allocated = static_cast<uint64_t>(standard.AllocationSize.QuadPart);
    }
    return out;
  }

  // Permission bits are the read-only attribute here (as StatFile reports them): set when `mode`
  // grants no write, cleared otherwise.
  absl::Status SetMode(uint32_t mode) override {
    FILE_BASIC_INFO basic;
    if (!GetFileInformationByHandleEx(file_, FileBasicInfo, &basic, sizeof(basic))) {
      return LastErrorStatus(path_, "GetFileInformationByHandleEx (attributes)");
    }
    DWORD attributes = (mode & 0222) ? basic.FileAttributes & ~DWORD{FILE_ATTRIBUTE_READONLY}
                                     : basic.FileAttributes | FILE_ATTRIBUTE_READONLY;
    if (attributes == 0) attributes = FILE_ATTRIBUTE_NORMAL;  // 0 would mean "leave them"
    FILE_BASIC_INFO change{};                                 // zero times: left as they are
    change.FileAttributes = attributes;
    if (!SetFileInformationByHandle(file_, FileBasicInfo, &change, sizeof(change))) {
      return LastErrorStatus(path_, "SetFileInformationByHandle (attributes)");
    }
    return absl::OkStatus();
  }

  // Owners are ACLs on Windows, not uid:gid (StatFile reports 0:0 for every file): a new file
  // takes its directory's inherited ACL, as the original did, and there is nothing to give.
  absl::Status SetOwner(uint32_t, uint32_t) override { return absl::OkStatus(); }

 private:
  struct View {
    uint64_t offset;
    uint64_t length;
  };

  // A probe holds the byte it asks about for a moment, so two processes probing one byte at once
  // would each see the other and take it for a holder (two openers would each report "a process
  // without write permission has it open"), and a try-lock during a probe would fail (a first
  // opener would take itself for a later one and skip recovery). Probes and try-locks of all
  // handles therefore take turns on kPlatformLockByte. The gate is held only around calls that
  // do not wait, so nothing waits for a lock while holding it.
  struct ProbeGate {
    explicit ProbeGate(Win32MappedFile* f) : file(f) {
      OVERLAPPED at = At(kPlatformLockByte);
      if (!LockFileEx(file->file_, LOCKFILE_EXCLUSIVE_LOCK, 0, 1, 0, &at)) {
        status = LastErrorStatus(file->path_, "LockFileEx of the probe byte");
      }
    }
    ~ProbeGate() {
      if (status.ok()) file->UnlockByte(kPlatformLockByte);
    }
    Win32MappedFile* file;
    absl::Status status;
  };

  absl::StatusOr<bool> LockGated(uint64_t byte, bool exclusive, bool wait)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(locks_mu_) {
    if (wait) return LockByte(byte, exclusive, true);
    ProbeGate gate(this);
    if (!gate.status.ok()) return gate.status;
    return LockByte(byte, exclusive, false);
  }

  // The OVERLAPPED that names `byte` for LockFileEx / UnlockFileEx (on a synchronous handle).
  static OVERLAPPED At(uint64_t byte) {
    OVERLAPPED at{};
    at.Offset = Low(byte);
    at.OffsetHigh = High(byte);
    return at;
  }
  bool UnlockByte(uint64_t byte) {
    OVERLAPPED at = At(byte);
    return UnlockFileEx(file_, 0, 1, 0, &at);
  }

  absl::StatusOr<bool> LockByte(uint64_t byte, bool exclusive, bool wait)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(locks_mu_) {
    DWORD flags =
        (exclusive ? LOCKFILE_EXCLUSIVE_LOCK : 0) | (wait ? 0 : LOCKFILE_FAIL_IMMEDIATELY);
    OVERLAPPED at = At(byte);
    if (LockFileEx(file_, flags, 0, 1, 0, &at)) {
      held_[byte] = exclusive;
      return true;
    }
    const DWORD err = GetLastError();
    if (!wait && (err == ERROR_LOCK_VIOLATION || err == ERROR_IO_PENDING)) return false;
    return Win32Status(err, path_, absl::StrCat("LockFileEx of byte ", byte));
  }

  // Maps the file from covered() through `end` as one more view, at its place in the reserved
  // range. With `extend`, the mapping object is `end` bytes, which extends the file to that size
  // (and allocates it): that is how the file grows. Otherwise `end` is at most the file's size.
  absl::Status MapThrough(uint64_t end, bool extend) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const uint64_t from = covered();
    if (end <= from) return absl::OkStatus();
    if (from % kGranule != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(path_, ": cannot map the file past byte ", from,
                       ", which is not a multiple of 64 KiB (Windows maps views on such "
                       "boundaries; mapkv never makes such a file)"));
    }
    const uint64_t size = extend ? end : 0;  // 0: the file's size
    HANDLE mapping = CreateFileMappingW(file_, nullptr, read_only_ ? PAGE_READONLY : PAGE_READWRITE,
                                        High(size), Low(size), nullptr);
    if (mapping == nullptr) {
      return LastErrorStatus(path_, absl::StrCat(extend ? "growing to " : "mapping ", end,
                                                 " bytes (CreateFileMapping)"));
    }
    char* const at = base_ + from;
    if (reserved_ != nullptr) {
      VirtualFree(reserved_, 0, MEM_RELEASE);
      reserved_ = nullptr;
    }
    void* view = MapViewOfFileEx(mapping, read_only_ ? FILE_MAP_READ : FILE_MAP_WRITE, High(from),
                                 Low(from), static_cast<SIZE_T>(end - from), at);
    const DWORD err = GetLastError();
    CloseHandle(mapping);  // the view keeps the mapping object alive
    absl::Status status;
    if (view == nullptr) {
      status = Win32Status(
          err, path_, absl::StrCat("MapViewOfFileEx of bytes ", from, "..", end, " at its place"));
    } else {
      views_.push_back(View{from, end - from});
      covered_.store(end, std::memory_order_release);
    }
    const uint64_t rest = (covered() + kGranule - 1) / kGranule * kGranule;
    if (rest < reserve_) {
      reserved_ = static_cast<char*>(
          VirtualAlloc(base_ + rest, reserve_ - rest, MEM_RESERVE, PAGE_NOACCESS));
    }
    return status;
  }

  const std::string path_;
  HANDLE file_;  // INVALID_HANDLE_VALUE once TakeFile() gave it back
  char* const base_;
  const uint64_t reserve_;
  const bool read_only_;
  std::mutex mu_;                                  // views_, reserved_ and growing covered_
  std::vector<View> views_ ABSL_GUARDED_BY(mu_);   // in file order, back to back from 0
  char* reserved_ ABSL_GUARDED_BY(mu_) = nullptr;  // the reservation of [covered(), reserve_)
  std::atomic<uint64_t> covered_{0};               // end of the last view
  std::mutex locks_mu_;
  // byte -> exclusive, for the byte locks this handle holds
  std::map<uint64_t, bool> held_ ABSL_GUARDED_BY(locks_mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path,
                                                             const FileOpenOptions& options) {
  const DWORD access = options.read_only ? GENERIC_READ : GENERIC_READ | GENERIC_WRITE;
  DWORD disposition = OPEN_EXISTING;
  if (!options.read_only && options.exclusive) {
    disposition = CREATE_NEW;
  } else if (!options.read_only && options.create) {
    disposition = OPEN_ALWAYS;
  }
  // Shared for reading, writing and deleting: other processes open the same database, and an
  // offline compaction renames its copy over the name.
  HANDLE file = CreateFileW(Widen(path).c_str(), access,
                            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                            disposition, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (file == INVALID_HANDLE_VALUE) return LastErrorStatus(path, "CreateFile");
  BY_HANDLE_FILE_INFORMATION info;
  if (!GetFileInformationByHandle(file, &info)) {
    absl::Status s = LastErrorStatus(path, "GetFileInformationByHandle");
    CloseHandle(file);
    return s;
  }
  if (info.dwFileAttributes & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_DEVICE)) {
    CloseHandle(file);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  const uint64_t size = (uint64_t{info.nFileSizeHigh} << 32) | info.nFileSizeLow;
  uint64_t reserve = std::max<uint64_t>(std::max<uint64_t>(options.reserve, size), 1);
  reserve = (reserve + kGranule - 1) / kGranule * kGranule;
  // Find a free range of the right size, give it back, and reserve it again in Start() (another
  // thread may take it in between: then look again).
  absl::Status started;
  for (int attempt = 0; attempt < 8; ++attempt) {
    void* probe = VirtualAlloc(nullptr, reserve, MEM_RESERVE, PAGE_NOACCESS);
    if (probe == nullptr) {
      // As mmap's ENOMEM on POSIX: not that much address space (a header asking for exabytes).
      const DWORD err = GetLastError();
      CloseHandle(file);
      return absl::ResourceExhaustedError(absl::StrCat(
          path, ": cannot reserve ", reserve, " bytes of address space: ", Win32Message(err)));
    }
    VirtualFree(probe, 0, MEM_RELEASE);
    auto mapped = std::make_unique<Win32MappedFile>(path, file, static_cast<char*>(probe), reserve,
                                                    options.read_only);
    started = mapped->Start(size);
    if (started.ok()) return std::unique_ptr<MappedFile>(std::move(mapped));
    file = mapped->TakeFile();  // for the next attempt
  }
  CloseHandle(file);
  return started;
}

}  // namespace mapkv::internal
