// Compaction and backup (docs/tool.md, "Compaction" and "Backup"), through the public DB API,
// src/platform/fs.h and the files behind the handles (ImplOf(db).file(): their owner, mode and
// identity). Both are one Rewrite: the live records of one ReadTxn of the source, copied into a
// new file that one rename puts under the destination's name. What differs is the destination
// (Placement): the source itself, held alone throughout (compaction in place); a name nothing has
// (backup, compaction to another file), where the source is read from a snapshot while it stays
// in use; or an existing database, held alone until the rename (a backup that replaces one).
//
// The invariant: until the one rename that puts the new file in place, nothing this code does
// changes what the destination's name leads to, nor the source. The new file is complete and on
// disk (Checkpoint: msync + fsync, then closed cleanly) before that rename, and the directory is
// flushed after it, so a kill or a power cut at any instant leaves either the old file or the new
// one under the name, whole. A kill leaves a temporary file behind; the next compaction or backup
// to the same destination removes it.
//
// The directory may be writable by others than the database's owner, and this may run as root:
// whatever is done to the new file (its owner, its permission bits, its flush) is done through
// the descriptor that wrote it, never through its temporary name, which anyone who may write the
// directory can rename away or point elsewhere; the rename that puts it in place is made only
// once the temporary name is seen to still name that file (not a link to it), and is checked
// after. Names left by killed runs are judged by what they are (StatLink), never opened.
#include "mapkv/compact.h"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "mapkv/db.h"
#include "src/cache_entry.h"
#include "src/db_impl.h"
#include "src/platform/fs.h"
#include "src/platform/process.h"
#include "src/status_macros.h"
#include "src/strings.h"

namespace mapkv {
namespace {

using internal::ToAbsl;

using Clock = std::chrono::steady_clock;

// The temporary files' tags: "<dst>.compact-<pid>-<random>.tmp", "<dst>.backup-...". Either is a
// partial copy of a database destined for <dst>, and either run removes both kinds of leftovers.
constexpr std::string_view kCompactTag = "compact";
constexpr std::string_view kBackupTag = "backup";
constexpr std::string_view kTempTags[] = {kCompactTag, kBackupTag};
// Progress reports while copying: every this many keys.
constexpr uint64_t kReportEvery = 4096;

absl::Status Annotate(const absl::Status& status, std::string_view context) {
  return absl::Status(status.code(), absl::StrCat(ToAbsl(context), ": ", status.message()));
}

std::string Plural(uint64_t n, std::string_view one, std::string_view many) {
  return absl::StrCat(
      n, " ",
      absl::string_view(n == 1 ? one.data() : many.data(), n == 1 ? one.size() : many.size()));
}

void Report(const CompactOptions& options, const CompactProgress& progress) {
  if (options.progress) options.progress(progress);
}

// Opens `path` alone (Options::exclusive). When another handle has it open, says how many: an
// ordinary handle, opened for a moment, counts them (itself included). `needs` ends the refusal's
// message: why it must be alone.
absl::StatusOr<std::unique_ptr<DB>> OpenAlone(const std::string& path,
                                              const CompactOptions& options,
                                              std::string_view needs) {
  Options alone;
  alone.compact_ratio = 0;  // this is the compaction
  alone.create_if_missing = false;
  alone.exclusive = true;
  alone.kind = FileKind::kAny;  // a cache compacts as a database does, less its dead entries
  alone.lock_timeout = options.lock_timeout;
  // The least there is: a first opener raises a file's limit to its own, and compaction must not
  // change the source (the mapping follows the file's own limit).
  alone.max_file_size = internal::kMinFileSize;
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(path, alone);
    if (db.ok() || !absl::IsFailedPrecondition(db.status())) return db;

    Options counting;
    counting.compact_ratio = 0;
    counting.create_if_missing = false;
    counting.read_only = true;
    counting.kind = FileKind::kAny;
    counting.lock_timeout = std::chrono::milliseconds(500);
    absl::StatusOr<std::unique_ptr<DB>> probe = DB::Open(path, counting);
    if (!probe.ok()) {
      if (absl::IsDeadlineExceeded(probe.status())) {
        return absl::FailedPreconditionError(
            absl::StrCat(path, ": held exclusively by another process (another compaction?); ",
                         ToAbsl(needs), ": run it again once that process is done"));
      }
      return db.status();  // not about other handles (a newer format, ...)
    }
    const uint32_t handles = (*probe)->GetStats().open_handles;
    probe->reset();
    const uint32_t others = handles > 0 ? handles - 1 : 0;
    if (others == 0) {
      if (attempt == 0) continue;  // they closed it meanwhile: try once more
      return db.status();
    }
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": open by ", Plural(others, "other handle", "other handles"),
        " (processes using the database); ", ToAbsl(needs), ": stop ", others == 1 ? "it" : "them",
        " and run it again (`mapkv stat` shows the count)"));
  }
}

// Opens `src` as a reader opens it, beside whatever other handles it has: read-only, unless it
// needs recovery (a writer died in a commit, an unclean machine stop), which only a handle that
// may write performs; that open recovers it, as the next writer's open would.
absl::StatusOr<std::unique_ptr<DB>> OpenShared(const std::string& src,
                                               const CompactOptions& options) {
  Options shared;
  shared.compact_ratio = 0;  // this is the compaction
  shared.create_if_missing = false;
  shared.read_only = true;
  shared.kind = FileKind::kAny;
  shared.lock_timeout = options.lock_timeout;
  shared.max_file_size = internal::kMinFileSize;  // as OpenAlone: never raises the file's limit
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(src, shared);
  if (db.ok() || !IsNeedsRecovery(db.status())) return db;
  shared.read_only = false;
  absl::StatusOr<std::unique_ptr<DB>> recovered = DB::Open(src, shared);
  // A user who may only read it cannot recover it: why it needs recovery says more.
  if (absl::IsPermissionDenied(recovered.status())) return db;
  return recovered;
}

