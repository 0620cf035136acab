// A cache with a capacity (CacheOptions::capacity): its log is a ring, its file never grows past
// the capacity, and the oldest entries are evicted to make room (format.h, DBImpl::Evict).
//
// - a long random workload of mixed value sizes in a 1 MiB cache: the file stays within the
//   capacity, every Get returns the key's latest value or NotFound (never an older one, never an
//   error), Verify passes all along, and the log goes round many times;
// - small entries fill the index before the bytes: the oldest go for lack of slots;
// - an entry larger than a quarter of the ring and a capacity under 1 MiB are refused;
// - four processes writing and reading one small ring at once: no Get ever returns a value that
//   is torn or belongs to another key, while the space under optimistic readers is reused;
// - writers SIGKILLed at random moments (mid-eviction included): the ring verifies and serves;
// - an unclean machine stop starts the cache empty; a clean close after a checkpoint keeps it;
// - compaction keeps the capacity; kSync commits flush across the ring's end;
// - a read transaction of the cache's file is a snapshot: held while the ring turns over many
//   times under commits of the same thread (through the same handle), it reads the same entries;
//   deleting every key inside its ForEach visits every key; taken again and again beside another
//   process that commits pairs of keys as fast as it can, each is the state of one commit; one
//   whose copy of the ring is written over half-way copies it again, under the lock at last.
//
// Knobs: MAPKV_RING_OPS (operations of the random workload, 60000), MAPKV_RING_PROC_OPS
// (operations of each process of the multi-process runs, 20000), MAPKV_RING_KILLS (writers
// killed, 20). Each is a count of work, never a time, so that the ring turns as often on any
// machine.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mapkv/cache.h"
#include "mapkv/compact.h"
#include "mapkv/db.h"
#include "src/db_impl.h"
#include "src/env.h"
#include "src/format.h"
#include "src/hash.h"
#include "test_util.h"

namespace mapkv {
namespace {

using ::absl::StatusCode;
using ::mapkv::test::ChildPipe;
using ::mapkv::test::EnvInt;
using ::mapkv::test::KillChild;
using ::mapkv::test::Pipe;
using ::mapkv::test::StartChild;
using ::mapkv::test::TempDir;
using ::mapkv::test::WaitChild;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint64_t kMiB = 1 << 20;

CacheOptions RingOptions(uint64_t capacity = kMiB) {
  CacheOptions options;
  options.capacity = capacity;
  options.db.initial_index_slots = 64;
  options.db.lock_timeout = seconds(10);
  return options;
}

std::string Key(uint64_t k) { return absl::StrCat("key/", k); }

// A value that names its key and version, filled with bytes derived from both, `size` bytes long
// (at least the name): a torn value or another key's fails CheckValue.
std::string MakeValue(const std::string& key, uint64_t version, size_t size) {
  std::string v = absl::StrCat(key, "#", version, "#");
  uint64_t x = version * 0x9E3779B97F4A7C15ull + key.size();
  while (v.size() < size) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v.push_back(static_cast<char>('a' + x % 26));
  }
  return v;
}

// The version `value` was made with for `key`, or an error saying what is wrong with it.
absl::StatusOr<uint64_t> CheckValue(const std::string& key, const std::string& value) {
  const std::string prefix = absl::StrCat(key, "#");
  const size_t end = value.find('#', prefix.size());
  uint64_t version = 0;
  if (!absl::StartsWith(value, prefix) || end == std::string::npos ||
      !absl::SimpleAtoi(value.substr(prefix.size(), end - prefix.size()), &version) ||
      MakeValue(key, version, value.size()) != value) {
    return absl::DataLossError(
        absl::StrCat("key ", key, ": a foreign or torn value of ", value.size(), " bytes: \"",
                     value.substr(0, std::min<size_t>(value.size(), 40)), "\""));
  }
  return version;
}

// Value sizes: mostly small, some large (up to 24 KiB), as a cache of rendered fragments has.
size_t RandomSize(std::mt19937_64& rng) {
  const uint64_t r = rng() % 100;
  if (r < 60) return 16 + rng() % 200;
  if (r < 90) return 256 + rng() % 2048;
  return 4096 + rng() % (20 * 1024);
}

uint64_t FileSize(const std::string& path) { return std::filesystem::file_size(path); }

// As if the machine had rebooted since the file was last used (SharedState::boot_id).
void SimulateReboot(const std::string& path) {
  test::WriteFileU64(path, internal::kSharedStateOffset + 80, 0x1234);
}

TEST(CacheRingTest, CapacityBoundsTheFileAndEveryGetIsLatestOrNotFound) {
  TempDir dir;
  const std::string path = dir.File("ring.mapkv");
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions()));
  const int64_t ops = EnvInt("MAPKV_RING_OPS", 60000);
  constexpr uint64_t kKeys = 500;
  std::map<uint64_t, uint64_t> latest;  // key -> version; absent: deleted or never put
  std::mt19937_64 rng(42);
  uint64_t version = 0, found = 0, not_found = 0, written = 0;
  for (int64_t op = 0; op < ops; ++op) {
    const uint64_t k = rng() % kKeys;
    const std::string key = Key(k);
    const uint64_t r = rng() % 100;
    if (r < 55) {
      const std::string value = MakeValue(key, ++version, RandomSize(rng));
      ASSERT_OK(cache->Put(key, value)) << "op " << op;
      latest[k] = version;
      written += value.size();
    } else if (r < 60) {
      ASSERT_OK(cache->Delete(key));
      latest.erase(k);
    } else {
      absl::StatusOr<std::string> got = cache->Get(key);
      if (absl::IsNotFound(got.status())) {
        ++not_found;
        continue;
      }
      ASSERT_OK(got) << "op " << op << " key " << key;
      ASSERT_OK_AND_ASSIGN(uint64_t v, CheckValue(key, *got));
      auto it = latest.find(k);
      ASSERT_TRUE(it != latest.end()) << key << ": deleted, but Get returned version " << v;
      ASSERT_EQ(v, it->second) << key << ": an older value came back";
      ++found;
    }
    if (op % 5000 == 4999) {
      ASSERT_LE(FileSize(path), kMiB) << "op " << op;
      ASSERT_LE(cache->GetStats().db.keys, kKeys) << "op " << op;
    }
  }
  const CacheStats s = cache->GetStats();
  EXPECT_EQ(s.db.cache_capacity, kMiB);
  EXPECT_EQ(s.db.file_size, kMiB);
  EXPECT_LE(s.db.log_bytes, kMiB);
  EXPECT_GT(s.evictions, 0u);
  // The workload wrote many rings' worth; both outcomes of a Get were seen.
  EXPECT_GT(written, 10 * kMiB) << "raise MAPKV_RING_OPS";
  EXPECT_GT(found, 0u);
  EXPECT_GT(not_found, 0u);
  // Whatever is left verifies: every index entry a valid put of the live log, counters right.
  cache.reset();
  Options any;
  any.kind = FileKind::kAny;
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, any));
  std::vector<VerifyProblem> problems;
  EXPECT_OK(db->Verify(&problems));
}

