// Snapshots: a ReadTxn of a format version 4 database sees the database as of BeginRead(), whatever
// commits follow (from another process, another thread, its own thread, inside its own ForEach),
// and holds no lock meanwhile, so none of those commits waits for it. Each handle publishes its
// oldest open snapshot in its process slot (DB::Snapshots(), Stats::snapshots); a holder's pin
// goes with its slot when it dies. A format version 1 file keeps the contract it had: a ReadTxn
// holds the shared lock and commits wait for it. Verify() reads as of a snapshot beside a writer.
//
// Every test is bounded by its work, never by time: a committer makes a fixed number of commits,
// and the reader beside it reads until the committer is done (at least once with half the commits
// made, when the committer stops for it). Every handle has a 2 s lock_timeout, so that a commit
// that waited for a snapshot fails instead of hanging.
//
// Knob: MAPKV_SNAPSHOT_COMMITS commits of the committer process and of the writer thread (default
// 2000).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "test_util.h"

namespace mapkv {
namespace {

using ::absl::StatusCode;
using ::mapkv::test::ChildPipe;
using ::mapkv::test::kKilledStatus;
using ::mapkv::test::Pipe;
using ::mapkv::test::Rng;
using ::mapkv::test::RunChild;
using ::mapkv::test::StartChild;
using ::mapkv::test::TempDir;
using ::mapkv::test::Uniform;
using ::mapkv::test::WaitChild;

using Model = std::map<std::string, std::string>;

// A small file and index, so that both grow under the tests' commits.
Options SnapOptions() {
  Options options;
  options.initial_file_size = 1 << 20;
  options.initial_index_slots = 64;
  options.max_file_size = 64ull << 20;
  options.lock_timeout = std::chrono::seconds(2);
  return options;
}

uint64_t CommitCount() {
  return static_cast<uint64_t>(test::EnvInt("MAPKV_SNAPSHOT_COMMITS", 2000));
}

std::string Key(int i) { return absl::StrCat("key/", i); }

// `n` keys with values of 0 to 700 bytes.
Model InitialModel(int n) {
  Model model;
  for (int i = 0; i < n; ++i) {
    model[Key(i)] = test::StampedValue(Key(i), 0, static_cast<size_t>(i) * 37 % 701);
  }
  return model;
}

// Writes `model` in one transaction.
absl::Status Fill(DB* db, const Model& model) {
  absl::StatusOr<WriteTxn> txn = db->BeginWrite();
  if (!txn.ok()) return txn.status();
  for (const auto& [key, value] : model) {
    if (absl::Status s = txn->Put(key, value); !s.ok()) return s;
  }
  return txn->Commit();
}

std::string Show(std::string_view data) { return test::Describe(data); }

// What differs between `txn` and `expected`, read every way a ReadTxn reads: Count, Get of each
// key, MultiGet of them all (and of `absent`) at once, and ForEach (every key once, nothing else);
// each key of `absent` must be NotFound. Empty when they agree.
std::string SnapshotMismatch(const ReadTxn& txn, const Model& expected,
                             const std::vector<std::string>& absent) {
  if (txn.Count() != expected.size()) {
    return absl::StrCat("Count ", txn.Count(), ", expected ", expected.size());
  }
  for (const auto& [key, value] : expected) {
    absl::StatusOr<std::string_view> got = txn.Get(key);
    if (!got.ok()) return absl::StrCat("Get(", key, "): ", got.status().ToString());
    if (*got != value) return absl::StrCat("Get(", key, ") = ", Show(*got), ", not ", Show(value));
  }
  for (const std::string& key : absent) {
    absl::StatusOr<std::string_view> got = txn.Get(key);
    if (!absl::IsNotFound(got.status())) {
      return absl::StrCat("Get(", key,
                          ") of an absent key: ", got.ok() ? Show(*got) : got.status().ToString());
    }
  }
  std::vector<std::string_view> keys;
  for (const auto& [key, value] : expected) keys.push_back(key);
  for (const std::string& key : absent) keys.push_back(key);
  std::vector<absl::StatusOr<std::string_view>> values(keys.size());
  txn.MultiGet(keys, absl::MakeSpan(values));
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string key(keys[i]);
    if (i < expected.size()) {
      if (!values[i].ok())
        return absl::StrCat("MultiGet ", key, ": ", values[i].status().ToString());
      if (*values[i] != expected.at(key)) {
        return absl::StrCat("MultiGet ", key, " = ", Show(*values[i]), ", not ",
                            Show(expected.at(key)));
      }
    } else if (!absl::IsNotFound(values[i].status())) {
      return absl::StrCat("MultiGet ", key, " of an absent key: ",
                          values[i].ok() ? Show(*values[i]) : values[i].status().ToString());
    }
  }
  std::string problem;
  std::set<std::string> seen;
  absl::Status s = txn.ForEach([&](std::string_view key, std::string_view value) {
    const std::string k(key);
    auto it = expected.find(k);
    if (it == expected.end()) {
      problem = absl::StrCat("ForEach visits ", Show(key), ", not in the snapshot");
    } else if (!seen.insert(k).second) {
      problem = absl::StrCat("ForEach visits ", k, " twice");
    } else if (value != it->second) {
      problem = absl::StrCat("ForEach: ", k, " = ", Show(value), ", not ", Show(it->second));
    }
    return problem.empty();
  });
  if (!problem.empty()) return problem;
  if (!s.ok()) return absl::StrCat("ForEach: ", s.ToString());
  if (seen.size() != expected.size()) {
    return absl::StrCat("ForEach visits ", seen.size(), " keys of ", expected.size());
  }
  return "";
}

// One write of a commit: a put, or (no value) a delete.
struct Write {
  std::string key;
  std::optional<std::string> value;
};

// The committer's workload: commit n (1, 2, ...) makes one to three writes, chosen from what is
// live after commit n - 1: updates (40%), inserts of new keys ("new/...", 30%), deletes (20%), and
// reinserts of deleted keys (10%), so that the database grows. The checker replays it to know
// what the committer did.
class Workload {
 public:
  explicit Workload(Model initial) : live_(std::move(initial)) {}