// Removes the temporary files that killed compactions and backups to `dst` left behind, judging
// each name by what it is itself (StatLink: a symbolic link there is never followed, and nothing
// is opened). Only a regular file owned by this process's user, or, when that is root, by the
// database's owner `owner` (a run killed after giving its copy that owner), is removed; unlinking
// removes the name, never what a link points to. Anything else under such a name is left as it
// is and listed in `kept`, with the reason. A run meanwhile to the same destination (a backup or
// a compaction to another file: one in place holds its database alone) then fails at its rename,
// as it would once this one had taken the name.
absl::Status RemoveLeftovers(const std::string& dst, uint32_t owner,
                             std::vector<std::string>* removed, std::vector<std::string>* kept) {
  const std::string dir = internal::DirName(dst);
  MAPKV_ASSIGN_OR_RETURN(std::vector<std::string> names, internal::ListDirectory(dir));
  const uint32_t me = internal::CurrentUid();
  for (const std::string& name : names) {
    if (std::none_of(std::begin(kTempTags), std::end(kTempTags), [&](std::string_view tag) {
          return internal::IsTempNameOf(name, dst, tag);
        })) {
      continue;
    }
    const std::string path = absl::StrCat(dir, "/", name);
    absl::StatusOr<internal::FileInfo> info = internal::StatLink(path);
    if (!info.ok()) {
      if (absl::IsNotFound(info.status())) continue;  // removed meanwhile
      return info.status();
    }
    if (!info->regular) {
      kept->push_back(absl::StrCat(path, ": ", info->symlink ? "a symbolic link" : "not a file",
                                   ", not a leftover of a compaction or backup: left alone"));
      continue;
    }
    if (info->uid != me && !(me == 0 && info->uid == owner)) {
      kept->push_back(absl::StrCat(path, ": owned by uid ", info->uid, ", not by this user",
                                   me == 0 ? " or the database's owner" : "", ": left alone"));
      continue;
    }
    absl::Status s = internal::RemovePath(path);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
    if (s.ok()) removed->push_back(path);
  }
  return absl::OkStatus();
}

// The source's counters as far as its file can hold them. They come from its shared state, which
// a clean open trusts as it finds it, so a crafted file may claim any number: the live records lie
// in the committed log (log_bytes, which the open checked against the file's size), and each live
// key takes a slot of the index and a record of at least kMinRecordBytes. Sized by these, the new
// file is at most the source's log, plus a new index of at most twice the source's (that one is
// up to 3/4 full, the new one at most half), plus the fixed slack of EstimateFileSize.
constexpr uint64_t kMinRecordBytes = internal::RecordSize(1, 0);  // a one-byte key, no value
Stats BoundedByFile(Stats s) {
  s.live_bytes = std::min(s.live_bytes, s.log_bytes);
  s.keys = std::min({s.keys, s.index_capacity, s.log_bytes / kMinRecordBytes});
  return s;
}

// Bytes for the new file: the source's header and index record header, the new index table of
// 2^index_bits slots (its record may start anywhere in a cache line), the live records, a commit
// record per batch (with slack to a cache line), the room a put leaves for deletes past itself
// (DeleteReserve), one size granule for the rounding of growth, and a little more. A source
// older than version 4 gets its records' chains in the copy. The file grows by a quarter when a
// write passes its end, so too little would cost a quarter more space; what is left over stays
// unused. `s` is BoundedByFile.
uint64_t EstimateFileSize(const Stats& s, uint32_t index_bits, uint64_t batches) {
  const uint64_t old_index = sizeof(internal::Slot) * s.index_capacity;
  uint64_t fixed = s.log_bytes - std::min(s.log_bytes, s.garbage_bytes + s.live_bytes);
  fixed = fixed > old_index ? fixed - old_index : 0;  // the header, the index record's header
  const uint64_t commit =
      internal::Align64(internal::RecordSize(0, sizeof(internal::CommitPayload)));
  const uint64_t chains =
      internal::IsChainedVersion(s.format_version) ? 0 : s.keys * internal::kPrevSize;
  return fixed + internal::IndexRecordSize(0, index_bits) + 64 + s.live_bytes + chains +
         batches * commit + internal::DeleteReserve(s.max_file_size) + internal::kSizeGranule +
         s.live_bytes / 1024;
}

// Where the new file goes, and so how the source is read.
enum class Placement {
  // Compaction in place: the source is held alone (OpenAlone) from the start until the rename,
  // which exchanges the new file with it.
  kInPlace,
  // A name that nothing has: the source is read from one ReadTxn beside its other handles
  // (OpenShared) and closed once copied; a rename that never replaces takes the name.
  kNewName,
  // An existing database other than the source (CompactOptions::replace_existing): the source is
  // read as for kNewName; the destination is held alone, as the source is in place, from the
  // start until the rename, which exchanges the new file with it.
  kReplaceExisting,
  // Compaction in place of a database of format version 4 that stays in use: the source is read
  // from a snapshot beside its other handles, the commits made meanwhile are copied after it,
  // and then, holding the source's writer lock, the last of them; the source is marked replaced
  // (DBImpl::MarkSuperseded) and the rename exchanges the new file with it. Every handle of the
  // source moves to the new file at its next call (DB::MoveOn). A source of another kind (a
  // cache, format version 1) is compacted as kInPlace.
  kOnline,
};

