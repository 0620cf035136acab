// Options for opening a mapkv database.
#ifndef MAPKV_OPTIONS_H_
#define MAPKV_OPTIONS_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>

namespace mapkv {

namespace internal {
class Env;  // src/env.h
}  // namespace internal

// When committed data reaches the disk.
enum class Durability {
  // Commits survive the crash of any process (the page cache holds them); the OS writes them back
  // when it likes. Only Checkpoint() guarantees they survive a power cut.
  kNone,
  // As kNone, plus a Checkpoint() after a commit once `checkpoint_interval` has passed or
  // `checkpoint_bytes` have been appended since the last one.
  kPeriodic,
  // Every Commit() flushes its records to disk before it returns.
  kSync,
};

// What a mapkv file holds: a database (DB) or a cache (Cache, include/mapkv/cache.h), whose values
// sit behind an envelope with their expiry. Each refuses to open the other.
enum class FileKind {
  kDatabase,
  kCache,
  kAny,  // open either (tools, compaction); a new file is a database
};

struct Options {
  // Create the file when it does not exist. An existing empty file (size 0) is also initialised.
  bool create_if_missing = true;

  // The kind of file expected: Open fails with FailedPrecondition on a file of the other kind.
  // Cache::Open sets kCache.
  FileKind kind = FileKind::kDatabase;

  // A new cache's capacity in bytes (FileKind::kCache; Cache::Open sets it from
  // CacheOptions::capacity): the file never grows past it, and its log is a ring whose oldest
  // entries are evicted to make room. 0: a cache file that grows as a database does.
  uint64_t cache_capacity = 0;

  // Fail with AlreadyExists when the file exists.
  bool error_if_exists = false;

  // Refuse every write through this handle (PermissionDenied), and never change the file: where
  // it needs recovery first, Open fails with FailedPrecondition and kNeedsRecoveryPayload (db.h)
  // instead of recovering. A process that may write the file takes part in the shared lock
  // protocol as usual. A user with read permission alone can open read-only too, but cannot take
  // part in that protocol: such a handle opens only while no process has the file open, and while
  // it is open, Open for writing gets FailedPrecondition (docs/durability.md, "Who may do what").
  bool read_only = false;

  // Hold the file alone for the life of the handle (offline work such as compaction): Open fails
  // with FailedPrecondition when another handle has the file open, and while this one is open,
  // other Opens wait up to their lock_timeout and then fail with DeadlineExceeded.
  bool exclusive = false;

  // Permission bits of a new file (masked to 0777: never setuid, setgid or sticky). The process
  // umask may narrow them; nothing widens them. Owner read and write only by default: every
  // process that can write the file is trusted with it.
  uint32_t file_mode = 0600;

  Durability durability = Durability::kNone;

  // Map the file with transparent huge pages where the OS offers them (Linux: MADV_HUGEPAGE, with
  // /sys/kernel/mm/transparent_hugepage/enabled at "madvise" or "always" and a file system with
  // large folios, such as ext4 or XFS on 6.x kernels). One TLB entry then covers 2 MiB instead of
  // 4 KiB: random Gets on a database much larger than the CPU caches and, above all, appends get
  // faster (docs/benchmarks.md). Never under Durability::kSync: a flush then writes whole
  // 2 MiB pages. Handles of one file should agree: a kSync handle beside handles that map huge
  // pages flushes whole huge pages too.
  bool huge_pages = true;

  // Growth limit of the file in bytes (rounded down to a multiple of 64 KiB, the granularity in
  // which Windows maps a file); past it a commit fails with ResourceExhausted and nothing
  // committed is lost. Fixed when the file is created; a later Open() may raise it only when no
  // other process has the file open. Address space of this size is reserved by every handle.
  uint64_t max_file_size = 64ull << 30;

  // Size of a new file in bytes (rounded up to a page; at least 1 MiB). The file grows by a quarter
  // of its size (1 MiB to 1 GiB) as needed.
  uint64_t initial_file_size = 1ull << 20;

  // Slots in the index table of a new file (rounded up to a power of two, at least 64). The index
  // doubles when it is 3/4 full.
  uint64_t initial_index_slots = 1024;