// Verify after every few hundred operations, through a second handle of the same process.
TEST(CacheRingTest, VerifiesThroughoutWhileTheRingTurns) {
  TempDir dir;
  const std::string path = dir.File("ring.mapkv");
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions()));
  Options any;
  any.kind = FileKind::kAny;
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, any));
  std::mt19937_64 rng(7);
  for (int round = 0; round < 40; ++round) {
    for (int i = 0; i < 300; ++i) {
      const std::string key = Key(rng() % 2000);
      if (rng() % 10 == 0) {
        ASSERT_OK(cache->Delete(key));
      } else {
        ASSERT_OK(cache->Put(key, MakeValue(key, round, RandomSize(rng))));
      }
    }
    std::vector<VerifyProblem> problems;
    ASSERT_OK(db->Verify(&problems)) << "round " << round;
  }
  EXPECT_GT(cache->GetStats().evictions, 0u);
}

TEST(CacheRingTest, SmallEntriesAreEvictedForLackOfSlots) {
  TempDir dir;
  const std::string path = dir.File("ring.mapkv");
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions()));
  const uint64_t slots = cache->GetStats().db.index_capacity;
  ASSERT_EQ(slots, kMiB / 256);  // a slot per 256 bytes of capacity
  constexpr int kPuts = 20000;   // 20000 x 48 bytes: under the ring's bytes, over its slots
  for (int i = 0; i < kPuts; ++i) {
    ASSERT_OK(cache->Put(Key(i), "12345678")) << i;
    if (i % 1000 == 999) {
      const Stats s = cache->GetStats().db;
      ASSERT_LE(s.index_used * 4, s.index_capacity * 3) << i;
      ASSERT_EQ(s.index_capacity, slots) << "the index of a cache never grows";
    }
  }
  const CacheStats s = cache->GetStats();
  EXPECT_GE(s.evictions, kPuts - slots * 3 / 4);
  EXPECT_EQ(s.db.keys + s.evictions, static_cast<uint64_t>(kPuts));
  // The newest stay: eviction takes the oldest first.
  for (int i = kPuts - 500; i < kPuts; ++i) EXPECT_OK_AND_EQ(cache->Get(Key(i)), "12345678") << i;
  EXPECT_STATUS(cache->Get(Key(0)), StatusCode::kNotFound);
}

