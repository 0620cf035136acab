// mapkv::Cache (include/mapkv/cache.h): expiry by an injected clock, the refusal of a file of the
// other kind (DB::Open on a cache, Cache::Open on a database), GetOrCompute computing each missing
// key once across threads and across processes, the takeover of a lease whose computing process
// was killed or is older than compute_timeout, a failing or throwing function, Increment (atomic
// across processes, its errors and its expiry), statistics summed over every process (closed or
// killed included), the compaction of a cache (expired values and leases dropped), and a read
// transaction of a cache's file without a capacity, which holds nothing commits wait for.
//
// Children are MAPKV_CHILDs, fresh processes that open the cache from its path. A child that must
// stay inside GetOrCompute blocks in its function until end of file on a pipe the parent holds, so
// that a failed test never leaves it running.
#include "mapkv/cache.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <latch>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mapkv/compact.h"
#include "mapkv/db.h"
#include "src/format.h"
#include "test_util.h"

namespace mapkv {
namespace {

using ::absl::StatusCode;
using ::mapkv::test::ChildPipe;
using ::mapkv::test::kKilledStatus;
using ::mapkv::test::NamesPid;
using ::mapkv::test::Pipe;
using ::mapkv::test::Since;
using ::mapkv::test::StartChild;
using ::mapkv::test::TempDir;
using ::mapkv::test::WaitChild;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A time of the injected clocks (2023-11-14), in milliseconds since the Unix epoch.
constexpr int64_t kT0 = 1'700'000'000'000;

// The pid in process slot `i` of the file at `path` (format.h: ProcessSlot, pid after readers),
// read through the file: the premise of a test that needs a given slot.
uint32_t SlotPid(const std::string& path, uint32_t i) {
  const uint64_t word =
      test::ReadFileU64(path, internal::kSlotsOffset + i * sizeof(internal::ProcessSlot));
  return static_cast<uint32_t>(word >> 32);
}

// Small files: every handle reserves max_file_size of address space.
CacheOptions SmallOptions(milliseconds compute_timeout = seconds(30)) {
  CacheOptions options;
  options.db.initial_file_size = 1 << 20;
  options.db.initial_index_slots = 256;
  options.db.max_file_size = 64ull << 20;
  options.db.lock_timeout = seconds(10);
  options.compute_timeout = compute_timeout;
  return options;
}

// Options whose clock reads `*now`.
CacheOptions ClockOptions(std::atomic<int64_t>* now, milliseconds compute_timeout = seconds(30)) {
  CacheOptions options = SmallOptions(compute_timeout);
  options.now_unix_ms = [now] { return now->load(); };
  return options;
}

int64_t RealNowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string KeyName(int k) { return absl::StrCat("key/", k); }
std::string ValueOf(const std::string& key) { return absl::StrCat("value of ", key); }
std::string RunsKey(const std::string& key) { return absl::StrCat("runs/", key); }

// Polls `cond` until it holds (true) or `timeout` passes (false).
bool WaitUntil(const std::function<bool()>& cond, milliseconds timeout = seconds(30)) {
  const auto deadline = Clock::now() + timeout;
  while (!cond()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

// ---- Children.

// A computer that never finishes: GetOrCompute(key) with a function that writes a byte on
// `computing` and then blocks until end of file on `release` (the parent kills it first), and
// returns "late". Arguments: path, key, compute_timeout in ms, the write end of `computing`, the
// read end of `release`.
MAPKV_CHILD(LeaseHolderChild) {
  const std::string& path = args.at(0);
  const std::string& key = args.at(1);
  const int64_t timeout_ms = args.Int(2);
  ChildPipe computing = args.PipeEnd(3);
  ChildPipe release = args.PipeEnd(4);
  auto opened = Cache::Open(path, SmallOptions(milliseconds(timeout_ms)));
  CHILD_CHECK_OK(opened);
  std::unique_ptr<Cache> cache = std::move(*opened);
  bool ran = false;
  auto got = cache->GetOrCompute(key, Ttl{0}, [&]() -> absl::StatusOr<std::string> {
    ran = true;
    (void)computing.Write("c");
    (void)release.ReadAll(seconds(120));
    return std::string("late");
  });
  CHILD_CHECK(ran, "the function never ran: the key was not missing");
  return 0;
}

// A waiter: GetOrCompute(key) with a function returning `value`; checks that it gets `value`.
// Arguments: path, key, value, compute_timeout in ms.
MAPKV_CHILD(WaiterChild) {
  const std::string& path = args.at(0);
  const std::string& key = args.at(1);
  const std::string& value = args.at(2);
  const int64_t timeout_ms = args.Int(3);
  auto opened = Cache::Open(path, SmallOptions(milliseconds(timeout_ms)));
  CHILD_CHECK_OK(opened);
  std::unique_ptr<Cache> cache = std::move(*opened);
  auto got =
      cache->GetOrCompute(key, Ttl{0}, [&]() -> absl::StatusOr<std::string> { return value; });
  CHILD_CHECK_OK(got);
  CHILD_CHECK(*got == value, "got \"", *got, "\"");
  return 0;
}

// Process `proc` of GetOrComputeComputesOncePerKeyAcrossProcesses: opens the cache, writes a byte
// on `ready`, waits for end of file on `start`, then asks for keys 0..n-1 with a function that
// counts its run (Increment(RunsKey(key), 1)), sleeps 3 ms and returns ValueOf(key); checks every
// value. The function of key 0 returns only once some call waits (the statistics of every process
// count it): there is a wait to count however fast or slow each process runs. Arguments: path,
// proc, n, the write end of `ready`, the read end of `start`.
MAPKV_CHILD(ComputeChild) {
  const std::string& path = args.at(0);
  const int proc = args.Int<int>(1);
  const int n = args.Int<int>(2);
  ChildPipe ready = args.PipeEnd(3);
  ChildPipe start = args.PipeEnd(4);
  auto opened = Cache::Open(path, SmallOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<Cache> cache = std::move(*opened);
  CHILD_CHECK(ready.Write("r"));
  ready.Close();
  (void)start.WaitByte(seconds(60));  // returns at end of file
  for (int i = 0; i < n; ++i) {
    // Half the processes go up, half go down: every key is asked for at about the same time by
    // several of them.
    const std::string key = KeyName(proc % 2 == 0 ? i : n - 1 - i);
    absl::Status fn_status;
    auto got = cache->GetOrCompute(key, Ttl{0}, [&]() -> absl::StatusOr<std::string> {
      absl::StatusOr<int64_t> runs = cache->Increment(RunsKey(key), 1);
      if (!runs.ok()) fn_status = runs.status();
      if (key == KeyName(0) && !WaitUntil([&] { return cache->GetStats().waits >= 1; })) {
        return absl::DeadlineExceededError("no process waited for the lease of key/0");
      }
      std::this_thread::sleep_for(milliseconds(3));
      return ValueOf(key);
    });
    CHILD_CHECK_OK(fn_status, key, ": Increment in the function");
    CHILD_CHECK_OK(got, key);
    CHILD_CHECK(*got == ValueOf(key), key, ": got \"", *got, "\"");
  }
  return 0;
}

// Process of IncrementIsAtomicAcrossProcesses: opens the cache, writes a byte on `ready`, waits for
// end of file on `start`, then adds 1 to "counter" n times; each new value must be above the one
// before. Arguments: path, n, the write end of `ready`, the read end of `start`.
MAPKV_CHILD(IncrementChild) {
  const std::string& path = args.at(0);
  const int n = args.Int<int>(1);
  ChildPipe ready = args.PipeEnd(2);
  ChildPipe start = args.PipeEnd(3);
  auto opened = Cache::Open(path, SmallOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<Cache> cache = std::move(*opened);
  CHILD_CHECK(ready.Write("r"));
  ready.Close();
  (void)start.WaitByte(seconds(60));
  int64_t last = 0;
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<int64_t> v = cache->Increment("counter", 1);
    CHILD_CHECK_OK(v, "increment ", i);
    CHILD_CHECK(*v > last, "went from ", last, " to ", *v);
    last = *v;
  }
  return 0;
}

// Counts known statistics (with a clock of its own): 3 hits, 3 misses of which 1 an expiration,
// 1 compute. Then, with `hold`, writes a byte on `ready` and waits for end of file on `release`
// (the parent kills it); without, closes its handle and writes the byte. Arguments: path, i (its
// keys' suffix), hold, the write end of `ready`, the read end of `release`.
MAPKV_CHILD(StatsChild) {
  const std::string& path = args.at(0);
  const int i = args.Int<int>(1);
  const bool hold = args.Bool(2);
  ChildPipe ready = args.PipeEnd(3);
  ChildPipe release = args.PipeEnd(4);
  std::atomic<int64_t> now{kT0};
  auto opened = Cache::Open(path, ClockOptions(&now));
  CHILD_CHECK_OK(opened);
  std::unique_ptr<Cache> cache = std::move(*opened);
  const std::string key = absl::StrCat("stats/", i);
  CHILD_CHECK_OK(cache->Put(key, "v", milliseconds(1000)));
  for (int j = 0; j < 3; ++j) CHILD_CHECK_OK(cache->Get(key));  // 3 hits
  now += 1000;
  CHILD_CHECK(absl::IsNotFound(cache->Get(key).status()));  // miss, expiration
  CHILD_CHECK(absl::IsNotFound(cache->Get(absl::StrCat("absent/", i)).status()));  // miss
  auto computed = cache->GetOrCompute(absl::StrCat("computed/", i), Ttl{0},
                                      []() -> absl::StatusOr<std::string> { return "c"; });
  CHILD_CHECK_OK(computed);  // miss, compute
  if (hold) {
    CHILD_CHECK(ready.Write("h"));
    (void)release.ReadAll(seconds(120));
    return 0;
  }
  cache.reset();
  CHILD_CHECK(ready.Write("c"));
  return 0;
}

// Holds the cache open: opens it, writes a byte on `ready`, and waits for end of file on
// `release`. Arguments: path, the write end of `ready`, the read end of `release`.
MAPKV_CHILD(HolderChild) {
  const std::string& path = args.at(0);
  ChildPipe ready = args.PipeEnd(1);
  ChildPipe release = args.PipeEnd(2);
  auto opened = Cache::Open(path, SmallOptions());
  CHILD_CHECK_OK(opened);
  CHILD_CHECK(ready.Write("h"));
  (void)release.ReadAll(seconds(120));
  return 0;
}

// Starts a LeaseHolderChild on `key` and waits until its function runs (it holds the lease). Its
// pid, or -1 with a failure recorded.
int StartLeaseHolder(const std::string& path, const std::string& key, milliseconds timeout,
                     Pipe& release) {
  Pipe computing;
  const int pid = StartChild("LeaseHolderChild", {path, key, static_cast<int64_t>(timeout.count()),
                                                  computing.WriteEndArg(), release.ReadEndArg()});
  computing.CloseWrite();
  if (pid <= 0) return -1;
  if (!computing.WaitByte(seconds(60))) {
    ADD_FAILURE() << "the computing child never ran its function";
    test::KillChild(pid);
    return -1;
  }
  return pid;
}

// Starts n children with start_child(p, ready, start) (each writes a byte to `ready` once it has
// opened the cache, then waits for end of file on `start`), releases them together once all are
// ready, and expects each to exit 0.
void RunTogether(int n, const std::function<int(int, Pipe&, Pipe&)>& start_child) {
  Pipe ready;
  Pipe start;
  std::vector<int> pids;
  for (int p = 0; p < n; ++p) {
    pids.push_back(start_child(p, ready, start));
    ASSERT_GT(pids.back(), 0);
  }
  ready.CloseWrite();
  start.CloseRead();
  for (int p = 0; p < n; ++p) {
    EXPECT_TRUE(ready.WaitByte(std::chrono::seconds(60)))
        << "only " << p << " children opened the cache";
  }
  start.CloseWrite();  // go
  for (int pid : pids) {
    const int status = WaitChild(pid, std::chrono::seconds(120));
    EXPECT_EQ(status, 0) << "child " << pid << ": " << test::ExitStatusToString(status);
  }
}

// ---- Expiry.

// Put with a ttl is visible until the injected clock reaches its expiry and absent from then on
// (the boundary exactly: t+999 visible, t+1000 not); a ttl of 0 never expires; a Put after the
// expiry revives the key; Delete removes it (and is OK when absent). Hits, misses and expirations
// are counted exactly, nothing else is.
TEST(CacheTest, PutGetExpiryWithInjectedClock) {
  TempDir dir;
  std::atomic<int64_t> now{kT0};
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(dir.File("c.mapkv"), ClockOptions(&now)));
  ASSERT_OK(cache->Put("a", "1", milliseconds(1000)));
  ASSERT_OK(cache->Put("forever", "x", Ttl{0}));
  EXPECT_OK_AND_EQ(cache->Get("a"), "1");  // hit 1
  now = kT0 + 999;
  EXPECT_OK_AND_EQ(cache->Get("a"), "1");  // hit 2
  now = kT0 + 1000;
  EXPECT_STATUS(cache->Get("a"), StatusCode::kNotFound);       // miss 1, expiration 1
  EXPECT_STATUS(cache->Get("absent"), StatusCode::kNotFound);  // miss 2
  now = kT0 + 10 * 365 * 86'400'000ll;                         // ten years later
  EXPECT_OK_AND_EQ(cache->Get("forever"), "x");                // hit 3
  EXPECT_STATUS(cache->Get("a"), StatusCode::kNotFound);       // miss 3, expiration 2
  ASSERT_OK(cache->Put("a", "2", milliseconds(1000)));         // revived, from the new now
  EXPECT_OK_AND_EQ(cache->Get("a"), "2");                      // hit 4
  ASSERT_OK(cache->Delete("a"));
  EXPECT_STATUS(cache->Get("a"), StatusCode::kNotFound);  // miss 4 (deleted, not expired)
  EXPECT_OK(cache->Delete("a"));
  EXPECT_OK(cache->Delete("never was"));
  ASSERT_OK(cache->Put("empty", "", milliseconds(1000)));
  EXPECT_OK_AND_EQ(cache->Get("empty"), "");  // hit 5

  const CacheStats s = cache->GetStats();
  EXPECT_EQ(s.hits, 5u);
  EXPECT_EQ(s.misses, 4u);
  EXPECT_EQ(s.expirations, 2u);
  EXPECT_EQ(s.computes, 0u);
  EXPECT_EQ(s.waits, 0u);
  EXPECT_EQ(s.takeovers, 0u);
  EXPECT_EQ(s.evictions, 0u);
  EXPECT_EQ(s.db.keys, 2u);  // "forever", "empty"
}

// GetOrCompute on a key with a live value returns it without running its function (a hit); on a
// missing key it runs it and stores the value for its ttl: when that expires, the next call runs
// the function again.
TEST(CacheTest, GetOrComputeStoresForTtlAndHitsWithoutComputing) {
  TempDir dir;
  std::atomic<int64_t> now{kT0};
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(dir.File("c.mapkv"), ClockOptions(&now)));
  int runs = 0;
  auto fn = [&]() -> absl::StatusOr<std::string> { return absl::StrCat("v", ++runs); };
  ASSERT_OK(cache->Put("present", "p"));
  EXPECT_OK_AND_EQ(cache->GetOrCompute("present", Ttl{0}, fn), "p");
  EXPECT_EQ(runs, 0);
  EXPECT_OK_AND_EQ(cache->GetOrCompute("k", milliseconds(500), fn), "v1");
  EXPECT_OK_AND_EQ(cache->Get("k"), "v1");
  now = kT0 + 499;
  EXPECT_OK_AND_EQ(cache->GetOrCompute("k", milliseconds(500), fn), "v1");
  EXPECT_EQ(runs, 1);
  now = kT0 + 500;
  EXPECT_STATUS(cache->Get("k"), StatusCode::kNotFound);
  EXPECT_OK_AND_EQ(cache->GetOrCompute("k", milliseconds(500), fn), "v2");
  EXPECT_EQ(runs, 2);
  const CacheStats s = cache->GetStats();
  EXPECT_EQ(s.computes, 2u);
  EXPECT_EQ(s.waits, 0u);
  EXPECT_EQ(s.takeovers, 0u);
}

// cache.h: "expirations: of those misses, how many found an expired value", and a miss is counted
// for "Get or GetOrCompute". A GetOrCompute that finds an expired value is a miss that found an
// expired value, as a Get that finds one is: both count an expiration.
TEST(CacheTest, GetOrComputeOnAnExpiredValueCountsAnExpiration) {
  TempDir dir;
  std::atomic<int64_t> now{kT0};
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(dir.File("c.mapkv"), ClockOptions(&now)));
  ASSERT_OK(cache->Put("k", "old", milliseconds(100)));
  now = kT0 + 100;
  EXPECT_OK_AND_EQ(
      cache->GetOrCompute("k", Ttl{0}, []() -> absl::StatusOr<std::string> { return "new"; }),
      "new");
  const CacheStats s = cache->GetStats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.computes, 1u);
  EXPECT_EQ(s.expirations, 1u) << "GetOrCompute found an expired value but did not count it";
}

// ---- Kinds.

// A cache's file is of its own kind: DB::Open refuses it and Cache::Open refuses a database, both
// with FailedPrecondition naming the path, whether the refused handle is the file's first opener
// or opens beside a handle of the right kind. Stats tell the kind: is_cache and format version 2
// for a cache, 1 for a database. FileKind::kAny opens either.
TEST(CacheTest, KindsRefuseEachOther) {
  TempDir dir;
  const std::string cache_path = dir.File("cache.mapkv");
  const std::string db_path = dir.File("db.mapkv");
  {
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(cache_path, SmallOptions()));
    ASSERT_OK(cache->Put("k", "v"));
    const Stats s = cache->GetStats().db;
    EXPECT_TRUE(s.is_cache);
    EXPECT_EQ(s.format_version, 3u);  // a ring: the default capacity
    EXPECT_EQ(cache->path(), cache_path);
  }
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(db_path, SmallOptions().db));
    ASSERT_OK(db->Put("k", "v"));
    const Stats s = db->GetStats();
    EXPECT_FALSE(s.is_cache);
    EXPECT_EQ(s.format_version, 5u);  // a database: chained records, a cleaned log
  }
  auto check_refusals = [&](const char* when) {
    SCOPED_TRACE(when);
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(cache_path, SmallOptions().db);
    EXPECT_STATUS(db, StatusCode::kFailedPrecondition);
    EXPECT_TRUE(absl::StrContains(db.status().message(), cache_path)) << db.status();
    absl::StatusOr<std::unique_ptr<Cache>> cache = Cache::Open(db_path, SmallOptions());
    EXPECT_STATUS(cache, StatusCode::kFailedPrecondition);
    EXPECT_TRUE(absl::StrContains(cache.status().message(), db_path)) << cache.status();
  };
  check_refusals("first openers");
  {
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(cache_path, SmallOptions()));
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(db_path, SmallOptions().db));
    check_refusals("beside open handles of the right kind");
    EXPECT_OK_AND_EQ(cache->Get("k"), "v");
    EXPECT_OK_AND_EQ(db->Get("k"), "v");
  }
  // Nothing was changed by the refusals: both still open as their kind.
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(cache_path, SmallOptions()));
  EXPECT_OK_AND_EQ(cache->Get("k"), "v");
  Options any = SmallOptions().db;
  any.kind = FileKind::kAny;
  ASSERT_OK_AND_ASSIGN(auto as_any, DB::Open(cache_path, any));
  EXPECT_TRUE(as_any->GetStats().is_cache);
  ASSERT_OK_AND_ASSIGN(auto db_as_any, DB::Open(db_path, any));
  EXPECT_FALSE(db_as_any->GetStats().is_cache);
  EXPECT_OK_AND_EQ(db_as_any->Get("k"), "v");
}

