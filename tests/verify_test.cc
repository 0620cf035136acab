// DB::Verify: clean files pass; each kind of damage is reported with its offset.
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "src/format.h"
#include "test_util.h"

namespace mapkv {
namespace {

using internal::kSharedStateOffset;

class VerifyTest : public ::testing::Test {
 protected:
  // A database with growth, overwrites, deletes and a multi-key transaction, closed.
  void SetUp() override {
    Options o;
    o.initial_index_slots = 64;
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path_, o));
    for (int i = 0; i < 3000; ++i) ASSERT_OK(db->Put(absl::StrCat("k", i), absl::StrCat("v", i)));
    for (int i = 0; i < 3000; i += 3) ASSERT_OK(db->Delete(absl::StrCat("k", i)));
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    ASSERT_OK(txn.Put("k1", "the damaged value"));
    ASSERT_OK(txn.Put("k2", "two"));
    ASSERT_OK(txn.Commit());
    ASSERT_OK(db->Checkpoint());
  }
  std::vector<VerifyProblem> VerifyProblems() {
    std::vector<VerifyProblem> problems;
    auto db = DB::Open(path_);
    if (!db.ok()) {
      ADD_FAILURE() << db.status();
      return problems;
    }
    absl::Status s = (*db)->Verify(&problems);
    EXPECT_EQ(s.ok(), problems.empty()) << s;
    if (!s.ok()) {
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
      EXPECT_NE(s.message().find(path_), std::string::npos) << s;
    }
    return problems;
  }
  static bool Has(const std::vector<VerifyProblem>& problems, std::string_view kind,
                  uint64_t offset) {
    for (const VerifyProblem& p : problems) {
      if (p.kind == kind && p.offset == offset) return true;
    }
    return false;
  }
  test::TempDir dir_;
  const std::string path_ = dir_.File("db");
};

TEST_F(VerifyTest, ACleanFilePasses) {
  EXPECT_TRUE(VerifyProblems().empty());
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path_));
  EXPECT_OK(db->Verify());
}

TEST_F(VerifyTest, ADamagedRecordIsReportedAtItsOffset) {
  const std::string bytes = test::ReadFile(path_);
  const size_t value_at = bytes.find("the damaged value");
  ASSERT_NE(value_at, std::string::npos);
  // Key "k1", after the chain to its previous version.
  const uint64_t record = value_at - sizeof(internal::RecordHeader) - internal::kPrevSize - 2;
  {
    std::fstream f(path_, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(value_at));
    f.put('X');
  }
  const std::vector<VerifyProblem> problems = VerifyProblems();
  EXPECT_TRUE(Has(problems, "log", record)) << problems.size();
  bool index_problem = false;
  for (const VerifyProblem& p : problems) index_problem |= p.kind == "index";
  EXPECT_TRUE(index_problem);
}

TEST_F(VerifyTest, WrongCountersAreReported) {
  const uint64_t count_at = kSharedStateOffset + 24;
  test::WriteFileU64(path_, count_at, test::ReadFileU64(path_, count_at) + 1);
  EXPECT_TRUE(Has(VerifyProblems(), "counters", kSharedStateOffset));
}

TEST_F(VerifyTest, ADamagedCheckpointRecordIsReported) {
  uint64_t damaged = 0;
  for (uint64_t offset : internal::kCheckpointOffset) {
    if (test::ReadFileU64(path_, offset) != 0) damaged = offset;  // a written record
  }
  ASSERT_NE(damaged, 0u);
  test::WriteFileU64(path_, damaged + 8, test::ReadFileU64(path_, damaged + 8) ^ 0x10);
  EXPECT_TRUE(Has(VerifyProblems(), "checkpoint", damaged));
}

TEST_F(VerifyTest, ALostIndexEntryIsReported) {
  // Turn one live slot of the current table into a tombstone: the key vanishes from the index.
  const uint64_t index_record = test::ReadFileU64(path_, kSharedStateOffset + 64);
  const uint64_t slots = internal::IndexSlotsOffset(index_record);
  uint64_t slot = 0;
  for (uint64_t at = slots;; at += sizeof(internal::Slot)) {
    const uint64_t offset = test::ReadFileU64(path_, at + 8);
    // A live key's (a deleted one's, in version 4, would vanish with nothing lost).
    if (offset != internal::kEmpty && offset != internal::kTombstone &&
        !internal::SlotDead(offset)) {
      slot = at;
      break;
    }
  }
  test::WriteFileU64(path_, slot + 8, internal::kTombstone);
  EXPECT_TRUE(Has(VerifyProblems(), "index", index_record));
}

}  // namespace
}  // namespace mapkv
