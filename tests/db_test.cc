// Behaviour of the public API (DB, ReadTxn, WriteTxn) within one process.
#include "mapkv/db.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace mapkv {
namespace {

using ::absl::StatusCode;
using ::mapkv::test::Rng;
using ::mapkv::test::TempDir;

class DBTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::unique_ptr<DB>> Open(const Options& options = Options()) {
    return DB::Open(path_, options);
  }

  // Options whose lock waits fail fast, so a lock that is never released fails the test instead
  // of hanging it.
  static Options FastLockOptions() {
    Options options;
    options.lock_timeout = std::chrono::milliseconds(2000);
    return options;
  }

  // Every live key and its value, read with ForEach; a key visited twice is a test failure.
  static absl::flat_hash_map<std::string, std::string> Contents(const ReadTxn& txn) {
    absl::flat_hash_map<std::string, std::string> out;
    const absl::Status status = txn.ForEach([&](std::string_view key, std::string_view value) {
      const bool inserted = out.emplace(std::string(key), std::string(value)).second;
      EXPECT_TRUE(inserted) << "ForEach visited " << test::Describe(key) << " twice";
      return true;
    });
    EXPECT_OK(status);
    return out;
  }

  TempDir dir_;
  std::string path_ = dir_.File("db.mapkv");
};

TEST_F(DBTest, PutGetDeleteOverwrite) {
  ASSERT_OK_AND_ASSIGN(auto db, Open());
  EXPECT_EQ(db->path(), path_);
  EXPECT_STATUS(db->Get("a"), StatusCode::kNotFound);

  ASSERT_OK(db->Put("a", "1"));
  EXPECT_OK_AND_EQ(db->Get("a"), "1");
  ASSERT_OK(db->Put("a", "22"));  // overwrite, longer
  EXPECT_OK_AND_EQ(db->Get("a"), "22");
  const std::string long_value(1000, 'x');
  ASSERT_OK(db->Put("a", long_value));
  EXPECT_OK_AND_EQ(db->Get("a"), long_value);
  ASSERT_OK(db->Put("a", "s"));  // overwrite, shorter
  EXPECT_OK_AND_EQ(db->Get("a"), "s");

  ASSERT_OK(db->Put("b", "3"));
  ASSERT_OK(db->Delete("a"));
  EXPECT_STATUS(db->Get("a"), StatusCode::kNotFound);
  EXPECT_OK_AND_EQ(db->Get("b"), "3");

  ASSERT_OK(db->Put("a", "again"));  // re-insert after a delete
  EXPECT_OK_AND_EQ(db->Get("a"), "again");
  EXPECT_EQ(db->GetStats().keys, 2u);
}

TEST_F(DBTest, MissingKeyIsNotFoundAndDeletingItIsOk) {
  ASSERT_OK_AND_ASSIGN(auto db, Open());
  EXPECT_STATUS(db->Get("missing"), StatusCode::kNotFound);
  EXPECT_OK(db->Delete("missing"));
  ASSERT_OK(db->Put("present", "v"));
  EXPECT_OK(db->Delete("missing"));
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    EXPECT_STATUS(txn.Get("missing"), StatusCode::kNotFound);
  }
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    EXPECT_STATUS(txn.Get("missing"), StatusCode::kNotFound);
    EXPECT_OK(txn.Delete("missing"));
    EXPECT_OK(txn.Commit());
  }
  EXPECT_OK(db->Delete("present"));
  EXPECT_OK(db->Delete("present"));  // twice
  EXPECT_STATUS(db->Get("present"), StatusCode::kNotFound);
  EXPECT_EQ(db->GetStats().keys, 0u);
}

// A miss names the file and the key, C-escaped in double quotes, its first 64 bytes at most.
TEST_F(DBTest, NotFoundNamesTheKeyEscaped) {
  ASSERT_OK_AND_ASSIGN(auto db, Open());
  const auto message = [&](std::string_view key) {
    return std::string(db->Get(key).status().message());
  };
  EXPECT_EQ(message("plain key-1"), absl::StrCat(db->path(), ": key \"plain key-1\" not found"));
  EXPECT_EQ(message(std::string("a\"b'c\\d\n\x01\xff\0e", 12)),
            absl::StrCat(db->path(), ": key \"a\\\"b\\'c\\\\d\\n\\x01\\xff\\x00\\x65\" not found"))
      << "CHexEscape: a hex digit after a hex escape is escaped too";
  EXPECT_EQ(message(std::string(70, 'k')),
            absl::StrCat(db->path(), ": key \"", std::string(64, 'k'), "\"... not found"));
  EXPECT_EQ(message(std::string(63, 'k') + "\n" + std::string(6, 'k')),
            absl::StrCat(db->path(), ": key \"", std::string(63, 'k'), "\\n\"... not found"));
}

