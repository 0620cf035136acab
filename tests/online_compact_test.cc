// Online compaction: Compact() in place of a format version 4 database that other handles (of this
// process and of others) go on using. The compaction copies a snapshot into a new file, then the
// commits made meanwhile, then, holding the writer lock, the last of them; it marks the old file
// replaced and renames the new one over it. Every handle moves to the new file at its next call;
// a snapshot open on the old file reads it to its end; the old file's blocks go back to the file
// system once no snapshot reads it. A compaction killed after marking leaves the old file in use
// (the next writer takes the mark back); one killed after renaming leaves the new one.
//
// Where the OS cannot rename over a mapped file (Windows) compaction needs the database alone, and
// these tests are skipped (tool_test covers the refusal).
//
// Knob: MAPKV_ONLINE_COMMITS, commits of the writer process beside the compactions (default 3000).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mapkv/compact.h"
#include "mapkv/db.h"
#include "src/db_impl.h"
#include "src/env.h"
#include "src/format.h"
#include "src/platform/fs.h"
#include "src/platform/process.h"
#include "src/rwlock.h"
#include "test_util.h"

namespace mapkv {
namespace {

using ::mapkv::test::ChildPipe;
using ::mapkv::test::Pipe;
using ::mapkv::test::StartChild;
using ::mapkv::test::TempDir;
using ::mapkv::test::WaitChild;

class OnlineCompactTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (internal::ReplaceFailsWhileMapped()) {
      GTEST_SKIP() << "this OS cannot rename over a file that a process has mapped";
    }
  }
  std::string Path(const std::string& name) { return dir_.File(name); }
  TempDir dir_;
};

Options SmallOptions() {
  Options options;
  options.initial_file_size = 1 << 20;
  options.initial_index_slots = 64;
  options.max_file_size = 256ull << 20;
  options.lock_timeout = std::chrono::seconds(10);
  options.compact_ratio = 0;  // the compactions here are the tests' own, where they ask for none
  return options;
}

// 100-byte values: the records, not the index, make most of the file.
std::string Value(int key, int version) {
  std::string v = absl::StrCat("value-", key, "-", version, "-");
  v.resize(100, 'v');
  return v;
}

// `keys` keys, each written `versions` times: most of the file is garbage.
void Churn(DB& db, int keys, int versions) {
  for (int v = 0; v < versions; ++v) {
    for (int k = 0; k < keys; ++k) ASSERT_OK(db.Put(absl::StrCat("k", k), Value(k, v)));
  }
}

using test::Logged;

uint64_t Inode(const std::string& path) {
  absl::StatusOr<internal::FileInfo> info = internal::StatFile(path);
  return info.ok() ? info->inode : 0;
}

// Temporary files of compactions left in `dir`.
std::vector<std::string> TempFilesIn(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (absl::StrContains(name, ".compact-")) out.push_back(name);
  }
  return out;
}

uint64_t Allocated(const std::string& path) {
  absl::StatusOr<internal::FileInfo> info = internal::StatFile(path);
  return info.ok() ? info->allocated : 0;
}

TEST_F(OnlineCompactTest, HandlesOfThisProcessMoveToTheNewFile) {
  const std::string path = Path("db.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> a, DB::Open(path, SmallOptions()));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> b, DB::Open(path, SmallOptions()));
  Churn(*a, 5000, 10);
  ASSERT_OK(b->Delete("k7"));
  const uint64_t before = Inode(path);
  const uint64_t log_before = a->GetStats().log_bytes;

  ASSERT_OK_AND_ASSIGN(CompactResult result, Compact(path, ""));
  EXPECT_TRUE(result.in_place);
  EXPECT_FALSE(result.read_under_lock);
  EXPECT_EQ(result.keys, 4999u);
  // The file: 1 MiB of it is kept free for deletes (and sizes are whole MiB); the log below.
  EXPECT_LT(result.size_after, result.size_before / 2);
  EXPECT_NE(Inode(path), before);

  // Both handles read the new file, and what one writes there the other sees.
  EXPECT_OK_AND_EQ(a->Get("k1"), Value(1, 9));
  EXPECT_STATUS(b->Get("k7"), absl::StatusCode::kNotFound);
  ASSERT_OK(b->Put("after", "x"));
  EXPECT_OK_AND_EQ(a->Get("after"), "x");
  EXPECT_LT(a->GetStats().log_bytes, log_before / 3);
  EXPECT_EQ(b->GetStats().keys, 5000u);
  EXPECT_EQ(a->GetStats().open_handles, 2u) << "the compaction's own handles are closed";
  ASSERT_OK_AND_ASSIGN(WriteTxn txn, a->BeginWrite());
  ASSERT_OK(txn.Put("txn", "y"));
  ASSERT_OK(txn.Commit());
  EXPECT_OK_AND_EQ(b->Get("txn"), "y");
  EXPECT_OK(a->Verify());
  EXPECT_TRUE(TempFilesIn(dir_.path()).empty());

  // A second compaction, and a handle opened afterwards: one file for all.
  ASSERT_OK(Compact(path, "").status());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> c, DB::Open(path, SmallOptions()));
  ASSERT_OK(c->Put("third", "z"));
  EXPECT_OK_AND_EQ(a->Get("third"), "z");
  EXPECT_OK_AND_EQ(b->Get("third"), "z");
  EXPECT_EQ(c->GetStats().open_handles, 3u);
}