// ---- GetOrCompute, once per key.

// 8 threads of one handle, released together, ask for the same 50 keys: each key's function runs
// exactly once (its counter is 1), every thread gets every right value, and the statistics say 50
// computes, 50 misses, 350 hits (each call counted once), and some waits. The function of key 0
// returns only once another thread waits for it, so that there is a wait to count however the
// threads are scheduled.
TEST(CacheTest, GetOrComputeComputesOncePerKeyAcrossThreads) {
  constexpr int kThreads = 8;
  constexpr int kKeys = 50;
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(dir.File("c.mapkv"), SmallOptions()));
  std::vector<std::atomic<int>> runs(kKeys);
  std::vector<std::vector<std::string>> problems(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int k = 0; k < kKeys; ++k) {
        const std::string key = KeyName(k);
        auto got = cache->GetOrCompute(key, Ttl{0}, [&]() -> absl::StatusOr<std::string> {
          runs[k].fetch_add(1);
          if (k == 0 && !WaitUntil([&] { return cache->GetStats().waits >= 1; })) {
            return absl::DeadlineExceededError("no other thread waited for the lease of key/0");
          }
          std::this_thread::sleep_for(milliseconds(2));
          return ValueOf(key);
        });
        if (!got.ok()) {
          problems[t].push_back(absl::StrCat(key, ": ", got.status().ToString()));
        } else if (*got != ValueOf(key)) {
          problems[t].push_back(absl::StrCat(key, ": got \"", *got, "\""));
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    for (const std::string& p : problems[t]) ADD_FAILURE() << "thread " << t << ": " << p;
  }
  for (int k = 0; k < kKeys; ++k) {
    EXPECT_EQ(runs[k].load(), 1) << KeyName(k) << "'s function ran " << runs[k].load() << " times";
    EXPECT_OK_AND_EQ(cache->Get(KeyName(k)), ValueOf(KeyName(k)));
  }
  const CacheStats s = cache->GetStats();
  EXPECT_EQ(s.computes, static_cast<uint64_t>(kKeys));
  EXPECT_EQ(s.misses, static_cast<uint64_t>(kKeys));
  // Each call counted once, a hit or a miss; the Gets above are hits.
  EXPECT_EQ(s.hits, static_cast<uint64_t>(kThreads * kKeys - kKeys + kKeys));
  EXPECT_GT(s.waits, 0u);
  EXPECT_EQ(s.takeovers, 0u);
}

