// DBImpl, the coordinator: its lifetime, its locks, record access and statistics. The stages of
// the data flow are in files of their own: open.cc, read.cc, commit.cc, ring.cc, recovery.cc.
#include "src/db_impl.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "src/env.h"
#include "src/platform/process.h"
#include "src/platform/wait_word.h"
#include "src/status_macros.h"

namespace mapkv::internal {

bool Gate::TryAcquireFor(std::chrono::milliseconds timeout) {
  uint32_t free_state = 0;
  if (state_.compare_exchange_strong(free_state, 1, std::memory_order_acquire)) return true;
  const uint64_t deadline = MonotonicMicros() + static_cast<uint64_t>(timeout.count()) * 1000;
  while (state_.exchange(2, std::memory_order_acquire) != 0) {
    const uint64_t now = MonotonicMicros();
    if (now >= deadline) return false;
    WaitWord(&state_, 2, std::chrono::microseconds(deadline - now));
  }
  return true;
}

void Gate::Release() {
  if (state_.exchange(0, std::memory_order_release) == 2) WakeWord(&state_);
}

DBImpl::DBImpl(std::unique_ptr<MappedFile> file, const Options& options)
    : file_(std::move(file)),
      options_(options),
      env_(options.env != nullptr ? *options.env : Env::Default()),
      base_(file_->base()),
      header_(reinterpret_cast<FileHeader*>(base_)),
      state_(reinterpret_cast<SharedState*>(base_ + kSharedStateOffset)),
      lock_(base_, file_.get(), static_cast<uint64_t>(options.lock_timeout.count()) * 1000),
      fork_generation_(ForkGeneration()),
      covered_(file_->covered()) {}

absl::Status DBImpl::CoverSlow(uint64_t end) const {
  absl::Status s = file_->Cover(end);
  covered_.store(file_->covered(), std::memory_order_release);
  return s;
}

DBImpl::~DBImpl() {
  // In a forked child the byte locks belong to the parent's open file too: leave them alone.
  if (ForkGeneration() != fork_generation_ || !opened_ || detached_) return;
  lock_.ReleaseSlot();
  absl::StatusOr<bool> last = file_->Lock(kOpenLockByte, true, false);
  if (last.ok() && *last) {
    // The last one out: the file is clean if the latest checkpoint covers all of it, so the next
    // boot can trust the index without a rebuild.
    const CheckpointRecord* ckpt = LatestCheckpoint();
    if (ckpt != nullptr && ckpt->tail == state_->committed_tail.load() &&
        (ckpt->flags & kCheckpointLogOnly) == 0 &&
        state_->applied_tail.load() == state_->committed_tail.load() && state_->clean.load() == 0) {
      state_->clean.store(1);
      (void)file_->Flush(0, kHeaderPageSize);
    }
  }
}

absl::Status DBImpl::CheckUsable() const {
  if (ForkGeneration() != fork_generation_) {
    return absl::FailedPreconditionError(
        absl::StrCat(path(),
                     ": this handle was opened before fork(); open the database again "
                     "in the child process"));
  }
  return absl::OkStatus();
}

void DBImpl::Log(std::string_view line) const {
  if (options_.info_log) {
    options_.info_log(line);
  } else {
    std::fprintf(stderr, "mapkv: %.*s\n", static_cast<int>(line.size()), line.data());
  }
}

uint64_t DBImpl::Deadline() const {
  return MonotonicMicros() + static_cast<uint64_t>(options_.lock_timeout.count()) * 1000;
}

absl::Status DBImpl::AcquireWriter() {
  MAPKV_RETURN_IF_ERROR(CheckUsable());
  if (options_.read_only) {
    return absl::PermissionDeniedError(absl::StrCat(path(), ": opened read-only"));
  }
  if (!write_gate_.TryAcquireFor(options_.lock_timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat(path(), ": timed out waiting for another write transaction of this process"));
  }
  absl::StatusOr<bool> from_dead = lock_.LockWriter();
  if (!from_dead.ok()) {
    write_gate_.Release();
    return from_dead.status();
  }
  absl::Status s = Cover(state_->file_size.load());
  if (s.ok() && (*from_dead || NeedsRecovery())) s = Recover();
  if (s.ok() && lock_.successor() != 0) s = TakeBackStaleMark();
  if (!s.ok()) {
    ReleaseWriter();
    return s;
  }
  env_.AtPoint(HookPoint::kWriteLocked);
  return absl::OkStatus();
}

void DBImpl::ReleaseWriter() {
  lock_.UnlockWriter();
  write_gate_.Release();
}

absl::StatusOr<Snapshot> DBImpl::LockShared() {
  MAPKV_RETURN_IF_ERROR(CheckUsable());
  const uint64_t deadline = lock_.TryLockShared() ? 0 : Deadline();
  while (deadline != 0) {
    bool writer_dead = false;
    absl::Status s = lock_.LockShared(deadline, &writer_dead);
    if (s.ok()) break;
    if (!writer_dead) return s;
    // The committer died holding the exclusive side: take its writer lock and recover. Not
    // through a read-only handle, which never changes the file.
    if (options_.read_only) return NeedsRecoveryError("a writer died half-way through a commit");
    if (!write_gate_.TryAcquireFor(options_.lock_timeout)) {
      return absl::DeadlineExceededError(absl::StrCat(path(), ": timed out recovering"));
    }
    absl::StatusOr<bool> from_dead = lock_.LockWriter();
    if (!from_dead.ok()) {
      write_gate_.Release();
      return from_dead.status();
    }
    absl::Status r = Cover(state_->file_size.load());
    if (r.ok() && (*from_dead || NeedsRecovery())) r = Recover();
    ReleaseWriter();
    MAPKV_RETURN_IF_ERROR(r);
  }
  if (absl::Status s = Cover(state_->file_size.load()); !s.ok()) {
    lock_.UnlockShared();
    return s;
  }
  env_.AtPoint(HookPoint::kReadLocked);
  return CommittedSnapshot();
}

Snapshot DBImpl::CommittedSnapshot() const {
  Snapshot snap;
  snap.tail = state_->committed_tail.load(std::memory_order_acquire);
  snap.head = LogStart();
  snap.index_record = state_->index_record.load(std::memory_order_relaxed);
  snap.index_bits = IndexBits(snap.index_record);
  snap.count = state_->count.load(std::memory_order_relaxed);
  return snap;
}

absl::StatusOr<Record> DBImpl::ReadAt(uint64_t offset, uint64_t tail, bool verify) const {
  if (!ring()) return ReadRecord(base_, offset, tail, salt_, verify);
  // A ring's live log is at most one ring long: below tail - ring length lies another lap.
  const uint64_t floor = tail - ring_start_ > ring_len_ ? tail - ring_len_ : ring_start_;
  if (offset % 8 != 0 || offset < floor || offset >= tail || tail < ring_start_) {
    return absl::DataLossError(absl::StrCat("damaged record at offset ", offset,
                                            ": offset out of the log [", floor, ", ", tail, ")"));
  }
  const uint64_t phys = Phys(offset);
  const uint64_t lap_room = ring_start_ + ring_len_ - phys;
  if (lap_room < sizeof(RecordHeader)) {
    Record pad;
    pad.offset = offset;
    pad.size = lap_room;
    pad.type = kPad;
    return pad;
  }
  return DecodeRecordAt(base_ + phys, offset, std::min(lap_room, tail - offset), salt_, verify);
}

absl::Status DBImpl::Named(const absl::Status& s) const {
  return absl::Status(s.code(), absl::StrCat(path(), ": ", s.message()));
}

std::string_view DBImpl::KeyAt(uint64_t slot_offset, uint64_t limit, uint64_t floor) const {
  if (SlotDead(slot_offset) && !chained_) return {};
  // A deleted key's slot left below the log's start (version 5): its record may be gone, and a
  // lookup treats the key as never written (a new put takes another slot; a rehash drops this).
  if (cleaned_ && SlotRecord(slot_offset) < (floor != 0 ? floor : LogStart())) return {};
  absl::StatusOr<Record> r = ReadAt(SlotRecord(slot_offset), limit, false);
  if (!r.ok() || r->type != (SlotDead(slot_offset) ? kDelete : kPut)) return {};
  return r->key;
}

uint64_t DBImpl::SizeAt(uint64_t offset) const {
  // Recovery recounts a table whose slots may point anywhere (a damaged file): no size outside
  // the committed log.
  const uint64_t limit = state_->committed_tail.load(std::memory_order_relaxed);
  if (ring()) {
    absl::StatusOr<Record> r = ReadAt(offset, limit, false);
    return r.ok() ? r->size : 0;
  }
  if (offset < kHeaderSize || offset % 8 != 0 || offset > limit ||
      limit - offset < sizeof(RecordHeader)) {
    return 0;
  }
  const auto* h = reinterpret_cast<const RecordHeader*>(base_ + offset);
  return RecordSizeOf(h->key_len, h->value_len, (h->flags & kChained) != 0);
}

void DBImpl::ContinueFrom(const DBImpl& source) {
  if (state_->commits.load() < source.commits()) state_->commits.store(source.commits());
  if (IsCacheVersion(header_->format_version)) return;
  const LineageState& from = source.lineage();
  LineageState& to = lineage();
  to.compactions.store(from.compactions.load() + 1);
  to.earlier_log_bytes.store(from.earlier_log_bytes.load() + source.committed_tail() - kHeaderSize);
  to.relocated_bytes.store(from.relocated_bytes.load() + committed_tail() - kHeaderSize);
}

Stats DBImpl::GetStats() {
  Stats s;
  absl::StatusOr<Snapshot> snap = LockShared();
  if (!snap.ok()) return s;
  s.keys = state_->count.load();
  s.file_size = state_->file_size.load();
  s.max_file_size = max_file_size_;
  s.log_bytes = snap->tail;
  // Version 5: the header and the log from its start (below it the file is given back).
  if (cleaned_) s.log_bytes = kHeaderSize + (snap->tail - state_->head.load());
  s.live_bytes = state_->live_bytes.load();
  s.index_capacity = uint64_t{1} << snap->index_bits;
  s.index_used = state_->used.load();
  uint64_t index_bytes = IndexRecordSize(snap->index_record, snap->index_bits);
  if (ring()) {
    // In use: the header, both tables and the live log.
    s.log_bytes = ring_start_ + (snap->tail - state_->head.load());
    index_bytes = ring_start_ - kHeaderSize;
    s.cache_capacity = header_->max_file_size;
    s.evictions = state_->evictions.load();
  }
  const uint64_t accounted = kHeaderSize + s.live_bytes + index_bytes;
  s.garbage_bytes = s.log_bytes > accounted ? s.log_bytes - accounted : 0;
  s.commits = state_->commits.load();
  s.rebuilt_index = state_->rebuilt_index != 0;
  s.rebuild_records = state_->rebuild_records;
  s.rebuild_micros = state_->rebuild_micros;
  s.recovered_commits = state_->recovered_commits.load();
  if (!ring() && !IsCacheVersion(header_->format_version)) {
    const LineageState& history = lineage();
    s.compactions = history.compactions.load();
    s.bytes_written = history.earlier_log_bytes.load() + (snap->tail - kHeaderSize);
    s.bytes_relocated = std::min(history.relocated_bytes.load(), s.bytes_written);
    if (s.bytes_written > s.bytes_relocated) {
      s.write_amplification = static_cast<double>(s.bytes_written) /
                              static_cast<double>(s.bytes_written - s.bytes_relocated);
    }
    s.writers_paced_kib_per_ms = lock_.ActivePace();
  }
  lock_.UnlockShared();
  if (absl::StatusOr<FileInfo> info = file_->Stat(); info.ok()) s.disk_bytes = info->allocated;
  for (const SnapshotInfo& info : Snapshots()) {
    s.snapshots += info.snapshots;
    s.snapshot_pinned_bytes = std::max(s.snapshot_pinned_bytes, info.pinned_bytes);
  }
  s.index_load = static_cast<double>(s.index_used) / static_cast<double>(s.index_capacity);
  if (const CheckpointRecord* c = LatestCheckpoint()) {
    s.checkpoints = c->seq;
    s.last_checkpoint_unix_ms = c->unix_ms;
  }
  s.open_handles = lock_.OpenHandles() + (detached_ ? 1 : 0);
  s.format_version = header_->format_version;
  s.is_cache = IsCacheVersion(header_->format_version);
  return s;
}

}  // namespace mapkv::internal
