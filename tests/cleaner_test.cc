// The cleaner of format version 5 (src/cleaner.cc): after a commit that leaves the log past
// Options::compact_ratio times what it keeps (and past 1 MiB of garbage), the writer relocates the
// live records at the log's start (SharedState::head) to its end and moves head past them; the
// blocks below head (past the file's first 2 MiB) go back to the file system once a checkpoint
// holds the head, up to the start that the oldest open snapshot read (LockState::punch_fence).
//
// - a random workload against a model, with snapshots held across cleaning steps, and a reader
//   thread beside the cleaner and its give-backs;
// - a snapshot, of the writer's handle or of another one, reads its state while the log turns
//   over several times, and keeps its blocks from being given back until it ends;
// - after deleting 90% of the keys, the file's allocated blocks fall to what the cleaner keeps,
//   and a rebuild from the checkpointed head over the holes finds every key; offsets that reach
//   half of max_file_size start again in a compacted file; commits give space back by themselves,
//   up to the oldest snapshot's start; without holes, the cleaner stops;
// - a writer killed in a cleaning step or a give-back;
// - power cuts (tests/fault_file.h, with holes) after the head moved: the rebuild starts at the
//   head of the last checkpoint and recovers a commit boundary at or after it;
// - Verify() reports a live key's slot below the log's start;
// - a handle without write permission (no pin) gets "snapshot too old" once the blocks its
//   snapshot reads were given back;
// - Options::create_format_version.
//
// Every test is bounded by its work: loops that wait for the cleaner to move head count commits
// and fail past a bound that is several times what they need. The space figures use cleaner.cc's
// constants (below).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fault_file.h"
#include "gtest/gtest.h"
#include "mapkv/compact.h"
#include "mapkv/db.h"
#include "src/db_impl.h"
#include "src/env.h"
#include "src/format.h"
#include "src/platform/fs.h"
#include "src/platform/mapped_file.h"
#include "test_util.h"

namespace mapkv {
namespace {

using ::absl::StatusCode;
using ::mapkv::internal::HookPoint;
using ::mapkv::test::Rng;
using ::mapkv::test::TempDir;
using ::mapkv::test::Uniform;

using test::State;

constexpr uint64_t kMiB = 1 << 20;
// cleaner.cc's constants: the garbage a log keeps whatever the ratio; what a step walks; the
// file's first bytes, which stay allocated (with huge pages, a store into the header takes a whole
// huge page of blocks); the least a give-back by a commit gives back.
constexpr uint64_t kCleanSlack = 1 << 20;
constexpr uint64_t kCleanStep = 256 << 10;
constexpr uint64_t kKeptAllocated = 2 << 20;
constexpr uint64_t kGiveBackStep = 4 << 20;
constexpr uint64_t kPage = internal::kHeaderPageSize;
constexpr uint64_t kHeadOffset =
    internal::kSharedStateOffset + offsetof(internal::SharedState, head);
constexpr uint64_t kTailOffset =
    internal::kSharedStateOffset + offsetof(internal::SharedState, committed_tail);
constexpr uint64_t kBootIdOffset =
    internal::kSharedStateOffset + offsetof(internal::SharedState, boot_id);
constexpr uint64_t kCleanFlagOffset =
    internal::kSharedStateOffset + offsetof(internal::SharedState, clean);
static_assert(kHeadOffset == 1136, "format.h: SharedState::head");

constexpr double kRatio = 1.5;

// A small file and index that grow under the tests' commits, and a ratio that the cleaner keeps.
Options CleanerOptions() {
  Options options;
  options.compact_ratio = kRatio;
  options.initial_file_size = 1 << 20;
  options.initial_index_slots = 64;
  options.max_file_size = 1ull << 30;  // far from the half that starts a compaction (successor.cc)
  options.lock_timeout = std::chrono::seconds(10);
  return options;
}

std::string Key(uint64_t n) { return absl::StrFormat("key-%06d", n); }

// 100 bytes that carry their key and version.
std::string Value(std::string_view key, uint64_t version) {
  return test::StampedValue(key, version, 80);
}
// 1000 bytes: a few MiB of log in a few thousand puts.
std::string LargeValue(std::string_view key, uint64_t version) {
  return test::StampedValue(key, version, 980);
}

// The committed state's words of an open handle, read from its mapping.
const internal::SharedState& SharedStateOf(DB& db) {
  return *reinterpret_cast<const internal::SharedState*>(internal::ImplOf(db).file().base() +
                                                         internal::kSharedStateOffset);
}
uint64_t Head(DB& db) { return SharedStateOf(db).head.load(); }
uint64_t Tail(DB& db) { return internal::ImplOf(db).committed_tail(); }

// The punch fence once no give-back is half done: one raises it, holding the writer lock, before
// it looks at the pins, and lowers it again when a pin holds the blocks. Another thread (or
// handle) may be giving back: this takes the writer lock to read it.
uint64_t SettledPunchFence(DB& db) {
  absl::StatusOr<WriteTxn> txn = db.BeginWrite();
  EXPECT_OK(txn.status());
  if (!txn.ok()) return std::numeric_limits<uint64_t>::max();
  const uint64_t fence = internal::ImplOf(db).rwlock().punch_fence();
  txn->Abort();
  return fence;
}

uint64_t Allocated(const std::string& path) {
  absl::StatusOr<internal::FileInfo> info = internal::StatFile(path);
  EXPECT_OK(info.status());
  return info.ok() ? info->allocated : 0;
}
uint64_t SizeOnDisk(const std::string& path) {
  absl::StatusOr<internal::FileInfo> info = internal::StatFile(path);
  EXPECT_OK(info.status());
  return info.ok() ? info->size : 0;
}

// Whether the file system under `dir` gives a punched range's blocks back (ext4, XFS, tmpfs do).
bool PunchesHoles(const TempDir& dir) {
  internal::FileOpenOptions fo;
  fo.reserve = 4 * kMiB;
  const std::string path = dir.File("punch-probe");
  absl::StatusOr<std::unique_ptr<internal::MappedFile>> file = internal::MappedFile::Open(path, fo);
  if (!file.ok() || !(*file)->Grow(4 * kMiB).ok()) return false;
  for (uint64_t at = 0; at < 4 * kMiB; at += kPage) (*file)->base()[at] = 1;
  const uint64_t before = Allocated(path);
  const bool punched = (*file)->Punch(0, 3 * kMiB).ok() && Allocated(path) + 2 * kMiB <= before;
  file->reset();
  std::remove(path.c_str());
  return punched;
}

// Where PunchesHoles is false, a handle's cleaner stops at its first give-back
// (WithoutHolesTheCleanerStopsAtItsFirstGiveBack): the tests that need it to go on skip there.
constexpr char kNoHoles[] = "this file system gives no blocks back (fallocate PUNCH_HOLE)";

// What the cleaner keeps the log within after each commit: compact_ratio times what it keeps
// (the live records and the index table), and at least kCleanSlack of garbage, plus one step's
// copies and the commit that called for it; with the header, as Stats::log_bytes counts it.
uint64_t LogBound(const Stats& s) {
  const uint64_t index = s.index_capacity * sizeof(internal::Slot) + 128;
  const uint64_t kept = s.live_bytes + index;
  return internal::kHeaderSize +
         std::max(static_cast<uint64_t>(kRatio * static_cast<double>(kept)), kept + kCleanSlack) +
         kCleanStep;
}

// The first few differences between two states, for a failure message.
std::string Diff(const State& got, const State& want) {
  std::string out = absl::StrCat(got.size(), " keys, expected ", want.size(), ":");
  int shown = 0;
  for (const auto& [key, value] : want) {
    if (shown == 5) break;
    auto it = got.find(key);
    if (it == got.end()) {
      absl::StrAppend(&out, " missing ", key, ";");
      ++shown;
    } else if (it->second != value) {
      absl::StrAppend(&out, " ", key, " is ", test::Describe(it->second), ";");
      ++shown;
    }
  }
  for (const auto& [key, value] : got) {
    if (shown == 5) break;
    if (want.count(key) == 0) {
      absl::StrAppend(&out, " extra ", key, ";");
      ++shown;
    }
  }
  return out;
}

// Everything a read transaction's ForEach gives, each key once.
absl::StatusOr<State> Contents(const ReadTxn& txn) {
  State out;
  bool twice = false;
  absl::Status s = txn.ForEach([&](std::string_view key, std::string_view value) {
    twice |= !out.emplace(key, value).second;
    return true;
  });
  if (!s.ok()) return s;
  if (twice) return absl::InternalError("ForEach gave a key twice");
  return out;
}

// A read transaction reads exactly `want`: ForEach, Count, and Get of each of `keys` (those not in
// `want` NotFound).
void ExpectReads(const ReadTxn& txn, const State& want, const std::vector<std::string>& keys) {
  absl::StatusOr<State> got = Contents(txn);
  ASSERT_OK(got.status());
  EXPECT_TRUE(*got == want) << Diff(*got, want);
  EXPECT_EQ(txn.Count(), want.size());
  for (const std::string& key : keys) {
    auto it = want.find(key);
    if (it == want.end()) {
      EXPECT_STATUS(txn.Get(key), StatusCode::kNotFound) << key;
    } else {
      EXPECT_OK_AND_EQ(txn.Get(key), it->second) << key;
    }
  }
}

// The newest state reads exactly `want`: DB::Get of each of `keys`, and a new ReadTxn.
void ExpectCurrent(DB& db, const State& want, const std::vector<std::string>& keys) {
  for (const std::string& key : keys) {
    auto it = want.find(key);
    if (it == want.end()) {
      EXPECT_STATUS(db.Get(key), StatusCode::kNotFound) << key;
    } else {
      EXPECT_OK_AND_EQ(db.Get(key), it->second) << key;
    }
  }
  ASSERT_OK_AND_ASSIGN(ReadTxn txn, db.BeginRead());
  ASSERT_NO_FATAL_FAILURE(ExpectReads(txn, want, {}));
}

std::vector<std::string> KeysOf(const State& a, const State& b = {}) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : a) keys.push_back(key);
  for (const auto& [key, value] : b) {
    if (a.count(key) == 0) keys.push_back(key);
  }
  return keys;
}

