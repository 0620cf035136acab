// Points in the engine where a test can stop a process deterministically (to SIGKILL it there),
// and stand-ins for the OS under a simulated power cut. Not part of the public API. A hook costs
// one relaxed load and a branch when unset.
#ifndef MAPKV_TEST_HOOKS_H_
#define MAPKV_TEST_HOOKS_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "src/platform/mapped_file.h"

namespace mapkv::internal {

enum class HookPoint {
  kReadLocked,      // a read holds the shared side: DB::Get's fallback, GetStats, a ReadTxn of a
                    // format version 1 file (right after BeginRead)
  kWriteLocked,     // BeginWrite holds the writer lock
  kCommitApplying,  // Commit() is past its commit point, half-way through its index changes,
                    // holding the exclusive side
  kIndexGrowing,    // a commit is half-way through rehashing into a new index table
  kFileGrown,       // the file was extended but the new size is not yet recorded
  kEvicting,        // a ring's eviction moved head, holding the exclusive side, and has not yet
                    // removed the index entries of what it passed
  kSnapshotPinned,  // a ReadTxn's snapshot is pinned in its handle's slot (end of BeginRead)
};

using HookFn = void (*)(HookPoint);
inline std::atomic<HookFn> test_hook{nullptr};

// Sets the process-wide hook (nullptr: none). For tests only.
inline void SetTestHook(HookFn fn) { test_hook.store(fn, std::memory_order_release); }

inline void RunTestHook(HookPoint point) {
  if (HookFn fn = test_hook.load(std::memory_order_relaxed); fn != nullptr) [[unlikely]] {
    fn(point);
  }
}

// Stand-ins for the platform's file opening and boot id, for the power-cut simulation
// (tests/fault_file.h), which keeps the "disk" in memory and reboots by changing the boot id.
using OpenFileFn = absl::StatusOr<std::unique_ptr<MappedFile>> (*)(const std::string& path,
                                                                   const FileOpenOptions& options);
using BootIdFn = std::string (*)();
inline std::atomic<OpenFileFn> open_file_hook{nullptr};
inline std::atomic<BootIdFn> boot_id_hook{nullptr};

inline absl::StatusOr<std::unique_ptr<MappedFile>> OpenMappedFile(const std::string& path,
                                                                  const FileOpenOptions& options) {
  if (OpenFileFn fn = open_file_hook.load(std::memory_order_acquire)) return fn(path, options);
  return MappedFile::Open(path, options);
}

}  // namespace mapkv::internal

#endif  // MAPKV_TEST_HOOKS_H_
