#include "src/db_impl.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "src/errors.h"
#include "src/hash.h"
#include "src/platform/process.h"
#include "src/platform/wait_word.h"
#include "src/status_macros.h"
#include "src/test_hooks.h"
#include "src/strings.h"

namespace mapkv::internal {
namespace {

// The file grows by a quarter (at least 1 MiB, at most 1 GiB) at a time: its blocks are allocated
// when it grows, so a larger step would leave more of the disk taken and unused.
constexpr uint64_t kGrowStep = 1ull << 30;
constexpr uint64_t kGrowAlign = 1ull << 20;
constexpr uint64_t kDeleteReserve = 1ull << 20;  // at most; 1/16 of max_file_size on small files

uint64_t RoundUp(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

uint64_t HeaderChecksum(const FileHeader& h) {
  return Hash64(&h, offsetof(FileHeader, checksum), 0);
}

uint64_t CheckpointChecksum(const CheckpointRecord& c, uint64_t salt) {
  return Hash64(&c, offsetof(CheckpointRecord, checksum), salt);
}

uint64_t CurrentBootHash() {
  BootIdFn hook = boot_id_hook.load(std::memory_order_acquire);
  std::string id = hook != nullptr ? hook() : BootId();
  return id.empty() ? 0 : HashKey(id, 0) | 1;  // 0 means "unknown"
}

// Takes the open byte shared, waiting (up to `timeout`) while a first opener holds it exclusively
// to recover or rebuild. Polls: a blocking fcntl could not time out.
absl::Status WaitForFirstOpener(MappedFile& file, std::chrono::milliseconds timeout) {
  const uint64_t deadline = MonotonicMicros() + static_cast<uint64_t>(timeout.count()) * 1000;
  std::chrono::microseconds pause(100);
  for (;;) {
    MAPKV_ASSIGN_OR_RETURN(bool shared, file.Lock(kOpenLockByte, false, false));
    if (shared) return absl::OkStatus();
    if (MonotonicMicros() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          file.path(), ": timed out after ", timeout.count(),
          " ms waiting for the process that opened it first (it recovers or rebuilds the index "
          "before others may join, or holds the file exclusively; raise Options::lock_timeout "
          "for a large rebuild)"));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(10000));
  }
}

}  // namespace

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

absl::StatusOr<std::unique_ptr<DBImpl>> DBImpl::Open(const std::string& path,
                                                     const Options& options) {
  if (options.max_file_size < kMinFileSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": max_file_size must be at least ", kMinFileSize, " bytes"));
  }
  if (options.read_only && options.exclusive) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": exclusive is for writers"));
  }
  FileOpenOptions fo;
  fo.create = options.create_if_missing && !options.read_only;
  fo.exclusive = options.error_if_exists;
  fo.reserve = options.max_file_size;
  fo.mode = options.file_mode & 0777;  // never setuid, setgid or sticky
  fo.huge_pages = options.huge_pages && options.durability != Durability::kSync;
  absl::StatusOr<std::unique_ptr<MappedFile>> file = OpenMappedFile(path, fo);
  if (!file.ok() && options.read_only && absl::IsPermissionDenied(file.status())) {
    fo.read_only = true;  // read permission alone: a detached reader
    file = OpenMappedFile(path, fo);
    if (file.ok()) return OpenDetached(std::move(*file), options);
  }
  if (!file.ok()) return file.status();
  return OpenShared(std::move(*file), options);
}

// True when the file's header asks for a larger mapping than `file` has: reopen with its size.
// A first writable opener may raise the limit instead (FirstOpen), so it keeps its own.
bool DBImpl::NeedsLargerMapping(MappedFile& file, uint64_t size, bool may_raise,
                                const Options& options, Options* larger) {
  if (size < kHeaderSize) return false;  // truncated: Open fails without reading the log
  const auto* h = reinterpret_cast<const FileHeader*>(file.base());
  if (std::memcmp(h->magic, kMagic, sizeof(kMagic)) != 0 || h->checksum != HeaderChecksum(*h) ||
      h->max_file_size <= file.mapped_size() ||
      (may_raise && options.max_file_size > h->max_file_size)) {
    return false;
  }
  // A first opener (may_raise) of a state from this boot trusts it, and fails on damaged log tails
  // (FirstOpen): reserving the header's address space first would only cost time (under wine,
  // about 1.5 s per TiB). From another boot, damaged tails make it rebuild the index, which needs
  // the whole reservation.
  const auto* state = reinterpret_cast<const SharedState*>(file.base() + kSharedStateOffset);
  const uint64_t boot = CurrentBootHash();
  if (may_raise && boot != 0 && state->boot_id.load() == boot && !TailsSane(*h, *state, size)) {
    return false;
  }
  *larger = options;
  larger->max_file_size = h->max_file_size;
  return true;
}