// The lines a handle logs; the cleaner's failures say "the cleaner" (it failed, or could not give
// space back).
class Logged : public test::Logged {
 public:
  std::vector<std::string> CleanerLines() { return LinesWith("the cleaner"); }
};

// Puts `n` keys from `first`, version 0, in transactions of 500.
void Fill(DB& db, uint64_t first, uint64_t n, State* model) {
  for (uint64_t done = 0; done < n;) {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db.BeginWrite());
    for (uint64_t i = 0; i < 500 && done < n; ++i, ++done) {
      const std::string key = Key(first + done);
      ASSERT_OK(txn.Put(key, Value(key, 0)));
      (*model)[key] = Value(key, 0);
    }
    ASSERT_OK(txn.Commit());
  }
}

// Puts round robin over keys [0, n) (put i: Key(i % n), `value(key, i)`) from put `*next` on,
// until head is at least `head`; fails past `max_puts` puts.
void ChurnUntilHead(DB& db, uint64_t head, uint64_t n, uint64_t max_puts, uint64_t* next,
                    State* model,
                    const std::function<std::string(std::string_view, uint64_t)>& value = Value) {
  for (uint64_t puts = 0; Head(db) < head; ++puts, ++*next) {
    ASSERT_LT(puts, max_puts) << "head stays at " << Head(db) << ", short of " << head;
    const std::string key = Key(*next % n);
    const std::string v = value(key, *next);
    ASSERT_OK(db.Put(key, v));
    (*model)[key] = v;
  }
}

// The latest checkpoint record in a handle's mapping.
internal::CheckpointRecord LatestCheckpointOf(DB& db) {
  internal::CheckpointRecord latest{};
  for (uint64_t at : internal::kCheckpointOffset) {
    internal::CheckpointRecord c;
    std::memcpy(&c, internal::ImplOf(db).file().base() + at, sizeof(c));
    if (c.seq > latest.seq) latest = c;
  }
  return latest;
}

// ---- Files in between: the platform's or the simulated disk's, changed in one respect ----

// A MappedFile that forwards every call to another; a subclass changes one.
class ForwardingFile : public internal::MappedFile {
 public:
  explicit ForwardingFile(std::unique_ptr<internal::MappedFile> file) : file_(std::move(file)) {}

  const std::string& path() const override { return file_->path(); }
  char* base() const override { return file_->base(); }
  uint64_t mapped_size() const override { return file_->mapped_size(); }
  uint64_t covered() const override { return file_->covered(); }
  absl::Status Cover(uint64_t end) override { return file_->Cover(end); }
  absl::StatusOr<uint64_t> Size() override { return file_->Size(); }
  absl::Status Grow(uint64_t size) override { return file_->Grow(size); }
  absl::Status Flush(uint64_t offset, uint64_t length) override {
    return file_->Flush(offset, length);
  }
  absl::Status Sync() override { return file_->Sync(); }
  void StartFlush(uint64_t offset, uint64_t length) override { file_->StartFlush(offset, length); }
  absl::Status Zero(uint64_t offset, uint64_t length) override {
    return file_->Zero(offset, length);
  }
  absl::Status Punch(uint64_t offset, uint64_t length) override {
    return file_->Punch(offset, length);
  }
  void Retire(uint64_t keep) override { file_->Retire(keep); }
  void Prefault(uint64_t offset, uint64_t length) override { file_->Prefault(offset, length); }
  absl::StatusOr<bool> Lock(uint64_t byte, bool exclusive, bool wait) override {
    return file_->Lock(byte, exclusive, wait);
  }
  absl::Status Unlock(uint64_t byte) override { return file_->Unlock(byte); }
  absl::StatusOr<bool> IsLockedByOther(uint64_t byte) override {
    return file_->IsLockedByOther(byte);
  }
  absl::StatusOr<bool> StillNamedBy(const std::string& path) override {
    return file_->StillNamedBy(path);
  }
  absl::StatusOr<internal::FileInfo> Stat() override { return file_->Stat(); }
  absl::Status SetMode(uint32_t mode) override { return file_->SetMode(mode); }
  absl::Status SetOwner(uint32_t uid, uint32_t gid) override { return file_->SetOwner(uid, gid); }

 private:
  std::unique_ptr<internal::MappedFile> file_;
};

// Does not see the open byte that every writable handle holds.
class BlindToWriters final : public ForwardingFile {
 public:
  using ForwardingFile::ForwardingFile;
  absl::StatusOr<bool> IsLockedByOther(uint64_t byte) override {
    if (byte == internal::kOpenLockByte) return false;
    return ForwardingFile::IsLockedByOther(byte);
  }
};

// Gives blocks back as a file system with holes does: the whole pages of the range read as zeros
// at once, in every mapping, and on the disk from the next Sync() (or, at a power cut, maybe). For
// the simulated disk (tests/fault_file.h), which cannot punch: its Zero() does that.
class PunchByZeroing final : public ForwardingFile {
 public:
  using ForwardingFile::ForwardingFile;
  absl::Status Punch(uint64_t offset, uint64_t length) override {
    const uint64_t begin = (offset + kPage - 1) / kPage * kPage;
    const uint64_t end = (offset + length) / kPage * kPage;
    return end > begin ? Zero(begin, end - begin) : absl::OkStatus();
  }
};

// The platform's files as a user with read permission alone gets them (an open for writing is
// PermissionDenied), except that the read-only handle does not see the writers: the open protocol
// keeps a handle without write permission and writers apart (options.h, read_only), and this puts
// one beside a writer, as a writer that does not take part in the protocol would.
class ReadPermissionOnly : public internal::Env {
 public:
  absl::StatusOr<std::unique_ptr<internal::MappedFile>> OpenFile(
      const std::string& path, const internal::FileOpenOptions& options) override {
    if (!options.read_only) {
      return absl::PermissionDeniedError(absl::StrCat(path, ": no write permission (simulated)"));
    }
    absl::StatusOr<std::unique_ptr<internal::MappedFile>> file =
        internal::Env::Default().OpenFile(path, options);
    if (!file.ok()) return file.status();
    return std::unique_ptr<internal::MappedFile>(new BlindToWriters(*std::move(file)));
  }
};

// The simulated disk of `fs`, with holes (PunchByZeroing).
class SimulatedDiskWithHoles : public internal::Env {
 public:
  explicit SimulatedDiskWithHoles(test::FaultFileSystem& fs) : fs_(fs) {}
  absl::StatusOr<std::unique_ptr<internal::MappedFile>> OpenFile(
      const std::string& path, const internal::FileOpenOptions& options) override {
    absl::StatusOr<std::unique_ptr<internal::MappedFile>> file = disk().OpenFile(path, options);
    if (!file.ok()) return file.status();
    return std::unique_ptr<internal::MappedFile>(new PunchByZeroing(*std::move(file)));
  }
  std::string BootId() override { return disk().BootId(); }

 private:
  internal::Env& disk() { return fs_; }  // FaultFileSystem's calls are its interface's
  test::FaultFileSystem& fs_;
};

// ---- A random workload against a model ----

