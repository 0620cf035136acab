// Kill matrix: a process is killed (SIGKILL; TerminateProcess on Windows) at each point where it
// holds a lock, stopped there deterministically by its Env (src/env.h):
//   reading         a read holds the shared side (GetStats, kReadLocked), or a ReadTxn holds a
//                   snapshot pinned in its slot (kSnapshotPinned), in turn;
//   writing         the writer lock is held: just taken by BeginWrite or DB::Put (kWriteLocked), or
//                   after a transaction's uncommitted puts and deletes;
//   committing      Commit() is past its commit point with half of the index changes applied and
//                   the exclusive side held (kCommitApplying);
//   growing index   a commit is half-way through rehashing into a new table (kIndexGrowing);
//   growing file    the file was extended under a transaction's puts (kFileGrown);
//   compacting      an online compaction (compact.h) of the file, in turn: with its copy made
//                   (it holds the file's compaction lock: kCompactCopied), with the old file
//                   marked replaced (it holds the writer lock, ahead of the other writers:
//                   kCompactMarked), with the new file renamed over the old one (kCompactRenamed).
//                   Not where the OS cannot rename over a mapped file (Windows): there compaction
//                   needs the file alone.
// After each kill, the parent's own handle (opened before) and a fresh process must each get what
// they ask for within a second: Put (writer lock and exclusive side), BeginRead, DB::Get; which of
// them comes first (and so finds the dead holder and runs any recovery) rotates. The database must
// then hold exactly what the parent's model says: a batch past its commit point complete, every
// unfinished write invisible, GetStats().keys equal to the keys ForEach visits, and no snapshot
// of the dead process listed. After a compaction killed past its rename the handles move to the new
// file; before it, they go on with the old one; a later compaction succeeds either way.
//
// A live holder, by contrast, is waited for until Options::lock_timeout, and the DeadlineExceeded
// names its pid (not the pid of a dead holder before it).
//
// MAPKV_KILL_REPEATS sets the kills per case (default 50).
//
// Every child is a MAPKV_CHILD that opens the database itself, from its path, and arms its own
// hook (test_util.h).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mapkv/compact.h"
#include "mapkv/db.h"
#include "src/env.h"
#include "src/platform/fs.h"
#include "test_util.h"
#include "testing/subprocess.h"

