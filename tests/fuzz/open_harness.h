// The open fuzzer's harness: arbitrary bytes become a database file, which is opened and read
// as the tool's read commands (check, dump, stat, get) read it through the library: Verify, Get,
// MultiGet, a ReadTxn with ForEach, Count, MultiGet and a Get of every key it yields, GetStats,
// and a cache's statistics through a Cache handle. Shared by the libFuzzer target
// (open_fuzzer.cc) and the regression test (tests/fuzz_regression_test.cc), so a reproducer
// committed to tests/fuzz/regressions/ runs through exactly the code that found it.
//
// The promise under test: a file from an untrusted source is safe to Open and Verify. Open either
// fails with a clear status naming the file, or succeeds and every read then returns a value or a
// status; nothing crashes, hangs or trips a sanitizer. Beyond "no crash", the harness checks what a
// reader may rely on and reports a violation (the fuzzer aborts on one, the test fails):
// - a failed Open is InvalidArgument, FailedPrecondition, DataLoss or ResourceExhausted (a huge
//   max_file_size in the header: no address space), and its message names the file;
// - Get answers OK, NotFound or DataLoss, and InvalidArgument exactly for a bad key size;
//   MultiGet answers each key as Get does, and ReadTxn::MultiGet exactly what ReadTxn::Get gives
//   in the same snapshot;
// - a file that passes Verify reads consistently: ForEach yields distinct keys, as many as the
//   counters say, and ReadTxn::Get, DB::Get and MultiGet of each give the value ForEach gave;
// - in write mode, a file that passes Verify takes a small transaction and passes Verify after it;
// - a handle opened read-only never changes the file, from Open to its close, whether Open
//   succeeds or not: the file keeps its size, and no byte changes outside the lock words and
//   process slots [4 KiB, 64 KiB), a cache's statistics (CacheState) and SharedState::boot_id.
//   A file that needs a repair (a half
//   applied commit, an index rebuild, a damaged state) is refused instead;
// - a reader without write permission (a "detached" handle, DB::Open's fallback when the file
//   cannot be opened for writing) trusts no size or offset the file stores beyond its real size:
//   a damaged file gives statuses, never SIGBUS or SIGSEGV.
//
// Input layout. Byte 0 is the mode (kMode* below); the rest describes the file:
// - kModeRaw: the rest is the file, byte for byte (short files, any bytes anywhere);
// - otherwise ("compact"): the next 320 bytes are the header fields the engine reads -- FileHeader
//   [0, 64), the two CheckpointRecords [512, 640) and SharedState [1024, 1152) -- and whatever
//   follows is the log, placed at kHeaderSize (64 KiB). Everything else is zero: the lock words
//   and process slots, which the first opener resets anyway. Why: the log starts at 64 KiB, so a
//   byte-for-byte input would need 64 KiB of mostly dead bytes before any record, and libFuzzer
//   would spend nearly every mutation on them. In the compact layout nearly every input byte is
//   one the engine reads, the seed databases are 2 to 7 KiB of input, and -max_len=16384 leaves
//   them room to grow. (A list of patches over a built-in valid file was the other choice; it
//   cannot express a different log, only damage to one, and ties every reproducer to the seed it
//   patched.)
//
// Checksums: XXH3 with a per-file salt is no wall a mutator can climb byte by byte, so mode bits
// make the harness recompute them after the mutation, as the engine would have written them:
// - kModeFixHeader: FileHeader::checksum (as HeaderChecksum in src/open.cc), so mutations of
//   the header fields, the shared state and the log reach the code past the header check;
// - kModeFixCheckpoints: the checksums of the CheckpointRecords ever written (seq != 0);
// - kModeFixRecords: walking the log from 64 KiB while records decode (ReadRecord's rules), every
//   record's checksum and every kCommit record's digest over the checksums of its batch, so
//   mutated lengths, keys, sequence numbers, flags and index slots get past the record checks.
// The boot id decides how the first opener treats the shared state: kModeSameBoot stores this
// machine's, so Open trusts the state (and replays [applied tail, committed tail)); without it a
// stored id equal to this machine's is changed, so Open rebuilds the index from the log unless the
// file was closed cleanly. Either way a reproducer behaves the same on every machine.
#ifndef MAPKV_TESTS_FUZZ_OPEN_HARNESS_H_
#define MAPKV_TESTS_FUZZ_OPEN_HARNESS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "mapkv/cache.h"
#include "mapkv/db.h"
#include "src/format.h"
#include "src/hash.h"
#include "src/log.h"
#include "src/platform/process.h"