// The database's history goes on through its compactions: how many, the log bytes written over
// its life, and those of them that compactions copied (Stats::compactions, bytes_written,
// bytes_relocated, write_amplification). A copy under another name starts a new one.
TEST_F(OnlineCompactTest, StatsCountCompactionsAndTheBytesTheyRelocated) {
  const std::string path = Path("history.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SmallOptions()));
  Churn(*db, 2000, 5);
  const Stats fresh = db->GetStats();
  const uint64_t log1 = fresh.log_bytes - internal::kHeaderSize;  // all written by commits
  EXPECT_EQ(fresh.compactions, 0u);
  EXPECT_EQ(fresh.bytes_written, log1);
  EXPECT_EQ(fresh.bytes_relocated, 0u);
  EXPECT_DOUBLE_EQ(fresh.write_amplification, 1.0);

  ASSERT_OK(Compact(path, "").status());
  const Stats once = db->GetStats();
  const uint64_t copy1 = once.log_bytes - internal::kHeaderSize;  // all of it the copy
  EXPECT_LT(copy1, log1 / 3);
  EXPECT_EQ(once.compactions, 1u);
  EXPECT_EQ(once.bytes_written, log1 + copy1);
  EXPECT_EQ(once.bytes_relocated, copy1);
  EXPECT_DOUBLE_EQ(once.write_amplification,
                   static_cast<double>(log1 + copy1) / static_cast<double>(log1));

  // Commits after it are written by commits; a second compaction adds its copy.
  Churn(*db, 2000, 2);
  const uint64_t log2 = db->GetStats().log_bytes - internal::kHeaderSize;
  ASSERT_OK(Compact(path, "").status());
  const Stats twice = db->GetStats();
  const uint64_t copy2 = twice.log_bytes - internal::kHeaderSize;
  EXPECT_EQ(twice.compactions, 2u);
  EXPECT_EQ(twice.bytes_written, log1 + log2 + copy2);
  EXPECT_EQ(twice.bytes_relocated, copy1 + copy2);
  EXPECT_GT(twice.commits, once.commits) << "the count of commits goes on too";

  // Under another name, a new database (golden_test: an offline compaction in place).
  const std::string copy = Path("copy.mapkv");
  ASSERT_OK(Compact(path, copy).status());
  EXPECT_EQ(db->GetStats().compactions, 2u);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> other, DB::Open(copy, SmallOptions()));
  const Stats copied = other->GetStats();
  EXPECT_EQ(copied.compactions, 0u);
  EXPECT_EQ(copied.bytes_relocated, 0u);
  EXPECT_EQ(copied.bytes_written, copied.log_bytes - internal::kHeaderSize);
}

