// A database file replaced under its name by an online compaction (compact.cc): the mark that
// says so, and what a handle of the marked file does. DBImpl (db_impl.h) declares these; DB
// (db.cc) moves its callers to the new file.
//
// Why a handle never misses the mark: the compaction sets it while it holds the writer lock and
// the exclusive side (a publish), after the last commit it copied. Every optimistic read checks
// it at its start, and a read that began before the publish fails its seqlock check and starts
// again; a writer checks it once it holds the writer lock; a snapshot checks it after pinning
// itself in its slot, and the compaction gives the old file's blocks back only when it then
// finds no pin (both sides sequentially consistent: one of them sees the other).
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "src/db_impl.h"
#include "src/errors.h"
#include "src/platform/fs.h"
#include "src/status_macros.h"

namespace mapkv::internal {

absl::Status DBImpl::Superseded() const {
  absl::Status s = absl::UnavailableError(
      absl::StrCat(path(), ": replaced under its name by an online compaction; open it again"));
  s.SetPayload(kSupersededPayload, absl::Cord("1"));
  return s;
}

uint64_t DBImpl::KeptBytes() const {
  const uint64_t live = state_->live_bytes.load(std::memory_order_relaxed);
  const uint64_t record = state_->index_record.load(std::memory_order_relaxed);
  return live + IndexRecordSize(record, IndexBits(record));
}

bool DBImpl::WantsCompaction() const {
  if (options_.compact_ratio <= 0 || !chained_ || ReplaceFailsWhileMapped()) return false;
  const uint64_t tail = state_->committed_tail.load(std::memory_order_relaxed);
  if (cleaned_) {
    const uint64_t head = state_->head.load(std::memory_order_relaxed);
    return tail > max_file_size_ / 2 && head - kHeaderSize > (tail - kHeaderSize) / 2;
  }
  const uint64_t log = tail - kHeaderSize;
  const uint64_t kept = KeptBytes();
  return log > kept + options_.compact_min_garbage &&
         static_cast<double>(log) > options_.compact_ratio * static_cast<double>(kept);
}

absl::Status DBImpl::MarkSuperseded(uint64_t salt) {
  MAPKV_RETURN_IF_ERROR(lock_.LockExclusive());
  lock_.SetSuccessor(salt);
  lock_.UnlockExclusive();
  return absl::OkStatus();
}

absl::Status DBImpl::TakeBackStaleMark() {
  // A compaction holds the writer lock from before it marks the file until its own file has the
  // name. Holding the lock with the mark set and the name still here: the compaction died in
  // between (its failures take the mark back themselves). The file is still the database.
  absl::StatusOr<bool> named = file_->StillNamedBy(path());
  if (!named.ok() || !*named) return absl::OkStatus();
  return MarkSuperseded(0);
}

uint32_t DBImpl::HandleNotFollowing() {
  for (uint32_t i = 0; i < lock_.slot_hwm(); ++i) {
    const ProcessSlot& slot = lock_.slot_at(i);
    if (slot.pid.load() == 0 || !lock_.SlotAlive(i)) continue;
    if ((slot.cache_counts[kSlotFeatures].load() & kFollowsSuccessor) == 0) return slot.pid.load();
  }
  return 0;
}

absl::StatusOr<bool> DBImpl::PunchIfUnpinned() {
  for (uint32_t i = 0; i < lock_.slot_hwm(); ++i) {
    const uint64_t pin = lock_.slot_at(i).cache_counts[kPinTail].load(std::memory_order_seq_cst);
    if (pin != 0 && lock_.SlotAlive(i)) return false;
  }
  const uint64_t size = state_->file_size.load();
  if (size <= kHeaderSize) return true;
  absl::Status s = file_->Punch(kHeaderSize, size - kHeaderSize);
  if (absl::IsUnimplemented(s)) return false;
  MAPKV_RETURN_IF_ERROR(s);
  return true;
}

absl::Status DBImpl::ForEachRecord(uint64_t from, uint64_t to,
                                   absl::FunctionRef<absl::Status(const Record&)> fn) const {
  for (uint64_t offset = from; offset < to;) {
    MAPKV_ASSIGN_OR_RETURN(Record r, ReadNamed(offset, to, true));
    MAPKV_RETURN_IF_ERROR(fn(r));
    offset += r.size;
  }
  return absl::OkStatus();
}

absl::Status DBImpl::AddUser() {
  if (users_.fetch_add(1, std::memory_order_seq_cst) & kRetiredBit) {
    users_.fetch_sub(1, std::memory_order_seq_cst);
    return Superseded();
  }
  return absl::OkStatus();
}

void DBImpl::DropUser() {
  if (users_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
      retiring_.load(std::memory_order_seq_cst)) {
    RetireIfUnused();
  }
}

void DBImpl::Retire() {
  retiring_.store(true, std::memory_order_seq_cst);
  RetireIfUnused();
}

void DBImpl::RetireIfUnused() {
  // Only from no users at all to retired: a user that comes later sees the bit and leaves
  // without touching the file; one that came first retires it when it leaves (DropUser).
  uint32_t none = 0;
  if (!users_.compare_exchange_strong(none, kRetiredBit, std::memory_order_seq_cst)) return;
  if (ForkGeneration() != fork_generation_) return;
  // The slot goes with the descriptor's locks; clear it first, as a close does.
  if (opened_ && !detached_) lock_.ReleaseSlot();
  opened_ = false;
  file_->Retire(kHeaderSize);
}

}  // namespace mapkv::internal