#if defined(__linux__) && __has_include(<sys/fsuid.h>)
#include <sys/fsuid.h>
#include <unistd.h>
#endif

namespace mapkv::fuzz {

// Mode bits (input byte 0).
inline constexpr uint8_t kModeRaw = 1;             // the input is the file, byte for byte
inline constexpr uint8_t kModeFixHeader = 2;       // recompute FileHeader::checksum
inline constexpr uint8_t kModeFixCheckpoints = 4;  // recompute checkpoint checksums
inline constexpr uint8_t kModeFixRecords = 8;      // recompute record checksums, commit digests
inline constexpr uint8_t kModeSameBoot = 16;       // this machine's boot id: trust the state
inline constexpr uint8_t kModeWrite = 32;          // after a clean Verify: a transaction
inline constexpr uint8_t kModeReadOnly = 64;       // Options::read_only
inline constexpr uint8_t kModeNoVerifyChecksums = 128;  // Options::verify_checksums = false
inline constexpr uint8_t kModeFixAll = kModeFixHeader | kModeFixCheckpoints | kModeFixRecords;
// Both kModeReadOnly and kModeWrite: Options::read_only, opened without write permission (a
// detached handle). A transaction through a read-only handle means nothing, so the pair was free
// (no committed reproducer set both bits before it meant this). The file is written with mode
// 0444 and Open runs as a user who may read it but not write it: as root, whom permission bits do
// not stop, with this thread's file-system identity switched to nobody (uid and gid 65534, Linux's
// setfsuid: per thread, and root's again after Open); as anyone else, the owner of a 0444 file,
// which opens for reading only. The directory of the file is made searchable by all. Without
// <sys/fsuid.h> (Windows, whose read-only attribute does not stop wine run as root), the pair
// means kModeReadOnly alone.
inline constexpr uint8_t kModeDetached = kModeReadOnly | kModeWrite;
constexpr bool IsDetachedMode(uint8_t mode) { return (mode & kModeDetached) == kModeDetached; }

// The header fields the compact layout carries: [offset, offset + size) of the file each.
struct FileRange {
  uint64_t offset;
  uint64_t size;
};
inline constexpr FileRange kCompactRanges[] = {
    {0, sizeof(internal::FileHeader)},
    {internal::kCheckpointOffset[0], 2 * sizeof(internal::CheckpointRecord)},
    {internal::kSharedStateOffset, sizeof(internal::SharedState)},
};
inline constexpr size_t kCompactHeaderBytes = sizeof(internal::FileHeader) +
                                              2 * sizeof(internal::CheckpointRecord) +
                                              sizeof(internal::SharedState);
static_assert(internal::kCheckpointOffset[1] ==
              internal::kCheckpointOffset[0] + sizeof(internal::CheckpointRecord));

namespace detail {

inline uint64_t LoadU64(const std::string& file, uint64_t offset) {
  uint64_t v = 0;
  std::memcpy(&v, file.data() + offset, sizeof(v));
  return v;
}
inline void StoreU64(std::string& file, uint64_t offset, uint64_t v) {
  std::memcpy(file.data() + offset, &v, sizeof(v));
}

// As CurrentBootHash in src/open.cc: 0 when the boot id is unknown.
inline uint64_t BootHash() {
  static const uint64_t hash = [] {
    const std::string id = internal::BootId();
    return id.empty() ? uint64_t{0} : internal::HashKey(id, 0) | 1;
  }();
  return hash;
}

// Rewrites the checksum of every record that decodes, from the start of the log on, and the
// digest of every kCommit record over the checksums of its batch (the records since the previous
// kLast), so that the engine's checks see the mutated fields themselves.
inline void FixRecords(std::string& file) {
  namespace in = ::mapkv::internal;
  if (file.size() < in::kHeaderSize) return;
  const uint64_t salt = LoadU64(file, offsetof(in::FileHeader, salt));
  std::vector<uint64_t> checksums;
  uint64_t batch_start = in::kHeaderSize;
  for (uint64_t off = in::kHeaderSize; off < file.size();) {
    absl::StatusOr<in::Record> r = in::ReadRecord(file.data(), off, file.size(), salt, false);
    if (!r.ok()) break;
    if (r->type == in::kCommit) {
      const uint64_t digest =
          in::BatchDigest(checksums.data(), checksums.size(), salt, batch_start);
      StoreU64(file, off + sizeof(in::RecordHeader) + offsetof(in::CommitPayload, digest), digest);
    }
    const uint64_t checksum = in::RecordChecksum(file.data(), off, salt);
    StoreU64(file, off + offsetof(in::RecordHeader, checksum), checksum);
    if (r->type != in::kCommit) checksums.push_back(checksum);
    off += r->size;
    if (r->flags & in::kLast) {
      checksums.clear();
      batch_start = off;
    }
  }
}

}  // namespace detail

// The database file an input describes, checksums fixed and boot id set as its mode asks.
inline std::string BuildFile(const uint8_t* data, size_t size) {
  namespace in = ::mapkv::internal;
  std::string file;
  const uint8_t mode = size > 0 ? data[0] : 0;
  const char* rest = reinterpret_cast<const char*>(data) + (size > 0 ? 1 : 0);
  const size_t rest_size = size > 0 ? size - 1 : 0;
  if (mode & kModeRaw) {
    file.assign(rest, rest_size);
  } else {
    const size_t log_size = rest_size > kCompactHeaderBytes ? rest_size - kCompactHeaderBytes : 0;
    // Zeros after the log up to a multiple of 64 KiB, as in every file mapkv makes (Windows
    // cannot grow a file of another size); kModeRaw covers files of any size.
    const size_t granule = in::kSizeGranule;
    file.assign((in::kHeaderSize + log_size + granule - 1) / granule * granule, '\0');
    size_t taken = 0;
    for (const FileRange& range : kCompactRanges) {
      const size_t n = std::min<size_t>(range.size, rest_size - taken);
      std::memcpy(file.data() + range.offset, rest + taken, n);
      taken += n;
    }
    if (log_size > 0) std::memcpy(file.data() + in::kHeaderSize, rest + taken, log_size);
  }
  if ((mode & kModeFixRecords) && file.size() >= sizeof(in::FileHeader)) detail::FixRecords(file);
  if ((mode & kModeFixCheckpoints) &&
      file.size() >= in::kCheckpointOffset[1] + sizeof(in::CheckpointRecord)) {
    const uint64_t salt = detail::LoadU64(file, offsetof(in::FileHeader, salt));
    for (uint64_t at : in::kCheckpointOffset) {
      // A record never written (seq 0) stays all zero, as the engine leaves it.
      if (detail::LoadU64(file, at + offsetof(in::CheckpointRecord, seq)) == 0) continue;
      detail::StoreU64(
          file, at + offsetof(in::CheckpointRecord, checksum),
          in::Hash64(file.data() + at, offsetof(in::CheckpointRecord, checksum), salt));
    }
  }
  if ((mode & kModeFixHeader) && file.size() >= sizeof(in::FileHeader)) {
    detail::StoreU64(file, offsetof(in::FileHeader, checksum),
                     in::Hash64(file.data(), offsetof(in::FileHeader, checksum), 0));
  }
  constexpr uint64_t kBootAt = in::kSharedStateOffset + offsetof(in::SharedState, boot_id);
  if (file.size() >= kBootAt + sizeof(uint64_t)) {
    const uint64_t here = detail::BootHash();
    if (mode & kModeSameBoot) {
      detail::StoreU64(file, kBootAt, here);
    } else if (here != 0 && detail::LoadU64(file, kBootAt) == here) {
      detail::StoreU64(file, kBootAt, here ^ 2);  // another boot (still odd, still not 0)
    }
  }
  return file;
}

// The compact input (see the top of this file) for database file `file`, its log cut at `log_end`
// (at least the committed tail; the rest of a new file is zeros).
inline std::string EncodeCompact(std::string_view file, uint64_t log_end, uint8_t mode) {
  std::string input(1, static_cast<char>(mode & ~kModeRaw));
  for (const FileRange& range : kCompactRanges) input.append(file.substr(range.offset, range.size));
  if (log_end > internal::kHeaderSize && log_end <= file.size()) {
    input.append(file.substr(internal::kHeaderSize, log_end - internal::kHeaderSize));
  }
  return input;
}

// Where file offset `file_offset` lies in a compact input (to stage damage in a seed), or
// std::string::npos when the compact layout does not carry it.
inline size_t CompactInputOffset(uint64_t file_offset) {
  size_t at = 1;
  for (const FileRange& range : kCompactRanges) {
    if (file_offset >= range.offset && file_offset < range.offset + range.size) {
      return at + (file_offset - range.offset);
    }
    at += range.size;
  }
  return file_offset >= internal::kHeaderSize ? at + (file_offset - internal::kHeaderSize)
                                              : std::string::npos;
}

struct HarnessResult {
  absl::Status open;    // DB::Open
  absl::Status verify;  // DB::Verify, when opened
  absl::Status write;   // the transaction of kModeWrite, when run
  absl::Status cache;   // Cache::Open, when DB::Open found a cache's file
  Stats stats;          // GetStats, when opened
  uint64_t for_each_keys = 0;
  bool detached = false;  // opened without write permission (kModeDetached, where supported)
  // Every (key, value) ForEach yielded, sorted, when asked for.
  std::vector<std::pair<std::string, std::string>> contents;
  // Broken promises (see the top of this file); empty when all is well.
  std::vector<std::string> violations;
};

// Whether kModeDetached opens without write permission here (see kModeDetached).
#if defined(__linux__) && __has_include(<sys/fsuid.h>)
inline constexpr bool kDetachedSupported = true;
#else
inline constexpr bool kDetachedSupported = false;
#endif

namespace detail {

// Replaces the file at `path` with `bytes`. Removed first: a detached input leaves a 0444 file,
// which its owner (when not root) cannot truncate. `detached`: the file is made read-only for all
// (0444) and its directory searchable by all. Returns "" or what failed.
inline std::string PlaceFile(const std::string& path, const std::string& bytes, bool detached) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) return absl::StrCat("cannot remove ", path, ": ", ec.message());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out.good()) return absl::StrCat("cannot write ", path);
  }
  if (!detached) return "";
  fs::permissions(path, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read, ec);
  if (ec) return absl::StrCat("cannot make ", path, " read-only: ", ec.message());
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  fs::permissions(dir, fs::perms::group_exec | fs::perms::others_exec, fs::perm_options::add, ec);
  if (ec) return absl::StrCat("cannot make ", dir.string(), " searchable by all: ", ec.message());
  return "";
}

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Whether this thread may open `path` for reading, or for reading and writing.
inline bool MayOpen(const std::string& path, bool write) {
  std::fstream file(path, write ? std::ios::in | std::ios::out | std::ios::binary
                                : std::ios::in | std::ios::binary);
  return file.is_open();
}