TEST_F(DBTest, GetIntoAStringReusesItsCapacity) {
  ASSERT_OK_AND_ASSIGN(auto db, Open());
  const std::string long_value(1000, 'L');
  ASSERT_OK(db->Put("long", long_value));
  ASSERT_OK(db->Put("short", "s"));
  std::string value;
  ASSERT_OK(db->Get("long", &value));
  EXPECT_EQ(value, long_value);
  const char* buffer = value.data();
  ASSERT_OK(db->Get("short", &value));
  EXPECT_EQ(value, "s");
  EXPECT_EQ(value.data(), buffer);  // the same allocation, shorter contents
  EXPECT_STATUS(db->Get("missing", &value), StatusCode::kNotFound);
  EXPECT_STATUS(db->Get("", &value), StatusCode::kInvalidArgument);
  ASSERT_OK(db->Delete("short"));
  EXPECT_STATUS(db->Get("short", &value), StatusCode::kNotFound);
}

// Huge pages change how the file is mapped, never what it holds: the same writes read back the
// same with them on, off, and under kSync (which never asks for them), across reopens that mix
// the settings, past several file growths.
TEST_F(DBTest, HugePagesOnOrOffHoldTheSameData) {
  const std::string value(300, 'h');
  uint64_t keys = 0;
  for (bool huge : {true, false, true}) {
    for (Durability durability : {Durability::kNone, Durability::kSync}) {
      Options options;
      options.huge_pages = huge;
      options.durability = durability;
      ASSERT_OK_AND_ASSIGN(auto db, Open(options));
      const uint64_t n = durability == Durability::kSync ? 50 : 5000;
      for (uint64_t i = 0; i < n; ++i, ++keys) {
        ASSERT_OK(db->Put(absl::StrCat("key", keys), absl::StrCat(value, keys)));
      }
      for (uint64_t i = 0; i < keys; ++i) {
        ASSERT_OK_AND_ASSIGN(std::string got, db->Get(absl::StrCat("key", i)));
        ASSERT_EQ(got, absl::StrCat(value, i));
      }
      EXPECT_OK(db->Verify());
    }
  }
}

TEST_F(DBTest, BinarySafeKeysAndValues) {
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  std::vector<std::pair<std::string, std::string>> pairs = {
      {all_bytes, all_bytes + all_bytes},
      {std::string("\0", 1), std::string("\0\0\0", 3)},
      {std::string("\0\0", 2), std::string("two nuls")},
      {std::string("a\0b", 3), std::string("x\0y", 3)},
      {std::string("a\0c", 3), std::string("x\0z", 3)},
      {std::string("a"), std::string("\0", 1)},
      {std::string("\xff\xfe", 2), all_bytes},
  };
  for (int i = 0; i < 256; ++i) {
    pairs.emplace_back(std::string(1, static_cast<char>(i)), absl::StrCat("byte ", i, all_bytes));
  }
  // "a" is both in the list above and a single-byte key; the later value wins.
  absl::flat_hash_map<std::string, std::string> want;
  ASSERT_OK_AND_ASSIGN(auto db, Open());
  for (const auto& [key, value] : pairs) {
    ASSERT_OK(db->Put(key, value)) << test::Describe(key);
    want[key] = value;
  }
  auto check = [&](DB* db) {
    for (const auto& [key, value] : want) {
      EXPECT_OK_AND_EQ(db->Get(key), value) << test::Describe(key);
    }
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    EXPECT_EQ(txn.Count(), want.size());
    EXPECT_EQ(Contents(txn), want);
  };
  check(db.get());
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, Open());
  check(db.get());
}

TEST_F(DBTest, KeySizeLimits) {
  ASSERT_OK_AND_ASSIGN(auto db, Open());
  const std::string empty;
  const std::string too_long(kMaxKeySize + 1, 'k');
  const std::string longest(kMaxKeySize, 'k');
  static_assert(kMaxKeySize == 65535);

  EXPECT_STATUS(db->Put(empty, "v"), StatusCode::kInvalidArgument);
  EXPECT_STATUS(db->Put(too_long, "v"), StatusCode::kInvalidArgument);
  EXPECT_STATUS(db->Get(empty), StatusCode::kInvalidArgument);
  EXPECT_STATUS(db->Get(too_long), StatusCode::kInvalidArgument);
  EXPECT_STATUS(db->Delete(empty), StatusCode::kInvalidArgument);
  EXPECT_STATUS(db->Delete(too_long), StatusCode::kInvalidArgument);
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    EXPECT_STATUS(txn.Put(empty, "v"), StatusCode::kInvalidArgument);
    EXPECT_STATUS(txn.Put(too_long, "v"), StatusCode::kInvalidArgument);
    EXPECT_STATUS(txn.Get(empty), StatusCode::kInvalidArgument);
    EXPECT_STATUS(txn.Delete(too_long), StatusCode::kInvalidArgument);
    // A rejected write leaves the transaction usable.
    EXPECT_OK(txn.Put("after", "bad key"));
    EXPECT_OK(txn.Commit());
  }
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    EXPECT_STATUS(txn.Get(empty), StatusCode::kInvalidArgument);
    EXPECT_STATUS(txn.Get(too_long), StatusCode::kInvalidArgument);
  }
  EXPECT_OK_AND_EQ(db->Get("after"), "bad key");
  EXPECT_EQ(db->GetStats().keys, 1u);

  ASSERT_OK(db->Put(longest, "longest"));
  EXPECT_OK_AND_EQ(db->Get(longest), "longest");
  std::string almost = longest;
  almost.back() = 'j';  // same length, differs in the last byte
  EXPECT_STATUS(db->Get(almost), StatusCode::kNotFound);
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, Open());
  EXPECT_OK_AND_EQ(db->Get(longest), "longest");
  ASSERT_OK(db->Delete(longest));
  EXPECT_STATUS(db->Get(longest), StatusCode::kNotFound);
}

