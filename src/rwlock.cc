#include "src/rwlock.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "src/platform/process.h"
#include "src/platform/wait_word.h"
#include "src/status_macros.h"

namespace mapkv::internal {
namespace {

// How long a waiter sleeps before it asks again whether the holder is alive.
constexpr uint64_t kLivenessPollUs = 50'000;
constexpr int kSpins = 200;

std::chrono::microseconds SleepFor(uint64_t deadline_us) {
  uint64_t now = MonotonicMicros();
  uint64_t left = deadline_us > now ? deadline_us - now : 0;
  return std::chrono::microseconds(std::max<uint64_t>(1, std::min(left, kLivenessPollUs)));
}

void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

void RwLock::Reset() {
  lock_->writer.store(0);
  lock_->slot_hwm.store(0);
  lock_->writer_active.store(0);
  lock_->reader_waiters.store(0);
  lock_->publish_seq.store(0);
  lock_->successor.store(0);
  lock_->priority.store(0);
  lock_->pace_kib_per_ms.store(0);
  lock_->pace_next_ns.store(0);
  lock_->pace_until_ns.store(0);
  lock_->punch_fence.store(0);
  for (uint32_t i = 0; i < kMaxSlots; ++i) {
    RetireCounters(i);
    slots_[i].readers.store(0);
    slots_[i].pid.store(0);
    slots_[i].opened_unix_ms.store(0);
  }
}

void RwLock::RetireCounters(uint32_t i) {
  if (pin_words_) {
    for (std::atomic<uint64_t>& word : slots_[i].cache_counts) word.store(0);
    return;
  }
  for (uint32_t c = 0; c < kCacheCounters; ++c) {
    // Only where there is something to add: a database never writes its CacheState.
    if (slots_[i].cache_counts[c].load(std::memory_order_relaxed) == 0) continue;
    cache_->retired[c].fetch_add(slots_[i].cache_counts[c].exchange(0), std::memory_order_relaxed);
  }
}

uint64_t RwLock::CounterTotal(CacheCounter c) const {
  uint64_t sum = cache_->retired[c].load(std::memory_order_relaxed);
  const uint32_t hwm = std::min(lock_->slot_hwm.load(), kMaxSlots);
  for (uint32_t i = 0; i < hwm; ++i)
    sum += slots_[i].cache_counts[c].load(std::memory_order_relaxed);
  return sum;
}

void RwLock::ClearDeadSlot(uint32_t i) {
  RetireCounters(i);
  slots_[i].readers.store(0);
  slots_[i].pid.store(0);
  slots_[i].opened_unix_ms.store(0);
  // A CAS, not a store: a waiter that saw the dead owner may be taking the writer lock over right
  // now, and exactly one of us must win. Released, the next writer finds the exclusive side
  // stale (or the log half applied) and recovers.
  uint32_t w = lock_->writer.load();
  while ((w & ~kWaitersBit) == i + 1) {
    if (lock_->writer.compare_exchange_weak(w, 0)) {
      if (w & kWaitersBit) WakeWord(&lock_->writer);
      break;
    }
  }
}

absl::Status RwLock::ClaimSlot(uint32_t pid) {
  // Every probe below is a kernel call (under wine, a round trip to wineserver), so they go only
  // where they may pay: the slot table is read first, and a live slot costs nothing to pass.
  //
  // 1. Clear the dead slots that cost others something: one with a reader count (every commit
  //    would ask the kernel about it) or named by the writer lock (the next writer would wait for
  //    its liveness check). Holding a slot's byte lock proves its owner is gone.
  const uint32_t hwm = std::min(lock_->slot_hwm.load(), kMaxSlots);
  const uint32_t writer_slot = (lock_->writer.load() & ~kWaitersBit) - 1;  // ~0u: none
  for (uint32_t i = 0; i < hwm; ++i) {
    if (slots_[i].readers.load() == 0 && i != writer_slot) continue;
    absl::StatusOr<bool> got = file_->Lock(SlotLockByte(i), /*exclusive=*/true, /*wait=*/false);
    if (!got.ok()) return got.status();
    if (!*got) continue;
    ClearDeadSlot(i);
    MAPKV_RETURN_IF_ERROR(file_->Unlock(SlotLockByte(i)));
  }
  // 2. Take the first slot that looks free (pid 0) and whose byte lock is ours; a slot another
  //    opener is claiming right now fails the try-lock. 3. Only when none does, look for a dead
  //    owner among the rest: with N handles alive, an Open makes one probe, not N.
  for (const bool free_looking : {true, false}) {
    for (uint32_t i = 0; i < kMaxSlots; ++i) {
      if ((slots_[i].pid.load() == 0) != free_looking) continue;
      MAPKV_ASSIGN_OR_RETURN(bool got,
                             file_->Lock(SlotLockByte(i), /*exclusive=*/true, /*wait=*/false));
      if (!got) continue;
      ClearDeadSlot(i);
      slots_[i].pid.store(pid);
      slots_[i].opened_unix_ms.store(NowUnixMs());
      uint32_t hwm_now = lock_->slot_hwm.load();
      while (hwm_now < i + 1 && !lock_->slot_hwm.compare_exchange_weak(hwm_now, i + 1)) {
      }
      slot_ = i;
      return absl::OkStatus();
    }
  }
  return absl::ResourceExhaustedError(
      absl::StrCat(file_->path(), ": all ", kMaxSlots,
                   " process slots are in use (their lock bytes are held: by open handles, or by "
                   "a process with read permission that holds them to deny opens)"));
}

void RwLock::ReleaseSlot() {
  if (slot_ >= kMaxSlots) return;
  RetireCounters(slot_);
  slots_[slot_].pid.store(0);
  slots_[slot_].readers.store(0);
  (void)file_->Unlock(SlotLockByte(slot_));
  slot_ = kMaxSlots;
}

bool RwLock::SlotAlive(uint32_t slot) {
  if (slot == slot_) return true;
  absl::StatusOr<bool> locked = file_->IsLockedByOther(SlotLockByte(slot));
  return !locked.ok() || *locked;  // when the kernel cannot say, assume alive: never steal
}

uint32_t RwLock::ReadBeginSpinning() const {
  uint32_t seq = ReadBegin();
  for (int i = 0; (seq & 1) != 0 && i < 50 * kSpins; ++i) {
    CpuRelax();
    seq = ReadBegin();
  }
  return seq;
}

void RwLock::WakeReaders(std::atomic<uint32_t>& readers) { WakeWord(&readers); }

absl::Status RwLock::LockShared(uint64_t deadline_us, bool* writer_dead) {
  *writer_dead = false;
  for (;;) {
    if (TryLockShared()) return absl::OkStatus();
    for (int i = 0; i < kSpins && lock_->writer_active.load() != 0; ++i) CpuRelax();
    if (lock_->writer_active.load() == 0) continue;
    // A publish longer than the spin: ask whether its writer is alive before sleeping, so that a
    // dead one is found at once rather than after a poll interval.
    const uint32_t w = lock_->writer.load() & ~kWaitersBit;
    if (w == 0 || w > kMaxSlots || !SlotAlive(w - 1)) {
      if (lock_->writer_active.load() == 0) continue;
      *writer_dead = true;
      return absl::FailedPreconditionError("writer died while publishing a commit");
    }
    if (MonotonicMicros() >= deadline_us) {
      return absl::DeadlineExceededError(absl::StrCat(
          file_->path(), ": timed out waiting for a commit of pid ", slots_[w - 1].pid.load()));
    }
    lock_->reader_waiters.fetch_add(1, std::memory_order_seq_cst);
    if (lock_->writer_active.load(std::memory_order_seq_cst) != 0) {
      WaitWord(&lock_->writer_active, 1, SleepFor(deadline_us));
    }
    lock_->reader_waiters.fetch_sub(1, std::memory_order_seq_cst);
  }
}

absl::StatusOr<bool> RwLock::LockWriter() {
  const uint32_t me = slot_ + 1;
  uint64_t deadline_us = 0;  // the clock is read only once we have to wait
  // A writer given priority (LockState::priority) goes first. A courtesy, never a deadlock: a dead
  // one's priority is cleared, and past the timeout this writer tries anyway.
  for (uint32_t p; (p = lock_->priority.load(std::memory_order_acquire)) != 0 && p != me;) {
    if (p > kMaxSlots || !SlotAlive(p - 1)) {
      lock_->priority.compare_exchange_strong(p, 0);
      continue;
    }
    if (deadline_us == 0) deadline_us = MonotonicMicros() + timeout_us_;
    if (MonotonicMicros() >= deadline_us) break;
    WaitWord(&lock_->priority, p, SleepFor(deadline_us));
  }
  for (int spins = 0;; ++spins) {
    uint32_t w = lock_->writer.load(std::memory_order_relaxed);
    if (w == 0) {
      if (lock_->writer.compare_exchange_weak(w, me, std::memory_order_acquire)) return false;
      continue;
    }
    if (spins < kSpins) {
      CpuRelax();
      continue;
    }
    if (deadline_us == 0) deadline_us = MonotonicMicros() + timeout_us_;
    uint32_t owner = (w & ~kWaitersBit) - 1;
    if (owner >= kMaxSlots || !SlotAlive(owner)) {
      if (lock_->writer.compare_exchange_strong(w, me | (w & kWaitersBit),
                                                std::memory_order_acquire)) {
        return true;
      }
      continue;
    }
    if (MonotonicMicros() >= deadline_us) {
      return absl::DeadlineExceededError(
          absl::StrCat(file_->path(), ": timed out waiting for the writer lock held by pid ",
                       slots_[owner].pid.load()));
    }
    if ((w & kWaitersBit) == 0 &&
        !lock_->writer.compare_exchange_weak(w, w | kWaitersBit, std::memory_order_relaxed)) {
      continue;
    }
    WaitWord(&lock_->writer, w | kWaitersBit, SleepFor(deadline_us));
  }
}

void RwLock::DropPriority() {
  uint32_t mine = slot_ + 1;
  if (lock_->priority.compare_exchange_strong(mine, 0)) WakeWord(&lock_->priority);
}

void RwLock::PaceWriters(uint32_t kib_per_ms, uint64_t for_us) {
  const uint64_t now_ns = MonotonicMicros() * 1000;
  lock_->pace_until_ns.store(now_ns + std::min(for_us, kMaxPaceUs) * 1000,
                             std::memory_order_relaxed);
  lock_->pace_kib_per_ms.store(std::max<uint32_t>(kib_per_ms, 1), std::memory_order_relaxed);
}

uint32_t RwLock::ActivePace() const {
  const uint32_t rate = lock_->pace_kib_per_ms.load(std::memory_order_relaxed);
  if (rate == 0) return 0;
  const uint64_t now_ns = MonotonicMicros() * 1000;
  const uint64_t until_ns = lock_->pace_until_ns.load(std::memory_order_relaxed);
  return now_ns < until_ns && until_ns - now_ns <= kMaxPaceUs * 1000 ? rate : 0;
}

void RwLock::PaceSlow(uint64_t bytes) {
  // Debts up to this much are let through, and a writer past it sleeps until it owes nothing: a
  // sleep costs a few microseconds of CPU, so one per commit would cost more than the commits.
  constexpr uint64_t kBurstNs = 1'000'000;
  const uint64_t rate = ActivePace();
  if (rate == 0) return;
  const uint64_t now_ns = MonotonicMicros() * 1000;
  const uint64_t until_ns = lock_->pace_until_ns.load(std::memory_order_relaxed);
  const uint64_t cost_ns = bytes * 1'000'000 / (rate * 1024);
  uint64_t next = lock_->pace_next_ns.load(std::memory_order_relaxed);
  uint64_t due = 0;
  do {
    due = std::max(next, now_ns) + cost_ns;
  } while (!lock_->pace_next_ns.compare_exchange_weak(next, due, std::memory_order_relaxed));
  if (due > now_ns + kBurstNs) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(std::min(due, until_ns) - now_ns));
  }
}

