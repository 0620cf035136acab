// The commit path, shared by transactions, single writes and recovery: space, records, the
// index, sealing, publishing, and checkpoints. DBImpl (db_impl.h) declares these.
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "src/db_impl.h"
#include "src/env.h"
#include "src/errors.h"
#include "src/hash.h"
#include "src/platform/process.h"
#include "src/status_macros.h"

namespace mapkv::internal {
namespace {

// The file grows by a quarter (at least 1 MiB, at most 1 GiB) at a time: its blocks are allocated
// when it grows, so a larger step would leave more of the disk taken and unused.
constexpr uint64_t kGrowStep = 1ull << 30;
// A cleaned file (format version 5) grows at its end for as long as it is in use, while the
// cleaner gives back its start: what it holds ahead of the log is space taken for nothing, a
// quarter of the log at worst under the step above (0.6x the raw live bytes at 1M keys). It grows
// by a sixteenth of what is in use, 1 to 8 MiB: a posix_fallocate, which a writer appending
// 100 MB/s makes 12 to 100 times a second.
constexpr uint64_t kCleanedGrowStep = 8ull << 20;

uint64_t CheckpointChecksum(const CheckpointRecord& c, uint64_t salt) {
  return Hash64(&c, offsetof(CheckpointRecord, checksum), salt);
}

}  // namespace

absl::Status DBImpl::AcquireCurrentWriter() {
  MAPKV_RETURN_IF_ERROR(AddUser());
  absl::Status s = AcquireWriter();
  if (s.ok() && lock_.successor() == 0) return absl::OkStatus();
  if (s.ok()) {
    ReleaseWriter();
    s = Superseded();
  }
  DropUser();
  return s;
}

void DBImpl::ReleaseCurrentWriter() {
  ReleaseWriter();
  DropUser();
}

absl::StatusOr<std::unique_ptr<WriteState>> DBImpl::BeginWrite() {
  MAPKV_RETURN_IF_ERROR(AcquireCurrentWriter());
  auto w = std::make_unique<WriteState>();
  w->db = this;
  w->seq = state_->commits.load() + 1;
  w->start = w->tail = w->first = state_->committed_tail.load();
  return w;
}

void DBImpl::EndWrite(WriteState& w) {
  if (w.db == nullptr) return;
  w.db = nullptr;
  // In a child of fork() the writer lock is the parent's, and the mapping is not there.
  if (!CheckUsable().ok()) return;
  ReleaseCurrentWriter();
}

absl::Status DBImpl::EnsureSpace(uint64_t end, uint64_t keep) {
  const uint64_t size = state_->file_size.load();
  if (end + keep <= size) {
    PrefaultAhead(end, size);
    return absl::OkStatus();
  }
  if (end > max_file_size_) {
    return absl::ResourceExhaustedError(absl::StrCat(path(), ": database full: needs ", end,
                                                     " bytes, max_file_size is ", max_file_size_));
  }
  const uint64_t need = std::min(RoundUp(end + keep, kSizeGranule), max_file_size_);
  // A quarter of what is in use; in version 5, where the file below the log's start is given
  // back, a sixteenth (kCleanedGrowStep).
  const uint64_t in_use = size - (cleaned_ ? state_->head.load() - kHeaderSize : 0);
  uint64_t grown = std::max(need, size + (cleaned_ ? std::min(in_use / 16, kCleanedGrowStep)
                                                   : std::min(in_use / 4, kGrowStep)));
  grown = std::min(RoundUp(grown, kGrowAlign), max_file_size_);
  absl::Status s = file_->Grow(grown);
  // A full disk may still have room for what this commit needs, if not for a quarter more.
  if (absl::IsResourceExhausted(s) && grown > need) s = file_->Grow(grown = need);
  if (!s.ok()) {
    if (keep == 0) return s;
    return absl::ResourceExhaustedError(
        absl::StrCat(s.message(), " (a put needs room for itself and ", keep,
                     " bytes more, kept for deletes: those still go through)"));
  }
  env_.AtPoint(HookPoint::kFileGrown);
  state_->file_size.store(grown);
  PrefaultAhead(end, grown);
  return absl::OkStatus();
}

// The first store to each new page of the log would fault (a trap, a zeroed page cache page, a
// page table entry): one fault per 28 records of 144 bytes, 256 per MiB. Populating the next MiB
// or two ahead of the writer in one call does the same work with one trap per call.
void DBImpl::PrefaultAhead(uint64_t end, uint64_t file_size) {
  constexpr uint64_t kStep = 1ull << 20;
  if (end <= prefaulted_) return;
  const uint64_t from = std::max(prefaulted_, end / kHeaderPageSize * kHeaderPageSize);
  const uint64_t to = std::min(file_size, RoundUp(end, kStep) + kStep);
  if (to > from) file_->Prefault(from, to - from);
  prefaulted_ = std::max(to, end);
}

absl::StatusOr<char*> DBImpl::Place(WriteState& w, uint64_t size) {
  if (!ring()) {
    MAPKV_RETURN_IF_ERROR(EnsureSpace(w.tail + size));
    return base_ + w.tail;
  }
  if (size > ring_len_ / 4) {
    return absl::InvalidArgumentError(absl::StrCat(path(), ": a record of ", size,
                                                   " bytes is larger than a quarter of the ",
                                                   ring_len_, " bytes the cache has for entries"));
  }
  const uint64_t lap_room = ring_start_ + ring_len_ - Phys(w.tail);
  const uint64_t at = size <= lap_room ? w.tail : w.tail + lap_room;  // the next lap's start
  const uint64_t end = at + size;
  if (end - w.start > ring_len_ / 2) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path(), ": a transaction of more than ", ring_len_ / 2,
                     " bytes, half of what the cache has for entries"));
  }
  // The live log [head, end) must fit in one ring. Evict a 64th of it beyond the need at a time:
  // each eviction takes the exclusive side once, as a commit does.
  if (end - state_->head.load() > ring_len_) {
    MAPKV_RETURN_IF_ERROR(Evict(end - ring_len_ + ring_len_ / 64, UINT64_MAX));
  }
  MAPKV_RETURN_IF_ERROR(EnsureSpace(Phys(at) + size));  // the file grows in the first lap
  if (at != w.tail) {
    if (lap_room >= sizeof(RecordHeader)) WritePadAt(At(w.tail), w.tail, salt_, w.seq);
    if (w.tail == w.first) w.first = at;
    w.tail = at;
  }
  return At(w.tail);
}

