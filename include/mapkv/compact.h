// Compaction and backup: rewrite a database with only its live records, in its place or into
// another file.
//
// Overwritten and deleted records, and index tables outgrown by the index, stay in a database's
// file for as long as it lives (Stats::garbage_bytes). Compact() copies the live records into a
// fresh file, with an index sized for them, flushes that file to disk, and only then puts it in
// place with one atomic rename (and a flush of the directory): whoever opens the database by name
// finds the old file or the new one, whole, never a mix. `mapkv compact` is this call. Backup()
// is the same copy into another file of a database that stays in use, as `mdb_copy` and SQLite's
// `.backup` make one: `mapkv backup` is that call.
//
// Commits start this compaction by themselves once the log holds Options::compact_ratio times what
// it would keep (options.h).
//
// Compaction in place of a database of format version 4 or 5 runs while it stays in use (online):
// other handles, of this process and of others, go on reading and committing throughout. It
// copies a snapshot of the database into the new file, then the commits made meanwhile, and then,
// holding the database's writer lock (commits wait meanwhile, for the last of those commits and a
// flush of the new file), marks the old file replaced and renames the new one over it. Every
// handle moves to the new file at its next call (DB reopens the name: a handle's calls never fail
// for it); a ReadTxn begun before reads the old file to its end. The old file's blocks go back to
// the file system at once when no snapshot reads it, and otherwise when the last process that has
// it open lets it go. A kill at any step leaves one file in use under the name, whole: the old one
// until the rename (the next writer takes the mark back), the new one after it. Needs every
// process that has the file open to run a mapkv that follows a compaction (this one and later):
// otherwise FailedPrecondition naming the pid. Windows cannot rename over a file that a process
// has mapped: there, and for caches and format version 1 files everywhere, compaction in place
// needs the file alone, as follows.
//
// Safety:
// - Where the new file replaces the source alone (compaction in place of a cache, a format
//   version 1 file, or on Windows), the source is held exclusively (Options::exclusive) for the
//   whole run: Compact refuses with FailedPrecondition, naming how many handles have it open, when
//   any other handle does, and other processes' Open waits (up to its lock_timeout) while it
//   runs.
// - Into another file (Backup, or Compact with a destination of its own), the source is opened as
//   any reader opens it (read-only; for writing only where it needs recovery first, which that
//   open does) and read from one ReadTxn: the copy holds the database exactly as of one commit.
//   Of a format version 4 or 5 database that is a snapshot, which holds no lock: other processes
//   commit meanwhile as usual; of a cache, a copy of its entries, which holds nothing either. Of
//   a format version 1 file, the ReadTxn holds the shared lock until the copy is read
//   (CompactResult::read_under_lock): its commits wait, and fail with DeadlineExceeded when that
//   takes longer than their lock_timeout.
// - The new file is written under a temporary name next to the destination
//   ("<dst>.compact-<pid>-<random>.tmp", "<dst>.backup-<pid>-<random>.tmp" for Backup). Until the
//   rename, nothing under the destination's name is modified; a failure (disk full, a damaged
//   record, ...) removes the temporary file and returns the error; a kill leaves the destination
//   as it was, and leaves the temporary file behind, which the next Compact() or Backup() with
//   the same destination removes before it starts: a regular file of such a name owned by the
//   caller (or, when the caller is root, by the database's owner). Anything else of such a name
//   (a symbolic link, another user's file) is never opened nor followed, and is left where it is
//   (CompactResult::kept_leftovers). Two runs to one destination at once: the later one removes
//   the earlier one's file, which then fails with Aborted.
// - The new file gets the source's permission bits, growth limit (max_file_size), owner and
//   group, all set through the descriptor that wrote it. In place a failure to give them fails
//   the compaction. Into another file, a caller other than root who is not the source's owner
//   (a backup operator who may read it) cannot give files away: the copy stays theirs, in the
//   source's group where they belong to it, and otherwise without the group permission bits.
//   It is renamed into place only when the temporary name still names that file, and the
//   destination is checked to name it afterwards: when someone who may write the directory
//   replaced the temporary file meanwhile (by a symbolic link to another file, say), the call
//   fails with Aborted, changes nothing that the link leads to, and leaves the destination as it
//   was (where the file system can exchange two names in one step; Linux's can).
// - An existing destination other than the source is replaced only with
//   CompactOptions::replace_existing, and only when it is a mapkv file that no other handle has
//   open: it is held exclusively from the start until the rename, as compaction in place holds
//   its source, so that no process writes to the file the rename takes the name from.
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