  // Verify the record checksum on every Get (catches a flipped byte; costs a hash of the record).
  bool verify_checksums = true;

  // Durability::kPeriodic budget: checkpoint after this much time or this many appended bytes.
  std::chrono::milliseconds checkpoint_interval{1000};
  uint64_t checkpoint_bytes = 64ull << 20;

  // How long Open, BeginRead, BeginWrite, Commit and Checkpoint wait for a lock before
  // DeadlineExceeded (the message names the holder's pid). Open waits for the process that opened
  // the file first while it recovers or rebuilds the index: raise this for a large rebuild.
  std::chrono::milliseconds lock_timeout{10000};

  // Space kept bounded while the database is in use. Format version 5 (the default): once a
  // commit leaves the log holding more than `compact_ratio` times what it must keep (the live
  // records and the index) and more than 1 MiB besides, the committing writer cleans: it copies
  // the live records at the log's start to its end, in a batch of its own, and moves the start
  // past them; the blocks below the start go back to the file system once a checkpoint made the
  // copies durable (the writer takes one itself every few MiB) and no snapshot reads there (on
  // Linux; where the file system cannot punch holes, and on Windows, cleaning stops and
  // `mapkv compact` reclaims the space). Each step walks at least 256 KiB, or four times what
  // its commit wrote. A snapshot that began 16 MiB of cleaning ago pauses it until it ends. Lower
  // ratios hold less space and copy more: at 1M keys overwritten 20 times as fast as one thread
  // can, 1.5 holds the files at 2.5x the raw live bytes on average (2.6x at the peaks) with 1.9
  // bytes written per byte updated, 2.0 at 3.3x with 1.4 (docs/benchmarks.md, "Steady-state
  // updates"). Files there still grow in size (the offsets only grow; the blocks below the start
  // are holes): an online compaction starts once the log passes half of max_file_size with most
  // of it given back.
  // Format version 4 (create_format_version): once a commit leaves the log past `compact_ratio`
  // times what a compaction would keep and at least `compact_min_garbage` bytes of garbage, the
  // handle starts an online compaction (mapkv::Compact, compact.h) on a thread of its own (not
  // on Windows, which cannot rename over a file that a process has mapped), and up to two more
  // right after it when the commits made meanwhile left the new file past these bounds already.
  // Every handle of every process goes on meanwhile and moves to the compacted file; one
  // compaction of a file runs at a time, and the commits of every handle are paced meanwhile
  // (a commit in debt sleeps) so that it finishes. compact_min_garbage keeps small version 4
  // databases from compacting at every few commits. 0: neither (compact with `mapkv compact` or
  // Compact()).
  double compact_ratio = 1.5;
  uint64_t compact_min_garbage = 8ull << 20;

  // The format a new database is created in: 0, the newest (5, whose cleaner reclaims space in
  // the file itself); or 4, which builds before the cleaner open too, and whose space online
  // compactions reclaim by copying the file (compact_ratio). An existing file keeps its format,
  // through compactions too (a version 1 file's becomes the newest). InvalidArgument for
  // anything else.
  uint32_t create_format_version = 0;

  // The most log bytes that may be committed after a snapshot (a ReadTxn) began and it still
  // reads: past it, every read of that snapshot fails with FailedPrecondition ("snapshot too
  // old"), so that a forgotten snapshot cannot keep the versions it sees reachable for ever. A
  // key that changed N times since a snapshot began costs that snapshot's reads of it N records
  // more. 0: no limit. Per handle (each handle checks its own snapshots).
  uint64_t max_snapshot_bytes = 0;

  // Where the engine reports the rare events an operator should know of, such as an index rebuilt
  // from the log after an unclean stop: one line each, without a newline. Unset: written to
  // stderr as "mapkv: <line>".
  std::function<void(std::string_view)> info_log;

  // The file system, boot id and stopping points the engine uses (src/env.h), for tests that
  // simulate power cuts or stop a process at a chosen point. nullptr: the platform's. It must
  // outlive every handle opened with it.
  internal::Env* env = nullptr;
};

}  // namespace mapkv

#endif  // MAPKV_OPTIONS_H_