// While alive (and `wanted`), this thread opens files as nobody (uid and gid 65534) where the
// process is root; elsewhere it changes nothing: setfsuid needs root, and the owner of a 0444 file
// cannot open it for writing anyway. Linux keeps the file-system ids per thread, so no other
// thread of the process is affected.
class FilesAsNobody {
 public:
  explicit FilesAsNobody(bool wanted) {
#if defined(__linux__) && __has_include(<sys/fsuid.h>)
    if (wanted && geteuid() == 0) {
      active_ = true;
      setfsgid(kNobody);  // the group, then the user; Restore undoes them in reverse
      setfsuid(kNobody);
    }
#else
    (void)wanted;
#endif
  }
  ~FilesAsNobody() { (void)Restore(); }
  FilesAsNobody(const FilesAsNobody&) = delete;
  FilesAsNobody& operator=(const FilesAsNobody&) = delete;

  // Back to root's file-system ids; false when this thread does not have them again.
  bool Restore() {
#if defined(__linux__) && __has_include(<sys/fsuid.h>)
    if (!active_) return true;
    active_ = false;
    setfsuid(0);
    setfsgid(0);
    // setfsuid reports no failure; given an invalid id (-1) it changes nothing and returns the
    // current one.
    return setfsuid(static_cast<uid_t>(-1)) == 0 && setfsgid(static_cast<gid_t>(-1)) == 0;
#else
    return true;
#endif
  }