// A snapshot taken before the compaction reads the old file to its end; the old file's blocks go
// back once it ends (the hard link keeps the old file's inode in sight).
TEST_F(OnlineCompactTest, ASnapshotKeepsReadingTheOldFile) {
  const std::string path = Path("db.mapkv");
  const std::string old_name = Path("old.link");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SmallOptions()));
  Churn(*db, 5000, 8);
  std::error_code ec;
  std::filesystem::create_hard_link(path, old_name, ec);
  ASSERT_FALSE(ec) << ec.message();
  const uint64_t allocated = Allocated(old_name);

  std::optional<ReadTxn> snapshot;
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    snapshot.emplace(std::move(txn));
  }
  ASSERT_OK(Compact(path, "").status());
  ASSERT_OK(db->Put("k1", "new"));  // on the new file
  EXPECT_OK_AND_EQ(snapshot->Get("k1"), Value(1, 7));
  uint64_t seen = 0;
  ASSERT_OK(snapshot->ForEach([&](std::string_view key, std::string_view value) {
    const int k = std::atoi(std::string(key.substr(1)).c_str());
    EXPECT_EQ(value, Value(k, 7)) << key;
    ++seen;
    return true;
  }));
  EXPECT_EQ(seen, 5000u);
  EXPECT_EQ(Allocated(old_name), allocated) << "a snapshot still reads it";
  snapshot.reset();
  EXPECT_LT(Allocated(old_name), allocated / 2) << "the last snapshot gives the blocks back";
  EXPECT_OK_AND_EQ(db->Get("k1"), "new");

  // Once nothing reads it, the next compaction gives its own old file's blocks back at once
  // (most of them: a file system may keep some allocated, as ext4 keeps a MiB or two).
  Churn(*db, 5000, 12);
  const std::string second = Path("second.link");
  std::filesystem::create_hard_link(path, second, ec);
  ASSERT_FALSE(ec) << ec.message();
  const uint64_t second_allocated = Allocated(second);
  ASSERT_OK(Compact(path, "").status());
  EXPECT_LT(Allocated(second), second_allocated / 2);
  EXPECT_OK_AND_EQ(db->Get("k1"), Value(1, 11));
}

// A write transaction open on another handle keeps the writer lock: the compaction waits for it
// up to its lock_timeout, then fails and leaves everything as it was.
TEST_F(OnlineCompactTest, AWriterThatKeepsTheLockMakesItFail) {
  const std::string path = Path("db.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SmallOptions()));
  Churn(*db, 500, 4);
  const uint64_t inode = Inode(path);
  ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
  ASSERT_OK(txn.Put("pending", "p"));
  CompactOptions options;
  options.lock_timeout = std::chrono::milliseconds(200);
  EXPECT_STATUS(Compact(path, "", options), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Inode(path), inode);
  EXPECT_TRUE(TempFilesIn(dir_.path()).empty());
  ASSERT_OK(txn.Commit());
  EXPECT_OK_AND_EQ(db->Get("pending"), "p");
  EXPECT_OK_AND_EQ(db->Get("k3"), Value(3, 3));
}

// Another process commits, one key after another, while this one compacts: every commit is in the
// file afterwards, and the writer never sees an error.
MAPKV_CHILD(SequentialWriterChild) {
  const std::string& path = args.at(0);
  const int commits = args.Int<int>(1);
  ChildPipe halfway = args.PipeEnd(2);
  ChildPipe go_on = args.PipeEnd(3);
  auto db = DB::Open(path, SmallOptions());
  CHILD_CHECK_OK(db);
  for (int i = 0; i < commits; ++i) {
    if (i == commits / 2) {
      CHILD_CHECK(halfway.Write("h"));
      CHILD_CHECK(go_on.WaitByte(std::chrono::seconds(60)));
    }
    CHILD_CHECK_OK((*db)->Put(absl::StrCat("w", i % 100), absl::StrCat(i)));
    auto back = (*db)->Get(absl::StrCat("w", i % 100));
    CHILD_CHECK_OK(back);
    CHILD_CHECK(*back == absl::StrCat(i), "read back ", *back, " after writing ", i);
  }
  return 0;
}

TEST_F(OnlineCompactTest, AnotherProcessCommitsThroughCompactions) {
  const int commits = static_cast<int>(test::EnvInt("MAPKV_ONLINE_COMMITS", 3000));
  const std::string path = Path("db.mapkv");
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SmallOptions()));
    Churn(*db, 300, 5);
  }
  Pipe halfway, go_on;
  const int writer = StartChild("SequentialWriterChild",
                                {path, commits, halfway.WriteEndArg(), go_on.ReadEndArg()});
  halfway.CloseWrite();
  go_on.CloseRead();
  // Compactions beside the first half of the commits (as many as fit), one while the writer
  // waits (so that at least one falls between its commits), then beside the rest.
  int compactions = 0;
  bool waiting = false;
  while (!waiting) {
    waiting = halfway.WaitByte(std::chrono::milliseconds(0));
    ASSERT_OK(Compact(path, "").status());
    ++compactions;
  }
  ASSERT_TRUE(go_on.Write("g"));
  ASSERT_OK(Compact(path, "").status());
  EXPECT_EQ(WaitChild(writer), 0);
  ASSERT_OK(Compact(path, "").status());

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SmallOptions()));
  for (int w = 0; w < 100; ++w) {
    const int last = (commits - 1) - ((commits - 1 - w) % 100);
    EXPECT_OK_AND_EQ(db->Get(absl::StrCat("w", w)), absl::StrCat(last));
  }
  EXPECT_OK_AND_EQ(db->Get("k299"), Value(299, 4));
  EXPECT_OK(db->Verify());
  EXPECT_GE(compactions, 1);
}

