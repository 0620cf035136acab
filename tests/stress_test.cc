// Stress: 8 worker processes, each with 2 threads sharing one handle, run random puts, deletes,
// DB::Gets, read transactions and transfers between 16 accounts, while the parent kills a random
// worker (SIGKILL; TerminateProcess on Windows) each time the workers have committed another 2000
// to 6000 transactions between them (about every 100 ms on a 2-core machine), and starts another
// in its place.
//
// Invariants, checked by every reader all the time and by the parent after each kill and at the
// end:
//   - the accounts ("acct/00".."acct/15", 1000 each at the start) always sum to 16000 in one
//     ReadTxn, and none is negative: a transfer (read two accounts in a WriteTxn, move 1) is
//     atomic even when its process dies in it; an aborted transaction, which writes absurd
//     balances before it aborts, is never seen;
//   - every other key ("r/<n>") holds a value written for it (test::StampedValue), never a torn
//     or foreign record;
//   - at the end: ForEach visits GetStats().keys keys, GetStats().open_handles == 1 (no slot of a
//     dead worker leaked), and a reopen finds the same.
// A worker (StressWorkerChild) reports a violation on a pipe and exits with kChildCheckFailed; the
// parent fails on any report and on any worker exit other than its own kill.
//
// MAPKV_STRESS_KILLS sets the length of the run in kills (default 200, some 20 s on a 2-core
// machine). The run is bounded by the commits made, not by time: the file (some 200 bytes a
// commit) and its limit, sized to the commits, are the same on a machine of any speed.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "test_util.h"

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

constexpr int kWorkers = 8;
constexpr int kThreadsPerWorker = 2;
constexpr int kAccounts = 16;
constexpr int64_t kInitialBalance = 1000;
constexpr int64_t kTotal = kAccounts * kInitialBalance;
constexpr uint64_t kRandomKeys = 500;
// Commits between two kills: a random number in this range, counted by GetStats().commits.
constexpr uint64_t kMinCommitsPerKill = 2000;
constexpr uint64_t kMaxCommitsPerKill = 6000;
// The log bytes allowed per commit. A commit appends some 200 on average (its values are mostly
// under 200 bytes, one in 50 up to 8000), and aborted transactions and workers killed mid-write
// leave a little more; the allowance is ten times that.
constexpr uint64_t kBytesPerCommit = 2048;

// The limit of a run of `kills` kills: room for the commits the parent waits for at
// kBytesPerCommit each (whose margin covers the few made after the last kill), and 64 MiB
// besides.
uint64_t StressFileLimit(int64_t kills) {
  constexpr uint64_t kMiB = 1 << 20;
  const uint64_t commits = static_cast<uint64_t>(std::max<int64_t>(kills, 0)) * kMaxCommitsPerKill;
  return 64 * kMiB + (commits * kBytesPerCommit + kMiB - 1) / kMiB * kMiB;
}

Options StressOptions(uint64_t max_file_size) {
  Options options;
  options.initial_file_size = 1 << 20;  // the file and the index grow during the run
  options.initial_index_slots = 64;
  options.max_file_size = max_file_size;
  options.lock_timeout = std::chrono::seconds(10);
  return options;
}

std::string AccountKey(int i) { return absl::StrFormat("acct/%02d", i); }
std::string RandomKey(uint64_t n) { return absl::StrCat("r/", n); }

bool ParseBalance(std::string_view value, int64_t* balance) {
  return absl::SimpleAtoi(absl::string_view(value.data(), value.size()), balance);
}

size_t RandomValueSize(Rng& rng) {
  return Uniform(rng, 0, 49) == 0 ? Uniform(rng, 2000, 8000) : Uniform(rng, 0, 200);
}

// A value read for `key` (an account or a random key) is one that was written for it.
absl::Status CheckValue(std::string_view key, std::string_view value) {
  if (key.substr(0, 5) == "acct/") {
    int64_t balance = 0;
    if (!ParseBalance(value, &balance) || balance < 0 || balance > kTotal) {
      return absl::InternalError(
          absl::StrCat(std::string(key), " holds ", test::Describe(value), ": not a balance"));
    }
    return absl::OkStatus();
  }
  uint64_t version = 0;
  if (key.substr(0, 2) != "r/" || !test::CheckStampedValue(key, value, &version)) {
    return absl::InternalError(
        absl::StrCat("unexpected entry ", test::Describe(key), " = ", test::Describe(value)));
  }
  return absl::OkStatus();
}

