// Reads: lookups (one key, a batch with their cache misses overlapped), iteration, and the
// optimistic read that needs no lock. DBImpl (db_impl.h) declares these.
#include <algorithm>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "src/db_impl.h"
#include "src/env.h"
#include "src/errors.h"
#include "src/hash.h"
#include "src/platform/process.h"
#include "src/status_macros.h"

namespace mapkv::internal {

// Fetches the lines of the record at `offset`, up to kPrefetchBytes (a chained record of a
// 16-byte key and a 100-byte value, 152 bytes, spans three lines or, from an offset past 40 in
// its first line, four): one round trip to memory instead of the header's and then the value's.
// Only in-bounds offsets: a damaged slot may hold anything.
void DBImpl::PrefetchRecord(uint64_t offset, uint64_t tail) const {
  constexpr uint64_t kPrefetchBytes = 152;
  if (offset < tail) {
    const char* record = At(offset);
    __builtin_prefetch(record);
    __builtin_prefetch(record + 64);
    __builtin_prefetch(record + 128);
    __builtin_prefetch(record + kPrefetchBytes - 1);  // the fourth line, or the third again
  }
}

absl::StatusOr<std::string_view> DBImpl::LookupHashed(const Snapshot& snap, std::string_view key,
                                                      uint64_t hash) const {
  MAPKV_RETURN_IF_ERROR(CheckKeySize(path(), key));
  IndexTable table(base_, snap.index_record, snap.index_bits);
  absl::Status damage;
  Record found;
  uint64_t limit = snap.tail;
  Slot* slot = table.Probe(hash, [&](uint64_t offset) {
    // The newest state skips a deleted key's slot without reading its record.
    if (SlotDead(offset) && !snap.as_of) return false;
    // As of a snapshot, the index holds records committed after it too (read after the slot,
    // the file's size bounds them), and deleted keys' slots that point below the log's start (a
    // key deleted there is deleted as of the snapshot).
    if (snap.as_of && (SlotRecord(offset) < snap.head || !(limit = AsOfLimit(damage)))) {
      return false;
    }
    offset = SlotRecord(offset);
    PrefetchRecord(offset, limit);
    absl::StatusOr<Record> r = ReadNamed(offset, limit, false);
    if (!r.ok()) {
      damage = r.status();
      return false;
    }
    if (r->key != key) return false;
    found = *r;
    return true;
  });
  if (slot == nullptr) {
    if (!damage.ok()) return damage;
    return KeyNotFoundError(path(), key);
  }
  if (snap.as_of) {
    MAPKV_ASSIGN_OR_RETURN(found, VersionAsOf(found, snap, limit));
    if (found.type == 0 || found.type == kDelete) return KeyNotFoundError(path(), key);
  }
  if (found.type != kPut) {
    return absl::DataLossError(
        absl::StrCat(path(), ": index points at a non-put record at offset ", found.offset));
  }
  if (options_.verify_checksums &&
      RecordChecksumOf(At(found.offset), found, salt_) != found.checksum) {
    return absl::DataLossError(absl::StrCat(path(), ": checksum mismatch in the record of key ",
                                            QuoteKey(key), " at offset ", found.offset));
  }
  return found.value;
}

uint64_t DBImpl::AsOfLimit(absl::Status& error) const {
  const uint64_t limit = state_->file_size.load(std::memory_order_acquire);
  if (absl::Status s = Cover(limit); !s.ok()) {
    error = s;
    return 0;
  }
  return limit;
}

absl::StatusOr<Record> DBImpl::VersionAsOf(Record r, const Snapshot& snap, uint64_t limit) const {
  // Decoding checked that each link leads strictly back: the walk ends. A link below the log's
  // start ends it too: the key's version as of the snapshot lies at or after the start (the
  // cleaner relocates every live record before it moves the start past it), so what lies before
  // is older (in version 5, perhaps given back to the file system).
  while (r.offset >= snap.tail) {
    if (r.prev == 0 || r.prev < snap.head) return Record{};
    const std::string_view key = r.key;
    const uint64_t from = r.offset;
    MAPKV_ASSIGN_OR_RETURN(r, ReadNamed(r.prev, limit, false));
    if ((r.type != kPut && r.type != kDelete) || r.key != key) {
      return absl::DataLossError(
          absl::StrCat(path(), ": the previous version of key ", QuoteKey(key), " at offset ", from,
                       " is not a record of that key (offset ", r.offset, ")"));
    }
  }
  return r;
}

absl::Status DBImpl::ForEach(const Snapshot& snap,
                             absl::FunctionRef<bool(std::string_view, std::string_view)> fn) const {
  IndexTable table(base_, snap.index_record, snap.index_bits);
  // Slots are read in order, records in the order of their keys' hashes: random. Fetching the
  // record 16 slots ahead keeps several of those misses in flight instead of one.
  constexpr uint64_t kAhead = 16;
  uint64_t limit = snap.tail;
  for (uint64_t i = 0; i < table.capacity(); ++i) {
    if (snap.as_of && i % 4096 == 0) MAPKV_RETURN_IF_ERROR(CheckSnapshotAge(snap.tail, snap.head));
    if (i + kAhead < table.capacity()) {
      PrefetchRecord(SlotRecord(table.slot(i + kAhead).offset.load(std::memory_order_relaxed)),
                     limit);
    }
    uint64_t offset = table.slot(i).offset.load(std::memory_order_acquire);
    if (offset == kEmpty || offset == kTombstone || SlotRecord(offset) < snap.head) continue;
    Record r;
    if (!snap.as_of) {
      if (SlotDead(offset)) continue;
      MAPKV_ASSIGN_OR_RETURN(r, ReadNamed(offset, snap.tail, options_.verify_checksums));
    } else {
      absl::Status error;
      if (!(limit = AsOfLimit(error))) return error;
      MAPKV_ASSIGN_OR_RETURN(r, ReadNamed(SlotRecord(offset), limit, false));
      if (r.type == kPut || r.type == kDelete) {
        MAPKV_ASSIGN_OR_RETURN(r, VersionAsOf(r, snap, limit));
      }
      if (r.type == 0 || r.type == kDelete) continue;  // born or deleted after the snapshot
      if (options_.verify_checksums && RecordChecksumOf(At(r.offset), r, salt_) != r.checksum) {
        return absl::DataLossError(
            absl::StrCat(path(), ": damaged record at offset ", r.offset, ": checksum mismatch"));
      }
    }
    if (r.type != kPut) {
      return absl::DataLossError(
          absl::StrCat(path(), ": index points at a non-put record at offset ", r.offset));
    }
    if (!fn(r.key, r.value)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<Snapshot> DBImpl::BeginSnapshot() {
  MAPKV_RETURN_IF_ERROR(CheckUsable());
  for (;;) {
    // The committed state's words, read consistently as an optimistic Get reads them. Where a
    // publish keeps overlapping (or its writer died in it), the shared side for a moment.
    Snapshot snap;
    bool consistent = false;
    for (int attempt = 0; attempt < 64 && !consistent; ++attempt) {
      const uint32_t seq = lock_.ReadBeginSpinning();
      if (seq & 1) break;
      MAPKV_RETURN_IF_ERROR(Cover(state_->file_size.load(std::memory_order_acquire)));
      snap = CommittedSnapshot();
      consistent = lock_.ReadValid(seq);
    }
    if (!consistent) {
      MAPKV_ASSIGN_OR_RETURN(snap, LockShared());
      UnlockShared();
    }
    snap.as_of = true;
    {
      std::lock_guard<std::mutex> lock(pins_mu_);
      pins_.emplace(snap.tail, Pin{NowUnixMs(), snap.head});
      PublishPinLocked();
    }
    // After the pin is published (seq_cst): an online compaction marks the file, then looks for
    // pins before it gives the file's blocks back (successor.cc); the cleaner raises the punch
    // fence, then looks for pins before it gives back the blocks below it (cleaner.cc). Past the
    // fence, the log start this snapshot read is stale: the next read finds a later one.
    if (lock_.successor() != 0) {
      Unpin(snap.tail);
      return Superseded();
    }
    if (cleaned_ && lock_.punch_fence() > snap.head) {
      Unpin(snap.tail);
      continue;
    }
    env_.AtPoint(HookPoint::kSnapshotPinned);
    return snap;
  }
}

absl::Status DBImpl::SnapshotTooOld(uint64_t since) const {
  return absl::FailedPreconditionError(
      absl::StrCat(path(), ": snapshot too old: ", since, " bytes were committed after it began, ",
                   "past Options::max_snapshot_bytes (", options_.max_snapshot_bytes,
                   "); begin a new read transaction"));
}

absl::Status DBImpl::SnapshotReclaimed() const {
  return absl::FailedPreconditionError(absl::StrCat(
      path(), ": snapshot too old: the cleaner gave back log space it reads (a handle without ",
      "write permission cannot pin it); begin a new read transaction"));
}

void DBImpl::Unpin(uint64_t tail) {
  // In a child of fork() the slot is the parent's, and the mutex may be held by a thread that
  // is not there.
  if (ForkGeneration() != fork_generation_) return;
  std::lock_guard<std::mutex> lock(pins_mu_);
  auto it = pins_.find(tail);
  if (it != pins_.end()) pins_.erase(it);
  PublishPinLocked();
  // The last snapshot of a file that an online compaction replaced: its blocks go back now,
  // unless another handle's snapshot still reads it (whose end gives them back).
  if (pins_.empty() && lock_.successor() != 0) (void)PunchIfUnpinned();
}

void DBImpl::PublishPinLocked() {
  if (detached_) return;  // no slot
  std::atomic<uint64_t>* words = lock_.slot_at(lock_.slot()).cache_counts;
  if (pins_.empty()) {
    words[kPinTail].store(0, std::memory_order_release);
    words[kPinCount].store(0, std::memory_order_relaxed);
    return;
  }
  words[kPinSinceMs].store(static_cast<uint64_t>(pins_.begin()->second.since_ms),
                           std::memory_order_relaxed);
  // Before the tail (seq_cst): whoever sees the tail sees the head that goes with it. The oldest
  // snapshot has the lowest head too (head only moves on).
  words[kPinHead].store(pins_.begin()->second.head, std::memory_order_release);
  words[kPinCount].store(pins_.size(), std::memory_order_relaxed);
  words[kPinTail].store(pins_.begin()->first, std::memory_order_seq_cst);
}

std::vector<SnapshotInfo> DBImpl::Snapshots() {
  std::vector<SnapshotInfo> out;
  if (!chained_ || !CheckUsable().ok()) return out;
  const uint64_t tail = state_->committed_tail.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < lock_.slot_hwm(); ++i) {
    const std::atomic<uint64_t>* words = lock_.slot_at(i).cache_counts;
    const uint64_t pin = words[kPinTail].load(std::memory_order_acquire);
    if (pin == 0 || !lock_.SlotAlive(i)) continue;  // a dead holder's pins went with it
    SnapshotInfo info;
    info.pid = lock_.slot_at(i).pid.load(std::memory_order_relaxed);
    info.snapshots = words[kPinCount].load(std::memory_order_relaxed);
    info.since_unix_ms = static_cast<int64_t>(words[kPinSinceMs].load(std::memory_order_relaxed));
    info.tail = pin;
    info.pinned_bytes = tail > pin ? tail - pin : 0;
    out.push_back(info);
  }
  return out;
}

// Every ReadConsistent caller is in this file.
template <class Read>
absl::Status DBImpl::ReadConsistent(Read&& read) {
  MAPKV_RETURN_IF_ERROR(CheckUsable());
  // Optimistic first: read without taking the lock, then check that no commit published
  // meanwhile. A reader that writes nothing shared scales with processes, and without a locked
  // instruction consecutive reads overlap their cache misses. A continuous writer publishes every
  // few microseconds: wait out a publish rather than fall back to the lock (which would make
  // readers and the writer wait for each other), and retry a read that overlapped one.
  for (int attempt = 0; attempt < 64; ++attempt) {
    const uint32_t seq = lock_.ReadBeginSpinning();
    if (seq & 1) break;  // a publish that long: its writer may be dead; the lock path finds out
    if (lock_.successor() != 0) return Superseded();  // on publish_seq's line: free
    // The file size bounds the offsets instead of the committed tail: that keeps every access
    // inside the file, and the seqlock check rejects anything a commit changed meanwhile.
    // A ring's offsets are logical: its committed tail bounds them, with the ring's bounds.
    Snapshot snap;
    snap.index_record = state_->index_record.load(std::memory_order_acquire);
    snap.tail = state_->file_size.load(std::memory_order_relaxed);
    MAPKV_RETURN_IF_ERROR(Cover(snap.tail));
    if (ring()) snap.tail = state_->committed_tail.load(std::memory_order_acquire);
    snap.index_bits = IndexBits(snap.index_record);
    read(snap);
    if (lock_.ReadValid(seq)) return absl::OkStatus();
  }
  // The lock path uses the descriptor (its waits ask the kernel about the writer), which a
  // retired handle no longer has: count as a user for it.
  if (lock_.successor() != 0) return Superseded();
  MAPKV_RETURN_IF_ERROR(AddUser());
  absl::StatusOr<Snapshot> snap = LockShared();
  if (snap.ok()) {
    read(*snap);
    lock_.UnlockShared();
  }
  DropUser();
  return snap.status();
}

namespace {
// Copies a looked-up value out of the mapping, reusing `out`'s capacity when it holds a string.
void CopyResult(const absl::StatusOr<std::string_view>& v, absl::StatusOr<std::string>& out) {
  if (!v.ok()) {
    out = v.status();
  } else if (out.ok()) {
    out->assign(v->data(), v->size());
  } else {
    out = std::string(*v);
  }
}
}  // namespace

absl::StatusOr<std::string> DBImpl::Get(std::string_view key) {
  absl::StatusOr<std::string> result;
  MAPKV_RETURN_IF_ERROR(
      ReadConsistent([&](const Snapshot& snap) { CopyResult(Lookup(snap, key), result); }));
  return result;
}

absl::Status DBImpl::Get(std::string_view key, std::string* value) {
  absl::Status result;
  MAPKV_RETURN_IF_ERROR(ReadConsistent([&](const Snapshot& snap) {
    absl::StatusOr<std::string_view> v = Lookup(snap, key);
    result = v.status();
    if (v.ok()) value->assign(v->data(), v->size());
  }));
  return result;
}

// Three passes over a batch, each starting the next pass's cache misses for every key before it
// waits on any: hash the keys and prefetch their home slots; read the home slots and prefetch the
// records they point at; then look each key up, which now finds its lines in cache. A key whose
// probe runs past its home slot still gets the right answer, only without the overlap.
void DBImpl::LookupBatch(const Snapshot& snap, const std::string_view* keys, size_t n,
                         absl::StatusOr<std::string_view>* out) const {
  IndexTable table(base_, snap.index_record, snap.index_bits);
  uint64_t hashes[kLookupBatch];
  for (size_t i = 0; i < n; ++i) {
    hashes[i] = HashKey(keys[i], hash_seed_);
    __builtin_prefetch(&table.home(hashes[i]));
  }
  for (size_t i = 0; i < n; ++i) {
    const Slot& s = table.home(hashes[i]);
    if (s.hash.load(std::memory_order_relaxed) == hashes[i]) {
      PrefetchRecord(s.offset.load(std::memory_order_relaxed), snap.tail);
    }
  }
  for (size_t i = 0; i < n; ++i) out[i] = LookupHashed(snap, keys[i], hashes[i]);
}

absl::Status DBImpl::MultiGet(absl::Span<const std::string_view> keys,
                              std::vector<absl::StatusOr<std::string>>* values) {
  values->resize(keys.size());
  absl::StatusOr<std::string_view> found[kLookupBatch];
  for (size_t start = 0; start < keys.size(); start += kLookupBatch) {
    const size_t n = std::min(kLookupBatch, keys.size() - start);
    MAPKV_RETURN_IF_ERROR(ReadConsistent([&](const Snapshot& snap) {
      LookupBatch(snap, keys.data() + start, n, found);
      for (size_t i = 0; i < n; ++i) CopyResult(found[i], (*values)[start + i]);
    }));
  }
  return absl::OkStatus();
}

}  // namespace mapkv::internal