TEST_F(DBTest, EmptyValueIsAValue) {
  ASSERT_OK_AND_ASSIGN(auto db, Open());
  ASSERT_OK(db->Put("k", ""));
  EXPECT_OK_AND_EQ(db->Get("k"), "");
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    ASSERT_OK(txn.Put("k2", ""));
    EXPECT_OK_AND_EQ(txn.Get("k2"), "");
    ASSERT_OK(txn.Commit());
  }
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    EXPECT_OK_AND_EQ(txn.Get("k"), "");
    EXPECT_EQ(txn.Count(), 2u);
    absl::flat_hash_map<std::string, std::string> want = {{"k", ""}, {"k2", ""}};
    EXPECT_EQ(Contents(txn), want);
  }
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, Open());
  EXPECT_OK_AND_EQ(db->Get("k"), "");
  EXPECT_OK_AND_EQ(db->Get("k2"), "");
}

TEST_F(DBTest, LargeValues) {
  Rng rng(7);
  const std::string big = test::RandomBytes(rng, 8 << 20);
  const std::string big2 = test::RandomBytes(rng, (8 << 20) + 13);
  Options options;  // the file starts at 1 MiB: both values need growth
  options.initial_file_size = 1 << 20;
  ASSERT_OK_AND_ASSIGN(auto db, Open(options));
  ASSERT_OK(db->Put("big", big));
  EXPECT_OK_AND_EQ(db->Get("big"), big);
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    ASSERT_OK(txn.Put("big2", big2));
    ASSERT_OK(txn.Put("small", "s"));
    EXPECT_OK_AND_EQ(txn.Get("big2"), big2);
    ASSERT_OK(txn.Commit());
  }
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    EXPECT_OK_AND_EQ(txn.Get("big"), big);
    EXPECT_OK_AND_EQ(txn.Get("big2"), big2);
  }
  EXPECT_GT(db->GetStats().file_size, 16u << 20);
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, Open(options));
  EXPECT_OK_AND_EQ(db->Get("big"), big);
  EXPECT_OK_AND_EQ(db->Get("big2"), big2);
  EXPECT_OK_AND_EQ(db->Get("small"), "s");
}

TEST_F(DBTest, WriteTxnSeesOwnWritesOthersDoNotUntilCommit) {
  ASSERT_OK_AND_ASSIGN(auto db, Open());
  ASSERT_OK_AND_ASSIGN(auto other, Open());  // a second handle behaves as another process
  ASSERT_OK(db->Put("x", "old"));
  ASSERT_OK(db->Put("gone", "soon"));
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    EXPECT_OK_AND_EQ(txn.Get("x"), "old");  // sees the committed state
    ASSERT_OK(txn.Put("x", "new"));
    ASSERT_OK(txn.Put("y", "fresh"));
    ASSERT_OK(txn.Delete("gone"));
    ASSERT_OK(txn.Put("z", "first"));
    ASSERT_OK(txn.Put("z", "second"));  // overwrite inside the transaction
    EXPECT_OK_AND_EQ(txn.Get("x"), "new");
    EXPECT_OK_AND_EQ(txn.Get("y"), "fresh");
    EXPECT_OK_AND_EQ(txn.Get("z"), "second");
    EXPECT_STATUS(txn.Get("gone"), StatusCode::kNotFound);

    for (DB* handle : {db.get(), other.get()}) {
      EXPECT_OK_AND_EQ(handle->Get("x"), "old");
      EXPECT_STATUS(handle->Get("y"), StatusCode::kNotFound);
      EXPECT_STATUS(handle->Get("z"), StatusCode::kNotFound);
      EXPECT_OK_AND_EQ(handle->Get("gone"), "soon");
      ASSERT_OK_AND_ASSIGN(ReadTxn read, handle->BeginRead());
      EXPECT_OK_AND_EQ(read.Get("x"), "old");
      EXPECT_STATUS(read.Get("y"), StatusCode::kNotFound);
      EXPECT_EQ(read.Count(), 2u);
      absl::flat_hash_map<std::string, std::string> want = {{"x", "old"}, {"gone", "soon"}};
      EXPECT_EQ(Contents(read), want);
      EXPECT_EQ(handle->GetStats().keys, 2u);
    }
    ASSERT_OK(txn.Commit());
  }
  for (DB* handle : {db.get(), other.get()}) {
    EXPECT_OK_AND_EQ(handle->Get("x"), "new");
    EXPECT_OK_AND_EQ(handle->Get("y"), "fresh");
    EXPECT_OK_AND_EQ(handle->Get("z"), "second");
    EXPECT_STATUS(handle->Get("gone"), StatusCode::kNotFound);
    EXPECT_EQ(handle->GetStats().keys, 3u);
  }
}

