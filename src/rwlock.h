// The cross-process reader-writer lock that lives in the mapping (format.h: LockState and the
// process slots), in two levels:
// - the writer lock serialises write transactions for their whole life;
// - the exclusive side (writer_active) is taken by a commit only while it publishes; readers
//   hold the shared side by counting themselves in their own process slot (one cache line per
//   handle, so readers of different processes never write a shared line).
// Readers that find writer_active set back off and sleep, so a stream of readers never starves
// a commit: it waits only for the reads already in flight.
//
// Dead holders: every slot is owned through a kernel byte lock, so a waiter asks the kernel
// whether the holder of the writer lock or of a reader count is alive; a reused pid cannot fool
// it. A dead reader's count is ignored (and cleared by the next Open in any process); a dead
// writer's lock is taken over, and the taker runs recovery (LockWriter says so).
#ifndef MAPKV_RWLOCK_H_
#define MAPKV_RWLOCK_H_

#include <algorithm>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/format.h"
#include "src/platform/mapped_file.h"

namespace mapkv::internal {

class RwLock {
 public:
  // `timeout_us`: how long LockWriter and LockExclusive wait before DeadlineExceeded.
  RwLock(char* base, MappedFile* file, uint64_t timeout_us)
      : lock_(reinterpret_cast<LockState*>(base + kLockStateOffset)),
        slots_(reinterpret_cast<ProcessSlot*>(base + kSlotsOffset)),
        cache_(reinterpret_cast<CacheState*>(base + kCacheStateOffset)),
        file_(file),
        timeout_us_(timeout_us) {}

  // Only the first opener, when no other handle exists: clears every lock word and slot.
  void Reset();

  // Takes a free slot (one whose owner is gone) for this handle. ResourceExhausted when all
  // kMaxSlots are owned by live handles. Clears the dead slots that hold a reader count or the
  // writer lock (which names its slot); a dead writer's lock is released, and the next writer
  // finds the exclusive side stale and recovers. A dead slot holding neither stays until a claim
  // takes it: prefers a never-used or closed slot, so it probes one slot, not every live one.
  absl::Status ClaimSlot(uint32_t pid);
  void ReleaseSlot();
  uint32_t slot() const { return slot_; }

  // A handle that cannot write the mapping and opened only because no other handle exists (nor
  // can, while it is open): the shared side is then free, and taking it writes nothing.
  void SetDetached() { detached_ = true; }

  // Shared side, fast path: true when taken (no commit is publishing).
  bool TryLockShared() {
    if (detached_) return true;
    std::atomic<uint32_t>& readers = slots_[slot_].readers;
    // Dekker-style with the commit's store to writer_active then load of the slots: both sides
    // are seq_cst, so either the reader sees writer_active or the writer sees the reader.
    readers.fetch_add(1, std::memory_order_seq_cst);
    if (lock_->writer_active.load(std::memory_order_seq_cst) == 0) return true;
    UnlockShared();
    return false;
  }
  // Shared side, waiting. `deadline_us` is on the MonotonicMicros() clock. When the writer that
  // holds the exclusive side died, returns FailedPrecondition with `*writer_dead` set: the caller
  // must take the writer lock (which runs recovery) and try again.
  absl::Status LockShared(uint64_t deadline_us, bool* writer_dead);
  void UnlockShared() {
    if (detached_) return;
    std::atomic<uint32_t>& readers = slots_[slot_].readers;
    if (readers.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
        lock_->writer_active.load(std::memory_order_seq_cst) != 0) {
      WakeReaders(readers);
    }
  }

  // Writer lock. Returns true when it was taken over from a dead holder: the state may hold a
  // half-applied commit, and the caller must run recovery before anything else.
  absl::StatusOr<bool> LockWriter();
  void UnlockWriter();

  // Exclusive side; the caller holds the writer lock. Waits for the reads in flight to end.
  absl::Status LockExclusive();
  void UnlockExclusive();
  bool exclusive_stale() const { return lock_->writer_active.load() != 0; }

  // Optimistic reads (a seqlock): ReadBegin() returns an even number when no commit is changing
  // the state; ReadValid(seq) after the reads says whether they saw one consistent state. The
  // state they may see torn is only the index slots and the SharedState words, all single 8-byte
  // atomics; records and old index tables are never rewritten once committed.
  uint32_t ReadBegin() const { return lock_->publish_seq.load(std::memory_order_acquire); }
  // Spins while a publish is in progress (it takes a microsecond or so) and returns the even
  // sequence number, or an odd one after ~100 us: a publisher that slow may be dead, and the
  // caller should take the lock, whose waits detect that.
  uint32_t ReadBeginSpinning() const;
  bool ReadValid(uint32_t seq) const {
    std::atomic_thread_fence(std::memory_order_acquire);
    return lock_->publish_seq.load(std::memory_order_relaxed) == seq;
  }