// The accounts, read in one transaction: each a balance >= 0, summing to kTotal.
absl::Status CheckAccounts(const ReadTxn& txn) {
  int64_t sum = 0;
  std::string balances;
  for (int i = 0; i < kAccounts; ++i) {
    absl::StatusOr<std::string_view> value = txn.Get(AccountKey(i));
    if (!value.ok()) {
      return absl::InternalError(absl::StrCat(AccountKey(i), ": ", value.status().ToString()));
    }
    if (absl::Status s = CheckValue(AccountKey(i), *value); !s.ok()) return s;
    int64_t balance = 0;
    ParseBalance(*value, &balance);
    sum += balance;
    absl::StrAppend(&balances, " ", balance);
  }
  if (sum != kTotal) {
    return absl::InternalError(
        absl::StrCat("the accounts sum to ", sum, ", not ", kTotal, ":", balances));
  }
  return absl::OkStatus();
}

// Every entry of the database, in one transaction: CheckValue for each, the accounts, Count().
absl::Status CheckAll(const ReadTxn& txn, uint64_t* visited) {
  *visited = 0;
  absl::Status bad;
  absl::Status s = txn.ForEach([&](std::string_view key, std::string_view value) {
    ++*visited;
    bad = CheckValue(key, value);
    return bad.ok();
  });
  if (!s.ok()) return s;
  if (!bad.ok()) return bad;
  if (*visited != txn.Count()) {
    return absl::InternalError(
        absl::StrCat("ForEach visited ", *visited, " keys, Count() says ", txn.Count()));
  }
  return CheckAccounts(txn);
}

// Reads accounts `from` and `to` inside `txn` and moves one unit between them (when `from` has
// one). Returns 0 or kChildCheckFailed.
int Transfer(WriteTxn& txn, int from, int to) {
  auto a = txn.Get(AccountKey(from));
  CHILD_CHECK_OK(a, AccountKey(from));
  auto b = txn.Get(AccountKey(to));
  CHILD_CHECK_OK(b, AccountKey(to));
  int64_t av = 0, bv = 0;
  CHILD_CHECK(ParseBalance(*a, &av) && av >= 0, AccountKey(from), " = ", test::Describe(*a));
  CHILD_CHECK(ParseBalance(*b, &bv) && bv >= 0, AccountKey(to), " = ", test::Describe(*b));
  if (av == 0) return 0;
  CHILD_CHECK_OK(txn.Put(AccountKey(from), absl::StrCat(av - 1)));
  CHILD_CHECK_OK(txn.Put(AccountKey(to), absl::StrCat(bv + 1)));
  auto again = txn.Get(AccountKey(from));  // a transaction sees its own writes
  CHILD_CHECK(again.ok() && *again == absl::StrCat(av - 1), "read-your-writes of ",
              AccountKey(from));
  return 0;
}

// One thread of a worker: random operations until `stop`. Returns 0 or kChildCheckFailed.
int WorkerThread(DB* db, uint64_t seed, const std::atomic<bool>& stop) {
  Rng rng(seed);
  while (!stop.load(std::memory_order_relaxed)) {
    const uint64_t op = Uniform(rng, 0, 99);
    const int from = static_cast<int>(Uniform(rng, 0, kAccounts - 1));
    const int to = static_cast<int>((from + Uniform(rng, 1, kAccounts - 1)) % kAccounts);
    const std::string key = RandomKey(Uniform(rng, 0, kRandomKeys - 1));
    if (op < 30) {  // a transfer
      auto txn = db->BeginWrite();
      CHILD_CHECK_OK(txn);
      if (int rc = Transfer(*txn, from, to); rc != 0) return rc;
      CHILD_CHECK_OK(txn->Commit());
    } else if (op < 45) {  // a reader: the accounts, a few random keys, now and then everything
      auto txn = db->BeginRead();
      CHILD_CHECK_OK(txn);
      CHILD_CHECK_OK(CheckAccounts(*txn));
      for (int i = 0; i < 4; ++i) {
        const std::string k = RandomKey(Uniform(rng, 0, kRandomKeys - 1));
        auto value = txn->Get(k);
        if (absl::IsNotFound(value.status())) continue;
        CHILD_CHECK_OK(value, k);
        CHILD_CHECK_OK(CheckValue(k, *value));
      }
      if (op == 44) {
        uint64_t visited = 0;
        CHILD_CHECK_OK(CheckAll(*txn, &visited));
      }
    } else if (op < 60) {  // DB::Get
      const std::string k = op < 50 ? AccountKey(from) : key;
      auto value = db->Get(k);
      if (absl::IsNotFound(value.status()) && k != AccountKey(from)) continue;
      CHILD_CHECK_OK(value, k);
      CHILD_CHECK_OK(CheckValue(k, *value));
    } else if (op < 78) {
      CHILD_CHECK_OK(db->Put(key, test::StampedValue(key, rng(), RandomValueSize(rng))), key);
    } else if (op < 88) {
      CHILD_CHECK_OK(db->Delete(key), key);
    } else if (op < 95) {  // a transfer with random writes in the same transaction
      auto txn = db->BeginWrite();
      CHILD_CHECK_OK(txn);
      for (uint64_t i = Uniform(rng, 1, 4); i > 0; --i) {
        const std::string k = RandomKey(Uniform(rng, 0, kRandomKeys - 1));
        if (Uniform(rng, 0, 2) == 0) {
          CHILD_CHECK_OK(txn->Delete(k));
        } else {
          CHILD_CHECK_OK(txn->Put(k, test::StampedValue(k, rng(), RandomValueSize(rng))));
        }
      }
      if (int rc = Transfer(*txn, from, to); rc != 0) return rc;
      CHILD_CHECK_OK(txn->Commit());
    } else {  // absurd writes, then abort: nobody may ever see them
      auto txn = db->BeginWrite();
      CHILD_CHECK_OK(txn);
      CHILD_CHECK_OK(txn->Put(AccountKey(from), "-1000000"));
      CHILD_CHECK_OK(txn->Put(AccountKey(to), "garbage"));
      CHILD_CHECK_OK(txn->Put(key, "not a stamped value"));
      CHILD_CHECK_OK(txn->Put("stray", "aborted"));
      if (op == 99) {
        txn->Abort();
      }  // else the destructor aborts
    }
  }
  return 0;
}