// A ReadTxn keeps its snapshot while another thread commits (the commit waits for it).
TEST_F(DBTest, ReadTxnKeepsItsSnapshotWhileAWriterCommits) {
  ASSERT_OK_AND_ASSIGN(auto db, Open());
  ASSERT_OK(db->Put("x", "old"));
  std::optional<ReadTxn> read;
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    read.emplace(std::move(txn));
  }
  EXPECT_OK_AND_EQ(read->Get("x"), "old");

  std::atomic<bool> committed{false};
  absl::Status commit_status = absl::UnknownError("not run");
  std::thread writer([&] {
    auto txn = db->BeginWrite();
    if (!txn.ok()) {
      commit_status = txn.status();
      return;
    }
    commit_status = txn->Put("x", "new");
    if (commit_status.ok()) commit_status = txn->Put("y", "added");
    if (commit_status.ok()) commit_status = txn->Commit();
    committed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_OK_AND_EQ(read->Get("x"), "old");
  EXPECT_STATUS(read->Get("y"), StatusCode::kNotFound);
  EXPECT_EQ(read->Count(), 1u);
  read.reset();  // lets the commit through
  writer.join();
  EXPECT_TRUE(committed);
  EXPECT_OK(commit_status);
  EXPECT_OK_AND_EQ(db->Get("x"), "new");
  EXPECT_OK_AND_EQ(db->Get("y"), "added");
}

TEST_F(DBTest, AbortDiscards) {
  ASSERT_OK_AND_ASSIGN(auto db, Open(FastLockOptions()));
  ASSERT_OK(db->Put("keep", "1"));
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    ASSERT_OK(txn.Put("a", "1"));
    ASSERT_OK(txn.Put("keep", "changed"));
    ASSERT_OK(txn.Delete("keep"));
    txn.Abort();
    txn.Abort();  // twice is harmless
  }
  EXPECT_STATUS(db->Get("a"), StatusCode::kNotFound);
  EXPECT_OK_AND_EQ(db->Get("keep"), "1");
  // The writer lock was released: a new transaction starts at once and commits.
  ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
  EXPECT_STATUS(txn.Get("a"), StatusCode::kNotFound);
  ASSERT_OK(txn.Put("b", "2"));
  ASSERT_OK(txn.Commit());
  EXPECT_OK_AND_EQ(db->Get("b"), "2");
  EXPECT_EQ(db->GetStats().keys, 2u);
}

TEST_F(DBTest, DestructorAborts) {
  ASSERT_OK_AND_ASSIGN(auto db, Open(FastLockOptions()));
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    ASSERT_OK(txn.Put("a", "1"));
  }
  EXPECT_STATUS(db->Get("a"), StatusCode::kNotFound);
  ASSERT_OK(db->Put("b", "2"));  // the lock is free
  EXPECT_OK_AND_EQ(db->Get("b"), "2");
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, Open(FastLockOptions()));
  EXPECT_STATUS(db->Get("a"), StatusCode::kNotFound);
  EXPECT_OK_AND_EQ(db->Get("b"), "2");
}

TEST_F(DBTest, FinishedTxnRejectsFurtherUse) {
  ASSERT_OK_AND_ASSIGN(auto db, Open(FastLockOptions()));
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    ASSERT_OK(txn.Put("a", "1"));
    ASSERT_OK(txn.Commit());
    EXPECT_FALSE(txn.Put("b", "2").ok());
    EXPECT_FALSE(txn.Delete("a").ok());
    EXPECT_FALSE(txn.Commit().ok());
    txn.Abort();  // harmless
  }
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    txn.Abort();
    EXPECT_FALSE(txn.Put("c", "3").ok());
    EXPECT_FALSE(txn.Commit().ok());
  }
  EXPECT_OK_AND_EQ(db->Get("a"), "1");
  EXPECT_STATUS(db->Get("b"), StatusCode::kNotFound);
  EXPECT_STATUS(db->Get("c"), StatusCode::kNotFound);
  ASSERT_OK(db->Put("d", "4"));  // nothing holds the lock
}

