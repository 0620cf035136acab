// The on-disk format of each released version stays readable: data/golden/v1/sample.mapkv (a
// database) and data/golden/v2/cache.mapkv (a cache: values behind their envelope) were written
// by this version's engine (regenerate with MAPKV_WRITE_GOLDEN=1 only when the format
// version changes, as a new file beside the old one). The test opens a copy, never the original.
#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "mapkv/cache.h"
#include "mapkv/db.h"
#include "src/format.h"
#include "test_util.h"

namespace mapkv {
namespace {

const std::string kGolden = std::string(MAPKV_SOURCE_DIR) + "/data/golden/v1/sample.mapkv";

std::string GoldenKey(int i) { return absl::StrCat("golden/", i); }
// Every byte value appears in the values.
std::string GoldenValue(int i) {
  std::string v;
  for (int j = 0; j < i % 300; ++j) v.push_back(static_cast<char>((i * 7 + j) & 0xFF));
  return v;
}

void WriteGolden() {
  std::filesystem::create_directories(std::filesystem::path(kGolden).parent_path());
  std::filesystem::remove(kGolden);
  Options o;
  o.initial_index_slots = 64;
  auto db = DB::Open(kGolden, o);
  ASSERT_OK(db);
  for (int i = 0; i < 500; ++i) ASSERT_OK((*db)->Put(GoldenKey(i), GoldenValue(i)));
  for (int i = 0; i < 500; i += 5) ASSERT_OK((*db)->Delete(GoldenKey(i)));
  auto txn = (*db)->BeginWrite();
  ASSERT_OK(txn);
  ASSERT_OK(txn->Put("batch/a", "1"));
  ASSERT_OK(txn->Put("batch/b", "2"));
  ASSERT_OK(txn->Delete(GoldenKey(1)));
  ASSERT_OK(txn->Commit());
  ASSERT_OK((*db)->Checkpoint());
}

TEST(GoldenTest, VersionOneFileReadsBack) {
  if (test::EnvInt("MAPKV_WRITE_GOLDEN", 0) != 0) WriteGolden();
  ASSERT_TRUE(std::filesystem::exists(kGolden)) << kGolden;
  test::TempDir dir;
  const std::string copy = dir.File("golden.mapkv");
  std::filesystem::copy_file(kGolden, copy);
  const std::string bytes = test::ReadFile(copy);
  ASSERT_GE(bytes.size(), internal::kHeaderSize);
  EXPECT_EQ(bytes.substr(0, 8), std::string("MAPKV\0\0\0", 8));
  EXPECT_EQ(static_cast<uint8_t>(bytes[8]), internal::kFormatVersion);

  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(copy));
  ASSERT_OK_AND_ASSIGN(ReadTxn r, db->BeginRead());
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

const std::string kGoldenCache = std::string(MAPKV_SOURCE_DIR) + "/data/golden/v2/cache.mapkv";
constexpr int64_t kGoldenNowMs = 1'800'000'000'000;  // the clock the cache was written at

CacheOptions GoldenCacheOptions(int64_t now_ms) {
  CacheOptions o;
  o.db.initial_index_slots = 64;
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

}  // namespace
}  // namespace mapkv
