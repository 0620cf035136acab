// Process crashes: a child commits stamped transactions and is killed (SIGKILL; TerminateProcess on
// Windows) at a random moment; the database must then show every acknowledged commit and no part
// of an unfinished one.
//
// Each transaction writes the same stamp (its number) to the keys k0..k4, in random order among a
// few random other keys ("r<n>", each value self-describing: see test::StampedValue). The child
// writes the stamp to a pipe after Commit() returns OK. After the kill:
//   - k0..k4 all hold one stamp s (no partial transaction), and
//   - s is the last acknowledged stamp or the one after it (committed, killed before the ack).
//
// MAPKV_CRASH_KILLS sets the number of kills (default 200); the survivor variant does a quarter.
// A killed writer makes at most kMaxCommitsPerWriter commits, so that the files stay far below
// their limit however fast the machine commits in the milliseconds before a kill.
//
// Every child is a MAPKV_CHILD that opens the database itself, from its path (test_util.h).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "test_util.h"
#include "testing/subprocess.h"

namespace mapkv {
namespace {

using ::mapkv::test::ChildPipe;
using ::mapkv::test::kKilledStatus;
using ::mapkv::test::Pipe;
using ::mapkv::test::Rng;
using ::mapkv::test::StartChild;
using ::mapkv::test::TempDir;
using ::mapkv::test::Uniform;
using ::mapkv::test::WaitChild;

constexpr int kStampKeys = 5;
constexpr uint64_t kRandomKeys = 3000;

Options CrashOptions() {
  Options options;
  options.initial_file_size = 1 << 20;  // growth happens during the kill runs
  options.initial_index_slots = 64;
  options.max_file_size = 2ull << 30;
  options.lock_timeout = std::chrono::milliseconds(10000);
  return options;
}

std::string StampKey(int i) { return absl::StrCat("k", i); }

size_t RandomValueSize(Rng& rng) {
  const uint64_t kind = Uniform(rng, 0, 99);
  if (kind == 0) return Uniform(rng, 64 << 10, 256 << 10);
  if (kind < 10) return Uniform(rng, 1000, 8000);
  return Uniform(rng, 0, 300);
}

// Reads k0..k4 in one ReadTxn. Sets *stamp to their common stamp (0 when none exists yet).
absl::Status ReadStamp(DB* db, uint64_t* stamp) {
  auto txn = db->BeginRead();
  if (!txn.ok()) return txn.status();
  std::optional<std::string> first;
  for (int i = 0; i < kStampKeys; ++i) {
    auto got = txn->Get(StampKey(i));
    std::string value;
    if (got.ok()) {
      value = std::string(*got);
    } else if (absl::IsNotFound(got.status())) {
      value = "absent";
    } else {
      return got.status();
    }
    if (!first) first = value;
    if (value != *first) {
      return absl::InternalError(
          absl::StrCat("partial transaction visible: k0=", *first, " ", StampKey(i), "=", value));
    }
  }
  if (*first == "absent") {
    *stamp = 0;
    return absl::OkStatus();
  }
  if (!test::ParseStamp(*first, stamp) || first->size() != 20) {
    return absl::InternalError(absl::StrCat("k0 holds garbage: ", test::Describe(*first)));
  }
  return absl::OkStatus();
}

// Checks every key of the database: stamp keys agree, random keys hold a value written for them by
// a transaction no later than the stamp. Sets *stamp.
absl::Status VerifyAll(DB* db, uint64_t* stamp) {
  if (absl::Status s = ReadStamp(db, stamp); !s.ok()) return s;
  auto txn = db->BeginRead();
  if (!txn.ok()) return txn.status();
  std::string problem;
  uint64_t visited = 0;
  absl::Status status = txn->ForEach([&](std::string_view key, std::string_view value) {
    ++visited;
    if (key.size() == 2 && key[0] == 'k') return true;  // checked by ReadStamp
    if (key.size() == 2 && key[0] == 'b')
      return true;  // the survivor's keys: checked by the caller
    uint64_t version = 0;
    if (key.empty() || key[0] != 'r' || !test::CheckStampedValue(key, value, &version)) {
      problem =
          absl::StrCat("unexpected entry ", test::Describe(key), " = ", test::Describe(value));
      return false;
    }
    if (version > *stamp) {
      problem = absl::StrCat(std::string(key), " written by transaction ", version,
                             " but the stamp keys say ", *stamp);
      return false;
    }
    return true;
  });
  if (!status.ok()) return status;
  if (!problem.empty()) return absl::InternalError(problem);
  if (visited != txn->Count()) {
    return absl::InternalError(absl::StrCat("ForEach visited ", visited, ", Count ", txn->Count()));
  }
  return absl::OkStatus();
}

// StampWriterChild's check_from when it has none.
constexpr std::string_view kNoCheck = "none";

// The most commits of one StampWriterChild: some ten times what one makes before its kill on a
// 2-core machine. A file takes kKillsPerFile writers: some 4 KiB a commit, a few hundred MiB at
// most, far below CrashOptions' max_file_size.
constexpr uint64_t kMaxCommitsPerWriter = 2000;

// The killed child: sends the stamp it finds on `ack`, then commits transactions stamped with the
// following numbers and acknowledges each on `ack` once Commit() returned OK; after
// kMaxCommitsPerWriter of them it waits to be killed. If `check_from` is a number, first verifies
// that the stamp it finds is check_from or check_from + 1. Arguments: path, seed (of its random
// keys and sizes), the write end of `ack`, check_from or kNoCheck.
MAPKV_CHILD(StampWriterChild) {
  const std::string& path = args.at(0);
  const uint64_t seed = args.Int<uint64_t>(1);
  ChildPipe ack = args.PipeEnd(2);
  std::optional<uint64_t> check_from;
  if (args.at(3) != kNoCheck) check_from = args.Int<uint64_t>(3);
  auto opened = DB::Open(path, CrashOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  uint64_t stamp = 0;
  CHILD_CHECK_OK(ReadStamp(db.get(), &stamp));
  if (check_from) {
    CHILD_CHECK(stamp == *check_from || stamp == *check_from + 1, "found stamp ", stamp,
                " after the last acknowledged ", *check_from);
  }
  CHILD_CHECK(ack.WriteU64(stamp), "ack pipe");
  Rng rng(seed);
  for (uint64_t n = stamp + 1;; ++n) {
    if (n > stamp + kMaxCommitsPerWriter) {
      for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    }
    auto txn = db->BeginWrite();
    CHILD_CHECK_OK(txn);
    const std::string value = test::Stamp(n);
    const uint64_t extra = Uniform(rng, 0, 4);
    // Positions of the stamp keys among the extra writes, so a torn commit shows as a mismatch.
    std::vector<int> order;
    for (int i = 0; i < kStampKeys; ++i) order.push_back(i);
    for (uint64_t i = 0; i < extra; ++i) order.push_back(-1);
    std::shuffle(order.begin(), order.end(), rng);
    for (int item : order) {
      if (item >= 0) {
        CHILD_CHECK_OK(txn->Put(StampKey(item), value));
        continue;
      }
      const std::string key = absl::StrCat("r", Uniform(rng, 0, kRandomKeys - 1));
      if (Uniform(rng, 0, 4) == 0) {
        CHILD_CHECK_OK(txn->Delete(key));
      } else {
        CHILD_CHECK_OK(txn->Put(key, test::StampedValue(key, n, RandomValueSize(rng))));
      }
    }
    CHILD_CHECK_OK(txn->Commit());
    CHILD_CHECK(ack.WriteU64(n), "ack pipe");
  }
}

// When to kill: a quarter of the kills at a random moment up to 3 ms after the child was started
// (while it starts, opens the database and maybe recovers it), half up to 6 ms after the child
// reported that it opened the database (in the middle of its stream of commits), and a quarter up
// to 1 ms after its first 1 to 50 acknowledged commits: those are kills after a commit on a
// machine of any speed.
struct KillTime {
  bool after_open;
  uint64_t acks;  // acknowledged commits to wait for after the open
  std::chrono::microseconds delay;
};
KillTime RandomKillTime(Rng& rng) {
  switch (Uniform(rng, 0, 3)) {
    case 0:
      return {false, 0, std::chrono::microseconds(Uniform(rng, 0, 3000))};
    case 1:
      return {true, Uniform(rng, 1, 50), std::chrono::microseconds(Uniform(rng, 0, 1000))};
    default:
      return {true, 0, std::chrono::microseconds(Uniform(rng, 0, 6000))};
  }
}

// Parent side of one kill: lets the child run until `when`, kills it, reaps it and collects what
// it sent. Sets *last_ack to the highest stamp known committed: the last acknowledged one, or the
// one the child found at open, or `none` if the child sent nothing; *acks to the number of
// acknowledged commits. If `expect_found` is set, the child must have found that stamp.
void KillAfter(int pid, Pipe& ack, KillTime when, uint64_t none,
               std::optional<uint64_t> expect_found, uint64_t* last_ack, uint64_t* acks) {
  std::string bytes;
  if (when.after_open) {  // the child's first message says it opened the database
    const size_t want = (1 + when.acks) * sizeof(uint64_t);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (bytes.size() < want && std::chrono::steady_clock::now() < deadline) {
      if (!ack.ReadUntil(std::chrono::steady_clock::now() + std::chrono::milliseconds(1), &bytes)) {
        break;  // end of file: the child ended
      }
    }
  }
  ack.ReadUntil(std::chrono::steady_clock::now() + when.delay, &bytes);
  const int status = test::KillChild(pid);
  bytes += ack.ReadAll();
  EXPECT_EQ(status, kKilledStatus)
      << "the writer ended by itself: " << test::ExitStatusToString(status);
  const std::vector<uint64_t> values = Pipe::DecodeU64s(bytes);
  if (!values.empty() && expect_found) {
    EXPECT_EQ(values[0], *expect_found) << "the child found another stamp than the parent";
  }
  for (size_t i = 1; i < values.size(); ++i) {
    EXPECT_EQ(values[i], values[i - 1] + 1) << "acknowledgements out of order";
  }
  *acks = values.empty() ? 0 : values.size() - 1;
  *last_ack = values.empty() ? none : values.back();
}

TEST(CrashTest, KilledWriterLosesNothingAcknowledgedAndShowsNoPartialCommit) {
  const int64_t kills = test::EnvInt("MAPKV_CRASH_KILLS", 200);
  constexpr int kKillsPerFile = 40;  // a fresh file now and then bounds the file size
  TempDir dir;
  Rng rng(0xC0FFEE);
  std::string path;
  uint64_t current = 0;  // the stamp in the database
  uint64_t total_acks = 0, unacked_commits = 0, kills_with_acks = 0, max_file = 0;
  uint64_t rebuilt = 0, recovered = 0;
  for (int64_t kill_no = 0; kill_no < kills; ++kill_no) {
    SCOPED_TRACE(absl::StrCat("kill ", kill_no, " file ", path));
    if (kill_no % kKillsPerFile == 0) {
      if (!path.empty()) std::remove(path.c_str());
      path = dir.File(absl::StrCat("crash", kill_no / kKillsPerFile, ".mapkv"));
      current = 0;
    }
    Pipe ack;
    const uint64_t seed = rng();
    const int pid = StartChild("StampWriterChild", {path, seed, ack.WriteEndArg(), kNoCheck});
    ASSERT_GT(pid, 0);
    ack.CloseWrite();
    uint64_t last_ack = 0, acks = 0;
    KillAfter(pid, ack, RandomKillTime(rng), current, current, &last_ack, &acks);
    if (HasFailure()) return;
    total_acks += acks;
    kills_with_acks += acks > 0;

    // Reopen (first opener after a dead writer: recovery) and check.
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, CrashOptions()));
    uint64_t stamp = 0;
    ASSERT_OK(VerifyAll(db.get(), &stamp));
    ASSERT_TRUE(stamp == last_ack || stamp == last_ack + 1)
        << "stamp " << stamp << ", last acknowledged " << last_ack << " (" << acks
        << " acknowledged by this child)";
    unacked_commits += stamp == last_ack + 1;
    current = stamp;
    const Stats stats = db->GetStats();
    max_file = std::max(max_file, stats.file_size);
    rebuilt += stats.rebuilt_index;
    recovered += stats.recovered_commits;
  }
  std::printf(
      "%lld kills, %llu acknowledged commits, %llu kills after at least one commit, %llu "
      "commits found without an ack, largest file %llu bytes, recovered_commits %llu, "
      "index rebuilds %llu\n",
      static_cast<long long>(kills), static_cast<unsigned long long>(total_acks),
      static_cast<unsigned long long>(kills_with_acks),
      static_cast<unsigned long long>(unacked_commits), static_cast<unsigned long long>(max_file),
      static_cast<unsigned long long>(recovered), static_cast<unsigned long long>(rebuilt));
  EXPECT_GT(kills_with_acks, 0u) << "no kill came after a commit";
}

// The survivor of SurvivorKeepsWritingWhileWritersAreKilled: commits its own stamp m = 1, 2, ...
// to b0..b4 and checks the killed writers' stamp keys after each commit, until end of file on
// `stop`; then sends m and its longest wait for the writer lock (microseconds) on `report`.
// Arguments: path, the read end of `stop`, the write end of `report`.
MAPKV_CHILD(SurvivorChild) {
  const std::string& path = args.at(0);
  ChildPipe stop = args.PipeEnd(1);
  ChildPipe report = args.PipeEnd(2);
  auto opened = DB::Open(path, CrashOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  uint64_t last_stamp = 0;
  int64_t max_wait_us = 0;
  uint64_t m = 0;
  while (!stop.Readable()) {
    ++m;
    const auto begin = std::chrono::steady_clock::now();
    auto txn = db->BeginWrite();
    max_wait_us =
        std::max<int64_t>(max_wait_us, std::chrono::duration_cast<std::chrono::microseconds>(
                                           std::chrono::steady_clock::now() - begin)
                                           .count());
    CHILD_CHECK_OK(txn, "survivor BeginWrite");
    for (int i = 0; i < kStampKeys; ++i) {
      CHILD_CHECK_OK(txn->Put(absl::StrCat("b", i), test::Stamp(m)));
    }
    CHILD_CHECK_OK(txn->Commit(), "survivor Commit");
    // The killed writers' stamp keys are never torn and never go back.
    uint64_t stamp = 0;
    CHILD_CHECK_OK(ReadStamp(db.get(), &stamp));
    CHILD_CHECK(stamp >= last_stamp, "stamp went back from ", last_stamp, " to ", stamp);
    last_stamp = stamp;
    auto own = db->Get("b0");
    CHILD_CHECK_OK(own);
    CHILD_CHECK(*own == test::Stamp(m), "survivor's own commit not visible");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  CHILD_CHECK(report.WriteU64(m) && report.WriteU64(static_cast<uint64_t>(max_wait_us)));
  return 0;
}

// Recovery by the next writer: a survivor process keeps the database open and keeps writing while
// writers are killed beside it; nobody reopens the database between kills. Each new killed writer
// opens while the survivor holds the file (it joins, it is not the first opener).
TEST(CrashTest, SurvivorKeepsWritingWhileWritersAreKilled) {
  const int64_t rounds = std::max<int64_t>(10, test::EnvInt("MAPKV_CRASH_KILLS", 200) / 4);
  TempDir dir;
  const std::string path = dir.File("survivor.mapkv");
  { ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, CrashOptions())); }
  Pipe stop;    // closed by the parent to stop the survivor
  Pipe report;  // the survivor's last stamp and its longest wait for the writer lock
  const int survivor = StartChild("SurvivorChild", {path, stop.ReadEndArg(), report.WriteEndArg()});
  ASSERT_GT(survivor, 0);
  stop.CloseRead();
  report.CloseWrite();

  Rng rng(0xBADC0DE);
  uint64_t last_ack = 0;
  uint64_t total_acks = 0;
  for (int64_t round = 0; round < rounds; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    Pipe ack;
    const uint64_t seed = rng();
    const uint64_t check_from = last_ack;
    const int pid = StartChild("StampWriterChild", {path, seed, ack.WriteEndArg(), check_from});
    ASSERT_GT(pid, 0);
    ack.CloseWrite();
    uint64_t acks = 0;
    uint64_t this_ack = 0;
    KillAfter(pid, ack, RandomKillTime(rng), last_ack, std::nullopt, &this_ack, &acks);
    if (HasFailure()) break;
    last_ack = this_ack;
    total_acks += acks;
    const absl::StatusOr<int> ended = tools::WaitExitStatus(survivor, std::chrono::milliseconds(0));
    ASSERT_TRUE(absl::IsDeadlineExceeded(ended.status()))
        << "the survivor ended early: "
        << (ended.ok() ? test::ExitStatusToString(*ended) : ended.status().ToString());
  }
  stop.CloseWrite();
  const int status = WaitChild(survivor, std::chrono::seconds(60));
  EXPECT_EQ(status, 0) << "survivor: " << test::ExitStatusToString(status);
  const std::vector<uint64_t> values = Pipe::DecodeU64s(report.ReadAll());
  ASSERT_EQ(values.size(), 2u) << "the survivor sent no report";
  std::printf(
      "%lld rounds, %llu acknowledged commits by the killed writers, %llu survivor "
      "commits, longest survivor wait for the writer lock %.3f ms\n",
      static_cast<long long>(rounds), static_cast<unsigned long long>(total_acks),
      static_cast<unsigned long long>(values[0]), static_cast<double>(values[1]) / 1000);
  EXPECT_LT(values[1], 5000000u) << "a dead writer blocked the survivor for more than 5 s";

  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, CrashOptions()));
  uint64_t stamp = 0;
  ASSERT_OK(VerifyAll(db.get(), &stamp));
  EXPECT_TRUE(stamp == last_ack || stamp == last_ack + 1)
      << "stamp " << stamp << ", last acknowledged " << last_ack;
  for (int i = 0; i < kStampKeys; ++i) {
    EXPECT_OK_AND_EQ(db->Get(absl::StrCat("b", i)), test::Stamp(values[0]));
  }
}

