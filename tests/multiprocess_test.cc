// Several processes on one database at once: writers and readers see each other's commits, growth
// made by one process is seen by the rest, a late opener sees everything, and (where there is
// fork()) a handle opened before fork() refuses to work in the child.
//
// Every child is a MAPKV_CHILD that opens the database itself, from its path, and closes it before
// it exits. MAPKV_MP_ITERS scales the number of commits per writer (default 400).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "test_util.h"

namespace mapkv {
namespace {

using ::absl::StatusCode;
using ::mapkv::test::ChildPipe;
using ::mapkv::test::ForkInheriting;
using ::mapkv::test::Pipe;
using ::mapkv::test::RunChild;
using ::mapkv::test::StartChild;
using ::mapkv::test::TempDir;
using ::mapkv::test::WaitChild;

// Tiny initial sizes, so that the file and the index grow while several processes use them.
Options TinyOptions() {
  Options options;
  options.initial_file_size = 1 << 20;
  options.initial_index_slots = 64;
  options.max_file_size = 1ull << 30;
  options.lock_timeout = std::chrono::milliseconds(10000);
  return options;
}

std::string CounterKey(int proc) { return absl::StrCat("p", proc); }
std::string MirrorKey(int proc) { return absl::StrCat("p", proc, "/mirror"); }
std::string DataKey(int proc, uint64_t slot) { return absl::StrCat("p", proc, "/d", slot); }
constexpr uint64_t kDataSlots = 50;

// The size of the value that writer `proc` stores in its data slot at commit `n`: mostly small,
// sometimes 64 KiB, so that the file grows while the processes run.
size_t DataSize(int proc, uint64_t n) {
  test::Rng rng(test::MixSeed(CounterKey(proc), n));
  return rng() % 16 == 0 ? (64 << 10) : rng() % 3000;
}
std::string DataValue(int proc, uint64_t n) {
  const std::string key = DataKey(proc, n % kDataSlots);
  return test::StampedValue(key, n, DataSize(proc, n));
}

// Reads every writer's counter in one ReadTxn: checks each counter equals its mirror (both keys are
// written by one transaction) and never goes backwards. Returns 0 or a failure exit code.
int CheckCounters(DB* db, int writers, std::vector<uint64_t>* last_seen) {
  auto txn = db->BeginRead();
  CHILD_CHECK_OK(txn);
  for (int j = 0; j < writers; ++j) {
    auto counter = txn->Get(CounterKey(j));
    auto mirror = txn->Get(MirrorKey(j));
    if (absl::IsNotFound(counter.status())) {
      CHILD_CHECK(absl::IsNotFound(mirror.status()), "p", j, " mirror without counter");
      CHILD_CHECK((*last_seen)[j] == 0, "p", j, " disappeared after ", (*last_seen)[j]);
      continue;
    }
    CHILD_CHECK_OK(counter, "p", j);
    CHILD_CHECK_OK(mirror, "p", j, "/mirror");
    CHILD_CHECK(*counter == *mirror, "p", j, " counter and mirror differ: torn transaction");
    uint64_t value = 0;
    CHILD_CHECK(test::ParseStamp(*counter, &value), "p", j, " holds garbage");
    CHILD_CHECK(value >= (*last_seen)[j], "p", j, " went back from ", (*last_seen)[j], " to ",
                value);
    (*last_seen)[j] = value;
  }
  return 0;
}

// Validates the final state written by `writers` writers that each made `iters` commits.
void ValidateFinal(DB* db, int writers, uint64_t iters) {
  for (int j = 0; j < writers; ++j) {
    EXPECT_OK_AND_EQ(db->Get(CounterKey(j)), test::Stamp(iters)) << "p" << j;
    EXPECT_OK_AND_EQ(db->Get(MirrorKey(j)), test::Stamp(iters)) << "p" << j;
    for (uint64_t slot = 0; slot < kDataSlots && slot < iters + 1; ++slot) {
      // The last commit n <= iters with n % kDataSlots == slot wrote this slot.
      uint64_t n = iters - ((iters + kDataSlots - slot) % kDataSlots);
      if (n == 0) continue;  // commits start at 1
      EXPECT_OK_AND_EQ(db->Get(DataKey(j, slot)), DataValue(j, n)) << "p" << j << " slot " << slot;
    }
  }
}

constexpr int kCounterWriters = 4;
constexpr int kCounterReaders = 2;

// Process `i` of WritersAndReadersSeeEachOthersCommits (a writer when i < kCounterWriters),
// released by end of file on `start`. Arguments: path, i, iters, the read end of `start`.
MAPKV_CHILD(CounterChild) {
  const std::string& path = args.at(0);
  const int i = args.Int<int>(1);
  const uint64_t iters = args.Int<uint64_t>(2);
  ChildPipe start = args.PipeEnd(3);
  auto opened = DB::Open(path, TinyOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  start.WaitByte();  // returns at end of file
  std::vector<uint64_t> last_seen(kCounterWriters, 0);
  const bool writer = i < kCounterWriters;
  if (writer) {
    for (uint64_t n = 1; n <= iters; ++n) {
      auto txn = db->BeginWrite();
      CHILD_CHECK_OK(txn);
      CHILD_CHECK_OK(txn->Put(CounterKey(i), test::Stamp(n)));
      CHILD_CHECK_OK(txn->Put(DataKey(i, n % kDataSlots), DataValue(i, n)));
      CHILD_CHECK_OK(txn->Put(MirrorKey(i), test::Stamp(n)));
      CHILD_CHECK_OK(txn->Commit());
      // Own commit visible at once, through DB::Get as well as a ReadTxn.
      auto own = db->Get(CounterKey(i));
      CHILD_CHECK_OK(own);
      CHILD_CHECK(*own == test::Stamp(n), "own counter not visible after Commit");
      if (int rc = CheckCounters(db.get(), kCounterWriters, &last_seen); rc != 0) return rc;
      CHILD_CHECK(last_seen[i] == n);
    }
  }
  // Everyone waits until it has seen every writer's final value, however long the writers take:
  // only a minute in which no counter moved is a failure (a hang).
  std::vector<uint64_t> seen_at_progress = last_seen;
  auto progress = std::chrono::steady_clock::now();
  for (;;) {
    if (int rc = CheckCounters(db.get(), kCounterWriters, &last_seen); rc != 0) return rc;
    bool all = true;
    for (uint64_t v : last_seen) all = all && v == iters;
    if (all) break;
    if (last_seen != seen_at_progress) {
      seen_at_progress = last_seen;
      progress = std::chrono::steady_clock::now();
    }
    CHILD_CHECK(std::chrono::steady_clock::now() - progress < std::chrono::seconds(60),
                "never saw the final values: no counter moved in 60 s");
    if (!writer) continue;  // readers spin: they read as often as they can
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return 0;
}

TEST(MultiprocessTest, WritersAndReadersSeeEachOthersCommits) {
  TempDir dir;
  const std::string path = dir.File("mp.mapkv");
  const int kWriters = kCounterWriters;
  const uint64_t iters = static_cast<uint64_t>(test::EnvInt("MAPKV_MP_ITERS", 400));
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, TinyOptions()));  // created before the children
  }
  Pipe start;  // closed by the parent to release every child at once
  std::vector<int> pids;
  for (int i = 0; i < kCounterWriters + kCounterReaders; ++i) {
    pids.push_back(StartChild("CounterChild", {path, i, iters, start.ReadEndArg()}));
  }
  start.CloseWrite();
  for (size_t i = 0; i < pids.size(); ++i) {
    const int status = WaitChild(pids[i], std::chrono::seconds(300));
    EXPECT_EQ(status, 0) << "child " << i << ": " << test::ExitStatusToString(status);
  }
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, TinyOptions()));
  ValidateFinal(db.get(), kWriters, iters);
  const Stats stats = db->GetStats();
  EXPECT_EQ(stats.keys,
            static_cast<uint64_t>(kWriters) * (2 + std::min<uint64_t>(iters, kDataSlots)));
  EXPECT_GE(stats.commits, kWriters * iters);
  EXPECT_GT(stats.file_size, 1u << 20) << "the file never grew";
  EXPECT_EQ(stats.open_handles, 1u) << "a child's handle is still counted";
}