// A compaction killed at its steps, beside a handle of this process that keeps using the file.
class DieAt : public internal::Env {
 public:
  explicit DieAt(internal::HookPoint point) : point_(point) {}
  void AtPoint(internal::HookPoint point) override {
    if (point == point_) std::_Exit(kDied);
  }
  static constexpr int kDied = 42;

 private:
  const internal::HookPoint point_;
};

MAPKV_CHILD(DyingCompactionChild) {
  DieAt env(static_cast<internal::HookPoint>(args.Int<int>(1)));
  CompactOptions options;
  options.env = &env;
  absl::StatusOr<CompactResult> r = Compact(args.at(0), "", options);
  CHILD_CHECK(false, "the compaction did not stop: ", r.status().ToString());
  return 0;
}

TEST_F(OnlineCompactTest, AKilledCompactionLeavesOneFileInUse) {
  for (internal::HookPoint point :
       {internal::HookPoint::kCompactMarked, internal::HookPoint::kCompactRenamed}) {
    SCOPED_TRACE(static_cast<int>(point));
    const std::string path = Path(absl::StrCat("db", static_cast<int>(point), ".mapkv"));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SmallOptions()));
    Churn(*db, 500, 4);
    const uint64_t inode = Inode(path);
    EXPECT_EQ(test::RunChild("DyingCompactionChild", {path, static_cast<int>(point)}),
              DieAt::kDied);
    // Marked but not renamed: the old file stays the database. Renamed: the new one is.
    EXPECT_EQ(Inode(path) == inode, point == internal::HookPoint::kCompactMarked);
    EXPECT_OK_AND_EQ(db->Get("k5"), Value(5, 3));
    ASSERT_OK(db->Put("k5", "after"));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> fresh, DB::Open(path, SmallOptions()));
    EXPECT_OK_AND_EQ(fresh->Get("k5"), "after");
    EXPECT_OK_AND_EQ(fresh->Get("k499"), Value(499, 3));
    EXPECT_OK(fresh->Verify());
    ASSERT_OK(Compact(path, "").status()) << "and a compaction runs again";
    EXPECT_OK_AND_EQ(db->Get("k5"), "after");
  }
}

// Commits start online compactions by themselves (Options::compact_ratio): 30 rounds over the
// same keys leave a file that holds at most what the ratio allows once the handle's compaction is
// done (closing a handle waits for it), however fast the compactions ran beside the commits.
TEST_F(OnlineCompactTest, CommitsStartCompactionsThatKeepTheLogBounded) {
  const std::string path = Path("auto.mapkv");
  Options options = SmallOptions();
  options.compact_ratio = 2.0;
  options.compact_min_garbage = 1 << 20;
  options.create_format_version = 4;  // reclaimed by copies, not by the cleaner
  uint64_t first_inode = 0;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> other, DB::Open(path, options));
    first_inode = Inode(path);
    for (int round = 0; round < 30; ++round) {
      Churn(*db, 1000, 1);
      ASSERT_OK_AND_ASSIGN(WriteTxn txn, other->BeginWrite());  // a transaction's commit too
      ASSERT_OK(txn.Put("txn", absl::StrCat(round)));
      ASSERT_OK(txn.Commit());
    }
  }
  EXPECT_NE(Inode(path), first_inode) << "no compaction ran";
  {
    // One more commit: a log still past the ratio calls for another compaction.
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
    ASSERT_OK(db->Put("k0", Value(0, 0)));
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  const Stats st = db->GetStats();
  const uint64_t kept = st.live_bytes + st.index_capacity * 16 + 64;
  const uint64_t log = st.log_bytes - 64 * 1024;
  EXPECT_LE(log, std::max<uint64_t>(kept + options.compact_min_garbage, 2 * kept) + 4096)
      << "live " << st.live_bytes << ", garbage " << st.garbage_bytes;
  EXPECT_EQ(st.keys, 1001u);
  EXPECT_OK_AND_EQ(db->Get("k999"), Value(999, 0));
  EXPECT_OK_AND_EQ(db->Get("txn"), "29");
  EXPECT_OK(db->Verify());
}