namespace mapkv {
namespace {

using ::absl::StatusCode;
using ::mapkv::internal::HookPoint;
using ::mapkv::test::ChildPipe;
using ::mapkv::test::kKilledStatus;
using ::mapkv::test::NamesPid;
using ::mapkv::test::Pipe;
using ::mapkv::test::RunChild;
using ::mapkv::test::Since;
using ::mapkv::test::StartChild;
using ::mapkv::test::TempDir;
using ::mapkv::test::WaitChild;
using Clock = std::chrono::steady_clock;

// Exit code of a killed-to-be child that ran past the point where the hook should have stopped it.
constexpr int kHookNotReached = 4;
// How long another process may take to get a lock a dead process held.
constexpr std::chrono::microseconds kBudget = std::chrono::seconds(1);

constexpr int kBaseKeys = 10;         // "base/<i>", written before the kills
constexpr int kBatchPuts = 50;        // puts of the batch killed mid-commit
constexpr int kBatchOverwrites = 25;  // of which overwrite "m/<i>"; the rest are new keys
constexpr int kBatchDeletes = 10;     // and deletes of keys the previous batch added
constexpr int kGrowthKeys = 50;       // new keys of the commit killed while it rehashes
constexpr uint64_t kIndexSlots = 64;  // so that kGrowthKeys force a rehash

// ---- The hook: an Env (src/env.h) that every handle of these tests is opened with, which stops
// at the point a child armed (in the parent, and before a child arms it, nowhere).

const ChildPipe* hook_pipe = nullptr;
std::optional<HookPoint> hook_point;

// One byte to the parent on `stop`, then wait to be killed.
[[noreturn]] void WaitForKill(const ChildPipe& stop) {
  (void)stop.Write("h");
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

class KillEnv : public internal::Env {
 public:
  void AtPoint(HookPoint point) override {
    if (point == hook_point) WaitForKill(*hook_pipe);
  }
};
KillEnv kill_env;

Options KillOptions() {
  Options options;
  options.initial_file_size = 1 << 20;
  options.initial_index_slots = kIndexSlots;
  // Small (every process reserves this much address space), and far past what the cleaning
  // case's kills write, whose log would start an online compaction at half of it.
  options.max_file_size = 512ull << 20;
  options.lock_timeout = std::chrono::seconds(5);  // a dead holder must be seen far sooner
  options.env = &kill_env;
  return options;
}

// `stop` must outlive every operation that may reach the hook.
void ArmHook(HookPoint point, const ChildPipe& stop) {
  hook_pipe = &stop;
  hook_point = point;
}

// The same stop at a point the test reaches by itself.
[[noreturn]] void StopHere(const ChildPipe& stop) { WaitForKill(stop); }

// A HookPoint passed to a child as its number.
HookPoint HookPointArg(const test::ChildArgs& args, size_t i) {
  const int point = args.Int<int>(i);
  if (point < static_cast<int>(HookPoint::kReadLocked) ||
      point > static_cast<int>(HookPoint::kSnapshotPinned)) {
    throw test::ChildArgError(
        absl::StrCat(args.name(), ": argument ", i, " \"", args.at(i), "\" is no HookPoint"));
  }
  return static_cast<HookPoint>(point);
}

// ---- The cases.

enum class Kill {
  kReading,
  kWriting,
  kCommitting,
  kGrowingIndex,
  kGrowingFile,
  kCompacting,
  kCleaning
};

struct KillCase {
  const char* name;
  Kill kill;
};

std::string BaseKey(int i) { return absl::StrCat("base/", i); }
std::string BatchKey(int rep, int i) {
  return i < kBatchOverwrites ? absl::StrCat("m/", i) : absl::StrCat("m/", rep, "/", i);
}
std::string BatchValue(int rep, int i) { return absl::StrCat("batch ", rep, " put ", i); }
std::string GrowthKey(int rep, int i) { return absl::StrCat("g/", rep, "/", i); }
// The cleaning case's n-th put of its kill `rep`, to BaseKey(n % kBaseKeys): 1,000 bytes, so that
// a few MiB of them move the log's start past what the cleaner gives back at a time.
std::string CleaningValue(int rep, int n) {
  std::string v = absl::StrCat("clean ", rep, " ", n, " ");
  v.resize(1000, 'c');
  return v;
}
constexpr int kMaxCleaningPuts = 100000;  // 100 MB: far past the 6 MiB a give-back needs

// What the killed child commits, when it gets that far, applied to a model of the database.
using Model = std::map<std::string, std::string>;

void ApplyBatch(int rep, Model* model) {
  for (int i = 0; i < kBatchPuts; ++i) (*model)[BatchKey(rep, i)] = BatchValue(rep, i);
  if (rep > 0) {
    for (int i = kBatchOverwrites; i < kBatchOverwrites + kBatchDeletes; ++i) {
      model->erase(BatchKey(rep - 1, i));
    }
  }
}

// The child that is killed: opens its own handle, goes to the case's point and stops there.
// Returns only when it got past that point (a failure). Arguments: path, the Kill (its number),
// rep, the write end of `stop`.
MAPKV_CHILD(KilledChild) {
  const std::string& path = args.at(0);
  const int kill_number = args.Int<int>(1);
  CHILD_CHECK(kill_number >= static_cast<int>(Kill::kReading) &&
                  kill_number <= static_cast<int>(Kill::kCleaning),
              "no Kill numbered ", kill_number);
  const Kill kill = static_cast<Kill>(kill_number);
  const int rep = args.Int<int>(2);
  ChildPipe stop = args.PipeEnd(3);
  auto opened = DB::Open(path, KillOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  switch (kill) {
    case Kill::kReading: {
      if (rep % 2 == 0) {
        ArmHook(HookPoint::kReadLocked, stop);
        (void)db->GetStats();
      } else {
        ArmHook(HookPoint::kSnapshotPinned, stop);
        auto txn = db->BeginRead();
        CHILD_CHECK_OK(txn);
      }
      break;
    }
    case Kill::kWriting: {
      // Three ways to hold the writer lock, in turn.
      if (rep % 3 == 0) {  // BeginWrite has just taken it
        ArmHook(HookPoint::kWriteLocked, stop);
        auto txn = db->BeginWrite();
        CHILD_CHECK_OK(txn);
      } else if (rep % 3 == 1) {  // a transaction with uncommitted puts and deletes
        auto txn = db->BeginWrite();
        CHILD_CHECK_OK(txn);
        for (int i = 0; i < kBaseKeys; ++i) {
          CHILD_CHECK_OK(txn->Put(BaseKey(i), absl::StrCat("uncommitted ", rep)));
        }
        for (int i = 0; i < 200; ++i) {
          CHILD_CHECK_OK(txn->Put(absl::StrCat("w/", rep, "/", i), std::string(100, 'w')));
        }
        CHILD_CHECK_OK(txn->Delete(BaseKey(0)));
        CHILD_CHECK_OK(txn->Delete("probe"));
        StopHere(stop);
      } else {  // a single DB::Put has taken it
        ArmHook(HookPoint::kWriteLocked, stop);
        CHILD_CHECK_OK(db->Put(BaseKey(1), "uncommitted"));
      }
      break;
    }
    case Kill::kCommitting: {
      auto txn = db->BeginWrite();
      CHILD_CHECK_OK(txn);
      for (int i = 0; i < kBatchPuts; ++i)
        CHILD_CHECK_OK(txn->Put(BatchKey(rep, i), BatchValue(rep, i)));
      if (rep > 0) {
        for (int i = kBatchOverwrites; i < kBatchOverwrites + kBatchDeletes; ++i) {
          CHILD_CHECK_OK(txn->Delete(BatchKey(rep - 1, i)));
        }
      }
      ArmHook(HookPoint::kCommitApplying, stop);
      CHILD_CHECK_OK(txn->Commit());
      break;
    }
    case Kill::kGrowingIndex: {
      auto txn = db->BeginWrite();
      CHILD_CHECK_OK(txn);
      for (int i = 0; i < kBaseKeys; ++i) CHILD_CHECK_OK(txn->Put(BaseKey(i), "uncommitted"));
      for (int i = 0; i < kGrowthKeys; ++i) CHILD_CHECK_OK(txn->Put(GrowthKey(rep, i), "new"));
      CHILD_CHECK_OK(txn->Delete(BaseKey(2)));
      ArmHook(HookPoint::kIndexGrowing, stop);
      CHILD_CHECK_OK(txn->Commit());
      break;
    }
    case Kill::kGrowingFile: {
      const Stats stats = db->GetStats();
      auto txn = db->BeginWrite();
      CHILD_CHECK_OK(txn);
      for (int i = 0; i < kBaseKeys; ++i) CHILD_CHECK_OK(txn->Put(BaseKey(i), "uncommitted"));
      CHILD_CHECK_OK(txn->Delete(BaseKey(3)));
      ArmHook(HookPoint::kFileGrown, stop);
      // Past the end of the file as this process knows it: the put must grow it.
      const size_t size = stats.file_size - stats.log_bytes + 4096;
      CHILD_CHECK_OK(txn->Put("big", std::string(size, 'b')));
      break;
    }
    case Kill::kCompacting: {
      constexpr HookPoint kPoints[] = {HookPoint::kCompactCopied, HookPoint::kCompactMarked,
                                       HookPoint::kCompactRenamed};
      ArmHook(kPoints[rep % 3], stop);
      CompactOptions options;
      options.env = &kill_env;
      options.lock_timeout = KillOptions().lock_timeout;
      CHILD_CHECK_OK(Compact(path, "", options).status());
      break;
    }
    case Kill::kCleaning: {
      // Overwrites until the cleaner gets to its point: a step's copies written and not yet
      // published (the commit that called for it went through), or a give-back whose checkpoint
      // is on the disk about to punch (holding the writer lock).
      ArmHook(rep % 2 == 0 ? HookPoint::kCleaning : HookPoint::kGivingBack, stop);
      for (int n = 0; n < kMaxCleaningPuts; ++n) {
        CHILD_CHECK_OK(db->Put(BaseKey(n % kBaseKeys), CleaningValue(rep, n)));
      }
      break;
    }
  }
  std::fprintf(stderr, "[child %u] went past the hook\n", tools::CurrentPid());
  return kHookNotReached;
}

// Checks that the database holds exactly `model`, through a ReadTxn (ForEach and Count) and
// GetStats().keys.
void ExpectContents(DB* db, const Model& model) {
  uint64_t visited = 0, wrong = 0;
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    std::string first_wrong;
    ASSERT_OK(txn.ForEach([&](std::string_view key, std::string_view value) {
      ++visited;
      auto it = model.find(std::string(key));
      if (it == model.end() || it->second != value) {
        if (wrong++ == 0) {
          first_wrong = absl::StrCat(test::Describe(key), " = ", test::Describe(value),
                                     it == model.end()
                                         ? " (not in the model)"
                                         : absl::StrCat(", expected ", test::Describe(it->second)));
        }
      }
      return true;
    }));
    EXPECT_EQ(wrong, 0u) << wrong << " keys hold what they should not; the first: " << first_wrong;
    EXPECT_EQ(visited, model.size()) << "ForEach visited another number of keys than the model has";
    EXPECT_EQ(txn.Count(), visited) << "ReadTxn::Count disagrees with ForEach";
  }
  const uint64_t keys = db->GetStats().keys;
  EXPECT_EQ(keys, visited) << "GetStats().keys disagrees with ForEach";
}

// The cleaning case: reads what the killed child's puts left (optimistic Gets: they need no
// lock) and checks that it is the last value of each key of puts 0..N-1 for one N, then takes it
// into `model`.
void ApplyCleaningPuts(DB& db, int rep, Model* model) {
  int n_end = 0;  // N: one past the highest put of this kill found
  std::vector<std::string> found(kBaseKeys);
  for (int k = 0; k < kBaseKeys; ++k) {
    ASSERT_OK_AND_ASSIGN(found[k], db.Get(BaseKey(k)));
    const std::string prefix = absl::StrCat("clean ", rep, " ");
    if (found[k].rfind(prefix, 0) != 0) continue;
    const std::string rest = found[k].substr(prefix.size());
    const int n = std::stoi(rest.substr(0, rest.find(' ')));
    n_end = std::max(n_end, n + 1);
  }
  ASSERT_GT(n_end, 0) << "none of the killed child's puts is there";
  for (int k = 0; k < kBaseKeys; ++k) {
    // The last put to key k below N, if any.
    const int last = k < n_end ? (n_end - 1 - k) / kBaseKeys * kBaseKeys + k : -1;
    const std::string expected = last >= 0 ? CleaningValue(rep, last) : model->at(BaseKey(k));
    EXPECT_EQ(found[k].substr(0, 40), expected.substr(0, 40)) << BaseKey(k) << ", N " << n_end;
    EXPECT_EQ(found[k], expected) << BaseKey(k);
    (*model)[BaseKey(k)] = expected;
  }
}

// The longest each operation took after a kill, over all kills of a case.
struct Worst {
  std::chrono::microseconds parent_put{0}, parent_read{0}, parent_get{0};
  std::chrono::microseconds fresh_open{0}, fresh_put{0}, fresh_read{0}, fresh_get{0};
};
void Note(std::chrono::microseconds* worst, std::chrono::microseconds took) {
  *worst = std::max(*worst, took);
}

double Ms(std::chrono::microseconds t) { return static_cast<double>(t.count()) / 1000; }

// The fresh process of a kill: opens the database, puts "fresh" = `probe`, reads `get_key` in a
// ReadTxn and with DB::Get (both must find `expect_get`), and sends the microseconds that Open,
// Put, BeginRead and Get took on `times`. Arguments: path, probe, get_key, expect_get, the write
// end of `times`.
MAPKV_CHILD(FreshProcessChild) {
  const std::string& path = args.at(0);
  const std::string& probe = args.at(1);
  const std::string& get_key = args.at(2);
  const std::string& expect_get = args.at(3);
  ChildPipe times = args.PipeEnd(4);
  auto start = Clock::now();
  auto opened = DB::Open(path, KillOptions());
  const auto open_us = Since(start);
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> own = std::move(*opened);
  start = Clock::now();
  CHILD_CHECK_OK(own->Put("fresh", probe));
  const auto put_us = Since(start);
  start = Clock::now();
  std::optional<absl::StatusOr<ReadTxn>> txn(own->BeginRead());
  const auto read_us = Since(start);
  CHILD_CHECK_OK(*txn);
  auto in_txn = (*txn)->Get(get_key);
  CHILD_CHECK(in_txn.ok() && *in_txn == expect_get, get_key,
              " in a ReadTxn: ", in_txn.ok() ? std::string(*in_txn) : in_txn.status().ToString());
  txn.reset();
  start = Clock::now();
  auto got = own->Get(get_key);
  const auto get_us = Since(start);
  CHILD_CHECK(got.ok() && *got == expect_get, get_key, ": ",
              got.ok() ? *got : got.status().ToString());
  for (auto t : {open_us, put_us, read_us, get_us}) {
    CHILD_CHECK(times.WriteU64(static_cast<uint64_t>(t.count())));
  }
  return 0;
}

class KillMatrixTest : public ::testing::TestWithParam<KillCase> {};

TEST_P(KillMatrixTest, AnotherProcessGetsTheLockFastAndSeesOnlyCommittedData) {
  const Kill kill = GetParam().kill;
  if (kill == Kill::kCompacting && internal::ReplaceFailsWhileMapped()) {
    GTEST_SKIP() << "this OS cannot rename over a file that a process has mapped";
  }
  const int64_t repeats = test::EnvInt("MAPKV_KILL_REPEATS", 50);
  TempDir dir;
  const std::string path = dir.File("kill.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, KillOptions()));
  Model model;
  for (int i = 0; i < kBaseKeys; ++i) {
    ASSERT_OK(db->Put(BaseKey(i), absl::StrCat("base ", i)));
    model[BaseKey(i)] = absl::StrCat("base ", i);
  }
  const Stats initial = db->GetStats();
  if (kill == Kill::kGrowingIndex) {
    // The precondition of the case: the child's commit must rehash.
    ASSERT_EQ(initial.index_capacity, kIndexSlots);
    ASSERT_GT((initial.index_used + kGrowthKeys + 2) * 4, initial.index_capacity * 3);
  }
  Worst worst;
  uint64_t recovered_before = initial.recovered_commits;

  for (int rep = 0; rep < repeats; ++rep) {
    SCOPED_TRACE(absl::StrCat(GetParam().name, ", kill ", rep));
    const uint64_t inode_before = internal::StatFile(path)->inode;
    Pipe stop;
    const int pid =
        StartChild("KilledChild", {path, static_cast<int>(kill), rep, stop.WriteEndArg()});
    ASSERT_GT(pid, 0);
    stop.CloseWrite();
    if (!stop.WaitByte(std::chrono::seconds(60))) {
      const int status = WaitChild(pid, std::chrono::seconds(10));
      FAIL() << "the child never reached its stopping point: " << test::ExitStatusToString(status);
    }
    const int status = test::KillChild(pid);
    ASSERT_EQ(status, kKilledStatus) << test::ExitStatusToString(status);
    if (kill == Kill::kCommitting) ApplyBatch(rep, &model);  // it was past its commit point
    if (kill == Kill::kCleaning) {
      // The child's puts 0..N-1 are all there and none after: the last one each key got.
      ASSERT_NO_FATAL_FAILURE(ApplyCleaningPuts(*db, rep, &model));
    }
    // A dead holder's pin goes with its slot: the kernel says it is dead.
    EXPECT_TRUE(db->Snapshots().empty()) << "the dead process's snapshot is still listed";

    // The key DB::Get reads: one the dead process had written (committed or not).
    std::string get_key = BaseKey(rep % kBaseKeys);
    if (kill == Kill::kCommitting) get_key = BatchKey(rep, rep % kBatchPuts);

    // Every operation, each timed; rep % 4 picks the one that comes first and meets the dead
    // holder (and runs recovery): the parent's Put, BeginRead or Get, or a fresh process.
    const std::string probe = absl::StrCat("probe ", rep);
    auto parent_put = [&] {
      const auto start = Clock::now();
      const absl::Status s = db->Put("probe", probe);
      const auto took = Since(start);
      Note(&worst.parent_put, took);
      EXPECT_OK(s);
      EXPECT_LT(took, kBudget) << "the parent's Put waited " << Ms(took) << " ms";
      model["probe"] = probe;
    };
    auto parent_read = [&] {
      const auto start = Clock::now();
      absl::StatusOr<ReadTxn> txn = db->BeginRead();
      const auto took = Since(start);
      Note(&worst.parent_read, took);
      ASSERT_OK(txn);
      EXPECT_LT(took, kBudget) << "the parent's BeginRead waited " << Ms(took) << " ms";
      EXPECT_OK_AND_EQ(txn->Get(get_key), model.at(get_key));
    };
    auto parent_get = [&] {
      const auto start = Clock::now();
      absl::StatusOr<std::string> got = db->Get(get_key);
      const auto took = Since(start);
      Note(&worst.parent_get, took);
      EXPECT_OK_AND_EQ(got, model.at(get_key));
      EXPECT_LT(took, kBudget) << "the parent's Get waited " << Ms(took) << " ms";
    };
    auto fresh_process = [&] {
      Pipe times;
      const std::string expect_get = model.at(get_key);
      const int fresh =
          RunChild("FreshProcessChild", {path, probe, get_key, expect_get, times.WriteEndArg()},
                   std::chrono::seconds(60));
      times.CloseWrite();
      EXPECT_EQ(fresh, 0) << "fresh process: " << test::ExitStatusToString(fresh);
      model["fresh"] = probe;
      const std::vector<uint64_t> t = Pipe::DecodeU64s(times.ReadAll());
      if (t.size() != 4) return;
      const char* what[] = {"Open", "Put", "BeginRead", "Get"};
      std::chrono::microseconds* into[] = {&worst.fresh_open, &worst.fresh_put, &worst.fresh_read,
                                           &worst.fresh_get};
      for (int i = 0; i < 4; ++i) {
        const std::chrono::microseconds took(t[i]);
        Note(into[i], took);
        EXPECT_LT(took, kBudget) << "a fresh process's " << what[i] << " took " << Ms(took)
                                 << " ms";
      }
    };
    switch (rep % 4) {
      case 0:
        parent_put();
        parent_read();
        parent_get();
        fresh_process();
        break;
      case 1:
        parent_read();
        parent_get();
        parent_put();
        fresh_process();
        break;
      case 2:
        parent_get();
        parent_put();
        parent_read();
        fresh_process();
        break;
      case 3:
        fresh_process();
        parent_put();
        parent_read();
        parent_get();
        break;
    }
    if (HasFailure()) return;

    if (kill == Kill::kCommitting) {
      // Spelled out, though ExpectContents covers it: the whole committed batch is visible.
      int visible = 0;
      for (int i = 0; i < kBatchPuts; ++i) {
        absl::StatusOr<std::string> got = db->Get(BatchKey(rep, i));
        visible += got.ok() && *got == BatchValue(rep, i);
      }
      ASSERT_EQ(visible, kBatchPuts) << "a batch killed past its commit point is partly visible";
    }
    ExpectContents(db.get(), model);
    const Stats stats = db->GetStats();
    EXPECT_EQ(stats.open_handles, 1u) << "the dead process's slot still counts";
    if (kill == Kill::kCompacting) {
      // Killed past its rename (the third point), the compaction's file is the database.
      const bool renamed = rep % 3 == 2;
      EXPECT_EQ(internal::StatFile(path)->inode != inode_before, renamed);
      EXPECT_EQ(stats.compactions, static_cast<uint64_t>((rep + 1) / 3));
    }
    if (kill == Kill::kGrowingIndex) {
      EXPECT_EQ(stats.index_capacity, initial.index_capacity)
          << "the rehash of an unfinished commit was published";
    }
    if (kill == Kill::kCleaning) {
      EXPECT_OK(db->Verify());
      EXPECT_GT(stats.bytes_relocated, 0u) << "the cleaner never ran";
    }
    if (kill == Kill::kCommitting) {
      EXPECT_GT(stats.recovered_commits, recovered_before) << "no recovery counted";
      recovered_before = stats.recovered_commits;
    }
    if (HasFailure()) return;
  }

  // What the dead were doing, done by the living: a commit that rehashes, a put that grows the
  // file, one more batch.
  if (kill == Kill::kGrowingIndex) {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    for (int i = 0; i < kGrowthKeys; ++i) {
      ASSERT_OK(txn.Put(GrowthKey(0, i), "new"));
      model[GrowthKey(0, i)] = "new";
    }
    ASSERT_OK(txn.Commit());
    EXPECT_GT(db->GetStats().index_capacity, kIndexSlots);
  } else if (kill == Kill::kGrowingFile) {
    const Stats stats = db->GetStats();
    const std::string big(stats.file_size, 'B');
    ASSERT_OK(db->Put("big", big));
    model["big"] = big;
    EXPECT_GT(db->GetStats().file_size, stats.file_size);
  } else if (kill == Kill::kCompacting) {
    // The leftovers of the dead compactions go, and their work is done.
    const uint64_t compactions = db->GetStats().compactions;
    ASSERT_OK_AND_ASSIGN(CompactResult result, Compact(path, ""));
    EXPECT_EQ(result.keys, model.size());
    EXPECT_EQ(db->GetStats().compactions, compactions + 1);
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
      EXPECT_EQ(entry.path().filename().string(), "kill.mapkv") << "left behind";
    }
  } else if (kill == Kill::kCommitting) {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    for (int i = 0; i < kBatchPuts; ++i) ASSERT_OK(txn.Put(BatchKey(-1, i), "last"));
    ASSERT_OK(txn.Commit());
    for (int i = 0; i < kBatchPuts; ++i) model[BatchKey(-1, i)] = "last";
  }
  ExpectContents(db.get(), model);
  // And after the last handle closes, the next first opener finds the same.
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, DB::Open(path, KillOptions()));
  ExpectContents(db.get(), model);
  EXPECT_EQ(db->GetStats().open_handles, 1u);

  std::printf(
      "%s: %lld kills; slowest after a kill (ms): parent Put %.2f, BeginRead %.2f, Get %.2f; fresh "
      "process Open %.2f, Put %.2f, BeginRead %.2f, Get %.2f\n",
      GetParam().name, static_cast<long long>(repeats), Ms(worst.parent_put), Ms(worst.parent_read),
      Ms(worst.parent_get), Ms(worst.fresh_open), Ms(worst.fresh_put), Ms(worst.fresh_read),
      Ms(worst.fresh_get));
}

INSTANTIATE_TEST_SUITE_P(Points, KillMatrixTest,
                         ::testing::Values(KillCase{"Reading", Kill::kReading},
                                           KillCase{"Writing", Kill::kWriting},
                                           KillCase{"Committing", Kill::kCommitting},
                                           KillCase{"GrowingIndex", Kill::kGrowingIndex},
                                           KillCase{"GrowingFile", Kill::kGrowingFile},
                                           KillCase{"Compacting", Kill::kCompacting},
                                           KillCase{"Cleaning", Kill::kCleaning}),
                         [](const ::testing::TestParamInfo<KillCase>& param_info) {
                           return std::string(param_info.param.name);
                         });

// ---- Live holders: waited for until lock_timeout, named by pid.

Options ShortTimeout() {
  Options options = KillOptions();
  options.lock_timeout = std::chrono::milliseconds(200);
  return options;
}

// A child that opens the database, takes a ReadTxn (`write` false) or a WriteTxn with an
// uncommitted put, says so on `ready`, and holds it until `release` is closed. Arguments: path,
// write, the write end of `ready`, the read end of `release`.
MAPKV_CHILD(LiveHolderChild) {
  const std::string& path = args.at(0);
  const bool write = args.Bool(1);
  ChildPipe ready = args.PipeEnd(2);
  ChildPipe release = args.PipeEnd(3);
  auto opened = DB::Open(path, ShortTimeout());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  if (write) {
    auto txn = db->BeginWrite();
    CHILD_CHECK_OK(txn);
    CHILD_CHECK_OK(txn->Put("a", "uncommitted"));
    CHILD_CHECK(ready.Write("w"));
    (void)release.ReadAll(std::chrono::seconds(120));
  } else {
    auto txn = db->BeginRead();
    CHILD_CHECK_OK(txn);
    CHILD_CHECK(ready.Write("r"));
    (void)release.ReadAll(std::chrono::seconds(120));
  }
  return 0;
}

// Starts a LiveHolderChild and waits until it holds its transaction: its pid, or -1.
int StartLiveHolder(const std::string& path, bool write, Pipe& ready, Pipe& release) {
  const int pid =
      StartChild("LiveHolderChild", {path, write, ready.WriteEndArg(), release.ReadEndArg()});
  if (pid <= 0) return -1;
  ready.CloseWrite();
  release.CloseRead();
  return ready.WaitByte() ? pid : -1;
}

// A child that opens the database and stops at `point` (kReadLocked, kSnapshotPinned: in
// BeginRead; otherwise in BeginWrite), to be killed there. Arguments: path, the HookPoint (its
// number), the write end of `stop`.
MAPKV_CHILD(HookedChild) {
  const std::string& path = args.at(0);
  const HookPoint point = HookPointArg(args, 1);
  ChildPipe stop = args.PipeEnd(2);
  auto opened = DB::Open(path, ShortTimeout());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  ArmHook(point, stop);
  if (point == HookPoint::kReadLocked || point == HookPoint::kSnapshotPinned) {
    (void)db->BeginRead();
  } else {
    (void)db->BeginWrite();
  }
  return kHookNotReached;
}

// Kills a child at `point` (a dead holder of the same lock before the live one).
int KillAtHook(const std::string& path, HookPoint point) {
  Pipe stop;
  const int pid = StartChild("HookedChild", {path, static_cast<int>(point), stop.WriteEndArg()});
  stop.CloseWrite();
  const bool stopped = stop.WaitByte(std::chrono::seconds(60));
  const int status = test::KillChild(pid);
  EXPECT_TRUE(stopped) << "the child never reached the hook: " << test::ExitStatusToString(status);
  EXPECT_EQ(status, kKilledStatus) << test::ExitStatusToString(status);
  return pid;
}

TEST(KillMatrixLiveHolderTest, LiveWriterIsWaitedForAndNamedByPid) {
  TempDir dir;
  const std::string path = dir.File("live_writer.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, ShortTimeout()));
  ASSERT_OK(db->Put("a", "1"));
  const int dead = KillAtHook(path, HookPoint::kWriteLocked);
  if (HasFailure()) return;

  Pipe ready, release;
  const int live = StartLiveHolder(path, /*write=*/true, ready, release);
  ASSERT_GT(live, 0) << "the live writer never started";

  auto start = Clock::now();
  absl::StatusOr<WriteTxn> txn = db->BeginWrite();
  auto took = Since(start);
  EXPECT_STATUS(txn, StatusCode::kDeadlineExceeded);
  const std::string message(txn.status().message());
  EXPECT_TRUE(NamesPid(message, live)) << message << " does not name the live holder " << live;
  EXPECT_FALSE(NamesPid(message, dead)) << message << " names the dead holder " << dead;
  EXPECT_GE(took, std::chrono::milliseconds(190)) << "gave up before lock_timeout";
  EXPECT_LT(took, std::chrono::seconds(3));

  start = Clock::now();
  const absl::Status put = db->Put("a", "parent");
  took = Since(start);
  EXPECT_STATUS(put, StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(NamesPid(put.message(), live)) << put.message();
  EXPECT_GE(took, std::chrono::milliseconds(190));
  // Readers are not blocked by a writer that has not reached its commit.
  EXPECT_OK_AND_EQ(db->Get("a"), "1");
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn read, db->BeginRead());
    EXPECT_OK_AND_EQ(read.Get("a"), "1");
  }
  EXPECT_EQ(db->GetStats().open_handles, 2u);

  release.CloseWrite();
  const int status = WaitChild(live);
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
  ASSERT_OK(db->Put("a", "parent"));
  EXPECT_OK_AND_EQ(db->Get("a"), "parent");
  EXPECT_EQ(db->GetStats().keys, 1u);
  EXPECT_EQ(db->GetStats().open_handles, 1u);
}

// A reader that holds the shared side: a ReadTxn of a format version 1 file (a copy of the golden
// one), whose records carry no chain for a snapshot.
TEST(KillMatrixLiveHolderTest, LiveReaderIsWaitedForAndNamedByPid) {
  TempDir dir;
  const std::string path = dir.File("live_reader.mapkv");
  std::filesystem::copy_file(std::string(MAPKV_SOURCE_DIR) + "/data/golden/v1/sample.mapkv", path);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, ShortTimeout()));
  ASSERT_EQ(db->GetStats().format_version, 1u);
  ASSERT_OK(db->Put("a", "1"));
  const uint64_t keys = db->GetStats().keys;
  const int dead = KillAtHook(path, HookPoint::kReadLocked);
  if (HasFailure()) return;

