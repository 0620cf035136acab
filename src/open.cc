// Opening a file: the first opener creates, validates and recovers it; others validate and join;
// a handle without write permission opens detached. DBImpl (db_impl.h) declares these.
#include <algorithm>
#include <cstring>
#include <thread>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "src/db_impl.h"
#include "src/env.h"
#include "src/hash.h"
#include "src/platform/process.h"
#include "src/status_macros.h"
#include "src/strings.h"

namespace mapkv::internal {
namespace {

uint64_t HeaderChecksum(const FileHeader& h) {
  return Hash64(&h, offsetof(FileHeader, checksum), 0);
}

Env& EnvOf(const Options& options) {
  return options.env != nullptr ? *options.env : Env::Default();
}

uint64_t CurrentBootHash(Env& env) {
  std::string id = env.BootId();
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

absl::StatusOr<std::unique_ptr<DBImpl>> DBImpl::Open(const std::string& path,
                                                     const Options& options) {
  if (options.max_file_size < kMinFileSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": max_file_size must be at least ", kMinFileSize, " bytes"));
  }
  if (options.read_only && options.exclusive) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": exclusive is for writers"));
  }
  if (options.create_format_version != 0 && options.create_format_version != kChainFormatVersion &&
      options.create_format_version != kCleanFormatVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": create_format_version ", options.create_format_version,
                     ": a database is created in format ", kChainFormatVersion, " or ",
                     kCleanFormatVersion, " (0: the newest)"));
  }
  FileOpenOptions fo;
  fo.create = options.create_if_missing && !options.read_only;
  fo.exclusive = options.error_if_exists;
  fo.reserve = options.max_file_size;
  fo.mode = options.file_mode & 0777;  // never setuid, setgid or sticky
  fo.huge_pages = options.huge_pages && options.durability != Durability::kSync;
  absl::StatusOr<std::unique_ptr<MappedFile>> file = EnvOf(options).OpenFile(path, fo);
  if (!file.ok() && options.read_only && absl::IsPermissionDenied(file.status())) {
    fo.read_only = true;  // read permission alone: a detached reader
    file = EnvOf(options).OpenFile(path, fo);
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
  const uint64_t boot = CurrentBootHash(EnvOf(options));
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
  if (db->chained_) {
    db->lock_.slot_at(db->lock_.slot()).cache_counts[kSlotFeatures].store(kFollowsSuccessor);
  }
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
  const uint64_t boot = CurrentBootHash(db->env_);
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

bool DBImpl::CreationInterrupted(uint64_t file_size) const {
  // Initialize() grows the file, marks the header page and writes the magic last. A creator
  // killed before the mark left a file of zeros; an empty file or one of zeros alone holds
  // nothing to lose. Anything else without the magic, a first page of zeros with data after it
  // included, is not ours and is never overwritten. Zeros are looked for up to a bound: a larger
  // file of zeros is refused (and can be removed by hand).
  constexpr uint64_t kZerosChecked = 64 << 20;
  if (file_size == 0) return true;
  if (file_size >= sizeof(FileHeader) &&
      std::memcmp(header_->magic, kCreatingMagic, sizeof(kCreatingMagic)) == 0) {
    return true;
  }
  return file_size <= std::min(kZerosChecked, file_->mapped_size()) &&
         std::all_of(base_, base_ + file_size, [](char c) { return c == 0; });
}

void DBImpl::LoadHeaderFields() {
  hash_seed_ = header_->hash_seed;
  salt_ = header_->salt;
  max_file_size_ =
      std::min(header_->max_file_size, file_->mapped_size()) / kSizeGranule * kSizeGranule;
  chained_ = IsChainedVersion(header_->format_version);
  copied_ = IsCacheVersion(header_->format_version);
  cleaned_ = header_->format_version == kCleanFormatVersion;
  if (chained_) lock_.UsePinWords();
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
        " does not match this build's ", kNewestFormatVersion, " layout ", kLayoutSignature));
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
    // Version 5: the log's start lies in the log.
    const uint64_t head = state.head.load();
    return committed <= file_size && committed >= kHeaderSize && committed % 8 == 0 &&
           applied <= committed && applied >= kHeaderSize && applied % 8 == 0 &&
           (header.format_version != kCleanFormatVersion ||
            (head >= kHeaderSize && head <= applied && head % 8 == 0));
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
  // The mark before anything else is cleared: a creation that starts again over the remains of
  // one killed after its mark finds the file marked at every moment.
  FileHeader& h = *header_;
  std::memcpy(h.magic, kCreatingMagic, sizeof(kCreatingMagic));
  std::memset(base_ + sizeof(h.magic), 0, kHeaderSize - sizeof(h.magic));
  h.format_version = ring                                                    ? kRingFormatVersion
                     : cache                                                 ? kCacheFormatVersion
                     : options_.create_format_version == kChainFormatVersion ? kChainFormatVersion
                                                                             : kCleanFormatVersion;
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
  if (cleaned_) state_->head.store(at);
  state_->index_record.store(at);
  state_->committed_tail.store(end);
  state_->applied_tail.store(end);
  state_->commits.store(1);
  state_->file_size.store(size);
  state_->boot_id.store(CurrentBootHash(env_));
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
    return absl::InvalidArgumentError(
        absl::StrCat(path(), ": not a mapkv database (its first ", kHeaderPageSize,
                     " bytes are zero, but not the rest, and it carries no creation marker); it is "
                     "left as it is"));
  }
  MAPKV_RETURN_IF_ERROR(ValidateHeader(size));
  if (options_.max_file_size > header_->max_file_size && !options_.read_only &&
      header_->format_version != kRingFormatVersion) {
    header_->max_file_size = options_.max_file_size;
    header_->checksum = HeaderChecksum(*header_);
  }
  LoadHeaderFields();
  const uint64_t boot = CurrentBootHash(env_);
  absl::Status state = ValidateState(size);
  const bool same_boot = boot != 0 && state_->boot_id.load() == boot;
  if (options_.read_only) {
    // A handle that only looks never changes the file: the state must serve as it is (a stale
    // exclusive side, before the reset below, is a writer that died publishing).
    if (same_boot) MAPKV_RETURN_IF_ERROR(state);
    if (same_boot ? NeedsRecovery() : !(state_->clean.load() == 1 && state.ok())) {
      return NeedsRecoveryError(
          same_boot    ? "a writer died half-way through a commit"
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

}  // namespace mapkv::internal