TEST(CacheRingTest, OversizedEntriesAndCapacitiesAreRefused) {
  TempDir dir;
  const std::string path = dir.File("ring.mapkv");
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions()));
  const absl::Status big = cache->Put("big", std::string(300 * 1024, 'x'));
  EXPECT_EQ(big.code(), StatusCode::kInvalidArgument) << big;
  EXPECT_TRUE(absl::StrContains(big.message(), path)) << big;
  EXPECT_TRUE(absl::StrContains(big.message(), "larger than a quarter")) << big;
  EXPECT_OK(cache->Put("fits", std::string(100 * 1024, 'y')));
  EXPECT_OK_AND_EQ(cache->Get("fits"), std::string(100 * 1024, 'y'));
  cache.reset();

  absl::StatusOr<std::unique_ptr<Cache>> tiny = Cache::Open(dir.File("tiny"), RingOptions(4096));
  EXPECT_EQ(tiny.status().code(), StatusCode::kInvalidArgument) << tiny.status();
  EXPECT_TRUE(absl::StrContains(tiny.status().message(), "at least 1 MiB")) << tiny.status();
  EXPECT_FALSE(std::filesystem::exists(dir.File("tiny")));

  // An index too large for the capacity.
  CacheOptions huge_index = RingOptions();
  huge_index.db.initial_index_slots = 1 << 20;
  absl::StatusOr<std::unique_ptr<Cache>> bad = Cache::Open(dir.File("index"), huge_index);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << bad.status();

  // No capacity: the file grows as a database's does (format version 2), nothing is evicted.
  ASSERT_OK_AND_ASSIGN(auto growing, Cache::Open(dir.File("growing"), RingOptions(0)));
  for (int i = 0; i < 100; ++i) ASSERT_OK(growing->Put(Key(i), std::string(20000, 'z')));
  const CacheStats s = growing->GetStats();
  EXPECT_EQ(s.db.format_version, internal::kCacheFormatVersion);
  EXPECT_EQ(s.db.cache_capacity, 0u);
  EXPECT_GT(s.db.file_size, kMiB);
  EXPECT_EQ(s.evictions, 0u);
  EXPECT_EQ(s.db.keys, 100u);
}

// Process `proc` of ProcessesShareOneSmallRing: `ops` puts (40%), gets (50%) and GetOrComputes
// (10%) of random keys of the shared key space, checking that every value it gets is whole and its
// key's. Arguments: path, proc, ops.
MAPKV_CHILD(RingWorkerChild) {
  const std::string& path = args.at(0);
  const int proc = args.Int<int>(1);
  const int64_t ops = args.Int(2);
  auto opened = Cache::Open(path, RingOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<Cache> cache = std::move(*opened);
  std::mt19937_64 rng(1000 + proc);
  uint64_t checked = 0, version = static_cast<uint64_t>(proc) << 40;
  for (int64_t op = 0; op < ops; ++op) {
    const std::string key = Key(rng() % 300);
    const uint64_t r = rng() % 100;
    if (r < 40) {
      CHILD_CHECK_OK(cache->Put(key, MakeValue(key, ++version, RandomSize(rng))), key);
      continue;
    }
    absl::StatusOr<std::string> got =
        r < 90 ? cache->Get(key)
               : cache->GetOrCompute(key, Ttl{0}, [&]() -> absl::StatusOr<std::string> {
                   return MakeValue(key, ++version, RandomSize(rng));
                 });
    if (absl::IsNotFound(got.status())) continue;
    CHILD_CHECK_OK(got, key);
    CHILD_CHECK_OK(CheckValue(key, *got).status());
    ++checked;
  }
  CHILD_CHECK(checked > 0 || ops < 100, "no value was checked in ", ops, " operations");
  return 0;
}

// Each process puts some 8000 values of 1.9 KiB on average with the default MAPKV_RING_PROC_OPS:
// the four of them write the 1 MiB ring some 60 times over.
TEST(CacheRingTest, ProcessesShareOneSmallRingAndNeverSeeATornValue) {
  TempDir dir;
  const std::string path = dir.File("ring.mapkv");
  { ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions())); }
  const int64_t ops = EnvInt("MAPKV_RING_PROC_OPS", 20000);
  std::vector<int> pids;
  for (int p = 0; p < 4; ++p) pids.push_back(StartChild("RingWorkerChild", {path, p, ops}));
  for (int pid : pids) EXPECT_EQ(WaitChild(pid, seconds(300)), 0);
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions()));
  const CacheStats s = cache->GetStats();
  EXPECT_GT(s.evictions, 0u) << "the ring never turned: raise MAPKV_RING_PROC_OPS";
  std::printf("4 processes, %lld operations each; %llu evictions\n", static_cast<long long>(ops),
              static_cast<unsigned long long>(s.evictions));
  EXPECT_EQ(s.db.file_size, kMiB);
  Options any;
  any.kind = FileKind::kAny;
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, any));
  EXPECT_OK(db->Verify());
}