// A compaction that failed is tried again only after compact_min_garbage more log, of that file:
// once another compaction replaced it, the next file's commits start one at the ratio, although
// its log is far shorter than the failed file's was.
class FailingCopies : public internal::Env {
 public:
  absl::StatusOr<std::unique_ptr<internal::MappedFile>> OpenFile(
      const std::string& path, const internal::FileOpenOptions& options) override {
    if (fail_ && absl::StrContains(path, ".compact-")) {
      ++failed_;
      return absl::ResourceExhaustedError(absl::StrCat(path, ": no space (injected)"));
    }
    return internal::Env::OpenFile(path, options);
  }
  std::atomic<bool> fail_{true};
  std::atomic<int> failed_{0};
};

TEST_F(OnlineCompactTest, AFailedCompactionDoesNotHoldOffTheNextFile) {
  const std::string path = Path("retry.mapkv");
  FailingCopies env;
  Options options = SmallOptions();
  options.compact_ratio = 2.0;
  options.compact_min_garbage = 1 << 20;
  options.create_format_version = 4;  // reclaimed by copies, not by the cleaner
  options.env = &env;
  Logged logged;
  options.info_log = logged.Sink();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  // 1,000 keys keep about 190 KB; 30 rounds write 4.6 MB: every compaction they start fails.
  for (int round = 0; round < 30; ++round) Churn(*db, 1000, 1);
  ASSERT_OK(db->Put("flush", "x"));
  // Another's compaction (not through `env`), which this handle follows. A try of the handle's
  // may still hold the file's compaction lock for a moment: FailedPrecondition, then.
  absl::StatusOr<CompactResult> other = Compact(path, "");
  for (int i = 0; i < 1000 && absl::IsFailedPrecondition(other.status()); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    other = Compact(path, "");
  }
  ASSERT_OK(other.status());
  env.fail_ = false;
  ASSERT_OK(db->Get("flush").status());
  const Stats moved = db->GetStats();
  EXPECT_EQ(moved.compactions, 1u);
  // 20 rounds: 3 MB, past the ratio and 1 MiB of garbage, short of the failed file's log.
  for (int round = 0; round < 20; ++round) Churn(*db, 1000, 1);
  db.reset();  // waits for the handle's compaction
  EXPECT_GT(env.failed_.load(), 0);
  const std::vector<std::string> lines = logged.Lines();
  ASSERT_FALSE(lines.empty());
  EXPECT_TRUE(absl::StrContains(lines[0], "online compaction failed")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "no space (injected)")) << lines[0];
  options.env = nullptr;
  options.compact_ratio = 0;
  ASSERT_OK_AND_ASSIGN(db, DB::Open(path, options));
  EXPECT_GE(db->GetStats().compactions, 2u) << "the new file's commits started none";
  EXPECT_EQ(db->GetStats().keys, 1001u);
}

// Runs `work` where a compaction has copied its snapshot (HookPoint::kCompactCopied), the first
// time only, and keeps what it returned; counts the compactions that got there and the opens of
// their copies.
class AfterTheCopy : public internal::Env {
 public:
  explicit AfterTheCopy(std::function<absl::Status()> work) : work_(std::move(work)) {}
  absl::StatusOr<std::unique_ptr<internal::MappedFile>> OpenFile(
      const std::string& path, const internal::FileOpenOptions& options) override {
    if (absl::StrContains(path, ".compact-")) ++copy_opens_;
    return internal::Env::OpenFile(path, options);
  }
  void AtPoint(internal::HookPoint point) override {
    if (point != internal::HookPoint::kCompactCopied || copied_++ > 0) return;
    status_ = work_();
    done_ = true;
  }
  std::atomic<int> copied_{0};
  std::atomic<int> copy_opens_{0};
  std::atomic<bool> done_{false};
  absl::Status status_;  // once done_

 private:
  const std::function<absl::Status()> work_;
};

// Runs each piece of work at the first time the compaction reaches its hook point.
class AtPoints : public internal::Env {
 public:
  void AtPoint(internal::HookPoint point) override {
    auto it = work_.find(point);
    if (it == work_.end() || !ran_.insert(point).second) return;
    status_.Update(it->second());
  }
  std::map<internal::HookPoint, std::function<absl::Status()>> work_;
  absl::Status status_;

