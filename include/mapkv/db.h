// mapkv: a persistent, memory-mapped key-value store shared by any number of processes.
//
// One file holds the database: a header with the lock state, then an append-only log of
// checksummed records, with open-addressing hash tables (the index) stored as extents of the log.
// Every process maps the whole file. A reader looks the key up in the index and reads the record
// in place, without a lock: it checks a sequence number that every commit bumps and reads again
// when one overlapped. One writer at a time appends records past the committed end, where no
// reader looks; Commit() takes the exclusive side of a cross-process reader-writer lock that lives
// in the mapping only for the moment it updates the index and publishes the new end, so a long
// write transaction never stalls readers. A commit is visible to every process as soon as
// Commit() returns. A ReadTxn is a snapshot: records are immutable once committed, and each
// record names the previous version of its key, so a snapshot reads the database as of its
// start while commits go on.
//
// Durability: a committed transaction survives the crash of any process at once (the page cache
// holds it). Checkpoint() flushes the mapping and the file to disk; Durability::kSync does so on
// every commit. After a power cut the database opens at a commit boundary at or after the last
// checkpoint: an unclean machine stop is detected (boot id plus a clean-close flag) and the index
// is rebuilt from the log's longest valid prefix.
//
// Thread safety: a DB handle may be used from many threads at once. A ReadTxn or WriteTxn belongs
// to the thread that uses it. There is one WriteTxn at a time per file across all processes: a
// second BeginWrite() waits for it (a thread that asks twice waits for itself until lock_timeout).
//
// Caveats:
// - fork(): a handle opened before fork() must not be used in the child; every call there fails
//   with FailedPrecondition (GetStats() returns zeros), on the handle and on transactions begun
//   before the fork alike, and destroying them there is safe: it releases nothing of the
//   parent's. A fork() from one thread while another opens a handle leaves the child no
//   descriptor of it. Open the database again in the child.
// - A full disk: the file grows by a quarter at a time (format version 5: by a sixteenth, 1 to
//   8 MiB), or by what a commit needs where the disk has no more; when even that fails, the call
//   fails with ResourceExhausted (never SIGBUS: every byte the mapping writes was allocated when
//   the file grew). A put leaves room for deletes (1 MiB, a sixteenth of max_file_size on small
//   files), so deletes go on when puts no longer do.
// - Network filesystems: the lock state is shared through the mapping, which NFS and SMB do not
//   keep coherent between machines. Use a local filesystem.
// - Size: the file grows up to Options::max_file_size. In format version 5 (the default) the
//   cleaner copies live records out of the log's oldest part and gives that part's blocks back to
//   the file system while the file is in use (Options::compact_ratio); in older versions deleted
//   and overwritten records are garbage until compaction (`mapkv compact`, or online).
// - A file of format version 1 (made before snapshots) has records without the chain: there a
//   ReadTxn holds the shared side of the lock, commits wait until it ends, and a commit from a
//   thread that holds a ReadTxn of the same handle waits for itself until lock_timeout
//   (DeadlineExceeded). `mapkv compact` rewrites such a file in the current version.
// - Two handles on one file in one process behave as two processes (each has its own slot).
#ifndef MAPKV_DB_H_
#define MAPKV_DB_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "mapkv/options.h"
#include "mapkv/stats.h"

