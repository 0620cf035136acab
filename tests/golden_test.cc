// The on-disk format of each released version stays readable: data/golden/v1/sample.mapkv and
// v4/sample.mapkv (a database, before and with chained records), data/golden/v2/cache.mapkv (a
// cache: values behind their envelope) and data/golden/v3/ring.mapkv (a cache with a 1 MiB capacity
// whose ring went round three times, so it holds kPad records and logical offsets past its size)
// were written by that version's engine (regenerate with MAPKV_WRITE_GOLDEN=1 only when the format
// version changes, as a new file beside the old one). The test opens a copy, never the original.
#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "mapkv/cache.h"
#include "mapkv/compact.h"
#include "mapkv/db.h"
#include "src/format.h"
#include "test_util.h"

namespace mapkv {
namespace {

const std::string kGolden = std::string(MAPKV_SOURCE_DIR) + "/data/golden/v1/sample.mapkv";
const std::string kGoldenChained = std::string(MAPKV_SOURCE_DIR) + "/data/golden/v4/sample.mapkv";
const std::string kGoldenCleaned = std::string(MAPKV_SOURCE_DIR) + "/data/golden/v5/sample.mapkv";

std::string GoldenKey(int i) { return absl::StrCat("golden/", i); }
// Every byte value appears in the values.
std::string GoldenValue(int i) {
  std::string v;
  for (int j = 0; j < i % 300; ++j) v.push_back(static_cast<char>((i * 7 + j) & 0xFF));
  return v;
}

// The sample database, in format `version` (the v1, v4 and v5 files hold the same). In version
// 5 every key is first written 20 times, so that the cleaner moved the log's start.
void WriteGolden(const std::string& path, uint32_t version) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::filesystem::remove(path);
  Options o;
  o.initial_index_slots = 64;
  o.initial_file_size = 1 << 20;
  o.file_mode = 0644;
  o.create_format_version = version;
  auto db = DB::Open(path, o);
  ASSERT_OK(db);
  const int rounds = version == internal::kCleanFormatVersion ? 20 : 1;
  for (int round = 0; round < rounds; ++round) {
    for (int i = 0; i < 500; ++i) ASSERT_OK((*db)->Put(GoldenKey(i), GoldenValue(i)));
  }
  for (int i = 0; i < 500; i += 5) ASSERT_OK((*db)->Delete(GoldenKey(i)));
  auto txn = (*db)->BeginWrite();
  ASSERT_OK(txn);
  ASSERT_OK(txn->Put("batch/a", "1"));
  ASSERT_OK(txn->Put("batch/b", "2"));
  ASSERT_OK(txn->Delete(GoldenKey(1)));
  ASSERT_OK(txn->Commit());
  ASSERT_OK((*db)->Checkpoint());
}

// What the sample holds, read through `r`.
void ExpectSample(const ReadTxn& r) {
  EXPECT_EQ(r.Count(), 500u - 100u - 1u + 2u);
  for (int i = 0; i < 500; ++i) {
    if (i % 5 == 0 || i == 1) {
      EXPECT_STATUS(r.Get(GoldenKey(i)), absl::StatusCode::kNotFound) << i;
    } else {
      EXPECT_OK_AND_EQ(r.Get(GoldenKey(i)), GoldenValue(i)) << i;
    }
  }
  EXPECT_OK_AND_EQ(r.Get("batch/a"), "1");
  EXPECT_OK_AND_EQ(r.Get("batch/b"), "2");
}

// A copy of the golden file `golden` in `dir`, checked to be of `version`.
std::string CopyGolden(const test::TempDir& dir, const std::string& golden, uint32_t version) {
  EXPECT_TRUE(std::filesystem::exists(golden)) << golden;
  const std::string copy = dir.File("golden.mapkv");
  std::filesystem::copy_file(golden, copy);
  const std::string bytes = test::ReadFile(copy);
  EXPECT_GE(bytes.size(), internal::kHeaderSize);
  EXPECT_EQ(bytes.substr(0, 8), std::string("MAPKV\0\0\0", 8));
  EXPECT_EQ(static_cast<uint8_t>(bytes[8]), version);
  return copy;
}

// Written by version 1's engine: never regenerated.
TEST(GoldenTest, VersionOneFileReadsBack) {
  test::TempDir dir;
  const std::string copy = CopyGolden(dir, kGolden, internal::kFormatVersion);
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(copy));
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn r, db->BeginRead());
    ExpectSample(r);
  }
  // It stays a version 1 file when written (its records carry no chain), and verifies.
  ASSERT_OK(db->Put("new", "1"));
  ASSERT_OK(db->Delete(GoldenKey(2)));
  EXPECT_OK(db->Verify());
  EXPECT_EQ(db->GetStats().format_version, internal::kFormatVersion);
}