absl::StatusOr<std::unique_ptr<DBImpl>> DBImpl::OpenShared(std::unique_ptr<MappedFile> file,
                                                           const Options& options) {
  const std::string path = file->path();
  // The first-opener protocol (LMDB's): whoever gets the open byte exclusively is alone and owns
  // the shared state; the others wait on the shared lock until it is done.
  MAPKV_ASSIGN_OR_RETURN(bool first, file->Lock(kOpenLockByte, true, false));
  if (!first) {
    if (options.exclusive) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": open in another process (an exclusive open needs it alone)"));
    }
    MAPKV_RETURN_IF_ERROR(WaitForFirstOpener(*file, options.lock_timeout));
    MAPKV_ASSIGN_OR_RETURN(first, file->Lock(kOpenLockByte, true, false));
  }
  // The file may have been replaced under its name (an offline compaction renames the compacted
  // copy over it) before we got the open lock: then this handle has the old, unlinked file, and
  // whatever it committed would be lost. Open the file the name leads to now.
  MAPKV_ASSIGN_OR_RETURN(bool current, file->StillNamedBy(path));
  if (!current) {
    file.reset();
    return Open(path, options);
  }
  // A reader without write permission cannot see our lock words: it opens only while no one else
  // has the file open, and we open only while no such reader does. It takes its byte and then
  // looks at the open byte; we hold the open byte and now look at its byte: one of us sees the
  // other.
  MAPKV_ASSIGN_OR_RETURN(bool detached_reader, file->IsLockedByOther(kDetachedLockByte));
  if (detached_reader) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": a process without write permission has it open read-only; it can be opened ",
        "for writing once that process closes it"));
  }
  MAPKV_ASSIGN_OR_RETURN(uint64_t size, file->Size());
  // The file may have been created or grown by others since it was mapped.
  MAPKV_RETURN_IF_ERROR(file->Cover(std::min(size, file->mapped_size())));
  if (Options larger; NeedsLargerMapping(*file, size, first, options, &larger)) {
    file.reset();
    return Open(path, larger);
  }
  std::unique_ptr<DBImpl> db(new DBImpl(std::move(file), options));
  if (first) {
    MAPKV_RETURN_IF_ERROR(db->FirstOpen());
    if (!options.exclusive) {
      MAPKV_ASSIGN_OR_RETURN(bool downgraded, db->file_->Lock(kOpenLockByte, false, true));
      (void)downgraded;
    }
  } else {
    MAPKV_RETURN_IF_ERROR(db->ValidateHeader(size));
  }
  db->LoadHeaderFields();
  MAPKV_RETURN_IF_ERROR(db->CheckRingMapped());
  if (!first) MAPKV_RETURN_IF_ERROR(db->ValidateJoin());
  MAPKV_RETURN_IF_ERROR(db->lock_.ClaimSlot(CurrentPid()));
  db->opened_ = true;
  return db;
}

absl::StatusOr<std::unique_ptr<DBImpl>> DBImpl::OpenDetached(std::unique_ptr<MappedFile> file,
                                                             const Options& options) {
  const std::string path = file->path();
  MAPKV_ASSIGN_OR_RETURN(bool announced, file->Lock(kDetachedLockByte, false, false));
  MAPKV_ASSIGN_OR_RETURN(bool others, file->IsLockedByOther(kOpenLockByte));
  if (!announced || others) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": no write permission, and other processes have it open: a read-only handle ",
        "without write permission can open only a database that no process has open"));
  }
  MAPKV_ASSIGN_OR_RETURN(uint64_t size, file->Size());
  MAPKV_RETURN_IF_ERROR(file->Cover(std::min(size, file->mapped_size())));
  if (Options larger; NeedsLargerMapping(*file, size, false, options, &larger)) {
    file.reset();
    return Open(path, larger);
  }
  std::unique_ptr<DBImpl> db(new DBImpl(std::move(file), options));
  MAPKV_RETURN_IF_ERROR(db->ValidateHeader(size));
  db->LoadHeaderFields();
  MAPKV_RETURN_IF_ERROR(db->CheckRingMapped());
  MAPKV_RETURN_IF_ERROR(db->ValidateState(size));
  // Nobody can write, so the state must be usable as it is: left by a clean close, or exact in
  // this boot's page cache with no commit half applied.
  const uint64_t boot = CurrentBootHash();
  const bool exact = boot != 0 && db->state_->boot_id.load() == boot && !db->NeedsRecovery();
  if (!exact && db->state_->clean.load() != 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": needs recovery after an unclean stop, which takes write permission; open it ",
        "once with write permission"));
  }
  db->lock_.SetDetached();
  db->detached_ = true;
  db->opened_ = true;
  return db;
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