// Opens the database, begins a ReadTxn, says so with a byte on `ready` and waits to be killed.
// Arguments: path, the write end of `ready`.
MAPKV_CHILD(ReaderToKillChild) {
  const std::string& path = args.at(0);
  ChildPipe ready = args.PipeEnd(1);
  auto opened = DB::Open(path, CrashOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> own = std::move(*opened);
  auto txn = own->BeginRead();
  CHILD_CHECK_OK(txn);
  CHILD_CHECK(ready.Write("r"));
  std::this_thread::sleep_for(std::chrono::seconds(120));  // killed long before
  return 2;
}

// A process killed while it holds a ReadTxn does not block writers for long.
TEST(CrashTest, KilledReaderDoesNotBlockWriters) {
  TempDir dir;
  const std::string path = dir.File("reader.mapkv");
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, CrashOptions()));
  ASSERT_OK(db->Put("a", "1"));
  Pipe ready;
  const int pid = StartChild("ReaderToKillChild", {path, ready.WriteEndArg()});
  ready.CloseWrite();
  ASSERT_TRUE(ready.WaitByte()) << "the reader never started";
  EXPECT_EQ(test::KillChild(pid), kKilledStatus);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_OK(db->Put("a", "2"));  // the commit waits for readers: the dead one must be cleared
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_LT(waited, std::chrono::seconds(3));
  EXPECT_OK_AND_EQ(db->Get("a"), "2");
  EXPECT_EQ(db->GetStats().open_handles, 1u);
}

