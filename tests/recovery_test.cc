// Recovery: unclean machine stops (index rebuilt from the log's longest valid prefix), clean
// closes (no rebuild), and a writer that died between its commit point and the end of its index
// changes (replayed). The file is edited while closed to stage each case.
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "src/format.h"
#include "test_util.h"

namespace mapkv {
namespace {

using internal::kSharedStateOffset;

// SharedState field offsets (format.h).
constexpr uint64_t kCommittedTail = kSharedStateOffset + 0;
constexpr uint64_t kAppliedTail = kSharedStateOffset + 8;
constexpr uint64_t kCount = kSharedStateOffset + 24;
constexpr uint64_t kBootId = kSharedStateOffset + 80;

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c ^= 0x5A;
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

// As if the machine had rebooted since the file was last used.
void SimulateReboot(const std::string& path) { test::WriteFileU64(path, kBootId, 0x1234); }

Options Small() {
  Options o;
  o.initial_index_slots = 64;
  return o;
}

std::string Key(int i) { return absl::StrCat("key-", i); }
std::string Value(int i) { return absl::StrCat("value-", i, std::string(i % 50, 'x')); }

TEST(RecoveryTest, UncleanStopRebuildsTheIndexFromTheLog) {
  test::TempDir dir;
  const std::string path = dir.File("db");
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Small()));
    for (int i = 0; i < 2000; ++i) ASSERT_OK(db->Put(Key(i), Value(i)));
    for (int i = 0; i < 2000; i += 3) ASSERT_OK(db->Delete(Key(i)));
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    for (int i = 0; i < 10; ++i) ASSERT_OK(txn.Put(Key(i), "in a batch"));
    ASSERT_OK(txn.Commit());
  }  // no checkpoint: the clean flag stays off
  SimulateReboot(path);
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Small()));
  Stats s = db->GetStats();
  EXPECT_TRUE(s.rebuilt_index);
  EXPECT_GT(s.rebuild_records, 2000u);
  for (int i = 0; i < 2000; ++i) {
    if (i < 10) {
      EXPECT_OK_AND_EQ(db->Get(Key(i)), "in a batch");
    } else if (i % 3 == 0) {
      EXPECT_STATUS(db->Get(Key(i)), absl::StatusCode::kNotFound);
    } else {
      EXPECT_OK_AND_EQ(db->Get(Key(i)), Value(i));
    }
  }
  EXPECT_EQ(s.keys, 2000u - 667u + 4u);  // keys 0, 3, 6, 9 came back in the batch
  // And it keeps working: writes after the rebuild, then a second reboot.
  ASSERT_OK(db->Put("after", "rebuild"));
  db.reset();
  SimulateReboot(path);
  ASSERT_OK_AND_ASSIGN(db, DB::Open(path, Small()));
  EXPECT_OK_AND_EQ(db->Get("after"), "rebuild");
  EXPECT_OK_AND_EQ(db->Get(Key(11)), Value(11));
}

TEST(RecoveryTest, CleanCloseAfterCheckpointNeedsNoRebuild) {
  test::TempDir dir;
  const std::string path = dir.File("db");
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Small()));
    for (int i = 0; i < 500; ++i) ASSERT_OK(db->Put(Key(i), Value(i)));
    ASSERT_OK(db->Checkpoint());
  }
  SimulateReboot(path);
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Small()));
    EXPECT_FALSE(db->GetStats().rebuilt_index);
    EXPECT_OK_AND_EQ(db->Get(Key(499)), Value(499));
    ASSERT_OK(db->Put("one more", "write"));  // clears the clean flag before touching the index
  }
  SimulateReboot(path);
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Small()));
  EXPECT_TRUE(db->GetStats().rebuilt_index);
  EXPECT_OK_AND_EQ(db->Get("one more"), "write");
}

// Finds the offset of the first occurrence of `needle` in the file.
uint64_t FindInFile(const std::string& path, std::string_view needle) {
  std::string data = test::ReadFile(path);
  size_t at = data.find(needle);
  EXPECT_NE(at, std::string::npos) << needle;
  return at;
}

TEST(RecoveryTest, RebuildTakesTheLongestValidPrefix) {
  test::TempDir dir;
  const std::string path = dir.File("db");
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Small()));
    for (int i = 0; i < 100; ++i) ASSERT_OK(db->Put(Key(i), "before"));
    ASSERT_OK(db->Put("torn", "this record gets damaged"));
    for (int i = 0; i < 100; ++i) ASSERT_OK(db->Put(Key(i), "after"));
  }
  FlipByte(path, FindInFile(path, "this record gets damaged") + 3);
  SimulateReboot(path);
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Small()));
  EXPECT_TRUE(db->GetStats().rebuilt_index);
  EXPECT_STATUS(db->Get("torn"), absl::StatusCode::kNotFound);
  for (int i = 0; i < 100; ++i) EXPECT_OK_AND_EQ(db->Get(Key(i)), "before");
}

TEST(RecoveryTest, ATornBatchIsDroppedWhole) {
  test::TempDir dir;
  const std::string path = dir.File("db");
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Small()));
    ASSERT_OK(db->Put("a", "1"));
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    ASSERT_OK(txn.Put("a", "2"));
    ASSERT_OK(txn.Put("b", "2"));
    ASSERT_OK(txn.Put("c", "last record of the batch"));
    ASSERT_OK(txn.Commit());
  }
  // Damage the last put of the batch: the first two are valid records but the batch is not.
  FlipByte(path, FindInFile(path, "last record of the batch"));
  SimulateReboot(path);
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Small()));
  EXPECT_OK_AND_EQ(db->Get("a"), "1");
  EXPECT_STATUS(db->Get("b"), absl::StatusCode::kNotFound);
  EXPECT_STATUS(db->Get("c"), absl::StatusCode::kNotFound);
}

