// DB::MultiGet and ReadTxn::MultiGet: the batched lookup gives, key for key, what Get gives, in
// batches of every size around the internal batch of 16, with hits, misses, deleted keys, bad keys
// and a writer committing meanwhile.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "test_util.h"

namespace mapkv {
namespace {

using ::absl::StatusCode;
using ::mapkv::test::Rng;
using ::mapkv::test::TempDir;

std::string Key(uint64_t i) { return absl::StrFormat("key%013d", i); }
std::string Value(uint64_t i, int version) {
  return absl::StrCat("value-", i, "-v", version, std::string(i % 200, 'x'));
}

class MultiGetTest : public ::testing::Test {
 protected:
  // Keys 0..n-1 with value version 1; then every 3rd key overwritten (version 2) and every 7th
  // deleted, so that the index holds tombstones and superseded records.
  void Fill(DB& db, uint64_t n) {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db.BeginWrite());
    for (uint64_t i = 0; i < n; ++i) ASSERT_OK(txn.Put(Key(i), Value(i, 1)));
    ASSERT_OK(txn.Commit());
    ASSERT_OK_AND_ASSIGN(txn, db.BeginWrite());
    for (uint64_t i = 0; i < n; i += 3) ASSERT_OK(txn.Put(Key(i), Value(i, 2)));
    for (uint64_t i = 0; i < n; i += 7) ASSERT_OK(txn.Delete(Key(i)));
    ASSERT_OK(txn.Commit());
  }

  // A batch of `n` keys: present, absent, deleted, repeated, and one empty (invalid) key.
  static std::vector<std::string> Batch(Rng& rng, uint64_t keys, size_t n) {
    std::vector<std::string> batch;
    for (size_t i = 0; i < n; ++i) {
      switch (test::Uniform(rng, 0, 9)) {
        case 0:
          batch.push_back(absl::StrCat("absent", test::Uniform(rng, 0, 999)));
          break;
        case 1: {  // a repeat (copied first: push_back may move the element it would copy)
          std::string repeat =
              batch.empty() ? Key(0) : batch[test::Uniform(rng, 0, batch.size() - 1)];
          batch.push_back(std::move(repeat));
          break;
        }
        default:
          batch.push_back(Key(test::Uniform(rng, 0, keys - 1)));
      }
    }
    if (n > 2) batch[n / 2] = "";
    return batch;
  }

  static std::vector<std::string_view> Views(const std::vector<std::string>& keys) {
    return std::vector<std::string_view>(keys.begin(), keys.end());
  }

  TempDir dir_;
  std::string path_ = dir_.File("db.mapkv");
};

TEST_F(MultiGetTest, EveryBatchSizeMatchesGetKeyForKey) {
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path_));
  constexpr uint64_t kKeys = 5000;
  Fill(*db, kKeys);
  Rng rng(7);
  std::vector<absl::StatusOr<std::string>> values;
  int found = 0, not_found = 0, invalid = 0;
  for (size_t n : {0, 1, 2, 15, 16, 17, 31, 32, 33, 100, 1000}) {
    const std::vector<std::string> keys = Batch(rng, kKeys, n);
    const std::vector<std::string_view> views = Views(keys);
    ASSERT_OK(db->MultiGet(views, &values));
    ASSERT_EQ(values.size(), n);

    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    std::vector<absl::StatusOr<std::string_view>> in_txn(n);
    txn.MultiGet(views, absl::MakeSpan(in_txn));
    for (size_t i = 0; i < n; ++i) {
      SCOPED_TRACE(absl::StrCat("batch of ", n, ", key #", i, " '", keys[i], "'"));
      absl::StatusOr<std::string> expected = db->Get(keys[i]);
      ASSERT_EQ(values[i].status().code(), expected.status().code());
      ASSERT_EQ(in_txn[i].status().code(), expected.status().code());
      if (expected.ok()) {
        EXPECT_EQ(*values[i], *expected);
        EXPECT_EQ(*in_txn[i], *expected);
        ++found;
      } else if (expected.status().code() == StatusCode::kNotFound) {
        ++not_found;
      } else {
        EXPECT_EQ(expected.status().code(), StatusCode::kInvalidArgument);
        ++invalid;
      }
    }
  }
  // The batches really held every kind of key.
  EXPECT_GT(found, 500);
  EXPECT_GT(not_found, 50);
  EXPECT_GT(invalid, 5);
}