 private:
  std::set<internal::HookPoint> ran_;
};

// Writers that commit while a compaction catches up with them are paced, together, at a fraction
// of the speed of its last round, until it holds their lock: each commit's log bytes are charged to
// a token bucket in the lock page (LockState::pace_*), which a writer in debt sleeps off. The
// rounds thus leave little for the last one, copied under the lock (CompactResult::locked_bytes).
TEST_F(OnlineCompactTest, WritersArePacedWhileTheCompactionCatchesUp) {
  const std::string path = Path("paced.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SmallOptions()));
  Churn(*db, 2000, 3);
  // The writer's lock on the file being compacted (its handle moves on after the rename).
  internal::RwLock& lock = internal::ImplOf(*db).rwlock();
  internal::RwLock::PaceWords during{}, after_commits{}, marked{};
  uint64_t stat_during = 0;  // Stats::writers_paced_kib_per_ms then
  uint64_t round_end_ns = 0, bucket_from = 0, owed_ns = 0, log_at_round = 0, log_after = 0;
  AtPoints env;
  // 2 MiB of commits while the snapshot is copied: more than the last round is left (1 MiB).
  env.work_[internal::HookPoint::kCompactCopied] = [&] {
    absl::Status s;
    for (int i = 0; i < (2 << 20) / 128; ++i)
      s.Update(db->Put(absl::StrCat("k", i % 2000), Value(i, 4)));
    return s;
  };
  env.work_[internal::HookPoint::kCompactCaughtUp] = [&] {
    during = lock.pace();
    stat_during = db->GetStats().writers_paced_kib_per_ms;
    round_end_ns = internal::MonotonicMicros() * 1000;
    // A slower pace than any copy's, so that the commits below owe more than the time they take.
    constexpr uint32_t kKibPerMs = 1;
    lock.PaceWriters(kKibPerMs, internal::RwLock::kMaxPaceUs);
    bucket_from = std::max(during.next_ns, internal::MonotonicMicros() * 1000);
    log_at_round = log_after = db->GetStats().log_bytes;
    absl::Status s;
    for (int i = 0; i < 10; ++i) {
      if (i % 2 == 0) {
        s.Update(db->Put(absl::StrCat("k", i), Value(i, 5)));
      } else {  // a transaction's commit is charged too
        absl::StatusOr<WriteTxn> txn = db->BeginWrite();
        if (!txn.ok()) return txn.status();
        s.Update(txn->Put(absl::StrCat("k", i), Value(i, 5)));
        s.Update(txn->Put(absl::StrCat("k", i + 1000), Value(i + 1000, 5)));
        s.Update(txn->Commit());
      }
      const uint64_t log = db->GetStats().log_bytes;
      owed_ns += (log - log_after) * 1'000'000 / (kKibPerMs * 1024);
      log_after = log;
    }
    after_commits = lock.pace();
    return s;
  };
  env.work_[internal::HookPoint::kCompactMarked] = [&] {
    marked = lock.pace();
    return absl::OkStatus();
  };
  CompactOptions compact;
  compact.env = &env;
  ASSERT_OK_AND_ASSIGN(CompactResult result, Compact(path, "", compact));
  ASSERT_OK(env.status_);

  ASSERT_GT(during.kib_per_ms, 0u) << "the writers were not paced after the first round";
  EXPECT_EQ(stat_during, during.kib_per_ms);  // what `mapkv stat` shows
  EXPECT_EQ(db->GetStats().writers_paced_kib_per_ms, 0u);
  EXPECT_GT(during.until_ns, round_end_ns);
  EXPECT_LE(during.until_ns, round_end_ns + internal::RwLock::kMaxPaceUs * 1000);
  // Every commit was charged: the bucket's next free time moved on by at least what they owed.
  EXPECT_GT(owed_ns, 0u);
  EXPECT_GE(after_commits.next_ns, bucket_from + owed_ns);
  // Pacing ends once the compaction holds the writer lock.
  EXPECT_EQ(marked.kib_per_ms, 0u);
  // What was committed after the first round, and only that, was copied under the lock.
  EXPECT_EQ(result.locked_bytes, log_after - log_at_round);
  EXPECT_OK_AND_EQ(db->Get("k3"), Value(3, 5));
  EXPECT_OK(db->Verify());
}

// Pacing lasts until its deadline, which a compaction renews each round: commits after it (a
// compaction that died) are not charged. The first opener clears the words.
TEST_F(OnlineCompactTest, PacingEndsAtItsDeadline) {
  const std::string path = Path("deadline.mapkv");
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SmallOptions()));
    internal::RwLock& lock = internal::ImplOf(*db).rwlock();
    lock.PaceWriters(1, 0);  // 1 KiB a millisecond, until now
    const internal::RwLock::PaceWords before = lock.pace();
    ASSERT_OK(db->Put("k", Value(1, 1)));
    EXPECT_EQ(lock.pace().next_ns, before.next_ns);
    EXPECT_EQ(db->GetStats().writers_paced_kib_per_ms, 0u);

    lock.PaceWriters(1 << 20, internal::RwLock::kMaxPaceUs);  // 1 GiB a millisecond: no sleeps
    ASSERT_OK(db->Put("k", Value(1, 2)));
    EXPECT_GT(lock.pace().next_ns, before.next_ns);
    EXPECT_EQ(db->GetStats().writers_paced_kib_per_ms, 1u << 20);
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SmallOptions()));
  EXPECT_EQ(internal::ImplOf(*db).rwlock().pace().kib_per_ms, 0u);
  EXPECT_EQ(internal::ImplOf(*db).rwlock().pace().until_ns, 0u);
}