// Puts, deletes and multi-key transactions over 1000 keys, 20000 steps, with the cleaner turning
// the log over a few times. Every 2500 steps a checkpoint, then a snapshot held for the next 1000
// steps (across cleaning steps). Every 500 steps each key
// reads its model value, a new snapshot and the held one read exactly their states, and the log is
// within the ratio. At the end, and after a reopen, the same.
TEST(CleanerTest, MatchesAModelThroughRandomWritesAndSnapshots) {
  TempDir dir;
  if (!PunchesHoles(dir)) GTEST_SKIP() << kNoHoles;
  const std::string path = dir.File("db");
  Logged logged;
  Options options = CleanerOptions();
  options.info_log = logged.Sink();
  auto db = DB::Open(path, options);
  ASSERT_OK(db.status());
  constexpr uint64_t kKeys = 1000;
  constexpr int kSteps = 20000;
  Rng rng(20261207);
  State model;
  std::vector<std::string> all_keys;
  for (uint64_t k = 0; k < kKeys; ++k) all_keys.push_back(Key(k));
  std::optional<ReadTxn> held;
  State held_state;
  uint64_t held_head = 0;
  int windows_cleaned = 0;  // snapshots held while head moved
  uint64_t version = 0;

  auto check = [&](const std::string& when) {
    SCOPED_TRACE(when);
    ASSERT_NO_FATAL_FAILURE(ExpectCurrent(**db, model, all_keys));
    if (held) ASSERT_NO_FATAL_FAILURE(ExpectReads(*held, held_state, all_keys));
    const Stats s = (*db)->GetStats();
    EXPECT_EQ(s.keys, model.size());
    EXPECT_EQ(s.log_bytes, internal::kHeaderSize + Tail(**db) - Head(**db));
    EXPECT_LE(s.log_bytes, LogBound(s))
        << "live " << s.live_bytes << ", index slots " << s.index_capacity;
  };

  for (int step = 1; step <= kSteps; ++step) {
    const uint64_t pick = Uniform(rng, 0, 99);
    if (pick < 55) {
      const std::string key = Key(Uniform(rng, 0, kKeys - 1));
      const std::string value = Value(key, ++version);
      ASSERT_OK((*db)->Put(key, value));
      model[key] = value;
    } else if (pick < 70) {
      const std::string key = Key(Uniform(rng, 0, kKeys - 1));
      ASSERT_OK((*db)->Delete(key));
      model.erase(key);
    } else {
      ASSERT_OK_AND_ASSIGN(WriteTxn txn, (*db)->BeginWrite());
      const uint64_t n = Uniform(rng, 2, 8);
      State staged = model;
      for (uint64_t i = 0; i < n; ++i) {
        const std::string key = Key(Uniform(rng, 0, kKeys - 1));
        if (Uniform(rng, 0, 3) == 0) {
          ASSERT_OK(txn.Delete(key));
          staged.erase(key);
          EXPECT_STATUS(txn.Get(key), StatusCode::kNotFound);
        } else {
          const std::string value = Value(key, ++version);
          ASSERT_OK(txn.Put(key, value));
          staged[key] = value;
          EXPECT_OK_AND_EQ(txn.Get(key), value);
        }
      }
      ASSERT_OK(txn.Commit());
      model = std::move(staged);
    }
    if (step % 500 == 0) ASSERT_NO_FATAL_FAILURE(check(absl::StrCat("step ", step)));
    if (step % 2500 == 1000 && held) {
      windows_cleaned += Head(**db) > held_head;
      held.reset();
    }
    if (step % 2500 == 0) {
      ASSERT_OK((*db)->Checkpoint());
      ASSERT_OK_AND_ASSIGN(ReadTxn txn, (*db)->BeginRead());
      held.emplace(std::move(txn));
      held_state = model;
      held_head = Head(**db);
    }
  }
  ASSERT_OK((*db)->Verify());
  const Stats s = (*db)->GetStats();
  EXPECT_EQ(s.format_version, internal::kCleanFormatVersion);
  EXPECT_GT(s.bytes_relocated, 0u) << "the cleaner never ran";
  EXPECT_GT(s.write_amplification, 1.0);
  EXPECT_EQ(s.compactions, 0u) << "the cleaner copies no file";
  EXPECT_GT(Head(**db), 2 * LogBound(s)) << "the log turned over at least twice";
  EXPECT_GE(windows_cleaned, 4) << "of the 7 snapshots, few saw the cleaner run";
  EXPECT_TRUE(logged.CleanerLines().empty()) << logged.CleanerLines()[0];

  held.reset();
  db->reset();
  db = DB::Open(path, options);
  ASSERT_OK(db.status());
  ASSERT_NO_FATAL_FAILURE(check("reopened"));
  EXPECT_OK((*db)->Verify());
}

// ---- Snapshots while the log turns over ----

// The writer's handle, or another handle of the same file (with a process slot of its own), holds
// the snapshot.
class CleanerSnapshotTest : public ::testing::TestWithParam<bool> {};

// A snapshot of 2000 keys, then rounds that overwrite the even keys, delete every seventh and add
// new ones, while the odd keys stay (the cleaner relocates them again and again, each copy chained
// to the one before): until head passed the tail three times over. The snapshot reads exactly its
// state throughout; a checkpoint gives nothing back while it is open (the punch fence stays, the
// file keeps every block), as it began at the log's first record; once it ends, a checkpoint
// gives back everything from the file's first 2 MiB to head.
TEST_P(CleanerSnapshotTest, ASnapshotReadsItsStateWhileTheLogTurnsOverAndPinsItsBlocks) {
  const bool other_handle = GetParam();
  TempDir dir;
  const bool punches = PunchesHoles(dir);
  const std::string path = dir.File("db");
  Logged logged;
  Options options = CleanerOptions();
  options.info_log = logged.Sink();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  std::unique_ptr<DB> other;
  if (other_handle) {
    ASSERT_OK_AND_ASSIGN(other, DB::Open(path, options));
  }
  DB& reader = other_handle ? *other : *db;
  constexpr uint64_t kKeys = 2000;
  State model;
  ASSERT_NO_FATAL_FAILURE(Fill(*db, 0, kKeys, &model));
  const uint64_t fence_before = SettledPunchFence(*db);
  std::optional<ReadTxn> snapshot;
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, reader.BeginRead());
    snapshot.emplace(std::move(txn));
  }
  const State snapped = model;
  const uint64_t snapshot_tail = Tail(*db);
  EXPECT_EQ(Head(*db), internal::kHeaderSize) << "no cleaning before the snapshot";

  int turns = 0, rounds = 0;
  uint64_t mark = Tail(*db), next_key = kKeys;
  for (; turns < 3; ++rounds) {
    ASSERT_LT(rounds, 60) << "head passed the tail " << turns << " times; it is at " << Head(*db)
                          << ", the tail at " << Tail(*db);
    for (uint64_t k = 0; k < kKeys; k += 2) {
      const std::string key = Key(k);
      if (k % 7 == 0 && rounds % 2 == 0) {
        ASSERT_OK(db->Delete(key));
        model.erase(key);
      } else {
        ASSERT_OK(db->Put(key, Value(key, rounds + 1)));
        model[key] = Value(key, rounds + 1);
      }
    }
    for (int i = 0; i < 10; ++i, ++next_key) {
      const std::string key = Key(next_key);
      ASSERT_OK(db->Put(key, Value(key, rounds + 1)));
      model[key] = Value(key, rounds + 1);
    }
    if (Head(*db) > mark) {
      ++turns;
      mark = Tail(*db);
    }
  }
  ASSERT_GT(Head(*db), snapshot_tail);
  const std::vector<std::string> keys = KeysOf(snapped, model);
  {
    SCOPED_TRACE("the snapshot, after the log turned over");
    ASSERT_NO_FATAL_FAILURE(ExpectReads(*snapshot, snapped, keys));
  }
  ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*db, model, keys));
  EXPECT_OK(db->Verify());
  EXPECT_GT(db->GetStats().bytes_relocated, 0u);

  // Pinned: the checkpoint holds the head, but nothing goes back.
  ASSERT_OK(db->Checkpoint());
  EXPECT_EQ(SettledPunchFence(*db), fence_before) << "blocks a snapshot reads were given back";
  const uint64_t allocated_pinned = Allocated(path);
  const uint64_t size = SizeOnDisk(path);
  if (punches) EXPECT_GE(allocated_pinned, size) << "the file has holes while a snapshot is open";
  {
    SCOPED_TRACE("the snapshot, after a checkpoint");
    ASSERT_NO_FATAL_FAILURE(ExpectReads(*snapshot, snapped, keys));
  }
  EXPECT_EQ(reader.GetStats().snapshots, 1u);

  // Ended: the next checkpoint gives back everything up to head, whole pages.
  snapshot.reset();
  ASSERT_OK(db->Checkpoint());
  const uint64_t head = Head(*db);
  const uint64_t fence = SettledPunchFence(*db);
  EXPECT_EQ(fence, head / kPage * kPage);
  EXPECT_GT(fence, snapshot_tail);
  ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*db, model, keys));
  if (other_handle) ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*other, model, keys));
  EXPECT_OK(db->Verify());
  EXPECT_TRUE(logged.CleanerLines().empty()) << logged.CleanerLines()[0];
  if (!punches) GTEST_SKIP() << kNoHoles;
  const uint64_t allocated = Allocated(path);
  EXPECT_EQ(SizeOnDisk(path), size);
  EXPECT_LE(allocated + (fence - kKeptAllocated), allocated_pinned + 64 * 1024)
      << "given back: " << allocated_pinned - std::min(allocated, allocated_pinned)
      << " bytes of the " << fence - kKeptAllocated << " from " << kKeptAllocated
      << " to the fence";
}

INSTANTIATE_TEST_SUITE_P(Handles, CleanerSnapshotTest, ::testing::Bool(), [](const auto& info) {
  return std::string(info.param ? "AnotherHandle" : "SameHandle");
});

// ---- Readers beside the cleaner ----

