// The on-disk format of each released version stays readable: data/golden/v1/sample.mapkv was
// written by this version's engine (regenerate with MAPKV_WRITE_GOLDEN=1 only when the format
// version changes, as a new file beside the old one). The test opens a copy, never the original.
#include <filesystem>
#include <string>

#include "gtest/gtest.h"
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

}  // namespace
}  // namespace mapkv