void RwLock::UnlockWriter() {
  if (lock_->writer.exchange(0, std::memory_order_release) & kWaitersBit) WakeWord(&lock_->writer);
}

absl::Status RwLock::LockExclusive() {
  lock_->writer_active.store(1, std::memory_order_seq_cst);
  uint64_t deadline_us = 0;
  const uint32_t hwm = std::min(lock_->slot_hwm.load(std::memory_order_seq_cst), kMaxSlots);
  for (uint32_t i = 0; i < hwm; ++i) {
    std::atomic<uint32_t>& readers = slots_[i].readers;
    for (int spin = 0; spin < kSpins && readers.load(std::memory_order_seq_cst) != 0; ++spin) {
      CpuRelax();
    }
    for (uint32_t r; (r = readers.load(std::memory_order_seq_cst)) != 0;) {
      if (!SlotAlive(i)) break;
      if (deadline_us == 0)
        deadline_us = MonotonicMicros() + timeout_us_;  // a dead reader: its count means nothing
      if (MonotonicMicros() >= deadline_us) {
        UnlockExclusive();
        return absl::DeadlineExceededError(absl::StrCat(
            file_->path(), ": timed out waiting for readers of pid ", slots_[i].pid.load()));
      }
      WaitWord(&readers, r, SleepFor(deadline_us));
    }
  }
  // Odd: optimistic readers retry until UnlockExclusive. (After a writer died here the count is
  // odd already; a fresh increment keeps the next one even.)
  const uint32_t seq = lock_->publish_seq.load(std::memory_order_relaxed);
  lock_->publish_seq.store((seq | 1) + ((seq & 1) ? 2 : 0), std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  return absl::OkStatus();
}

void RwLock::UnlockExclusive() {
  const uint32_t seq = lock_->publish_seq.load(std::memory_order_relaxed);
  if (seq & 1) lock_->publish_seq.store(seq + 1, std::memory_order_release);
  lock_->writer_active.store(0, std::memory_order_seq_cst);
  if (lock_->reader_waiters.load(std::memory_order_seq_cst) != 0) WakeWord(&lock_->writer_active);
}

uint32_t RwLock::OpenHandles() {
  uint32_t n = 0;
  const uint32_t hwm = std::min(lock_->slot_hwm.load(), kMaxSlots);
  for (uint32_t i = 0; i < hwm; ++i) n += SlotAlive(i) ? 1 : 0;
  return n;
}

}  // namespace mapkv::internal