namespace {
void RememberWrite(WriteState& w, std::string_view key) {
  if (!w.track_writes) return;
  if (w.keys != WriteState::Keys::kAny) {
    w.records.push_back(w.tail);
    return;
  }
  auto it = w.writes.find(key);
  if (it != w.writes.end()) {
    it->second = w.tail;
  } else {
    w.writes.emplace(std::string(key), w.tail);
  }
}
}  // namespace

absl::Status DBImpl::TxnPut(WriteState& w, std::string_view key, std::string_view value) {
  MAPKV_RETURN_IF_ERROR(CheckUsable());
  MAPKV_RETURN_IF_ERROR(CheckKeySize(path(), key));
  if (value.size() > kMaxValueSize) {
    return absl::InvalidArgumentError(absl::StrCat(path(), ": key ", QuoteKey(key), ": value of ",
                                                   value.size(), " bytes: values are at most ",
                                                   kMaxValueSize));
  }
  const uint64_t size = RecordSizeOf(key.size(), value.size(), chained_);
  // Puts stop short of the limit, so that deletes (and the commit records and index tables that
  // go with them) can still free keys in a full database.
  const uint64_t reserve = DeleteReserve(max_file_size_);
  if (!ring() && w.tail + size + reserve > max_file_size_) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path(), ": database full: a put of key ", QuoteKey(key), " (", size,
                     " bytes) would pass max_file_size (", max_file_size_, " bytes) less the ",
                     reserve, " bytes kept for deletes"));
  }
  // The same reserve on a full disk: a put grows the file past itself by as much first.
  if (!ring()) MAPKV_RETURN_IF_ERROR(EnsureSpace(w.tail + size, reserve));
  MAPKV_ASSIGN_OR_RETURN(char* p, Place(w, size));
  WriteRecordAt(p, w.tail, salt_, kPut, chained_ ? kChained : 0, w.seq, key, value,
                chained_ ? PreviousVersion(w, key) : 0);
  w.checksums.push_back(reinterpret_cast<RecordHeader*>(p)->checksum);
  RememberWrite(w, key);
  w.last_record = w.tail;
  w.tail += size;
  ++w.puts;
  return absl::OkStatus();
}