TEST_F(DBTest, MovedTxnsWork) {
  ASSERT_OK_AND_ASSIGN(auto db, Open(FastLockOptions()));
  {
    std::optional<WriteTxn> moved_to;
    {
      ASSERT_OK_AND_ASSIGN(WriteTxn first, db->BeginWrite());
      ASSERT_OK(first.Put("k1", "v1"));
      moved_to.emplace(std::move(first));
    }  // the moved-from transaction is destroyed here; it must not abort the moved-to one
    ASSERT_OK(moved_to->Put("k2", "v2"));
    EXPECT_OK_AND_EQ(moved_to->Get("k1"), "v1");
    ASSERT_OK(moved_to->Commit());
  }
  EXPECT_OK_AND_EQ(db->Get("k1"), "v1");
  EXPECT_OK_AND_EQ(db->Get("k2"), "v2");

  {
    ASSERT_OK_AND_ASSIGN(WriteTxn target, db->BeginWrite());
    ASSERT_OK(target.Commit());  // empty commit; the transaction is finished
    ASSERT_OK_AND_ASSIGN(WriteTxn source, db->BeginWrite());
    ASSERT_OK(source.Put("k3", "v3"));
    target = std::move(source);  // move-assign onto a finished transaction
    ASSERT_OK(target.Put("k4", "v4"));
    ASSERT_OK(target.Commit());
  }
  EXPECT_OK_AND_EQ(db->Get("k3"), "v3");
  EXPECT_OK_AND_EQ(db->Get("k4"), "v4");

  {
    ASSERT_OK_AND_ASSIGN(ReadTxn r1, db->BeginRead());
    ReadTxn r2(std::move(r1));
    EXPECT_OK_AND_EQ(r2.Get("k1"), "v1");
    ASSERT_OK_AND_ASSIGN(ReadTxn r3, db->BeginRead());
    r3 = std::move(r2);  // releases r3's own snapshot
    EXPECT_OK_AND_EQ(r3.Get("k4"), "v4");
    EXPECT_EQ(r3.Count(), 4u);
    std::vector<ReadTxn> many;
    for (int i = 0; i < 4; ++i) {
      ASSERT_OK_AND_ASSIGN(ReadTxn r, db->BeginRead());
      many.push_back(std::move(r));  // the vector may move them again while growing
    }
    for (const ReadTxn& r : many) EXPECT_OK_AND_EQ(r.Get("k2"), "v2");
  }
  // Every read transaction is gone: a commit does not wait for any of them.
  const auto start = std::chrono::steady_clock::now();
  ASSERT_OK(db->Put("k6", "v6"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
  EXPECT_OK_AND_EQ(db->Get("k6"), "v6");
}

TEST_F(DBTest, SecondBeginWriteInOneThreadTimesOut) {
  Options options;
  options.lock_timeout = std::chrono::milliseconds(200);
  ASSERT_OK_AND_ASSIGN(auto db, Open(options));
  ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
  ASSERT_OK(txn.Put("a", "1"));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_STATUS(db->BeginWrite(), StatusCode::kDeadlineExceeded);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(150));
  EXPECT_LT(waited, std::chrono::seconds(5));
  ASSERT_OK(txn.Commit());  // the first transaction is unharmed
  EXPECT_OK_AND_EQ(db->Get("a"), "1");
}

TEST_F(DBTest, ForEachVisitsEveryLiveKeyOnceAndCountMatches) {
  ASSERT_OK_AND_ASSIGN(auto db, Open());
  absl::flat_hash_map<std::string, std::string> want;
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    for (int i = 0; i < 1000; ++i) {
      const std::string key = absl::StrCat("key", i);
      const std::string value = absl::StrCat("value", i, std::string(i % 97, 'v'));
      ASSERT_OK(txn.Put(key, value));
      want[key] = value;
    }
    ASSERT_OK(txn.Commit());
  }
  for (int i = 0; i < 1000; i += 10) {  // delete 100
    const std::string key = absl::StrCat("key", i);
    ASSERT_OK(db->Delete(key));
    want.erase(key);
  }
  for (int i = 5; i < 1000; i += 10) {  // overwrite 100
    const std::string key = absl::StrCat("key", i);
    ASSERT_OK(db->Put(key, "overwritten"));
    want[key] = "overwritten";
  }
  ASSERT_EQ(want.size(), 900u);
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    EXPECT_EQ(txn.Count(), 900u);
    EXPECT_EQ(Contents(txn), want);

    int visited = 0;
    ASSERT_OK(txn.ForEach([&](std::string_view, std::string_view) { return ++visited < 10; }));
    EXPECT_EQ(visited, 10);  // stops when the callback returns false
  }
  EXPECT_EQ(db->GetStats().keys, 900u);
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, Open());
  ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
  EXPECT_EQ(txn.Count(), 900u);
  EXPECT_EQ(Contents(txn), want);
}

TEST_F(DBTest, ForEachOnEmptyDatabase) {
  ASSERT_OK_AND_ASSIGN(auto db, Open());
  ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
  EXPECT_EQ(txn.Count(), 0u);
  int visited = 0;
  EXPECT_OK(txn.ForEach([&](std::string_view, std::string_view) {
    ++visited;
    return true;
  }));
  EXPECT_EQ(visited, 0);
}

TEST_F(DBTest, ReadOnlyHandleRefusesWrites) {
  {
    ASSERT_OK_AND_ASSIGN(auto db, Open());
    ASSERT_OK(db->Put("a", "1"));
    ASSERT_OK(db->Put("b", "2"));
  }
  Options ro;
  ro.read_only = true;
  ro.lock_timeout = std::chrono::milliseconds(2000);
  ASSERT_OK_AND_ASSIGN(auto reader, Open(ro));
  const Stats before = reader->GetStats();
  EXPECT_STATUS(reader->Put("a", "changed"), StatusCode::kPermissionDenied);
  EXPECT_STATUS(reader->Put("c", "new"), StatusCode::kPermissionDenied);
  EXPECT_STATUS(reader->Delete("b"), StatusCode::kPermissionDenied);
  EXPECT_STATUS(reader->BeginWrite(), StatusCode::kPermissionDenied);
  EXPECT_OK_AND_EQ(reader->Get("a"), "1");
  EXPECT_OK_AND_EQ(reader->Get("b"), "2");
  EXPECT_STATUS(reader->Get("c"), StatusCode::kNotFound);
  const Stats after = reader->GetStats();
  EXPECT_EQ(after.keys, 2u);
  EXPECT_EQ(after.commits, before.commits);
  EXPECT_EQ(after.log_bytes, before.log_bytes);

  // A writer beside the read-only handle works, and the read-only handle sees its commits.
  ASSERT_OK_AND_ASSIGN(auto writer, Open(FastLockOptions()));
  ASSERT_OK(writer->Put("c", "3"));
  EXPECT_OK_AND_EQ(reader->Get("c"), "3");
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, reader->BeginRead());
    EXPECT_EQ(txn.Count(), 3u);
  }
  writer.reset();
  reader.reset();
  ASSERT_OK_AND_ASSIGN(auto db, Open());
  EXPECT_OK_AND_EQ(db->Get("a"), "1");
  EXPECT_OK_AND_EQ(db->Get("b"), "2");
  EXPECT_OK_AND_EQ(db->Get("c"), "3");
}