  std::vector<Write> Next(uint64_t n) {
    Rng rng(test::MixSeed("snapshot workload", n));
    std::vector<Write> writes(Uniform(rng, 1, 3));
    for (size_t j = 0; j < writes.size(); ++j) {
      Write& w = writes[j];
      const uint64_t kind = Uniform(rng, 0, 9);
      const size_t size = Uniform(rng, 0, 1200);
      if (kind < 2 && live_.size() > kMinLive) {
        w.key = Pick(rng);
        deleted_.push_back(w.key);
      } else if (kind == 2 && !deleted_.empty()) {
        const size_t i = Uniform(rng, 0, deleted_.size() - 1);
        w.key = deleted_[i];
        deleted_.erase(deleted_.begin() + static_cast<std::ptrdiff_t>(i));
        w.value = test::StampedValue(w.key, n, size);
      } else if (kind < 6 || live_.empty()) {
        w.key = absl::StrCat("new/", n, "/", j);
        w.value = test::StampedValue(w.key, n, size);
      } else {
        w.key = Pick(rng);
        w.value = test::StampedValue(w.key, n, size);
      }
      if (w.value) {
        live_[w.key] = *w.value;
      } else {
        live_.erase(w.key);
      }
    }
    return writes;
  }

  const Model& live() const { return live_; }

 private:
  static constexpr size_t kMinLive = 20;

  std::string Pick(Rng& rng) const {
    auto it = live_.begin();
    std::advance(it, static_cast<std::ptrdiff_t>(Uniform(rng, 0, live_.size() - 1)));
    return it->first;
  }

  Model live_;
  std::vector<std::string> deleted_;  // may hold a key twice (deleted, reinserted, deleted)
};

// What the committer's `commits` commits over InitialModel(initial) leave, and every key they
// insert that the initial model lacks.
struct Replayed {
  Model final_state;
  std::vector<std::string> inserted;
  size_t initial_keys_deleted = 0;
  size_t initial_keys_updated = 0;
};
Replayed Replay(int initial, uint64_t commits) {
  const Model start = InitialModel(initial);
  Workload workload(start);
  Replayed out;
  std::set<std::string> inserted, deleted, updated;
  for (uint64_t n = 1; n <= commits; ++n) {
    for (const Write& w : workload.Next(n)) {
      if (!start.count(w.key)) {
        inserted.insert(w.key);
      } else if (w.value) {
        updated.insert(w.key);
      } else {
        deleted.insert(w.key);
      }
    }
  }
  out.final_state = workload.live();
  out.inserted.assign(inserted.begin(), inserted.end());
  out.initial_keys_deleted = deleted.size();
  out.initial_keys_updated = updated.size();
  return out;
}

// The committer: opens the database (a 2 s lock_timeout) and makes `commits` commits of the
// Workload over InitialModel(initial), as fast as it can: one write through DB::Put or
// DB::Delete, several through a WriteTxn. Each must succeed: one that waited for a reader's
// snapshot would time out. With `checkpoint_every` > 0, checkpoints after every that many
// commits. Halfway it writes a byte on `halfway` and waits for one on `resume`, so that the
// parent reads at least once with half the commits made and half to come. Arguments: path,
// initial, commits, checkpoint_every, the write end of `halfway`, the read end of `resume`.
MAPKV_CHILD(CommitterChild) {
  const std::string& path = args.at(0);
  const int initial = args.Int<int>(1);
  const uint64_t commits = args.Int<uint64_t>(2);
  const uint64_t checkpoint_every = args.Int<uint64_t>(3);
  ChildPipe halfway = args.PipeEnd(4);
  ChildPipe resume = args.PipeEnd(5);
  auto opened = DB::Open(path, SnapOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  Workload workload(InitialModel(initial));
  for (uint64_t n = 1; n <= commits; ++n) {
    if (n == commits / 2) {
      CHILD_CHECK(halfway.Write("h"));
      CHILD_CHECK(resume.WaitByte(std::chrono::seconds(120)), "the parent never answered");
    }
    const std::vector<Write> writes = workload.Next(n);
    if (writes.size() == 1) {
      const Write& w = writes[0];
      CHILD_CHECK_OK(w.value ? db->Put(w.key, *w.value) : db->Delete(w.key), "commit ", n);
    } else {
      auto txn = db->BeginWrite();
      CHILD_CHECK_OK(txn, "commit ", n);
      for (const Write& w : writes) {
        CHILD_CHECK_OK(w.value ? txn->Put(w.key, *w.value) : txn->Delete(w.key), "commit ", n);
      }
      CHILD_CHECK_OK(txn->Commit(), "commit ", n);
    }
    if (checkpoint_every != 0 && n % checkpoint_every == 0) {
      CHILD_CHECK_OK(db->Checkpoint(), "after commit ", n);
    }
  }
  return 0;
}

// Runs a CommitterChild on `path` and calls check() over and over until it is done, once more
// while it waits halfway. Stops at the first failure. Returns how many checks ran.
int CheckBesideCommitter(const std::string& path, int initial, uint64_t commits,
                         uint64_t checkpoint_every, const std::function<void()>& check) {
  Pipe halfway, resume;
  const int pid = StartChild("CommitterChild", {path, initial, commits, checkpoint_every,
                                                halfway.WriteEndArg(), resume.ReadEndArg()});
  halfway.CloseWrite();
  resume.CloseRead();
  int checks = 0;
  bool halfway_seen = false;
  for (;;) {
    check();
    ++checks;
    if (::testing::Test::HasFailure()) break;
    if (!halfway.Readable()) continue;
    if (!halfway.WaitByte()) break;  // end of file: the committer is done
    EXPECT_FALSE(halfway_seen) << "the committer stopped halfway twice";
    halfway_seen = true;
    check();  // with exactly half the commits made
    ++checks;
    EXPECT_TRUE(resume.Write("c"));
  }
  resume.CloseWrite();
  const int status = WaitChild(pid, std::chrono::seconds(300));
  EXPECT_EQ(status, 0) << "committer: " << test::ExitStatusToString(status);
  EXPECT_TRUE(halfway_seen || ::testing::Test::HasFailure()) << "the committer never got halfway";
  return checks;
}

constexpr int kInitialKeys = 200;

// A snapshot of this process stays exactly what it was at begin (values, count, keys deleted
// since still there, keys inserted since absent) while another process makes thousands of
// commits, none of which waits for it; afterwards a new snapshot sees all of them.
TEST(SnapshotTest, SnapshotIsStableWhileAnotherProcessCommits) {
  TempDir dir;
  const std::string path = dir.File("snap.mapkv");
  const uint64_t commits = CommitCount();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SnapOptions()));
  const Model initial = InitialModel(kInitialKeys);
  ASSERT_OK(Fill(db.get(), initial));
  const Replayed replayed = Replay(kInitialKeys, commits);
  // The premise: the committer changes what the snapshot holds, every way.
  ASSERT_GT(replayed.initial_keys_deleted, 20u);
  ASSERT_GT(replayed.initial_keys_updated, 20u);
  ASSERT_GT(replayed.inserted.size(), 100u);
  const Stats before = db->GetStats();