// 8 processes, released together, ask for the same 20 keys; each function records its run with
// Increment("runs/<key>", 1): every key's function ran once in all, every child got every value
// (it checks), and the statistics of all of them (closed since) say 20 computes and 140 hits.
TEST(CacheTest, GetOrComputeComputesOncePerKeyAcrossProcesses) {
  constexpr int kProcs = 8;
  constexpr int kKeys = 20;
  TempDir dir;
  const std::string path = dir.File("c.mapkv");
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, SmallOptions()));
  RunTogether(kProcs, [&](int p, Pipe& ready, Pipe& start) {
    return StartChild("ComputeChild", {path, p, kKeys, ready.WriteEndArg(), start.ReadEndArg()});
  });
  for (int k = 0; k < kKeys; ++k) {
    const std::string key = KeyName(k);
    EXPECT_OK_AND_EQ(cache->Get(RunsKey(key)), "1") << "how often " << key << "'s function ran";
    EXPECT_OK_AND_EQ(cache->Get(key), ValueOf(key));
  }
  const CacheStats s = cache->GetStats();
  EXPECT_EQ(s.computes, static_cast<uint64_t>(kKeys));
  // The children's calls (each a hit or a miss) and the parent's 2 * kKeys Gets, all hits.
  EXPECT_EQ(s.misses, static_cast<uint64_t>(kKeys));
  EXPECT_EQ(s.hits, static_cast<uint64_t>(kProcs * kKeys - kKeys + 2 * kKeys));
  EXPECT_GT(s.waits, 0u);
  EXPECT_EQ(s.takeovers, 0u);
}

