// The engine behind mapkv::DB: the state of one open handle and the operations on the mapping.
#ifndef MAPKV_DB_IMPL_H_
#define MAPKV_DB_IMPL_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "mapkv/db.h"
#include "src/env.h"
#include "src/format.h"
#include "src/hash.h"
#include "src/hash_index.h"
#include "src/log.h"
#include "src/platform/mapped_file.h"
#include "src/platform/process.h"
#include "src/rwlock.h"

namespace mapkv::internal {

// What a reader sees: the committed state at one commit. Fixed while the reader holds the shared
// lock; with `as_of` (a version 4 snapshot, which holds no lock) commits go on, and the reader
// follows each key's chain back from what the index says now to its newest record before `tail`.
struct Snapshot {
  uint64_t tail = 0;          // committed end of the log
  uint64_t head = 0;          // where the log starts (LogStart): nothing it reads lies below
  uint64_t index_record = 0;  // the current kIndex record
  uint32_t index_bits = 0;
  uint64_t count = 0;
  bool as_of = false;
};

// One key's final write in a batch: the offset of its kPut or kDelete record, and, where the
// writer knows it, the record the key's slot points at before the batch (`replaces`: 0 when the
// key has no slot). With it the commit finds the key's slot by its offset alone, without reading
// the records that its probe run passes (the writer confirmed the key when it wrote the chain).
inline constexpr uint64_t kReplacesUnknown = ~uint64_t{0};
struct BatchWrite {
  std::string_view key;
  uint64_t hash;
  uint64_t offset;
  bool is_put;
  uint64_t replaces = kReplacesUnknown;
};

// std::string_view keys in abseil's tables (Debian's abseil hashes only absl::string_view).
struct KeyHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
struct KeyEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

// A cache's snapshot (DBImpl::CopySnapshot): its entries as of one commit, each key's last
// record in the log up to the committed tail. A ring's live log is copied into `ring` first (the
// ring is written over in place, under its readers), and the views point into that copy; a linear
// log's records never change below the committed tail, and the views point into the mapping.
struct CopiedSnapshot {
  struct Entry {
    std::string_view key;
    std::string_view value;
    bool live;  // false once a later record of the key replaced or deleted it
  };
  std::string ring;
  std::vector<Entry> log_order;  // every put read, oldest first: the order ForEach visits
  absl::flat_hash_map<std::string_view, size_t, KeyHash, KeyEq> live;  // key -> its Entry
};
// Tries at copying a ring without the lock, each undone by an eviction that passed a part not yet
// copied, before it is copied under the shared lock.
inline constexpr int kRingCopyTries = 8;

// A write transaction in progress.
struct WriteState {
  DBImpl* db = nullptr;
  // The DB whose WriteTxn this is: it starts a compaction the commit calls for.
  DB* owner = nullptr;
  uint64_t seq = 0;    // this batch's sequence number
  uint64_t start = 0;  // committed tail at begin: where the batch starts
  uint64_t first = 0;  // its first record (in a ring, a kPad may come before it)
  uint64_t tail = 0;   // where the next record goes
  uint64_t puts = 0;   // kPut records appended (upper bound on new keys)
  uint64_t last_record = 0;
  uint64_t new_head = 0;     // version 5: where the publish moves the log's start (0: it stays)
  bool track_writes = true;  // false for DB::Put/Delete: one write, no map needed
  // What the writer promises of its keys, so that a bulk copy (a compaction's) pays for no map:
  // kAny: nothing (the batch's writes are kept in `writes`); kUnique: each key at most once per
  // batch (the records are kept in `records`, and the transaction's reads see the committed state
  // only); kNew: kUnique, and no key is in the committed index either (no previous version).
  enum class Keys { kAny, kUnique, kNew };
  Keys keys = Keys::kAny;
  absl::InlinedVector<uint64_t, 4> checksums;  // of every record so far
  absl::flat_hash_map<std::string, uint64_t, KeyHash, KeyEq>
      writes;                     // key -> its last record in this batch (kAny)
  std::vector<uint64_t> records;  // the batch's put and delete records (kUnique, kNew)
};

// A lock that any thread may release: 0 free, 1 held, 2 held with sleepers (Drepper's mutex).
class Gate {
 public:
  bool TryAcquireFor(std::chrono::milliseconds timeout);
  void Release();