  // LockState::successor: the salt of the file that replaced this one by an online compaction,
  // 0 while none did. Set and cleared by a writer that holds the exclusive side (a publish).
  uint64_t successor() const { return lock_->successor.load(std::memory_order_seq_cst); }
  void SetSuccessor(uint64_t salt) { lock_->successor.store(salt, std::memory_order_seq_cst); }
  // LockState::punch_fence (format version 5): seq_cst, paired with the pins (Dekker's way).
  uint64_t punch_fence() const { return lock_->punch_fence.load(std::memory_order_seq_cst); }
  void SetPunchFence(uint64_t offset) {
    lock_->punch_fence.store(offset, std::memory_order_seq_cst);
  }

  // LockState::priority: this handle's writer goes before the others that want the writer lock
  // until DropPriority (at the latest, until this handle is gone).
  void RequestPriority() { lock_->priority.store(slot_ + 1, std::memory_order_seq_cst); }
  void DropPriority();

  // LockState::pace_*: the commits of every process together append at most `kib_per_ms` KiB of
  // log a millisecond, for the next `for_us` (at most kMaxPaceUs; calling again renews it), until
  // StopPacing.
  static constexpr uint64_t kMaxPaceUs = 1'000'000;
  void PaceWriters(uint32_t kib_per_ms, uint64_t for_us);
  void RenewPacing(uint64_t for_us) {
    const uint32_t rate = lock_->pace_kib_per_ms.load(std::memory_order_relaxed);
    if (rate != 0) PaceWriters(rate, for_us);
  }
  void StopPacing() { lock_->pace_kib_per_ms.store(0, std::memory_order_relaxed); }
  // The pace the writers are held to now, in KiB a millisecond: 0 when none, or past its deadline
  // (or with one that no compaction of this boot set: the words are the file's).
  uint32_t ActivePace() const;
  // The words as they are now (tests).
  struct PaceWords {
    uint32_t kib_per_ms;
    uint64_t next_ns;
    uint64_t until_ns;
  };
  PaceWords pace() const {
    return {lock_->pace_kib_per_ms.load(), lock_->pace_next_ns.load(), lock_->pace_until_ns.load()};
  }
  // Called by a writer after a commit of `bytes`, without the writer lock: while the writers are
  // paced and more than a millisecond ahead of their pace, sleeps until they are not (or until
  // the deadline). One load of a line every read loads anyway otherwise.
  void Pace(uint64_t bytes) {
    if (bytes != 0 && lock_->pace_kib_per_ms.load(std::memory_order_relaxed) != 0) {
      PaceSlow(bytes);
    }
  }

  // Handles (all processes) that have the file open now.
  uint32_t OpenHandles();

  // Whether slot `slot` is owned by a live handle (the kernel's word; this handle's own: true).
  bool SlotAlive(uint32_t slot);
  ProcessSlot& slot_at(uint32_t i) const { return slots_[i]; }
  // Slots [0, slot_hwm()) are all that were claimed since the first opener reset the state.
  uint32_t slot_hwm() const { return std::min(lock_->slot_hwm.load(), kMaxSlots); }
  // A database keeps snapshot pins in the words a cache counts in (format.h: kPin*): a gone
  // handle's are cleared, not added to the cache's totals.
  void UsePinWords() { pin_words_ = true; }
  // A cache's statistics: this handle's counter, and the sum over every handle, gone or alive.
  std::atomic<uint64_t>& counter(CacheCounter c) const { return slots_[slot_].cache_counts[c]; }
  uint64_t CounterTotal(CacheCounter c) const;

 private:
  // Adds slot i's cache counters to CacheState::retired and zeroes them (its owner is gone).
  void RetireCounters(uint32_t i);
  // Resets slot i, whose owner is dead (the caller holds its byte lock), and frees the writer
  // lock if the dead owner held it.
  void ClearDeadSlot(uint32_t i);
  static void WakeReaders(std::atomic<uint32_t>& readers);
  void PaceSlow(uint64_t bytes);

  LockState* const lock_;
  ProcessSlot* const slots_;
  CacheState* const cache_;
  MappedFile* const file_;
  const uint64_t timeout_us_;
  uint32_t slot_ = kMaxSlots;
  bool detached_ = false;
  bool pin_words_ = false;
};

}  // namespace mapkv::internal

#endif  // MAPKV_RWLOCK_H_