  ASSERT_OK_AND_ASSIGN(ReadTxn snap, db->BeginRead());
  ASSERT_EQ(SnapshotMismatch(snap, initial, replayed.inserted), "");
  const int checks = CheckBesideCommitter(path, kInitialKeys, commits, 0, [&] {
    EXPECT_EQ(SnapshotMismatch(snap, initial, replayed.inserted), "") << "during the commits";
  });
  EXPECT_EQ(SnapshotMismatch(snap, initial, replayed.inserted), "") << "after the commits";

  ASSERT_OK_AND_ASSIGN(ReadTxn now, db->BeginRead());
  std::vector<std::string> gone;
  for (const auto& [key, value] : initial) {
    if (!replayed.final_state.count(key)) gone.push_back(key);
  }
  for (const std::string& key : replayed.inserted) {
    if (!replayed.final_state.count(key)) gone.push_back(key);
  }
  EXPECT_EQ(SnapshotMismatch(now, replayed.final_state, gone), "") << "a snapshot begun after";
  const Stats after = db->GetStats();
  EXPECT_GE(after.commits, before.commits + commits);
  if (commits >= 2000) {  // the default: the file and the index grow under the snapshot
    EXPECT_GT(after.file_size, before.file_size) << "the file never grew under the snapshot";
    EXPECT_GT(after.index_capacity, before.index_capacity) << "the index never grew";
  }
  std::printf("%llu commits beside a snapshot, read %d times while they ran\n",
              static_cast<unsigned long long>(commits), checks);
}

// This thread's commits beside its own ReadTxn (DB::Put, DB::Delete, a WriteTxn) go through;
// the ReadTxn keeps seeing the old state, and views it returned stay valid while the file and
// the index grow; a ReadTxn begun after sees the new state.
TEST(SnapshotTest, CommitsOfTheSameThreadGoThroughBesideItsReadTxn) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(dir.File("same.mapkv"), SnapOptions()));
  const Model old_state = {{"a", "1"}, {"b", "2"}, {"c", "3"}};
  ASSERT_OK(Fill(db.get(), old_state));
  ASSERT_OK_AND_ASSIGN(ReadTxn old, db->BeginRead());
  ASSERT_OK_AND_ASSIGN(const std::string_view a_view, old.Get("a"));
  ASSERT_OK_AND_ASSIGN(const std::string_view b_view, old.Get("b"));

  ASSERT_OK(db->Put("a", "one"));
  ASSERT_OK(db->Delete("b"));
  ASSERT_OK(db->Put("d", "4"));
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    ASSERT_OK(txn.Put("c", "three"));
    ASSERT_OK(txn.Put("e", "5"));
    ASSERT_OK(txn.Delete("d"));
    ASSERT_OK(txn.Put("b", "two again"));
    ASSERT_OK(txn.Commit());
  }
  Model new_state = {{"a", "one"}, {"b", "two again"}, {"c", "three"}, {"e", "5"}};
  EXPECT_EQ(SnapshotMismatch(old, old_state, {"d", "e"}), "");
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn fresh, db->BeginRead());
    EXPECT_EQ(SnapshotMismatch(fresh, new_state, {"d"}), "");
  }
  EXPECT_OK_AND_EQ(db->Get("a"), "one");

  // A snapshot begun while this thread holds a WriteTxn: it sees neither the writes in progress
  // nor, once committed, their commit.
  {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    ASSERT_OK(txn.Put("f", "6"));
    ASSERT_OK_AND_ASSIGN(ReadTxn during, db->BeginRead());
    ASSERT_OK(txn.Delete("e"));
    EXPECT_EQ(SnapshotMismatch(during, new_state, {"d", "f"}), "");
    ASSERT_OK(txn.Commit());
    EXPECT_EQ(SnapshotMismatch(during, new_state, {"d", "f"}), "");
  }
  new_state.erase("e");
  new_state["f"] = "6";
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn fresh, db->BeginRead());
    EXPECT_EQ(SnapshotMismatch(fresh, new_state, {"d", "e"}), "");
  }

  // Enough more to grow the file and the index several times over, overwriting and deleting the
  // keys whose views the old ReadTxn handed out.
  const Stats before = db->GetStats();
  Model later = new_state;
  for (int i = 0; i < 600; ++i) {
    const std::string key = Key(i);
    later[key] = test::StampedValue(key, 1, 4000);
    ASSERT_OK(db->Put(key, later[key]));
    ASSERT_OK(db->Put("a", absl::StrCat("a", i)));
    later["a"] = absl::StrCat("a", i);
    if (i % 2 == 0) {
      ASSERT_OK(db->Delete("b"));
      later.erase("b");
    } else {
      ASSERT_OK(db->Put("b", absl::StrCat("b", i)));
      later["b"] = absl::StrCat("b", i);
    }
  }
  const Stats after = db->GetStats();
  ASSERT_GT(after.file_size, before.file_size);
  ASSERT_GT(after.index_capacity, before.index_capacity);
  EXPECT_EQ(a_view, "1");
  EXPECT_EQ(b_view, "2");
  EXPECT_EQ(SnapshotMismatch(old, old_state, {"d", "e", Key(0), Key(599)}), "");
  ASSERT_OK_AND_ASSIGN(ReadTxn fresh, db->BeginRead());
  EXPECT_EQ(SnapshotMismatch(fresh, later, {"d"}), "");
}

// Deleting every key from inside the snapshot's ForEach (DB::Delete and WriteTxns, through the
// same handle) still visits each key exactly once; the database is empty afterwards, and the
// snapshot still holds them all.
TEST(SnapshotTest, DeletingEveryKeyInsideForEachVisitsEachOnce) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(dir.File("del.mapkv"), SnapOptions()));
  const Model initial = InitialModel(300);
  ASSERT_OK(Fill(db.get(), initial));
  ASSERT_OK_AND_ASSIGN(ReadTxn snap, db->BeginRead());
  std::map<std::string, int> visits;
  int deletes = 0;
  ASSERT_OK(snap.ForEach([&](std::string_view key, std::string_view value) {
    const std::string k(key);
    ++visits[k];
    EXPECT_TRUE(initial.count(k) && initial.at(k) == value) << Show(key) << " = " << Show(value);
    if (deletes++ % 2 == 0) {
      EXPECT_OK(db->Delete(key));
    } else {
      absl::StatusOr<WriteTxn> txn = db->BeginWrite();
      EXPECT_OK(txn);
      if (!txn.ok()) return false;
      EXPECT_OK(txn->Delete(key));
      EXPECT_OK(txn->Commit());
    }
    return !::testing::Test::HasFailure();
  }));
  EXPECT_EQ(visits.size(), initial.size());
  for (const auto& [key, n] : visits) EXPECT_EQ(n, 1) << key << " visited " << n << " times";
  EXPECT_EQ(SnapshotMismatch(snap, initial, {}), "") << "after the deletes";

  ASSERT_OK_AND_ASSIGN(ReadTxn now, db->BeginRead());
  EXPECT_EQ(now.Count(), 0u);
  int left = 0;
  ASSERT_OK(now.ForEach([&](std::string_view, std::string_view) { return ++left, true; }));
  EXPECT_EQ(left, 0);
  for (const auto& [key, value] : initial) {
    EXPECT_STATUS(db->Get(key), StatusCode::kNotFound) << key;
  }
  EXPECT_EQ(db->GetStats().keys, 0u);
  EXPECT_OK(db->Verify());
}