// Compaction upgrades a version 1 file to the newest version, whose reads are snapshots.
TEST(GoldenTest, VersionOneFileIsUpgradedByCompaction) {
  test::TempDir dir;
  const std::string copy = CopyGolden(dir, kGolden, internal::kFormatVersion);
  uint64_t old_log = 0;
  {
    ASSERT_OK_AND_ASSIGN(auto old, DB::Open(copy));
    old_log = old->GetStats().log_bytes - internal::kHeaderSize;
  }
  ASSERT_OK(Compact(copy, copy).status());
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(copy));
  const Stats s = db->GetStats();
  EXPECT_EQ(s.format_version, internal::kNewestFormatVersion);
  // Offline, in place (the file is held alone): the copy carries the history on.
  const uint64_t new_log = s.log_bytes - internal::kHeaderSize;
  EXPECT_EQ(s.compactions, 1u);
  EXPECT_EQ(s.bytes_written, old_log + new_log);
  EXPECT_EQ(s.bytes_relocated, new_log);
  ASSERT_OK_AND_ASSIGN(ReadTxn r, db->BeginRead());
  ASSERT_OK(db->Put("batch/a", "changed"));  // beside the snapshot, from this thread
  ExpectSample(r);
  EXPECT_OK(db->Verify());
}

TEST(GoldenTest, VersionFourFileReadsBack) {
  if (test::EnvInt("MAPKV_WRITE_GOLDEN", 0) != 0) {
    WriteGolden(kGoldenChained, internal::kChainFormatVersion);
  }
  test::TempDir dir;
  const std::string copy = CopyGolden(dir, kGoldenChained, internal::kChainFormatVersion);
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(copy));
  EXPECT_OK(db->Verify());
  ASSERT_OK_AND_ASSIGN(ReadTxn r, db->BeginRead());
  // Deleted keys come back, and every key changes, beside the snapshot.
  for (int i = 0; i < 500; ++i) ASSERT_OK(db->Put(GoldenKey(i), "after"));
  ExpectSample(r);
  EXPECT_OK_AND_EQ(db->Get(GoldenKey(0)), "after");
}

// A version 5 file whose log's start the cleaner moved: it reads from there, verifies, cleans
// on, and a rebuild after a power cut scans from the start its checkpoint holds.
TEST(GoldenTest, VersionFiveFileReadsBack) {
  if (test::EnvInt("MAPKV_WRITE_GOLDEN", 0) != 0) {
    WriteGolden(kGoldenCleaned, internal::kCleanFormatVersion);
  }
  test::TempDir dir;
  const std::string copy = CopyGolden(dir, kGoldenCleaned, internal::kCleanFormatVersion);
  const uint64_t head = test::ReadFileU64(copy, internal::kSharedStateOffset + 112);
  EXPECT_GT(head, internal::kHeaderSize) << "the sample's log start never moved";
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(copy));
    EXPECT_OK(db->Verify());
    EXPECT_LT(db->GetStats().log_bytes, internal::kHeaderSize + db->GetStats().file_size - head)
        << "the log in use starts at head";
    ASSERT_OK_AND_ASSIGN(ReadTxn r, db->BeginRead());
    for (int round = 0; round < 20; ++round) {
      for (int i = 0; i < 500; ++i) ASSERT_OK(db->Put(GoldenKey(i), absl::StrCat("after ", round)));
    }
    ExpectSample(r);
    EXPECT_OK_AND_EQ(db->Get(GoldenKey(0)), "after 19");
  }
  // As after a power cut: the index is rebuilt from the start the last checkpoint holds.
  const std::string cut = dir.File("cut.mapkv");
  std::filesystem::copy_file(kGoldenCleaned, cut);
  test::WriteFileU64(cut, internal::kSharedStateOffset + 80, 0x1234);  // another boot's id
  test::WriteFileU64(cut, internal::kSharedStateOffset + 88, 0);       // not closed clean
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(cut));
  EXPECT_TRUE(db->GetStats().rebuilt_index);
  ASSERT_OK_AND_ASSIGN(ReadTxn r, db->BeginRead());
  ExpectSample(r);
  EXPECT_OK(db->Verify());
}

const std::string kGoldenCache = std::string(MAPKV_SOURCE_DIR) + "/data/golden/v2/cache.mapkv";
constexpr int64_t kGoldenNowMs = 1'800'000'000'000;  // the clock the cache was written at

CacheOptions GoldenCacheOptions(int64_t now_ms) {
  CacheOptions o;
  o.db.initial_index_slots = 64;
  o.capacity = 0;  // version 2: no capacity
  o.now_unix_ms = [now_ms] { return now_ms; };
  return o;
}