  Pipe ready, release;
  const int live = StartLiveHolder(path, /*write=*/false, ready, release);
  ASSERT_GT(live, 0) << "the live reader never started";

  const auto start = Clock::now();
  const absl::Status put = db->Put("a", "2");
  const auto took = Since(start);
  EXPECT_STATUS(put, StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(NamesPid(put.message(), live))
      << put.message() << " does not name the live reader " << live;
  EXPECT_FALSE(NamesPid(put.message(), dead)) << put.message() << " names the dead reader " << dead;
  EXPECT_GE(took, std::chrono::milliseconds(190)) << "gave up before lock_timeout";
  EXPECT_LT(took, std::chrono::seconds(3));
  // The commit that timed out left nothing behind, and reading goes on beside the live reader.
  EXPECT_OK_AND_EQ(db->Get("a"), "1");
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn read, db->BeginRead());
    EXPECT_OK_AND_EQ(read.Get("a"), "1");
  }
  EXPECT_EQ(db->GetStats().keys, keys);

  release.CloseWrite();
  const int status = WaitChild(live);
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
  ASSERT_OK(db->Put("a", "2"));
  EXPECT_OK_AND_EQ(db->Get("a"), "2");
  EXPECT_EQ(db->GetStats().keys, keys);
  EXPECT_EQ(db->GetStats().open_handles, 1u);
}