// Overwrites every key it visits, deletes and reinserts the one after (not yet visited) and
// inserts `inserts_per_visit` new keys, all through `db` from inside the snapshot's ForEach.
// Checks that the snapshot visits exactly `initial`, each key once, with its old value, and
// returns the index capacities seen at each visit.
std::vector<uint64_t> RewriteInsideForEach(DB* db, const ReadTxn& snap, const Model& initial,
                                           int inserts_per_visit, Model* now) {
  std::map<std::string, int> visits;
  std::vector<uint64_t> capacities;
  std::vector<std::string> keys;
  for (const auto& [key, value] : initial) keys.push_back(key);
  int visit = 0;
  *now = initial;
  EXPECT_OK(snap.ForEach([&](std::string_view key, std::string_view value) {
    const std::string k(key);
    ++visits[k];
    EXPECT_TRUE(initial.count(k) && initial.at(k) == value) << Show(key) << " = " << Show(value);
    capacities.push_back(db->GetStats().index_capacity);
    // Each write must go through; the first that fails ends the iteration.
    auto put = [&](const std::string& key, std::string value) {
      (*now)[key] = value;
      const absl::Status s = db->Put(key, value);
      EXPECT_OK(s) << "visit " << visit;
      return s.ok();
    };
    if (!put(k, absl::StrCat("overwritten ", visit))) return false;
    // The next key in key order: in index order, visited already or still to come.
    const std::string& other = keys[(std::find(keys.begin(), keys.end(), k) - keys.begin() + 1) %
                                    static_cast<std::ptrdiff_t>(keys.size())];
    const absl::Status deleted = db->Delete(other);
    EXPECT_OK(deleted) << "visit " << visit;
    if (!deleted.ok() || !put(other, absl::StrCat("reinserted ", visit))) return false;
    for (int j = 0; j < inserts_per_visit; ++j) {
      const std::string fresh = absl::StrCat("fresh/", visit, "/", j);
      if (!put(fresh, fresh)) return false;
    }
    ++visit;
    return !::testing::Test::HasFailure();
  }));
  EXPECT_EQ(visits.size(), initial.size()) << "keys skipped";
  for (const auto& [key, n] : visits) EXPECT_EQ(n, 1) << key << " visited " << n << " times";
  EXPECT_EQ(SnapshotMismatch(snap, initial, {"fresh/0/0"}), "") << "after the ForEach";
  return capacities;
}

// Overwrites, deletes and reinserts, and a few inserts, inside the snapshot's ForEach: no key
// visited twice, none skipped, each with its value at begin.
TEST(SnapshotTest, OverwritingAndReinsertingInsideForEachVisitsEachOnce) {
  TempDir dir;
  Options options = SnapOptions();
  options.initial_index_slots = 1024;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(dir.File("over.mapkv"), options));
  const Model initial = InitialModel(200);
  ASSERT_OK(Fill(db.get(), initial));
  ASSERT_OK_AND_ASSIGN(ReadTxn snap, db->BeginRead());
  Model now;
  const std::vector<uint64_t> capacities = RewriteInsideForEach(db.get(), snap, initial, 1, &now);
  ASSERT_FALSE(capacities.empty());
  EXPECT_EQ(capacities.front(), capacities.back())
      << "the index grew: IndexGrowthInsideForEachVisitsEachOnce is that case";
  ASSERT_OK_AND_ASSIGN(ReadTxn fresh, db->BeginRead());
  EXPECT_EQ(SnapshotMismatch(fresh, now, {}), "");
  EXPECT_OK(db->Verify());
}

// As OverwritingAndReinsertingInsideForEachVisitsEachOnce, with enough inserts inside the ForEach
// that the index grows (rehashes into a new table) after the first visit, with every other visit
// still to come.
TEST(SnapshotTest, IndexGrowthInsideForEachVisitsEachOnce) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(dir.File("grow.mapkv"), SnapOptions()));
  const Model initial = InitialModel(40);  // 64 slots: grows past 48 used
  ASSERT_OK(Fill(db.get(), initial));
  ASSERT_EQ(db->GetStats().index_capacity, 64u);
  ASSERT_OK_AND_ASSIGN(ReadTxn snap, db->BeginRead());
  Model now;
  const std::vector<uint64_t> capacities = RewriteInsideForEach(db.get(), snap, initial, 25, &now);
  ASSERT_EQ(capacities.size(), initial.size());
  EXPECT_EQ(capacities[0], 64u);
  EXPECT_GT(capacities[1], 64u) << "the index did not grow at the first visit";
  EXPECT_GT(capacities.back(), capacities[1]) << "the index grew only once";
  ASSERT_OK_AND_ASSIGN(ReadTxn fresh, db->BeginRead());
  EXPECT_EQ(SnapshotMismatch(fresh, now, {}), "");
  EXPECT_OK(db->Verify());
}

// A holder: opens the database, begins `count` snapshots, says so with a byte on `ready`, and
// holds them until end of file on `release` (or until it is killed). Arguments: path, count, the
// write end of `ready`, the read end of `release`.
MAPKV_CHILD(SnapshotHolderChild) {
  const std::string& path = args.at(0);
  const int count = args.Int<int>(1);
  ChildPipe ready = args.PipeEnd(2);
  ChildPipe release = args.PipeEnd(3);
  auto opened = DB::Open(path, SnapOptions());
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  std::vector<ReadTxn> snapshots;
  for (int i = 0; i < count; ++i) {
    auto txn = db->BeginRead();
    CHILD_CHECK_OK(txn);
    snapshots.push_back(std::move(*txn));
  }
  CHILD_CHECK(ready.Write("r"));
  (void)release.ReadAll(std::chrono::seconds(300));
  return 0;
}