// ---- Takeovers.

// A process killed inside its function leaves a lease: Get reports the key absent, and the next
// GetOrCompute takes the key over at once (the kernel says the computer is gone; compute_timeout
// is 60 s), runs its own function and stores its value. One takeover is counted.
TEST(CacheTest, KilledComputerIsTakenOver) {
  TempDir dir;
  const std::string path = dir.File("c.mapkv");
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, SmallOptions(seconds(60))));
  Pipe release;
  const int pid = StartLeaseHolder(path, "k", seconds(60), release);
  ASSERT_GT(pid, 0);
  EXPECT_STATUS(cache->Get("k"), StatusCode::kNotFound);  // a lease is no value
  EXPECT_EQ(test::KillChild(pid), kKilledStatus);
  EXPECT_STATUS(cache->Get("k"), StatusCode::kNotFound);
  const auto t0 = Clock::now();
  int runs = 0;
  EXPECT_OK_AND_EQ(cache->GetOrCompute("k", Ttl{0},
                                       [&]() -> absl::StatusOr<std::string> {
                                         ++runs;
                                         return "mine";
                                       }),
                   "mine");
  EXPECT_LT(Since(t0), seconds(10)) << "waited for the dead computer";
  EXPECT_EQ(runs, 1);
  EXPECT_OK_AND_EQ(cache->Get("k"), "mine");
  const CacheStats s = cache->GetStats();
  EXPECT_EQ(s.takeovers, 1u);
  EXPECT_EQ(s.computes, 2u);  // the dead child's (in its slot) and ours
}

// Waiters already waiting when the computer is killed (a child process and a thread of this one,
// both inside GetOrCompute: the statistics count their waits) get a value: exactly one of them
// takes the key over and computes, the other gets that value.
TEST(CacheTest, KilledComputerIsTakenOverByWaitersAlreadyWaiting) {
  TempDir dir;
  const std::string path = dir.File("c.mapkv");
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, SmallOptions(seconds(60))));
  Pipe release;
  const int computer = StartLeaseHolder(path, "k", seconds(60), release);
  ASSERT_GT(computer, 0);
  // Every child is started before the thread: no fork() while this process has threads.
  const int waiter = StartChild("WaiterChild", {path, "k", "fresh", int64_t{60000}});
  ASSERT_GT(waiter, 0);
  std::atomic<int> thread_runs{0};
  std::optional<absl::StatusOr<std::string>> thread_got;
  std::thread thread([&] {
    thread_got = cache->GetOrCompute("k", Ttl{0}, [&]() -> absl::StatusOr<std::string> {
      thread_runs.fetch_add(1);
      return "fresh";
    });
  });
  const bool both_wait = WaitUntil([&] { return cache->GetStats().waits >= 2; });
  EXPECT_TRUE(both_wait) << "waits: " << cache->GetStats().waits;
  EXPECT_EQ(test::KillChild(computer), kKilledStatus);
  thread.join();
  const int status = WaitChild(waiter, seconds(60));
  EXPECT_EQ(status, 0) << "waiter: " << test::ExitStatusToString(status);
  ASSERT_TRUE(thread_got.has_value());
  EXPECT_OK_AND_EQ(*thread_got, "fresh");
  EXPECT_OK_AND_EQ(cache->Get("k"), "fresh");
  const CacheStats s = cache->GetStats();
  EXPECT_EQ(s.takeovers, 1u);
  EXPECT_EQ(s.computes, 2u);  // the killed child's, then the one that took over
  EXPECT_GE(s.waits, 2u);
}