TEST_F(DBTest, CreateIfMissingFalseOnMissingFileIsNotFound) {
  Options options;
  options.create_if_missing = false;
  EXPECT_STATUS(Open(options), StatusCode::kNotFound);
  EXPECT_FALSE(test::FileExists(path_));
}

TEST_F(DBTest, ErrorIfExists) {
  Options options;
  options.error_if_exists = true;
  {
    ASSERT_OK_AND_ASSIGN(auto db, Open(options));  // missing: created
    ASSERT_OK(db->Put("a", "1"));
  }
  EXPECT_STATUS(Open(options), StatusCode::kAlreadyExists);
  ASSERT_OK_AND_ASSIGN(auto db, Open());  // the refused open changed nothing
  EXPECT_OK_AND_EQ(db->Get("a"), "1");
}

TEST_F(DBTest, ReopenKeepsData) {
  absl::flat_hash_map<std::string, std::string> want;
  Rng rng(11);
  {
    ASSERT_OK_AND_ASSIGN(auto db, Open());
    for (int i = 0; i < 300; ++i) {
      const std::string key = absl::StrCat("k", i);
      const std::string value = test::RandomBytes(rng, test::Uniform(rng, 0, 500));
      ASSERT_OK(db->Put(key, value));
      want[key] = value;
    }
    for (int i = 0; i < 300; i += 3) {
      ASSERT_OK(db->Delete(absl::StrCat("k", i)));
      want.erase(absl::StrCat("k", i));
    }
  }
  for (int round = 0; round < 3; ++round) {
    ASSERT_OK_AND_ASSIGN(auto db, Open());
    EXPECT_EQ(db->GetStats().keys, want.size());
    for (int i = 0; i < 300; ++i) {
      const std::string key = absl::StrCat("k", i);
      auto it = want.find(key);
      if (it == want.end()) {
        EXPECT_STATUS(db->Get(key), StatusCode::kNotFound) << key;
      } else {
        EXPECT_OK_AND_EQ(db->Get(key), it->second) << key;
      }
    }
    const std::string key = absl::StrCat("round", round);
    ASSERT_OK(db->Put(key, key));
    want[key] = key;
  }
}

TEST_F(DBTest, CheckpointAndStats) {
  Options options;
  options.initial_file_size = 1 << 20;
  options.initial_index_slots = 64;
  options.max_file_size = 1ull << 30;
  ASSERT_OK_AND_ASSIGN(auto db, Open(options));
  const Stats s0 = db->GetStats();
  EXPECT_EQ(s0.keys, 0u);
  EXPECT_GE(s0.file_size, 1u << 20);
  EXPECT_EQ(s0.max_file_size, 1ull << 30);
  EXPECT_GE(s0.index_capacity, 64u);
  EXPECT_EQ(s0.index_capacity & (s0.index_capacity - 1), 0u) << "not a power of two";
  EXPECT_GT(s0.log_bytes, 0u);
  EXPECT_LE(s0.log_bytes, s0.file_size);
  EXPECT_LE(s0.live_bytes, s0.log_bytes);
  EXPECT_GE(s0.format_version, 1u);
  EXPECT_EQ(s0.open_handles, 1u);
  EXPECT_FALSE(s0.rebuilt_index);

  for (int i = 0; i < 10; ++i) ASSERT_OK(db->Put(absl::StrCat("k", i), std::string(100, 'v')));
  const Stats s1 = db->GetStats();
  EXPECT_EQ(s1.keys, 10u);
  EXPECT_GE(s1.commits, s0.commits + 10);
  EXPECT_GT(s1.log_bytes, s0.log_bytes);
  EXPECT_GT(s1.live_bytes, s0.live_bytes);
  EXPECT_GE(s1.live_bytes, 10u * 100);
  EXPECT_LE(s1.live_bytes, s1.log_bytes);
  EXPECT_LE(s1.log_bytes, s1.file_size);
  EXPECT_GE(s1.index_used, 10u);
  EXPECT_LE(s1.index_used, s1.index_capacity);
  EXPECT_NEAR(s1.index_load,
              static_cast<double>(s1.index_used) / static_cast<double>(s1.index_capacity), 1e-9);

  for (int i = 0; i < 5; ++i) ASSERT_OK(db->Put(absl::StrCat("k", i), std::string(100, 'w')));
  ASSERT_OK(db->Delete("k9"));
  const Stats s2 = db->GetStats();
  EXPECT_EQ(s2.keys, 9u);
  EXPECT_GT(s2.commits, s1.commits);
  EXPECT_GT(s2.garbage_bytes, s1.garbage_bytes);  // overwritten and deleted records
  EXPECT_LE(s2.live_bytes, s2.log_bytes);

  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    for (int i = 0; i < 5; ++i) ASSERT_OK(txn.Put(absl::StrCat("t", i), "x"));
    ASSERT_OK(txn.Commit());
  }
  const Stats s3 = db->GetStats();
  EXPECT_GT(s3.commits, s2.commits);
  EXPECT_EQ(s3.keys, 14u);

  const int64_t before_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  ASSERT_OK(db->Checkpoint());
  const Stats s4 = db->GetStats();
  EXPECT_EQ(s4.checkpoints, s3.checkpoints + 1);
  EXPECT_GE(s4.last_checkpoint_unix_ms, before_ms - 60000);
  EXPECT_LE(s4.last_checkpoint_unix_ms, before_ms + 60000);
  ASSERT_OK(db->Checkpoint());
  EXPECT_EQ(db->GetStats().checkpoints, s3.checkpoints + 2);

  {
    ASSERT_OK_AND_ASSIGN(auto second, Open(options));
    EXPECT_EQ(db->GetStats().open_handles, 2u);
    EXPECT_EQ(second->GetStats().keys, 14u);
  }
  EXPECT_EQ(db->GetStats().open_handles, 1u);

  db.reset();
  ASSERT_OK_AND_ASSIGN(db, Open(options));
  const Stats s5 = db->GetStats();
  EXPECT_EQ(s5.keys, 14u);
  EXPECT_GE(s5.commits, s3.commits);  // counters live in the file
  EXPECT_GE(s5.checkpoints, s4.checkpoints + 1);
  EXPECT_FALSE(s5.rebuilt_index);
}