// A writer overwrites 2000 keys round robin, each value stamped with the number of its put, for
// 15 rounds, with a checkpoint (a give-back) every 1000 puts; a reader thread beside it, until
// the writer is done, Gets keys (each found, its value the key's, never older than what this
// reader saw of it before) and reads whole snapshots, which must hold the state after one put:
// 2000 stamps in a row. A read of a record that was given back meanwhile reads zeros, which no
// check lets through.
TEST(CleanerTest, ReadersBesideTheCleanerSeeEveryKeyAndConsistentSnapshots) {
  TempDir dir;
  if (!PunchesHoles(dir)) GTEST_SKIP() << kNoHoles;
  const std::string path = dir.File("db");
  Logged logged;
  Options options = CleanerOptions();
  options.info_log = logged.Sink();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  constexpr uint64_t kKeys = 2000;
  constexpr uint64_t kPuts = 15 * kKeys;
  uint64_t puts = 0;
  for (; puts < kKeys; ++puts) ASSERT_OK(db->Put(Key(puts), Value(Key(puts), puts)));
  std::atomic<bool> done{false};
  std::atomic<uint64_t> gets{0}, snapshots{0};
  std::string reader_error;  // the reader's first failure, read after it joined
  std::thread reader([&] {
    std::vector<uint64_t> seen(kKeys, 0);
    Rng rng(99);
    auto fail = [&](std::string why) {
      if (reader_error.empty()) reader_error = std::move(why);
    };
    for (uint64_t i = 0; reader_error.empty() && (!done.load() || i < 2000); ++i) {
      const uint64_t k = Uniform(rng, 0, kKeys - 1);
      absl::StatusOr<std::string> v = db->Get(Key(k));
      uint64_t version = 0;
      if (!v.ok()) {
        fail(absl::StrCat("Get(", Key(k), "): ", v.status().ToString()));
      } else if (!test::CheckStampedValue(Key(k), *v, &version) || version % kKeys != k) {
        fail(absl::StrCat("Get(", Key(k), "): ", test::Describe(*v)));
      } else if (version < seen[k]) {
        fail(absl::StrCat("Get(", Key(k), "): put ", version, " after put ", seen[k]));
      } else {
        seen[k] = version;
      }
      gets.fetch_add(1, std::memory_order_relaxed);
      if (i % 64 != 0) continue;
      absl::StatusOr<ReadTxn> txn = db->BeginRead();
      if (!txn.ok()) {
        fail(absl::StrCat("BeginRead: ", txn.status().ToString()));
        continue;
      }
      std::vector<uint64_t> versions;
      absl::Status each = txn->ForEach([&](std::string_view key, std::string_view value) {
        uint64_t n = 0;
        if (!test::CheckStampedValue(key, value, &n)) {
          fail(absl::StrCat("ForEach: ", test::Describe(key), " = ", test::Describe(value)));
          return false;
        }
        versions.push_back(n);
        return true;
      });
      if (!each.ok()) fail(absl::StrCat("ForEach: ", each.ToString()));
      std::sort(versions.begin(), versions.end());
      if (versions.size() != kKeys || versions.back() - versions.front() != kKeys - 1) {
        fail(absl::StrCat("a snapshot of ", versions.size(), " keys holds puts ",
                          versions.empty() ? 0 : versions.front(), " to ",
                          versions.empty() ? 0 : versions.back()));
      }
      snapshots.fetch_add(1, std::memory_order_relaxed);
    }
  });
  absl::Status s;
  for (; puts < kPuts && s.ok(); ++puts) {
    const std::string key = Key(puts % kKeys);
    s = db->Put(key, Value(key, puts));
    if (s.ok() && puts % 1000 == 0) s = db->Checkpoint();
  }
  done.store(true);
  reader.join();
  ASSERT_OK(s);
  EXPECT_EQ(reader_error, "");
  EXPECT_GT(snapshots.load(), 0u);
  const Stats stats = db->GetStats();
  EXPECT_GT(stats.bytes_relocated, 0u);
  EXPECT_GT(Head(*db), 3 * kMiB) << "the cleaner moved head a few MiB";
  EXPECT_GT(SettledPunchFence(*db), internal::kHeaderSize) << "blocks were given back";
  EXPECT_OK(db->Verify());
  EXPECT_TRUE(logged.CleanerLines().empty()) << logged.CleanerLines()[0];
}

// ---- Growth ----

// A file of version 5 grows at its end for as long as it is in use: the room it allocates past
// the log's end stays at a few MiB (8 MiB, the 1 MiB kept for deletes and the 1 MiB alignment),
// where a version 4 file grows by a quarter of what it holds (20 MiB past a log of 80 MiB).
TEST(CleanerSpaceTest, AFileInUseGrowsAFewMiBAheadOfItsLog) {
  constexpr uint64_t kAheadAtMost = (8 + 1 + 1) * kMiB;
  for (const uint32_t version : {internal::kCleanFormatVersion, uint32_t{4}}) {
    SCOPED_TRACE(absl::StrCat("format version ", version));
    TempDir dir;
    const std::string path = dir.File("db");
    Options options = CleanerOptions();
    options.create_format_version = version;
    options.compact_ratio = 0;  // the log holds every version: 80 MiB of it
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
    const std::string value(64 << 10, 'v');
    uint64_t most_ahead = 0;
    for (int k = 0; k < 1280; ++k) {
      ASSERT_OK(db->Put(Key(k % 100), value));
      most_ahead = std::max(most_ahead, SizeOnDisk(path) - Tail(*db));
    }
    if (version == internal::kCleanFormatVersion) {
      EXPECT_LE(most_ahead, kAheadAtMost);
    } else {
      EXPECT_GT(most_ahead, kAheadAtMost) << "the test's log is too short to tell them apart";
    }
  }
}

// ---- Space after mass deletes ----

// 40000 keys, then 90% of them deleted, then small commits until the cleaner caught up, then a
// checkpoint: the index table is refitted to the keys left, the log is within the ratio, and the
// file's allocated blocks are its first 2 MiB, the log from head and the room past the tail, no
// more. Then the file is reopened as after a power cut (another boot, not closed cleanly): the
// index is rebuilt from the checkpoint's head, over the holes, and holds every key left.
TEST(CleanerSpaceTest, MassDeletesGiveTheSpaceBack) {
  TempDir dir;
  if (!PunchesHoles(dir)) GTEST_SKIP() << kNoHoles;
  const std::string path = dir.File("db");
  Logged logged;
  Options options = CleanerOptions();
  options.info_log = logged.Sink();
  constexpr uint64_t kKeys = 40000;
  State model, deleted;
  uint64_t allocated_full = 0, index_full = 0;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
    ASSERT_NO_FATAL_FAILURE(Fill(*db, 0, kKeys, &model));
    ASSERT_OK(db->Checkpoint());
    EXPECT_EQ(db->GetStats().bytes_relocated, 0u) << "nothing to clean yet";
    allocated_full = Allocated(path);
    index_full = db->GetStats().index_capacity;
    for (uint64_t k = 0; k < kKeys;) {
      ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
      for (int i = 0; i < 500; ++i, ++k) {
        if (k % 10 == 3) continue;
        ASSERT_OK(txn.Delete(Key(k)));
        deleted[Key(k)] = model[Key(k)];
        model.erase(Key(k));
      }
      ASSERT_OK(txn.Commit());
    }
    // Small commits: each calls for a step while the log is past the ratio.
    Stats s = db->GetStats();
    int commits = 0;
    for (auto it = model.begin(); s.log_bytes > LogBound(s) - kCleanStep; ++commits) {
      ASSERT_LT(commits, 2000) << "the log stays at " << s.log_bytes << " bytes";
      if (it == model.end()) it = model.begin();
      it->second = Value(it->first, 1);
      ASSERT_OK(db->Put(it->first, it->second));
      ++it;
      s = db->GetStats();
    }
    ASSERT_OK(db->Checkpoint());
    s = db->GetStats();
    EXPECT_EQ(s.keys, kKeys / 10);
    EXPECT_LE(s.log_bytes, LogBound(s));
    EXPECT_LT(s.index_capacity, index_full) << "the index was refitted to the keys left";
    EXPECT_EQ(s.compactions, 0u);
    EXPECT_EQ(SettledPunchFence(*db), Head(*db) / kPage * kPage);
    ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*db, model, KeysOf(model, deleted)));
    EXPECT_OK(db->Verify());
    {
      const uint64_t allocated = Allocated(path);
      const uint64_t beyond_tail = SizeOnDisk(path) - Tail(*db);
      // The first kKeptAllocated bytes (the header's), the log from head, the room past the
      // tail, and no more.
      EXPECT_LE(allocated, kKeptAllocated + (s.log_bytes - internal::kHeaderSize) + beyond_tail +
                               kPage + 64 * 1024);
      EXPECT_LT(allocated * 2, allocated_full);
      std::printf(
          "[ 90%% deleted ] allocated %llu bytes (%llu with every key), log %llu, "
          "live %llu\n",
          static_cast<unsigned long long>(allocated),
          static_cast<unsigned long long>(allocated_full),
          static_cast<unsigned long long>(s.log_bytes),
          static_cast<unsigned long long>(s.live_bytes));
    }
    // One more commit after the checkpoint, so that the close is not clean. The page cache holds
    // it, and the rebuild finds it.
    ASSERT_OK(db->Put(Key(3), "after the checkpoint"));
    model[Key(3)] = "after the checkpoint";
  }
  EXPECT_TRUE(logged.CleanerLines().empty()) << logged.CleanerLines()[0];
  test::WriteFileU64(path, kBootIdOffset, 0x1234 | 1);  // another boot
  test::WriteFileU64(path, kCleanFlagOffset, 0);        // not closed cleanly (and not rebuilt)
  const uint64_t checkpointed_head = [&] {
    uint64_t head = 0, seq = 0;
    for (uint64_t at : internal::kCheckpointOffset) {
      if (test::ReadFileU64(path, at) > seq) {
        seq = test::ReadFileU64(path, at);
        head = test::ReadFileU64(path, at + offsetof(internal::CheckpointRecord, head));
      }
    }
    return head;
  }();
  ASSERT_GT(checkpointed_head, internal::kHeaderSize);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  const Stats s = db->GetStats();
  EXPECT_TRUE(s.rebuilt_index);
  EXPECT_EQ(Head(*db), checkpointed_head) << "the rebuild starts at the checkpoint's head";
  ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*db, model, KeysOf(model, deleted)));
  EXPECT_OK(db->Verify());
}