bool DBImpl::CreationInterrupted(uint64_t file_size) const {
  // Initialize() marks the header page first and writes the magic last; an empty file holds
  // nothing to lose. Anything else without the magic, zeros included, is not ours and is never
  // overwritten.
  if (file_size == 0) return true;
  return file_size >= sizeof(FileHeader) &&
         std::memcmp(header_->magic, kCreatingMagic, sizeof(kCreatingMagic)) == 0;
}

void DBImpl::LoadHeaderFields() {
  hash_seed_ = header_->hash_seed;
  salt_ = header_->salt;
  max_file_size_ =
      std::min(header_->max_file_size, file_->mapped_size()) / kSizeGranule * kSizeGranule;
  if (header_->format_version == kRingFormatVersion && RingBits(header_->ring_start) != 0 &&
      max_file_size_ == header_->max_file_size && max_file_size_ > header_->ring_start) {
    ring_start_ = header_->ring_start;
    ring_len_ = max_file_size_ - ring_start_;
    ring_tables_[0] = kHeaderSize;
    ring_tables_[1] = kHeaderSize + RingTableSize(RingBits(ring_start_));
  }
}

absl::Status DBImpl::CheckRingMapped() const {
  if (header_->format_version != kRingFormatVersion || ring()) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(path(), ": could map only ", max_file_size_,
                                                   " bytes of its ", header_->max_file_size,
                                                   "-byte capacity"));
}

absl::Status DBImpl::ValidateHeader(uint64_t file_size) const {
  const std::string& p = path();
  if (file_size == 0) {
    return absl::InvalidArgumentError(absl::StrCat(p, ": empty file, not a mapkv database"));
  }
  if (file_size < sizeof(FileHeader) || std::memcmp(header_->magic, kMagic, sizeof(kMagic)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(p, ": not a mapkv database (no magic)"));
  }
  if (header_->format_version > kNewestFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(p, ": format version ", header_->format_version,
                     " is newer than this build supports (", kNewestFormatVersion, ")"));
  }
  if (!KnownVersion(header_->format_version) || header_->layout != kLayoutSignature) {
    return absl::FailedPreconditionError(absl::StrCat(
        p, ": format version ", header_->format_version, " layout ", header_->layout,
        " does not match this build's ", kFormatVersion, " layout ", kLayoutSignature));
  }
  if (header_->checksum != HeaderChecksum(*header_)) {
    return absl::DataLossError(absl::StrCat(p, ": file header checksum mismatch at offset 0"));
  }
  const bool is_cache = IsCacheVersion(header_->format_version);
  if (options_.kind == FileKind::kDatabase && is_cache) {
    return absl::FailedPreconditionError(
        absl::StrCat(p, ": a mapkv cache, not a database: open it with mapkv::Cache::Open"));
  }
  if (options_.kind == FileKind::kCache && !is_cache) {
    return absl::FailedPreconditionError(
        absl::StrCat(p, ": a mapkv database, not a cache: open it with mapkv::DB::Open"));
  }
  if (file_size < kHeaderSize) {
    return absl::DataLossError(absl::StrCat(
        p, ": truncated to ", file_size, " bytes, shorter than the ", kHeaderSize, "-byte header"));
  }
  // A ring: two index tables of 64 to 2^kMaxIndexBits slots, then at least 64 KiB of ring.
  const uint64_t ring_start = header_->ring_start;
  const bool ring = header_->format_version == kRingFormatVersion;
  // The tables lie in the file: creation allocates them and the first MiB of ring at once.
  if (ring != (ring_start != 0) ||
      (ring && (RingBits(ring_start) == 0 || header_->max_file_size < ring_start + kSizeGranule ||
                header_->max_file_size % kSizeGranule != 0 || ring_start >= file_size))) {
    return absl::DataLossError(absl::StrCat(p, ": damaged file header: ring from ", ring_start,
                                            " to ", header_->max_file_size, " (offset 48)"));
  }
  return absl::OkStatus();
}

bool DBImpl::TailsSane(const FileHeader& header, const SharedState& state, uint64_t file_size) {
  const uint64_t committed = state.committed_tail.load();
  const uint64_t applied = state.applied_tail.load();
  const uint64_t start = header.ring_start;
  if (header.format_version != kRingFormatVersion || start == 0 || header.max_file_size <= start) {
    return committed <= file_size && committed >= kHeaderSize && committed % 8 == 0 &&
           applied <= committed && applied >= kHeaderSize && applied % 8 == 0;
  }
  // A ring: start <= head <= applied <= committed, at most one ring apart; the file reaches
  // the committed tail (in the first lap) or the ring's end (after it).
  const uint64_t head = state.head.load();
  const uint64_t len = header.max_file_size - start;
  return head >= start && head <= applied && applied <= committed && committed - head <= len &&
         head % 8 == 0 && applied % 8 == 0 && committed % 8 == 0 &&
         (committed - start < len ? committed <= file_size : file_size >= header.max_file_size);
}