absl::Status DBImpl::TxnDelete(WriteState& w, std::string_view key) {
  MAPKV_RETURN_IF_ERROR(CheckUsable());
  MAPKV_RETURN_IF_ERROR(CheckKeySize(path(), key));
  const uint64_t size = RecordSizeOf(key.size(), 0, chained_);
  MAPKV_ASSIGN_OR_RETURN(char* p, Place(w, size));
  WriteRecordAt(p, w.tail, salt_, kDelete, chained_ ? kChained : 0, w.seq, key, {},
                chained_ ? PreviousVersion(w, key) : 0);
  w.checksums.push_back(reinterpret_cast<RecordHeader*>(p)->checksum);
  RememberWrite(w, key);
  w.last_record = w.tail;
  w.tail += size;
  return absl::OkStatus();
}

uint64_t DBImpl::PreviousVersion(const WriteState& w, std::string_view key) const {
  if (w.keys == WriteState::Keys::kNew) return 0;
  if (w.track_writes && w.keys == WriteState::Keys::kAny) {
    auto it = w.writes.find(key);
    if (it != w.writes.end()) return it->second;
  }
  // The writer lock keeps the committed index still; a deleted key's slot counts (its kDelete).
  const Snapshot snap = CommittedSnapshot();
  const IndexTable table(base_, snap.index_record, snap.index_bits);
  uint64_t found = 0;
  table.Probe(HashKey(key, hash_seed_), [&](uint64_t offset) {
    if (KeyAt(offset, snap.tail) != key) return false;
    found = SlotRecord(offset);
    return true;
  });
  return found;
}

void DBImpl::PrefetchPreviousVersion(std::string_view key, int stage) const {
  const Snapshot snap = CommittedSnapshot();
  const IndexTable table(base_, snap.index_record, snap.index_bits);
  const uint64_t hash = HashKey(key, hash_seed_);
  const Slot& home = table.home(hash);
  if (stage == 0) {
    __builtin_prefetch(&home);
    return;
  }
  if (home.hash.load(std::memory_order_relaxed) != hash) return;  // a longer probe: not worth it
  const uint64_t record = SlotRecord(home.offset.load(std::memory_order_relaxed));
  if (record >= kHeaderSize && record < snap.tail) {
    __builtin_prefetch(At(record));
    __builtin_prefetch(At(record) + sizeof(RecordHeader) + kPrevSize + key.size() - 1);
  }
}

uint64_t DBImpl::Replaced(const WriteState& w, uint64_t offset) const {
  if (!chained_) return kReplacesUnknown;
  // The batch's own records, which this writer wrote: each link goes back.
  uint64_t prev = offset;
  for (uint64_t at = offset; at >= w.start; at = prev) {
    std::memcpy(&prev, At(at) + sizeof(RecordHeader), kPrevSize);
    if (prev >= at) return kReplacesUnknown;
  }
  return prev;
}

