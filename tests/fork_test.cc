// fork() beside mapkv handles: every public call on a handle inherited across fork() refuses with
// FailedPrecondition and touches nothing of the parent's (the mapping is not inherited, so a call
// that touched it would crash), and a fork() from one thread while another opens a database
// never leaves the parent's byte locks alive in the child. POSIX only (fork()).
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mapkv/cache.h"
#include "mapkv/db.h"
#include "test_util.h"

namespace mapkv {
namespace {

using ::absl::StatusCode;

Options Quick() {
  Options options;
  options.lock_timeout = std::chrono::milliseconds(500);
  return options;
}

// Counts a call on an inherited handle that did not refuse with a FailedPrecondition naming fork.
void ExpectRefuses(const absl::Status& status, std::string_view what, int* failures) {
  if (status.code() == StatusCode::kFailedPrecondition &&
      absl::StrContains(status.message(), "fork")) {
    return;
  }
  ++*failures;
  std::fprintf(stderr, "[child %d] inherited handle: %.*s returned %s\n", getpid(),
               static_cast<int>(what.size()), what.data(), status.ToString().c_str());
}

// The parent holds a DB with a write transaction that has writes and a read transaction, and a
// cache, when it forks. The child calls everything on them; each call refuses, GetStats() gives
// zeros, and destroying them all is safe. The parent's transaction then commits as if nothing
// happened, and its handles go on.
TEST(ForkTest, EveryCallOnAnInheritedHandleRefusesWithoutCrashing) {
  test::TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(dir.File("db"), Quick()));
  ASSERT_OK(db->Put("a", "1"));
  CacheOptions cache_options;
  cache_options.db = Quick();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Cache> cache, Cache::Open(dir.File("cache"), cache_options));
  ASSERT_OK(cache->Put("c", "1"));
  ASSERT_OK(cache->Increment("n", 1));
  std::optional<WriteTxn> txn;
  ASSERT_OK_AND_ASSIGN(txn, db->BeginWrite());
  ASSERT_OK(txn->Put("b", "2"));
  std::optional<ReadTxn> read;
  {
    // A second handle: its read transaction beside the first handle's write transaction.
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> reader, DB::Open(dir.File("db"), Quick()));
    ASSERT_OK_AND_ASSIGN(read, reader->BeginRead());
    const int child = test::ForkInheriting([&]() -> int {
      int failures = 0;
      ExpectRefuses(txn->Get("a").status(), "WriteTxn::Get", &failures);
      ExpectRefuses(txn->Put("x", "y"), "WriteTxn::Put", &failures);
      ExpectRefuses(txn->Delete("a"), "WriteTxn::Delete", &failures);
      ExpectRefuses(txn->Commit(), "WriteTxn::Commit", &failures);
      ExpectRefuses(read->Get("a").status(), "ReadTxn::Get", &failures);
      ExpectRefuses(read->ForEach([](std::string_view, std::string_view) { return true; }),
                    "ReadTxn::ForEach", &failures);
      std::vector<std::string_view> keys = {"a", "b"};
      std::vector<absl::StatusOr<std::string_view>> views(2);
      read->MultiGet(keys, absl::MakeSpan(views));
      for (const auto& v : views) ExpectRefuses(v.status(), "ReadTxn::MultiGet", &failures);
      ExpectRefuses(db->Get("a").status(), "DB::Get", &failures);
      std::string value;
      ExpectRefuses(db->Get("a", &value), "DB::Get into a string", &failures);
      std::vector<absl::StatusOr<std::string>> values;
      ExpectRefuses(db->MultiGet(keys, &values), "DB::MultiGet", &failures);
      ExpectRefuses(db->Put("x", "y"), "DB::Put", &failures);
      ExpectRefuses(db->Delete("a"), "DB::Delete", &failures);
      ExpectRefuses(db->BeginRead().status(), "DB::BeginRead", &failures);
      ExpectRefuses(db->BeginWrite().status(), "DB::BeginWrite", &failures);
      ExpectRefuses(db->Checkpoint(), "DB::Checkpoint", &failures);
      ExpectRefuses(db->Verify(), "DB::Verify", &failures);
      CHILD_CHECK(db->GetStats().keys == 0 && db->GetStats().file_size == 0,
                  "DB::GetStats in a child must read nothing");
      CHILD_CHECK(!db->path().empty());
      ExpectRefuses(cache->Get("c").status(), "Cache::Get", &failures);
      ExpectRefuses(cache->Put("c", "2"), "Cache::Put", &failures);
      ExpectRefuses(cache->Delete("c"), "Cache::Delete", &failures);
      ExpectRefuses(cache->Increment("n", 1).status(), "Cache::Increment", &failures);
      ExpectRefuses(
          cache->GetOrCompute("g", Ttl{0}, []() -> absl::StatusOr<std::string> { return "v"; })
              .status(),
          "Cache::GetOrCompute", &failures);
      ExpectRefuses(cache->Checkpoint(), "Cache::Checkpoint", &failures);
      const CacheStats stats = cache->GetStats();
      CHILD_CHECK(stats.hits == 0 && stats.db.keys == 0, "Cache::GetStats in a child");
      CHILD_CHECK(failures == 0, failures, " calls on inherited handles did not refuse");
      // Destructors: the transactions, then their handles (a transaction never outlives its
      // handle, in a child as anywhere).
      txn.reset();
      read.reset();
      db.reset();
      cache.reset();
      reader.reset();
      return 0;
    });
    ASSERT_GT(child, 0);
    const int status = test::WaitChild(child);
    EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
    EXPECT_OK_AND_EQ(read->Get("a"), "1");
    read.reset();
  }
  ASSERT_OK(txn->Commit());
  EXPECT_OK_AND_EQ(db->Get("b"), "2");
  EXPECT_OK(db->Put("d", "4"));
  EXPECT_OK(db->Verify());
  EXPECT_OK_AND_EQ(cache->Get("c"), "1");
  absl::StatusOr<int64_t> n = cache->Increment("n", 1);
  ASSERT_OK(n.status());
  EXPECT_EQ(*n, 2);
}