// The slot of a killed computer taken by another process since: its byte lock is held again, by
// the new owner, but the lease names the dead process (pid and open time), so it is not live and
// is taken over at once. Setup: the computer opens the file first (it gets the first slot) and is
// killed with no other handle open; a holder then opens it first again and gets that same slot;
// then this process asks. Its compute_timeout of 5 s bounds the wait if the lease were taken for
// live (the computer's is 60 s).
TEST(CacheTest, LeaseOfAKilledComputerWhoseSlotWasReusedIsTakenOver) {
  TempDir dir;
  const std::string path = dir.File("c.mapkv");
  { ASSERT_OK_AND_ASSIGN(auto created, Cache::Open(path, SmallOptions())); }
  Pipe release;
  const int computer = StartLeaseHolder(path, "k", seconds(60), release);
  ASSERT_GT(computer, 0);
  ASSERT_EQ(SlotPid(path, 0), static_cast<uint32_t>(computer)) << "the computer is not in slot 0";
  EXPECT_EQ(test::KillChild(computer), kKilledStatus);
  Pipe ready;
  const int holder = StartChild("HolderChild", {path, ready.WriteEndArg(), release.ReadEndArg()});
  ASSERT_GT(holder, 0);
  ASSERT_TRUE(ready.WaitByte(seconds(60)));
  ASSERT_EQ(SlotPid(path, 0), static_cast<uint32_t>(holder)) << "the holder did not reuse slot 0";
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, SmallOptions(seconds(5))));
  const auto t0 = Clock::now();
  EXPECT_OK_AND_EQ(
      cache->GetOrCompute("k", Ttl{0}, []() -> absl::StatusOr<std::string> { return "mine"; }),
      "mine");
  EXPECT_LT(Since(t0), seconds(4)) << "waited for the lease of a dead process";
  EXPECT_EQ(cache->GetStats().takeovers, 1u);
  EXPECT_EQ(test::KillChild(holder), kKilledStatus);
}

// Two threads of one handle: A's computation is late (the injected clock passes its lease's
// expiry), B takes the key over and computes; A then fails. A's failure must drop only its own
// lease: B's lease (of the same handle, the same slot) stays, so a third caller C waits for B's
// value instead of computing it a second time while B still computes.
TEST(CacheTest, LateFailingComputationLeavesTheLeaseOfItsTaker) {
  TempDir dir;
  std::atomic<int64_t> now{kT0};
  ASSERT_OK_AND_ASSIGN(auto cache,
                       Cache::Open(dir.File("c.mapkv"), ClockOptions(&now, seconds(10))));
  std::atomic<bool> a_in_fn{false}, a_may_fail{false}, b_in_fn{false}, b_may_finish{false};
  std::atomic<int> c_runs{0};
  std::optional<absl::StatusOr<std::string>> a_got, b_got, c_got;
  auto wait_flag = [](std::atomic<bool>& flag) { return WaitUntil([&] { return flag.load(); }); };
  std::thread a([&] {
    a_got = cache->GetOrCompute("k", Ttl{0}, [&]() -> absl::StatusOr<std::string> {
      a_in_fn = true;
      wait_flag(a_may_fail);
      return absl::UnavailableError("late and failing");
    });
  });
  ASSERT_TRUE(wait_flag(a_in_fn));
  now += 10'000;  // A's lease has expired
  std::thread b([&] {
    b_got = cache->GetOrCompute("k", Ttl{0}, [&]() -> absl::StatusOr<std::string> {
      b_in_fn = true;
      wait_flag(b_may_finish);
      return std::string("b");
    });
  });
  const bool b_computes = wait_flag(b_in_fn);
  EXPECT_TRUE(b_computes) << "B did not take the late computation over";
  a_may_fail = true;
  a.join();
  std::thread c([&] {
    c_got = cache->GetOrCompute("k", Ttl{0}, [&]() -> absl::StatusOr<std::string> {
      c_runs.fetch_add(1);
      return std::string("c");
    });
  });
  // C either waits for B (counted) or, wrongly, computes.
  EXPECT_TRUE(WaitUntil([&] { return cache->GetStats().waits >= 1 || c_runs.load() > 0; }));
  b_may_finish = true;
  b.join();
  c.join();
  ASSERT_TRUE(a_got.has_value() && b_got.has_value() && c_got.has_value());
  EXPECT_STATUS(*a_got, StatusCode::kUnavailable);
  EXPECT_OK_AND_EQ(*b_got, "b");
  EXPECT_EQ(c_runs.load(), 0) << "C computed while B's computation was live: A's failure dropped "
                                 "B's lease";
  EXPECT_OK_AND_EQ(*c_got, "b");
  EXPECT_EQ(cache->GetStats().computes, 2u);
}

// compute_timeout. cache.cc: a lease expires compute_timeout after it was taken (by the clock of
// the cache), and an expired lease is not live: it is taken over as a dead one's is. A waiter
// with the same compute_timeout started after the lease was taken, so the lease expires before
// the waiter's own deadline: it never gets DeadlineExceeded but takes the key over, computes, and
// stores its value, while the late computer (alive, still inside its function) is left alone.
TEST(CacheTest, LateComputationIsTakenOverAfterComputeTimeout) {
  TempDir dir;
  const std::string path = dir.File("c.mapkv");
  constexpr milliseconds kTimeout{300};
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, SmallOptions(kTimeout)));
  Pipe release;
  const int computer = StartLeaseHolder(path, "k", kTimeout, release);
  ASSERT_GT(computer, 0);
  const auto t0 = Clock::now();
  int runs = 0;
  EXPECT_OK_AND_EQ(cache->GetOrCompute("k", Ttl{0},
                                       [&]() -> absl::StatusOr<std::string> {
                                         ++runs;
                                         return "mine";
                                       }),
                   "mine");
  EXPECT_LT(Since(t0), seconds(10));
  EXPECT_EQ(runs, 1);
  EXPECT_OK_AND_EQ(cache->Get("k"), "mine");
  const CacheStats s = cache->GetStats();
  EXPECT_EQ(s.takeovers, 1u);
  // It waited for the lease until it expired (unless this thread was so slow to ask that the lease
  // had expired already).
  EXPECT_LE(s.waits, 1u);
  EXPECT_EQ(s.computes, 2u);
  // The late computer was alive all along: the kill ends it (it had not finished by itself).
  EXPECT_EQ(test::KillChild(computer), kKilledStatus);
}