 private:
  static constexpr unsigned kNobody = 65534;
  bool active_ = false;
};

// The header field at `offset`, for messages ("SharedState::file_size").
inline std::string FieldAt(uint64_t offset) {
  namespace in = ::mapkv::internal;
  struct Field {
    uint64_t offset;
    const char* name;
  };
  static constexpr Field kHeader[] = {
      {offsetof(in::FileHeader, magic), "FileHeader::magic"},
      {offsetof(in::FileHeader, format_version), "FileHeader::format_version"},
      {offsetof(in::FileHeader, layout), "FileHeader::layout"},
      {offsetof(in::FileHeader, hash_seed), "FileHeader::hash_seed"},
      {offsetof(in::FileHeader, salt), "FileHeader::salt"},
      {offsetof(in::FileHeader, max_file_size), "FileHeader::max_file_size"},
      {offsetof(in::FileHeader, created_unix_ms), "FileHeader::created_unix_ms"},
      {offsetof(in::FileHeader, ring_start), "FileHeader::ring_start"},
      {offsetof(in::FileHeader, checksum), "FileHeader::checksum"},
  };
  static constexpr Field kState[] = {
      {offsetof(in::SharedState, committed_tail), "committed_tail"},
      {offsetof(in::SharedState, applied_tail), "applied_tail"},
      {offsetof(in::SharedState, commits), "commits"},
      {offsetof(in::SharedState, count), "count"},
      {offsetof(in::SharedState, used), "used"},
      {offsetof(in::SharedState, live_bytes), "live_bytes"},
      {offsetof(in::SharedState, recovered_commits), "recovered_commits"},
      {offsetof(in::SharedState, synced_tail), "synced_tail"},
      {offsetof(in::SharedState, index_record), "index_record"},
      {offsetof(in::SharedState, file_size), "file_size"},
      {offsetof(in::SharedState, boot_id), "boot_id"},
      {offsetof(in::SharedState, clean), "clean"},
      {offsetof(in::SharedState, rebuilt_index), "rebuilt_index"},
      {offsetof(in::SharedState, rebuild_records), "rebuild_records"},
      {offsetof(in::SharedState, rebuild_micros), "rebuild_micros"},
      {offsetof(in::SharedState, head), "head"},
      {offsetof(in::SharedState, evictions), "evictions"},
  };
  auto last_at_or_before = [](const auto& fields, uint64_t at) {
    const char* name = fields[0].name;
    for (const Field& f : fields) {
      if (f.offset <= at) name = f.name;
    }
    return name;
  };
  if (offset < sizeof(in::FileHeader)) return last_at_or_before(kHeader, offset);
  for (int i = 0; i < 2; ++i) {
    const uint64_t at = in::kCheckpointOffset[i];
    if (offset >= at && offset < at + sizeof(in::CheckpointRecord)) {
      return absl::StrCat("CheckpointRecord ", i == 0 ? "A" : "B", " (+", offset - at, ")");
    }
  }
  if (offset >= in::kSharedStateOffset &&
      offset < in::kSharedStateOffset + sizeof(in::SharedState)) {
    return absl::StrCat("SharedState::",
                        last_at_or_before(kState, offset - in::kSharedStateOffset));
  }
  if (offset >= in::kCacheStateOffset && offset < in::kCacheStateOffset + sizeof(in::CacheState)) {
    return "CacheState";
  }
  if (offset < in::kHeaderPageSize) return "the header page (no field)";
  if (offset < in::kSlotsOffset) return "LockState";
  if (offset < in::kHeaderSize) return "a ProcessSlot";
  return "the log";
}