// ---- Power cuts after the head moved ----

using test::History;
using test::Write;

enum class Cut { kRandom, kLoseAll, kKeepAll };

struct PowerCutMode {
  const char* name;
  Durability durability;
};

class CleanerPowerCutTest : public ::testing::TestWithParam<PowerCutMode> {};

// Cycles of a workload over 1500 keys of 1000 bytes on the simulated disk, with holes
// (PunchByZeroing: what is given back reads as zeros), each until the cleaner moved head 1 MiB and
// past the first 3 MiB, and checkpoints recorded it and gave back what lies below it, then one more
// checkpoint and more commits, until the head moved past that checkpoint's, and then the power
// goes: with a random part of what was not flushed on the disk, none of it, or all of it. After the
// reboot the index is rebuilt from the last checkpoint's head, Verify passes, and the state is a
// commit boundary at or after that checkpoint: exactly the checkpoint's when nothing else reached
// the disk, exactly the last commit's when everything did or under Durability::kSync. The next
// cycle runs over the recovered file.
//
// Every checkpoint is the workload's own, so that the history knows what is durable: a commit
// gives space back by itself once head is the give-back step (1 MiB at least, cleaner.cc) past
// the blocks given back, with a checkpoint of its own (DBImpl::MaybeGiveBack). The workload
// checkpoints whenever head is 512 KiB past them, so that none does (checked by the count of
// checkpoints).
TEST_P(CleanerPowerCutTest, RebuildsFromTheCheckpointedHead) {
  const PowerCutMode mode = GetParam();
  test::FaultFileSystem fs;
  fs.Seed(7);
  SimulatedDiskWithHoles disk(fs);
  Rng rng(7);
  const std::string path = absl::StrCat("/simulated/cleaner-", mode.name, ".mapkv");
  Logged logged;
  Options options = CleanerOptions();
  options.env = &disk;
  options.durability = mode.durability;
  options.max_file_size = 64 << 20;  // the simulation holds the whole reserve in memory
  options.info_log = logged.Sink();
  constexpr uint64_t kKeys = 1500;
  constexpr uint64_t kGiveBackAt = 512 << 10;
  const Cut cuts[] = {Cut::kRandom, Cut::kLoseAll, Cut::kKeepAll, Cut::kRandom};
  History history;
  State now;
  uint64_t version = 0;
  uint64_t checkpoint_head = 0;  // the head the last checkpoint holds
  for (int cycle = 0; cycle <= 4; ++cycle) {
    SCOPED_TRACE(absl::StrCat(mode.name, " cycle ", cycle));
    auto db = DB::Open(path, options);
    ASSERT_OK(db.status());
    if (cycle > 0) {
      const Cut cut = cuts[cycle - 1];
      const Stats stats = (*db)->GetStats();
      ASSERT_TRUE(stats.rebuilt_index);
      EXPECT_EQ(Head(**db), checkpoint_head) << "the rebuild starts at the checkpoint's head";
      ASSERT_OK((*db)->Verify());
      ASSERT_OK_AND_ASSIGN(ReadTxn txn, (*db)->BeginRead());
      ASSERT_OK_AND_ASSIGN(State recovered, Contents(txn));
      const int match = history.Match(recovered);
      ASSERT_GE(match, 0) << "the recovered state (" << recovered.size()
                          << " keys) is no commit boundary at or after the last checkpoint ("
                          << history.floor.size() << " keys, then " << history.commits.size()
                          << " commits)";
      const int last = static_cast<int>(history.commits.size());
      if (mode.durability == Durability::kSync || cut == Cut::kKeepAll) {
        EXPECT_EQ(match, last) << "every commit made was on the disk";
      } else if (cut == Cut::kLoseAll) {
        EXPECT_EQ(match, 0) << "nothing after the checkpoint was on the disk";
      }
      for (const auto& [key, value] : recovered) {
        EXPECT_OK_AND_EQ((*db)->Get(key), value) << key;
      }
      now = std::move(recovered);
      history.Durable(now);
    }
    if (cycle == 4) break;
    // Where the rebuild (or the creation) left it: the fence is reset, and head may be far past it.
    ASSERT_OK((*db)->Checkpoint());
    const uint64_t checkpoints_at_open = (*db)->GetStats().checkpoints;
    uint64_t checkpoints = 0;
    const uint64_t head_at_open = Head(**db);
    auto fence = [&] {
      return std::max(internal::ImplOf(**db).rwlock().punch_fence(), internal::kHeaderSize);
    };  // the punch fence, or the log's first offset while nothing was given back
    auto commit = [&]() -> absl::Status {
      std::vector<Write> writes;
      const uint64_t pick = Uniform(rng, 0, 99);
      const uint64_t n = pick < 75 ? 1 : Uniform(rng, 2, 6);
      for (uint64_t i = 0; i < n; ++i) {
        const std::string key = Key(Uniform(rng, 0, kKeys - 1));
        if (Uniform(rng, 0, 4) == 0) {
          writes.emplace_back(key, std::nullopt);
        } else {
          writes.emplace_back(key, LargeValue(key, ++version));
        }
      }
      if (writes.size() == 1) {
        const auto& [key, value] = writes[0];
        if (absl::Status s = value ? (*db)->Put(key, *value) : (*db)->Delete(key); !s.ok()) {
          return s;
        }
      } else {
        absl::StatusOr<WriteTxn> txn = (*db)->BeginWrite();
        if (!txn.ok()) return txn.status();
        for (const auto& [key, value] : writes) {
          if (absl::Status s = value ? txn->Put(key, *value) : txn->Delete(key); !s.ok()) {
            return s;
          }
        }
        if (absl::Status s = txn->Commit(); !s.ok()) return s;
      }
      test::Apply(writes, &now);
      history.commits.push_back(std::move(writes));
      if (mode.durability == Durability::kSync) history.Durable(now);
      return absl::OkStatus();
    };
    auto checkpoint = [&]() -> absl::Status {
      if (absl::Status s = (*db)->Checkpoint(); !s.ok()) return s;
      ++checkpoints;
      history.Durable(now);
      checkpoint_head = Head(**db);
      return absl::OkStatus();
    };

    // Until the cleaner moved head 1 MiB and past the first 3 MiB, checkpointed on the way.
    const uint64_t target = std::max(head_at_open + kMiB, kKeptAllocated + kMiB);
    for (int ops = 0; Head(**db) < target; ++ops) {
      ASSERT_LT(ops, 60000) << "head moved from " << head_at_open << " to " << Head(**db);
      ASSERT_OK(commit());
      if (Head(**db) - fence() >= kGiveBackAt) ASSERT_OK(checkpoint());
    }
    ASSERT_OK(checkpoint());
    ASSERT_GE(checkpoints, 3u);
    const uint64_t punched = internal::ImplOf(**db).rwlock().punch_fence();
    EXPECT_EQ(punched, checkpoint_head / kPage * kPage);
    const char* base = internal::ImplOf(**db).file().base();
    EXPECT_EQ(static_cast<uint64_t>(std::count(base + kKeptAllocated, base + punched, '\0')),
              punched - kKeptAllocated)
        << "what was given back reads as zeros";
    // More commits, until the cleaner moved head past the checkpoint's.
    for (int ops = 0; ops < 50 || Head(**db) == checkpoint_head; ++ops) {
      ASSERT_LT(ops, 40000) << "head stays at " << checkpoint_head;
      ASSERT_OK(commit());
      ASSERT_LT(Head(**db) - fence(), kGiveBackStep) << "a commit would give space back";
    }
    ASSERT_EQ((*db)->GetStats().checkpoints, checkpoints_at_open + checkpoints)
        << "a commit gave space back with a checkpoint of its own";
    switch (cuts[cycle]) {
      case Cut::kRandom:
        fs.PowerCut();
        break;
      case Cut::kLoseAll:
        fs.PowerCutLosing(0, std::numeric_limits<uint64_t>::max());
        break;
      case Cut::kKeepAll:
        fs.PowerCutLosing(0, 0);
        break;
    }
    db->reset();
    fs.Reboot();
  }
  EXPECT_TRUE(logged.CleanerLines().empty()) << logged.CleanerLines()[0];
}