// A waiter whose compute_timeout (300 ms) is shorter than the computer's (60 s) finds the lease
// live until its own deadline: it gets DeadlineExceeded naming the computer's pid, after at least
// its compute_timeout, without running its function; the lease stays (Get: NotFound).
TEST(CacheTest, WaiterWithShorterTimeoutGetsDeadlineExceededNamingThePid) {
  TempDir dir;
  const std::string path = dir.File("c.mapkv");
  constexpr milliseconds kTimeout{300};
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, SmallOptions(kTimeout)));
  Pipe release;
  const int computer = StartLeaseHolder(path, "k", seconds(60), release);
  ASSERT_GT(computer, 0);
  const auto t0 = Clock::now();
  int runs = 0;
  absl::StatusOr<std::string> got =
      cache->GetOrCompute("k", Ttl{0}, [&]() -> absl::StatusOr<std::string> {
        ++runs;
        return "mine";
      });
  const auto elapsed = Since(t0);
  EXPECT_STATUS(got, StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(NamesPid(got.status().message(), computer)) << got.status();
  EXPECT_TRUE(absl::StrContains(got.status().message(), path)) << got.status();
  EXPECT_GE(elapsed, kTimeout);
  EXPECT_LT(elapsed, seconds(10));
  EXPECT_EQ(runs, 0);
  EXPECT_STATUS(cache->Get("k"), StatusCode::kNotFound);
  const CacheStats s = cache->GetStats();
  EXPECT_EQ(s.waits, 1u);
  EXPECT_EQ(s.misses, 3u);  // the child's (it took the lease), the timed-out call's, the Get's
  EXPECT_EQ(s.takeovers, 0u);
  EXPECT_EQ(s.computes, 1u);  // the child's
  EXPECT_EQ(test::KillChild(computer), kKilledStatus);
}

// ---- A failing function.

// A function returning an error: that caller gets the error, nothing is stored, and the next
// GetOrCompute runs its function (no lease was left behind to wait for: compute_timeout is 60 s).
TEST(CacheTest, FailingFunctionStoresNothingAndNextCallComputes) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(dir.File("c.mapkv"), SmallOptions(seconds(60))));
  EXPECT_STATUS(cache->GetOrCompute("k", Ttl{0},
                                    []() -> absl::StatusOr<std::string> {
                                      return absl::UnavailableError("backend down");
                                    }),
                StatusCode::kUnavailable);
  EXPECT_STATUS(cache->Get("k"), StatusCode::kNotFound);
  EXPECT_EQ(cache->GetStats().db.keys, 0u);
  const auto t0 = Clock::now();
  int runs = 0;
  EXPECT_OK_AND_EQ(cache->GetOrCompute("k", Ttl{0},
                                       [&]() -> absl::StatusOr<std::string> {
                                         ++runs;
                                         return "ok";
                                       }),
                   "ok");
  EXPECT_LT(Since(t0), seconds(10));
  EXPECT_EQ(runs, 1);
  const CacheStats s = cache->GetStats();
  EXPECT_EQ(s.computes, 2u);
  EXPECT_EQ(s.waits, 0u);
  EXPECT_EQ(s.takeovers, 0u);
}

// A function that fails while another thread waits for it: the computer gets the error, and the
// waiter computes instead (its function runs) and gets its own value, at once.
TEST(CacheTest, FailingFunctionHandsTheKeyToAWaiter) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(dir.File("c.mapkv"), SmallOptions(seconds(60))));
  std::atomic<bool> in_fn{false};
  std::optional<absl::StatusOr<std::string>> first;
  std::thread computer([&] {
    first = cache->GetOrCompute("k", Ttl{0}, [&]() -> absl::StatusOr<std::string> {
      in_fn = true;
      // Fail only once the other thread waits for us.
      if (!WaitUntil([&] { return cache->GetStats().waits >= 1; })) {
        return absl::InternalError("the waiter never waited");
      }
      return absl::UnavailableError("backend down");
    });
  });
  ASSERT_TRUE(WaitUntil([&] { return in_fn.load(); }));
  const auto t0 = Clock::now();
  int runs = 0;
  absl::StatusOr<std::string> second =
      cache->GetOrCompute("k", Ttl{0}, [&]() -> absl::StatusOr<std::string> {
        ++runs;
        return "second";
      });
  computer.join();
  EXPECT_LT(Since(t0), seconds(10));
  ASSERT_TRUE(first.has_value());
  EXPECT_STATUS(*first, StatusCode::kUnavailable);
  EXPECT_OK_AND_EQ(second, "second");
  EXPECT_EQ(runs, 1);
  EXPECT_OK_AND_EQ(cache->Get("k"), "second");
  const CacheStats s = cache->GetStats();
  EXPECT_EQ(s.computes, 2u);
  EXPECT_EQ(s.waits, 1u);
  EXPECT_EQ(s.takeovers, 0u);  // the lease was dropped, not taken over
}

// A function that throws: the exception reaches the caller, the lease is dropped on the way out,
// nothing is stored, and the next GetOrCompute computes at once (compute_timeout is 60 s: it does
// not wait for the lease to expire).
TEST(CacheTest, ThrowingFunctionDropsTheLease) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(dir.File("c.mapkv"), SmallOptions(seconds(60))));
  EXPECT_THROW(
      (void)cache->GetOrCompute(
          "k", Ttl{0}, []() -> absl::StatusOr<std::string> { throw std::runtime_error("boom"); }),
      std::runtime_error);
  EXPECT_STATUS(cache->Get("k"), StatusCode::kNotFound);
  EXPECT_EQ(cache->GetStats().db.keys, 0u) << "the lease was left in place";
  const auto t0 = Clock::now();
  int runs = 0;
  EXPECT_OK_AND_EQ(cache->GetOrCompute("k", Ttl{0},
                                       [&]() -> absl::StatusOr<std::string> {
                                         ++runs;
                                         return "ok";
                                       }),
                   "ok");
  EXPECT_LT(Since(t0), seconds(10)) << "waited for the lease of the thrown function";
  EXPECT_EQ(runs, 1);
  const CacheStats s = cache->GetStats();
  EXPECT_EQ(s.waits, 0u);
  EXPECT_EQ(s.takeovers, 0u);
}

// ---- Increment.

// 8 processes, released together, add 1 to one counter 500 times each: it ends at exactly 4000.
TEST(CacheTest, IncrementIsAtomicAcrossProcesses) {
  constexpr int kProcs = 8;
  constexpr int kEach = 500;
  TempDir dir;
  const std::string path = dir.File("c.mapkv");
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, SmallOptions()));
  RunTogether(kProcs, [&](int, Pipe& ready, Pipe& start) {
    return StartChild("IncrementChild", {path, kEach, ready.WriteEndArg(), start.ReadEndArg()});
  });
  EXPECT_OK_AND_EQ(cache->Get("counter"), absl::StrCat(kProcs * kEach));
}