// Where a read-only handle may write: the lock words and process slots, which every opener
// resets and claims; a cache's statistics of the handles gone, into which a dead slot's counters
// are folded when it is cleared (statistics, not data); and the boot id, with which a handle of
// this boot records that it found the state exact.
inline bool ReadOnlyMayWrite(uint64_t offset) {
  namespace in = ::mapkv::internal;
  constexpr uint64_t kBootAt = in::kSharedStateOffset + offsetof(in::SharedState, boot_id);
  return (offset >= in::kLockStateOffset && offset < in::kHeaderSize) ||
         (offset >= in::kCacheStateOffset &&
          offset < in::kCacheStateOffset + sizeof(in::CacheState)) ||
         (offset >= kBootAt && offset < kBootAt + sizeof(uint64_t));
}

// What a read-only handle changed of the file (`before` as written, `after` as read back), or "".
inline std::string ReadOnlyChanges(const std::string& before, const std::string& after) {
  std::string changes;
  if (after.size() != before.size()) {
    absl::StrAppend(&changes, "its size from ", before.size(), " to ", after.size(), " bytes");
  }
  const size_t common = std::min(before.size(), after.size());
  uint64_t first = 0, last = 0, bytes = 0;
  for (size_t i = 0; i < common; ++i) {
    if (before[i] == after[i] || ReadOnlyMayWrite(i)) continue;
    if (bytes++ == 0) first = i;
    last = i;
  }
  if (bytes > 0) {
    auto hex = [](char c) { return absl::Hex(static_cast<uint8_t>(c), absl::kZeroPad2); };
    absl::StrAppend(&changes, changes.empty() ? "" : ", and ", bytes, " bytes from offset ", first,
                    " (", FieldAt(first), ": 0x", hex(before[first]), " -> 0x", hex(after[first]),
                    ") to offset ", last, " (", FieldAt(last), ")");
  }
  return changes;
}