// One compaction or backup: Run() copies the live records of one ReadTxn of src into a temporary
// file beside dst, seals it, and renames it to dst as `placement` says.
class Rewrite {
 public:
  Rewrite(std::string src, std::string dst, Placement placement, std::string_view tag,
          const CompactOptions& options)
      : src_(std::move(src)),
        dst_(std::move(dst)),
        placement_(placement),
        tag_(tag),
        options_(options) {}

  absl::StatusOr<CompactResult> Run();
  // Run() gave up an online copy that the source outgrew (FinishOnline): a new one copies less.
  bool restart() const { return restart_; }

 private:
  // Opens the source, and the destination to replace (held_), as placement_ says.
  absl::Status OpenFiles();
  absl::Status CreateTemp(const Stats& stats, const internal::FileInfo& info);
  // Copies what `read` sees, and ends it.
  absl::Status Copy(ReadTxn read);
  absl::Status Finish(const internal::FileInfo& info);
  // Gives the new file the owner and permission bits of the source (`info`), as far as
  // SealTarget says, flushes it and records in written_ what it is, all through its descriptor;
  // then closes it.
  absl::Status SealTarget(const internal::FileInfo& info);
  // Puts the new file in place under dst_, once temp_ is seen to name it.
  absl::Status Replace();
  // OK when the name `path` itself (no link followed) is the file written_ describes, which was
  // written under the temporary name `written_as`.
  absl::Status CheckNamesWritten(const std::string& path, const std::string& written_as) const;
  // Closes and removes the temporary file; returns `status`.
  absl::Status Fail(absl::Status status);
  // Each batch costs a commit record: at least 1 MiB of records per batch.
  // A cache with a capacity takes transactions of up to half its ring: a 64th of it here.
  uint64_t BatchBytes() const {
    const uint64_t bytes = std::max<uint64_t>(options_.batch_bytes, 1 << 20);
    return cache_capacity_ == 0 ? bytes : std::min(bytes, cache_capacity_ / 64);
  }

  // kOnline: copies the records the source committed in [from, to) after the snapshot copied.
  absl::Status CatchUp(uint64_t from, uint64_t to);
  // kOnline: paces the source's writers, together, at 1/`share` of this copy's speed (`bytes` in
  // the time since `start`) for the next `for_us` (RwLock::PaceWriters). Writers that run flat
  // out append as fast as the copy copies: unpaced, they would keep it from ever catching up.
  // The snapshot's copy paces them at a 16th of its speed, each round of catching up at an
  // eighth of its own (a copied commit costs about twice a snapshot's record): each round then
  // has about an eighth of the one before to copy. Smaller shares, a half or a quarter, were
  // measured to leave more rounds, with more space taken meanwhile and more copied in all
  // (docs/benchmarks.md, "Steady-state updates").
  void PaceWriters(uint64_t bytes, Clock::time_point start, uint64_t share, uint64_t for_us);
  // kOnline, after the copy: holding the source's writer lock, copies its last commits, marks it
  // replaced and puts the new file in place.
  absl::Status FinishOnline(const internal::FileInfo& info, uint64_t from);

  const std::string src_;
  const std::string dst_;
  Placement placement_;
  const std::string_view tag_;
  const CompactOptions& options_;
  std::unique_ptr<DB> source_;
  std::unique_ptr<DB> held_;  // kReplaceExisting: the database under dst_, held alone
  std::unique_ptr<DB> target_;
  std::string temp_;
  internal::FileInfo written_;  // the new file, as its descriptor saw it last (SealTarget)
  bool is_cache_ = false;
  uint64_t cache_capacity_ = 0;
  bool restart_ = false;
  CompactResult result_;
};

absl::Status Rewrite::Fail(absl::Status status) {
  target_.reset();
  if (!temp_.empty()) {
    absl::Status removed = internal::RemovePath(temp_);
    if (!removed.ok() && !absl::IsNotFound(removed)) {
      status = Annotate(status, absl::StrCat("(and ", removed.message(), ")"));
    }
  }
  return status;
}

absl::Status Rewrite::OpenFiles() {
  if (placement_ == Placement::kOnline) {
    Options shared;
    shared.compact_ratio = 0;  // this is the compaction
    shared.create_if_missing = false;
    shared.kind = FileKind::kAny;
    shared.lock_timeout = options_.lock_timeout;
    shared.max_file_size = internal::kMinFileSize;  // as OpenShared: never raises the file's limit
    shared.env = options_.env;
    MAPKV_ASSIGN_OR_RETURN(source_, DB::Open(src_, shared));
    internal::DBImpl& impl = internal::ImplOf(*source_);
    if (impl.snapshots()) {
      MAPKV_ASSIGN_OR_RETURN(bool alone,
                             impl.file().Lock(internal::kCompactionLockByte, true, false));
      if (!alone) {
        return absl::FailedPreconditionError(
            absl::StrCat(src_, ": another compaction of it runs; run it again once that is done"));
      }
      if (const uint32_t pid = impl.HandleNotFollowing(); pid != 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            src_, ": process ", pid, " has it open with a mapkv too old to follow an online ",
            "compaction to the new file; compaction needs it alone until that process is done"));
      }
      return absl::OkStatus();
    }
    source_.reset();  // a cache, or format version 1: compacted alone
    placement_ = Placement::kInPlace;
  }
  if (placement_ == Placement::kInPlace) {
    MAPKV_ASSIGN_OR_RETURN(source_, OpenAlone(src_, options_, "compaction needs it alone"));
    return absl::OkStatus();
  }
  MAPKV_ASSIGN_OR_RETURN(source_, OpenShared(src_, options_));
  if (placement_ != Placement::kReplaceExisting) return absl::OkStatus();
  // Held until the rename: no process may write to a file that is about to lose its name.
  absl::StatusOr<std::unique_ptr<DB>> held =
      OpenAlone(dst_, options_, "it is replaced only while no other handle has it open");
  if (!held.ok()) {
    if (absl::IsInvalidArgument(held.status())) {  // not a mapkv file: never replaced
      return absl::AlreadyExistsError(absl::StrCat(held.status().message(),
                                                   "; it exists and is replaced only when it is a "
                                                   "mapkv file: remove it first"));
    }
    return held.status();
  }
  held_ = *std::move(held);
  return absl::OkStatus();
}