// Puts random entries into the ring until killed, writing a byte on `writing` after its first.
// Arguments: path, seed, the write end of `writing`.
MAPKV_CHILD(RingWriterChild) {
  auto opened = Cache::Open(args.at(0), RingOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<Cache> cache = std::move(*opened);
  std::mt19937_64 rng(args.Int(1));
  ChildPipe writing = args.PipeEnd(2);
  for (uint64_t version = 1;; ++version) {
    const std::string key = Key(rng() % 400);
    CHILD_CHECK_OK(cache->Put(key, MakeValue(key, version, RandomSize(rng))), key);
    if (version == 1) {
      CHILD_CHECK(writing.Write("w"));
      writing.Close();
    }
  }
}

TEST(CacheRingTest, WritersKilledAtRandomMomentsLeaveARingThatVerifies) {
  TempDir dir;
  const std::string path = dir.File("ring.mapkv");
  const int kills = static_cast<int>(EnvInt("MAPKV_RING_KILLS", 20));
  std::mt19937_64 rng(99);
  Options any;
  any.kind = FileKind::kAny;
  {
    // A full ring first: every writer killed below is evicting as it writes.
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions()));
    for (int k = 0; k < 600; ++k)
      ASSERT_OK(cache->Put(Key(k % 400), MakeValue(Key(k % 400), k, 3000)));
    ASSERT_GT(cache->GetStats().evictions, 0u);
  }
  for (int i = 0; i < kills; ++i) {
    Pipe writing;
    const int pid = StartChild("RingWriterChild", {path, i, writing.WriteEndArg()});
    writing.CloseWrite();
    ASSERT_TRUE(writing.WaitByte(seconds(30))) << "the writer did not start";
    std::this_thread::sleep_for(milliseconds(rng() % 40));
    KillChild(pid);
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions()));
    ASSERT_OK(cache->Put("after", absl::StrCat(i)));  // recovers the dead writer's leftovers
    for (int k = 0; k < 400; ++k) {
      absl::StatusOr<std::string> got = cache->Get(Key(k));
      if (absl::IsNotFound(got.status())) continue;
      ASSERT_OK(got);
      ASSERT_OK(CheckValue(Key(k), *got).status());
    }
    cache.reset();
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, any));
    ASSERT_OK(db->Verify()) << "after kill " << i;
  }
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions()));
  EXPECT_GT(cache->GetStats().evictions, 0u);
  EXPECT_LE(FileSize(path), kMiB);
}

// A writer that dies half-way through an eviction: head moved, the index entries of what it
// passed not yet removed (the test hook stops it there, every time). Arguments: path.
constexpr int kDiedEvicting = 42;
class DieEvictingEnv : public internal::Env {
 public:
  void AtPoint(internal::HookPoint point) override {
    if (point == internal::HookPoint::kEvicting) std::_Exit(kDiedEvicting);
  }
};
MAPKV_CHILD(DiesEvictingChild) {
  DieEvictingEnv env;
  CacheOptions options = RingOptions();
  options.db.env = &env;
  auto cache = Cache::Open(args.at(0), options);
  CHILD_CHECK_OK(cache.status());
  for (int k = 0; k < 100000; ++k) {
    CHILD_CHECK_OK((*cache)->Put(Key(k % 400), MakeValue(Key(k % 400), k, 3000)));
  }
  return 1;  // never evicted
}

// Recovery from a writer that died evicting, by a handle that was open beside it (the next write
// takes the dead writer's lock) and by the first opener after it: the ring verifies (every key of
// the live log is in the index, no entry points below head) and serves.
TEST(CacheRingTest, AWriterThatDiesEvictingLeavesARingThatVerifies) {
  Options any;
  any.kind = FileKind::kAny;
  for (const bool beside : {true, false}) {
    SCOPED_TRACE(beside ? "recovered by a handle open beside it" : "recovered by the next opener");
    TempDir dir;
    const std::string path = dir.File("ring.mapkv");
    std::unique_ptr<Cache> open_beside;
    if (beside) {
      ASSERT_OK_AND_ASSIGN(open_beside, Cache::Open(path, RingOptions()));
    }
    const int status = test::RunChild("DiesEvictingChild", {path});
    ASSERT_EQ(status, kDiedEvicting) << test::ExitStatusToString(status);
    if (beside) {
      ASSERT_OK(open_beside->Put("after", "1"));
      open_beside.reset();
    }
    {
      ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions()));
      ASSERT_OK(cache->Put("after", "2"));
      for (int k = 0; k < 400; ++k) {
        absl::StatusOr<std::string> got = cache->Get(Key(k));
        if (absl::IsNotFound(got.status())) continue;
        ASSERT_OK(got);
        ASSERT_OK(CheckValue(Key(k), *got).status());
      }
    }
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, any));
    EXPECT_OK(db->Verify());
  }
}

// A ring filled to within 8 bytes of its length: the bytes past the tail are the oldest live
// record's. The reopen's recovery, which breaks whatever sealed batch a dead writer may have left
// past the tail, must leave them alone.
TEST(CacheRingTest, RecoveryLeavesTheOldestRecordOfAFullRingAlone) {
  TempDir dir;
  const std::string path = dir.File("ring.mapkv");
  const std::string key = "fill";
  {
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions()));
    const uint64_t ring_start = test::ReadFileU64(path, offsetof(internal::FileHeader, ring_start));
    const uint64_t ring_len = kMiB - ring_start;
    auto slack = [&] { return ring_len - (cache->GetStats().db.log_bytes - ring_start); };
    bool full = false;
    for (int i = 0; i < 5000 && !full; ++i) {
      const uint64_t room = slack();
      // A record of exactly the room left: header, key, the entry's 8-byte envelope, value.
      const uint64_t fixed = sizeof(internal::RecordHeader) + key.size() + 8;
      if (cache->GetStats().evictions > 0 && room >= fixed && room <= 3000) {
        ASSERT_OK(cache->Put(key, std::string(room - fixed, 'x')));
      } else {
        ASSERT_OK(cache->Put(Key(i % 400), MakeValue(Key(i % 400), i, 1000)));
      }
      full = slack() < sizeof(uint64_t);
    }
    ASSERT_TRUE(full) << "the ring never filled to within 8 bytes";
  }
  Options any;
  any.kind = FileKind::kAny;
  {
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions()));  // recovery runs here
  }
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, any));
  EXPECT_OK(db->Verify());
}