// A compaction started by commits copies the versions that commits made while it ran replaced,
// and so may leave its file past the ratio already; the handle then starts the next one itself,
// without waiting for a commit. Here the writes stop as soon as the first compaction copied its
// snapshot (the hook, once, rewrote every key meanwhile).
TEST_F(OnlineCompactTest, ACompactionLeftPastTheRatioIsFollowedByAnother) {
  const std::string path = Path("follow.mapkv");
  DB* writer = nullptr;
  AfterTheCopy env([&] {
    absl::Status s;
    for (int k = 0; k < 1000; ++k) s.Update(writer->Put(absl::StrCat("k", k), Value(k, 99)));
    return s;
  });
  Options options = SmallOptions();
  options.compact_ratio = 1.5;
  options.compact_min_garbage = 64 << 10;
  options.create_format_version = 4;  // reclaimed by copies, not by the cleaner
  options.env = &env;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
    writer = db.get();
    for (int round = 0; round < 100 && !env.done_.load(); ++round) {
      for (int k = 0; k < 1000 && !env.done_.load(); ++k) {
        ASSERT_OK(db->Put(absl::StrCat("k", k), Value(k, round)));
      }
    }
    ASSERT_TRUE(env.done_.load()) << "no compaction started";
  }  // waits for the handle's compactions
  ASSERT_OK(env.status_);
  options.env = nullptr;
  options.compact_ratio = 0;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  const Stats st = db->GetStats();
  EXPECT_GE(st.compactions, 2u);
  const uint64_t kept = st.live_bytes + st.index_capacity * 16 + 64;
  EXPECT_LE(st.log_bytes - internal::kHeaderSize, kept + (64 << 10))
      << "live " << st.live_bytes << ", garbage " << st.garbage_bytes;
  EXPECT_OK_AND_EQ(db->Get("k999"), Value(999, 99));
  EXPECT_OK(db->Verify());
}

// A compaction's own handles never start one. Here the commits it copies after its snapshot
// overwrite 70 MiB, past the default compact_min_garbage: were the copy's handle to start a
// compaction of the copy, that one would open the copy a second time (and wait for its exclusive
// open until lock_timeout, and fail), and the compaction would wait for it before renaming.
TEST_F(OnlineCompactTest, ACompactionNeverCompactsItsOwnCopy) {
  const std::string path = Path("copy.mapkv");
  Options options = SmallOptions();
  options.compact_ratio = 0;  // only the compaction below
  Logged logged;
  options.info_log = logged.Sink();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  Churn(*db, 200, 2);
  AfterTheCopy env([&] {
    absl::Status s;
    const std::string value(1000, 'w');
    for (int i = 0; i < 70 * 1024; ++i) s.Update(db->Put(absl::StrCat("k", i % 100), value));
    return s;
  });
  CompactOptions compact;
  compact.env = &env;
  compact.lock_timeout = std::chrono::seconds(2);
  ASSERT_OK(Compact(path, "", compact).status());
  ASSERT_OK(env.status_);
  EXPECT_EQ(env.copy_opens_.load(), 1) << "the copy was opened by another than the compaction";
  for (const std::string& line : logged.Lines()) ADD_FAILURE() << line;
  EXPECT_OK_AND_EQ(db->Get("k5"), std::string(1000, 'w'));
  EXPECT_OK_AND_EQ(db->Get("k150"), Value(150, 1));
}

