// A cache's read transaction (DBImpl::CopySnapshot, db_impl.h). A cache's records carry no chain
// to a key's older version, so a snapshot cannot follow a key back past newer commits as a
// database's does; and a ring is written over in place. Instead the snapshot reads the log up to
// the committed tail once, keeping each key's last record. It holds nothing once made: writers
// never wait for a transaction, however long it lives.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "src/db_impl.h"
#include "src/status_macros.h"

namespace mapkv::internal {
namespace {
// A ring is copied in pieces of at most this, each checked against evictions as it is copied.
constexpr uint64_t kCopyPiece = uint64_t{1} << 20;
}  // namespace

bool DBImpl::CopyRing(uint64_t from, uint64_t to, char* out) const {
  // The byte at logical offset x is written again only by an append at x + the ring's length,
  // which a writer makes after it stored a head past x (ApplyEvictionLocked, with a fence between
  // the store and the writes). So a piece copied from x on is intact when head, read after the
  // copy, is still at or below x: the seqlock's argument, with head as the sequence.
  for (uint64_t at = from; at < to;) {
    const uint64_t lap_left = ring_start_ + ring_len_ - Phys(at);
    const uint64_t n = std::min({to - at, kCopyPiece, lap_left});
    std::memcpy(out + (at - from), At(at), n);
    env_.AtPoint(HookPoint::kRingCopied);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (state_->head.load(std::memory_order_relaxed) > at) return false;
    at += n;
  }
  return true;
}

absl::Status DBImpl::ReadCopiedLog(CopiedSnapshot& snap, const char* log, uint64_t from,
                                   uint64_t to) const {
  for (uint64_t at = from; at < to;) {
    uint64_t room = to - at;
    if (ring()) {
      // A lap's end too short for a record header is skipped; no record crosses a lap's end.
      const uint64_t lap_left = ring_start_ + ring_len_ - Phys(at);
      if (lap_left < sizeof(RecordHeader)) {
        at += lap_left;
        continue;
      }
      room = std::min(room, lap_left);
    }
    absl::StatusOr<Record> r =
        DecodeRecordAt(log + (at - from), at, room, salt_, options_.verify_checksums);
    if (!r.ok()) return Named(r.status());
    at += r->size;
    if (r->type != kPut && r->type != kDelete) continue;
    const auto it = snap.live.find(r->key);
    if (it != snap.live.end()) {
      snap.log_order[it->second].live = false;
      if (r->type == kDelete) snap.live.erase(it);
    }
    if (r->type == kPut) {
      snap.live.insert_or_assign(r->key, snap.log_order.size());
      snap.log_order.push_back({r->key, r->value, true});
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CopiedSnapshot>> DBImpl::CopySnapshot() {
  MAPKV_RETURN_IF_ERROR(CheckUsable());
  auto snap = std::make_unique<CopiedSnapshot>();
  // The file grows before a commit that needs the room publishes: its size read after the tail
  // covers every record below the tail.
  auto cover = [&] { return Cover(state_->file_size.load(std::memory_order_acquire)); };
  // Bounds that a damaged file may break (Open checks them; another process may write anything):
  // DataLoss, which BeginRead answers by reading under the shared lock instead.
  auto out_of_bounds = [&](uint64_t head, uint64_t tail) {
    return absl::DataLossError(absl::StrCat(path(), ": the committed log [", head, ", ", tail,
                                            ") is not within the file"));
  };
  if (!ring()) {
    const uint64_t tail = state_->committed_tail.load(std::memory_order_acquire);
    MAPKV_RETURN_IF_ERROR(cover());
    if (tail < kHeaderSize || tail > covered_.load(std::memory_order_acquire)) {
      return out_of_bounds(kHeaderSize, tail);
    }
    MAPKV_RETURN_IF_ERROR(ReadCopiedLog(*snap, base_ + kHeaderSize, kHeaderSize, tail));
    return snap;
  }
  for (int attempt = 0; attempt < kRingCopyTries; ++attempt) {
    const uint64_t head = state_->head.load(std::memory_order_acquire);
    const uint64_t tail = state_->committed_tail.load(std::memory_order_acquire);
    // Read across an eviction and the commit after it: more than one lap apart.
    if (tail - head > ring_len_) continue;
    MAPKV_RETURN_IF_ERROR(cover());
    snap->ring.resize(tail - head);
    if (!CopyRing(head, tail, snap->ring.data())) continue;
    MAPKV_RETURN_IF_ERROR(ReadCopiedLog(*snap, snap->ring.data(), head, tail));
    return snap;
  }
  // Writers lap the ring faster than it is copied: copy it under the shared lock, which holds
  // evictions (they take the exclusive side) for the copy only, not for the transaction.
  MAPKV_ASSIGN_OR_RETURN(const Snapshot locked, LockShared());
  const uint64_t head = state_->head.load(std::memory_order_acquire);
  if (absl::Status s = cover(); !s.ok()) {
    lock_.UnlockShared();
    return s;
  }
  if (locked.tail < head || locked.tail - head > ring_len_) {
    lock_.UnlockShared();
    return out_of_bounds(head, locked.tail);
  }
  snap->ring.resize(locked.tail - head);
  const bool copied = CopyRing(head, locked.tail, snap->ring.data());
  lock_.UnlockShared();
  if (!copied) return absl::InternalError(absl::StrCat(path(), ": evicted under the shared lock"));
  MAPKV_RETURN_IF_ERROR(ReadCopiedLog(*snap, snap->ring.data(), head, locked.tail));
  return snap;
}

}  // namespace mapkv::internal