TEST(CacheRingTest, AnUncleanStopStartsTheCacheEmptyAndACleanCloseKeepsIt) {
  TempDir dir;
  const std::string path = dir.File("ring.mapkv");
  std::vector<std::string> log;
  CacheOptions options = RingOptions();
  options.db.info_log = [&log](std::string_view line) { log.emplace_back(line); };
  {
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, options));
    for (int i = 0; i < 3000; ++i) ASSERT_OK(cache->Put(Key(i), MakeValue(Key(i), 1, 300)));
  }  // no checkpoint: not clean
  SimulateReboot(path);
  {
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, options));
    const CacheStats s = cache->GetStats();
    EXPECT_EQ(s.db.keys, 0u);
    EXPECT_TRUE(s.db.rebuilt_index);
    EXPECT_STATUS(cache->Get(Key(2999)), StatusCode::kNotFound);
    ASSERT_EQ(log.size(), 1u);
    EXPECT_TRUE(absl::StrContains(log[0], "a cache starts empty")) << log[0];
    EXPECT_TRUE(absl::StrContains(log[0], path)) << log[0];
    // It works on: the ring turns again.
    for (int i = 0; i < 3000; ++i) ASSERT_OK(cache->Put(Key(i), MakeValue(Key(i), 2, 300)));
    EXPECT_OK_AND_EQ(cache->Get(Key(2999)), MakeValue(Key(2999), 2, 300));
    ASSERT_OK(cache->Checkpoint());
  }  // a checkpoint, then the last close: clean
  SimulateReboot(path);
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, options));
  EXPECT_FALSE(cache->GetStats().db.rebuilt_index);
  EXPECT_OK_AND_EQ(cache->Get(Key(2999)), MakeValue(Key(2999), 2, 300));
  EXPECT_EQ(log.size(), 1u);
  Options any;
  any.kind = FileKind::kAny;
  cache.reset();
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, any));
  EXPECT_OK(db->Verify());
}

// Damage to what a ring's bounds come from. The header's ring start is under its checksum: any
// change is refused naming offset 48 once the checksum is made to match. A shared state whose head
// lies past its tail is refused on the same boot and makes a cache start empty after a reboot.
TEST(CacheRingTest, DamagedRingBoundsAreRefusedOrReset) {
  TempDir dir;
  const std::string path = dir.File("ring.mapkv");
  {
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions()));
    for (int i = 0; i < 2000; ++i) ASSERT_OK(cache->Put(Key(i), MakeValue(Key(i), i, 700)));
  }
  constexpr uint64_t kRingStart = 48, kHeaderChecksum = 56;
  constexpr uint64_t kHead = internal::kSharedStateOffset + 112;
  const std::string pristine = test::ReadFile(path);
  auto restore = [&] { ASSERT_TRUE(test::WriteFile(path, pristine)); };
  auto reseal = [&] {  // the header checksum over its first 56 bytes (format.h)
    const std::string h = test::ReadFile(path).substr(0, 56);
    test::WriteFileU64(path, kHeaderChecksum, internal::Hash64(h.data(), h.size(), 0));
  };

  test::WriteFileU64(path, kRingStart, test::ReadFileU64(path, kRingStart) + 64);
  reseal();
  absl::StatusOr<std::unique_ptr<Cache>> opened = Cache::Open(path, RingOptions());
  EXPECT_EQ(opened.status().code(), StatusCode::kDataLoss) << opened.status();
  EXPECT_TRUE(absl::StrContains(opened.status().message(), "offset 48")) << opened.status();
  restore();

  const uint64_t committed = test::ReadFileU64(path, internal::kSharedStateOffset);
  test::WriteFileU64(path, kHead, committed + 8);
  opened = Cache::Open(path, RingOptions());
  EXPECT_EQ(opened.status().code(), StatusCode::kDataLoss) << opened.status();
  EXPECT_TRUE(absl::StrContains(opened.status().message(), "log tail")) << opened.status();

  SimulateReboot(path);
  CacheOptions quiet = RingOptions();
  quiet.db.info_log = [](std::string_view) {};
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, quiet));
  EXPECT_EQ(cache->GetStats().db.keys, 0u);
  ASSERT_OK(cache->Put("fresh", "start"));
  EXPECT_OK_AND_EQ(cache->Get("fresh"), "start");
}