// Growth made by one process (file and index) is picked up by processes that opened the database
// before it, without a reopen, while they keep reading.
constexpr int kGrowthReaders = 3;
constexpr int kGrowthKeys = 20000;
std::string GrowthKey(int i) { return absl::StrCat("g", i); }
std::string GrowthValue(int i) {
  return test::StampedValue(GrowthKey(i), 1, 100 + static_cast<size_t>(i) % 300);
}

// A reader of GrowthInOneProcessIsSeenByTheOthers: opens the database before it grows, says so with
// a byte on `ready`, and reads while the grower writes. Arguments: path, r, the write end of
// `ready`.
MAPKV_CHILD(GrowthReaderChild) {
  const std::string& path = args.at(0);
  const int r = args.Int<int>(1);
  ChildPipe ready = args.PipeEnd(2);
  auto opened = DB::Open(path, TinyOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  const Stats before = db->GetStats();
  CHILD_CHECK(before.index_capacity == 64, "index already grew: ", before.index_capacity);
  CHILD_CHECK(ready.Write("r"));
  test::Rng rng(r);
  // However long the grower takes: only a minute without a commit is a failure (a hang).
  uint64_t commits_at_progress = before.commits;
  auto progress = std::chrono::steady_clock::now();
  for (;;) {
    // While the writer grows the file: random reads must give the right value or NotFound.
    for (int j = 0; j < 20; ++j) {
      const int i = static_cast<int>(test::Uniform(rng, 0, kGrowthKeys - 1));
      auto got = db->Get(GrowthKey(i));
      if (absl::IsNotFound(got.status())) continue;
      CHILD_CHECK_OK(got, GrowthKey(i));
      CHILD_CHECK(*got == GrowthValue(i), "wrong value for ", GrowthKey(i));
    }
    auto done = db->Get("grown");
    if (done.ok()) break;
    CHILD_CHECK(absl::IsNotFound(done.status()), done.status().ToString());
    if (const uint64_t commits = db->GetStats().commits; commits != commits_at_progress) {
      commits_at_progress = commits;
      progress = std::chrono::steady_clock::now();
    }
    CHILD_CHECK(std::chrono::steady_clock::now() - progress < std::chrono::seconds(60),
                "never saw \"grown\": no commit in 60 s");
  }
  auto txn = db->BeginRead();
  CHILD_CHECK_OK(txn);
  CHILD_CHECK(txn->Count() == kGrowthKeys + 2, "Count ", txn->Count());
  for (int i = 0; i < kGrowthKeys; ++i) {
    auto got = txn->Get(GrowthKey(i));
    CHILD_CHECK_OK(got, GrowthKey(i));
    CHILD_CHECK(*got == GrowthValue(i), "wrong value for ", GrowthKey(i));
  }
  const Stats after = db->GetStats();
  CHILD_CHECK(after.file_size > before.file_size, "file_size ", after.file_size);
  CHILD_CHECK(after.index_capacity > before.index_capacity, "index ", after.index_capacity);
  CHILD_CHECK(after.keys == kGrowthKeys + 2, "keys ", after.keys);
  return 0;
}

// The grower: once every reader is ready (a byte each on `ready`), writes kGrowthKeys keys, then
// "grown". Arguments: path, the read end of `ready`.
MAPKV_CHILD(GrowerChild) {
  const std::string& path = args.at(0);
  ChildPipe ready = args.PipeEnd(1);
  auto opened = DB::Open(path, TinyOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  for (int r = 0; r < kGrowthReaders; ++r)
    CHILD_CHECK(ready.WaitByte(), "a reader never got ready");
  for (int i = 0; i < kGrowthKeys;) {
    auto txn = db->BeginWrite();
    CHILD_CHECK_OK(txn);
    for (int end = i + 200; i < end; ++i) CHILD_CHECK_OK(txn->Put(GrowthKey(i), GrowthValue(i)));
    CHILD_CHECK_OK(txn->Commit());
  }
  CHILD_CHECK_OK(db->Put("grown", "1"));
  return 0;
}

TEST(MultiprocessTest, GrowthInOneProcessIsSeenByTheOthers) {
  TempDir dir;
  const std::string path = dir.File("grow.mapkv");
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, TinyOptions()));
    ASSERT_OK(db->Put("seed", "1"));
  }
  Pipe ready;  // each reader writes one byte once it has opened the database
  std::vector<int> pids;
  for (int r = 0; r < kGrowthReaders; ++r) {
    pids.push_back(StartChild("GrowthReaderChild", {path, r, ready.WriteEndArg()}));
  }
  const int grower = StartChild("GrowerChild", {path, ready.ReadEndArg()});
  ready.CloseWrite();
  ready.CloseRead();
  for (int r = 0; r < kGrowthReaders; ++r) {
    const int status = WaitChild(pids[r], std::chrono::seconds(300));
    EXPECT_EQ(status, 0) << "reader " << r << ": " << test::ExitStatusToString(status);
  }
  const int status = WaitChild(grower, std::chrono::seconds(300));
  EXPECT_EQ(status, 0) << "grower: " << test::ExitStatusToString(status);
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, TinyOptions()));
  EXPECT_EQ(db->GetStats().keys, static_cast<uint64_t>(kGrowthKeys + 2));
  for (int i = 0; i < kGrowthKeys; i += 7) EXPECT_OK_AND_EQ(db->Get(GrowthKey(i)), GrowthValue(i));
}

