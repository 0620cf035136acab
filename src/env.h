// What the engine asks of its surroundings: the file it maps, the machine's boot id, and the points
// where a test may stop it. Options::env names one (nullptr: the platform's, Env::Default()).
// Tests replace it to simulate power cuts (tests/fault_file.h keeps the "disk" in memory and
// reboots by changing the boot id) and to stop a process at a chosen point, deterministically, to
// SIGKILL it there (tests/kill_matrix_test.cc). Not part of the public API.
#ifndef MAPKV_ENV_H_
#define MAPKV_ENV_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "src/platform/mapped_file.h"
#include "src/platform/process.h"

namespace mapkv::internal {

enum class HookPoint {
  kReadLocked,       // a read holds the shared side: DB::Get's fallback, GetStats, a ReadTxn of a
                     // format version 1 file (right after BeginRead)
  kWriteLocked,      // BeginWrite holds the writer lock
  kCommitApplying,   // Commit() is past its commit point, half-way through its index changes,
                     // holding the exclusive side
  kIndexGrowing,     // a commit is half-way through rehashing into a new index table
  kFileGrown,        // the file was extended but the new size is not yet recorded
  kEvicting,         // a ring's eviction moved head, holding the exclusive side, and has not yet
                     // removed the index entries of what it passed
  kSnapshotPinned,   // a ReadTxn's snapshot is pinned in its handle's slot (end of BeginRead)
  kCompactCopied,    // an online compaction copied its snapshot and has not yet copied the
                     // commits made since
  kCompactMarked,    // an online compaction marked the file replaced (holding its writer lock)
                     // and has not yet put its new file under the name
  kCompactRenamed,   // an online compaction put its new file under the name and still holds
                     // the old file's writer lock
  kCompactCaughtUp,  // an online compaction copied a round of the commits made since its
                     // snapshot, and paces the writers (LockState::pace_*) until the next
  kCleaning,         // a cleaning step (format version 5) wrote the copies of the live records
                     // it walked and has not yet published them
  kGivingBack,       // the cleaner is about to give the log below a checkpoint's head back to
                     // the file system (holding the writer lock)
  kRingCopied,       // a cache's read transaction copied a piece of its ring and has not yet
                     // checked that no eviction passed it (holding no lock, unless its copies
                     // kept being lapped)
};

class Env {
 public:
  virtual ~Env() = default;

  virtual absl::StatusOr<std::unique_ptr<MappedFile>> OpenFile(const std::string& path,
                                                               const FileOpenOptions& options) {
    return MappedFile::Open(path, options);
  }
  // Empty when the platform has none.
  virtual std::string BootId() { return internal::BootId(); }
  // Called at `point`; a test may stop the process there.
  virtual void AtPoint(HookPoint point) { (void)point; }

  // The platform's: stops nowhere.
  static Env& Default() {
    static Env env;
    return env;
  }
};

}  // namespace mapkv::internal

#endif  // MAPKV_ENV_H_