inline std::string Show(std::string_view s) {
  return absl::StrCat("'",
                      absl::CHexEscape(absl::string_view(s.data(), std::min<size_t>(s.size(), 40))),
                      s.size() > 40 ? "'..." : "'");
}

// A value read, or the status instead.
inline std::string ShowResult(const absl::StatusOr<std::string_view>& v) {
  return v.ok() ? Show(*v) : v.status().ToString();
}
inline std::string ShowResult(const absl::StatusOr<std::string>& v) {
  return v.ok() ? Show(*v) : v.status().ToString();
}

inline bool BadKeySize(std::string_view key) { return key.empty() || key.size() > kMaxKeySize; }

}  // namespace detail

// Writes the file `data` describes to `path` (replacing it), opens it and reads it. With
// `collect`, result.contents receives what ForEach yielded. A detached input (kModeDetached)
// makes the directory of `path` searchable by all, and needs every directory above it to be.
inline HarnessResult RunOpenHarness(const uint8_t* data, size_t size, const std::string& path,
                                    bool collect = false) {
  HarnessResult result;
  auto violation = [&](auto&&... parts) { result.violations.push_back(absl::StrCat(parts...)); };
  const uint8_t mode = size > 0 ? data[0] : 0;
  result.detached = kDetachedSupported && IsDetachedMode(mode);
  const std::string written = BuildFile(data, size);
  if (std::string error = detail::PlaceFile(path, written, result.detached); !error.empty()) {
    violation(error);
    return result;
  }

  // Runs `open` as the reader the mode asks for: for a detached handle, one without write
  // permission.
  bool identity_restored = true;
  auto as_reader = [&](auto&& open) {
    detail::FilesAsNobody nobody(result.detached);
    auto opened = open();
    if (!nobody.Restore()) identity_restored = false;
    return opened;
  };
  if (result.detached) {
    const auto [may_read, may_write] = as_reader(
        [&] { return std::make_pair(detail::MayOpen(path, false), detail::MayOpen(path, true)); });
    if (!identity_restored || !may_read || may_write) {
      violation("detached mode cannot be set up: the reader ", may_read ? "may" : "may not",
                " read and ", may_write ? "may" : "may not", " write ", path,
                identity_restored ? "" : ", and this thread is not root again",
                " (every directory above the file must be searchable by uid 65534)");
      return result;
    }
  }

  Options options;
  options.create_if_missing = false;
  options.kind = FileKind::kAny;  // a cache's file (format version 2 or 3) too
  options.read_only = (mode & kModeReadOnly) != 0;
  options.verify_checksums = (mode & kModeNoVerifyChecksums) == 0;
  options.max_file_size = 64ull << 20;  // address space reserved by every Open: keep it cheap
  options.initial_index_slots = 64;     // a rebuilt index stays small
  options.lock_timeout = std::chrono::milliseconds(200);
  options.info_log = [](std::string_view) {};  // a line per rebuilt index: not for every input
  auto check_open_failure = [&](const absl::Status& status, const char* what) {
    const absl::StatusCode code = status.code();
    if (code != absl::StatusCode::kInvalidArgument &&
        code != absl::StatusCode::kFailedPrecondition && code != absl::StatusCode::kDataLoss &&
        code != absl::StatusCode::kResourceExhausted) {
      violation(what, " failed with an unexpected code: ", status.ToString());
    }
    if (!absl::StrContains(status.message(), path)) {
      violation(what, "'s error does not name the file: ", status.ToString());
    }
  };
  absl::StatusOr<std::unique_ptr<DB>> opened = as_reader([&] { return DB::Open(path, options); });
  result.open = opened.status();
  if (!identity_restored) {
    violation("this thread is not root again after a detached Open");
    return result;
  }
  if (!opened.ok()) {
    check_open_failure(opened.status(), "Open");
  } else {
    DB& db = **opened;
    std::vector<std::pair<std::string, std::string>> seen;
    [&] {
      std::vector<VerifyProblem> problems;
      result.verify = db.Verify(&problems);
      const bool verified = result.verify.ok();
      if (!verified) {
        if (result.verify.code() != absl::StatusCode::kDataLoss) {
          violation("Verify failed with an unexpected code: ", result.verify.ToString());
        } else if (!absl::StrContains(result.verify.message(), path)) {
          violation("Verify's error does not name the file: ", result.verify.ToString());
        }
        if (problems.empty()) violation("Verify failed but listed no problem");
      } else if (!problems.empty()) {
        violation("Verify passed but listed ", problems.size(), " problems");
      }

      // Point reads: fixed keys (some of the seeds' among them), bad sizes, and keys from the
      // input.
      static const std::string kTooLong(kMaxKeySize + 1, 'k');
      std::vector<std::string_view> keys = {
          "country/AD", "currency/EUR", "language/fra", "script/Latn", "k", "", kTooLong};
      const std::string_view input(reinterpret_cast<const char*>(data), size);
      if (size > 1) {
        keys.push_back(input.substr(1, std::min<size_t>(size - 1, 12)));
        keys.push_back(input.substr(size - std::min<size_t>(size - 1, 24)));
      }
      auto check_get = [&](std::string_view key, const absl::Status& status, const char* what) {
        const absl::StatusCode code = status.code();
        if (detail::BadKeySize(key) != (code == absl::StatusCode::kInvalidArgument) ||
            (code != absl::StatusCode::kOk && code != absl::StatusCode::kNotFound &&
             code != absl::StatusCode::kDataLoss && code != absl::StatusCode::kInvalidArgument)) {
          violation(what, " of a key of ", key.size(), " bytes: ", status.ToString());
        }
      };
      for (std::string_view key : keys) check_get(key, db.Get(key).status(), "DB::Get");
      {
        std::vector<absl::StatusOr<std::string>> values;
        if (absl::Status s = db.MultiGet(keys, &values); !s.ok()) {
          violation("DB::MultiGet: ", s.ToString());
        } else if (values.size() != keys.size()) {
          violation("DB::MultiGet gave ", values.size(), " values for ", keys.size(), " keys");
        } else {
          for (size_t i = 0; i < keys.size(); ++i) {
            check_get(keys[i], values[i].status(), "DB::MultiGet");
          }
        }
      }

      // A read transaction: every key ForEach yields, read back in the same snapshot.
      absl::StatusOr<ReadTxn> txn = db.BeginRead();
      if (!txn.ok()) {
        violation("BeginRead: ", txn.status().ToString());
        return;
      }
      absl::Status for_each = txn->ForEach([&](std::string_view key, std::string_view value) {
        seen.emplace_back(key, value);
        return true;
      });
      if (!for_each.ok() && (verified || for_each.code() != absl::StatusCode::kDataLoss)) {
        violation("ForEach", verified ? " of a verified file" : "", ": ", for_each.ToString());
      }
      for (const auto& [key, value] : seen) {
        absl::StatusOr<std::string_view> got = txn->Get(key);
        check_get(key, got.status(), "ReadTxn::Get");
        if (verified && (!got.ok() || *got != value)) {
          violation("verified file: ReadTxn::Get(", detail::Show(key), ") gives ",
                    detail::ShowResult(got), ", ForEach gave ", detail::Show(value));
        }
      }
      for (std::string_view key : keys) check_get(key, txn->Get(key).status(), "ReadTxn::Get");
      // MultiGet in the same snapshot answers exactly as Get: the fixed keys and the first of
      // those ForEach gave.
      std::vector<std::string_view> multi = keys;
      for (size_t i = 0; i < seen.size() && i < 16; ++i) multi.push_back(seen[i].first);
      std::vector<absl::StatusOr<std::string_view>> values(multi.size());
      txn->MultiGet(multi, absl::MakeSpan(values));
      for (size_t i = 0; i < multi.size(); ++i) {
        absl::StatusOr<std::string_view> one = txn->Get(multi[i]);
        if (values[i].status().code() != one.status().code() || (one.ok() && *values[i] != *one)) {
          violation("ReadTxn::MultiGet(", detail::Show(multi[i]), ") gives ",
                    detail::ShowResult(values[i]), ", ReadTxn::Get gives ",
                    detail::ShowResult(one));
        }
      }
      const uint64_t count = txn->Count();
      if (verified && count != seen.size()) {
        violation("verified file: ReadTxn::Count() is ", count, ", ForEach gave ", seen.size(),
                  " keys");
      }
    }();
    result.for_each_keys = seen.size();
    result.stats = db.GetStats();

    const bool verified = result.verify.ok();
    if (verified) {
      absl::flat_hash_set<std::string_view> distinct;
      for (const auto& kv : seen) distinct.insert(kv.first);
      if (distinct.size() != seen.size()) {
        violation("verified file: ForEach gave ", seen.size(), " keys, ", distinct.size(),
                  " distinct");
      }
      if (result.stats.keys != seen.size()) {
        violation("verified file: Stats::keys is ", result.stats.keys, ", ForEach gave ",
                  seen.size());
      }
      // DB::Get takes the optimistic path (no lock): it must agree with the snapshot; so must
      // DB::MultiGet.
      std::vector<std::string_view> some;
      for (size_t i = 0; i < seen.size() && i < 16; ++i) {
        some.push_back(seen[i].first);
        absl::StatusOr<std::string> got = db.Get(seen[i].first);
        if (!got.ok() || *got != seen[i].second) {
          violation("verified file: DB::Get(", detail::Show(seen[i].first), ") gives ",
                    detail::ShowResult(got), ", ForEach gave ", detail::Show(seen[i].second));
        }
      }
      std::vector<absl::StatusOr<std::string>> values;
      if (absl::Status s = db.MultiGet(some, &values); !s.ok() || values.size() != some.size()) {
        violation("verified file: DB::MultiGet of ", some.size(), " keys: ", s.ToString());
      } else {
        for (size_t i = 0; i < some.size(); ++i) {
          if (!values[i].ok() || *values[i] != seen[i].second) {
            violation("verified file: DB::MultiGet(", detail::Show(seen[i].first), ") gives ",
                      detail::ShowResult(values[i]), ", ForEach gave ",
                      detail::Show(seen[i].second));
          }
        }
      }
    }

    if ((mode & kModeWrite) && verified && !options.read_only) {
      // A file that passes Verify takes writes: overwrite one key, delete another, add one (last:
      // the file may hold that key too).
      result.write = [&]() -> absl::Status {
        absl::StatusOr<WriteTxn> txn = db.BeginWrite();
        if (!txn.ok()) return txn.status();
        if (!seen.empty()) {
          if (absl::Status s = txn->Put(seen[0].first, "overwritten"); !s.ok()) return s;
          if (absl::Status s = txn->Delete(seen.back().first); !s.ok()) return s;
        }
        if (absl::Status s = txn->Put("fuzz/new", "value"); !s.ok()) return s;
        return txn->Commit();
      }();
      if (result.write.ok()) {
        if (absl::Status again = db.Verify(); !again.ok()) {
          violation("Verify after a transaction on a verified file: ", again.ToString());
        }
        absl::StatusOr<std::string> got = db.Get("fuzz/new");
        if (!got.ok() || *got != "value") {
          violation("a key written to a verified file reads back as ", detail::ShowResult(got));
        }
      } else if (result.write.code() != absl::StatusCode::kResourceExhausted) {
        violation("a transaction on a verified file: ", result.write.ToString());
      }
    }

    if (collect) {
      result.contents.assign(seen.begin(), seen.end());
      std::sort(result.contents.begin(), result.contents.end());
    }
    opened->reset();  // its close is the handle's too: a read-only one writes nothing then either

    if (result.stats.is_cache) {
      // `mapkv stat` of a cache: its statistics come through a Cache handle.
      CacheOptions cache_options;
      cache_options.db = options;
      cache_options.capacity = options.max_file_size;  // an existing cache keeps its own
      absl::StatusOr<std::unique_ptr<Cache>> cache =
          as_reader([&] { return Cache::Open(path, cache_options); });
      result.cache = cache.status();
      if (!identity_restored) {
        violation("this thread is not root again after a detached Cache::Open");
        return result;
      }
      if (!cache.ok()) {
        check_open_failure(cache.status(), "Cache::Open");
      } else {
        (void)(*cache)->GetStats();
      }
    }
  }

  if (options.read_only) {
    const std::string now = detail::ReadWholeFile(path);
    if (std::string changes = detail::ReadOnlyChanges(written, now); !changes.empty()) {
      violation(result.detached ? "a detached" : "a read-only", " handle (Open ",
                result.open.ok() ? "succeeded" : "failed", ") changed the file: ", changes);
    }
  }
  return result;
}

}  // namespace mapkv::fuzz

#endif  // MAPKV_TESTS_FUZZ_OPEN_HARNESS_H_