constexpr int kLateWriters = 2;
constexpr int kLateKeys = 3000;
std::string LateKey(int w, int i) { return absl::StrCat("w", w, "/", i); }
std::string LateValue(int w, int i) { return test::StampedValue(LateKey(w, i), w, i % 700); }

// A writer of LateOpenerSeesEverything: commits its keys, deletes its first, writes a byte on
// `done`, and keeps the database open until end of file on `release`. Arguments: path, w, the
// write end of `done`, the read end of `release`.
MAPKV_CHILD(LateWriterChild) {
  const std::string& path = args.at(0);
  const int w = args.Int<int>(1);
  ChildPipe done = args.PipeEnd(2);
  ChildPipe release = args.PipeEnd(3);
  auto opened = DB::Open(path, TinyOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  for (int i = 0; i < kLateKeys;) {
    auto txn = db->BeginWrite();
    CHILD_CHECK_OK(txn);
    for (int end = i + 100; i < end; ++i) CHILD_CHECK_OK(txn->Put(LateKey(w, i), LateValue(w, i)));
    CHILD_CHECK_OK(txn->Commit());
  }
  CHILD_CHECK_OK(db->Delete(LateKey(w, 0)));
  CHILD_CHECK(done.Write("d"));
  release.WaitByte(std::chrono::seconds(300));  // end of file when the parent closes it
  return 0;
}

// Opens `path` and checks that it holds exactly what the late writers left. 0 or a failure code.
int CheckLateContent(const std::string& path) {
  auto opened = DB::Open(path, TinyOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  auto txn = db->BeginRead();
  CHILD_CHECK_OK(txn);
  CHILD_CHECK(txn->Count() == kLateWriters * (kLateKeys - 1), "Count ", txn->Count());
  for (int w = 0; w < kLateWriters; ++w) {
    CHILD_CHECK(absl::IsNotFound(txn->Get(LateKey(w, 0)).status()), "deleted key visible");
    for (int i = 1; i < kLateKeys; ++i) {
      auto got = txn->Get(LateKey(w, i));
      CHILD_CHECK_OK(got, LateKey(w, i));
      CHILD_CHECK(*got == LateValue(w, i), "wrong value for ", LateKey(w, i));
    }
  }
  return 0;
}

// Arguments: path.
MAPKV_CHILD(LateOpenerChild) { return CheckLateContent(args.at(0)); }

// A process that opens the database after others committed sees everything: first while the
// writers still have it open (it joins), then after they all closed (the parent opens it first).
TEST(MultiprocessTest, LateOpenerSeesEverything) {
  TempDir dir;
  const std::string path = dir.File("late.mapkv");
  Pipe done;     // a writer writes a byte when it has committed everything
  Pipe release;  // closed by the parent when the writers may close the database
  std::vector<int> writers;
  for (int w = 0; w < kLateWriters; ++w) {
    writers.push_back(
        StartChild("LateWriterChild", {path, w, done.WriteEndArg(), release.ReadEndArg()}));
  }
  done.CloseWrite();
  release.CloseRead();
  for (int w = 0; w < kLateWriters; ++w) ASSERT_TRUE(done.WaitByte()) << "a writer failed";

  // Joins while both writers hold the database open.
  int status = RunChild("LateOpenerChild", {path});
  EXPECT_EQ(status, 0) << "late opener: " << test::ExitStatusToString(status);

  release.CloseWrite();
  for (int w = 0; w < kLateWriters; ++w) {
    status = WaitChild(writers[w]);
    EXPECT_EQ(status, 0) << "writer " << w << ": " << test::ExitStatusToString(status);
  }
  // First opener after everyone closed.
  status = RunChild("LateOpenerChild", {path});
  EXPECT_EQ(status, 0) << "opener after close: " << test::ExitStatusToString(status);
  EXPECT_EQ(CheckLateContent(path), 0);  // and the parent itself
}

// One of ConcurrentCreate's processes: once `start` reaches end of file, opens (creating) the
// database and puts its key. Arguments: path, i, the read end of `start`.
MAPKV_CHILD(CreatorChild) {
  const std::string& path = args.at(0);
  const int i = args.Int<int>(1);
  ChildPipe start = args.PipeEnd(2);
  start.WaitByte();  // end of file: go
  auto opened = DB::Open(path, TinyOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  CHILD_CHECK_OK(db->Put(absl::StrCat("c", i), absl::StrCat(i)));
  return 0;
}

// Several processes create the missing file at the same moment: one creates it, the others join.
TEST(MultiprocessTest, ConcurrentCreate) {
  TempDir dir;
  constexpr int kProcs = 4;
  for (int round = 0; round < 5; ++round) {
    const std::string path = dir.File(absl::StrCat("create", round, ".mapkv"));
    Pipe start;
    std::vector<int> pids;
    for (int i = 0; i < kProcs; ++i) {
      pids.push_back(StartChild("CreatorChild", {path, i, start.ReadEndArg()}));
    }
    start.CloseWrite();
    for (int i = 0; i < kProcs; ++i) {
      const int status = WaitChild(pids[i]);
      EXPECT_EQ(status, 0) << "round " << round << " child " << i << ": "
                           << test::ExitStatusToString(status);
    }
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, TinyOptions()));
    EXPECT_EQ(db->GetStats().keys, static_cast<uint64_t>(kProcs)) << "round " << round;
    for (int i = 0; i < kProcs; ++i) {
      EXPECT_OK_AND_EQ(db->Get(absl::StrCat("c", i)), absl::StrCat(i)) << "round " << round;
    }
  }
}

// A handle opened before fork() fails every call in the child with FailedPrecondition and leaves
// the parent's handle and the file intact. The child can open its own handle. (The child must be a
// copy of this process, with the handle: ForkInheriting.)
TEST(MultiprocessTest, PreForkHandleFailsInChild) {
  if (!test::HasFork()) GTEST_SKIP() << "about a handle inherited across fork(); no fork() here";
  TempDir dir;
  const std::string path = dir.File("fork.mapkv");
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, TinyOptions()));
  ASSERT_OK(db->Put("a", "1"));
  ASSERT_OK(db->Put("b", "2"));

  const int status = WaitChild(ForkInheriting([&]() -> int {
    CHILD_CHECK(db->Get("a").status().code() == StatusCode::kFailedPrecondition,
                db->Get("a").status().ToString());
    CHILD_CHECK(db->Put("a", "child").code() == StatusCode::kFailedPrecondition);
    CHILD_CHECK(db->Put("c", "child").code() == StatusCode::kFailedPrecondition);
    CHILD_CHECK(db->Delete("b").code() == StatusCode::kFailedPrecondition);
    CHILD_CHECK(db->BeginRead().status().code() == StatusCode::kFailedPrecondition);
    CHILD_CHECK(db->BeginWrite().status().code() == StatusCode::kFailedPrecondition);
    CHILD_CHECK(db->Checkpoint().code() == StatusCode::kFailedPrecondition);
    (void)db->GetStats();  // must not crash; no status to check
    // The child's own handle works.
    auto opened = DB::Open(path, TinyOptions());
    CHILD_CHECK_OK(opened);
    std::unique_ptr<DB> own = std::move(*opened);
    auto a = own->Get("a");
    CHILD_CHECK_OK(a);
    CHILD_CHECK(*a == "1");
    CHILD_CHECK_OK(own->Put("from_child", "yes"));
    return 0;  // `own` closes; the parent's handle copy is left alone (no destructor runs)
  }));
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);

  EXPECT_OK_AND_EQ(db->Get("a"), "1");
  EXPECT_OK_AND_EQ(db->Get("b"), "2");
  EXPECT_STATUS(db->Get("c"), StatusCode::kNotFound);
  EXPECT_OK_AND_EQ(db->Get("from_child"), "yes");
  ASSERT_OK(db->Put("after", "3"));
  EXPECT_EQ(db->GetStats().keys, 4u);
  EXPECT_EQ(db->GetStats().open_handles, 1u);
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, DB::Open(path, TinyOptions()));
  EXPECT_EQ(db->GetStats().keys, 4u);
  EXPECT_OK_AND_EQ(db->Get("after"), "3");
}