absl::StatusOr<std::string_view> DBImpl::TxnGet(const WriteState& w, std::string_view key) const {
  MAPKV_RETURN_IF_ERROR(CheckUsable());
  MAPKV_RETURN_IF_ERROR(CheckKeySize(path(), key));
  auto it = w.writes.find(key);
  if (it != w.writes.end()) {
    MAPKV_ASSIGN_OR_RETURN(Record r, ReadNamed(it->second, w.tail, false));
    if (r.type == kDelete) return KeyNotFoundError(path(), key);
    return r.value;
  }
  // The writer lock keeps the committed state still: no shared lock needed.
  return Lookup(CommittedSnapshot(), key);
}

absl::StatusOr<uint64_t> DBImpl::WriteIndexTable(uint64_t at, uint64_t seq, uint8_t flags,
                                                 uint32_t bits) {
  if (bits > kMaxIndexBits) {
    return absl::ResourceExhaustedError(absl::StrCat(path(), ": index table too large"));
  }
  const uint64_t size = IndexRecordSize(at, bits);
  MAPKV_RETURN_IF_ERROR(EnsureSpace(at + size));
  std::memset(base_ + at, 0, size);  // the space may hold an aborted transaction's bytes
  WriteIndexHeader(base_, at, salt_, flags, seq, bits);
  return size;
}

absl::StatusOr<uint64_t> DBImpl::MaybeGrowIndex(WriteState& w, uint64_t new_keys) {
  if (!ring()) return MaybeGrowLinearIndex(w, new_keys);
  return RehashRingWith(w.seq, new_keys, [&](uint64_t max_keys) { return Evict(0, max_keys); });
}

absl::StatusOr<uint64_t> DBImpl::MaybeGrowIndexLocked(WriteState& w, uint64_t new_keys) {
  if (!ring()) return MaybeGrowLinearIndex(w, new_keys);
  return RehashRingWith(w.seq, new_keys,
                        [&](uint64_t max_keys) { return EvictLocked(0, max_keys); });
}

absl::StatusOr<uint64_t> DBImpl::MaybeGrowLinearIndex(WriteState& w, uint64_t new_keys,
                                                      bool refit) {
  const uint64_t old_record = state_->index_record.load();
  const uint32_t old_bits = IndexBits(old_record);
  if (!refit && !IndexOverLimit(state_->used.load() + new_keys, uint64_t{1} << old_bits)) {
    return 0;
  }
  // Rehash from the stored hashes (no record reads) into a table at most half full. Readers go on
  // reading the old table meanwhile: only the writer changes tables.
  const uint32_t fit = IndexBitsFor(state_->count.load() + new_keys, options_.initial_index_slots);
  const uint32_t bits = refit ? fit : std::max(fit, old_bits);
  const uint64_t at = w.tail;
  MAPKV_ASSIGN_OR_RETURN(uint64_t size, WriteIndexTable(at, w.seq, 0, bits));
  IndexTable from(base_, old_record, old_bits);
  IndexTable to(base_, at, bits);
  for (uint64_t i = 0; i < from.capacity(); ++i) {
    if (i == from.capacity() / 2) env_.AtPoint(HookPoint::kIndexGrowing);
    const Slot& s = from.slot(i);
    uint64_t offset = s.offset.load(std::memory_order_relaxed);
    // A deleted key's slot stays behind: snapshots older than this table read the old one.
    if (offset != kEmpty && offset != kTombstone && !SlotDead(offset)) {
      to.InsertFresh(s.hash.load(), offset);
    }
  }
  w.checksums.push_back(reinterpret_cast<RecordHeader*>(base_ + at)->checksum);
  w.last_record = at;
  w.tail += size;
  return at;
}

absl::Status DBImpl::Seal(WriteState& w) {
  if (w.checksums.size() == 1) {
    SetRecordFlagsAt(At(w.last_record), w.last_record, salt_, kLast);
    return absl::OkStatus();
  }
  const uint64_t size = RecordSize(0, sizeof(CommitPayload));
  MAPKV_ASSIGN_OR_RETURN(char* p, Place(w, size));
  CommitPayload payload;
  payload.digest = BatchDigest(w.checksums.data(), w.checksums.size(), salt_, w.first);
  payload.records = w.checksums.size();
  WriteRecordAt(p, w.tail, salt_, kCommit, kLast, w.seq, {},
                std::string_view(reinterpret_cast<const char*>(&payload), sizeof(payload)));
  w.last_record = w.tail;
  w.tail += size;
  return absl::OkStatus();
}