absl::Status Rewrite::CreateTemp(const Stats& stats, const internal::FileInfo& info) {
  temp_ = internal::UniqueTempPath(dst_, tag_);
  Options options;
  options.compact_ratio = 0;  // its commits (the copy) must not start a compaction of it
  options.env = options_.env;
  options.error_if_exists = true;
  options.exclusive = true;  // nobody else opens it by name while it is written
  options.max_file_size = stats.max_file_size;
  options.kind = stats.is_cache ? FileKind::kCache : FileKind::kDatabase;
  options.cache_capacity = stats.cache_capacity;
  // A database of version 4 stays one (the builds that share it may predate version 5, and
  // follow an online compaction to its file); older ones become the newest.
  if (stats.format_version == internal::kChainFormatVersion) {
    options.create_format_version = internal::kChainFormatVersion;
  }
  is_cache_ = stats.is_cache;
  cache_capacity_ = stats.cache_capacity;
  // An index at most half full, as the engine leaves one after a rehash: it never grows here.
  // Tables have a power of two of slots.
  const uint32_t bits = internal::IndexBitsFor(stats.keys, internal::kMinIndexSlots);
  const uint64_t batches = stats.live_bytes / BatchBytes() + 2;
  // A cache with a capacity keeps its index size (its tables never grow).
  options.initial_index_slots =
      stats.cache_capacity != 0 ? stats.index_capacity : uint64_t{1} << bits;
  options.initial_file_size = std::min(EstimateFileSize(stats, bits, batches), stats.max_file_size);
  options.file_mode = info.mode & 0777;
  options.lock_timeout = options_.lock_timeout;
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(temp_, options);
  if (!db.ok()) {
    if (absl::IsAlreadyExists(db.status())) temp_.clear();  // not ours: leave it
    return Annotate(db.status(), absl::StrCat("cannot create the new file beside ", dst_));
  }
  target_ = *std::move(db);
  return absl::OkStatus();
}

