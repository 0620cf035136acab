// The open-addressing index: a table of 2^bits Slots stored in a kIndex record of the log.
// Linear probing over the full 64-bit key hash; a lookup confirms the key in the record.
//
// Invariants the writer keeps (it alone changes a table, under the exclusive lock):
// - every slot change is one 8-byte store of `offset` (after `hash` when a slot is filled), so a
//   writer killed at any instruction leaves a table that lookups can walk, and replaying the
//   commit over it again gives the same table;
// - at most 3/4 of the slots are used (live or tombstone), so a probe always ends at an empty one.
#ifndef MAPKV_HASH_INDEX_H_
#define MAPKV_HASH_INDEX_H_

#include <cstdint>

#include "src/format.h"

namespace mapkv::internal {

class IndexTable {
 public:
  IndexTable(char* base, uint64_t record, uint32_t bits)
      : slots_(reinterpret_cast<Slot*>(base + IndexSlotsOffset(record))),
        mask_((uint64_t{1} << bits) - 1) {}

  uint64_t capacity() const { return mask_ + 1; }
  Slot& slot(uint64_t i) const { return slots_[i]; }
  // Where the probe sequence of `hash` starts.
  Slot& home(uint64_t hash) const { return slots_[hash & mask_]; }

  // Walks the probe sequence of `hash`: calls visit(slot) for each live slot with that hash until
  // it returns true (then returns that slot) or the run ends (nullptr). `first_free`, if given,
  // receives the first tombstone or the terminating empty slot: where an insert goes.
  template <class Visit>
  Slot* Probe(uint64_t hash, Visit&& visit, Slot** first_free = nullptr) const {
    uint64_t i = hash & mask_;
    Slot* free_slot = nullptr;
    for (uint64_t n = 0; n <= mask_; ++n, i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      // Acquire, pairing with the release store that publishes a slot: an optimistic reader
      // (DB::Get, under the seqlock only) that sees a new offset also sees the record the writer
      // wrote there before. Free on x86; without it that read races the writer in the C++ model
      // (ThreadSanitizer reported it) even though the seqlock would discard a torn result.
      uint64_t off = s.offset.load(std::memory_order_acquire);
      if (off == kEmpty) {
        if (free_slot == nullptr) free_slot = &s;
        break;
      }
      if (off == kTombstone) {
        if (free_slot == nullptr) free_slot = &s;
        continue;
      }
      if (s.hash.load(std::memory_order_relaxed) == hash && visit(off)) return &s;
    }
    if (first_free != nullptr) *first_free = free_slot;
    return nullptr;
  }

  // Fills an empty slot of a fresh table (no tombstones, no duplicates): used to rehash.
  void InsertFresh(uint64_t hash, uint64_t offset) {
    uint64_t i = hash & mask_;
    while (slots_[i].offset.load(std::memory_order_relaxed) != kEmpty) i = (i + 1) & mask_;
    Fill(slots_[i], hash, offset);
  }

  static void Fill(Slot& s, uint64_t hash, uint64_t offset) {
    s.hash.store(hash, std::memory_order_relaxed);
    s.offset.store(offset, std::memory_order_release);
  }

 private:
  Slot* const slots_;
  const uint64_t mask_;
};

// The table size (log2) for `keys` keys right after a rehash: at most half full. Stops at
// kMaxIndexBits + 1, which WriteIndexTable refuses: a damaged key count may be anything.
inline uint32_t IndexBitsFor(uint64_t keys, uint64_t min_slots) {
  uint32_t bits = 6;
  while (bits <= kMaxIndexBits &&
         ((uint64_t{1} << bits) < min_slots || (uint64_t{1} << bits) < 2 * keys)) {
    ++bits;
  }
  return bits;
}

// True when `used` slots of `capacity` are past the 3/4 load limit.
inline bool IndexOverLimit(uint64_t used, uint64_t capacity) { return used * 4 > capacity * 3; }

}  // namespace mapkv::internal

#endif  // MAPKV_HASH_INDEX_H_