// The entries of `infos` of process `pid`.
std::vector<SnapshotInfo> Of(const std::vector<SnapshotInfo>& infos, uint32_t pid) {
  std::vector<SnapshotInfo> out;
  for (const SnapshotInfo& info : infos) {
    if (info.pid == pid) out.push_back(info);
  }
  return out;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// DB::Snapshots() lists each handle that holds snapshots (this process's two handles apart,
// and another process's) with its pid, count and oldest snapshot, nothing once they end, and
// nothing of a holder that was killed. Stats::snapshots sums them.
TEST(SnapshotTest, SnapshotsListsEachHolderUntilItEndsOrDies) {
  TempDir dir;
  const std::string path = dir.File("list.mapkv");
  const uint32_t self = tools::CurrentPid();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SnapOptions()));
  ASSERT_OK(Fill(db.get(), InitialModel(10)));
  EXPECT_TRUE(db->Snapshots().empty());
  EXPECT_EQ(db->GetStats().snapshots, 0u);

  const uint64_t tail1 = db->GetStats().log_bytes;
  const int64_t before_ms = NowMs();
  std::optional<ReadTxn> first;
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    first.emplace(std::move(txn));
  }
  const int64_t after_ms = NowMs();
  std::vector<SnapshotInfo> infos = db->Snapshots();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].pid, self);
  EXPECT_EQ(infos[0].snapshots, 1u);
  EXPECT_EQ(infos[0].tail, tail1);
  EXPECT_EQ(infos[0].pinned_bytes, 0u);
  // The same clock, read around BeginRead (a second of slack for a clock that steps).
  EXPECT_GE(infos[0].since_unix_ms, before_ms - 1000);
  EXPECT_LE(infos[0].since_unix_ms, after_ms + 1000);

  ASSERT_OK(db->Put("x", "1"));
  const uint64_t tail2 = db->GetStats().log_bytes;
  ASSERT_OK_AND_ASSIGN(ReadTxn second, db->BeginRead());
  infos = db->Snapshots();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].snapshots, 2u);
  EXPECT_EQ(infos[0].tail, tail1) << "not the oldest snapshot's";
  EXPECT_EQ(infos[0].pinned_bytes, tail2 - tail1);
  EXPECT_EQ(db->GetStats().snapshots, 2u);

  // Another handle of this process is another holder.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db2, DB::Open(path, SnapOptions()));
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn other, db2->BeginRead());
    infos = db->Snapshots();
    ASSERT_EQ(Of(infos, self).size(), 2u);
    EXPECT_EQ(db2->GetStats().snapshots, 3u);
  }
  EXPECT_EQ(db->Snapshots().size(), 1u);

  // The oldest ends: the next oldest is published.
  first.reset();
  infos = db->Snapshots();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].snapshots, 1u);
  EXPECT_EQ(infos[0].tail, tail2);
  { ReadTxn ended = std::move(second); }
  EXPECT_TRUE(db->Snapshots().empty());
  EXPECT_EQ(db->GetStats().snapshots, 0u);
  EXPECT_EQ(db->GetStats().snapshot_pinned_bytes, 0u);

  // Another process's snapshots, listed under its pid until it is killed.
  Pipe ready, release;
  const int pid =
      StartChild("SnapshotHolderChild", {path, 3, ready.WriteEndArg(), release.ReadEndArg()});
  ASSERT_GT(pid, 0);
  ready.CloseWrite();
  release.CloseRead();
  ASSERT_TRUE(ready.WaitByte()) << "the holder failed";
  ASSERT_OK(db->Put("y", "2"));
  infos = db->Snapshots();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].pid, static_cast<uint32_t>(pid));
  EXPECT_EQ(infos[0].snapshots, 3u);
  EXPECT_GT(infos[0].pinned_bytes, 0u);
  const Stats with_child = db->GetStats();
  EXPECT_EQ(with_child.snapshots, 3u);
  EXPECT_EQ(with_child.snapshot_pinned_bytes, infos[0].pinned_bytes);
  EXPECT_EQ(test::KillChild(pid), kKilledStatus);
  EXPECT_TRUE(Of(db->Snapshots(), static_cast<uint32_t>(pid)).empty())
      << "a killed holder's snapshots are still listed";
  EXPECT_TRUE(db->Snapshots().empty());
  EXPECT_EQ(db->GetStats().snapshots, 0u);
  EXPECT_EQ(db->GetStats().snapshot_pinned_bytes, 0u);
  // Its slot stays reusable: the next holder is listed, and ends cleanly.
  Pipe ready2, release2;
  const int pid2 =
      StartChild("SnapshotHolderChild", {path, 1, ready2.WriteEndArg(), release2.ReadEndArg()});
  ready2.CloseWrite();
  release2.CloseRead();
  ASSERT_TRUE(ready2.WaitByte()) << "the second holder failed";
  EXPECT_EQ(Of(db->Snapshots(), static_cast<uint32_t>(pid2)).size(), 1u);
  release2.CloseWrite();
  const int status = WaitChild(pid2);
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
  EXPECT_TRUE(db->Snapshots().empty());
}

// A handle opened read-only (by a process that may write the file) pins and lists its snapshots
// as any handle does, and they stay as they were while another handle commits.
TEST(SnapshotTest, ReadOnlyHandleSnapshotsArePinnedToo) {
  TempDir dir;
  const std::string path = dir.File("ro.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SnapOptions()));
  const Model initial = InitialModel(50);
  ASSERT_OK(Fill(db.get(), initial));
  Options read_only = SnapOptions();
  read_only.read_only = true;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> ro, DB::Open(path, read_only));
  ASSERT_OK_AND_ASSIGN(ReadTxn snap, ro->BeginRead());
  const std::vector<SnapshotInfo> infos = db->Snapshots();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].pid, tools::CurrentPid());
  for (int i = 0; i < 50; i += 2) {
    ASSERT_OK(db->Delete(Key(i)));
    ASSERT_OK(db->Put(Key(i + 1), "changed"));
    ASSERT_OK(db->Put(Key(100 + i), "new"));
  }
  EXPECT_EQ(SnapshotMismatch(snap, initial, {Key(100)}), "");
  EXPECT_STATUS(ro->Put("x", "1"), StatusCode::kPermissionDenied);
  EXPECT_GT(ro->GetStats().snapshot_pinned_bytes, 0u);
}

