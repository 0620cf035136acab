// The cleaner of a database of format version 5: the log's start (SharedState::head) moves on as
// the writer relocates the live records there to the log's end, and the blocks below it go back
// to the file system once a checkpoint made the copies durable. DBImpl (db_impl.h) declares these.
//
// The log is cleaned oldest first (LFS's and RAMCloud's cost-benefit choice of segments needs
// segments; with offsets that only grow, the oldest part is the one that no longer moves): a
// record at the start of the log was written a whole log ago, so under uniform updates with the
// log at r times the live bytes, a fraction of about e^-r(1-f) = f of what a step walks is still
// live (f = 0.20 at r = 2, 0.42 at r = 1.5). A step relocates those in one batch, chained to
// the versions they copy, and moves head past what it walked in the same publish: a snapshot
// that read the old head reads the copies' links back to the originals, which stay in place
// until no snapshot began before the step; one that read the new head finds every key's version
// at or after it.
//
// Bytes below head are never written again: a reader that comes late (an optimistic Get whose
// seqlock check will fail, a handle without write permission) finds there what was committed, or
// zeros, never another record. Giving them back (MappedFile::Punch) waits for two things:
// - the copies on the disk: a checkpoint whose record holds the head (CheckpointRecord::head),
//   so that a rebuild after a power cut starts at a head whose log is all there;
// - no snapshot that reads there: each handle publishes, beside its oldest snapshot's tail, the
//   log start that snapshot read (kPinHead), below which it reads nothing; the punch fence
//   (LockState::punch_fence) is raised, then the pins are looked at; a snapshot publishes its
//   pin, then looks at the fence. A stale snapshot so holds back the log from its start on, and
//   no more.
//
// Nor does cleaning run far past a snapshot's start: what it walks past there goes back only once
// the snapshot ends, and the records it copies may well die before then, so a long snapshot
// (a backup, a slow dump) pauses it once head is kPinnedCleanAhead past the oldest pin. Short
// snapshots hardly do: while cleaning is paused, new snapshots start at the same head, and once
// the older ones end it goes on.
#include <algorithm>
#include <array>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/db_impl.h"
#include "src/env.h"
#include "src/errors.h"
#include "src/hash.h"
#include "src/status_macros.h"

