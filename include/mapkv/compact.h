// Offline compaction: rewrite a database with only its live records.
//
// Overwritten and deleted records, and index tables outgrown by the index, stay in a database's
// file for as long as it lives (Stats::garbage_bytes). Compact() copies the live records into a
// fresh file, with an index sized for them, flushes that file to disk, and only then puts it in
// place with one atomic rename (and a flush of the directory): whoever opens the database by name
// finds the old file or the new one, whole, never a mix. `mapkv compact` is this call.
//
// Safety:
// - The source is held exclusively (Options::exclusive) for the whole run: Compact refuses with
//   FailedPrecondition, naming how many handles have it open, when any other handle does, and
//   other processes' Open waits (up to its lock_timeout) while it runs.
// - The new file is written under a temporary name next to the destination
//   ("<dst>.compact-<pid>-<random>.tmp"). Until the rename, the original is not modified; a
//   failure (disk full, a damaged record, ...) removes the temporary file and returns the error;
//   a kill leaves the original intact and openable, and leaves the temporary file behind, which
//   the next Compact() with the same destination removes before it starts: a regular file of such
//   a name owned by the caller (or, when the caller is root, by the database's owner). Anything
//   else of such a name (a symbolic link, another user's file) is never opened nor followed, and
//   is left where it is (CompactResult::kept_leftovers).
// - The new file gets the original's permission bits, owner and group (when the caller may give
//   them), and its growth limit (max_file_size), all set through the descriptor that wrote it.
//   It is renamed into place only when the temporary name still names that file, and the
//   destination is checked to name it afterwards: when someone who may write the directory
//   replaced the temporary file meanwhile (by a symbolic link to another file, say), Compact
//   fails with Aborted, changes nothing that the link leads to, and leaves the original in
//   place (where the file system can exchange two names in one step; Linux's can).
// - The new file is sized from the source's counters only as far as the source's file can hold
//   them: a file whose counters claim more live data than its log holds gets a compacted copy
//   no larger than that log and a new index.
#ifndef MAPKV_COMPACT_H_
#define MAPKV_COMPACT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace mapkv {

// Where a compaction is, for a progress display.
struct CompactProgress {
  enum class Phase {
    kCopy,     // copying live records; keys_done and bytes_done advance
    kFlush,    // the copy is complete; flushing it to disk
    kReplace,  // renaming it into place
  };
  Phase phase = Phase::kCopy;
  uint64_t keys_done = 0;
  uint64_t keys_total = 0;
  uint64_t bytes_done = 0;   // bytes of live records copied so far
  uint64_t bytes_total = 0;  // bytes of live records in the source (Stats::live_bytes)
};

struct CompactOptions {
  // Called on the calling thread at the start of each phase and every few thousand keys while
  // copying. Unset: no reports. It must not use the database.
  std::function<void(const CompactProgress&)> progress;

  // Options::lock_timeout of the handles Compact opens. The source is opened exclusively, which
  // never waits: another handle on it means a refusal at once.
  std::chrono::milliseconds lock_timeout{10000};

  // Bytes of keys and values per write transaction of the copy (each commit is one batch in the
  // new file); at least 1 MiB.
  uint64_t batch_bytes = 64ull << 20;
};

struct CompactResult {
  bool in_place = false;        // the source was replaced (no separate destination)
  uint64_t keys = 0;            // live keys copied
  uint64_t dropped = 0;         // a cache's expired values and leases, not copied
  uint64_t size_before = 0;     // bytes of the source file
  uint64_t size_after = 0;      // bytes of the new file
  uint64_t live_bytes = 0;      // bytes of the live records copied
  uint64_t garbage_before = 0;  // Stats::garbage_bytes of the source
  uint64_t micros = 0;          // wall-clock time, from opening the source to the rename
  // Temporary files of earlier, killed compactions to the same destination, removed first.
  std::vector<std::string> removed_leftovers;
  // Names of that form that were not removed, each with the reason ("PATH: a symbolic link, ...").
  std::vector<std::string> kept_leftovers;
};

// Compacts the database at `src`. With `dst` empty or naming `src` itself, the compacted file
// replaces `src`; otherwise it is written to `dst`, which must not exist, and `src` is left as it
// was. Errors, each naming the file: NotFound (no `src`), FailedPrecondition (`src` open
// elsewhere: the message says by how many handles), AlreadyExists (`dst` exists), DataLoss (a
// damaged record in `src`: compaction copies no damage), ResourceExhausted (disk full), Aborted
// (the temporary file or the destination was renamed or replaced by another process meanwhile),
// and the OS's errors. On any error, `src` is unchanged and no temporary file of this call is
// left under its own name.
absl::StatusOr<CompactResult> Compact(const std::string& src, const std::string& dst,
                                      const CompactOptions& options = {});

}  // namespace mapkv

#endif  // MAPKV_COMPACT_H_