TEST_F(DBTest, FileAndIndexGrowWithoutReopen) {
  Options options;
  options.initial_file_size = 1 << 20;
  options.initial_index_slots = 64;
  ASSERT_OK_AND_ASSIGN(auto db, Open(options));
  ASSERT_OK_AND_ASSIGN(auto other, Open(options));  // opened before any growth
  const Stats s0 = db->GetStats();
  EXPECT_EQ(s0.index_capacity, 64u);

  constexpr int kKeys = 50000;
  auto key_of = [](int i) { return absl::StrFormat("key%06d", i); };
  auto value_of = [&](int i) { return test::DeterministicValue(key_of(i), 1, 20 + i % 150); };
  int i = 0;
  for (; i < 2000; ++i) ASSERT_OK(db->Put(key_of(i), value_of(i)));  // one commit each
  while (i < 30000) {                                                // batches
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    for (int end = i + 1000; i < end; ++i) ASSERT_OK(txn.Put(key_of(i), value_of(i)));
    ASSERT_OK(txn.Commit());
  }
  {  // one big transaction: the index grows several times inside one commit
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    for (; i < kKeys; ++i) ASSERT_OK(txn.Put(key_of(i), value_of(i)));
    EXPECT_OK_AND_EQ(txn.Get(key_of(kKeys - 1)), value_of(kKeys - 1));
    EXPECT_OK_AND_EQ(txn.Get(key_of(0)), value_of(0));
    ASSERT_OK(txn.Commit());
  }
  const Stats s1 = db->GetStats();
  EXPECT_EQ(s1.keys, static_cast<uint64_t>(kKeys));
  EXPECT_GT(s1.file_size, s0.file_size);
  EXPECT_GT(s1.index_capacity, s0.index_capacity);
  EXPECT_GE(s1.index_capacity * 3 / 4, static_cast<uint64_t>(kKeys));
  EXPECT_EQ(other->GetStats().keys, static_cast<uint64_t>(kKeys));

  for (DB* handle : {db.get(), other.get()}) {
    int bad = 0;
    for (int j = 0; j < kKeys && bad < 10; ++j) {
      auto got = handle->Get(key_of(j));
      if (!got.ok() || *got != value_of(j)) {
        ++bad;
        ADD_FAILURE() << key_of(j) << ": "
                      << (got.ok() ? test::Describe(*got) : got.status().ToString());
      }
    }
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, handle->BeginRead());
    EXPECT_EQ(txn.Count(), static_cast<uint64_t>(kKeys));
  }
  db.reset();
  other.reset();
  ASSERT_OK_AND_ASSIGN(db, Open(options));
  EXPECT_EQ(db->GetStats().keys, static_cast<uint64_t>(kKeys));
  for (int j = 0; j < kKeys; j += 97) EXPECT_OK_AND_EQ(db->Get(key_of(j)), value_of(j));
}

TEST_F(DBTest, DeletesGoOnWhenSmallPutsHaveFilledTheFile) {
  // Small values fill the file to the last bytes; the space kept back for deletes must let many
  // of them through (each appends a record, and their commits may need a new index table).
  Options options;
  options.initial_index_slots = 64;
  options.max_file_size = 2 << 20;
  ASSERT_OK_AND_ASSIGN(auto db, Open(options));
  int n = 0;
  absl::Status last;
  while ((last = db->Put(absl::StrCat("k", n), std::string(100, 'v'))).ok()) ++n;
  ASSERT_STATUS(last, StatusCode::kResourceExhausted);
  EXPECT_NE(last.message().find("max_file_size"), std::string::npos) << last;
  ASSERT_GT(n, 5000);
  for (int i = 0; i < 1000; ++i) ASSERT_OK(db->Delete(absl::StrCat("k", i))) << i;
  EXPECT_EQ(db->GetStats().keys, static_cast<uint64_t>(n - 1000));
  EXPECT_STATUS(db->Get("k0"), StatusCode::kNotFound);
  EXPECT_OK_AND_EQ(db->Get(absl::StrCat("k", n - 1)), std::string(100, 'v'));
}

