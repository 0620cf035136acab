// A ring's (a cache with a capacity) own part of the commit path: flushing a range of the ring,
// evicting the oldest batches, rehashing into its other table. DBImpl (db_impl.h) declares these.
#include <algorithm>
#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "src/db_impl.h"
#include "src/env.h"
#include "src/hash.h"
#include "src/status_macros.h"

namespace mapkv::internal {

absl::Status DBImpl::FlushLog(uint64_t from, uint64_t to) {
  if (!ring()) return file_->Flush(from, to - from);
  if (to - from >= ring_len_) return file_->Flush(ring_start_, ring_len_);
  const uint64_t phys = Phys(from);
  const uint64_t first = std::min(to - from, ring_start_ + ring_len_ - phys);
  MAPKV_RETURN_IF_ERROR(file_->Flush(phys, first));
  if (first == to - from) return absl::OkStatus();
  return file_->Flush(ring_start_, to - from - first);
}

absl::StatusOr<DBImpl::Eviction> DBImpl::PlanEviction(uint64_t until, uint64_t max_keys) {
  // Walk whole batches from head (no index change yet: the writer lock keeps others out), noting
  // the slots that point at a record passed: the key's latest value is gone with it.
  const uint64_t committed = state_->committed_tail.load();
  const uint64_t record = state_->index_record.load();
  IndexTable table(base_, record, IndexBits(record));
  Eviction e;
  e.head = state_->head.load();
  bool in_batch = false;
  auto more = [&] {
    const uint64_t count = state_->count.load();
    return in_batch || e.head < until ||
           (count > e.doomed.size() && count - e.doomed.size() > max_keys);
  };
  while (e.head < committed && more()) {
    absl::StatusOr<Record> r = ReadAt(e.head, committed, false);
    if (!r.ok()) {
      // The ring is damaged here: nothing past this point can be walked. Evict everything.
      Log(absl::StrCat(path(), ": ", r.status().message(), "; the cache drops every entry"));
      e.doomed.clear();
      e.freed = 0;
      for (uint64_t i = 0; i < table.capacity(); ++i) {
        const uint64_t offset = table.slot(i).offset.load(std::memory_order_relaxed);
        if (offset != kEmpty && offset != kTombstone) e.doomed.push_back(&table.slot(i));
      }
      e.freed = state_->live_bytes.load();
      e.head = committed;
      e.damaged = true;
      break;
    }
    e.head += r->size;
    if (r->type == kPad) continue;
    in_batch = (r->flags & kLast) == 0;
    if (r->type != kPut) continue;
    Slot* slot = table.Probe(HashKey(r->key, hash_seed_),
                             [&](uint64_t offset) { return offset == r->offset; });
    if (slot != nullptr) {
      e.doomed.push_back(slot);
      e.freed += r->size;
    }
  }
  if (state_->clean.load() != 0) {
    state_->clean.store(0);  // as in Publish: before any index page can reach the disk
    MAPKV_RETURN_IF_ERROR(file_->Flush(0, kHeaderPageSize));
  }
  return e;
}

void DBImpl::ApplyEvictionLocked(const Eviction& e) {
  // head first: a writer that dies after it left slots pointing below head, which recovery
  // removes (DropEvicted), so the index always holds every key of the live log. The other order
  // would leave keys of the live log that the index lost, which no recovery can tell from damage.
  state_->head.store(e.head, std::memory_order_release);
  // The writes over what was evicted come after this store for every reader that copies the ring
  // without the lock (CopyRing): it reads head after its copy to know what stayed intact.
  std::atomic_thread_fence(std::memory_order_release);
  env_.AtPoint(HookPoint::kEvicting);
  for (Slot* slot : e.doomed) slot->offset.store(kTombstone, std::memory_order_release);
  state_->count.fetch_sub(e.doomed.size(), std::memory_order_relaxed);
  state_->live_bytes.fetch_sub(std::min(e.freed, state_->live_bytes.load()),
                               std::memory_order_relaxed);
  state_->evictions.fetch_add(e.doomed.size(), std::memory_order_relaxed);
  if (e.damaged) RecountStats();  // the counters of a damaged file may be anything
}

absl::Status DBImpl::Evict(uint64_t until, uint64_t max_keys) {
  MAPKV_ASSIGN_OR_RETURN(const Eviction e, PlanEviction(until, max_keys));
  MAPKV_RETURN_IF_ERROR(lock_.LockExclusive());
  ApplyEvictionLocked(e);
  lock_.UnlockExclusive();
  return absl::OkStatus();
}

absl::Status DBImpl::EvictLocked(uint64_t until, uint64_t max_keys) {
  MAPKV_ASSIGN_OR_RETURN(const Eviction e, PlanEviction(until, max_keys));
  ApplyEvictionLocked(e);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> DBImpl::RehashRingWith(uint64_t seq, uint64_t new_keys,
                                                absl::FunctionRef<absl::Status(uint64_t)> evict) {
  const uint64_t old_record = state_->index_record.load();
  const uint32_t bits = IndexBits(old_record);
  const uint64_t capacity = uint64_t{1} << bits;
  if (!IndexOverLimit(state_->used.load() + new_keys, capacity)) return 0;
  // The table never grows: leave it at most 3/8 full of live keys, the oldest evicted to get there.
  const uint64_t keep = capacity * 3 / 8;
  if (new_keys > keep) {
    return absl::ResourceExhaustedError(absl::StrCat(path(), ": a transaction of ", new_keys,
                                                     " puts; the cache's index takes ", keep));
  }
  if (state_->count.load() + new_keys > keep) {
    MAPKV_RETURN_IF_ERROR(evict(keep - new_keys));
  }
  const uint64_t at = old_record == ring_tables_[0] ? ring_tables_[1] : ring_tables_[0];
  std::memset(base_ + at, 0, RingTableSize(bits));
  WriteIndexHeader(base_, at, salt_, kLast, seq, bits);
  IndexTable from(base_, old_record, bits);
  IndexTable to(base_, at, bits);
  for (uint64_t i = 0; i < from.capacity(); ++i) {
    const Slot& s = from.slot(i);
    uint64_t offset = s.offset.load(std::memory_order_relaxed);
    if (offset != kEmpty && offset != kTombstone) to.InsertFresh(s.hash.load(), offset);
  }
  return at;
}

}  // namespace mapkv::internal