namespace mapkv::internal {
namespace {

// A step walks this much of the log (then on to the end of the batch it is in): its live
// records are relocated in one batch, under the writer lock of the commit that called for it.
constexpr uint64_t kCleanStep = 256 << 10;
// Garbage left whatever the ratio: on a small database, a step would otherwise walk mostly
// records it must copy.
constexpr uint64_t kCleanSlack = 1 << 20;
// The file's first 2 MiB stay allocated: with huge pages (Options::huge_pages), a store into the
// header faults in a folio of up to 2 MiB from offset 0, which takes every block of it again.
constexpr uint64_t kKeptAllocated = 2 << 20;
// Blocks are given back this many bytes at a time at least (each give-back is a checkpoint),
// or an eighth of the log in use if that is more, up to kGiveBackMaxStep: what waits for the
// next give-back is half a step on average, space the file holds for nothing.
constexpr uint64_t kGiveBackStep = 4 << 20;
constexpr uint64_t kGiveBackMaxStep = 16 << 20;
// The log's pages are started to the disk this many bytes at a time (MaybeStartWriteback).
constexpr uint64_t kWritebackStep = 4 << 20;
// Cleaning pauses once head is this far past the oldest snapshot's start.
constexpr uint64_t kPinnedCleanAhead = 16 << 20;

}  // namespace

bool DBImpl::WantsCleaning() {
  if (!cleaned_ || options_.compact_ratio <= 0 ||
      cannot_give_back_.load(std::memory_order_relaxed)) {
    return false;
  }
  const uint64_t tail = state_->committed_tail.load(std::memory_order_relaxed);
  const uint64_t head = state_->head.load(std::memory_order_relaxed);
  const uint64_t kept = KeptBytes();
  return tail - head > kept + kCleanSlack &&
         static_cast<double>(tail - head) > options_.compact_ratio * static_cast<double>(kept) &&
         !PausedBySnapshot(head, tail);
}

bool DBImpl::PausedBySnapshot(uint64_t head, uint64_t tail) {
  // The pins as they are first (a snapshot that ends clears its pin); then, whether their
  // holders live, which costs a system call per pinned slot and is asked again only once the
  // tail moved a step (head stands still meanwhile): a dead holder's pin pauses a step at most.
  if (head < kPinnedCleanAhead ||
      OldestPinnedHead(/*alive_only=*/false) > head - kPinnedCleanAhead) {
    return false;
  }
  if (tail >= pins_paused_asked_at_.load(std::memory_order_relaxed) + kGiveBackStep) {
    pins_paused_asked_at_.store(tail, std::memory_order_relaxed);  // under the writer lock
    oldest_live_pin_.store(OldestPinnedHead(), std::memory_order_relaxed);
  }
  return oldest_live_pin_.load(std::memory_order_relaxed) <= head - kPinnedCleanAhead;
}

void DBImpl::MaybeClean(uint64_t wrote) {
  if (!WantsCleaning()) return;
  // Under uniform updates a step walks 1/(1 - f) bytes per byte written to keep the log where it
  // is (1.25 at a ratio of 2, 1.7 at 1.5); four times what the commit wrote catches up too.
  // The commit that called went through: a step that fails leaves the log as it was.
  absl::Status s = Clean(std::max(kCleanStep, 4 * wrote));
  if (!s.ok() && !clean_failed_.exchange(true)) {
    Log(absl::StrCat(path(), ": the cleaner failed (later commits try again): ", s.message()));
  }
}

bool DBImpl::IsCurrent(const IndexTable& table, uint64_t hash, const Record& r) const {
  return table.Probe(hash, [&](uint64_t offset) { return offset == r.offset; }) != nullptr;
}

absl::Status DBImpl::Relocate(WriteState& w, const Record& r) {
  const uint64_t size = RecordSizeOf(r.key.size(), r.value.size(), true);
  MAPKV_ASSIGN_OR_RETURN(char* p, Place(w, size));
  WriteRecordAt(p, w.tail, salt_, kPut, kChained, w.seq, r.key, r.value, r.offset);
  w.checksums.push_back(reinterpret_cast<RecordHeader*>(p)->checksum);
  w.records.push_back(w.tail);
  w.last_record = w.tail;
  w.tail += size;
  return absl::OkStatus();
}

absl::Status DBImpl::Clean(uint64_t budget) {
  const uint64_t committed = state_->committed_tail.load();
  const uint64_t head = state_->head.load();
  const uint64_t index_record = state_->index_record.load();
  const IndexTable table(base_, index_record, IndexBits(index_record));
  WriteState w;
  w.db = this;
  w.keys = WriteState::Keys::kUnique;  // each live record is its key's only one
  w.seq = state_->commits.load() + 1;
  w.start = w.tail = w.first = committed;
  // Whether a record is current is a probe of its key's slot, a cache miss in a table larger
  // than the caches: the walk prefetches the slots of the next kAhead puts before it probes
  // one, so that the misses overlap (probed one at a time, they took 13% of a writer's CPU time
  // at 200k keys of uniform updates; overlapped, 3%).
  constexpr size_t kAhead = 8;
  struct Walked {
    uint64_t hash;
    Record record;
  };
  std::array<Walked, kAhead> ahead;
  size_t first = 0, queued = 0;
  auto relocate_first = [&]() -> absl::Status {
    const Walked& x = ahead[first];
    first = (first + 1) % kAhead;
    --queued;
    return IsCurrent(table, x.hash, x.record) ? Relocate(w, x.record) : absl::OkStatus();
  };
  // Whole batches: a rebuild after a power cut scans from head, batch by batch.
  uint64_t at = head;
  bool in_batch = false;
  bool rehash = false;
  absl::Status s;
  while (s.ok() && at < committed && (in_batch || at - head < budget)) {
    absl::StatusOr<Record> r = ReadNamed(at, committed, true);  // copies get new checksums
    if (!r.ok()) {
      s = r.status();
      break;
    }
    // The index table in use moves with a rehash, which drops deleted keys' slots and fits the
    // table to the keys left.
    if (r->type == kIndex && at == index_record) rehash = true;
    if (r->type == kPut) {
      if (queued == kAhead) s = relocate_first();
      const uint64_t hash = HashKey(r->key, hash_seed_);
      __builtin_prefetch(&table.home(hash));
      ahead[(first + queued++) % kAhead] = Walked{hash, *r};
    }
    in_batch = (r->flags & kLast) == 0;
    at += r->size;
  }
  while (s.ok() && queued > 0) s = relocate_first();
  env_.AtPoint(HookPoint::kCleaning);
  uint64_t new_index = 0;
  if (s.ok() && rehash) {
    absl::StatusOr<uint64_t> rehashed = MaybeGrowLinearIndex(w, 0, /*refit=*/true);
    s = rehashed.status();
    if (s.ok()) new_index = *rehashed;
  }
  if (s.ok() && w.checksums.empty()) {
    // Nothing live: only the start moves.
    s = lock_.LockExclusive();
    if (s.ok()) {
      state_->head.store(at, std::memory_order_release);
      lock_.UnlockExclusive();
    }
    return s;
  }
  if (s.ok()) {
    absl::StatusOr<std::vector<BatchWrite>> writes = BatchWrites(w);
    s = writes.status();
    if (s.ok()) s = Seal(w);
    w.new_head = at;
    if (s.ok()) s = Publish(w, new_index, writes->data(), writes->size());
  }
  if (!s.ok()) {
    InvalidateAfterTail();  // a sealed batch that was never published must never validate
    return s;
  }
  lineage().relocated_bytes.fetch_add(w.tail - w.start, std::memory_order_relaxed);
  return absl::OkStatus();
}

void DBImpl::MaybeStartWriteback() {
  // Records are never written again once committed: their pages can go to the disk now, in the
  // background, rather than all at once in the give-back's flush, which a commit waits for.
  if (!cleaned_ || detached_ || options_.read_only) return;
  const uint64_t tail = state_->committed_tail.load(std::memory_order_acquire);
  const uint64_t from = std::max(written_back_.load(std::memory_order_relaxed),
                                 state_->head.load(std::memory_order_acquire));
  const uint64_t to = tail / kHeaderPageSize * kHeaderPageSize;  // not the page still filling
  if (to < from + kWritebackStep) return;
  written_back_.store(to, std::memory_order_relaxed);
  file_->StartFlush(from, to - from);
}

uint64_t DBImpl::OldestPinnedHead(bool alive_only) {
  uint64_t oldest = UINT64_MAX;
  for (uint32_t i = 0; i < lock_.slot_hwm(); ++i) {
    const std::atomic<uint64_t>* words = lock_.slot_at(i).cache_counts;
    if (words[kPinTail].load(std::memory_order_seq_cst) == 0) continue;
    const uint64_t head = words[kPinHead].load(std::memory_order_acquire);
    if (head < oldest && (!alive_only || lock_.SlotAlive(i))) oldest = head;
  }
  return oldest;
}

bool DBImpl::WantsGiveBack() {
  if (!cleaned_ || detached_ || options_.read_only) return false;
  const uint64_t head = state_->head.load(std::memory_order_acquire);
  const uint64_t tail = state_->committed_tail.load(std::memory_order_acquire);
  const uint64_t fence = std::max(lock_.punch_fence(), kKeptAllocated);
  const uint64_t step = std::clamp((tail - head) / 8, kGiveBackStep, kGiveBackMaxStep);
  // Up to the oldest snapshot's start: a stale snapshot holds back what it may read, and no
  // more, and a give-back it would block is not tried at every commit. Whether a blocking pin's
  // holder still lives (a system call per pinned slot) is asked once head has moved a step since
  // it was last asked, not at every commit: a dead holder's pin is let go within a step.
  if (head <= fence + step) return false;
  if (OldestPinnedHead(/*alive_only=*/false) > fence + step) return true;
  uint64_t asked = pins_asked_at_.load(std::memory_order_relaxed);
  if (head < asked + step || !pins_asked_at_.compare_exchange_strong(asked, head)) return false;
  return OldestPinnedHead() > fence + step;
}

void DBImpl::MaybeGiveBack() {
  if (!CheckUsable().ok()) return;
  if (giving_back_.exchange(true)) return;  // another thread of this handle is at it
  const uint64_t head = state_->head.load(std::memory_order_acquire);
  const uint64_t tail = state_->committed_tail.load(std::memory_order_acquire);
  // The copies to the disk without the writer lock: commits go on meanwhile. Then, under it, the
  // checkpoint record that makes `head` the start a rebuild scans from, and the give-back.
  absl::Status s = AddUser();
  if (s.ok()) {
    s = FlushForCheckpoint(head, tail, /*index=*/false);
    DropUser();
  }
  if (s.ok()) s = AcquireCurrentWriter();
  if (s.ok()) {
    const CheckpointRecord* latest = LatestCheckpoint();
    if (latest == nullptr || latest->tail < tail) {
      s = WriteCheckpointRecord(tail, head, kCheckpointLogOnly);
    }
    if (s.ok()) {
      if (state_->synced_tail.load() < tail) state_->synced_tail.store(tail);
      GiveBackLocked();
    }
    ReleaseCurrentWriter();
  }
  if (!s.ok() && !IsSuperseded(s) && !clean_failed_.exchange(true)) {
    Log(absl::StrCat(path(), ": the cleaner could not give space back: ", s.message()));
  }
  giving_back_.store(false);
}

void DBImpl::GiveBackLocked() {
  const CheckpointRecord* latest = LatestCheckpoint();
  if (latest == nullptr || latest->head == 0) return;
  const uint64_t fence = lock_.punch_fence();
  const uint64_t from = std::max(fence, kKeptAllocated);
  uint64_t to = latest->head / kHeaderPageSize * kHeaderPageSize;
  if (to <= from) return;
  // Fence first, then the pins (both seq_cst; BeginSnapshot does the reverse): a snapshot that
  // read a start below `to` either is seen here, or sees the fence and begins again. Nothing a
  // snapshot reads lies below the start it read.
  lock_.SetPunchFence(to);
  const uint64_t pinned = OldestPinnedHead() / kHeaderPageSize * kHeaderPageSize;
  if (pinned < to) {
    to = std::max(pinned, fence);
    lock_.SetPunchFence(to > from ? to : fence);
    if (to <= from) return;  // the next checkpoint tries again
  }
  env_.AtPoint(HookPoint::kGivingBack);
  absl::Status s = file_->Punch(from, to - from);
  if (absl::IsUnimplemented(s)) {
    // Windows, or a file system without holes: relocating would only add to the log. This
    // handle's commits clean no more (the space then stays as a version 4 file's would).
    cannot_give_back_.store(true, std::memory_order_relaxed);
    Log(absl::StrCat(s.message(), "; its space is reclaimed by `mapkv compact` only"));
    return;
  }
  if (!s.ok() && !clean_failed_.exchange(true)) {
    Log(absl::StrCat(path(), ": the cleaner could not give space back: ", s.message()));
  }
}

}  // namespace mapkv::internal