absl::Status Rewrite::Copy(ReadTxn read) {
  CompactProgress progress;
  progress.keys_total = read.Count();
  Report(options_, progress);

  // The snapshot's keys, once each, into an empty file: no map of the batch's keys, no lookup
  // of a previous version.
  auto begin = [&]() -> absl::StatusOr<WriteTxn> {
    absl::StatusOr<WriteTxn> txn = target_->BeginWrite();
    if (txn.ok()) internal::StateOf(*txn).keys = internal::WriteState::Keys::kNew;
    return txn;
  };
  absl::StatusOr<WriteTxn> txn = begin();
  if (!txn.ok()) return txn.status();
  absl::Status status;
  uint64_t batch = 0;
  uint64_t dropped = 0;
  const int64_t now = internal::NowUnixMs();
  const Clock::time_point copy_start = Clock::now();
  absl::Status walk = read.ForEach([&](std::string_view key, std::string_view value) {
    if (is_cache_ && !internal::KeepWhenCompacting(value, now)) {
      // An expired value, or a lease: the copy's computation would have no process to finish it
      // (in place, none runs while the file is held alone).
      ++dropped;
      ++progress.keys_done;
      return true;
    }
    status = txn->Put(key, value);
    if (!status.ok()) {
      status = Annotate(status, temp_);
      return false;
    }
    ++progress.keys_done;
    progress.bytes_done += key.size() + value.size();
    batch += key.size() + value.size();
    if (batch >= BatchBytes()) {
      batch = 0;
      status = txn->Commit();
      if (status.ok()) {
        txn = begin();
        status = txn.status();
      }
      if (!status.ok()) return false;
      // Renewed every batch: a compaction that died stops pacing soon.
      if (placement_ == Placement::kOnline) {
        PaceWriters(progress.bytes_done, copy_start, 16, 100'000);
      }
    }
    if (progress.keys_done % kReportEvery == 0) Report(options_, progress);
    return true;
  });
  if (!walk.ok()) return walk;  // a damaged record in the source: it names the offset
  if (!status.ok()) return status;
  MAPKV_RETURN_IF_ERROR(txn->Commit());
  Report(options_, progress);
  result_.keys = progress.keys_done - dropped;
  result_.dropped = dropped;
  if (progress.keys_done != progress.keys_total) {
    return absl::DataLossError(absl::StrCat(src_, ": the index counts ", progress.keys_total,
                                            " keys, but walking it found ", progress.keys_done,
                                            " (`mapkv check` tells more)"));
  }
  const Stats copied = target_->GetStats();
  if (copied.keys != result_.keys) {
    return absl::InternalError(
        absl::StrCat(temp_, ": holds ", copied.keys, " keys after copying ", result_.keys));
  }
  result_.live_bytes = copied.live_bytes;
  return absl::OkStatus();
}

absl::Status Rewrite::SealTarget(const internal::FileInfo& info) {
  // Every byte on disk, then a clean close: the next open of the new file trusts its index even
  // after a power cut.
  MAPKV_RETURN_IF_ERROR(target_->Checkpoint());
  internal::MappedFile& file = internal::ImplOf(*target_).file();
  // The owner first (a chown may clear the set-id bits), then the owner's permission bits exactly
  // (the umask may have narrowed them): a database compacted by root must stay usable by the
  // service that owns it.
  absl::StatusOr<internal::FileInfo> made = file.Stat();
  if (!made.ok()) return made.status();
  uint32_t mode = info.mode;
  if (made->uid != info.uid || made->gid != info.gid) {
    if (placement_ == Placement::kInPlace || internal::CurrentUid() == 0) {
      // In place it becomes the source; into another file, root gives it the same owner.
      if (absl::Status s = file.SetOwner(info.uid, info.gid); !s.ok()) {
        return Annotate(s, absl::StrCat("cannot give the new file the owner of ", src_));
      }
    } else if (made->gid != info.gid && !file.SetOwner(made->uid, info.gid).ok()) {
      // A copy by another user who may read the source (a backup operator): it stays theirs,
      // who may not give files away, in the source's group where they belong to it. Where they
      // do not, no group gets the access the source gives its own.
      mode &= ~uint32_t{070};
    }
  }
  MAPKV_RETURN_IF_ERROR(file.SetMode(mode));
  MAPKV_RETURN_IF_ERROR(file.Sync());
  made = file.Stat();
  if (!made.ok()) return made.status();
  written_ = *made;
  target_.reset();
  return absl::OkStatus();
}

absl::Status Rewrite::CheckNamesWritten(const std::string& path,
                                        const std::string& written_as) const {
  absl::StatusOr<internal::FileInfo> named = internal::StatLink(path);
  if (!named.ok() && !absl::IsNotFound(named.status())) return named.status();
  // The owner too: were the file removed, its inode number could name a new one.
  if (named.ok() && named->regular && internal::SameFile(*named, written_) &&
      named->uid == written_.uid && named->gid == written_.gid) {
    return absl::OkStatus();
  }
  const std::string found = !named.ok()       ? "nothing"
                            : named->symlink  ? "a symbolic link"
                            : !named->regular ? "something else than a file"
                                              : "another file";
  return absl::AbortedError(absl::StrCat(
      path, ": names ", found, ", not the new file written ",
      path == written_as ? "there" : absl::StrCat("as ", written_as),
      ": someone who may write the directory ", internal::DirName(path),
      " renamed or replaced it meanwhile (a compaction or backup to the same destination that "
      "starts meanwhile removes it)"));
}

absl::Status Rewrite::Replace() {
  // Windows cannot replace a file that any process has mapped, this one included, so the file to
  // be replaced (the source in place, the held destination otherwise) is closed first there. That
  // is safe for the reason the rename needs it: a process that opens the old file in between maps
  // it before it can commit, and then the rename fails (the run with it, leaving the old file as
  // it was); one that maps it after the rename finds the name taken by the new file and opens
  // that (DBImpl::OpenShared).
  if (internal::ReplaceFailsWhileMapped()) {
    if (placement_ == Placement::kInPlace) source_.reset();
    held_.reset();
  }
  const std::string temp = temp_;
  if (absl::Status s = CheckNamesWritten(temp, temp); !s.ok()) {
    temp_.clear();  // not ours under that name: left as it is
    return s;
  }
  if (placement_ == Placement::kNewName) {
    MAPKV_RETURN_IF_ERROR(internal::RenameNoReplace(temp, dst_));
    temp_.clear();
    absl::Status named = CheckNamesWritten(dst_, temp);
    if (!named.ok()) {
      // Replaced between the check and the rename: what went to dst_ is not ours. Take the name
      // back (unlinking removes a name, never what a link points to).
      absl::Status removed = internal::RemovePath(dst_);
      if (!removed.ok()) named = Annotate(named, absl::StrCat("(and ", removed.message(), ")"));
      return named;
    }
    return absl::OkStatus();
  }
  // Replacing a file: exchanging the names (where the file system can) keeps the old file under
  // temp_ until the new one is seen under dst_, so a lost race is undone by exchanging back.
  absl::Status exchanged = internal::ExchangeFiles(temp, dst_);
  if (absl::IsUnimplemented(exchanged)) {
    MAPKV_RETURN_IF_ERROR(internal::ReplaceFile(temp, dst_));
    temp_.clear();
    absl::Status named = CheckNamesWritten(dst_, temp);
    if (!named.ok()) {
      return Annotate(named, absl::StrCat("the original of ", dst_,
                                          " was replaced by it (this file system cannot exchange "
                                          "names, so it could not be put back)"));
    }
    return absl::OkStatus();
  }
  if (!exchanged.ok()) return exchanged;
  temp_.clear();  // from here it names the old file
  if (absl::Status named = CheckNamesWritten(dst_, temp); !named.ok()) {
    absl::Status back = internal::ExchangeFiles(temp, dst_);
    if (!back.ok()) {
      return Annotate(named, absl::StrCat("the original of ", dst_, " is now ", temp,
                                          ": putting it back failed: ", back.message()));
    }
    return named;
  }
  // The old file, under the temporary name since the exchange. A failure leaves it there, a
  // leftover that the next run to this destination removes.
  (void)internal::RemovePath(temp);
  return absl::OkStatus();
}

void Rewrite::PaceWriters(uint64_t bytes, Clock::time_point start, uint64_t share,
                          uint64_t for_us) {
  const uint64_t us = std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
  // Bytes per microsecond * 1000 / 1024 = KiB per millisecond.
  const uint64_t kib_per_ms = bytes * 1000 / 1024 / share / us;
  internal::ImplOf(*source_).rwlock().PaceWriters(
      static_cast<uint32_t>(std::min<uint64_t>(kib_per_ms, UINT32_MAX)), for_us);
}

absl::Status Rewrite::CatchUp(uint64_t from, uint64_t to) {
  if (from >= to) return absl::OkStatus();
  // Records of whole commits, in commit order: only each key's last one there counts (the new
  // file is seen by nobody until the rename, so the commits need not be copied one by one), and
  // records the snapshot already held (from a tail read before it began) count again, to the
  // same effect. The views point into the source's mapping, whose committed records never change.
  // Kept in log order, so that the copy reads the source sequentially: a later version of a key
  // marks its predecessor superseded (type 0), and once those are half of `records`, they go
  // (memory stays within twice the keys, however often a hot key changed).
  std::vector<internal::Record> records;
  absl::flat_hash_map<std::string_view, size_t, internal::KeyHash, internal::KeyEq> last;
  MAPKV_RETURN_IF_ERROR(internal::ImplOf(*source_).ForEachRecord(
      from, to, [&](const internal::Record& r) -> absl::Status {
        if (r.type != internal::kPut && r.type != internal::kDelete) return absl::OkStatus();
        auto [it, added] = last.try_emplace(r.key, records.size());
        if (!added) {
          records[it->second].type = 0;
          it->second = records.size();
        }
        records.push_back(r);
        if (records.size() > 2 * last.size() + 1024) {
          size_t kept = 0;
          for (const internal::Record& each : records) {
            if (each.type == 0) continue;
            last[each.key] = kept;
            records[kept++] = each;
          }
          records.resize(kept);
        }
        return absl::OkStatus();
      }));
  // Each key once: no map of the batch's keys.
  auto begin = [&]() -> absl::StatusOr<WriteTxn> {
    absl::StatusOr<WriteTxn> txn = target_->BeginWrite();
    if (txn.ok()) internal::StateOf(*txn).keys = internal::WriteState::Keys::kUnique;
    return txn;
  };
  absl::StatusOr<WriteTxn> txn = begin();
  if (!txn.ok()) return Annotate(txn.status(), temp_);
  // Each Put looks for the key's previous version in the new file: two dependent cache misses
  // (its slot, then its record to confirm the key), fetched a few keys ahead to overlap them.
  constexpr size_t kSlotsAhead = 16;
  constexpr size_t kRecordsAhead = 8;
  const internal::DBImpl& target = internal::ImplOf(*target_);
  uint64_t batch = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    if (i + kSlotsAhead < records.size()) {
      target.PrefetchPreviousVersion(records[i + kSlotsAhead].key, 0);
    }
    if (i + kRecordsAhead < records.size()) {
      target.PrefetchPreviousVersion(records[i + kRecordsAhead].key, 1);
    }
    const internal::Record& r = records[i];
    if (r.type == 0) continue;
    MAPKV_RETURN_IF_ERROR(r.type == internal::kPut ? txn->Put(r.key, r.value) : txn->Delete(r.key));
    batch += r.key.size() + r.value.size();
    if (batch < BatchBytes()) continue;
    batch = 0;
    MAPKV_RETURN_IF_ERROR(txn->Commit());
    txn = begin();
    if (!txn.ok()) return txn.status();
  }
  return txn->Commit();
}