namespace mapkv {

class DB;
class WriteTxn;

namespace internal {
class Compactor;
class DBImpl;
struct CopiedSnapshot;
struct WriteState;
DBImpl& ImplOf(DB& db);  // src/db_impl.h: the engine behind a handle, for the library's own code
WriteState& StateOf(WriteTxn& txn);  // src/db_impl.h: a transaction's state, likewise
}  // namespace internal

inline constexpr size_t kMaxKeySize = 65535;

// A read-only handle never changes the file. Where the file needs recovery first (a writer died
// half-way through a commit, or the machine stopped before it was closed cleanly), a read-only
// Open, or a read that finds the dead writer, fails with FailedPrecondition carrying this payload
// (its value says why). A handle opened for writing recovers; IsNeedsRecovery() tells the case.
inline constexpr char kNeedsRecoveryPayload[] = "mapkv/needs-recovery";
inline bool IsNeedsRecovery(const absl::Status& status) {
  return status.GetPayload(kNeedsRecoveryPayload).has_value();
}

// One problem DB::Verify() found.
struct VerifyProblem {
  uint64_t offset = 0;  // where in the file
  std::string kind;     // "header", "checkpoint", "log", "index" or "counters"
  std::string detail;
};
inline constexpr uint64_t kMaxValueSize = 0xFFFFFFFFull;

// A snapshot: the database as of BeginRead(). Get, MultiGet, ForEach and Count all see that one
// committed state, whatever commits (of any process, this thread's included) follow, and
// string_views it returns stay valid until it is destroyed. It holds no lock: commits never wait
// for it. Each handle publishes its oldest open snapshot in its process slot (DB::Snapshots(),
// `mapkv stat`). Movable, not copyable.
//
// A cache's file (opened with FileKind::kAny) gives a snapshot too, made otherwise: BeginRead
// reads the cache's entries into a table of the transaction's own (a cache's ring is written over
// in place, so its views point into a copy of the ring), which costs time and memory in
// proportion to the cache, and pins nothing. One whose log is damaged is read under the shared
// lock instead, as a format version 1 file is (see the caveats).
class ReadTxn {
 public:
  ReadTxn(ReadTxn&& other) noexcept;
  ReadTxn& operator=(ReadTxn&& other) noexcept;
  ~ReadTxn();

  // The value of `key`, a view into the mapping. NotFound if absent; InvalidArgument for a bad
  // key size; DataLoss (with the offset) if the record fails its checksum.
  absl::StatusOr<std::string_view> Get(std::string_view key) const;

  // Looks up every key at once, overlapping their cache misses (several times the throughput of
  // one Get per key on a database larger than the CPU caches): values[i] receives what
  // Get(keys[i]) would return, for every i below both sizes (pass spans of equal length).
  void MultiGet(absl::Span<const std::string_view> keys,
                absl::Span<absl::StatusOr<std::string_view>> values) const;

  // Calls fn for every key live in the snapshot, in index order (a cache's: oldest first), until
  // it returns false: every such key once, whatever commits meanwhile (fn may write through the
  // same handle). Stops with DataLoss at a damaged record.
  absl::Status ForEach(
      absl::FunctionRef<bool(std::string_view key, std::string_view value)> fn) const;

  // Live keys.
  uint64_t Count() const;

 private:
  friend class DB;
  ReadTxn(internal::DBImpl* db, uint64_t tail, uint64_t head, uint64_t index_record,
          uint64_t index_bits, uint64_t count, bool snapshot);
  ReadTxn(internal::DBImpl* db, std::unique_ptr<const internal::CopiedSnapshot> copy);
  void Release();
  absl::StatusOr<std::string_view> CopiedGet(std::string_view key) const;

  internal::DBImpl* db_;
  uint64_t tail_;          // committed end of the log at begin
  uint64_t head_;          // where the log started then (format version 5; else its start)
  uint64_t index_record_;  // log offset of the index table current then (a kIndex record)
  uint64_t index_bits_;    // that table holds 2^index_bits_ slots
  uint64_t count_;         // live keys
  bool snapshot_;          // true: pinned, holds no lock; false: holds the shared side
  std::unique_ptr<const internal::CopiedSnapshot> copy_;  // a cache's: everything it reads
};

// The one write transaction (across all processes) on a database. Its writes are invisible to
// others until Commit(); its reads see the committed state plus its own writes, and no other
// writer can change that state while it lives. Movable, not copyable. Destroying an uncommitted
// transaction aborts it.
class WriteTxn {
 public:
  WriteTxn(WriteTxn&& other) noexcept;
  WriteTxn& operator=(WriteTxn&& other) noexcept;
  ~WriteTxn();

  absl::StatusOr<std::string_view> Get(std::string_view key) const;  // sees its own writes
  // InvalidArgument for a bad key or value size; ResourceExhausted past max_file_size (the
  // transaction stays usable: Delete and Commit still work).
  absl::Status Put(std::string_view key, std::string_view value);
  absl::Status Delete(std::string_view key);  // OK when absent
  // All or nothing. After it, the transaction is finished whatever the result.
  absl::Status Commit();
  void Abort();