// A record that does not decode where eviction must walk (a damaged file): the cache drops every
// entry, says so, and goes on.
TEST(CacheRingTest, ADamagedRecordAtTheHeadEmptiesTheCacheAndItGoesOn) {
  TempDir dir;
  const std::string path = dir.File("ring.mapkv");
  {
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions()));
    for (int i = 0; i < 2000; ++i) ASSERT_OK(cache->Put(Key(i), MakeValue(Key(i), i, 700)));
  }
  const uint64_t ring_start = test::ReadFileU64(path, 48);
  const uint64_t ring_len = kMiB - ring_start;
  const uint64_t head = test::ReadFileU64(path, internal::kSharedStateOffset + 112);
  const uint64_t at = internal::RingPhys(head, ring_start, ring_len);
  // The type byte (RecordHeader offset 14) of the oldest record: a type that does not exist.
  const uint64_t word = test::ReadFileU64(path, at + 8);
  test::WriteFileU64(path, at + 8, (word & ~(uint64_t{0xFF} << 48)) | (uint64_t{0x77} << 48));
  {
    // A read transaction of the damaged ring cannot copy it: it reads under the shared lock,
    // and its ForEach stops at the damage, which Verify reports too.
    Options any;
    any.kind = FileKind::kAny;
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, any));
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    uint64_t visited = 0;
    EXPECT_STATUS(txn.ForEach([&](std::string_view, std::string_view) { return ++visited > 0; }),
                  StatusCode::kDataLoss);
    EXPECT_STATUS(db->Verify(), StatusCode::kDataLoss);
  }
  std::vector<std::string> log;
  CacheOptions options = RingOptions();
  options.db.info_log = [&log](std::string_view line) { log.emplace_back(line); };
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, options));
  const uint64_t before = cache->GetStats().db.keys;
  ASSERT_GT(before, 100u);
  for (int i = 0; i < 400; ++i) ASSERT_OK(cache->Put(Key(5000 + i), MakeValue(Key(i), i, 700)));
  ASSERT_FALSE(log.empty());
  EXPECT_TRUE(absl::StrContains(log[0], "the cache drops every entry")) << log[0];
  EXPECT_TRUE(absl::StrContains(log[0], absl::StrCat("offset ", head))) << log[0];
  EXPECT_STATUS(cache->Get(Key(1999)), StatusCode::kNotFound);
  EXPECT_OK_AND_EQ(cache->Get(Key(5399)), MakeValue(Key(399), 399, 700));
  const CacheStats s = cache->GetStats();
  EXPECT_GE(s.evictions, before);
  Options any;
  any.kind = FileKind::kAny;
  cache.reset();
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, any));
  EXPECT_OK(db->Verify());
}

TEST(CacheRingTest, CompactionKeepsTheCapacityAndTheEntries) {
  TempDir dir;
  const std::string path = dir.File("ring.mapkv");
  const uint64_t capacity = 2 * kMiB;
  {
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions(capacity)));
    for (int i = 0; i < 5000; ++i) ASSERT_OK(cache->Put(Key(i % 700), MakeValue(Key(i), i, 900)));
  }
  ASSERT_OK_AND_ASSIGN(CompactResult result, Compact(path, ""));
  EXPECT_TRUE(result.in_place);
  EXPECT_GT(result.keys, 0u);
  EXPECT_LE(result.size_after, capacity);
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions(kMiB)));  // its own capacity wins
  const CacheStats s = cache->GetStats();
  EXPECT_EQ(s.db.cache_capacity, capacity);
  EXPECT_EQ(s.db.keys, result.keys);
  EXPECT_OK_AND_EQ(cache->Get(Key(4999 % 700)), MakeValue(Key(4999), 4999, 900));
}

TEST(CacheRingTest, SyncCommitsFlushAcrossTheEndOfTheRing) {
  TempDir dir;
  const std::string path = dir.File("ring.mapkv");
  CacheOptions options = RingOptions();
  options.db.durability = Durability::kSync;
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, options));
  for (int i = 0; i < 300; ++i) ASSERT_OK(cache->Put(Key(i), MakeValue(Key(i), i, 4000)));
  EXPECT_GT(cache->GetStats().evictions, 0u);
  EXPECT_OK_AND_EQ(cache->Get(Key(299)), MakeValue(Key(299), 299, 4000));
}

// Options for a second handle on a cache's file that reads and writes its stored bytes as they
// are (no envelope), with a lock timeout that a held read lock would make commits miss.
Options AnyFile() {
  Options any;
  any.kind = FileKind::kAny;
  any.lock_timeout = milliseconds(100);
  return any;
}

using Entries = std::map<std::string, std::string>;

// Checks every way `snap` reads against `expected`: Count, ForEach, Get and MultiGet of every key
// in [0, keys), present or not.
void ExpectSnapshotHolds(const ReadTxn& snap, const Entries& expected, int keys,
                         const std::string& when) {
  SCOPED_TRACE(when);
  EXPECT_EQ(snap.Count(), expected.size());
  Entries seen;
  ASSERT_OK(snap.ForEach([&](std::string_view k, std::string_view v) {
    EXPECT_TRUE(seen.emplace(k, v).second) << "listed twice: " << k;
    return true;
  }));
  EXPECT_EQ(seen, expected);
  std::vector<std::string> names;
  for (int k = 0; k < keys; ++k) names.push_back(Key(k));
  std::vector<std::string_view> views(names.begin(), names.end());
  std::vector<absl::StatusOr<std::string_view>> many(names.size());
  snap.MultiGet(views, absl::MakeSpan(many));
  for (size_t k = 0; k < names.size(); ++k) {
    const auto it = expected.find(names[k]);
    absl::StatusOr<std::string_view> one = snap.Get(names[k]);
    if (it == expected.end()) {
      EXPECT_STATUS(one, StatusCode::kNotFound) << names[k];
      EXPECT_STATUS(many[k], StatusCode::kNotFound) << names[k];
    } else {
      EXPECT_OK_AND_EQ(one, it->second) << names[k];
      EXPECT_OK_AND_EQ(many[k], it->second) << names[k];
    }
  }
}