absl::Status Rewrite::FinishOnline(const internal::FileInfo& info, uint64_t from) {
  // Rounds while the source's writers go on: each copies what they committed during the last,
  // while they are paced (PaceWriters) so that it shrinks. Once little is left (or a round did not
  // shrink it: the copy slowed down), most of the new file goes to the disk, a few more rounds
  // copy what was committed meanwhile, and the last is copied under the lock.
  constexpr int kRounds = 8;
  constexpr int kRoundsAfterFlush = 4;
  constexpr uint64_t kLeftForTheLock = 1 << 20;
  internal::DBImpl& source = internal::ImplOf(*source_);
  struct StopPacing {
    internal::DBImpl& db;
    ~StopPacing() { db.rwlock().StopPacing(); }
  } stop_pacing{source};
  source.env().AtPoint(internal::HookPoint::kCompactCopied);
  // Up to `max_rounds` rounds; from round `first_paced` on, each must shrink what is left.
  auto rounds = [&](int max_rounds, int first_paced) -> absl::Status {
    uint64_t last_round = UINT64_MAX;
    for (int round = 0; round < max_rounds; ++round) {
      const uint64_t to = source.committed_tail();
      // Commits that deleted most of what the copy holds (or replaced it with less): a copy of
      // the source as it is now would keep less than half of what this one keeps, and catching
      // up would leave this one mostly garbage from the start. The caller starts over.
      if (source.KeptBytes() < internal::ImplOf(*target_).KeptBytes() / 2) {
        restart_ = true;
        return absl::AbortedError(
            absl::StrCat(src_, ": most of it was deleted while it was copied"));
      }
      if (to - from <= kLeftForTheLock || (round >= first_paced && to - from >= last_round)) break;
      const Clock::time_point round_start = Clock::now();
      MAPKV_RETURN_IF_ERROR(CatchUp(from, to));
      // Until the next round ends: it copies about an eighth as much, in an eighth of the time.
      const uint64_t us =
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - round_start).count();
      PaceWriters(to - from, round_start, 8, 2 * us + 10'000);
      source.env().AtPoint(internal::HookPoint::kCompactCaughtUp);
      last_round = to - from;
      from = to;
    }
    return absl::OkStatus();
  };
  // The first round's writers were paced by the snapshot's copy, at another speed.
  MAPKV_RETURN_IF_ERROR(rounds(kRounds, 2));
  // Most of the new file on disk first: the flush under the lock then writes only the last round.
  // The writers stay paced meanwhile: the flush may take longer than a round.
  source.rwlock().RenewPacing(internal::RwLock::kMaxPaceUs);
  MAPKV_RETURN_IF_ERROR(target_->Checkpoint());
  MAPKV_RETURN_IF_ERROR(rounds(kRoundsAfterFlush, 1));
  MAPKV_RETURN_IF_ERROR(target_->Checkpoint());  // what those rounds wrote
  // The last round under the source's writer lock, held until the new file has the name; ahead of
  // the other writers, which would otherwise keep it with a stream of commits.
  source.RequestWriterPriority();
  absl::StatusOr<std::unique_ptr<internal::WriteState>> held = source.BeginWrite();
  if (!held.ok()) {
    source.DropWriterPriority();
    return held.status();
  }
  auto release = [&] {
    source.DropWriterPriority();
    source.EndWrite(**held);
  };
  source.rwlock().StopPacing();  // the lock stops the writers now
  result_.locked_bytes = source.committed_tail() - from;
  absl::Status s = CatchUp(from, source.committed_tail());
  const uint64_t salt = s.ok() ? internal::ImplOf(*target_).salt() : 0;
  // Nobody else has the new file open (Options::exclusive), and no commit is in progress there.
  if (s.ok()) internal::ImplOf(*target_).ContinueFrom(source);
  CompactProgress progress;
  progress.phase = CompactProgress::Phase::kFlush;
  progress.keys_done = progress.keys_total = target_->GetStats().keys;
  result_.keys = progress.keys_done;
  const Stats copied = target_->GetStats();
  result_.live_bytes = copied.live_bytes;
  result_.garbage_after = copied.garbage_bytes;
  if (s.ok()) {
    Report(options_, progress);
    s = SealTarget(info);
  }
  if (s.ok()) s = source.MarkSuperseded(salt);
  if (!s.ok()) {
    release();
    return s;
  }
  source.env().AtPoint(internal::HookPoint::kCompactMarked);
  progress.phase = CompactProgress::Phase::kReplace;
  Report(options_, progress);
  s = Replace();
  if (!s.ok()) {
    (void)source.MarkSuperseded(0);  // still the database: every handle goes on with it
    release();
    return s;
  }
  source.env().AtPoint(internal::HookPoint::kCompactRenamed);
  release();
  // The old file's blocks go back to the file system now, unless a snapshot still reads it (then
  // when the last process that has it open lets it go). Not under the lock: freeing a large
  // file's blocks takes tens of milliseconds, and whether a snapshot pins the file is settled by
  // the mark (a snapshot pins itself, then looks for it).
  (void)source.PunchIfUnpinned();
  return internal::SyncDirectoryOf(dst_);
}