absl::Status DBImpl::ValidateState(uint64_t file_size) const {
  uint64_t committed = state_->committed_tail.load();
  uint64_t index = state_->index_record.load();
  auto bad = [&](absl::string_view what, uint64_t offset) {
    return absl::DataLossError(absl::StrCat(path(), ": ", what, " (offset ", offset, ")"));
  };
  // Optimistic reads bound offsets by the recorded size: it must not pass the real one.
  if (const uint64_t recorded = state_->file_size.load(); recorded > file_size) {
    return bad(absl::StrCat("damaged shared state: the file is ", file_size,
                            " bytes, its recorded size ", recorded),
               kSharedStateOffset + offsetof(SharedState, file_size));
  }
  if (ring()) {
    if (!TailsSane(*header_, *state_, file_size)) {
      return bad("damaged shared state: log tail", kSharedStateOffset);
    }
    MAPKV_RETURN_IF_ERROR(Cover(std::min(file_size, ring_start_ + ring_len_)));
    absl::StatusOr<Record> rec = ReadRecord(base_, index, ring_start_, salt_, true);
    if ((index != ring_tables_[0] && index != ring_tables_[1]) || !rec.ok() ||
        rec->type != kIndex || rec->index_bits != RingBits(ring_start_)) {
      return bad("damaged shared state: no index table at the recorded offset", index);
    }
    return absl::OkStatus();
  }
  if (committed > file_size) {
    return bad(absl::StrCat("file is ", file_size, " bytes, shorter than its committed log"),
               committed);
  }
  if (!TailsSane(*header_, *state_, file_size)) {
    return bad("damaged shared state: log tail", kSharedStateOffset);
  }
  MAPKV_RETURN_IF_ERROR(Cover(committed));
  absl::StatusOr<Record> rec = ReadRecord(base_, index, committed, salt_, true);
  if (!rec.ok() || rec->type != kIndex) {
    return bad("damaged shared state: no index table at the recorded offset", index);
  }
  return absl::OkStatus();
}

absl::Status DBImpl::Initialize() {
  const bool cache = options_.kind == FileKind::kCache;
  const bool ring = cache && options_.cache_capacity != 0;
  const uint64_t limit =
      (ring ? options_.cache_capacity : options_.max_file_size) / kSizeGranule * kSizeGranule;
  uint32_t bits = IndexBitsFor(0, options_.initial_index_slots);
  uint64_t end = kHeaderSize + IndexRecordSize(kHeaderSize, bits);
  if (ring) {
    // Two tables with a slot per 256 bytes of capacity (an eighth of it for both): room for
    // capacity / 512 entries before the oldest go for lack of slots rather than bytes.
    bits = IndexBitsFor(0, std::max(options_.initial_index_slots, limit / 256));
    end = kHeaderSize + 2 * RingTableSize(bits);
    if (limit < kMinFileSize || end > limit / 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(path(), ": a cache's capacity must be at least ", kMinFileSize,
                       " bytes and twice its index (", end, " bytes for ", uint64_t{1} << bits,
                       " slots); it is ", options_.cache_capacity));
    }
  }
  uint64_t size = std::max(RoundUp(options_.initial_file_size, kGrowAlign), kMinFileSize);
  if (ring) size = std::max(size, RoundUp(end, kGrowAlign) + kGrowAlign);
  size = std::min(size, limit);
  if (end > size) {
    return absl::InvalidArgumentError(
        absl::StrCat(path(), ": initial_index_slots do not fit in initial_file_size"));
  }
  MAPKV_RETURN_IF_ERROR(file_->Grow(size));
  std::memset(base_, 0, kHeaderSize);
  FileHeader& h = *header_;
  std::memcpy(h.magic, kCreatingMagic, sizeof(kCreatingMagic));
  h.format_version = ring ? kRingFormatVersion : cache ? kCacheFormatVersion : kFormatVersion;
  h.layout = kLayoutSignature;
  h.hash_seed = RandomU64();
  h.salt = RandomU64();
  h.max_file_size = ring ? limit : options_.max_file_size;
  h.ring_start = ring ? end : 0;
  h.created_unix_ms = NowUnixMs();
  LoadHeaderFields();
  if (ring && !this->ring()) return CheckRingMapped();
  // The empty index, as the first batch (a ring's two tables are outside its log).
  const uint64_t at = kHeaderSize;
  std::memset(base_ + at, 0, end - at);
  WriteIndexHeader(base_, at, salt_, kLast, 1, bits);
  if (ring) WriteIndexHeader(base_, ring_tables_[1], salt_, kLast, 1, bits);
  if (ring) state_->head.store(end);
  state_->index_record.store(at);
  state_->committed_tail.store(end);
  state_->applied_tail.store(end);
  state_->commits.store(1);
  state_->file_size.store(size);
  state_->boot_id.store(CurrentBootHash());
  state_->synced_tail.store(end);
  MAPKV_RETURN_IF_ERROR(file_->Flush(0, end));
  // The magic last: a file without it was never a database.
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.checksum = HeaderChecksum(h);
  MAPKV_RETURN_IF_ERROR(file_->Flush(0, kHeaderPageSize));
  return file_->Sync();
}