TEST_F(MultiGetTest, ReusesTheVectorAcrossCalls) {
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path_));
  Fill(*db, 100);
  std::vector<absl::StatusOr<std::string>> values;
  const std::vector<std::string> first = {Key(1), Key(7), Key(2)};  // 7 was deleted
  ASSERT_OK(db->MultiGet(Views(first), &values));
  ASSERT_EQ(values.size(), 3u);
  EXPECT_EQ(*values[0], Value(1, 1));
  EXPECT_EQ(values[1].status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*values[2], Value(2, 1));
  // A shorter batch shrinks the vector; a slot that held an error now holds a value and back.
  const std::vector<std::string> second = {Key(7), Key(3)};
  ASSERT_OK(db->MultiGet(Views(second), &values));
  ASSERT_EQ(values.size(), 2u);
  EXPECT_EQ(values[0].status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*values[1], Value(3, 2));
}

TEST_F(MultiGetTest, FinishedReadTxnReportsEveryKey) {
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path_));
  Fill(*db, 10);
  ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
  ReadTxn moved = std::move(txn);
  const std::vector<std::string> keys = {Key(1), Key(2)};
  std::vector<absl::StatusOr<std::string_view>> values(2);
  txn.MultiGet(Views(keys), absl::MakeSpan(values));  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(values[0].status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(values[1].status().code(), StatusCode::kFailedPrecondition);
  moved.MultiGet(Views(keys), absl::MakeSpan(values));
  EXPECT_EQ(*values[0], Value(1, 1));
}

// A writer rewrites all keys over and over, each commit giving every key the same new version:
// every batch of 16 that DB::MultiGet returns must be one commit's (one version throughout), and
// a ReadTxn's whole call must be one commit's.
TEST_F(MultiGetTest, EachBatchIsOneCommitWhileAWriterCommits) {
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path_));
  constexpr int kKeys = 64;
  auto write_all = [&](int version) -> absl::Status {
    absl::StatusOr<WriteTxn> txn = db->BeginWrite();
    if (!txn.ok()) return txn.status();
    for (int i = 0; i < kKeys; ++i) {
      if (absl::Status s = txn->Put(Key(i), absl::StrCat(version)); !s.ok()) return s;
    }
    return txn->Commit();
  };
  ASSERT_OK(write_all(0));
  std::atomic<bool> stop{false};
  std::atomic<int> commits{0};
  std::thread writer([&] {
    for (int v = 1; !stop.load(); ++v) {
      ASSERT_OK(write_all(v));
      commits.fetch_add(1);
    }
  });
  std::vector<std::string> keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back(Key(i));
  const std::vector<std::string_view> views = Views(keys);
  std::vector<absl::StatusOr<std::string>> values;
  std::vector<absl::StatusOr<std::string_view>> in_txn(kKeys);
  for (int round = 0; round < 2000 || (commits.load() < 20 && round < 1000000); ++round) {
    ASSERT_OK(db->MultiGet(views, &values));
    for (int i = 0; i < kKeys; ++i) {
      ASSERT_OK(values[i].status());
      ASSERT_EQ(*values[i], *values[i - i % 16]) << "key " << i << " in round " << round;
    }
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    txn.MultiGet(views, absl::MakeSpan(in_txn));
    for (int i = 0; i < kKeys; ++i) {
      ASSERT_OK(in_txn[i].status());
      ASSERT_EQ(*in_txn[i], *in_txn[0]) << "key " << i << " in round " << round;
    }
  }
  stop.store(true);
  writer.join();
}

}  // namespace
}  // namespace mapkv