INSTANTIATE_TEST_SUITE_P(Modes, CleanerPowerCutTest,
                         ::testing::Values(PowerCutMode{"none", Durability::kNone},
                                           PowerCutMode{"sync", Durability::kSync}),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- A writer killed in the cleaner ----

// The child's stop: the `stop_after`-th time it reaches `stop_point` it writes the number of the
// put in progress on `stop_pipe` and waits to be killed.
const test::ChildPipe* stop_pipe = nullptr;
HookPoint stop_point = HookPoint::kCleaning;
int stop_after = 1;
uint64_t put_in_progress = 0;

class StopAt : public internal::Env {
 public:
  void AtPoint(HookPoint point) override {
    if (stop_pipe == nullptr || point != stop_point || --stop_after > 0) return;
    (void)stop_pipe->WriteU64(put_in_progress);
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
};

// Put number i writes Key(i % 2000) with Value(key, i).
constexpr uint64_t kKilledKeys = 2000;
State StateAfterPut(uint64_t last) {
  State state;
  for (uint64_t i = last + 1 > kKilledKeys ? last + 1 - kKilledKeys : 0; i <= last; ++i) {
    state[Key(i % kKilledKeys)] = Value(Key(i % kKilledKeys), i);
  }
  return state;
}

// Opens the database and puts, with a checkpoint every 5000 puts, until it stops at the hook
// point (a step of the cleaner, after the commit of the put that called for it, or a give-back,
// in a checkpoint). Arguments: path, the HookPoint's number, how many times it passes the point
// before it stops there, the write end of `stop`.
MAPKV_CHILD(StoppedInTheCleanerChild) {
  const std::string& path = args.at(0);
  const int point = args.Int<int>(1);
  CHILD_CHECK(point == static_cast<int>(HookPoint::kCleaning) ||
                  point == static_cast<int>(HookPoint::kGivingBack),
              "not a point of the cleaner: ", point);
  stop_after = args.Int<int>(2);
  test::ChildPipe stop = args.PipeEnd(3);
  static StopAt env;
  Options options = CleanerOptions();
  options.env = &env;
  auto db = DB::Open(path, options);
  CHILD_CHECK_OK(db.status());
  stop_pipe = &stop;
  stop_point = static_cast<HookPoint>(point);
  for (put_in_progress = 0; put_in_progress < 400000; ++put_in_progress) {
    const std::string key = Key(put_in_progress % kKilledKeys);
    CHILD_CHECK_OK((*db)->Put(key, Value(key, put_in_progress)));
    if (put_in_progress % 5000 == 4999) CHILD_CHECK_OK((*db)->Checkpoint());
  }
  CHILD_CHECK(false, "the cleaner never reached the point");
  return 0;
}

// A writer killed half-way through its tenth cleaning step (its copies written, not published)
// or about to give blocks back (its checkpoint written): the next opener finds the state after
// the last put, Verify passes, and the cleaner goes on from there.
TEST(CleanerKillTest, AWriterKilledInTheCleanerLeavesTheLastCommit) {
  for (HookPoint point : {HookPoint::kCleaning, HookPoint::kGivingBack}) {
    const bool cleaning = point == HookPoint::kCleaning;
    SCOPED_TRACE(cleaning ? "killed cleaning" : "killed giving back");
    TempDir dir;
    if (!PunchesHoles(dir)) GTEST_SKIP() << kNoHoles;
    const std::string path = dir.File("db");
    test::Pipe stop;
    const int pid =
        test::StartChild("StoppedInTheCleanerChild",
                         {path, static_cast<int>(point), cleaning ? 10 : 1, stop.WriteEndArg()});
    stop.CloseWrite();
    std::string got;  // until the child stops there, or ends (failing); a minute against a hang
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    while (got.size() < 8 && std::chrono::steady_clock::now() < deadline) {
      if (!stop.ReadUntil(std::chrono::steady_clock::now() + std::chrono::milliseconds(20), &got)) {
        break;
      }
    }
    const int status = got.size() >= 8 ? test::KillChild(pid) : test::WaitChild(pid);
    ASSERT_EQ(got.size(), 8u) << "the child did not stop: " << test::ExitStatusToString(status);
    EXPECT_EQ(status, test::kKilledStatus) << test::ExitStatusToString(status);
    const uint64_t last = test::Pipe::DecodeU64s(got)[0];
    State model = StateAfterPut(last);

    Logged logged;
    Options options = CleanerOptions();
    options.info_log = logged.Sink();
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
    const uint64_t head = Head(*db);
    ASSERT_GT(head, internal::kHeaderSize) << "the cleaner ran before";
    EXPECT_OK(db->Verify());
    ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*db, model, KeysOf(model)));
    for (uint64_t i = last + 1; i <= last + 3 * kKilledKeys; ++i) {
      const std::string key = Key(i % kKilledKeys);
      ASSERT_OK(db->Put(key, Value(key, i)));
    }
    model = StateAfterPut(last + 3 * kKilledKeys);
    EXPECT_GT(Head(*db), head) << "the cleaner went on";
    ASSERT_OK(db->Checkpoint());
    // The first opener reset the fence; the checkpoint gives back from the first 2 MiB on.
    const uint64_t page = Head(*db) / kPage * kPage;
    EXPECT_EQ(SettledPunchFence(*db), page > kKeptAllocated ? page : 0);
    ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*db, model, KeysOf(model)));
    EXPECT_OK(db->Verify());
    EXPECT_TRUE(logged.CleanerLines().empty()) << logged.CleanerLines()[0];
  }
}

// ---- Verify ----

// A database where the cleaner ran verifies; with its head raised to the committed tail (a batch
// boundary past every record), every live key's slot points below the log's start, and Verify
// says so.
TEST(CleanerVerifyTest, ReportsALiveSlotBelowTheLogsStart) {
  TempDir dir;
  const std::string path = dir.File("db");
  const Options options = CleanerOptions();
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
    State model;
    ASSERT_NO_FATAL_FAILURE(Fill(*db, 0, 2000, &model));
    for (int round = 1; db->GetStats().bytes_relocated == 0; ++round) {
      ASSERT_LT(round, 20) << "the cleaner never ran";
      for (uint64_t k = 0; k < 2000; k += 2) ASSERT_OK(db->Put(Key(k), Value(Key(k), round)));
    }
    ASSERT_GT(Head(*db), internal::kHeaderSize);
    ASSERT_OK(db->Checkpoint());  // the last thing: the close is clean
  }
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
    std::vector<VerifyProblem> problems;
    EXPECT_OK(db->Verify(&problems));
    EXPECT_TRUE(problems.empty());
  }
  const uint64_t head = test::ReadFileU64(path, kHeadOffset);
  const uint64_t tail = test::ReadFileU64(path, kTailOffset);
  ASSERT_GT(head, internal::kHeaderSize);
  ASSERT_LT(head, tail);
  test::WriteFileU64(path, kHeadOffset, tail);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  ASSERT_EQ(Head(*db), tail);
  std::vector<VerifyProblem> problems;
  const absl::Status s = db->Verify(&problems);
  EXPECT_STATUS(s, StatusCode::kDataLoss);
  int below = 0;
  for (const VerifyProblem& p : problems) {
    if (absl::StrContains(p.detail, "below the log's start")) {
      ++below;
      EXPECT_EQ(p.kind, "index") << p.detail;
    }
  }
  EXPECT_EQ(below, 2000) << "one problem per live key; " << problems.size() << " problems, the "
                         << "first: " << (problems.empty() ? "" : problems[0].detail);
}

// ---- A handle without write permission ----

// A snapshot of a handle without write permission, which publishes no pin: it reads its state
// while the cleaner moves head past where it began (the blocks are still there), and gets
// FailedPrecondition "snapshot too old" on every read once a checkpoint gave them back. A new
// snapshot of that handle, and its Gets, read the newest state.
TEST(CleanerDetachedTest, ASnapshotWithoutAPinIsTooOldOnceItsBlocksGoBack) {
  TempDir dir;
  if (!PunchesHoles(dir)) GTEST_SKIP() << kNoHoles;
  const std::string path = dir.File("db");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, CleanerOptions()));
  constexpr uint64_t kKeys = 2000;
  State model;
  ASSERT_NO_FATAL_FAILURE(Fill(*db, 0, kKeys, &model));
  uint64_t next = 0;
  ASSERT_NO_FATAL_FAILURE(ChurnUntilHead(*db, kKeptAllocated + kMiB, kKeys, 100000, &next, &model));
  ASSERT_OK(db->Checkpoint());  // gives back from kKeptAllocated to head
  const uint64_t fence = SettledPunchFence(*db);
  ASSERT_EQ(fence, Head(*db) / kPage * kPage);

  ReadPermissionOnly env;
  Options read_only = CleanerOptions();
  read_only.read_only = true;
  read_only.env = &env;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> reader, DB::Open(path, read_only));
  ASSERT_FALSE(internal::ImplOf(*reader).has_slot()) << "not a handle without write permission";
  std::optional<ReadTxn> snapshot;
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, reader->BeginRead());
    snapshot.emplace(std::move(txn));
  }
  const State snapped = model;
  const uint64_t snapshot_head = Head(*db);

  // Cleaning steps: head moves, but not as far as a give-back by a commit (the give-back step
  // past the fence).
  ASSERT_NO_FATAL_FAILURE(
      ChurnUntilHead(*db, snapshot_head + 2 * kCleanStep, kKeys, 20000, &next, &model));
  ASSERT_LT(Head(*db), fence + kGiveBackStep);
  EXPECT_EQ(SettledPunchFence(*db), fence);
  const std::vector<std::string> keys = KeysOf(snapped);
  {
    SCOPED_TRACE("head moved, nothing more given back");
    ASSERT_NO_FATAL_FAILURE(ExpectReads(*snapshot, snapped, keys));
  }

  ASSERT_OK(db->Checkpoint());
  ASSERT_GT(SettledPunchFence(*db), snapshot_head);
  auto too_old = [](const absl::Status& s) {
    return s.code() == StatusCode::kFailedPrecondition &&
           absl::StrContains(s.message(), "snapshot too old");
  };
  for (const std::string& key : {Key(0), Key(1), Key(kKeys - 1)}) {
    const absl::Status s = snapshot->Get(key).status();
    EXPECT_TRUE(too_old(s)) << key << ": " << s;
  }
  const absl::Status each =
      snapshot->ForEach([](std::string_view, std::string_view) { return true; });
  EXPECT_TRUE(too_old(each)) << each;
  const std::string k0 = Key(0), k1 = Key(1);
  const std::vector<std::string_view> views = {k0, k1};
  std::vector<absl::StatusOr<std::string_view>> values(views.size());
  snapshot->MultiGet(views, absl::MakeSpan(values));
  for (const auto& v : values) EXPECT_TRUE(too_old(v.status())) << v.status();
  snapshot.reset();

  ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*reader, model, keys));
  ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*db, model, keys));
}