// A snapshot's pinned bytes are the log bytes committed since it began: they grow with every
// commit after it, in SnapshotInfo and in Stats alike.
TEST(SnapshotTest, PinnedBytesGrowWithTheCommitsAfterTheSnapshot) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(dir.File("pin.mapkv"), SnapOptions()));
  ASSERT_OK(Fill(db.get(), InitialModel(10)));
  const uint64_t tail = db->GetStats().log_bytes;
  ASSERT_OK_AND_ASSIGN(ReadTxn snap, db->BeginRead());
  uint64_t last = 0;
  uint64_t value_bytes = 0;
  for (int i = 0; i < 50; ++i) {
    if (i % 3 == 2) {
      ASSERT_OK(db->Delete(Key(i % 10)));
    } else {
      const std::string value(static_cast<size_t>(i) * 100, 'p');
      value_bytes += value.size();
      ASSERT_OK(db->Put(Key(i), value));
    }
    const std::vector<SnapshotInfo> infos = db->Snapshots();
    ASSERT_EQ(infos.size(), 1u);
    const Stats stats = db->GetStats();
    EXPECT_EQ(infos[0].tail, tail);
    EXPECT_GT(infos[0].pinned_bytes, last) << "after commit " << i;
    EXPECT_EQ(infos[0].pinned_bytes, stats.log_bytes - tail);
    EXPECT_EQ(stats.snapshot_pinned_bytes, infos[0].pinned_bytes);
    last = infos[0].pinned_bytes;
  }
  EXPECT_GT(last, value_bytes) << "less than the values committed since the snapshot";
  EXPECT_EQ(SnapshotMismatch(snap, InitialModel(10), {Key(10)}), "");
}

// Options::max_snapshot_bytes: a snapshot reads until more than that many bytes were committed
// after it began; past it, every read fails naming the cap, and a new snapshot reads again.
TEST(SnapshotTest, SnapshotPastItsCapIsTooOld) {
  TempDir dir;
  Options options = SnapOptions();
  options.max_snapshot_bytes = 4096;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(dir.File("cap.mapkv"), options));
  ASSERT_OK(Fill(db.get(), InitialModel(10)));
  ASSERT_OK_AND_ASSIGN(ReadTxn snap, db->BeginRead());
  const std::string value(1000, 'c');
  ASSERT_OK(db->Put(Key(0), value));
  ASSERT_OK(db->Put(Key(1), value));  // about 2 KiB since the snapshot: within the cap
  EXPECT_EQ(SnapshotMismatch(snap, InitialModel(10), {Key(10)}), "");
  for (int i = 0; i < 4; ++i) ASSERT_OK(db->Put(Key(2 + i), value));  // past it
  ASSERT_LT(uint64_t{4096}, db->Snapshots().at(0).pinned_bytes);
  const absl::StatusOr<std::string_view> got = snap.Get(Key(3));
  EXPECT_STATUS(got, StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(got.status().message(), "snapshot too old")) << got.status();
  EXPECT_TRUE(absl::StrContains(got.status().message(), "max_snapshot_bytes (4096)"))
      << got.status();
  EXPECT_STATUS(snap.ForEach([](std::string_view, std::string_view) { return true; }),
                StatusCode::kFailedPrecondition);
  std::vector<absl::StatusOr<std::string_view>> values(2);
  const std::vector<std::string_view> keys = {Key(0), Key(1)};
  snap.MultiGet(keys, absl::MakeSpan(values));
  for (const auto& v : values) EXPECT_STATUS(v, StatusCode::kFailedPrecondition);
  ASSERT_OK_AND_ASSIGN(ReadTxn fresh, db->BeginRead());
  EXPECT_OK_AND_EQ(fresh.Get(Key(3)), value);
}

constexpr int kAccounts = 16;
constexpr int kBalance = 1000;
std::string Account(int i) { return absl::StrCat("acct/", i); }

// What one snapshot of the threads test reads: the counter, its check value and the balances,
// checked against each other. Empty `problem` when they agree.
struct Reading {
  uint64_t counter = 0;
  std::vector<std::string> balances;
  std::string problem;
  bool operator==(const Reading& o) const { return counter == o.counter && balances == o.balances; }
};

// Reads through Get, or (`multi`) MultiGet.
Reading ReadAccounts(const ReadTxn& txn, bool multi) {
  Reading r;
  std::vector<std::string> keys = {"counter", "check"};
  for (int i = 0; i < kAccounts; ++i) keys.push_back(Account(i));
  std::vector<absl::StatusOr<std::string_view>> values(keys.size());
  if (multi) {
    std::vector<std::string_view> views(keys.begin(), keys.end());
    txn.MultiGet(views, absl::MakeSpan(values));
  } else {
    for (size_t i = 0; i < keys.size(); ++i) values[i] = txn.Get(keys[i]);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!values[i].ok()) {
      r.problem = absl::StrCat(keys[i], ": ", values[i].status().ToString());
      return r;
    }
  }
  uint64_t check = 0;
  if (!test::ParseStamp(*values[0], &r.counter) ||
      !test::CheckStampedValue("check", *values[1], &check) || check != r.counter) {
    r.problem = absl::StrCat("counter ", Show(*values[0]), " and check ", Show(*values[1]),
                             " disagree: a torn transaction");
    return r;
  }
  int64_t sum = 0;
  for (int i = 0; i < kAccounts; ++i) {
    r.balances.emplace_back(*values[2 + i]);
    sum += std::stoll(r.balances.back());
  }
  if (sum != int64_t{kAccounts} * kBalance) r.problem = absl::StrCat("balances sum to ", sum);
  return r;
}