// A read transaction of a cache's file holds its state while the same thread writes the 1 MiB
// ring over many times, a third of it through the handle that holds the transaction: every
// commit goes through (a 100 ms lock timeout), and the transaction reads the same entries after
// every round; deleting every key inside its ForEach visits every key.
TEST(CacheRingTest, ASnapshotHeldWhileTheRingTurnsNeverChanges) {
  TempDir dir;
  const std::string path = dir.File("ring.mapkv");
  CacheOptions options = RingOptions();
  options.db.lock_timeout = milliseconds(100);
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, options));
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, AnyFile()));
  constexpr int kKeys = 400;
  std::mt19937_64 rng(11);
  uint64_t version = 0;
  for (int i = 0; i < 600; ++i) {
    const std::string key = Key(rng() % kKeys);
    ASSERT_OK(cache->Put(key, MakeValue(key, ++version, RandomSize(rng))));
    if (rng() % 8 == 0) ASSERT_OK(cache->Delete(Key(rng() % kKeys)));
  }
  Entries expected;  // what the file holds now, key by key
  for (int k = 0; k < kKeys; ++k) {
    absl::StatusOr<std::string> v = db->Get(Key(k));
    if (v.ok()) {
      expected[Key(k)] = *v;
    } else {
      ASSERT_STATUS(v, StatusCode::kNotFound);
    }
  }
  ASSERT_GT(expected.size(), 50u);

  ASSERT_OK_AND_ASSIGN(ReadTxn snap, db->BeginRead());
  uint64_t written = 0;
  ExpectSnapshotHolds(snap, expected, kKeys, "at its start");
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 200; ++i) {
      const std::string key = Key(rng() % kKeys);
      const std::string value = MakeValue(key, ++version, RandomSize(rng));
      written += value.size();
      const uint64_t r = rng() % 12;
      if (r == 0) {
        ASSERT_OK(db->Delete(key));
      } else if (r < 4) {
        ASSERT_OK(db->Put(key, value));
      } else {
        ASSERT_OK(cache->Put(key, value));
      }
    }
    ExpectSnapshotHolds(snap, expected, kKeys, absl::StrCat("after round ", round));
  }
  EXPECT_GT(written, 5 * kMiB) << "the ring did not turn over several times";
  for (const auto& [k, v] : expected) {
    absl::StatusOr<std::string> now = db->Get(k);
    EXPECT_TRUE(!now.ok() || *now != v) << k << " still holds its value in the ring";
  }

  // Deleting every key inside the snapshot's ForEach, through the handle that holds it.
  Entries visited;
  ASSERT_OK(snap.ForEach([&](std::string_view k, std::string_view v) {
    visited.emplace(k, v);
    EXPECT_OK(db->Delete(k));
    return true;
  }));
  EXPECT_EQ(visited, expected);
  ExpectSnapshotHolds(snap, expected, kKeys, "after the deletes");
  for (const auto& [k, v] : expected) EXPECT_STATUS(db->Get(k), StatusCode::kNotFound) << k;
  std::vector<VerifyProblem> problems;
  EXPECT_OK(db->Verify(&problems));
}

// Runs `lap` at each of the first `laps` pieces a read transaction copies of a ring, between its
// copy and its check of head.
class LappingEnv : public internal::Env {
 public:
  LappingEnv(int laps, std::function<void()> lap) : laps_(laps), lap_(std::move(lap)) {}
  void AtPoint(internal::HookPoint point) override {
    if (point != internal::HookPoint::kRingCopied) return;
    if (copies_++ < laps_) lap_();
  }
  int copies() const { return copies_; }

 private:
  const int laps_;
  const std::function<void()> lap_;
  int copies_ = 0;
};