// ---- The limit of the file's offsets ----

// Log offsets only grow (the file is sparse below head): with an 8 MiB max_file_size, a database
// of 300 KB live that is overwritten 30 times reaches the limit's half several times, and each
// time an online compaction (compact.h) moves it to a new file of format version 5, from offset
// 64 KiB again, while the commits go on (paced by the compaction): no commit fails for space.
TEST(CleanerSpaceTest, OffsetsThatReachHalfTheLimitStartAgainInACompactedFile) {
  if (internal::ReplaceFailsWhileMapped()) {
    GTEST_SKIP() << "this OS cannot rename over a file that a process has mapped: no online "
                    "compaction";
  }
  TempDir dir;
  if (!PunchesHoles(dir)) GTEST_SKIP() << kNoHoles;
  const std::string path = dir.File("db");
  Logged logged;
  Options options = CleanerOptions();
  options.max_file_size = 8 << 20;
  options.info_log = logged.Sink();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  State model;
  ASSERT_NO_FATAL_FAILURE(Fill(*db, 0, 2000, &model));
  // The compaction runs on a thread of its own, so where in the puts the tail falls back
  // depends on the machine: the puts go on until it has, at least once. Each put would fail at
  // max_file_size if no compaction ever came.
  uint64_t highest_tail = 0;
  uint64_t fallbacks = 0;
  for (uint64_t puts = 0; puts < 60000 || fallbacks == 0; ++puts) {
    ASSERT_LT(puts, 1000000u) << "the compacted file's log never started again: the tail is at "
                              << Tail(*db);
    const std::string key = Key(puts % 2000);
    const uint64_t before = Tail(*db);
    ASSERT_OK(db->Put(key, Value(key, puts))) << "put " << puts;
    model[key] = Value(key, puts);
    if (Tail(*db) < before) ++fallbacks;
    highest_tail = std::max(highest_tail, Tail(*db));
  }
  const Stats s = db->GetStats();
  EXPECT_GE(s.compactions, 1u);
  EXPECT_EQ(s.format_version, internal::kCleanFormatVersion);
  EXPECT_LE(highest_tail, options.max_file_size);
  ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*db, model, KeysOf(model)));
  EXPECT_OK(db->Verify());
  EXPECT_TRUE(logged.CleanerLines().empty()) << logged.CleanerLines()[0];
}

// ---- Give-backs by commits ----

// Without a checkpoint of its own, a commit gives space back once head is the give-back step past
// what was given back (DBImpl::MaybeGiveBack: a checkpoint that holds the head, then the punch).
// A snapshot holds back the log from the start it read on, and no more: while it is open, the
// commits try no give-back (none it would block, at every commit), a checkpoint gives back up to
// its start, and once it ends, up to head.
TEST(CleanerSpaceTest, CommitsGiveSpaceBackUpToTheOldestSnapshotsStart) {
  TempDir dir;
  if (!PunchesHoles(dir)) GTEST_SKIP() << kNoHoles;
  const std::string path = dir.File("db");
  Logged logged;
  Options options = CleanerOptions();
  options.info_log = logged.Sink();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  constexpr uint64_t kKeys = 2000;
  State model;
  uint64_t next = 0;
  const uint64_t checkpoints = db->GetStats().checkpoints;
  for (int puts = 0; db->GetStats().checkpoints == checkpoints; ++puts, ++next) {
    ASSERT_LT(puts, 40000) << "no give-back; head is at " << Head(*db);
    const std::string key = Key(next % kKeys);
    ASSERT_OK(db->Put(key, LargeValue(key, next)));
    model[key] = LargeValue(key, next);
  }
  const internal::CheckpointRecord given = LatestCheckpointOf(*db);
  EXPECT_GT(given.head, kKeptAllocated + kGiveBackStep);
  uint64_t fence = SettledPunchFence(*db);
  EXPECT_EQ(fence, given.head / kPage * kPage);
  EXPECT_LE(Allocated(path), kKeptAllocated + (SizeOnDisk(path) - fence) + 64 * 1024);

  // A snapshot that began 1 MiB past what was given back.
  ASSERT_NO_FATAL_FAILURE(
      ChurnUntilHead(*db, fence + kMiB, kKeys, 10000, &next, &model, LargeValue));
  std::optional<ReadTxn> snapshot;
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    snapshot.emplace(std::move(txn));
  }
  const State snapped = model;
  const uint64_t snapshot_head = Head(*db);
  const uint64_t checkpoints_pinned = db->GetStats().checkpoints;
  ASSERT_NO_FATAL_FAILURE(
      ChurnUntilHead(*db, fence + 3 * kGiveBackStep, kKeys, 40000, &next, &model, LargeValue));
  EXPECT_EQ(db->GetStats().checkpoints, checkpoints_pinned)
      << "commits tried give-backs that the snapshot blocks";
  EXPECT_EQ(SettledPunchFence(*db), fence);
  ASSERT_OK(db->Checkpoint());
  EXPECT_EQ(SettledPunchFence(*db), snapshot_head / kPage * kPage)
      << "given back up to the snapshot's start, head is at " << Head(*db);
  ASSERT_NO_FATAL_FAILURE(ExpectReads(*snapshot, snapped, KeysOf(snapped)));
  snapshot.reset();
  ASSERT_OK(db->Checkpoint());
  fence = SettledPunchFence(*db);
  EXPECT_EQ(fence, Head(*db) / kPage * kPage);
  EXPECT_LE(Allocated(path), kKeptAllocated + (SizeOnDisk(path) - fence) + 64 * 1024);
  ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*db, model, KeysOf(model)));
  EXPECT_OK(db->Verify());
  EXPECT_TRUE(logged.CleanerLines().empty()) << logged.CleanerLines()[0];
}

// Opens the database at args[0], begins a read transaction, writes a byte on the pipe end args[1]
// and holds the transaction until killed.
MAPKV_CHILD(SnapshotHoldingChild) {
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(args.at(0), CleanerOptions());
  CHILD_CHECK_OK(db);
  absl::StatusOr<ReadTxn> txn = (*db)->BeginRead();
  CHILD_CHECK_OK(txn);
  test::ChildPipe began = args.PipeEnd(1);
  CHILD_CHECK(began.Write("s"));
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

// A snapshot of a process that is killed holds nothing back: while the process lives, commits
// give the log back up to its start and no further; once it is dead, they find so (asking within
// a give-back step of head's progress) and give back past it, without a checkpoint asked for.
TEST(CleanerSpaceTest, AKilledProcesssSnapshotHoldsNothingBack) {
  TempDir dir;
  if (!PunchesHoles(dir)) GTEST_SKIP() << kNoHoles;
  const std::string path = dir.File("db");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, CleanerOptions()));
  constexpr uint64_t kKeys = 2000;
  State model;
  uint64_t next = 0;
  ASSERT_NO_FATAL_FAILURE(
      ChurnUntilHead(*db, kKeptAllocated + kMiB, kKeys, 20000, &next, &model, LargeValue));
  test::Pipe began;
  const int holder = test::StartChild("SnapshotHoldingChild", {path, began.WriteEndArg()});
  began.CloseWrite();
  ASSERT_TRUE(began.WaitByte()) << "the holder died before its snapshot";
  const uint64_t pinned = Head(*db) / kPage * kPage;
  ASSERT_NO_FATAL_FAILURE(
      ChurnUntilHead(*db, pinned + 3 * kGiveBackStep, kKeys, 40000, &next, &model, LargeValue));
  EXPECT_LE(SettledPunchFence(*db), pinned) << "given back past a live snapshot's start";
  EXPECT_EQ(test::KillChild(holder), test::kKilledStatus);
  const uint64_t killed_at = Head(*db);
  for (uint64_t puts = 0; SettledPunchFence(*db) <= pinned; ++puts, ++next) {
    ASSERT_LT(puts, 40000u) << "the dead process's snapshot still holds the log back; head is "
                            << Head(*db) - killed_at << " bytes past where it was at the kill";
    const std::string key = Key(next % kKeys);
    ASSERT_OK(db->Put(key, LargeValue(key, next)));
    model[key] = LargeValue(key, next);
  }
  EXPECT_LE(Head(*db) - killed_at, 3 * kGiveBackStep) << "found dead late";
  ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*db, model, KeysOf(model)));
  EXPECT_OK(db->Verify());
}