// A worker process: its own handle, kThreadsPerWorker threads, until `stop` is closed. Arguments:
// path, seed, the read end of `stop`, the write end of `report`, max_file_size.
MAPKV_CHILD(StressWorkerChild) {
  const std::string& path = args.at(0);
  const uint64_t seed = args.Int<uint64_t>(1);
  ChildPipe stop = args.PipeEnd(2);
  ChildPipe report = args.PipeEnd(3);
  auto opened = DB::Open(path, StressOptions(args.Int<uint64_t>(4)));
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreadsPerWorker; ++t) {
    threads.emplace_back([&, t] {
      const int rc = WorkerThread(db.get(), seed + static_cast<uint64_t>(t), done);
      if (rc != 0) {
        // Report first: the killer may strike between this and the exit.
        report.Write(
            absl::StrCat("worker ", tools::CurrentPid(), " thread ", t, " failed (see stderr)\n"));
        std::fflush(nullptr);
        std::_Exit(rc);
      }
    });
  }
  (void)stop.ReadAll(std::chrono::hours(24));  // until the parent closes it (or dies)
  done.store(true);
  for (std::thread& t : threads) t.join();
  return 0;
}

// Polls `db` until the workers have made `target` commits in all (true), or fails when none was
// made in a minute (false): a hang, not slowness.
bool WaitForCommits(DB* db, uint64_t target) {
  uint64_t last = db->GetStats().commits;
  auto last_progress = std::chrono::steady_clock::now();
  while (last < target) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const uint64_t now = db->GetStats().commits;
    if (now != last) {
      last = now;
      last_progress = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - last_progress > std::chrono::seconds(60)) {
      ADD_FAILURE() << "no commit in 60 s; " << last << " of " << target << " made";
      return false;
    }
  }
  return true;
}