// Opens the database, begins a WriteTxn with 1001 uncommitted puts (one overwrites "a"), says so
// with a byte on `ready` and waits to be killed. Arguments: path, the write end of `ready`.
MAPKV_CHILD(MidTxnWriterChild) {
  const std::string& path = args.at(0);
  ChildPipe ready = args.PipeEnd(1);
  auto opened = DB::Open(path, CrashOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> own = std::move(*opened);
  auto txn = own->BeginWrite();
  CHILD_CHECK_OK(txn);
  CHILD_CHECK_OK(txn->Put("a", "uncommitted"));
  for (int i = 0; i < 1000; ++i)
    CHILD_CHECK_OK(txn->Put(absl::StrCat("x", i), std::string(500, 'x')));
  CHILD_CHECK(ready.Write("w"));
  std::this_thread::sleep_for(std::chrono::seconds(120));
  return 2;
}

// A process killed in the middle of a write transaction: its writes never appear, and the next
// writer gets the lock soon.
TEST(CrashTest, KilledWriterMidTransactionReleasesTheLock) {
  TempDir dir;
  const std::string path = dir.File("midtxn.mapkv");
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, CrashOptions()));
  ASSERT_OK(db->Put("a", "1"));
  Pipe ready;
  const int pid = StartChild("MidTxnWriterChild", {path, ready.WriteEndArg()});
  ready.CloseWrite();
  ASSERT_TRUE(ready.WaitByte()) << "the writer never started";
  EXPECT_EQ(test::KillChild(pid), kKilledStatus);
  const auto start = std::chrono::steady_clock::now();
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
    EXPECT_OK_AND_EQ(txn.Get("a"), "1");
    EXPECT_STATUS(txn.Get("x0"), absl::StatusCode::kNotFound);
    ASSERT_OK(txn.Put("b", "2"));
    ASSERT_OK(txn.Commit());
  }
  EXPECT_OK_AND_EQ(db->Get("a"), "1");
  EXPECT_OK_AND_EQ(db->Get("b"), "2");
  EXPECT_STATUS(db->Get("x999"), absl::StatusCode::kNotFound);
  EXPECT_EQ(db->GetStats().keys, 2u);
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, DB::Open(path, CrashOptions()));
  EXPECT_OK_AND_EQ(db->Get("a"), "1");
  EXPECT_EQ(db->GetStats().keys, 2u);
}

}  // namespace
}  // namespace mapkv