// A write transaction without writes, carried into a child and committed there: refused, and the
// parent's writer lock is untouched (the parent's own commit goes through).
TEST(ForkTest, AnEmptyWriteTxnCommittedInAChildRefuses) {
  test::TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(dir.File("db"), Quick()));
  std::optional<WriteTxn> txn;
  ASSERT_OK_AND_ASSIGN(txn, db->BeginWrite());
  const int child = test::ForkInheriting([&]() -> int {
    int failures = 0;
    ExpectRefuses(txn->Commit(), "WriteTxn::Commit without writes", &failures);
    CHILD_CHECK(failures == 0);
    return 0;
  });
  ASSERT_GT(child, 0);
  const int status = test::WaitChild(child);
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
  ASSERT_OK(txn->Put("k", "v"));
  ASSERT_OK(txn->Commit());
  EXPECT_OK_AND_EQ(db->Get("k"), "v");
}

// One thread opens, writes and closes a database over and over while another forks children that
// live until the end: none of them may keep a descriptor of the opener's, whose byte locks would
// outlive its handle (the next opens would wait for a first opener that is gone). At the end, with
// every child still alive, the database opens exclusively: nobody else holds it.
TEST(ForkTest, AForkWhileAnotherThreadOpensLeavesTheChildNoDescriptor) {
  constexpr int kOpens = 300;
  constexpr int kMaxChildren = 150;
  test::TempDir dir;
  const std::string path = dir.File("db");
  int release[2];
  ASSERT_EQ(pipe(release), 0);
  std::atomic<bool> opening{true};
  std::vector<pid_t> children;
  std::thread forker([&] {
    while (opening.load() && static_cast<int>(children.size()) < kMaxChildren) {
      const pid_t pid = fork();
      if (pid == 0) {
        // Lives until the parent closes the pipe: no time involved.
        close(release[1]);
        char c;
        while (read(release[0], &c, 1) > 0) {
        }
        _exit(0);
      }
      if (pid > 0) children.push_back(pid);
    }
  });
  absl::Status failed;
  for (int i = 0; i < kOpens && failed.ok(); ++i) {
    auto db = DB::Open(path, Quick());
    if (!db.ok()) {
      failed = db.status();
      break;
    }
    failed = (*db)->Put(absl::StrCat("k", i % 10), absl::StrCat(i));
  }
  opening.store(false);
  forker.join();
  EXPECT_OK(failed) << "after forks beside opens, with " << children.size() << " children";
  Options exclusive = Quick();
  exclusive.exclusive = true;
  EXPECT_OK(DB::Open(path, exclusive).status())
      << "a child of fork() holds the database open (" << children.size() << " children)";
  close(release[1]);
  close(release[0]);
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
  }
  EXPECT_GT(children.size(), 0u);
}

}  // namespace
}  // namespace mapkv