TEST(StressTest, KilledWorkersNeverBreakTheInvariants) {
  const int64_t kills_wanted = test::EnvInt("MAPKV_STRESS_KILLS", 200);
  const uint64_t max_file_size = StressFileLimit(kills_wanted);
  TempDir dir;
  const std::string path = dir.File("stress.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, StressOptions(max_file_size)));
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    for (int i = 0; i < kAccounts; ++i)
      ASSERT_OK(txn.Put(AccountKey(i), absl::StrCat(kInitialBalance)));
    ASSERT_OK(txn.Commit());
  }

  Pipe stop;    // closed by the parent at the end
  Pipe report;  // a line per violation
  auto spawn = [&](uint64_t seed) {
    return StartChild("StressWorkerChild",
                      {path, seed, stop.ReadEndArg(), report.WriteEndArg(), max_file_size});
  };
  Rng rng(0x5752455353ull);
  std::vector<int> workers;
  // After a failed assertion, no worker outlives the test.
  struct KillOnExit {
    std::vector<int>* pids;
    ~KillOnExit() {
      for (int pid : *pids) {
        if (pid > 0) test::KillChild(pid);
      }
    }
  } kill_on_exit{&workers};
  for (int i = 0; i < kWorkers; ++i) {
    workers.push_back(spawn(rng()));
    ASSERT_GT(workers.back(), 0);
  }

  int64_t kills = 0;
  std::string unexpected_exits;
  const auto start = std::chrono::steady_clock::now();
  uint64_t target = db->GetStats().commits;
  while (kills < kills_wanted) {
    // The targets add up from the start, not from the last kill: commits made while a kill and a
    // restart take their time bring the next kill forward, and never add to the total.
    target += Uniform(rng, kMinCommitsPerKill, kMaxCommitsPerKill);
    ASSERT_TRUE(WaitForCommits(db.get(), target)) << "before kill " << kills;
    const size_t victim = Uniform(rng, 0, kWorkers - 1);
    const int status = test::KillChild(workers[victim]);
    if (status != kKilledStatus) {
      absl::StrAppend(&unexpected_exits, "worker ", workers[victim], ": ",
                      test::ExitStatusToString(status), "\n");
    }
    ++kills;
    workers[victim] = spawn(rng());
    ASSERT_GT(workers[victim], 0);
    // The parent reads too, beside the workers and right after a death.
    absl::StatusOr<ReadTxn> txn = db->BeginRead();
    ASSERT_OK(txn);
    ASSERT_OK(CheckAccounts(*txn)) << "after kill " << kills;
  }
  const auto took = std::chrono::steady_clock::now() - start;
  stop.CloseWrite();
  for (int& pid : workers) {
    const int worker = std::exchange(pid, -1);
    const int status = WaitChild(worker, std::chrono::seconds(60));
    if (status != 0) {
      absl::StrAppend(&unexpected_exits, "worker ", worker,
                      " at the end: ", test::ExitStatusToString(status), "\n");
    }
  }
  report.CloseWrite();
  const std::string reports = report.ReadAll(std::chrono::seconds(10));
  EXPECT_EQ(reports, "") << "workers reported violations";
  EXPECT_EQ(unexpected_exits, "") << "workers ended other than by the killer's KillChild";

  uint64_t visited = 0;
  int64_t moved = 0;
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    ASSERT_OK(CheckAll(txn, &visited));
    for (int i = 0; i < kAccounts; ++i) {
      int64_t balance = 0;
      ParseBalance(*txn.Get(AccountKey(i)), &balance);
      moved += std::abs(balance - kInitialBalance);
    }
  }
  EXPECT_STATUS(db->Get("stray"), absl::StatusCode::kNotFound) << "an aborted write is visible";
  const Stats stats = db->GetStats();
  EXPECT_EQ(stats.keys, visited) << "GetStats().keys disagrees with ForEach";
  EXPECT_EQ(stats.open_handles, 1u) << "slots of dead or closed workers still count";
  // After every kill and recovery the file agrees with itself: every batch valid, the index
  // equal to the log's replay, the counters right.
  EXPECT_OK(db->Verify());
  EXPECT_GT(moved, 0) << "no transfer was ever committed";
  // The limit's premise: the commits appended under kBytesPerCommit each (32 MiB aside for the
  // header, the index tables and the accounts).
  EXPECT_LE(stats.log_bytes, (32ull << 20) + stats.commits * kBytesPerCommit)
      << "the commits appended more than kBytesPerCommit each: raise it";
  std::printf(
      "%lld kills in %.1f s; %llu commits, %llu recovered after a dead writer, %llu keys, file "
      "%llu "
      "bytes of max_file_size %llu, index %llu slots, accounts %lld units away from the start\n",
      static_cast<long long>(kills),
      std::chrono::duration_cast<std::chrono::duration<double>>(took).count(),
      static_cast<unsigned long long>(stats.commits),
      static_cast<unsigned long long>(stats.recovered_commits),
      static_cast<unsigned long long>(stats.keys), static_cast<unsigned long long>(stats.file_size),
      static_cast<unsigned long long>(max_file_size),
      static_cast<unsigned long long>(stats.index_capacity), static_cast<long long>(moved));

  db.reset();
  ASSERT_OK_AND_ASSIGN(db, DB::Open(path, StressOptions(max_file_size)));
  uint64_t reopened = 0;
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    ASSERT_OK(CheckAll(txn, &reopened));
  }
  EXPECT_EQ(reopened, visited);
  EXPECT_EQ(db->GetStats().keys, visited);
  EXPECT_EQ(db->GetStats().open_handles, 1u);
  ASSERT_OK(db->Put(AccountKey(0), *db->Get(AccountKey(0))));  // still writable
}

}  // namespace
}  // namespace mapkv