absl::Status Rewrite::Finish(const internal::FileInfo& info) {
  CompactProgress progress;
  progress.phase = CompactProgress::Phase::kFlush;
  progress.keys_done = progress.keys_total = result_.keys;
  Report(options_, progress);
  // In place, the copy is the same database: it carries on the source's history. Under another
  // name it is a new one.
  if (placement_ == Placement::kInPlace) {
    internal::ImplOf(*target_).ContinueFrom(internal::ImplOf(*source_));
  }
  MAPKV_RETURN_IF_ERROR(SealTarget(info));

  progress.phase = CompactProgress::Phase::kReplace;
  Report(options_, progress);
  MAPKV_RETURN_IF_ERROR(Replace());
  // The rename is done for every process; make it durable. A failure here leaves a complete
  // database under the name either way: report it, but the rename happened.
  return internal::SyncDirectoryOf(dst_);
}

absl::StatusOr<CompactResult> Rewrite::Run() {
  const Clock::time_point start = Clock::now();
  MAPKV_RETURN_IF_ERROR(OpenFiles());  // may change kOnline into kInPlace
  result_.in_place = placement_ == Placement::kInPlace || placement_ == Placement::kOnline;
  result_.replaced = placement_ == Placement::kReplaceExisting;
  // The file opened, not whatever its name leads to meanwhile.
  absl::StatusOr<internal::FileInfo> info = internal::ImplOf(*source_).file().Stat();
  if (!info.ok()) return info.status();
  result_.size_before = info->size;
  if (absl::Status s =
          RemoveLeftovers(dst_, info->uid, &result_.removed_leftovers, &result_.kept_leftovers);
      !s.ok()) {
    return Annotate(s, dst_);  // its directory: missing, unreadable
  }

  // The copy holds exactly what this sees: the database as of one commit. Online, the commits
  // after it are copied from a tail read before it.
  const uint64_t tail_before =
      placement_ == Placement::kOnline ? internal::ImplOf(*source_).committed_tail() : 0;
  MAPKV_ASSIGN_OR_RETURN(ReadTxn read, source_->BeginRead());
  result_.read_under_lock = placement_ != Placement::kInPlace &&
                            !internal::ImplOf(*source_).snapshots() &&
                            !internal::ImplOf(*source_).copies_snapshots();
  Stats stats = source_->GetStats();
  // Commits since the snapshot began may have deleted keys: an index sized for the snapshot's.
  stats.keys = std::max(stats.keys, read.Count());
  result_.garbage_before = stats.garbage_bytes;

  if (absl::Status s = CreateTemp(BoundedByFile(stats), *info); !s.ok()) return Fail(s);
  if (absl::Status s = Copy(std::move(read)); !s.ok()) return Fail(s);
  // Read whole: the source's other handles need nothing more of this one.
  if (placement_ != Placement::kInPlace && placement_ != Placement::kOnline) source_.reset();
  absl::Status finished =
      placement_ == Placement::kOnline ? FinishOnline(*info, tail_before) : Finish(*info);
  if (!finished.ok() && !temp_.empty()) return Fail(finished);
  result_.micros = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
  source_.reset();  // others may open the (new) file from here
  held_.reset();
  if (!finished.ok()) return finished;
  result_.size_after = written_.size;
  return result_;
}