namespace internal {
class Env;  // src/env.h
}  // namespace internal

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

  // Options::lock_timeout of the handles opened. A source (or a destination) opened exclusively
  // never waits: another handle on it means a refusal at once. A source read under its shared
  // lock (format version 1, a cache) waits this long for a writer to finish, and an online
  // compaction this long for the source's writer lock at its last step.
  std::chrono::milliseconds lock_timeout{10000};

  // Replace a destination that exists (other than the source), atomically, rather than refuse
  // with AlreadyExists. It must be a mapkv file that no other handle has open (it is held
  // exclusively until the rename): otherwise AlreadyExists (not a mapkv file) or
  // FailedPrecondition (open elsewhere), and it is left as it was.
  bool replace_existing = false;

  // Bytes of keys and values per write transaction of the copy (each commit is one batch in the
  // new file); at least 1 MiB.
  uint64_t batch_bytes = 64ull << 20;

  // For tests: the surroundings of the handles of an online compaction (src/env.h): the source's,
  // whose stopping points include the compaction's steps, and the new file's. nullptr: the
  // platform's.
  internal::Env* env = nullptr;
};

struct CompactResult {
  bool in_place = false;  // the source was replaced (no separate destination)
  bool replaced = false;  // an existing destination was replaced (replace_existing)
  // The source was read holding its shared lock (format version 1), so its writers waited for
  // the copy; false for a snapshot (format version 4 or 5, or a cache's copy) and for a source
  // held alone.
  bool read_under_lock = false;
  uint64_t keys = 0;            // live keys copied
  uint64_t dropped = 0;         // a cache's expired values and leases, not copied
  uint64_t size_before = 0;     // bytes of the source file
  uint64_t size_after = 0;      // bytes of the new file
  uint64_t live_bytes = 0;      // bytes of the live records copied
  uint64_t garbage_before = 0;  // Stats::garbage_bytes of the source
  // Stats::garbage_bytes of the new file: online, the versions that commits made while it ran
  // replaced, copied before they were (0 for a copy of a database held alone or still).
  uint64_t garbage_after = 0;
  // Online: log bytes of the commits copied in the last round, under the source's writer lock,
  // while its writers waited (the rounds before it are paced to leave little; 0 otherwise).
  uint64_t locked_bytes = 0;
  uint64_t micros = 0;  // wall-clock time, from opening the source to the rename
  // Temporary files of earlier, killed compactions or backups to the same destination, removed
  // first.
  std::vector<std::string> removed_leftovers;
  // Names of that form that were not removed, each with the reason ("PATH: a symbolic link, ...").
  std::vector<std::string> kept_leftovers;
};

// Compacts the database at `src`. With `dst` empty or naming `src` itself, the compacted file
// replaces `src`: online for a format version 4 or 5 database (above), which other handles go on
// using; otherwise `src` must not be open elsewhere. Otherwise it is written to `dst`, which must
// not exist (unless options.replace_existing), from one snapshot of `src` taken while it stays in
// use (see Backup), and `src` is left as it was. Errors, each naming the file: NotFound (no
// `src`), FailedPrecondition (in place: `src` open elsewhere, the message says by how many
// handles, or one whose mapkv cannot follow an online compaction; `dst` replaced: open
// elsewhere), AlreadyExists (`dst` exists), DataLoss (a damaged
// record in `src`: compaction copies no damage), ResourceExhausted (disk full), Aborted (the
// temporary file or the destination was renamed or replaced by another process meanwhile),
// DeadlineExceeded (a writer kept the source's lock past lock_timeout: a format version 1 source
// read under it, or an online compaction's last step), and
// the OS's errors. On any error, `src` and `dst` are unchanged and no temporary file of this call
// is left under its own name.
absl::StatusOr<CompactResult> Compact(const std::string& src, const std::string& dst,
                                      const CompactOptions& options = {});

// Writes a consistent, compact copy of the database (or cache) at `db` into the new file `copy`
// while other processes go on using `db`: the live records of one ReadTxn of it (a snapshot that
// holds no lock, for a format version 4 or 5 database; the shared lock, for a version 1 file or a
// cache: their writers wait meanwhile), flushed, then renamed to `copy` in one step, as Compact
// writes its file. `db` is only read, unless it needs recovery (a writer died half-way through a
// commit, or the machine stopped): then it is opened for writing, which recovers it, as the next
// writer's open would. A database's copy is of the current format version (a version 4 source's
// stays version 4: the builds that share it may predate version 5); a cache's copy is a cache, with
// its capacity, less its expired values and leases (the copy's leases would belong to nobody).
// Errors, each naming the file: NotFound (no `db`, or no directory for `copy`), InvalidArgument
// (`copy` names `db` itself), AlreadyExists (`copy` exists, unless options.replace_existing),
// FailedPrecondition (the `copy` to replace is open elsewhere), and those of Compact. On any error,
// `db` and `copy` are unchanged and no temporary file of this call is left.
absl::StatusOr<CompactResult> Backup(const std::string& db, const std::string& copy,
                                     const CompactOptions& options = {});

}  // namespace mapkv

#endif  // MAPKV_COMPACT_H_