absl::Status DBImpl::FirstOpen() {
  MAPKV_ASSIGN_OR_RETURN(uint64_t size, file_->Size());
  // The last handle may have grown the file after this one mapped it.
  MAPKV_RETURN_IF_ERROR(Cover(std::min(size, file_->mapped_size())));
  if (CreationInterrupted(size)) {
    if (options_.create_if_missing && !options_.read_only) return Initialize();
    if (size != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path(),
                       ": the creation of this database was interrupted; it holds no data. Open it "
                       "with create_if_missing to create it again"));
    }
  }
  if (size >= kHeaderPageSize &&
      std::all_of(base_, base_ + kHeaderPageSize, [](char c) { return c == 0; })) {
    return absl::InvalidArgumentError(absl::StrCat(
        path(), ": not a mapkv database (its first ", kHeaderPageSize,
        " bytes are zero, and it carries no creation marker); it is left as it is"));
  }
  MAPKV_RETURN_IF_ERROR(ValidateHeader(size));
  if (options_.max_file_size > header_->max_file_size && !options_.read_only &&
      header_->format_version != kRingFormatVersion) {
    header_->max_file_size = options_.max_file_size;
    header_->checksum = HeaderChecksum(*header_);
  }
  LoadHeaderFields();
  const uint64_t boot = CurrentBootHash();
  absl::Status state = ValidateState(size);
  const bool same_boot = boot != 0 && state_->boot_id.load() == boot;
  if (options_.read_only) {
    // A handle that only looks never changes the file: the state must serve as it is (a stale
    // exclusive side, before the reset below, is a writer that died publishing).
    if (same_boot) MAPKV_RETURN_IF_ERROR(state);
    if (same_boot ? NeedsRecovery() : !(state_->clean.load() == 1 && state.ok())) {
      return NeedsRecoveryError(
          same_boot ? "a writer died half-way through a commit"
                    : state.ok() ? "it was not closed cleanly before the machine stopped"
                                 : absl::StrCat("its shared state is damaged (", state.message(), ")"));
    }
  }
  // Nobody else has the file open: every lock word and slot is left over from the dead.
  lock_.Reset();
  if (options_.read_only) {
    state_->boot_id.store(boot);
    return absl::OkStatus();
  }
  state_->rebuilt_index = 0;
  state_->rebuild_records = 0;
  state_->rebuild_micros = 0;
  state_->recovered_commits.store(0);
  state_->file_size.store(size);
  if (same_boot) {
    // Same boot: the page cache kept every store, so the state is exact; finish any commit or
    // eviction a dead writer left half done.
    MAPKV_RETURN_IF_ERROR(state);
    MAPKV_RETURN_IF_ERROR(Replay());
    if (ring()) DropEvicted();
  } else if (state_->clean.load() == 1 && state.ok()) {
    // A clean close after a checkpoint: the disk has it all.
    state_->synced_tail.store(state_->committed_tail.load());
  } else if (ring()) {
    ResetRing(state.ok() ? std::string("it was not closed cleanly before the machine stopped")
                         : absl::StrCat("its shared state is damaged (", state.message(), ")"));
  } else {
    MAPKV_RETURN_IF_ERROR(RebuildIndex(
        state.ok() ? std::string("it was not closed cleanly before the machine stopped")
                   : absl::StrCat("its shared state is damaged (", state.message(), ")")));
  }
  state_->boot_id.store(boot);
  return absl::OkStatus();
}