void DBImpl::ApplyWrite(IndexTable& table, const BatchWrite& write) {
  const uint64_t limit = state_->committed_tail.load(std::memory_order_relaxed);
  Slot* free_slot = nullptr;
  Slot* slot = table.Probe(
      write.hash, [&](uint64_t offset) { return IsSlotOf(write, offset, limit); }, &free_slot);
  if (slot != nullptr) {
    const uint64_t old = slot->offset.load(std::memory_order_relaxed);
    const bool was_live = !SlotDead(old);  // version 4: a deleted key keeps its slot
    if (was_live) state_->live_bytes.fetch_sub(SizeAt(old), std::memory_order_relaxed);
    if (write.is_put) {
      slot->offset.store(write.offset, std::memory_order_release);
      state_->live_bytes.fetch_add(SizeAt(write.offset), std::memory_order_relaxed);
      if (!was_live) state_->count.fetch_add(1, std::memory_order_relaxed);
    } else {
      slot->offset.store(chained_ ? write.offset | kDeadSlot : kTombstone,
                         std::memory_order_release);
      if (was_live) state_->count.fetch_sub(1, std::memory_order_relaxed);
    }
    return;
  }
  if (!write.is_put || free_slot == nullptr) return;  // free_slot: guaranteed by the load limit
  if (free_slot->offset.load(std::memory_order_relaxed) == kEmpty) {
    state_->used.fetch_add(1, std::memory_order_relaxed);
  }
  IndexTable::Fill(*free_slot, write.hash, write.offset);
  state_->count.fetch_add(1, std::memory_order_relaxed);
  state_->live_bytes.fetch_add(SizeAt(write.offset), std::memory_order_relaxed);
}

