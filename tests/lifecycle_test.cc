// The life of a handle: open and close in loops from many processes at once (no descriptor or
// mapping leaks, nothing left counted), slots of SIGKILLed holders reused (never "all slots in
// use" while fewer than kMaxSlots handles are alive), the fork() contract (an inherited handle
// refuses to work, destroying it or outliving it disturbs nobody), and threads sharing a handle.
//
// Knobs: MAPKV_LIFECYCLE_ITERS open/close cycles per process (default 200), MAPKV_SLOT_ROUNDS
// rounds of 40 processes killed while they hold the file open (default 6; 23 makes more deaths
// than there are slots), MAPKV_THREAD_OPS operations per thread of the threads test (default
// 35000). Every test is bounded by its work, never by time: its file's limit is sized to that work,
// so a machine of any speed does the same and stays within it.
//
// Children are MAPKV_CHILDs, fresh processes that open the database from its path, except where
// the subject is fork() itself (a handle inherited across it): those children are copies of this
// process (ForkInheriting), and their tests are skipped where there is no fork().
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "src/format.h"
#include "src/platform/mapped_file.h"
#include "test_util.h"
#include "testing/subprocess.h"

namespace mapkv {
namespace {

using ::absl::StatusCode;
using ::mapkv::test::ChildPipe;
using ::mapkv::test::ForkInheriting;
using ::mapkv::test::kKilledStatus;
using ::mapkv::test::NamesPid;
using ::mapkv::test::Pipe;
using ::mapkv::test::Rng;
using ::mapkv::test::RunChild;
using ::mapkv::test::Since;
using ::mapkv::test::StartChild;
using ::mapkv::test::TempDir;
using ::mapkv::test::Uniform;
using ::mapkv::test::WaitChild;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kNoFork = "about a handle inherited across fork(); no fork() here";

constexpr uint32_t kSlots = 896;  // format.h: kMaxSlots
constexpr auto kBudget = std::chrono::seconds(1);

Options LifeOptions() {
  Options options;
  options.initial_file_size = 1 << 20;
  options.initial_index_slots = 64;
  options.max_file_size = 64ull << 20;  // every handle reserves this much address space
  options.lock_timeout = std::chrono::seconds(10);
  return options;
}

Options ShortTimeout() {
  Options options = LifeOptions();
  options.lock_timeout = std::chrono::milliseconds(200);
  return options;
}

// A holder: opens the database, says so with a byte on `ready`, and waits for end of file on
// `release`; then, with `put_own_key`, puts and gets "live/<its pid>". Arguments: path, the write
// end of `ready`, the read end of `release`, put_own_key.
MAPKV_CHILD(HolderChild) {
  const std::string& path = args.at(0);
  ChildPipe ready = args.PipeEnd(1);
  ChildPipe release = args.PipeEnd(2);
  const bool put_own_key = args.Bool(3);
  auto opened = DB::Open(path, LifeOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  CHILD_CHECK(ready.Write("o"));
  (void)release.ReadAll(std::chrono::seconds(300));
  if (put_own_key) {
    const std::string key = absl::StrCat("live/", tools::CurrentPid());
    CHILD_CHECK_OK(db->Put(key, "1"));
    auto got = db->Get(key);
    CHILD_CHECK(got.ok() && *got == "1");
  }
  return 0;
}

// Starts `n` HolderChilds on `path` and waits for each one's byte on `ready`. The pids, or an
// empty vector when some child never got its handle (a failure has been recorded).
std::vector<int> StartHolders(int n, const std::string& path, Pipe& ready, Pipe& release,
                              bool put_own_key) {
  std::vector<int> pids;
  for (int i = 0; i < n; ++i) {
    pids.push_back(
        StartChild("HolderChild", {path, ready.WriteEndArg(), release.ReadEndArg(), put_own_key}));
    EXPECT_GT(pids.back(), 0);
  }
  for (int i = 0; i < n; ++i) {
    if (!ready.WaitByte(std::chrono::seconds(60))) {
      ADD_FAILURE() << "only " << i << " of " << n << " children opened the database";
      for (int pid : pids) test::KillChild(pid);
      return {};
    }
  }
  return pids;
}

// ---- a) Open/close loops.

constexpr int kLoopProcs = 8;
constexpr int kLoopWarmup = 3;  // the first opens allocate what a process keeps (allocator arenas)
constexpr size_t kLoopCounts = 7;

// Process `p` of OpenCloseLoops: kLoopWarmup + iters cycles of open, Put and Get its key, close;
// then one record on `counts`: p, descriptors before and after, mappings before and after,
// mappings of the database file before and after (-1 each without /proc). Arguments: path, p,
// iters, the write end of `counts`.
MAPKV_CHILD(OpenCloseLoopChild) {
  const std::string& path = args.at(0);
  const int p = args.Int<int>(1);
  const int64_t iters = args.Int(2);
  ChildPipe counts = args.PipeEnd(3);
  const std::string key = absl::StrCat("proc/", p);
  auto cycle = [&](int64_t i) -> int {
    auto opened = DB::Open(path, LifeOptions());
    CHILD_CHECK_OK(opened, "cycle ", i);
    std::unique_ptr<DB> own = std::move(*opened);
    CHILD_CHECK_OK(own->Put(key, test::Stamp(static_cast<uint64_t>(i))), "cycle ", i);
    auto got = own->Get(key);
    CHILD_CHECK(got.ok() && *got == test::Stamp(static_cast<uint64_t>(i)), "cycle ", i, ": ",
                got.ok() ? *got : got.status().ToString());
    auto other = own->Get(absl::StrCat("proc/", (p + 1) % kLoopProcs));
    CHILD_CHECK(other.ok() || absl::IsNotFound(other.status()), other.status().ToString());
    return 0;
  };
  for (int64_t i = 0; i < kLoopWarmup; ++i) {
    if (int rc = cycle(i); rc != 0) return rc;
  }
  const int fds_before = test::CountOpenFds();
  const int maps_before = test::CountMappings();
  const int file_maps_before = test::CountMappings(path);
  for (int64_t i = kLoopWarmup; i < kLoopWarmup + iters; ++i) {
    if (int rc = cycle(i); rc != 0) return rc;
  }
  const int fds_after = test::CountOpenFds();
  const int maps_after = test::CountMappings();
  const int file_maps_after = test::CountMappings(path);
  std::string record;
  for (int v :
       {p, fds_before, fds_after, maps_before, maps_after, file_maps_before, file_maps_after}) {
    const uint64_t u = static_cast<uint64_t>(static_cast<int64_t>(v));
    record.append(reinterpret_cast<const char*>(&u), sizeof(u));
  }
  static_assert(kLoopCounts == 7);
  CHILD_CHECK(counts.Write(record));  // 56 bytes: one atomic write
  return 0;
}

// 8 processes open the database, Put and Get their key, and close it, many times over, all at
// once. Their descriptors and mappings must not grow (counted where /proc shows them); nothing may
// stay counted. With `anchor`, the parent holds the file open meanwhile; without it, every cycle
// can be the first opener or the last one out, racing the others.
void OpenCloseLoops(bool anchor) {
  const int64_t iters = test::EnvInt("MAPKV_LIFECYCLE_ITERS", 200);
  TempDir dir;
  const std::string path = dir.File("loop.mapkv");
  std::unique_ptr<DB> db;
  {
    ASSERT_OK_AND_ASSIGN(db, DB::Open(path, LifeOptions()));
    ASSERT_OK(db->Put("shared", "0"));
    if (!anchor) db.reset();
  }
  Pipe counts;
  std::vector<int> pids;
  for (int p = 0; p < kLoopProcs; ++p) {
    pids.push_back(StartChild("OpenCloseLoopChild", {path, p, iters, counts.WriteEndArg()}));
    ASSERT_GT(pids.back(), 0);
  }
  counts.CloseWrite();
  for (int pid : pids) {
    const int status = WaitChild(pid, std::chrono::seconds(300));
    EXPECT_EQ(status, 0) << "child " << pid << ": " << test::ExitStatusToString(status);
  }
  const std::vector<uint64_t> values = Pipe::DecodeU64s(counts.ReadAll());
  ASSERT_EQ(values.size(), kLoopCounts * kLoopProcs) << "not every child reported its counts";
  if (!test::CanCountResources()) {
    std::printf("this platform cannot count descriptors and mappings: not checked\n");
  }
  for (size_t i = 0; i < values.size() && test::CanCountResources(); i += kLoopCounts) {
    const auto v = [&](size_t j) { return static_cast<int64_t>(values[i + j]); };
    ASSERT_GE(v(1), 0) << "descriptors not counted";
    EXPECT_EQ(v(2), v(1)) << "process " << v(0) << ": open descriptors went from " << v(1) << " to "
                          << v(2) << " over " << iters << " open/close cycles";
    EXPECT_EQ(v(6), v(5)) << "process " << v(0) << ": mappings of the database went from " << v(5)
                          << " to " << v(6) << " over " << iters << " open/close cycles";
    // A leak per cycle would add `iters`; a sanitizer's allocator may add a few on its own.
    EXPECT_LE(v(4), v(3) + test::kAllocatorMappingSlack)
        << "process " << v(0) << ": mappings went from " << v(3) << " to " << v(4) << " over "
        << iters << " open/close cycles";
  }
  if (!anchor) {
    ASSERT_OK_AND_ASSIGN(db, DB::Open(path, LifeOptions()));
  }
  for (int p = 0; p < kLoopProcs; ++p) {
    EXPECT_OK_AND_EQ(db->Get(absl::StrCat("proc/", p)),
                     test::Stamp(static_cast<uint64_t>(kLoopWarmup + iters - 1)));
  }
  EXPECT_OK_AND_EQ(db->Get("shared"), "0");
  const Stats stats = db->GetStats();
  EXPECT_EQ(stats.open_handles, 1u) << "closed handles still counted";
  EXPECT_EQ(stats.keys, kLoopProcs + 1u);
}

TEST(LifecycleTest, OpenCloseLoopsBesideAnOpenHandleLeakNothing) { OpenCloseLoops(true); }

TEST(LifecycleTest, OpenCloseLoopsRacingFirstOpenerAndLastCloserLeakNothing) {
  OpenCloseLoops(false);
}

// ---- b) Slots of killed processes.

// A fresh process after a round of deaths: finds "a" = `expect` and two open handles (the parent's
// and its own). Arguments: path, expect.
MAPKV_CHILD(AfterDeathsChild) {
  auto opened = DB::Open(args.at(0), LifeOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> own = std::move(*opened);
  auto got = own->Get("a");
  CHILD_CHECK(got.ok() && *got == args.at(1));
  const uint32_t handles = own->GetStats().open_handles;
  CHILD_CHECK(handles == 2, "open_handles ", handles, " with the parent and this process");
  return 0;
}

// Rounds of 40 processes that open the database and are SIGKILLed holding it open (with
// MAPKV_SLOT_ROUNDS=23, more deaths in all than there are slots). After each round the parent's Put
// is fast, a fresh process opens, and only the living are counted. Then 60 processes hold the file
// open at once.
TEST(LifecycleTest, SlotsOfKilledProcessesAreReclaimed) {
  constexpr int kPerRound = 40;
  constexpr int kLive = 60;
  const int64_t rounds = test::EnvInt("MAPKV_SLOT_ROUNDS", 6);
  TempDir dir;
  const std::string path = dir.File("slots.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, LifeOptions()));
  ASSERT_OK(db->Put("a", "0"));
  std::chrono::microseconds slowest_put{0};
  for (int64_t round = 0; round < rounds; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    Pipe ready, release;
    const std::vector<int> pids = StartHolders(kPerRound, path, ready, release, false);
    ASSERT_EQ(pids.size(), static_cast<size_t>(kPerRound));
    ready.CloseWrite();
    EXPECT_EQ(db->GetStats().open_handles, kPerRound + 1u);
    for (int pid : pids) tools::KillChild(pid);
    for (int pid : pids) {
      const int status = WaitChild(pid);
      EXPECT_EQ(status, kKilledStatus) << test::ExitStatusToString(status);
    }
    const auto start = Clock::now();
    ASSERT_OK(db->Put("a", absl::StrCat(round)));
    const auto took = Since(start);
    slowest_put = std::max(slowest_put, took);
    EXPECT_LT(took, kBudget) << "Put after " << kPerRound << " deaths";
    EXPECT_EQ(db->GetStats().open_handles, 1u) << "dead processes still counted";
    const int status = RunChild("AfterDeathsChild", {path, absl::StrCat(round)});
    ASSERT_EQ(status, 0) << "a fresh process after the deaths: "
                         << test::ExitStatusToString(status);
    if (HasFailure()) return;
  }

  Pipe ready, release;
  const std::vector<int> live = StartHolders(kLive, path, ready, release, true);
  ASSERT_EQ(live.size(), static_cast<size_t>(kLive));
  ready.CloseWrite();
  EXPECT_EQ(db->GetStats().open_handles, kLive + 1u);
  release.CloseWrite();
  for (int pid : live) {
    const int status = WaitChild(pid);
    EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
    EXPECT_OK_AND_EQ(db->Get(absl::StrCat("live/", pid)), "1");
  }
  EXPECT_EQ(db->GetStats().open_handles, 1u);
  EXPECT_EQ(db->GetStats().keys, kLive + 1u);
  std::printf("%lld processes killed holding the file open; slowest Put after a round %.2f ms\n",
              static_cast<long long>(rounds * kPerRound),
              static_cast<double>(slowest_put.count()) / 1000);
}

// The slot table is full only when kSlots handles are alive: after 40 deaths, this process alone
// opens handles up to exactly kSlots; the next open fails with ResourceExhausted; closing one
// makes room again.
TEST(LifecycleTest, SlotTableIsFullOnlyWithAllSlotsAlive) {
  const uint64_t open_files = tools::RaiseOpenFileLimit(kSlots + 64);
  if (open_files < kSlots + 64) {
    GTEST_SKIP() << "RLIMIT_NOFILE " << open_files << " is too low for " << kSlots << " handles";
  }
  TempDir dir;
  const std::string path = dir.File("full.mapkv");
  Options options = LifeOptions();
  options.max_file_size = 2ull << 20;  // 896 reservations
  std::vector<std::unique_ptr<DB>> handles;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
    handles.push_back(std::move(db));
  }
  ASSERT_OK(handles[0]->Put("a", "1"));
  {
    Pipe ready, release;
    const std::vector<int> pids = StartHolders(40, path, ready, release, false);
    ASSERT_EQ(pids.size(), 40u);
    for (int pid : pids) EXPECT_EQ(test::KillChild(pid), kKilledStatus);
  }
  absl::Status full;
  while (handles.size() <= kSlots) {
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(path, options);
    if (!db.ok()) {
      full = db.status();
      break;
    }
    handles.push_back(std::move(*db));
  }
  EXPECT_EQ(handles.size(), kSlots) << "handles open when Open failed with: " << full;
  EXPECT_STATUS(full, StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(full.message(), "slots")) << full;
  EXPECT_EQ(handles[0]->GetStats().open_handles, handles.size());
  // Every handle works.
  EXPECT_OK_AND_EQ(handles.back()->Get("a"), "1");
  ASSERT_OK(handles.back()->Put("a", "2"));
  EXPECT_OK_AND_EQ(handles[1]->Get("a"), "2");
  // A slot freed by a close is taken by the next open.
  handles[handles.size() / 2].reset();
  ASSERT_OK_AND_ASSIGN(handles[handles.size() / 2], DB::Open(path, options));
  EXPECT_STATUS(DB::Open(path, options), StatusCode::kResourceExhausted);
  handles.resize(1);
  EXPECT_EQ(handles[0]->GetStats().open_handles, 1u);
}

// ---- c) fork().

void ExpectRefusesAfterFork(const absl::Status& status, std::string_view what, int* failures) {
  if (status.code() == StatusCode::kFailedPrecondition &&
      absl::StrContains(absl::AsciiStrToLower(status.message()), "fork")) {
    return;
  }
  ++*failures;
  std::fprintf(stderr, "[child %u] inherited handle: %.*s returned %s\n", tools::CurrentPid(),
               static_cast<int>(what.size()), what.data(), status.ToString().c_str());
}

// 8 children of a process with an open handle: the inherited handle refuses every call with a
// FailedPrecondition that mentions fork; each child's own handle works, beside the parent's.
TEST(LifecycleTest, ForkedChildrenRefuseTheInheritedHandleAndOpenTheirOwn) {
  if (!test::HasFork()) GTEST_SKIP() << kNoFork;
  constexpr int kChildren = 8;
  constexpr int kKeys = 200;
  TempDir dir;
  const std::string path = dir.File("fork.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, LifeOptions()));
  ASSERT_OK(db->Put("before", "fork"));
  std::vector<int> pids;
  for (int c = 0; c < kChildren; ++c) {
    pids.push_back(ForkInheriting([&, c]() -> int {
      int failures = 0;
      ExpectRefusesAfterFork(db->Get("before").status(), "Get", &failures);
      ExpectRefusesAfterFork(db->Put("x", "y"), "Put", &failures);
      ExpectRefusesAfterFork(db->Delete("before"), "Delete", &failures);
      ExpectRefusesAfterFork(db->BeginRead().status(), "BeginRead", &failures);
      ExpectRefusesAfterFork(db->BeginWrite().status(), "BeginWrite", &failures);
      ExpectRefusesAfterFork(db->Checkpoint(), "Checkpoint", &failures);
      CHILD_CHECK(failures == 0, failures, " calls on the inherited handle did not refuse");
      auto opened = DB::Open(path, LifeOptions());
      CHILD_CHECK_OK(opened);
      std::unique_ptr<DB> own = std::move(*opened);
      auto before = own->Get("before");
      CHILD_CHECK(before.ok() && *before == "fork");
      for (int i = 0; i < kKeys; ++i) {
        const std::string key = absl::StrCat("c", c, "/", i);
        CHILD_CHECK_OK(own->Put(key, test::StampedValue(key, 1, 50)), key);
      }
      auto txn = own->BeginRead();
      CHILD_CHECK_OK(txn);
      for (int i = 0; i < kKeys; ++i) {
        const std::string key = absl::StrCat("c", c, "/", i);
        auto got = txn->Get(key);
        CHILD_CHECK(got.ok() && *got == test::StampedValue(key, 1, 50), key);
      }
      return 0;
    }));
    ASSERT_GT(pids.back(), 0);
  }
  for (int i = 0; i < kKeys; ++i) ASSERT_OK(db->Put(absl::StrCat("p/", i), absl::StrCat(i)));
  for (int pid : pids) {
    const int status = WaitChild(pid);
    EXPECT_EQ(status, 0) << "child " << pid << ": " << test::ExitStatusToString(status);
  }
  ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
  for (int c = 0; c < kChildren; ++c) {
    for (int i = 0; i < kKeys; ++i) {
      const std::string key = absl::StrCat("c", c, "/", i);
      EXPECT_OK_AND_EQ(txn.Get(key), test::StampedValue(key, 1, 50));
    }
  }
  for (int i = 0; i < kKeys; ++i) EXPECT_OK_AND_EQ(txn.Get(absl::StrCat("p/", i)), absl::StrCat(i));
  EXPECT_EQ(txn.Count(), (kChildren + 1u) * kKeys + 1);
  EXPECT_EQ(db->GetStats().keys, (kChildren + 1u) * kKeys + 1);
  EXPECT_EQ(db->GetStats().open_handles, 1u);
}

// A fresh process: opens, counts `handles` open handles (itself included), and can write, read
// and begin a write transaction at once. Arguments: path, handles.
MAPKV_CHILD(FreshProcessChild) {
  const uint32_t handles = args.Int<uint32_t>(1);
  auto opened = DB::Open(args.at(0), ShortTimeout());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> own = std::move(*opened);
  const uint32_t counted = own->GetStats().open_handles;
  CHILD_CHECK(counted == handles, "open_handles ", counted, ", expected ", handles);
  CHILD_CHECK_OK(own->Put("fresh", "1"));
  CHILD_CHECK_OK(own->BeginWrite());
  CHILD_CHECK_OK(own->BeginRead());
  auto got = own->Get("fresh");
  CHILD_CHECK(got.ok() && *got == "1");
  return 0;
}

int FreshProcessFindsTheLocksFree(const std::string& path, uint32_t handles) {
  return RunChild("FreshProcessChild", {path, handles}, std::chrono::seconds(30));
}

// A child that destroys its copy of the parent's handle (as exit() would for a static one) and
// lives on: the parent's handle keeps working at once, and its slot and locks are its own.
TEST(LifecycleTest, ChildDestroyingTheInheritedHandleDisturbsNobody) {
  if (!test::HasFork()) GTEST_SKIP() << kNoFork;
  TempDir dir;
  const std::string path = dir.File("destroy.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, LifeOptions()));
  ASSERT_OK(db->Put("a", "1"));
  Pipe done, release;
  const int child = ForkInheriting([&]() -> int {
    done.CloseRead();
    release.CloseWrite();
    db.reset();
    CHILD_CHECK(done.Write("d"));
    (void)release.ReadAll(std::chrono::seconds(120));
    return 0;
  });
  ASSERT_GT(child, 0);
  done.CloseWrite();
  release.CloseRead();
  ASSERT_TRUE(done.WaitByte()) << "the child never destroyed its handle";
  auto start = Clock::now();
  ASSERT_OK(db->Put("a", "2"));
  EXPECT_LT(Since(start), kBudget);
  start = Clock::now();
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    EXPECT_LT(Since(start), kBudget);
    EXPECT_OK_AND_EQ(txn.Get("a"), "2");
  }
  EXPECT_OK_AND_EQ(db->Get("a"), "2");
  EXPECT_EQ(db->GetStats().open_handles, 1u);
  int status = FreshProcessFindsTheLocksFree(path, 2);
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
  ASSERT_OK(db->Put("b", "3"));
  release.CloseWrite();
  status = WaitChild(child);
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
  EXPECT_EQ(db->GetStats().open_handles, 1u);
  EXPECT_EQ(db->GetStats().keys, 3u);
}

// A third process of TransactionCarriedAcrossFork. Beside the parent's WriteTxn its commit times
// out naming the parent, and it reads "a" = "1". Beside the parent's ReadTxn (a snapshot, which
// holds no lock) it finds that snapshot listed under the parent's pid, and its commit goes
// through. Arguments: path, the parent's pid, whether the parent holds a WriteTxn.
MAPKV_CHILD(ThirdProcessChild) {
  const int parent = args.Int<int>(1);
  auto opened = DB::Open(args.at(0), ShortTimeout());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> own = std::move(*opened);
  if (!args.Bool(2)) {
    const std::vector<SnapshotInfo> snapshots = own->Snapshots();
    CHILD_CHECK(snapshots.size() == 1 && static_cast<int>(snapshots[0].pid) == parent,
                snapshots.size(), " handles with snapshots; the parent's is gone");
    CHILD_CHECK_OK(own->Put("a", "third"));
    return 0;
  }
  const absl::Status put = own->Put("a", "third");
  CHILD_CHECK(put.code() == StatusCode::kDeadlineExceeded,
              "a commit while the parent holds its transaction: ", put.ToString());
  CHILD_CHECK(NamesPid(put.message(), parent), put.ToString(), " does not name the parent ",
              parent);
  auto got = own->Get("a");
  CHILD_CHECK(got.ok() && *got == "1", "a = ", got.ok() ? *got : got.status().ToString());
  return 0;
}

// The parent holds a ReadTxn (or a WriteTxn) when it forks; the child destroys its copies of the
// transaction and of the handle. The parent must still hold what it held: its snapshot, which a
// third process sees listed and which still reads "a" = "1" after that process's commit, or its
// writer lock, for which the third process's commit waits, naming the parent. Then the parent
// finishes normally.
void TransactionCarriedAcrossFork(bool write) {
  if (!test::HasFork()) GTEST_SKIP() << kNoFork;
  TempDir dir;
  const std::string path = dir.File("carried.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, LifeOptions()));
  ASSERT_OK(db->Put("a", "1"));
  std::optional<ReadTxn> read;
  std::optional<WriteTxn> txn;
  if (write) {
    ASSERT_OK_AND_ASSIGN(txn, db->BeginWrite());
    ASSERT_OK(txn->Put("a", "parent"));
  } else {
    ASSERT_OK_AND_ASSIGN(read, db->BeginRead());
  }
  Pipe done, release;
  const int child = ForkInheriting([&]() -> int {
    done.CloseRead();
    release.CloseWrite();
    read.reset();
    txn.reset();
    db.reset();
    CHILD_CHECK(done.Write("d"));
    (void)release.ReadAll(std::chrono::seconds(120));
    return 0;
  });
  ASSERT_GT(child, 0);
  done.CloseWrite();
  release.CloseRead();
  ASSERT_TRUE(done.WaitByte()) << "the child never destroyed its copies";
  int status = RunChild("ThirdProcessChild", {path, tools::CurrentPid(), write});
  EXPECT_EQ(status, 0) << "third process: " << test::ExitStatusToString(status);
  if (write) {
    ASSERT_OK(txn->Commit());
    EXPECT_OK_AND_EQ(db->Get("a"), "parent");
  } else {
    EXPECT_OK_AND_EQ(read->Get("a"), "1");
    EXPECT_OK_AND_EQ(db->Get("a"), "third");
    read.reset();
    EXPECT_TRUE(db->Snapshots().empty());
  }
  status = FreshProcessFindsTheLocksFree(path, 2);
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
  release.CloseWrite();
  status = WaitChild(child);
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
  EXPECT_EQ(db->GetStats().open_handles, 1u);
}

TEST(LifecycleTest, ReadTxnCarriedAcrossForkStaysTheParents) {
  TransactionCarriedAcrossFork(false);
}

TEST(LifecycleTest, WriteTxnCarriedAcrossForkStaysTheParents) {
  TransactionCarriedAcrossFork(true);
}

// The parent closes its handle while a child that inherited it (and never exec'd) lives on: a
// third process must find the parent gone (it is the only handle), and open without waiting.
TEST(LifecycleTest, ForkedChildDoesNotKeepTheClosedParentHandleAlive) {
  if (!test::HasFork()) GTEST_SKIP() << kNoFork;
  TempDir dir;
  const std::string path = dir.File("outlive.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, LifeOptions()));
  ASSERT_OK(db->Put("a", "1"));
  Pipe release;
  const int child = ForkInheriting([&]() -> int {
    release.CloseWrite();
    (void)release.ReadAll(std::chrono::seconds(120));
    return 0;
  });
  ASSERT_GT(child, 0);
  release.CloseRead();
  db.reset();
  const auto start = Clock::now();
  int status = FreshProcessFindsTheLocksFree(path, 1);
  EXPECT_EQ(status, 0) << "a process opening after the parent closed, beside its child: "
                       << test::ExitStatusToString(status);
  EXPECT_LT(Since(start), std::chrono::seconds(10));
  release.CloseWrite();
  status = WaitChild(child);
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
}

// P of KilledHolderWithLiveForkedChild: opens, begins a WriteTxn (with `write`) or a ReadTxn,
// forks a child that inherits it all and lives until end of file on `release`, sends that child's
// pid on `grandpid` and a byte on `ready`, and waits to be killed. Arguments: path, write, the
// write ends of `ready` and `grandpid`, the read end of `release`.
MAPKV_CHILD(ForkingHolderChild) {
  const std::string& path = args.at(0);
  const bool write = args.Bool(1);
  ChildPipe ready = args.PipeEnd(2);
  ChildPipe grandpid = args.PipeEnd(3);
  ChildPipe release = args.PipeEnd(4);
  auto opened = DB::Open(path, LifeOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> own = std::move(*opened);
  std::optional<absl::StatusOr<ReadTxn>> read;
  std::optional<absl::StatusOr<WriteTxn>> txn;
  if (write) {
    txn.emplace(own->BeginWrite());
    CHILD_CHECK_OK(*txn);
    CHILD_CHECK_OK((*txn)->Put("a", "uncommitted"));
  } else {
    read.emplace(own->BeginRead());
    CHILD_CHECK_OK(*read);
  }
  const int grandchild = ForkInheriting([&]() -> int {
    ready.Close();
    grandpid.Close();
    (void)release.ReadAll(std::chrono::seconds(120));
    return 0;
  });
  CHILD_CHECK(grandchild > 0);
  CHILD_CHECK(grandpid.WriteU64(static_cast<uint64_t>(grandchild)));
  CHILD_CHECK(ready.Write("h"));
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

// A process P is SIGKILLed holding a ReadTxn (or the writer lock) while a child it forked lives
// on: P's slot must be seen dead at once, though the child inherited P's descriptors.
void KilledHolderWithLiveForkedChild(bool write) {
  if (!test::HasFork())
    GTEST_SKIP() << "P's child inherits P's handle across fork(); no fork() here";
  // Orphans of this test's children become this process's children, so that it can reap them.
  ASSERT_OK(tools::SetChildSubreaper(true));
  struct NoSubreaper {
    ~NoSubreaper() { (void)tools::SetChildSubreaper(false); }
  } no_subreaper;
  TempDir dir;
  const std::string path = dir.File("orphan.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, LifeOptions()));
  ASSERT_OK(db->Put("a", "1"));
  Pipe ready;     // P: "holding, child forked"
  Pipe grandpid;  // P's child's pid, to clean up
  Pipe release;   // closed by the test: P's child ends
  const int holder =
      StartChild("ForkingHolderChild",
                 {path, write, ready.WriteEndArg(), grandpid.WriteEndArg(), release.ReadEndArg()});
  ASSERT_GT(holder, 0);
  ready.CloseWrite();
  grandpid.CloseWrite();
  release.CloseRead();
  const bool held = ready.WaitByte();
  EXPECT_EQ(test::KillChild(holder), kKilledStatus);
  const std::vector<uint64_t> grand = Pipe::DecodeU64s(grandpid.ReadAll(std::chrono::seconds(5)));
  ASSERT_TRUE(held) << "the holder never got its lock";
  ASSERT_EQ(grand.size(), 1u);
  const int grandchild = static_cast<int>(grand[0]);
  ASSERT_TRUE(tools::ProcessExists(grandchild)) << "the holder's child is not alive";

  auto start = Clock::now();
  const absl::Status put = db->Put("a", "2");
  const auto took = Since(start);
  EXPECT_OK(put);
  EXPECT_LT(took, kBudget) << "the parent's Put waited " << took.count() / 1000
                           << " ms for a dead holder whose child lives";
  EXPECT_OK_AND_EQ(db->Get("a"), put.ok() ? "2" : "1");
  EXPECT_EQ(db->GetStats().open_handles, 1u) << "the dead holder counted while its child lives";
  const int status = FreshProcessFindsTheLocksFree(path, 2);
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
  release.CloseWrite();
  // The orphaned grandchild was reparented to this process (a subreaper): it ends normally.
  const int grand_status = WaitChild(grandchild, std::chrono::seconds(30));
  EXPECT_EQ(grand_status, 0) << "the holder's child: " << test::ExitStatusToString(grand_status);
}

TEST(LifecycleTest, KilledReaderWithLiveForkedChildIsSeenDead) {
  KilledHolderWithLiveForkedChild(false);
}

TEST(LifecycleTest, KilledWriterWithLiveForkedChildIsSeenDead) {
  KilledHolderWithLiveForkedChild(true);
}

// ---- d) Threads sharing one handle.

constexpr int kThreads = 8;
constexpr int kOwnKeys = 32;
constexpr int kAccounts = 8;
constexpr int64_t kBalance = 100;

std::string OwnKey(int thread, int i) { return absl::StrCat("t", thread, "/", i); }
std::string Account(int i) { return absl::StrCat("acct/", i); }

// One thread's bookkeeping of its own keys: the value it last committed, or nullopt (absent).
using Owned = std::map<std::string, std::optional<std::string>>;

// A mismatch between the database (in some view) and a thread's bookkeeping, or "".
std::string Mismatch(const std::string& key, const absl::StatusOr<std::string_view>& got,
                     const std::optional<std::string>& want) {
  if (!want) {
    if (absl::IsNotFound(got.status())) return "";
    return absl::StrCat(key, ": expected absent, got ",
                        got.ok() ? test::Describe(*got) : got.status().ToString());
  }
  if (got.ok() && *got == *want) return "";
  return absl::StrCat(key, ": expected ", test::Describe(*want), ", got ",
                      got.ok() ? test::Describe(*got) : got.status().ToString());
}

// The accounts in `view` (a ReadTxn or WriteTxn) sum to kAccounts * kBalance.
template <typename View>
std::string AccountsMismatch(const View& view) {
  int64_t sum = 0;
  for (int i = 0; i < kAccounts; ++i) {
    auto got = view.Get(Account(i));
    int64_t v = 0;
    if (!got.ok() || !absl::SimpleAtoi(absl::string_view(got->data(), got->size()), &v) || v < 0) {
      return absl::StrCat(Account(i), ": ",
                          got.ok() ? test::Describe(*got) : got.status().ToString());
    }
    sum += v;
  }
  return sum == kAccounts * kBalance ? "" : absl::StrCat("accounts sum to ", sum);
}

// `ops` random operations on the thread's own keys and the shared accounts; every read checked
// against the bookkeeping. Returns "" or the first problem.
std::string ThreadLoop(DB* db, int t, int64_t ops, Owned* owned) {
  Rng rng(0x7468726561640000ull + static_cast<uint64_t>(t));
  uint64_t version = 0;
  for (int64_t done = 0; done < ops; ++done) {
    const uint64_t op = Uniform(rng, 0, 99);
    const std::string key = OwnKey(t, static_cast<int>(Uniform(rng, 0, kOwnKeys - 1)));
    if (op < 25) {
      const std::string value = test::StampedValue(key, ++version, Uniform(rng, 0, 100));
      if (absl::Status s = db->Put(key, value); !s.ok()) return s.ToString();
      (*owned)[key] = value;
    } else if (op < 35) {
      if (absl::Status s = db->Delete(key); !s.ok()) return s.ToString();
      (*owned)[key] = std::nullopt;
    } else if (op < 55) {
      absl::StatusOr<std::string> got = db->Get(key);
      absl::StatusOr<std::string_view> view =
          got.ok() ? absl::StatusOr<std::string_view>(*got) : got.status();
      if (std::string m = Mismatch(key, view, (*owned)[key]); !m.empty()) return "Get " + m;
    } else if (op < 75) {  // a snapshot: all own keys as recorded, accounts balanced
      absl::StatusOr<ReadTxn> txn = db->BeginRead();
      if (!txn.ok()) return txn.status().ToString();
      for (int i = 0; i < kOwnKeys; ++i) {
        const std::string k = OwnKey(t, i);
        if (std::string m = Mismatch(k, txn->Get(k), (*owned)[k]); !m.empty())
          return "ReadTxn " + m;
      }
      if (std::string m = AccountsMismatch(*txn); !m.empty()) return "ReadTxn " + m;
    } else {  // a WriteTxn: a transfer and some own keys; a fifth of them aborted
      absl::StatusOr<WriteTxn> txn = db->BeginWrite();
      if (!txn.ok()) return txn.status().ToString();
      if (std::string m = AccountsMismatch(*txn); !m.empty()) return "WriteTxn " + m;
      const int from = static_cast<int>(Uniform(rng, 0, kAccounts - 1));
      const int to = (from + 1 + static_cast<int>(Uniform(rng, 0, kAccounts - 2))) % kAccounts;
      int64_t a = 0, b = 0;
      absl::SimpleAtoi(std::string(*txn->Get(Account(from))), &a);
      absl::SimpleAtoi(std::string(*txn->Get(Account(to))), &b);
      if (a > 0) {
        if (absl::Status s = txn->Put(Account(from), absl::StrCat(a - 1)); !s.ok())
          return s.ToString();
        if (absl::Status s = txn->Put(Account(to), absl::StrCat(b + 1)); !s.ok())
          return s.ToString();
      }
      Owned pending;
      for (uint64_t i = Uniform(rng, 1, 4); i > 0; --i) {
        const std::string k = OwnKey(t, static_cast<int>(Uniform(rng, 0, kOwnKeys - 1)));
        const std::optional<std::string> before = pending.count(k) ? pending[k] : (*owned)[k];
        if (std::string m = Mismatch(k, txn->Get(k), before); !m.empty()) return "WriteTxn " + m;
        if (Uniform(rng, 0, 3) == 0) {
          if (absl::Status s = txn->Delete(k); !s.ok()) return s.ToString();
          pending[k] = std::nullopt;
        } else {
          pending[k] = test::StampedValue(k, ++version, Uniform(rng, 0, 100));
          if (absl::Status s = txn->Put(k, *pending[k]); !s.ok()) return s.ToString();
        }
      }
      if (Uniform(rng, 0, 4) == 0) {
        txn->Abort();
      } else {
        if (absl::Status s = txn->Commit(); !s.ok()) return s.ToString();
        for (auto& [k, v] : pending) (*owned)[k] = v;
      }
    }
  }
  return "";
}

// Open waits for a first opener (which holds the open byte exclusively while it recovers), but
// not forever: past lock_timeout it says what it waited for.
TEST(LifecycleTest, OpenWaitsForTheFirstOpenerUpToTheLockTimeout) {
  TempDir dir;
  const std::string path = dir.File("first.mapkv");
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, LifeOptions()));
    ASSERT_OK(db->Put("k", "v"));
  }
  // Stand in for a first opener stuck in recovery: hold the open byte exclusively.
  internal::FileOpenOptions file_options;
  file_options.create = false;
  file_options.reserve = test::FileSize(path);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<internal::MappedFile> holder,
                       internal::MappedFile::Open(path, file_options));
  ASSERT_OK_AND_ASSIGN(const bool locked, holder->Lock(internal::kOpenLockByte, true, false));
  ASSERT_TRUE(locked);
  Options options = LifeOptions();
  options.lock_timeout = std::chrono::milliseconds(200);
  const auto start = Clock::now();
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(path, options);
  EXPECT_STATUS(db, absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(absl::StrContains(db.status().message(), "opened it first")) << db.status();
  EXPECT_GE(Since(start), std::chrono::milliseconds(200));
  // Released while another Open waits: that one gets in. It waits up to LifeOptions' 10 s, so
  // that a release delayed by a busy machine still comes within its wait.
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    holder.reset();
  });
  db = DB::Open(path, LifeOptions());
  release.join();
  ASSERT_OK(db);
  EXPECT_OK_AND_EQ((*db)->Get("k"), "v");
}

// The most log bytes one operation of ThreadLoop appends: its largest, a WriteTxn of a transfer
// (two small puts) and four own keys (a 24-byte record header, a key of a few bytes and a
// stamped value of at most 120 bytes each), plus its commit record, is under 800.
constexpr uint64_t kMaxBytesPerOp = 1024;
// Beside the operations: the header, the accounts, the index tables the log holds as it grows,
// and the room (1 MiB at most) that Put keeps for deletes.
constexpr uint64_t kThreadsFileSlack = 16ull << 20;

// Every thread does MAPKV_THREAD_OPS operations, so that the log holds the same on any machine;
// max_file_size has room for all of them at their largest.
TEST(LifecycleTest, ThreadsSharingOneHandleSeeExactlyTheirOwnWrites) {
  const int64_t ops_per_thread = test::EnvInt("MAPKV_THREAD_OPS", 35000);
  const uint64_t total_ops = static_cast<uint64_t>(ops_per_thread) * kThreads;
  Options options = LifeOptions();
  constexpr uint64_t kMiB = 1 << 20;
  options.max_file_size = kThreadsFileSlack + (total_ops * kMaxBytesPerOp + kMiB - 1) / kMiB * kMiB;
  TempDir dir;
  const std::string path = dir.File("threads.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    for (int i = 0; i < kAccounts; ++i) ASSERT_OK(txn.Put(Account(i), absl::StrCat(kBalance)));
    ASSERT_OK(txn.Commit());
  }
  std::vector<Owned> owned(kThreads);
  std::vector<std::string> problems(kThreads);
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back(
        [&, t] { problems[t] = ThreadLoop(db.get(), t, ops_per_thread, &owned[t]); });
  }
  for (std::thread& th : threads) th.join();
  const auto took = Since(start);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(problems[t], "") << "thread " << t;
  // The limit's premise: no operation appended more than kMaxBytesPerOp.
  const uint64_t log_bytes = db->GetStats().log_bytes;
  EXPECT_LE(log_bytes, kThreadsFileSlack / 2 + total_ops * kMaxBytesPerOp)
      << "the operations appended more than kMaxBytesPerOp each: raise it";
  // The final state is the union of the threads' bookkeeping plus the accounts, nothing else.
  auto check = [&](DB* handle) {
    std::map<std::string, std::string> expected;
    for (const Owned& o : owned) {
      for (const auto& [k, v] : o) {
        if (v) expected[k] = *v;
      }
    }
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, handle->BeginRead());
    EXPECT_EQ(AccountsMismatch(txn), "");
    uint64_t visited = 0, own = 0;
    ASSERT_OK(txn.ForEach([&](std::string_view key, std::string_view value) {
      ++visited;
      if (absl::StartsWith(absl::string_view(key.data(), key.size()), "acct/")) return true;
      ++own;
      auto it = expected.find(std::string(key));
      EXPECT_TRUE(it != expected.end() && it->second == value)
          << test::Describe(key) << " = " << test::Describe(value);
      return true;
    }));
    EXPECT_EQ(own, expected.size());
    EXPECT_EQ(visited, expected.size() + kAccounts);
    EXPECT_EQ(handle->GetStats().keys, visited);
  };
  check(db.get());
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, DB::Open(path, options));
  check(db.get());
  std::printf("%d threads, %llu operations in %.2f s; log %llu bytes of max_file_size %llu\n",
              kThreads, static_cast<unsigned long long>(total_ops),
              static_cast<double>(took.count()) / 1e6, static_cast<unsigned long long>(log_bytes),
              static_cast<unsigned long long>(options.max_file_size));
}

}  // namespace
}  // namespace mapkv