// A snapshot (format version 4) holds no lock: a live one never stops a writer, and a dead one's
// pin goes with its slot.
TEST(KillMatrixLiveHolderTest, LiveSnapshotNeverStopsAWriter) {
  TempDir dir;
  const std::string path = dir.File("live_snapshot.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, ShortTimeout()));
  ASSERT_OK(db->Put("a", "1"));
  const int dead = KillAtHook(path, HookPoint::kSnapshotPinned);
  if (HasFailure()) return;
  EXPECT_TRUE(db->Snapshots().empty());

  Pipe ready, release;
  const int live = StartLiveHolder(path, /*write=*/false, ready, release);
  ASSERT_GT(live, 0) << "the live reader never started";
  for (int i = 0; i < 100; ++i) ASSERT_OK(db->Put("a", absl::StrCat(i)));
  const std::vector<SnapshotInfo> snapshots = db->Snapshots();
  ASSERT_EQ(snapshots.size(), 1u);
  EXPECT_EQ(static_cast<int>(snapshots[0].pid), live);
  EXPECT_NE(static_cast<int>(snapshots[0].pid), dead);
  EXPECT_EQ(snapshots[0].snapshots, 1u);
  EXPECT_GT(snapshots[0].pinned_bytes, 0u);
  EXPECT_EQ(db->GetStats().snapshots, 1u);

  release.CloseWrite();
  const int status = WaitChild(live);
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
  EXPECT_TRUE(db->Snapshots().empty());
  EXPECT_OK_AND_EQ(db->Get("a"), "99");
}

}  // namespace
}  // namespace mapkv