// A fresh process's writer: with the parent holding a WriteTxn, BeginWrite times out and the
// parent's uncommitted "c" is invisible. Arguments: path.
MAPKV_CHILD(SecondWriterChild) {
  Options options = TinyOptions();
  options.lock_timeout = std::chrono::milliseconds(300);
  auto opened = DB::Open(args.at(0), options);
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> own = std::move(*opened);
  auto second = own->BeginWrite();
  CHILD_CHECK(second.status().code() == StatusCode::kDeadlineExceeded,
              "second writer: ", second.status().ToString());
  CHILD_CHECK(absl::IsNotFound(own->Get("c").status()), "uncommitted write visible");
  return 0;
}

// A fresh process finds "a", "b" and "c" and puts "d". Arguments: path.
MAPKV_CHILD(ReadABCPutDChild) {
  auto opened = DB::Open(args.at(0), TinyOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> own = std::move(*opened);
  for (const char* key : {"a", "b", "c"}) CHILD_CHECK_OK(own->Get(key), key);
  CHILD_CHECK_OK(own->Put("d", "4"));
  return 0;
}

// Destroying the inherited handle in the child (as exit() would, for a static handle) does not
// release the parent's locks or reader slot.
TEST(MultiprocessTest, PreForkHandleDestroyedInChildIsHarmless) {
  if (!test::HasFork()) GTEST_SKIP() << "about a handle inherited across fork(); no fork() here";
  TempDir dir;
  const std::string path = dir.File("fork.mapkv");
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, TinyOptions()));
  ASSERT_OK(db->Put("a", "1"));
  int status = WaitChild(ForkInheriting([&]() -> int {
    db.reset();
    return 0;
  }));
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
  EXPECT_OK_AND_EQ(db->Get("a"), "1");
  ASSERT_OK(db->Put("b", "2"));
  EXPECT_EQ(db->GetStats().open_handles, 1u);

  // The parent still holds its writer lock properly: while it has a WriteTxn open, a fresh
  // process cannot begin another one.
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    ASSERT_OK(txn.Put("c", "3"));
    status = RunChild("SecondWriterChild", {path});
    EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
    ASSERT_OK(txn.Commit());
  }
  status = RunChild("ReadABCPutDChild", {path});
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
  EXPECT_OK_AND_EQ(db->Get("d"), "4");
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, DB::Open(path, TinyOptions()));
  EXPECT_EQ(db->GetStats().keys, 4u);
}

}  // namespace
}  // namespace mapkv