// What an existing `dst` is to the source at `real_src`: the same file (a name of it, whatever
// the path), or another one; nullopt when nothing is there.
enum class Existing { kSource, kOther };
absl::StatusOr<std::optional<Existing>> Examine(const std::string& real_src,
                                                const std::string& dst) {
  absl::StatusOr<bool> exists = internal::PathExists(dst);
  if (!exists.ok()) return exists.status();
  if (!*exists) return std::nullopt;
  absl::StatusOr<internal::FileInfo> a = internal::StatFile(real_src);
  absl::StatusOr<internal::FileInfo> b = internal::StatFile(dst);
  if (!a.ok()) return a.status();
  if (!b.ok()) return b.status();
  return internal::SameFile(*a, *b) ? Existing::kSource : Existing::kOther;
}

// Runs the rewrite of `real_src` into `dst`, a file other than the source (`existing`, as
// Examine found it): a new name, or an existing file replaced where options allow. `refusal` ends
// the message when dst exists.
absl::StatusOr<CompactResult> RewriteInto(const std::string& real_src, const std::string& dst,
                                          std::optional<Existing> existing, std::string_view tag,
                                          const CompactOptions& options, std::string_view refusal) {
  if (!existing) return Rewrite(real_src, dst, Placement::kNewName, tag, options).Run();
  if (!options.replace_existing) {
    return absl::AlreadyExistsError(absl::StrCat(dst, ": already exists; ", ToAbsl(refusal)));
  }
  // The real file is replaced, as compaction in place replaces the file a link leads to: renaming
  // over a symbolic link would replace the link.
  MAPKV_ASSIGN_OR_RETURN(std::string real_dst, internal::ResolvePath(dst));
  return Rewrite(real_src, real_dst, Placement::kReplaceExisting, tag, options).Run();
}

}  // namespace

absl::StatusOr<CompactResult> Compact(const std::string& src, const std::string& dst,
                                      const CompactOptions& options) {
  // Work on the real file: renaming over a symbolic link would replace the link.
  MAPKV_ASSIGN_OR_RETURN(std::string real_src, internal::ResolvePath(src));
  if (!dst.empty()) {
    MAPKV_ASSIGN_OR_RETURN(std::optional<Existing> existing, Examine(real_src, dst));
    if (existing != Existing::kSource) {
      return RewriteInto(real_src, dst, existing, kCompactTag, options,
                         "compaction to another file does not replace one (remove it first, or "
                         "compact in place)");
    }
  }
  // A database of format version 4 stays in use; anything else is compacted alone. Where the
  // OS cannot rename over a file that processes have mapped (Windows), every kind is.
  const Placement placement =
      internal::ReplaceFailsWhileMapped() ? Placement::kInPlace : Placement::kOnline;
  // Online, a copy that the source outgrew (most of it deleted meanwhile) starts over, once.
  constexpr int kRestarts = 1;
  for (int restarts = 0;; ++restarts) {
    Rewrite rewrite(real_src, real_src, placement, kCompactTag, options);
    absl::StatusOr<CompactResult> result = rewrite.Run();
    if (result.ok() || !rewrite.restart() || restarts == kRestarts) return result;
  }
}

absl::StatusOr<CompactResult> Backup(const std::string& db, const std::string& copy,
                                     const CompactOptions& options) {
  MAPKV_ASSIGN_OR_RETURN(std::string real_src, internal::ResolvePath(db));
  if (copy.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(db, ": a backup needs a file to write"));
  }
  MAPKV_ASSIGN_OR_RETURN(std::optional<Existing> existing, Examine(real_src, copy));
  if (existing == Existing::kSource) {
    return absl::InvalidArgumentError(
        absl::StrCat(copy, ": names the database itself (", db,
                     "); a backup goes to another file (`mapkv compact` rewrites one in place)"));
  }
  return RewriteInto(real_src, copy, existing, kBackupTag, options,
                     "a backup replaces one only when told to (`mapkv backup --force`, "
                     "CompactOptions::replace_existing)");
}

}  // namespace mapkv