// A read transaction whose copy of the ring another handle writes over (its whole length, after
// the copy's first piece) copies it again: once when the next try is left alone, and under the
// shared lock after kRingCopyTries tries that were all written over. Either way it holds the
// state of the file when it began, every value intact.
TEST(CacheRingTest, ASnapshotWhoseCopyIsWrittenOverCopiesAgain) {
  for (const int laps : {1, internal::kRingCopyTries}) {
    SCOPED_TRACE(absl::StrCat(laps, " copies written over"));
    TempDir dir;
    const std::string path = dir.File("ring.mapkv");
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions()));
    ASSERT_OK_AND_ASSIGN(auto writer, DB::Open(path, AnyFile()));
    constexpr int kKeys = 300;
    std::mt19937_64 rng(5);
    uint64_t version = 0;
    auto write_a_lap = [&] {
      for (uint64_t bytes = 0; bytes < kMiB;) {
        const std::string key = Key(rng() % kKeys);
        const std::string value = MakeValue(key, ++version, 1000 + rng() % 3000);
        ASSERT_OK(writer->Put(key, value));
        bytes += value.size();
      }
    };
    write_a_lap();
    LappingEnv env(laps, write_a_lap);
    Options options = AnyFile();
    options.env = &env;
    ASSERT_OK_AND_ASSIGN(auto reader, DB::Open(path, options));
    ASSERT_OK_AND_ASSIGN(ReadTxn snap, reader->BeginRead());
    // Each lap undoes the try it falls in; the last try copies one piece or two (across the
    // ring's end).
    EXPECT_GE(env.copies(), laps + 1) << "pieces copied";
    EXPECT_LE(env.copies(), laps + 2) << "pieces copied";
    Entries expected;  // the state after the last lap, key by key
    for (int k = 0; k < kKeys; ++k) {
      absl::StatusOr<std::string> v = writer->Get(Key(k));
      if (v.ok()) {
        ASSERT_OK(CheckValue(Key(k), *v).status());
        expected[Key(k)] = *v;
      }
    }
    ASSERT_GT(expected.size(), 20u);
    ExpectSnapshotHolds(snap, expected, kKeys, "after its copies");
  }
}

std::string PairKey(uint64_t pair, char side) {
  return absl::StrCat("pair/", pair, "/", std::string(1, side));
}

// Commits args[1] transactions to the cache's file at args[0], each putting both keys of one of
// 100 pairs with values of one version (MakeValue), of random sizes, with a 100 ms lock timeout.
// Writes a byte on the pipe end args[2] after its first commit and closes it at the end.
MAPKV_CHILD(PairWriterChild) {
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(args.at(0), AnyFile());
  CHILD_CHECK_OK(db);
  const int64_t txns = args.Int(1);
  test::ChildPipe started = args.PipeEnd(2);
  std::mt19937_64 rng(23);
  for (int64_t n = 1; n <= txns; ++n) {
    const uint64_t pair = rng() % 100;
    absl::StatusOr<WriteTxn> txn = (*db)->BeginWrite();
    CHILD_CHECK_OK(txn, "commit ", n);
    for (char side : {'a', 'b'}) {
      const std::string key = PairKey(pair, side);
      CHILD_CHECK_OK(txn->Put(key, MakeValue(key, static_cast<uint64_t>(n), RandomSize(rng))),
                     "commit ", n);
    }
    CHILD_CHECK_OK(txn->Commit(), "commit ", n);
    if (n == 1) CHILD_CHECK(started.Write("s"));
  }
  return 0;
}

// Snapshots of a cache's file taken one after another while another process commits pairs as
// fast as it can (its commits evict the oldest pairs all along): in each, both keys of a pair
// have one version, or neither is there; no value is torn; Count agrees with ForEach.
TEST(CacheRingTest, SnapshotsBesideAWriterEachHoldOneCommitsState) {
  TempDir dir;
  const std::string path = dir.File("ring.mapkv");
  { ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, RingOptions())); }
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, AnyFile()));
  const int64_t txns = EnvInt("MAPKV_RING_PROC_OPS", 20000) / 2;
  test::Pipe started;
  const int pid = test::StartChild("PairWriterChild", {path, txns, started.WriteEndArg()});
  started.CloseWrite();
  ASSERT_TRUE(started.WaitByte()) << "the writer died before its first commit";
  int snapshots = 0;
  uint64_t pairs_seen = 0;
  for (bool last = false; !last; ++snapshots) {
    last = started.Readable();  // the writer is done: one more, of its final state
    ASSERT_OK_AND_ASSIGN(ReadTxn snap, db->BeginRead());
    uint64_t listed = 0;
    ASSERT_OK(snap.ForEach([&](std::string_view k, std::string_view v) {
      ++listed;
      EXPECT_OK(CheckValue(std::string(k), std::string(v)).status());
      return true;
    }));
    EXPECT_EQ(listed, snap.Count());
    for (uint64_t pair = 0; pair < 100; ++pair) {
      absl::StatusOr<std::string_view> a = snap.Get(PairKey(pair, 'a'));
      absl::StatusOr<std::string_view> b = snap.Get(PairKey(pair, 'b'));
      ASSERT_EQ(a.ok(), b.ok()) << "pair " << pair << ", snapshot " << snapshots;
      if (!a.ok()) continue;
      ++pairs_seen;
      absl::StatusOr<uint64_t> va = CheckValue(PairKey(pair, 'a'), std::string(*a));
      absl::StatusOr<uint64_t> vb = CheckValue(PairKey(pair, 'b'), std::string(*b));
      ASSERT_OK(va.status());
      ASSERT_OK(vb.status());
      EXPECT_EQ(*va, *vb) << "pair " << pair << ", snapshot " << snapshots;
    }
  }
  EXPECT_EQ(WaitChild(pid, seconds(300)), 0) << "a commit of the writer failed";
  EXPECT_GT(pairs_seen, 0u);
  std::printf("%d snapshots beside %lld commits\n", snapshots, static_cast<long long>(txns));
}

}  // namespace
}  // namespace mapkv