 private:
  std::atomic<uint32_t> state_{0};
};

// The file's size is a whole number of these past the initial size (open.cc's Initialize and
// commit.cc's EnsureSpace both round to it).
inline constexpr uint64_t kGrowAlign = 1ull << 20;
constexpr uint64_t RoundUp(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

// The room a put leaves past itself for deletes (and the commit records and index tables that go
// with them), so that they still free keys in a full database or on a full disk: 1 MiB, or
// 1/16 of max_file_size on small files.
constexpr uint64_t DeleteReserve(uint64_t max_file_size) {
  return std::min<uint64_t>(1ull << 20, max_file_size / 16);
}

// Keys per LookupBatch: enough misses in flight to fill the core's line fill buffers (10 to 16
// on current x86 cores, two misses per key: slot, then record), few enough that the prefetched
// lines are still in L1/L2 when the last stage reads them.
inline constexpr size_t kLookupBatch = 16;

class DBImpl {
 public:
  static absl::StatusOr<std::unique_ptr<DBImpl>> Open(const std::string& path,
                                                      const Options& options);
  ~DBImpl();

  const std::string& path() const { return file_->path(); }

  // Reads.
  // Whether a ReadTxn is a snapshot that holds no lock (format version 4) or holds the shared
  // side until it ends (older files, whose records carry no chain).
  bool snapshots() const { return chained_; }
  // A snapshot of the committed state, pinned in this handle's slot until Unpin(snap.tail).
  absl::StatusOr<Snapshot> BeginSnapshot();
  // FailedPrecondition once more than Options::max_snapshot_bytes were committed after the
  // snapshot at `tail` began.
  // A handle without write permission publishes no pin: FailedPrecondition too once the cleaner
  // gave back blocks that its snapshot starting at `head` may read.
  absl::Status CheckSnapshotAge(uint64_t tail, uint64_t head) const {
    if (detached_ && cleaned_ && lock_.punch_fence() > head) return SnapshotReclaimed();
    if (options_.max_snapshot_bytes == 0) return absl::OkStatus();
    const uint64_t since = state_->committed_tail.load(std::memory_order_relaxed) - tail;
    if (since <= options_.max_snapshot_bytes) return absl::OkStatus();
    return SnapshotTooOld(since);
  }
  void Unpin(uint64_t tail);
  // Whether a ReadTxn reads a copy of the committed state (CopySnapshot) instead: a cache, whose
  // records carry no chain and whose ring is written over in place.
  bool copies_snapshots() const { return copied_; }
  // A cache's state as of the last commit (src/copied_snapshot.cc). Holds nothing once it
  // returns; a ring is copied without the lock unless writers keep lapping the copy.
  absl::StatusOr<std::unique_ptr<CopiedSnapshot>> CopySnapshot();
  std::vector<SnapshotInfo> Snapshots();
  absl::StatusOr<Snapshot> LockShared();
  void UnlockShared() {
    // A ReadTxn carried across fork() must not release the parent's read lock from the child.
    if (ForkGeneration() == fork_generation_) lock_.UnlockShared();
  }
  absl::StatusOr<std::string_view> Lookup(const Snapshot& snap, std::string_view key) const {
    return LookupHashed(snap, key, HashKey(key, hash_seed_));
  }
  absl::StatusOr<std::string_view> LookupHashed(const Snapshot& snap, std::string_view key,
                                                uint64_t hash) const;
  void PrefetchRecord(uint64_t offset, uint64_t tail) const;
  // Looks up keys[0..n) into out[0..n) with their cache misses overlapped: n <= kLookupBatch.
  void LookupBatch(const Snapshot& snap, const std::string_view* keys, size_t n,
                   absl::StatusOr<std::string_view>* out) const;
  absl::Status MultiGet(absl::Span<const std::string_view> keys,
                        std::vector<absl::StatusOr<std::string>>* values);
  absl::Status ForEach(const Snapshot& snap,
                       absl::FunctionRef<bool(std::string_view, std::string_view)> fn) const;
  absl::StatusOr<std::string> Get(std::string_view key);
  absl::Status Get(std::string_view key, std::string* value);

  // Writes.
  absl::StatusOr<std::unique_ptr<WriteState>> BeginWrite();
  absl::Status TxnPut(WriteState& w, std::string_view key, std::string_view value);
  absl::Status TxnDelete(WriteState& w, std::string_view key);
  absl::StatusOr<std::string_view> TxnGet(const WriteState& w, std::string_view key) const;
  absl::Status Commit(WriteState& w);
  void EndWrite(WriteState& w);  // releases the writer lock: abort when not committed
  absl::Status PutOrDelete(std::string_view key, const std::string_view* value);

  absl::Status Checkpoint();
  Stats GetStats();
  absl::Status Verify(std::vector<VerifyProblem>* problems);  // recovery.cc

  absl::Status CheckUsable() const;

  // Online compaction (compact.cc) and the handles that follow it to the new file (DB, db.cc;
  // successor.cc). A database of format version 4 is compacted while in use: the compaction
  // copies it into a new file, and, holding this file's writer lock, marks this one with the new
  // file's salt (LockState::successor) and puts the new file under the name. Every call of a
  // handle of the marked file then fails with Superseded(), and DB opens the file under the
  // name (any file but this one) and goes on there.
  uint64_t salt() const { return salt_; }
  const Options& options() const { return options_; }
  Env& env() const { return env_; }
  uint64_t committed_tail() const { return state_->committed_tail.load(std::memory_order_acquire); }
  uint64_t successor() const {
    return ForkGeneration() == fork_generation_ ? lock_.successor() : 0;  // not in a child
  }
  // Unavailable, with kSupersededPayload: this file was replaced under its name.
  absl::Status Superseded() const;
  // Takes the writer lock and gives it back: waits for the writer (up to lock_timeout), and
  // recovers after a dead one. PermissionDenied for a handle that may not write.
  absl::Status WaitForWriter() {
    absl::Status s = AcquireWriter();
    if (s.ok()) ReleaseWriter();
    return s;
  }
  // Marks this file as replaced by the file of salt `salt` (0: takes the mark back), under the
  // exclusive side, so that every optimistic read in flight retries and sees it. The caller
  // holds the writer lock (a WriteTxn).
  absl::Status MarkSuperseded(uint64_t salt);
  // The compaction's last step: this handle's writer goes before the other writers (RwLock).
  void RequestWriterPriority() { lock_.RequestPriority(); }
  void DropWriterPriority() { lock_.DropPriority(); }
  // Where the writer lock was taken with the mark set: takes it back when the compaction that set
  // it died before its file took the name.
  absl::Status TakeBackStaleMark();
  // The pid of a live handle of the file (another process's, or this one's) that would not
  // follow a mark (a build older than marks: format.h, kFollowsSuccessor), or 0.
  uint32_t HandleNotFollowing();
  // A marked file: gives its log's blocks back to the file system when no snapshot pins them
  // (none can begin once the mark is set). True when it did.
  absl::StatusOr<bool> PunchIfUnpinned();
  // Calls fn for each record of the committed log in [from, to), in order: what commits added
  // after a snapshot at `from`. DataLoss for a damaged record.
  absl::Status ForEachRecord(uint64_t from, uint64_t to,
                             absl::FunctionRef<absl::Status(const Record&)> fn) const;
  // Makes this file, a compaction's copy of `source` that only the compaction has open, carry on
  // its history: the commit count (Stats::commits never goes back) and, for a database, the
  // lineage (LineageState) with `source`'s log written and this copy's log relocated. `source`
  // takes no commit meanwhile (its writer lock is held, or it is held alone).
  void ContinueFrom(const DBImpl& source);
  uint64_t commits() const { return state_->commits.load(std::memory_order_acquire); }

  // Whether the committed log calls for an online compaction (Options::compact_ratio): cheap,
  // for after every commit. In format version 5 the cleaner keeps the log within the ratio; a
  // compaction starts only once most of the file's offsets lie below head, given back, and the
  // log nears max_file_size.
  bool WantsCompaction() const;
  // Format version 5: once the cleaner moved head far enough past the blocks given back
  // (WantsGiveBack, cheap), makes the copies durable (a checkpoint, its flush without the writer
  // lock) and gives the blocks below head back to the file system. Without the writer lock: DB
  // calls it after a commit, when WantsGiveBack says so (which, where a pin blocks, asks whether
  // its holder lives at most once a step: ask it once per call).
  bool WantsGiveBack();
  void MaybeGiveBack();
  // Version 5: starts the committed log's pages since the last call to the disk (without waiting)
  // once there are a few MiB of them, so that the give-back's flush has little left to write.
  void MaybeStartWriteback();
  // What a compaction of the committed state would keep: the live records and the index.
  uint64_t KeptBytes() const;

  // Users: calls (other than optimistic reads) and transactions in progress on this handle. A
  // marked handle is retired (its mapping read as zeros past the header, its descriptor closed:
  // MappedFile::Retire) once it has none. AddUser fails with Superseded() on a retired handle.
  absl::Status AddUser();
  void DropUser();
  // Retires this handle as soon as it has no users (DB calls it when it moves on).
  void Retire();

  // For Cache (cache.cc): the lock with the process slots, and whether this handle has a slot (a
  // handle without write permission has none, and counts nothing).
  RwLock& rwlock() { return lock_; }
  bool has_slot() const { return !detached_; }

  // The open file, for what is done to the file as a whole rather than through the engine
  // (compaction gives its new file the original's owner and permission bits through the
  // descriptor, never by name).
  MappedFile& file() const { return *file_; }

  // Fetches what PreviousVersion(key) will read, for a writer that knows its keys ahead (a
  // compaction's catch-up): `stage` 0 the line of the key's home slot, 1 (a few keys later, once
  // that line is in) the record of the first slot there with the key's hash.
  void PrefetchPreviousVersion(std::string_view key, int stage) const;

 private:
  DBImpl(std::unique_ptr<MappedFile> file, const Options& options);
  static absl::StatusOr<std::unique_ptr<DBImpl>> OpenShared(std::unique_ptr<MappedFile> file,
                                                            const Options& options);
  // A handle without write permission: no slot, no lock words, nothing written (open.cc).
  static absl::StatusOr<std::unique_ptr<DBImpl>> OpenDetached(std::unique_ptr<MappedFile> file,
                                                              const Options& options);
  // Runs read(snapshot) without the lock, retrying one that a commit overlapped, and under the
  // shared lock when commits keep overlapping it. `read` must copy out what it keeps.
  template <class Read>
  absl::Status ReadConsistent(Read&& read);

  // Makes the mapping map the file through `end` where the platform maps it in pieces as it grows
  // (Windows: MappedFile::Cover); elsewhere, and whenever it is mapped already, a load and a
  // compare. Every path that reads or writes the log past what this handle saw before calls it
  // first: reads with the file size they bound offsets by, writers once they hold the lock.
  absl::Status Cover(uint64_t end) const {
    if (end <= covered_.load(std::memory_order_acquire)) return absl::OkStatus();
    return CoverSlow(end);
  }
  absl::Status CoverSlow(uint64_t end) const;

  static bool NeedsLargerMapping(MappedFile& file, uint64_t size, bool may_raise,
                                 const Options& options, Options* larger);

  // Open, by the first opener (no other handle exists).
  absl::Status Initialize();
  absl::Status FirstOpen();
  absl::Status ValidateHeader(uint64_t file_size) const;
  void LoadHeaderFields();
  bool CreationInterrupted(uint64_t file_size) const;
  absl::Status ValidateState(uint64_t file_size) const;
  // ValidateState for a handle that joins others, whose commits may run meanwhile.
  absl::Status ValidateJoin();
  // FailedPrecondition for a read-only handle that finds work for recovery, with
  // kNeedsRecoveryPayload set to `why`.
  absl::Status NeedsRecoveryError(std::string_view why) const;
  // A ring file whose whole ring this handle could not map: ResourceExhausted.
  absl::Status CheckRingMapped() const;
  // The log tails of `state` lie in [kHeaderSize, file_size], 8-aligned, applied <= committed.
  static bool TailsSane(const FileHeader& header, const SharedState& state, uint64_t file_size);

  // Recovery (recovery.cc).
  absl::Status Recover();  // finishes a dead writer's commit; caller holds the writer lock
  // Whether a dead writer left work behind: a commit half published or a stale exclusive side.
  bool NeedsRecovery() const {
    return lock_.exclusive_stale() || state_->applied_tail.load() != state_->committed_tail.load();
  }
  absl::Status Replay();
  absl::Status RebuildIndex(std::string_view reason);  // logs the reason and the cost
  void ResetRing(std::string_view reason);             // a ring's RebuildIndex: starts empty
  void RecountStats();
  // A ring: removes the index entries that point below head (an eviction a writer died in), then
  // recounts. The caller holds the exclusive side or is the first opener.
  void DropEvicted();
  void InvalidateAfterTail();

  void Log(std::string_view line) const;  // Options::info_log

  // Locks with the handle's timeout; the writer lock runs recovery when taken from the dead.
  uint64_t Deadline() const;
  absl::Status AcquireWriter();
  // AcquireWriter as a user of this handle (AddUser), then Superseded() (and the lock and the
  // use given up) where the file was replaced. ReleaseCurrentWriter gives up both.
  absl::Status AcquireCurrentWriter();
  void ReleaseCurrentWriter();
  void ReleaseWriter();

  // The commit path, shared by transactions, single writes and recovery.
  // Grows the file (by a quarter, or by what is needed where the disk has no more) so that it
  // holds [0, end) and `keep` bytes more, the room a put leaves for deletes.
  absl::Status EnsureSpace(uint64_t end, uint64_t keep = 0);
  // Makes room for a record of `size` bytes at w.tail and returns where to write it. In a ring,
  // w.tail first moves to the next lap when the record would not fit before the ring's end, and
  // the oldest entries are evicted when the live log would pass one ring.
  absl::StatusOr<char*> Place(WriteState& w, uint64_t size);
  // A ring: moves head past whole batches until it reaches `until` (a log offset) and at most
  // `max_keys` keys are left, removing the index entries of what it passes. The caller holds the
  // writer lock; Evict takes the exclusive side for the moment it changes the index, EvictLocked
  // is for a caller that holds the exclusive side already.
  absl::Status Evict(uint64_t until, uint64_t max_keys);
  absl::Status EvictLocked(uint64_t until, uint64_t max_keys);
  // What an eviction removes, found without the exclusive side (the writer lock keeps it valid).
  struct Eviction {
    std::vector<Slot*> doomed;  // the slots of the keys whose latest record head passes
    uint64_t freed = 0;         // bytes of those records
    uint64_t head = 0;          // where head moves
    bool damaged = false;       // the walk met a damaged record: everything goes
  };
  absl::StatusOr<Eviction> PlanEviction(uint64_t until, uint64_t max_keys);
  void ApplyEvictionLocked(const Eviction& e);  // the caller holds the exclusive side
  // A ring's MaybeGrowIndex: rehashes into its other table, after `evict(max_keys)` when most
  // keys are live.
  absl::StatusOr<uint64_t> RehashRingWith(uint64_t seq, uint64_t new_keys,
                                          absl::FunctionRef<absl::Status(uint64_t)> evict);
  absl::Status FlushLog(uint64_t from, uint64_t to);  // the log bytes [from, to) to the disk
  void PrefaultAhead(uint64_t end, uint64_t file_size);
  absl::StatusOr<uint64_t> WriteIndexTable(uint64_t at, uint64_t seq, uint8_t flags, uint32_t bits);
  absl::Status Seal(WriteState& w);
  // The index changes of the batch so far: each key's last record in it (w.writes, w.records).
  absl::StatusOr<std::vector<BatchWrite>> BatchWrites(const WriteState& w) const;
  absl::Status Publish(WriteState& w, uint64_t new_index_record, const BatchWrite* writes,
                       size_t n);
  void ApplyWrite(IndexTable& table, const BatchWrite& write);
  // Makes room in the index for `new_keys` more keys (a new table, or a ring's rehash): the offset
  // of the new index record, or 0 when the current one has room. The caller holds the writer lock;
  // MaybeGrowIndexLocked is for a caller that holds the exclusive side too (recovery), which a
  // ring's eviction would otherwise take.
  absl::StatusOr<uint64_t> MaybeGrowIndex(WriteState& w, uint64_t new_keys);
  absl::StatusOr<uint64_t> MaybeGrowIndexLocked(WriteState& w, uint64_t new_keys);
  // `refit`: a new table whatever the load, sized for the keys (smaller too): the cleaner's.
  absl::StatusOr<uint64_t> MaybeGrowLinearIndex(WriteState& w, uint64_t new_keys,
                                                bool refit = false);
  absl::Status MaybePeriodicCheckpoint();
  absl::Status CheckpointLocked();
  // Writes (and flushes) a checkpoint record saying the log up to `tail`, from `head`, is on
  // the disk. The writer lock is held.
  absl::Status WriteCheckpointRecord(uint64_t tail, uint64_t head, uint64_t flags);
  // Flushes the mapping through `end` (from `head` on, with the header: version 5; without the
  // current index table's slots unless `index`) and syncs.
  absl::Status FlushForCheckpoint(uint64_t head, uint64_t end, bool index);

  // The cleaner (cleaner.cc), format version 5; the writer lock is held.
  // Whether the log is past Options::compact_ratio times what it keeps, and no snapshot pauses
  // cleaning: cheap, after each commit.
  bool WantsCleaning();
  // Whether a snapshot that began when head was more than kPinnedCleanAhead (cleaner.cc) back
  // still lives: cleaning past it would free nothing until it ends.
  bool PausedBySnapshot(uint64_t head, uint64_t tail);
  // A cleaning step when one is due, after a commit that wrote `wrote` bytes; logs a failure
  // (once) and goes on.
  void MaybeClean(uint64_t wrote);
  // Walks `budget` bytes from head (to a batch's end), relocates the live puts there in one
  // batch and moves head past the walk in its publish; a rehash when the walk passes the index.
  absl::Status Clean(uint64_t budget);
  // Whether `r` (a put whose key hashes to `hash`) is its key's version in `table`.
  bool IsCurrent(const IndexTable& table, uint64_t hash, const Record& r) const;
  absl::Status Relocate(WriteState& w, const Record& r);
  // Gives the log below the latest checkpoint's head back to the file system, up to the oldest
  // pinned snapshot's start.
  void GiveBackLocked();
  // The lowest log start a snapshot of any handle read (ProcessSlot, kPinHead); UINT64_MAX when
  // none is pinned. With `alive_only`, of live holders only: a dead holder's pin goes with it,
  // but asking the kernel costs a system call per pinned slot.
  uint64_t OldestPinnedHead(bool alive_only = true);
  const CheckpointRecord* LatestCheckpoint() const;

  uint32_t IndexBits(uint64_t index_record) const {
    return reinterpret_cast<const RecordHeader*>(base_ + index_record)->key_len;
  }
  // The committed state; stable while the caller holds the shared side or the writer lock.
  Snapshot CommittedSnapshot() const;
  // The key of the record a slot points at (a put; in version 4, a kDelete too), or empty.
  // A slot below `floor` (the log's start unless a snapshot's is given) has none (version 5).
  std::string_view KeyAt(uint64_t slot_offset, uint64_t limit, uint64_t floor = 0) const;
  uint64_t SizeAt(uint64_t offset) const;
  // Version 4: the key's newest record (put or delete) in the committed log or in the batch so
  // far, for the chain of the record that replaces it; 0 when it has none.
  uint64_t PreviousVersion(const WriteState& w, std::string_view key) const;
  // Version 4: the record that the key's slot points at before the batch, for the batch's record
  // at `offset` (BatchWrite::replaces): its chain, past the batch's own earlier records.
  // kReplacesUnknown in older formats.
  uint64_t Replaced(const WriteState& w, uint64_t offset) const;
  // Whether the slot holding `slot_offset`, whose hash is the write's, is the write's key's.
  bool IsSlotOf(const BatchWrite& write, uint64_t slot_offset, uint64_t limit) const {
    if (write.replaces != kReplacesUnknown) return SlotRecord(slot_offset) == write.replaces;
    return KeyAt(slot_offset, limit) == write.key;
  }
  // Follows the chain from `r` (a put or delete) back to the key's newest record before the
  // snapshot's tail:
  // a Record of type 0 when it has none there. DataLoss for a damaged link.
  absl::StatusOr<Record> VersionAsOf(Record r, const Snapshot& snap, uint64_t limit) const;
  // The bound of record offsets for a read as of a snapshot: the file's size now, mapped. 0, with
  // `error` set, where the mapping cannot cover it.
  uint64_t AsOfLimit(absl::Status& error) const;
  absl::Status SnapshotTooOld(uint64_t since) const;
  absl::Status SnapshotReclaimed() const;
  // Copies the ring's committed log [from, to) to `out`; false when an eviction passed a part of
  // it before that part was copied (the part may have been written over).
  bool CopyRing(uint64_t from, uint64_t to, char* out) const;
  // Fills snap.entries from the committed log [from, to), which starts at `log`.
  absl::Status ReadCopiedLog(CopiedSnapshot& snap, const char* log, uint64_t from,
                             uint64_t to) const;
  // Publishes this handle's oldest pin in its slot (pins_mu_ held).
  void PublishPinLocked();

  // Log offsets: a ring's are logical (format.h), a linear log's are file offsets.
  bool ring() const { return ring_len_ != 0; }
  uint64_t Phys(uint64_t offset) const {
    return ring_len_ == 0 ? offset : RingPhys(offset, ring_start_, ring_len_);
  }
  char* At(uint64_t offset) const { return base_ + Phys(offset); }
  LineageState& lineage() const { return *reinterpret_cast<LineageState*>(base_ + kLineageOffset); }
  // The record at log offset `offset` of the log that ends at `tail` (DataLoss when it lies
  // outside it or is malformed). In a ring, the rest of a lap too short for a record header reads
  // as a kPad.
  absl::StatusOr<Record> ReadAt(uint64_t offset, uint64_t tail, bool verify) const;
  // ReadAt, its error naming the file: for what a read returns to its caller. Inline, with one
  // return (NRVO): every Get reads through it.
  absl::StatusOr<Record> ReadNamed(uint64_t offset, uint64_t tail, bool verify) const {
    absl::StatusOr<Record> r = ReadAt(offset, tail, verify);
    if (!r.ok()) r = Named(r.status());
    return r;
  }
  // `s` with the file's path before its message.
  absl::Status Named(const absl::Status& s) const;
  // Where the live log starts: the oldest record a reader may reach.
  uint64_t LogStart() const {
    return ring_len_ == 0 && !cleaned_ ? kHeaderSize : state_->head.load(std::memory_order_acquire);
  }

  std::unique_ptr<MappedFile> file_;
  const Options options_;
  Env& env_;  // options_.env, or the platform's
  char* const base_;
  FileHeader* const header_;
  SharedState* const state_;
  RwLock lock_;
  const uint64_t fork_generation_;
  uint64_t hash_seed_ = 0;
  uint64_t salt_ = 0;
  uint64_t max_file_size_ = 0;
  // A ring (format version 3): [ring_start_, ring_start_ + ring_len_) of the file, and its two
  // index tables. ring_len_ is 0 for a linear log.
  uint64_t ring_start_ = 0;
  uint64_t ring_len_ = 0;
  uint64_t ring_tables_[2] = {0, 0};
  mutable std::atomic<uint64_t> covered_;  // file_->covered(), cached: see Cover()
  uint64_t prefaulted_ = 0;  // the log is populated in this handle's mapping up to here (a hint)
  // Version 5: this handle started the log's pages to the disk up to here (a hint). Written by
  // a thread after its commit: two at once cost a repeated call, no more.
  std::atomic<uint64_t> written_back_{0};
  bool chained_ = false;   // format version 4 or 5: chained records, lock-free snapshots
  bool copied_ = false;    // a cache: a snapshot copies its entries (CopySnapshot)
  bool cleaned_ = false;   // format version 5: the cleaner moves the log's start (head)
  bool opened_ = false;    // fully open: the slot is claimed and the state valid
  bool detached_ = false;  // opened without write permission (OpenDetached)
  // Serialises this handle's writers among its threads. Not a std::mutex: a WriteTxn may end on
  // another thread than the one that began it; not std::binary_semaphore: libstdc++ 12's release
  // makes a futex syscall every time, waiters or not.
  Gate write_gate_;
  // This handle's open snapshots: their tails, with when each began.
  std::mutex pins_mu_;
  struct Pin {
    int64_t since_ms;
    uint64_t head;  // the snapshot's log start
  };
  std::multimap<uint64_t, Pin> pins_;  // by tail; guarded by pins_mu_
  // See AddUser and Retire: the users, and kRetiredBit once the handle is retired.
  static constexpr uint32_t kRetiredBit = 0x80000000u;
  std::atomic<uint32_t> users_{0};
  std::atomic<bool> retiring_{false};
  std::atomic<bool> giving_back_{false};  // a thread of this handle is in MaybeGiveBack
  // Head when WantsGiveBack last asked whether the pins' holders live; the tail when
  // PausedBySnapshot last did, and the oldest live pin it found.
  std::atomic<uint64_t> pins_asked_at_{0};
  std::atomic<uint64_t> pins_paused_asked_at_{0};
  std::atomic<uint64_t> oldest_live_pin_{0};
  std::atomic<bool> clean_failed_{false};      // the cleaner logged a failure (once per handle)
  std::atomic<bool> cannot_give_back_{false};  // the platform or file system has no holes
  void RetireIfUnused();
};

inline DBImpl& ImplOf(DB& db) { return *db.impl(); }
inline WriteState& StateOf(WriteTxn& txn) { return *txn.state_; }

}  // namespace mapkv::internal

#endif  // MAPKV_DB_IMPL_H_