// Increment's arithmetic: a missing counter starts from 0, deltas may be negative, the value is
// stored in decimal (Get sees it); a value that is not a decimal integer is InvalidArgument naming
// the key; a sum past INT64_MAX or below INT64_MIN is OutOfRange and changes nothing.
TEST(CacheTest, IncrementArithmeticAndErrors) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(dir.File("c.mapkv"), SmallOptions()));
  ASSERT_OK_AND_ASSIGN(int64_t v, cache->Increment("n", 5));
  EXPECT_EQ(v, 5);
  ASSERT_OK_AND_ASSIGN(v, cache->Increment("n", -12));
  EXPECT_EQ(v, -7);
  ASSERT_OK_AND_ASSIGN(v, cache->Increment("n", 0));
  EXPECT_EQ(v, -7);
  EXPECT_OK_AND_EQ(cache->Get("n"), "-7");
  ASSERT_OK_AND_ASSIGN(v, cache->Increment("fresh", -3));
  EXPECT_EQ(v, -3);

  ASSERT_OK(cache->Put("word", "twelve"));
  absl::StatusOr<int64_t> bad = cache->Increment("word", 1);
  EXPECT_STATUS(bad, StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "word")) << bad.status();
  EXPECT_OK_AND_EQ(cache->Get("word"), "twelve");

  const int64_t max = std::numeric_limits<int64_t>::max();
  const int64_t min = std::numeric_limits<int64_t>::min();
  ASSERT_OK(cache->Put("big", absl::StrCat(max - 1)));
  ASSERT_OK_AND_ASSIGN(v, cache->Increment("big", 1));
  EXPECT_EQ(v, max);
  EXPECT_STATUS(cache->Increment("big", 1), StatusCode::kOutOfRange);
  EXPECT_OK_AND_EQ(cache->Get("big"), absl::StrCat(max));
  EXPECT_STATUS(cache->Increment("big", max), StatusCode::kOutOfRange);
  EXPECT_OK_AND_EQ(cache->Get("big"), absl::StrCat(max));
  ASSERT_OK(cache->Put("small", absl::StrCat(min)));
  EXPECT_STATUS(cache->Increment("small", -1), StatusCode::kOutOfRange);
  EXPECT_OK_AND_EQ(cache->Get("small"), absl::StrCat(min));
  ASSERT_OK_AND_ASSIGN(v, cache->Increment("small", max));
  EXPECT_EQ(v, -1);
}

// Increment and expiry (injected clock): a new counter gets the ttl given and expires with it,
// after which Increment starts again from 0 with the new ttl; an existing counter keeps its expiry
// whatever ttl a later Increment gives; an expired counter's count is gone.
TEST(CacheTest, IncrementExpiry) {
  TempDir dir;
  std::atomic<int64_t> now{kT0};
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(dir.File("c.mapkv"), ClockOptions(&now)));
  ASSERT_OK_AND_ASSIGN(int64_t v, cache->Increment("c", 1, milliseconds(1000)));
  EXPECT_EQ(v, 1);
  now = kT0 + 500;
  ASSERT_OK_AND_ASSIGN(v, cache->Increment("c", 1, milliseconds(60000)));  // keeps kT0 + 1000
  EXPECT_EQ(v, 2);
  ASSERT_OK_AND_ASSIGN(v, cache->Increment("c", 1, Ttl{0}));  // still kT0 + 1000
  EXPECT_EQ(v, 3);
  now = kT0 + 999;
  EXPECT_OK_AND_EQ(cache->Get("c"), "3");
  now = kT0 + 1000;
  EXPECT_STATUS(cache->Get("c"), StatusCode::kNotFound);
  ASSERT_OK_AND_ASSIGN(v, cache->Increment("c", 5, milliseconds(2000)));  // expires kT0 + 3000
  EXPECT_EQ(v, 5);
  now = kT0 + 2999;
  EXPECT_OK_AND_EQ(cache->Get("c"), "5");
  now = kT0 + 3000;
  EXPECT_STATUS(cache->Get("c"), StatusCode::kNotFound);

  // A counter without a ttl never expires, and keeps no expiry when a later Increment gives one.
  ASSERT_OK_AND_ASSIGN(v, cache->Increment("plain", 1));
  ASSERT_OK_AND_ASSIGN(v, cache->Increment("plain", 1, milliseconds(10)));
  EXPECT_EQ(v, 2);
  now = kT0 + 1'000'000'000;
  EXPECT_OK_AND_EQ(cache->Get("plain"), "2");
}

// ---- Statistics across processes.

// Counts made in other processes are in GetStats: those of a child that closed its handle (folded
// into the file's retired totals on close), of a child alive and holding its handle, of that
// child once killed (its dead slot still holds them), and all of them after every handle closed
// and the file was opened again (the first opener reclaims the dead slot).
TEST(CacheTest, StatsIncludeClosedAndKilledProcesses) {
  TempDir dir;
  const std::string path = dir.File("c.mapkv");
  auto expect_counts = [](const CacheStats& s, uint64_t children, const char* when) {
    SCOPED_TRACE(when);
    EXPECT_EQ(s.hits, 3 * children);
    EXPECT_EQ(s.misses, 3 * children);
    EXPECT_EQ(s.expirations, children);
    EXPECT_EQ(s.computes, children);
    EXPECT_EQ(s.waits, 0u);
    EXPECT_EQ(s.takeovers, 0u);
  };
  {
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, SmallOptions()));
    expect_counts(cache->GetStats(), 0, "a new file");
    Pipe ready;
    Pipe release;
    EXPECT_EQ(
        test::RunChild("StatsChild", {path, 0, false, ready.WriteEndArg(), release.ReadEndArg()}),
        0);
    EXPECT_TRUE(ready.WaitByte(seconds(1)));
    expect_counts(cache->GetStats(), 1, "a child closed its handle");

    const int holder =
        StartChild("StatsChild", {path, 1, true, ready.WriteEndArg(), release.ReadEndArg()});
    ASSERT_GT(holder, 0);
    ASSERT_TRUE(ready.WaitByte(seconds(60)));
    expect_counts(cache->GetStats(), 2, "a child holds its handle");
    EXPECT_EQ(test::KillChild(holder), kKilledStatus);
    expect_counts(cache->GetStats(), 2, "that child was killed");
    // Another handle, in this process, beside the dead slot.
    ASSERT_OK_AND_ASSIGN(auto second, Cache::Open(path, SmallOptions()));
    expect_counts(second->GetStats(), 2, "a second handle opened");
  }
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, SmallOptions()));
  expect_counts(cache->GetStats(), 2, "every handle closed, then the file opened again");
}

// ---- Compaction.