void WriteGoldenCache() {
  std::filesystem::create_directories(std::filesystem::path(kGoldenCache).parent_path());
  std::filesystem::remove(kGoldenCache);
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(kGoldenCache, GoldenCacheOptions(kGoldenNowMs)));
  for (int i = 0; i < 100; ++i) {
    ASSERT_OK(cache->Put(GoldenKey(i), GoldenValue(i), i % 3 == 0 ? Ttl{1000} : Ttl{0}));
  }
  ASSERT_OK(cache->Increment("counter", 40));
  ASSERT_OK(cache->Increment("counter", 2));
  ASSERT_OK(cache->Checkpoint());
}

TEST(GoldenTest, VersionTwoCacheReadsBack) {
  if (test::EnvInt("MAPKV_WRITE_GOLDEN", 0) != 0) WriteGoldenCache();
  ASSERT_TRUE(std::filesystem::exists(kGoldenCache)) << kGoldenCache;
  test::TempDir dir;
  const std::string copy = dir.File("cache.mapkv");
  std::filesystem::copy_file(kGoldenCache, copy);
  EXPECT_EQ(static_cast<uint8_t>(test::ReadFile(copy)[8]), internal::kCacheFormatVersion);
  EXPECT_STATUS(DB::Open(copy), absl::StatusCode::kFailedPrecondition);
  for (const int64_t later : {0, 999, 1000}) {
    SCOPED_TRACE(later);
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(copy, GoldenCacheOptions(kGoldenNowMs + later)));
    for (int i = 0; i < 100; ++i) {
      if (i % 3 == 0 && later >= 1000) {
        EXPECT_STATUS(cache->Get(GoldenKey(i)), absl::StatusCode::kNotFound) << i;
      } else {
        EXPECT_OK_AND_EQ(cache->Get(GoldenKey(i)), GoldenValue(i)) << i;
      }
    }
    EXPECT_OK_AND_EQ(cache->Get("counter"), "42");
  }
}

const std::string kGoldenRing = std::string(MAPKV_SOURCE_DIR) + "/data/golden/v3/ring.mapkv";
constexpr int kRingPuts = 3000;  // about 3.4 MiB of entries through a 1 MiB ring

CacheOptions GoldenRingOptions() {
  CacheOptions o = GoldenCacheOptions(kGoldenNowMs);
  o.capacity = 1 << 20;
  return o;
}

// Entry i of the ring's workload: sizes from 30 bytes to 2.2 KiB.
std::string RingValue(int i) { return GoldenValue(i) + std::string(i % 7 * 300, 'r'); }

void WriteGoldenRing() {
  std::filesystem::create_directories(std::filesystem::path(kGoldenRing).parent_path());
  std::filesystem::remove(kGoldenRing);
  ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(kGoldenRing, GoldenRingOptions()));
  for (int i = 0; i < kRingPuts; ++i) ASSERT_OK(cache->Put(GoldenKey(i), RingValue(i)));
  ASSERT_OK(cache->Increment("counter", 42));
  ASSERT_OK(cache->Checkpoint());
}

TEST(GoldenTest, VersionThreeRingReadsBack) {
  if (test::EnvInt("MAPKV_WRITE_GOLDEN", 0) != 0) WriteGoldenRing();
  ASSERT_TRUE(std::filesystem::exists(kGoldenRing)) << kGoldenRing;
  test::TempDir dir;
  const std::string copy = dir.File("ring.mapkv");
  std::filesystem::copy_file(kGoldenRing, copy);
  EXPECT_EQ(static_cast<uint8_t>(test::ReadFile(copy)[8]), internal::kRingFormatVersion);
  EXPECT_EQ(std::filesystem::file_size(copy), 1u << 20);
  {
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(copy, GoldenRingOptions()));
    const CacheStats s = cache->GetStats();
    EXPECT_EQ(s.db.cache_capacity, 1u << 20);
    EXPECT_GT(s.evictions, 2000u);
    EXPECT_GT(s.db.keys, 100u);
    EXPECT_EQ(s.db.keys + s.evictions, kRingPuts + 1u);
    // The newest entries are there; every entry there is whole.
    EXPECT_OK_AND_EQ(cache->Get("counter"), "42");
    for (int i = kRingPuts - 50; i < kRingPuts; ++i) {
      EXPECT_OK_AND_EQ(cache->Get(GoldenKey(i)), RingValue(i)) << i;
    }
    int found = 0;
    for (int i = 0; i < kRingPuts; ++i) {
      absl::StatusOr<std::string> v = cache->Get(GoldenKey(i));
      if (absl::IsNotFound(v.status())) continue;
      EXPECT_OK_AND_EQ(v, RingValue(i)) << i;
      ++found;
    }
    EXPECT_EQ(found + 1u, s.db.keys);
    // It goes on turning from where it was.
    for (int i = 0; i < 1000; ++i) ASSERT_OK(cache->Put(GoldenKey(i), "again"));
    EXPECT_OK_AND_EQ(cache->Get(GoldenKey(999)), "again");
  }
  Options any;
  any.kind = FileKind::kAny;
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(copy, any));
  EXPECT_OK(db->Verify());
}

}  // namespace
}  // namespace mapkv