// A long snapshot pauses cleaning: head goes on to kPinnedCleanAhead past the snapshot's start
// and stops there while commits go on (what it would walk past goes back only once the snapshot
// ends); once the snapshot ends, or its process is killed, cleaning goes on and the log comes
// back to its bound. The snapshot reads its state throughout.
class CleanerPauseTest : public ::testing::TestWithParam<bool> {};

TEST_P(CleanerPauseTest, ALongSnapshotPausesCleaningUntilItEnds) {
  const bool killed = GetParam();
  TempDir dir;
  if (!PunchesHoles(dir)) GTEST_SKIP() << kNoHoles;
  const std::string path = dir.File("db");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, CleanerOptions()));
  constexpr uint64_t kKeys = 2000;
  constexpr uint64_t kAhead = 16 << 20;  // cleaner.cc's kPinnedCleanAhead
  State model;
  uint64_t next = 0;
  ASSERT_NO_FATAL_FAILURE(
      ChurnUntilHead(*db, kKeptAllocated + kMiB, kKeys, 20000, &next, &model, LargeValue));
  std::unique_ptr<DB> reader;
  std::optional<ReadTxn> snapshot;
  test::Pipe began;
  int holder = -1;
  if (killed) {
    holder = test::StartChild("SnapshotHoldingChild", {path, began.WriteEndArg()});
    began.CloseWrite();
    ASSERT_TRUE(began.WaitByte()) << "the holder died before its snapshot";
  } else {
    ASSERT_OK_AND_ASSIGN(reader, DB::Open(path, CleanerOptions()));
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, reader->BeginRead());
    snapshot.emplace(std::move(txn));
  }
  const State snapped = model;
  const uint64_t pinned = Head(*db);
  auto put = [&] {
    const std::string key = Key(next % kKeys);
    ASSERT_OK(db->Put(key, LargeValue(key, next)));
    model[key] = LargeValue(key, next);
    ++next;
  };
  // Commits of three times kAhead: cleaning stops a step past kAhead.
  const uint64_t from = Tail(*db);
  for (uint64_t puts = 0; Tail(*db) < from + 3 * kAhead; ++puts) {
    ASSERT_LT(puts, 100000u);
    ASSERT_NO_FATAL_FAILURE(put());
  }
  EXPECT_GE(Head(*db), pinned + kAhead) << "cleaning stopped before its bound";
  EXPECT_LE(Head(*db), pinned + kAhead + kMiB) << "cleaning went on past the snapshot";
  if (!killed) {
    ASSERT_NO_FATAL_FAILURE(ExpectReads(*snapshot, snapped, KeysOf(snapped)));
    snapshot.reset();
  } else {
    EXPECT_EQ(test::KillChild(holder), test::kKilledStatus);
  }
  // Cleaning goes on: the log comes back to its bound (a third of what the pause let it grow),
  // and what it walked past goes back.
  const uint64_t paused_log = Tail(*db) - Head(*db);
  for (uint64_t puts = 0; Tail(*db) - Head(*db) > paused_log / 3; ++puts) {
    ASSERT_LT(puts, 100000u) << "cleaning did not go on; head is " << Head(*db) - pinned
                             << " bytes past the snapshot's start";
    ASSERT_NO_FATAL_FAILURE(put());
  }
  ASSERT_OK(db->Checkpoint());
  EXPECT_GT(SettledPunchFence(*db), pinned + kAhead);
  ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*db, model, KeysOf(model)));
  EXPECT_OK(db->Verify());
}

INSTANTIATE_TEST_SUITE_P(Holders, CleanerPauseTest, ::testing::Bool(), [](const auto& info) {
  return info.param ? std::string("KilledProcess") : std::string("EndedSnapshot");
});

// A file system without holes (the simulated disk, tests/fault_file.h, cannot punch: Windows and
// some file systems neither): the first give-back says so, and the handle cleans no more (its log
// grows as a version 4 file's, for `mapkv compact`); what it holds stays whole.
TEST(CleanerSpaceTest, WithoutHolesTheCleanerStopsAtItsFirstGiveBack) {
  test::FaultFileSystem fs;
  Logged logged;
  Options options = CleanerOptions();
  options.env = &fs;
  options.max_file_size = 64 << 20;  // the simulation holds the whole reserve in memory
  options.info_log = logged.Sink();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open("/simulated/no-holes.mapkv", options));
  constexpr uint64_t kKeys = 2000;
  State model;
  ASSERT_NO_FATAL_FAILURE(Fill(*db, 0, kKeys, &model));
  uint64_t next = 0;
  ASSERT_NO_FATAL_FAILURE(ChurnUntilHead(*db, kKeptAllocated + kMiB, kKeys, 100000, &next, &model));
  ASSERT_OK(db->Checkpoint());
  const std::vector<std::string> lines = logged.Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(absl::StrContains(lines[0], "cannot give blocks back")) << lines[0];
  const uint64_t head = Head(*db);
  const uint64_t relocated = db->GetStats().bytes_relocated;
  for (uint64_t i = 0; i < 4 * kKeys; ++i, ++next) {
    const std::string key = Key(next % kKeys);
    ASSERT_OK(db->Put(key, Value(key, next)));
    model[key] = Value(key, next);
  }
  EXPECT_EQ(Head(*db), head);
  EXPECT_EQ(db->GetStats().bytes_relocated, relocated);
  ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*db, model, KeysOf(model)));
  EXPECT_OK(db->Verify());
}

// ---- Options::create_format_version ----

TEST(CreateFormatVersionTest, NewDatabasesAreVersion5UnlessVersion4IsAskedFor) {
  TempDir dir;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(dir.File("default"), CleanerOptions()));
    EXPECT_EQ(db->GetStats().format_version, internal::kCleanFormatVersion);
    EXPECT_EQ(Head(*db), internal::kHeaderSize) << "version 5: the log starts at its start";
  }
  Options options = CleanerOptions();
  options.create_format_version = 5;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(dir.File("five"), options));
    EXPECT_EQ(db->GetStats().format_version, internal::kCleanFormatVersion);
  }
  for (uint32_t version : {1u, 2u, 3u, 6u, 99u}) {
    options.create_format_version = version;
    const std::string path = dir.File(absl::StrCat("v", version));
    auto db = DB::Open(path, options);
    EXPECT_STATUS(db, StatusCode::kInvalidArgument) << version;
    EXPECT_FALSE(test::FileExists(path)) << version;
  }
}

// A version 4 database (no online compaction: compact_ratio 0) never uses head, however much
// garbage its log holds, and keeps its version when reopened with another create_format_version
// and through compactions, in place and into another file.
TEST(CreateFormatVersionTest, Version4HasNoCleanerAndStaysVersion4) {
  TempDir dir;
  const std::string path = dir.File("db");
  Options options = CleanerOptions();
  options.create_format_version = 4;
  options.compact_ratio = 0;
  State model;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
    ASSERT_NO_FATAL_FAILURE(Fill(*db, 0, 2000, &model));
    for (int round = 1; round <= 10; ++round) {
      for (uint64_t k = 0; k < 2000; k += 2) {
        ASSERT_OK(db->Put(Key(k), Value(Key(k), round)));
        model[Key(k)] = Value(Key(k), round);
      }
    }
    ASSERT_OK(db->Checkpoint());
    const Stats s = db->GetStats();
    EXPECT_EQ(s.format_version, internal::kChainFormatVersion);
    EXPECT_EQ(Head(*db), 0u) << "version 4 has no log start";
    EXPECT_EQ(s.log_bytes, Tail(*db));
    EXPECT_GT(s.log_bytes, 3 * (s.live_bytes + s.index_capacity * sizeof(internal::Slot)));
    EXPECT_EQ(s.bytes_relocated, 0u);
    EXPECT_EQ(internal::ImplOf(*db).rwlock().punch_fence(), 0u);
    EXPECT_OK(db->Verify());
  }
  for (uint32_t version : {0u, 5u}) {
    Options reopen = CleanerOptions();
    reopen.compact_ratio = 0;
    reopen.create_format_version = version;
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, reopen));
    EXPECT_EQ(db->GetStats().format_version, internal::kChainFormatVersion) << version;
  }
  const std::string copy = dir.File("copy");
  ASSERT_OK(Compact(path, copy).status());
  ASSERT_OK(Compact(path, "").status());
  for (const std::string& p : {path, copy}) {
    SCOPED_TRACE(p);
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(p, options));
    EXPECT_EQ(db->GetStats().format_version, internal::kChainFormatVersion);
    ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*db, model, KeysOf(model)));
    EXPECT_OK(db->Verify());
  }
}

// A compaction of a version 5 database writes version 5.
TEST(CreateFormatVersionTest, CompactionKeepsVersion5) {
  TempDir dir;
  const std::string path = dir.File("db");
  State model;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, CleanerOptions()));
    ASSERT_NO_FATAL_FAILURE(Fill(*db, 0, 1000, &model));
  }
  ASSERT_OK(Compact(path, "").status());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, CleanerOptions()));
  EXPECT_EQ(db->GetStats().format_version, internal::kCleanFormatVersion);
  ASSERT_NO_FATAL_FAILURE(ExpectCurrent(*db, model, KeysOf(model)));
}

}  // namespace
}  // namespace mapkv