TEST(RecoveryTest, DamageBeforeTheCheckpointedEndIsDataLoss) {
  test::TempDir dir;
  const std::string path = dir.File("db");
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Small()));
    ASSERT_OK(db->Put("durable", "checkpointed value"));
    ASSERT_OK(db->Put("x", "y"));
    ASSERT_OK(db->Checkpoint());
    ASSERT_OK(db->Put("z", "not checkpointed"));
  }
  const uint64_t at = FindInFile(path, "checkpointed value");
  FlipByte(path, at);
  SimulateReboot(path);
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(path, Small());
  ASSERT_STATUS(db, absl::StatusCode::kDataLoss);
  EXPECT_NE(db.status().message().find("offset"), std::string::npos) << db.status();
  EXPECT_NE(db.status().message().find(path), std::string::npos) << db.status();
}

TEST(RecoveryTest, AWriterThatDiedMidCommitIsReplayed) {
  test::TempDir dir;
  const std::string path = dir.File("db");
  uint64_t before_last = 0;
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Small()));
    for (int i = 0; i < 300; ++i) ASSERT_OK(db->Put(Key(i), Value(i)));
    before_last = db->GetStats().log_bytes;
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    for (int i = 0; i < 300; i += 2) ASSERT_OK(txn.Delete(Key(i)));
    ASSERT_OK(txn.Put("new", "key"));
    ASSERT_OK(txn.Commit());
  }
  // Stage the state a writer killed after its commit point leaves: the last batch committed but
  // not (fully) applied, and the counters not updated.
  ASSERT_GT(test::ReadFileU64(path, kCommittedTail), before_last);
  test::WriteFileU64(path, kAppliedTail, before_last);
  test::WriteFileU64(path, kCount, 12345);
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Small()));
  Stats s = db->GetStats();
  EXPECT_FALSE(s.rebuilt_index);
  EXPECT_EQ(s.recovered_commits, 1u);
  EXPECT_EQ(s.keys, 151u);
  EXPECT_OK_AND_EQ(db->Get("new"), "key");
  EXPECT_STATUS(db->Get(Key(0)), absl::StatusCode::kNotFound);
  EXPECT_OK_AND_EQ(db->Get(Key(1)), Value(1));
  ASSERT_OK_AND_ASSIGN(ReadTxn r, db->BeginRead());
  uint64_t n = 0;
  ASSERT_OK(r.ForEach([&](std::string_view, std::string_view) { return ++n, true; }));
  EXPECT_EQ(n, 151u);
}

TEST(RecoveryTest, TruncatedLogOnTheSameBootIsDataLoss) {
  test::TempDir dir;
  const std::string path = dir.File("db");
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Small()));
    for (int i = 0; i < 100; ++i) ASSERT_OK(db->Put(Key(i), Value(i)));
  }
  const uint64_t tail = test::ReadFileU64(path, kCommittedTail);
  std::filesystem::resize_file(path, tail - 64);
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(path, Small());
  EXPECT_STATUS(db, absl::StatusCode::kDataLoss);
}

TEST(DurabilityTest, PeriodicCheckpointsOnTheByteBudget) {
  test::TempDir dir;
  Options o = Small();
  o.durability = Durability::kPeriodic;
  o.checkpoint_bytes = 16 << 10;
  o.checkpoint_interval = std::chrono::hours(1);
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(dir.File("db"), o));
  EXPECT_EQ(db->GetStats().checkpoints, 0u);
  for (int i = 0; i < 1000; ++i) ASSERT_OK(db->Put(Key(i), std::string(100, 'v')));
  // ~140 KB appended with a 16 KiB budget: about eight checkpoints, never one per commit.
  const Stats s = db->GetStats();
  EXPECT_GE(s.checkpoints, 5u);
  EXPECT_LE(s.checkpoints, 20u);
  EXPECT_GT(s.last_checkpoint_unix_ms, 0);
}

TEST(DurabilityTest, PeriodicCheckpointsOnTheTimeBudget) {
  test::TempDir dir;
  Options o = Small();
  o.durability = Durability::kPeriodic;
  o.checkpoint_interval = std::chrono::milliseconds(0);
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(dir.File("db"), o));
  for (int i = 0; i < 5; ++i) ASSERT_OK(db->Put(Key(i), "v"));
  EXPECT_EQ(db->GetStats().checkpoints, 5u);
}

TEST(DurabilityTest, SyncCommitsAndNoneDoesNotCheckpoint) {
  test::TempDir dir;
  Options o = Small();
  o.durability = Durability::kSync;
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(dir.File("sync"), o));
    for (int i = 0; i < 50; ++i) ASSERT_OK(db->Put(Key(i), Value(i)));
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    ASSERT_OK(txn.Put("a", "b"));
    ASSERT_OK(txn.Commit());
    EXPECT_OK_AND_EQ(db->Get(Key(49)), Value(49));
    EXPECT_EQ(db->GetStats().checkpoints, 0u);  // kSync flushes records, not checkpoints
  }
  o.durability = Durability::kNone;
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(dir.File("none"), o));
  for (int i = 0; i < 50; ++i) ASSERT_OK(db->Put(Key(i), Value(i)));
  EXPECT_EQ(db->GetStats().checkpoints, 0u);
  ASSERT_OK(db->Checkpoint());
  ASSERT_OK(db->Checkpoint());
  EXPECT_EQ(db->GetStats().checkpoints, 2u);
}

}  // namespace
}  // namespace mapkv