absl::Status DBImpl::NeedsRecoveryError(std::string_view why) const {
  absl::Status s = absl::FailedPreconditionError(absl::StrCat(
      path(), ": needs recovery, because ", ToAbsl(why),
      "; recovery writes the file, and this handle is read-only. Open it once for writing: "
      "that replays or rebuilds the index from the log, keeping its longest valid prefix and "
      "dropping what follows (keep a copy of the file first if it may be damaged)"));
  s.SetPayload(kNeedsRecoveryPayload, absl::Cord(ToAbsl(why)));
  return s;
}

absl::Status DBImpl::ValidateJoin() {
  // Whoever opened the file first validated it, but a process with read permission alone can
  // hold the open byte and so keep every writer from being first: validate the state anyway,
  // against the file's real size. The state is valid at every instant of an honest file, a
  // writer's death half-way through a publish included; but commits and growth may run meanwhile,
  // and the fields are read one by one: a failure counts only where no publish and no growth
  // overlapped it (or a publish that never ends: its writer is dead, and the state stays as is).
  absl::Status s;
  for (int attempt = 0; attempt < 16; ++attempt) {
    const uint32_t seq = lock_.ReadBegin();
    const uint64_t recorded = state_->file_size.load();
    MAPKV_ASSIGN_OR_RETURN(uint64_t size, file_->Size());
    MAPKV_RETURN_IF_ERROR(Cover(std::min(size, file_->mapped_size())));
    s = ValidateState(size);
    if (s.ok()) return s;
    const bool stable = lock_.ReadValid(seq) && recorded == state_->file_size.load();
    if (stable && (seq & 1) == 0) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return s;
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
  if (!s.ok()) {
    ReleaseWriter();
    return s;
  }
  RunTestHook(HookPoint::kWriteLocked);
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
  RunTestHook(HookPoint::kReadLocked);
  return CommittedSnapshot();
}

Snapshot DBImpl::CommittedSnapshot() const {
  Snapshot snap;
  snap.tail = state_->committed_tail.load(std::memory_order_acquire);
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

std::string_view DBImpl::KeyAt(uint64_t offset, uint64_t limit) const {
  absl::StatusOr<Record> r = ReadAt(offset, limit, false);
  if (!r.ok() || r->type != kPut) return {};
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
  return RecordSize(h->key_len, h->value_len);
}

// Fetches the first lines of the record at `offset` (a 16-byte key and a 100-byte value span
// three): one round trip to memory instead of the header's and then the value's. Only in-bounds
// offsets: a damaged slot may hold anything.
void DBImpl::PrefetchRecord(uint64_t offset, uint64_t tail) const {
  if (offset < tail) {
    const char* record = At(offset);
    __builtin_prefetch(record);
    __builtin_prefetch(record + 64);
    __builtin_prefetch(record + 128);
  }
}

absl::StatusOr<std::string_view> DBImpl::LookupHashed(const Snapshot& snap, std::string_view key,
                                                      uint64_t hash) const {
  MAPKV_RETURN_IF_ERROR(CheckKeySize(path(), key));
  IndexTable table(base_, snap.index_record, snap.index_bits);
  absl::Status damage;
  Record found;
  Slot* slot = table.Probe(hash, [&](uint64_t offset) {
    PrefetchRecord(offset, snap.tail);
    absl::StatusOr<Record> r = ReadAt(offset, snap.tail, false);
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

absl::Status DBImpl::ForEach(const Snapshot& snap,
                             absl::FunctionRef<bool(std::string_view, std::string_view)> fn) const {
  IndexTable table(base_, snap.index_record, snap.index_bits);
  // Slots are read in order, records in the order of their keys' hashes: random. Fetching the
  // record 16 slots ahead keeps several of those misses in flight instead of one.
  constexpr uint64_t kAhead = 16;
  for (uint64_t i = 0; i < table.capacity(); ++i) {
    if (i + kAhead < table.capacity()) {
      PrefetchRecord(table.slot(i + kAhead).offset.load(std::memory_order_relaxed), snap.tail);
    }
    uint64_t offset = table.slot(i).offset.load(std::memory_order_relaxed);
    if (offset == kEmpty || offset == kTombstone) continue;
    MAPKV_ASSIGN_OR_RETURN(Record r, ReadAt(offset, snap.tail, options_.verify_checksums));
    if (r.type != kPut) {
      return absl::DataLossError(
          absl::StrCat(path(), ": index points at a non-put record at offset ", offset));
    }
    if (!fn(r.key, r.value)) break;
  }
  return absl::OkStatus();
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
  MAPKV_ASSIGN_OR_RETURN(Snapshot snap, LockShared());
  read(snap);
  lock_.UnlockShared();
  return absl::OkStatus();
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

// ---- Writes ----

absl::StatusOr<std::unique_ptr<WriteState>> DBImpl::BeginWrite() {
  MAPKV_RETURN_IF_ERROR(AcquireWriter());
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
  if (CheckUsable().ok()) ReleaseWriter();
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
  uint64_t grown = std::max(need, size + std::min(size / 4, kGrowStep));
  grown = std::min(RoundUp(grown, kGrowAlign), max_file_size_);
  absl::Status s = file_->Grow(grown);
  // A full disk may still have room for what this commit needs, if not for a quarter more.
  if (absl::IsResourceExhausted(s) && grown > need) s = file_->Grow(grown = need);
  if (!s.ok()) {
    if (keep == 0) return s;
    return absl::ResourceExhaustedError(absl::StrCat(
        s.message(), " (a put needs room for itself and ", keep,
        " bytes more, kept for deletes: those still go through)"));
  }
  RunTestHook(HookPoint::kFileGrown);
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
    return in_batch || e.head < until || (count > e.doomed.size() && count - e.doomed.size() > max_keys);
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
  RunTestHook(HookPoint::kEvicting);
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

namespace {
void RememberWrite(WriteState& w, std::string_view key) {
  if (!w.track_writes) return;
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
  const uint64_t size = RecordSize(key.size(), value.size());
  // Puts stop short of the limit, so that deletes (and the commit records and index tables that
  // go with them) can still free keys in a full database.
  const uint64_t reserve = std::min<uint64_t>(kDeleteReserve, max_file_size_ / 16);
  if (!ring() && w.tail + size + reserve > max_file_size_) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path(), ": database full: a put of key ", QuoteKey(key), " (", size,
                     " bytes) would pass max_file_size (", max_file_size_, " bytes) less the ",
                     reserve, " bytes kept for deletes"));
  }
  // The same reserve on a full disk: a put grows the file past itself by as much first.
  if (!ring()) MAPKV_RETURN_IF_ERROR(EnsureSpace(w.tail + size, reserve));
  MAPKV_ASSIGN_OR_RETURN(char* p, Place(w, size));
  WriteRecordAt(p, w.tail, salt_, kPut, 0, w.seq, key, value);
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
  const uint64_t size = RecordSize(key.size(), 0);
  MAPKV_ASSIGN_OR_RETURN(char* p, Place(w, size));
  WriteRecordAt(p, w.tail, salt_, kDelete, 0, w.seq, key, {});
  w.checksums.push_back(reinterpret_cast<RecordHeader*>(p)->checksum);
  RememberWrite(w, key);
  w.last_record = w.tail;
  w.tail += size;
  return absl::OkStatus();
}

absl::StatusOr<std::string_view> DBImpl::TxnGet(const WriteState& w, std::string_view key) const {
  MAPKV_RETURN_IF_ERROR(CheckUsable());
  MAPKV_RETURN_IF_ERROR(CheckKeySize(path(), key));
  auto it = w.writes.find(key);
  if (it != w.writes.end()) {
    MAPKV_ASSIGN_OR_RETURN(Record r, ReadAt(it->second, w.tail, false));
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

absl::StatusOr<uint64_t> DBImpl::MaybeGrowIndex(WriteState& w, uint64_t new_keys) {
  if (!ring()) return MaybeGrowLinearIndex(w, new_keys);
  return RehashRingWith(w.seq, new_keys, [&](uint64_t max_keys) { return Evict(0, max_keys); });
}

absl::StatusOr<uint64_t> DBImpl::MaybeGrowIndexLocked(WriteState& w, uint64_t new_keys) {
  if (!ring()) return MaybeGrowLinearIndex(w, new_keys);
  return RehashRingWith(w.seq, new_keys,
                        [&](uint64_t max_keys) { return EvictLocked(0, max_keys); });
}

absl::StatusOr<uint64_t> DBImpl::MaybeGrowLinearIndex(WriteState& w, uint64_t new_keys) {
  const uint64_t old_record = state_->index_record.load();
  const uint32_t old_bits = IndexBits(old_record);
  if (!IndexOverLimit(state_->used.load() + new_keys, uint64_t{1} << old_bits)) return 0;
  // Rehash from the stored hashes (no record reads) into a table at most half full. Readers go on
  // reading the old table meanwhile: only the writer changes tables.
  const uint32_t bits = std::max(
      IndexBitsFor(state_->count.load() + new_keys, options_.initial_index_slots), old_bits);
  const uint64_t at = w.tail;
  MAPKV_ASSIGN_OR_RETURN(uint64_t size, WriteIndexTable(at, w.seq, 0, bits));
  IndexTable from(base_, old_record, old_bits);
  IndexTable to(base_, at, bits);
  for (uint64_t i = 0; i < from.capacity(); ++i) {
    if (i == from.capacity() / 2) RunTestHook(HookPoint::kIndexGrowing);
    const Slot& s = from.slot(i);
    uint64_t offset = s.offset.load(std::memory_order_relaxed);
    if (offset != kEmpty && offset != kTombstone) to.InsertFresh(s.hash.load(), offset);
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
      write.hash, [&](uint64_t offset) { return KeyAt(offset, limit) == write.key; }, &free_slot);
  if (slot != nullptr) {
    const uint64_t old = slot->offset.load(std::memory_order_relaxed);
    state_->live_bytes.fetch_sub(SizeAt(old), std::memory_order_relaxed);
    if (write.is_put) {
      slot->offset.store(write.offset, std::memory_order_release);
      state_->live_bytes.fetch_add(SizeAt(write.offset), std::memory_order_relaxed);
    } else {
      slot->offset.store(kTombstone, std::memory_order_release);
      state_->count.fetch_sub(1, std::memory_order_relaxed);
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
      table.Probe(writes[i].hash,
                  [&](uint64_t offset) { return KeyAt(offset, limit) == writes[i].key; });
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
    if (i == n / 2) RunTestHook(HookPoint::kCommitApplying);
    ApplyWrite(table, writes[i]);
  }
  state_->commits.store(w.seq, std::memory_order_relaxed);
  state_->applied_tail.store(w.tail, std::memory_order_release);
  if (options_.durability == Durability::kSync) state_->synced_tail.store(w.tail);
  lock_.UnlockExclusive();
  return absl::OkStatus();
}

absl::Status DBImpl::Commit(WriteState& w) {
  MAPKV_RETURN_IF_ERROR(CheckUsable());
  if (w.checksums.empty()) return absl::OkStatus();
  std::vector<BatchWrite> writes;
  writes.reserve(w.writes.size());
  for (const auto& [key, offset] : w.writes) {
    const auto* h = reinterpret_cast<const RecordHeader*>(At(offset));
    writes.push_back({key, HashKey(key, hash_seed_), offset, h->type == kPut});
  }
  MAPKV_ASSIGN_OR_RETURN(uint64_t new_index, MaybeGrowIndex(w, w.puts));
  MAPKV_RETURN_IF_ERROR(Seal(w));
  absl::Status s = Publish(w, new_index, writes.data(), writes.size());
  if (!s.ok()) {
    InvalidateAfterTail();  // a sealed batch that was never published must never validate
    return s;
  }
  return MaybePeriodicCheckpoint();
}

absl::Status DBImpl::PutOrDelete(std::string_view key, const std::string_view* value) {
  // A one-write transaction without the transaction's map.
  MAPKV_RETURN_IF_ERROR(CheckKeySize(path(), key));
  MAPKV_RETURN_IF_ERROR(AcquireWriter());
  WriteState w;
  w.track_writes = false;
  w.db = this;
  w.seq = state_->commits.load() + 1;
  w.start = w.tail = w.first = state_->committed_tail.load();
  absl::Status s = value != nullptr ? TxnPut(w, key, *value) : TxnDelete(w, key);
  if (s.ok()) {
    const BatchWrite write{key, HashKey(key, hash_seed_), w.first, value != nullptr};
    absl::StatusOr<uint64_t> new_index = MaybeGrowIndex(w, w.puts);
    s = new_index.status();
    if (s.ok()) s = Seal(w);
    if (s.ok()) {
      s = Publish(w, *new_index, &write, 1);
      if (!s.ok()) InvalidateAfterTail();
    }
    if (s.ok()) s = MaybePeriodicCheckpoint();
  }
  ReleaseWriter();
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
  MAPKV_RETURN_IF_ERROR(file_->Flush(0, ring() ? state_->file_size.load() : tail));
  MAPKV_RETURN_IF_ERROR(file_->Sync());
  state_->synced_tail.store(tail);
  const CheckpointRecord* latest = LatestCheckpoint();
  CheckpointRecord c{};
  c.seq = latest == nullptr ? 1 : latest->seq + 1;
  c.tail = tail;
  c.commits = state_->commits.load();
  c.index_record = state_->index_record.load();
  c.unix_ms = NowUnixMs();
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
  MAPKV_RETURN_IF_ERROR(AcquireWriter());
  absl::Status s = CheckpointLocked();
  ReleaseWriter();
  return s;
}

Stats DBImpl::GetStats() {
  Stats s;
  absl::StatusOr<Snapshot> snap = LockShared();
  if (!snap.ok()) return s;
  s.keys = state_->count.load();
  s.file_size = state_->file_size.load();
  s.max_file_size = max_file_size_;
  s.log_bytes = snap->tail;
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
  lock_.UnlockShared();
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