 private:
  friend class DB;
  friend internal::WriteState& internal::StateOf(WriteTxn& txn);
  explicit WriteTxn(std::unique_ptr<internal::WriteState> state);

  std::unique_ptr<internal::WriteState> state_;
};

class DB {
 public:
  // Opens or creates the database at `path`. Errors: NotFound (missing, !create_if_missing),
  // AlreadyExists (error_if_exists), InvalidArgument (not a mapkv file), FailedPrecondition (a
  // newer format version or a build with another layout), DataLoss (checkpointed data damaged),
  // and the OS's errors naming the path.
  static absl::StatusOr<std::unique_ptr<DB>> Open(const std::string& path,
                                                  const Options& options = {});
  ~DB();
  DB(const DB&) = delete;
  DB& operator=(const DB&) = delete;

  absl::StatusOr<std::string> Get(std::string_view key);  // NotFound if absent
  // Get into *value, reusing its capacity (no allocation once it is large enough): for loops of
  // many Gets. *value is unspecified when the result is not OK.
  absl::Status Get(std::string_view key, std::string* value);
  // Get for a batch of keys, overlapping their cache misses (see ReadTxn::MultiGet): resizes
  // *values to keys.size() and sets (*values)[i] to what Get(keys[i]) would return, reusing the
  // capacity of strings already there. Each batch of 16 keys is read at one commit; the whole
  // call need not be (use ReadTxn::MultiGet for that). Fails as a whole only when the handle is
  // unusable or the shared lock times out.
  absl::Status MultiGet(absl::Span<const std::string_view> keys,
                        std::vector<absl::StatusOr<std::string>>* values);
  absl::Status Put(std::string_view key, std::string_view value);  // one-write transactions
  absl::Status Delete(std::string_view key);

  absl::StatusOr<ReadTxn> BeginRead();
  // Waits for the current writer (any process) to finish, up to Options::lock_timeout.
  absl::StatusOr<WriteTxn> BeginWrite();

  // Flushes every committed byte to disk and records a checkpoint. Waits for the current writer.
  absl::Status Checkpoint();

  // Checks the whole file: header, checkpoint records, every record and batch of the log, and
  // the index against the log (every live key found by its own probe, pointing at its latest
  // put; the counters right). OK when all is well; otherwise DataLoss summing up the problems,
  // each of which is also appended to `problems` (when given) with its offset. Reads a snapshot
  // (format version 1: holds the shared lock throughout, and commits wait for it).
  absl::Status Verify(std::vector<VerifyProblem>* problems = nullptr);

  Stats GetStats();
  // The open snapshots, one entry per handle (of any process alive) that holds some.
  std::vector<SnapshotInfo> Snapshots();

  const std::string& path() const;

 private:
  friend class Cache;
  friend class WriteTxn;
  friend internal::DBImpl& internal::ImplOf(DB& db);
  explicit DB(std::unique_ptr<internal::DBImpl> impl);

  // After a commit on `db`: starts an online compaction when its log calls for one
  // (Options::compact_ratio).
  void MaybeCompact(internal::DBImpl& db);

  // The file this handle uses now: the one opened, or the one an online compaction put under its
  // name since (compact.h), which MoveOn opens when a call finds the file it used replaced.
  internal::DBImpl* impl() const { return current_.load(std::memory_order_acquire); }
  absl::Status MoveOn(internal::DBImpl* from);
  // Runs call(impl) on the current file, again on the next one when the file was replaced.
  template <class Call>
  auto OnCurrent(Call&& call);

  std::atomic<internal::DBImpl*> current_;
  std::mutex move_mu_;
  // Every file this handle used, the current one last: one replaced stays (its descriptor closed,
  // its mapping reading zeros past the header) while a call on another thread may still read it.
  std::vector<std::unique_ptr<internal::DBImpl>> impls_;
  // The online compactions this handle starts (Options::compact_ratio), on a thread (db.cc).
  std::unique_ptr<internal::Compactor> compactor_;
};

}  // namespace mapkv

#endif  // MAPKV_DB_H_