// Most keys deleted while the compaction copied them: catching up would copy the deletes too and
// leave a file of mostly garbage, so the compaction starts over from a new snapshot, once.
TEST_F(OnlineCompactTest, ACopyThatTheDeletesOutgrewStartsOver) {
  const std::string path = Path("deletes.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SmallOptions()));
  Churn(*db, 10000, 2);
  AfterTheCopy env([&] {
    absl::Status s;
    for (int k = 0; k < 9000; ++k) s.Update(db->Delete(absl::StrCat("k", k)));
    return s;
  });
  CompactOptions compact;
  compact.env = &env;
  ASSERT_OK_AND_ASSIGN(CompactResult result, Compact(path, "", compact));
  ASSERT_OK(env.status_);
  EXPECT_EQ(env.copied_.load(), 2) << "the first copy was not given up";
  EXPECT_EQ(result.keys, 1000u);
  const Stats st = db->GetStats();
  EXPECT_EQ(st.keys, 1000u);
  EXPECT_EQ(st.compactions, 1u);
  // The second copy holds the 1,000 keys left and an index for them, not 10,000 deletes.
  EXPECT_LT(st.log_bytes - internal::kHeaderSize, 2 * st.live_bytes + 64 * 1024)
      << "live " << st.live_bytes << ", garbage " << st.garbage_bytes;
  EXPECT_TRUE(TempFilesIn(dir_.path()).empty());
  EXPECT_OK_AND_EQ(db->Get("k9999"), Value(9999, 1));
  EXPECT_STATUS(db->Get("k0"), absl::StatusCode::kNotFound);
  EXPECT_OK(db->Verify());
}

// Commits after the snapshot that change a few keys many times: the catch-up copies each key's
// last value (what it keeps of the others goes as it reads on, so that it holds about one record
// per key, not one per commit).
TEST_F(OnlineCompactTest, TheCatchUpCopiesEachKeysLastVersion) {
  const std::string path = Path("hot.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SmallOptions()));
  Churn(*db, 1000, 1);
  AfterTheCopy env([&] {
    absl::Status s;
    for (int i = 0; i < 20000; ++i) s.Update(db->Put(absl::StrCat("k", i % 50), Value(i, 0)));
    return s.ok() ? db->Delete("k7") : s;
  });
  CompactOptions compact;
  compact.env = &env;
  ASSERT_OK_AND_ASSIGN(CompactResult result, Compact(path, "", compact));
  ASSERT_OK(env.status_);
  EXPECT_EQ(result.keys, 999u);
  for (int k = 0; k < 50; ++k) {
    if (k == 7) {
      EXPECT_STATUS(db->Get("k7"), absl::StatusCode::kNotFound);
      continue;
    }
    EXPECT_OK_AND_EQ(db->Get(absl::StrCat("k", k)), Value(19950 + k, 0)) << k;
  }
  EXPECT_OK_AND_EQ(db->Get("k999"), Value(999, 0));
  EXPECT_OK(db->Verify());
}

// Without a ratio, nothing compacts by itself.
TEST_F(OnlineCompactTest, NoRatioNoCompaction) {
  const std::string path = Path("manual.mapkv");
  Options options = SmallOptions();
  options.compact_ratio = 0;
  options.compact_min_garbage = 1 << 20;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  const uint64_t inode = Inode(path);
  for (int round = 0; round < 30; ++round) Churn(*db, 1000, 1);
  db.reset();
  EXPECT_EQ(Inode(path), inode);
}

// A cache is compacted alone, as before: its handles do not follow a mark.
TEST_F(OnlineCompactTest, ACacheStillNeedsItAlone) {
  const std::string path = Path("cache.mapkv");
  Options options = SmallOptions();
  options.kind = FileKind::kCache;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> cache, DB::Open(path, options));
  const absl::StatusOr<CompactResult> refused = Compact(path, "");
  EXPECT_STATUS(refused, absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "open by 1 other handle"))
      << refused.status();
}

}  // namespace
}  // namespace mapkv