// mapkv::Compact of a cache drops what is dead: 30 values expired by the real clock (Compact's)
// and one lease left by a process killed inside its function; it keeps the 70 live values (without
// a ttl, and with a ttl not reached yet). The result counts 70 keys and 31 dropped; the file is
// still a cache (DB::Open refuses it) that reads back every live value, and the key that held the
// lease computes at once.
TEST(CacheTest, CompactDropsExpiredValuesAndLeases) {
  TempDir dir;
  const std::string path = dir.File("c.mapkv");
  // Written an hour ago, by the cache's clock: a ttl of 1 s has expired by now, one of 1 day not.
  std::atomic<int64_t> past{RealNowMs() - 3'600'000};
  auto ttl_of = [](int i) {
    return i < 30 ? Ttl(milliseconds(1000)) : i < 60 ? Ttl{0} : Ttl(milliseconds(86'400'000));
  };
  {
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, ClockOptions(&past)));
    for (int i = 0; i < 100; ++i) ASSERT_OK(cache->Put(KeyName(i), ValueOf(KeyName(i)), ttl_of(i)));
    for (int i = 0; i < 100; ++i) {
      EXPECT_OK_AND_EQ(cache->Get(KeyName(i)), ValueOf(KeyName(i)));  // all live an hour ago
    }
    Pipe release;
    const int computer = StartLeaseHolder(path, "leased", seconds(60), release);
    ASSERT_GT(computer, 0);
    EXPECT_EQ(test::KillChild(computer), kKilledStatus);
    EXPECT_EQ(cache->GetStats().db.keys, 101u);
  }
  ASSERT_OK_AND_ASSIGN(CompactResult result, Compact(path, ""));
  EXPECT_TRUE(result.in_place);
  EXPECT_EQ(result.keys, 70u);
  EXPECT_EQ(result.dropped, 31u);

  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, SmallOptions(seconds(60))));
  const Stats s = cache->GetStats().db;
  EXPECT_TRUE(s.is_cache);
  EXPECT_EQ(s.format_version, 3u);  // a ring: the default capacity
  EXPECT_EQ(s.keys, 70u);
  for (int i = 0; i < 100; ++i) {
    if (i < 30) {
      EXPECT_STATUS(cache->Get(KeyName(i)), StatusCode::kNotFound) << KeyName(i);
    } else {
      EXPECT_OK_AND_EQ(cache->Get(KeyName(i)), ValueOf(KeyName(i)));
    }
  }
  EXPECT_STATUS(cache->Get("leased"), StatusCode::kNotFound);
  const auto t0 = Clock::now();
  EXPECT_OK_AND_EQ(
      cache->GetOrCompute("leased", Ttl{0}, []() -> absl::StatusOr<std::string> { return "now"; }),
      "now");
  EXPECT_LT(Since(t0), seconds(10));
  EXPECT_EQ(cache->GetStats().takeovers, 0u) << "the lease survived the compaction";
  cache.reset();
  EXPECT_STATUS(DB::Open(path, SmallOptions().db), StatusCode::kFailedPrecondition);
}

// Compacting a database drops nothing, not even values that would read as expired cache entries
// (an 8-byte envelope with an expiry long past): only a cache's values have an envelope.
TEST(CacheTest, CompactOfADatabaseDropsNothing) {
  TempDir dir;
  const std::string path = dir.File("db.mapkv");
  // Kind 0 (a value), expiry 1 ms after the epoch, then a payload.
  const std::string looks_expired = std::string("\x01\0\0\0\0\0\0\0", 8) + "payload";
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, SmallOptions().db));
    for (int i = 0; i < 10; ++i) ASSERT_OK(db->Put(KeyName(i), looks_expired));
  }
  ASSERT_OK_AND_ASSIGN(CompactResult result, Compact(path, ""));
  EXPECT_EQ(result.keys, 10u);
  EXPECT_EQ(result.dropped, 0u);
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, SmallOptions().db));
  EXPECT_FALSE(db->GetStats().is_cache);
  for (int i = 0; i < 10; ++i) EXPECT_OK_AND_EQ(db->Get(KeyName(i)), looks_expired);
}

// A read transaction of a cache without a capacity (a log that only grows, format version 2)
// holds its state while the same thread, through the same handle, overwrites and deletes every
// key and rehashes the index (a 100 ms lock timeout: a held read lock would fail the commits).
// Its ForEach visits the entries oldest first.
TEST(CacheTest, AReadTransactionOfACacheWithoutACapacityHoldsItsState) {
  TempDir dir;
  const std::string path = dir.File("cache");
  CacheOptions options = SmallOptions();
  options.capacity = 0;
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, options));
  for (int i = 0; i < 200; ++i) ASSERT_OK(cache->Put(KeyName(i), absl::StrCat("first ", i)));
  for (int i = 0; i < 200; i += 3) ASSERT_OK(cache->Delete(KeyName(i)));
  for (int i = 1; i < 200; i += 3) ASSERT_OK(cache->Put(KeyName(i), absl::StrCat("second ", i)));
  Options any;
  any.kind = FileKind::kAny;
  any.lock_timeout = milliseconds(100);
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, any));
  std::map<std::string, std::string> expected;
  for (int i = 0; i < 200; ++i) {
    absl::StatusOr<std::string> v = db->Get(KeyName(i));
    if (v.ok()) expected[KeyName(i)] = *v;
  }
  ASSERT_EQ(expected.size(), 133u);
  ASSERT_OK_AND_ASSIGN(ReadTxn snap, db->BeginRead());
  for (int i = 0; i < 5000; ++i) {
    if (i % 5 == 0) {
      ASSERT_OK(db->Delete(KeyName(i % 200)));
    } else {
      ASSERT_OK(db->Put(KeyName(i), absl::StrCat("later ", i)));
    }
  }
  EXPECT_GT(db->GetStats().index_capacity, 4 * expected.size()) << "no rehash";
  EXPECT_EQ(snap.Count(), expected.size());
  std::map<std::string, std::string> seen;
  std::vector<std::string> order;
  ASSERT_OK(snap.ForEach([&](std::string_view k, std::string_view v) {
    EXPECT_TRUE(seen.emplace(k, v).second) << k;
    order.emplace_back(k);
    return true;
  }));
  EXPECT_EQ(seen, expected);
  // Oldest first: the keys whose first put is their last, then those put again.
  std::vector<std::string> oldest_first;
  for (int i = 2; i < 200; i += 3) oldest_first.push_back(KeyName(i));
  for (int i = 1; i < 200; i += 3) oldest_first.push_back(KeyName(i));
  EXPECT_EQ(order, oldest_first);
  for (int i = 0; i < 200; ++i) {
    const auto it = expected.find(KeyName(i));
    if (it == expected.end()) {
      EXPECT_STATUS(snap.Get(KeyName(i)), StatusCode::kNotFound);
    } else {
      EXPECT_OK_AND_EQ(snap.Get(KeyName(i)), it->second);
    }
  }
  EXPECT_STATUS(snap.Get(KeyName(4000)), StatusCode::kNotFound);
}

}  // namespace
}  // namespace mapkv