TEST_F(DBTest, MaxFileSizeGivesResourceExhaustedAndLosesNothing) {
  Options options;
  options.initial_file_size = 1 << 20;
  options.initial_index_slots = 64;
  options.max_file_size = 4 << 20;
  options.lock_timeout = std::chrono::milliseconds(2000);
  Rng rng(3);
  absl::flat_hash_map<std::string, std::string> committed;
  std::vector<std::string> order;
  ASSERT_OK_AND_ASSIGN(auto db, Open(options));
  absl::Status last;
  for (int i = 0; i < 200; ++i) {
    const std::string key = absl::StrCat("big", i);
    std::string value = test::RandomBytes(rng, 64 << 10);
    last = db->Put(key, value);
    if (!last.ok()) break;
    committed[key] = std::move(value);
    order.push_back(key);
  }
  ASSERT_STATUS(last, StatusCode::kResourceExhausted);
  EXPECT_GE(committed.size(), 16u);
  const Stats full = db->GetStats();
  EXPECT_LE(full.file_size, 4u << 20);
  EXPECT_EQ(full.max_file_size, 4u << 20);
  EXPECT_EQ(full.keys, committed.size());
  for (const auto& [key, value] : committed) EXPECT_OK_AND_EQ(db->Get(key), value) << key;

  // A larger value is refused the same way.
  EXPECT_STATUS(db->Put("another", test::RandomBytes(rng, 1 << 20)),
                StatusCode::kResourceExhausted);

  {  // The transaction stays usable after ResourceExhausted: Delete and Commit still work.
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    EXPECT_STATUS(txn.Put("too_big", test::RandomBytes(rng, 2 << 20)),
                  StatusCode::kResourceExhausted);
    ASSERT_OK(txn.Delete(order[0]));
    ASSERT_OK(txn.Commit());
    committed.erase(order[0]);
  }
  ASSERT_OK(db->Delete(order[1]));
  committed.erase(order[1]);
  EXPECT_STATUS(db->Get(order[0]), StatusCode::kNotFound);
  EXPECT_STATUS(db->Get(order[1]), StatusCode::kNotFound);
  EXPECT_STATUS(db->Get("too_big"), StatusCode::kNotFound);
  EXPECT_STATUS(db->Get("another"), StatusCode::kNotFound);

  db.reset();
  ASSERT_OK_AND_ASSIGN(db, Open(options));
  EXPECT_EQ(db->GetStats().keys, committed.size());
  for (const auto& [key, value] : committed) EXPECT_OK_AND_EQ(db->Get(key), value) << key;
  EXPECT_STATUS(db->Get(order[0]), StatusCode::kNotFound);
  ASSERT_OK(db->Delete(order[2]));  // deletes go on after a reopen at the limit
  committed.erase(order[2]);
  db.reset();

  // A later Open by the only user may raise the limit; then writes succeed again.
  options.max_file_size = 16 << 20;
  ASSERT_OK_AND_ASSIGN(db, Open(options));
  EXPECT_EQ(db->GetStats().max_file_size, 16u << 20);
  const std::string value = test::RandomBytes(rng, 1 << 20);
  ASSERT_OK(db->Put("after_raise", value));
  EXPECT_OK_AND_EQ(db->Get("after_raise"), value);
  for (const auto& [key, v] : committed) EXPECT_OK_AND_EQ(db->Get(key), v) << key;
}

TEST_F(DBTest, ManyThreadsShareOneHandle) {
  ASSERT_OK_AND_ASSIGN(auto db, Open());
  constexpr int kThreads = 4;
  constexpr int kOps = 1000;
  std::vector<std::thread> threads;
  std::vector<std::string> errors(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps && errors[t].empty(); ++i) {
        const std::string key = absl::StrCat("t", t, "/", i % 100);
        const std::string value = absl::StrCat(i);
        absl::Status s = db->Put(key, value);
        if (!s.ok()) errors[t] = absl::StrCat("Put ", key, ": ", s.ToString());
        auto got = db->Get(key);
        if (!got.ok() || *got != value) errors[t] = absl::StrCat("Get ", key, " wrong");
        if (i % 50 == 0) {
          auto txn = db->BeginRead();
          if (!txn.ok()) errors[t] = txn.status().ToString();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const std::string& error : errors) EXPECT_EQ(error, "");
  EXPECT_EQ(db->GetStats().keys, static_cast<uint64_t>(kThreads * 100));
  for (int t = 0; t < kThreads; ++t) {
    for (int k = 0; k < 100; ++k) {
      EXPECT_OK_AND_EQ(db->Get(absl::StrCat("t", t, "/", k)), absl::StrCat(kOps - 100 + k));
    }
  }
}

}  // namespace
}  // namespace mapkv