// Threads of one handle, each with its own snapshots, beside a writer thread that commits as
// fast as it can: each snapshot sees one commit's state (the counter and its check value, written
// by one WriteTxn, agree; the balances keep their sum), and the same state however long it lives
// and however it reads (Get, MultiGet, ForEach).
TEST(SnapshotTest, ThreadsEachSeeTheirOwnConsistentSnapshot) {
  constexpr int kReaders = 4;
  constexpr int kSnapshotsPerReader = 60;
  constexpr uint64_t kCommitsPerSnapshot = 5;  // a snapshot lives across this many commits
  const uint64_t commits = CommitCount();
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(dir.File("threads.mapkv"), SnapOptions()));
  {
    Model start;
    for (int i = 0; i < kAccounts; ++i) start[Account(i)] = absl::StrCat(kBalance);
    start["counter"] = test::Stamp(0);
    start["check"] = test::StampedValue("check", 0, 32);
    ASSERT_OK(Fill(db.get(), start));
  }
  std::atomic<uint64_t> committed{0};
  std::atomic<bool> writer_done{false};
  std::atomic<int> readers_started{0};  // each reader counts itself once its first snapshot is open
  std::string writer_problem;
  std::thread writer([&] {
    while (readers_started.load(std::memory_order_acquire) < kReaders) std::this_thread::yield();
    Rng rng(7);
    std::vector<int> balance(kAccounts, kBalance);
    for (uint64_t n = 1; n <= commits; ++n) {
      const int from = static_cast<int>(Uniform(rng, 0, kAccounts - 1));
      const int to = static_cast<int>(Uniform(rng, 0, kAccounts - 1));
      const int amount = static_cast<int>(Uniform(rng, 1, 50));
      absl::StatusOr<WriteTxn> txn = db->BeginWrite();
      absl::Status s = txn.status();
      if (s.ok()) s = txn->Put("counter", test::Stamp(n));
      if (s.ok()) {
        balance[from] -= amount;
        balance[to] += amount;
        s = txn->Put(Account(from), absl::StrCat(balance[from]));
      }
      if (s.ok()) s = txn->Put(Account(to), absl::StrCat(balance[to]));
      if (s.ok()) s = txn->Put("check", test::StampedValue("check", n, 32));
      if (s.ok() && n % 7 == 0) s = txn->Put(absl::StrCat("extra/", n), std::string(200, 'x'));
      if (s.ok() && n % 7 == 3) s = txn->Delete(absl::StrCat("extra/", n - 3));
      if (s.ok()) s = txn->Commit();
      if (!s.ok()) {
        writer_problem = absl::StrCat("commit ", n, ": ", s.ToString());
        break;
      }
      committed.store(n, std::memory_order_release);
    }
    writer_done.store(true, std::memory_order_release);
  });
  std::vector<std::string> problems(kReaders);
  std::vector<uint64_t> newest(kReaders, 0);
  std::vector<std::thread> readers;
  for (int t = 0; t < kReaders; ++t) {
    readers.emplace_back([&, t] {
      for (int i = 0; i < kSnapshotsPerReader && problems[t].empty(); ++i) {
        absl::StatusOr<ReadTxn> txn = db->BeginRead();
        if (i == 0) readers_started.fetch_add(1, std::memory_order_release);
        if (!txn.ok()) {
          problems[t] = txn.status().ToString();
          return;
        }
        const Reading first = ReadAccounts(*txn, i % 2 == 0);
        if (!first.problem.empty()) {
          problems[t] = first.problem;
          return;
        }
        if (first.counter < newest[t]) {
          problems[t] = absl::StrCat("went back from ", newest[t], " to ", first.counter);
          return;
        }
        newest[t] = first.counter;
        // Live across a few commits (or until the writer is done), then read again, every way.
        const uint64_t until = committed.load(std::memory_order_acquire) + kCommitsPerSnapshot;
        while (committed.load(std::memory_order_acquire) < until &&
               !writer_done.load(std::memory_order_acquire)) {
          std::this_thread::yield();
        }
        for (const bool multi : {false, true}) {
          const Reading again = ReadAccounts(*txn, multi);
          if (!again.problem.empty() || !(again == first)) {
            problems[t] = absl::StrCat(
                "snapshot at counter ", first.counter, " changed: ",
                again.problem.empty() ? absl::StrCat("counter ", again.counter) : again.problem);
            return;
          }
        }
        uint64_t visited = 0;
        absl::Status s = txn->ForEach([&](std::string_view key, std::string_view value) {
          ++visited;
          if (key == "counter" && value != test::Stamp(first.counter)) {
            problems[t] = absl::StrCat("ForEach: counter ", Show(value), " in the snapshot at ",
                                       first.counter);
          }
          return problems[t].empty();
        });
        if (!s.ok()) problems[t] = absl::StrCat("ForEach: ", s.ToString());
        if (problems[t].empty() && visited != txn->Count()) {
          problems[t] = absl::StrCat("ForEach visited ", visited, " of Count ", txn->Count());
        }
      }
    });
  }
  for (std::thread& r : readers) r.join();
  writer.join();
  EXPECT_EQ(writer_problem, "");
  for (int t = 0; t < kReaders; ++t) EXPECT_EQ(problems[t], "") << "reader " << t;
  EXPECT_EQ(committed.load(), commits);
  EXPECT_TRUE(db->Snapshots().empty());
  ASSERT_OK_AND_ASSIGN(ReadTxn last, db->BeginRead());
  const Reading final_reading = ReadAccounts(last, false);
  EXPECT_EQ(final_reading.problem, "");
  EXPECT_EQ(final_reading.counter, commits);
}

const std::string kGoldenV1 = std::string(MAPKV_SOURCE_DIR) + "/data/golden/v1/sample.mapkv";

// A fresh process's commit to a version 1 file while the parent holds a ReadTxn of it: waits
// for that ReadTxn and times out. Arguments: path.
MAPKV_CHILD(VersionOnePutChild) {
  Options options = SnapOptions();
  options.lock_timeout = std::chrono::milliseconds(300);
  auto opened = DB::Open(args.at(0), options);
  CHILD_CHECK_OK(opened);
  std::unique_ptr<DB> db = std::move(*opened);
  const absl::Status put = db->Put("from/child", "1");
  CHILD_CHECK(absl::IsDeadlineExceeded(put),
              "a commit beside a version 1 ReadTxn: ", put.ToString());
  return 0;
}

// A version 1 file (written before snapshots; data/golden/v1) still reads through a ReadTxn,
// and there a ReadTxn holds the shared lock: commits from this thread, another thread and another
// process wait for it and time out; once it ends they go through, and the file stays version 1.
TEST(SnapshotTest, VersionOneReadTxnStillHoldsTheLock) {
  ASSERT_TRUE(std::filesystem::exists(kGoldenV1)) << kGoldenV1;
  TempDir dir;
  const std::string path = dir.File("v1.mapkv");
  std::filesystem::copy_file(kGoldenV1, path);
  Options options = SnapOptions();
  options.lock_timeout = std::chrono::milliseconds(300);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  ASSERT_EQ(db->GetStats().format_version, 1u);
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    EXPECT_EQ(txn.Count(), 401u);  // golden_test.cc: 500 puts, 101 deletes, 2 more
    EXPECT_OK_AND_EQ(txn.Get("batch/a"), "1");
    EXPECT_OK_AND_EQ(txn.Get("batch/b"), "2");
    EXPECT_STATUS(txn.Get("golden/5"), StatusCode::kNotFound);
    EXPECT_STATUS(db->Put("from/this", "1"), StatusCode::kDeadlineExceeded);
    absl::Status from_thread;
    std::thread other([&] { from_thread = db->Delete("batch/a"); });
    other.join();
    EXPECT_STATUS(from_thread, StatusCode::kDeadlineExceeded);
    const int status = RunChild("VersionOnePutChild", {path});
    EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
    EXPECT_OK_AND_EQ(txn.Get("batch/a"), "1");
    EXPECT_STATUS(txn.Get("from/this"), StatusCode::kNotFound);
  }
  ASSERT_OK(db->Put("from/this", "1"));
  ASSERT_OK(db->Delete("batch/a"));
  EXPECT_OK_AND_EQ(db->Get("from/this"), "1");
  EXPECT_STATUS(db->Get("batch/a"), StatusCode::kNotFound);
  EXPECT_STATUS(db->Get("from/child"), StatusCode::kNotFound);
  const Stats stats = db->GetStats();
  EXPECT_EQ(stats.format_version, 1u);
  EXPECT_EQ(stats.keys, 401u);
  EXPECT_OK(db->Verify());
}