absl::Status DBImpl::Publish(WriteState& w, uint64_t new_index_record, const BatchWrite* writes,
                             size_t n) {
  if (options_.durability == Durability::kSync) {
    // From the end of what is known to be on the disk, not from the batch's start: the batch is
    // durable only with everything before it (other handles may commit without syncing).
    const uint64_t from = std::min(std::max(state_->synced_tail.load(), LogStart()), w.start);
    MAPKV_RETURN_IF_ERROR(FlushLog(from, w.tail));
  }
  if (state_->clean.load() != 0) {
    // The disk must stop trusting the index before any index page can reach it.
    state_->clean.store(0);
    MAPKV_RETURN_IF_ERROR(file_->Flush(0, kHeaderPageSize));
  }
  // Walk every probe run before taking the exclusive side (no other writer can change the index
  // meanwhile): the slot and record lines the changes need are then in cache, and the window in
  // which readers wait, and optimistic readers retry, shrinks from a few cache misses per write
  // to a few stores.
  {
    const uint64_t record = new_index_record != 0 ? new_index_record : state_->index_record.load();
    const IndexTable table(base_, record, IndexBits(record));
    const uint64_t limit = state_->committed_tail.load(std::memory_order_relaxed);
    for (size_t i = 0; i < n; ++i) {
      Slot* slot = table.Probe(writes[i].hash,
                               [&](uint64_t offset) { return IsSlotOf(writes[i], offset, limit); });
      // The replaced record's size comes off the live bytes: its header is read under the lock.
      const uint64_t old =
          slot != nullptr ? SlotRecord(slot->offset.load(std::memory_order_relaxed)) : limit;
      if (old < limit) __builtin_prefetch(At(old));
    }
  }
  MAPKV_RETURN_IF_ERROR(lock_.LockExclusive());
  // The commit point. From here recovery replays [applied_tail, committed_tail) if we die.
  state_->committed_tail.store(w.tail, std::memory_order_release);
  if (new_index_record != 0) {
    // The new table holds the live keys and no tombstones.
    state_->index_record.store(new_index_record);
    state_->used.store(state_->count.load());
  }
  IndexTable table(base_, state_->index_record.load(), IndexBits(state_->index_record.load()));
  for (size_t i = 0; i < n; ++i) {
    if (i == n / 2) env_.AtPoint(HookPoint::kCommitApplying);
    ApplyWrite(table, writes[i]);
  }
  // With the batch that relocated what it passes: a snapshot that reads the new start reads the
  // copies too (cleaner.cc).
  if (w.new_head != 0) state_->head.store(w.new_head, std::memory_order_release);
  state_->commits.store(w.seq, std::memory_order_relaxed);
  state_->applied_tail.store(w.tail, std::memory_order_release);
  if (options_.durability == Durability::kSync) state_->synced_tail.store(w.tail);
  lock_.UnlockExclusive();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<BatchWrite>> DBImpl::BatchWrites(const WriteState& w) const {
  std::vector<BatchWrite> writes;
  writes.reserve(w.writes.size() + w.records.size());
  for (const auto& [key, offset] : w.writes) {
    const auto* h = reinterpret_cast<const RecordHeader*>(At(offset));
    writes.push_back({key, HashKey(key, hash_seed_), offset, h->type == kPut, Replaced(w, offset)});
  }
  for (uint64_t offset : w.records) {  // this writer's own records: they decode
    MAPKV_ASSIGN_OR_RETURN(const Record r, ReadNamed(offset, w.tail, false));
    // Each key once in the batch: the chain's first link is the committed version.
    writes.push_back({r.key, HashKey(r.key, hash_seed_), offset, r.type == kPut,
                      (r.flags & kChained) != 0 ? r.prev : kReplacesUnknown});
  }
  return writes;
}

absl::Status DBImpl::Commit(WriteState& w) {
  MAPKV_RETURN_IF_ERROR(CheckUsable());
  if (w.checksums.empty()) return absl::OkStatus();
  MAPKV_ASSIGN_OR_RETURN(const std::vector<BatchWrite> writes, BatchWrites(w));
  MAPKV_ASSIGN_OR_RETURN(uint64_t new_index, MaybeGrowIndex(w, w.puts));
  MAPKV_RETURN_IF_ERROR(Seal(w));
  absl::Status s = Publish(w, new_index, writes.data(), writes.size());
  if (!s.ok()) {
    InvalidateAfterTail();  // a sealed batch that was never published must never validate
    return s;
  }
  MaybeClean(w.tail - w.start);
  return MaybePeriodicCheckpoint();
}

absl::Status DBImpl::PutOrDelete(std::string_view key, const std::string_view* value) {
  // A one-write transaction without the transaction's map.
  MAPKV_RETURN_IF_ERROR(CheckKeySize(path(), key));
  MAPKV_RETURN_IF_ERROR(AcquireCurrentWriter());
  WriteState w;
  w.track_writes = false;
  w.db = this;
  w.seq = state_->commits.load() + 1;
  w.start = w.tail = w.first = state_->committed_tail.load();
  absl::Status s = value != nullptr ? TxnPut(w, key, *value) : TxnDelete(w, key);
  if (s.ok()) {
    const BatchWrite write{key, HashKey(key, hash_seed_), w.first, value != nullptr,
                           Replaced(w, w.first)};
    absl::StatusOr<uint64_t> new_index = MaybeGrowIndex(w, w.puts);
    s = new_index.status();
    if (s.ok()) s = Seal(w);
    if (s.ok()) {
      s = Publish(w, *new_index, &write, 1);
      if (!s.ok()) InvalidateAfterTail();
    }
    if (s.ok()) MaybeClean(w.tail - w.start);
    if (s.ok()) s = MaybePeriodicCheckpoint();
  }
  ReleaseCurrentWriter();
  if (s.ok()) lock_.Pace(w.tail - w.start);
  return s;
}

// ---- Checkpoints ----

const CheckpointRecord* DBImpl::LatestCheckpoint() const {
  const CheckpointRecord* best = nullptr;
  for (uint64_t offset : kCheckpointOffset) {
    const auto* c = reinterpret_cast<const CheckpointRecord*>(base_ + offset);
    if (c->seq == 0 || c->checksum != CheckpointChecksum(*c, header_->salt)) continue;
    if (best == nullptr || c->seq > best->seq) best = c;
  }
  return best;
}

absl::Status DBImpl::CheckpointLocked() {
  const uint64_t tail = state_->committed_tail.load();
  const uint64_t head = cleaned_ ? state_->head.load() : 0;
  MAPKV_RETURN_IF_ERROR(
      FlushForCheckpoint(head, ring() ? state_->file_size.load() : tail, /*index=*/true));
  state_->synced_tail.store(tail);
  MAPKV_RETURN_IF_ERROR(WriteCheckpointRecord(tail, head, 0));
  if (cleaned_) GiveBackLocked();
  return absl::OkStatus();
}

absl::Status DBImpl::FlushForCheckpoint(uint64_t head, uint64_t end, bool index) {
  // Version 5: nothing below head is read after a power cut (a rebuild scans from the head the
  // checkpoint holds), and it is given back: its dirty pages need not reach the disk.
  if (head <= kHeaderSize) {
    MAPKV_RETURN_IF_ERROR(file_->Flush(0, end));
    return file_->Sync();
  }
  MAPKV_RETURN_IF_ERROR(file_->Flush(0, kHeaderSize));
  // Without the index: its slots, every page of which a stream of commits dirties again, are
  // most of what a flush would write (32 MiB at 1M keys); its header, which a rebuild's scan
  // validates, goes.
  const uint64_t table = state_->index_record.load();
  const uint64_t slots = IndexSlotsOffset(table);
  const uint64_t table_end = table + IndexRecordSize(table, IndexBits(table));
  if (!index && table >= head && table_end <= end) {
    MAPKV_RETURN_IF_ERROR(file_->Flush(head, slots - head));
    MAPKV_RETURN_IF_ERROR(file_->Flush(table_end, end - table_end));
  } else {
    MAPKV_RETURN_IF_ERROR(file_->Flush(head, end - head));
  }
  return file_->Sync();
}

absl::Status DBImpl::WriteCheckpointRecord(uint64_t tail, uint64_t head, uint64_t flags) {
  const CheckpointRecord* latest = LatestCheckpoint();
  CheckpointRecord c{};
  c.seq = latest == nullptr ? 1 : latest->seq + 1;
  c.tail = tail;
  c.commits = state_->commits.load();
  c.index_record = state_->index_record.load();
  c.unix_ms = NowUnixMs();
  c.head = head;
  c.flags = flags;
  c.checksum = CheckpointChecksum(c, salt_);
  std::memcpy(base_ + kCheckpointOffset[c.seq % 2], &c, sizeof(c));
  return file_->Flush(0, kHeaderPageSize);
}

absl::Status DBImpl::MaybePeriodicCheckpoint() {
  if (options_.durability != Durability::kPeriodic) return absl::OkStatus();
  const CheckpointRecord* latest = LatestCheckpoint();
  const uint64_t since = latest == nullptr ? LogStart() : std::max(latest->tail, LogStart());
  const int64_t last_ms = latest == nullptr ? 0 : latest->unix_ms;
  if (state_->committed_tail.load() - since < options_.checkpoint_bytes &&
      NowUnixMs() - last_ms < options_.checkpoint_interval.count()) {
    return absl::OkStatus();
  }
  return CheckpointLocked();
}

absl::Status DBImpl::Checkpoint() {
  MAPKV_RETURN_IF_ERROR(AcquireCurrentWriter());
  absl::Status s = CheckpointLocked();
  ReleaseCurrentWriter();
  return s;
}

}  // namespace mapkv::internal