// Verify() reads as of a snapshot while another process commits: every run is clean.
TEST(SnapshotTest, VerifyIsCleanWhileAnotherProcessCommits) {
  TempDir dir;
  const std::string path = dir.File("verify.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SnapOptions()));
  ASSERT_OK(Fill(db.get(), InitialModel(kInitialKeys)));
  const int checks = CheckBesideCommitter(path, kInitialKeys, CommitCount(), 0, [&] {
    std::vector<VerifyProblem> problems;
    EXPECT_OK(db->Verify(&problems));
    for (const VerifyProblem& p : problems) {
      ADD_FAILURE() << p.kind << " at " << p.offset << ": " << p.detail;
    }
  });
  EXPECT_OK(db->Verify());
  EXPECT_TRUE(db->Snapshots().empty()) << "Verify left its snapshot pinned";
  std::printf("Verify ran %d times beside the commits\n", checks);
}

// As VerifyIsCleanWhileAnotherProcessCommits, with a checkpoint after every 4 commits: Verify reads
// the checkpoint records that the committer rewrites meanwhile.
TEST(SnapshotTest, VerifyIsCleanWhileAnotherProcessCommitsAndCheckpoints) {
  TempDir dir;
  const std::string path = dir.File("verify.mapkv");
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, SnapOptions()));
  ASSERT_OK(Fill(db.get(), InitialModel(kInitialKeys)));
  const int checks = CheckBesideCommitter(path, kInitialKeys, CommitCount() / 4, 4, [&] {
    std::vector<VerifyProblem> problems;
    EXPECT_OK(db->Verify(&problems));
    for (const VerifyProblem& p : problems) {
      ADD_FAILURE() << p.kind << " at " << p.offset << ": " << p.detail;
    }
  });
  EXPECT_OK(db->Verify());
  std::printf("Verify ran %d times beside the commits and checkpoints\n", checks);
}

// A snapshot moved (constructed or assigned from) keeps reading as of its begin and stays
// pinned; ending the moved-from one unpins nothing; assigning over a snapshot ends that one.
TEST(SnapshotTest, MovedSnapshotStaysPinned) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(dir.File("move.mapkv"), SnapOptions()));
  ASSERT_OK(db->Put("a", "1"));
  const uint64_t tail1 = db->GetStats().log_bytes;
  auto count = [&] {
    uint64_t n = 0;
    for (const SnapshotInfo& info : db->Snapshots()) n += info.snapshots;
    return n;
  };
  std::optional<ReadTxn> a;
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    a.emplace(std::move(txn));
  }
  ASSERT_OK(db->Put("a", "2"));
  ReadTxn b(std::move(*a));
  EXPECT_OK_AND_EQ(b.Get("a"), "1");
  EXPECT_STATUS(a->Get("a"), StatusCode::kFailedPrecondition);
  EXPECT_EQ(a->Count(), 0u);
  EXPECT_EQ(count(), 1u);
  a.reset();  // the moved-from one ends
  EXPECT_EQ(count(), 1u) << "ending a moved-from ReadTxn unpinned the snapshot it gave away";
  ASSERT_EQ(db->Snapshots().size(), 1u);
  EXPECT_EQ(db->Snapshots()[0].tail, tail1);

  ASSERT_OK_AND_ASSIGN(ReadTxn c, db->BeginRead());
  EXPECT_OK_AND_EQ(c.Get("a"), "2");
  EXPECT_EQ(count(), 2u);
  c = std::move(b);  // c's own snapshot ends; it holds b's
  EXPECT_EQ(count(), 1u);
  EXPECT_OK_AND_EQ(c.Get("a"), "1");
  EXPECT_STATUS(b.Get("a"), StatusCode::kFailedPrecondition);
  ASSERT_OK(db->Put("a", "3"));
  EXPECT_OK_AND_EQ(c.Get("a"), "1");
  EXPECT_EQ(c.Count(), 1u);
  ASSERT_EQ(db->Snapshots().size(), 1u);
  EXPECT_EQ(db->Snapshots()[0].tail, tail1);
  EXPECT_GT(db->Snapshots()[0].pinned_bytes, 0u);
  {
    ReadTxn moved_from_again = std::move(b);  // a moved-from one moved: nothing to give
  }
  EXPECT_EQ(count(), 1u);
  EXPECT_OK_AND_EQ(c.Get("a"), "1");

  // Two snapshots at the same tail, one assigned over the other: one pin left, then none.
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn d, db->BeginRead());
    ASSERT_OK_AND_ASSIGN(ReadTxn e, db->BeginRead());
    EXPECT_EQ(count(), 3u);
    d = std::move(e);
    EXPECT_EQ(count(), 2u);
    EXPECT_OK_AND_EQ(d.Get("a"), "3");
  }
  EXPECT_EQ(count(), 1u);

  // Snapshots moved about by a growing vector: each still reads its own state.
  {
    std::vector<ReadTxn> many;
    for (int i = 0; i < 20; ++i) {
      ASSERT_OK(db->Put("n", absl::StrCat(i)));
      ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
      many.push_back(std::move(txn));
    }
    EXPECT_EQ(count(), 21u);
    for (int i = 0; i < 20; ++i) EXPECT_OK_AND_EQ(many[i].Get("n"), absl::StrCat(i)) << i;
    many.erase(many.begin(), many.begin() + 10);
    EXPECT_EQ(count(), 11u);
    for (int i = 0; i < 10; ++i) EXPECT_OK_AND_EQ(many[i].Get("n"), absl::StrCat(i + 10)) << i;
  }
  EXPECT_EQ(count(), 1u);
  EXPECT_EQ(db->Snapshots()[0].tail, tail1);
  { ReadTxn ended = std::move(c); }
  EXPECT_TRUE(db->Snapshots().empty());
}

}  // namespace
}  // namespace mapkv
