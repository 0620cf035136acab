// mapkv::Compact and mapkv::Backup (src/compact.cc) against a directory that others may write, a
// file whose counters were forged, and a source that another process writes meanwhile: the
// temporary file swapped for a symbolic link while it is written, a leftover's name given to a
// link or to another user's file, counters that claim more than the file holds, and commits of
// another process while the copy is read, which the copy must not see. Each test stages what
// happens meanwhile at a point that the progress callback marks, so none depends on timing.
#include "mapkv/compact.h"

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "mapkv/db.h"
#include "src/format.h"
#include "src/platform/fs.h"
#include "src/platform/mapped_file.h"
#include "src/platform/process.h"
#include "src/status_macros.h"
#include "test_util.h"

namespace mapkv {
namespace {

namespace fs = std::filesystem;
using internal::FileInfo;
using test::ReadFile;
using test::TempDir;

constexpr int kKeys = 200;
constexpr uint32_t kNobody = 65534;  // uid and gid of nobody:nogroup
constexpr uint64_t kMiB = 1 << 20;

std::string Key(int i) { return absl::StrCat("key/", i); }
std::string Value(int i) { return absl::StrCat("value of ", i, std::string(i % 50, 'v')); }

// A database of kKeys keys, each written twice (garbage for compaction to drop), closed cleanly.
void MakeDatabase(const std::string& path) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path));
  for (int round = 0; round < 2; ++round) {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    for (int i = 0; i < kKeys; ++i) ASSERT_OK(txn.Put(Key(i), Value(i)));
    ASSERT_OK(txn.Commit());
  }
}

// `path` opens as the database MakeDatabase made.
void ExpectDatabase(const std::string& path) {
  Options options;
  options.create_if_missing = false;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  EXPECT_EQ(db->GetStats().keys, static_cast<uint64_t>(kKeys)) << path;
  for (int i = 0; i < kKeys; i += 7) EXPECT_OK_AND_EQ(db->Get(Key(i)), Value(i));
}

// The temporary files of compactions (or, with tag "backup", backups) to `dst`, beside it.
std::vector<std::string> TempFiles(const std::string& dst, std::string_view tag = "compact") {
  std::vector<std::string> temps;
  absl::StatusOr<std::vector<std::string>> names = internal::ListDirectory(internal::DirName(dst));
  EXPECT_OK(names);
  if (!names.ok()) return temps;
  for (const std::string& name : *names) {
    if (internal::IsTempNameOf(name, dst, tag)) {
      temps.push_back(absl::StrCat(internal::DirName(dst), "/", name));
    }
  }
  return temps;
}

// Gives `path` to uid:gid, as compaction gives its copy the database's owner. False where this
// process may not, or where owners are not uids (Windows: SetOwner does nothing).
bool GiveAway(const std::string& path, uint32_t uid, uint32_t gid) {
  internal::FileOpenOptions open;
  open.create = false;
  absl::StatusOr<std::unique_ptr<internal::MappedFile>> file =
      internal::MappedFile::Open(path, open);
  if (!file.ok() || !(*file)->SetOwner(uid, gid).ok()) return false;
  absl::StatusOr<FileInfo> info = internal::StatFile(path);
  return info.ok() && info->uid == uid && info->gid == gid;
}

void SetPermissions(const std::string& path, int bits) {
  fs::permissions(path, static_cast<fs::perms>(bits), fs::perm_options::replace);
}

// ---- The temporary file swapped while compacting.

struct SwapCase {
  const char* name;
  bool in_place;                 // Compact(db, "") rather than Compact(db, new)
  CompactProgress::Phase phase;  // when the swap happens: the copy is complete (kFlush: before
                                 // its owner and mode are set), or about to be renamed (kReplace)
  bool backup = false;           // Backup(db, new) rather than Compact(db, new)
  bool replace = false;          // new exists, a database, replaced (replace_existing)
};

class CompactSwapTest : public ::testing::TestWithParam<SwapCase> {};

// Someone who may write the database's directory, but not the victim file, renames the temporary
// file away and puts a symbolic link to the victim under its name. Compaction must give the victim
// neither the database's owner nor its permission bits, must not rename the link into place, and
// must fail, leaving the database as it was. Run as root, the database belongs to nobody, so a
// compaction that followed the link would give root's file to nobody.
TEST_P(CompactSwapTest, TempFileSwappedForALinkIsNeitherFollowedNorRenamed) {
  const SwapCase& c = GetParam();
  TempDir dir;
  const std::string db = dir.File("db.mapkv");
  MakeDatabase(db);
  SetPermissions(db, 0640);
  if (internal::CurrentUid() == 0) GiveAway(db, kNobody, kNobody);
  const std::string victim = dir.File("victim");
  const std::string secret = "root's secret\n";
  ASSERT_TRUE(test::WriteFile(victim, secret));
  SetPermissions(victim, 0600);
  ASSERT_OK_AND_ASSIGN(const FileInfo victim_before, internal::StatFile(victim));
  ASSERT_OK_AND_ASSIGN(const FileInfo db_before, internal::StatFile(db));

  const std::string dst = c.in_place ? "" : dir.File("new.mapkv");
  FileInfo dst_before;
  if (c.replace) {  // an older copy, closed
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> old, DB::Open(dst));
    ASSERT_OK(old->Put("old", "copy"));
    old.reset();
    ASSERT_OK_AND_ASSIGN(dst_before, internal::StatLink(dst));
  }
  bool swapped = false;
  std::string cannot_link;
  CompactOptions options;
  options.replace_existing = c.replace;
  options.progress = [&](const CompactProgress& p) {
    if (swapped || !cannot_link.empty() || p.phase != c.phase) return;
    const std::vector<std::string> temps =
        TempFiles(c.in_place ? db : dst, c.backup ? "backup" : "compact");
    ASSERT_EQ(temps.size(), 1u);
    std::error_code ec;
    fs::rename(temps[0], dir.File("moved-away"), ec);
    if (!ec) fs::create_symlink(victim, temps[0], ec);
    if (ec) {
      cannot_link = ec.message();
    } else {
      swapped = true;
    }
  };
  const absl::StatusOr<CompactResult> result =
      c.backup ? Backup(db, dst, options) : Compact(db, dst, options);
  if (!cannot_link.empty()) GTEST_SKIP() << "no symbolic links here: " << cannot_link;
  ASSERT_TRUE(swapped) << "the progress callback never reached the phase";

  EXPECT_STATUS(result, absl::StatusCode::kAborted);
  EXPECT_TRUE(absl::StrContains(result.status().message(), "symbolic link")) << result.status();

  ASSERT_OK_AND_ASSIGN(const FileInfo victim_after, internal::StatFile(victim));
  EXPECT_EQ(victim_after.uid, victim_before.uid) << "the victim was given away";
  EXPECT_EQ(victim_after.gid, victim_before.gid);
  EXPECT_EQ(victim_after.mode, victim_before.mode) << "the victim's permission bits changed";
  EXPECT_EQ(ReadFile(victim), secret);

  // The database is the original file, as it was, under its own name.
  ASSERT_OK_AND_ASSIGN(const FileInfo db_after, internal::StatLink(db));
  EXPECT_FALSE(db_after.symlink) << "the link was renamed into the database's place";
  EXPECT_TRUE(internal::SameFile(db_after, db_before));
  EXPECT_EQ(db_after.uid, db_before.uid);
  EXPECT_EQ(db_after.mode, db_before.mode);
  ExpectDatabase(db);
  if (c.replace) {
    ASSERT_OK_AND_ASSIGN(const FileInfo dst_after, internal::StatLink(dst));
    EXPECT_TRUE(internal::SameFile(dst_after, dst_before)) << "the older copy was replaced";
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> old, DB::Open(dst));
    EXPECT_EQ(old->GetStats().keys, 1u);
    EXPECT_OK_AND_EQ(old->Get("old"), "copy");
  } else if (!c.in_place) {
    EXPECT_STATUS(internal::StatLink(dst), absl::StatusCode::kNotFound) << "NEW was made";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Compact, CompactSwapTest,
    ::testing::Values(SwapCase{"InPlaceBeforeSealing", true, CompactProgress::Phase::kFlush},
                      SwapCase{"InPlaceBeforeRename", true, CompactProgress::Phase::kReplace},
                      SwapCase{"ToNewBeforeSealing", false, CompactProgress::Phase::kFlush},
                      SwapCase{"ToNewBeforeRename", false, CompactProgress::Phase::kReplace},
                      SwapCase{"BackupBeforeSealing", false, CompactProgress::Phase::kFlush, true},
                      SwapCase{"BackupBeforeRename", false, CompactProgress::Phase::kReplace, true},
                      SwapCase{"BackupReplacingBeforeRename", false,
                               CompactProgress::Phase::kReplace, true, true}),
    [](const ::testing::TestParamInfo<SwapCase>& info) { return std::string(info.param.name); });

// ---- Leftovers of killed compactions.

// A symbolic link under a leftover's name, to another database: compaction neither opens it (an
// open would run recovery on that database as this user) nor removes it, and says so. A regular
// file of this user's under such a name is a real leftover and goes.
TEST(CompactTest, LeftoverNamedLinkToAnotherDatabaseIsLeftAlone) {
  TempDir dir;
  const std::string db = dir.File("db.mapkv");
  const std::string other = dir.File("other.mapkv");
  MakeDatabase(db);
  MakeDatabase(other);
  const std::string link = absl::StrCat(db, ".compact-4242-0badf00d.tmp");
  const std::string leftover = absl::StrCat(db, ".compact-4243-00c0ffee.tmp");
  ASSERT_EQ(TempFiles(db).size(), 0u);
  std::error_code ec;
  fs::create_symlink(other, link, ec);
  if (ec) GTEST_SKIP() << "no symbolic links here: " << ec.message();
  ASSERT_TRUE(test::WriteFile(leftover, "the start of a copy"));
  ASSERT_EQ(TempFiles(db).size(), 2u) << "both names read as leftovers";
  const std::string other_bytes = ReadFile(other);

  ASSERT_OK_AND_ASSIGN(const CompactResult result, Compact(db, ""));
  EXPECT_TRUE(ReadFile(other) == other_bytes) << "the other database changed";
  ASSERT_OK_AND_ASSIGN(const FileInfo link_after, internal::StatLink(link));
  EXPECT_TRUE(link_after.symlink);
  EXPECT_FALSE(test::FileExists(leftover));
  ASSERT_EQ(result.removed_leftovers.size(), 1u);
  EXPECT_EQ(internal::BaseName(result.removed_leftovers[0]), internal::BaseName(leftover));
  ASSERT_EQ(result.kept_leftovers.size(), 1u);
  EXPECT_TRUE(absl::StrContains(result.kept_leftovers[0], internal::BaseName(link)) &&
              absl::StrContains(result.kept_leftovers[0], "symbolic link"))
      << result.kept_leftovers[0];
  ExpectDatabase(db);
}

// Root removes a leftover only when it is root's (a compaction killed while copying) or the
// database owner's (one killed after giving its copy that owner), never another user's file.
TEST(CompactTest, RootRemovesOnlyLeftoversOfItsOwnOrOfTheDatabasesOwner) {
  if (internal::CurrentUid() != 0) GTEST_SKIP() << "needs root (it gives files to nobody)";
  TempDir dir;
  const std::string db = dir.File("db.mapkv");
  MakeDatabase(db);
  const std::string foreign = absl::StrCat(db, ".compact-4242-0badf00d.tmp");
  ASSERT_TRUE(test::WriteFile(foreign, "nobody's file"));
  if (!GiveAway(foreign, kNobody, kNobody)) GTEST_SKIP() << "files cannot be given away here";

  ASSERT_OK_AND_ASSIGN(CompactResult result, Compact(db, ""));
  EXPECT_TRUE(result.removed_leftovers.empty());
  ASSERT_EQ(result.kept_leftovers.size(), 1u);
  EXPECT_TRUE(absl::StrContains(result.kept_leftovers[0], "owned by uid 65534"))
      << result.kept_leftovers[0];
  EXPECT_EQ(ReadFile(foreign), "nobody's file");

  // Once the database is nobody's, nobody's leftover is a compaction's copy.
  ASSERT_TRUE(GiveAway(db, kNobody, kNobody));
  ASSERT_OK_AND_ASSIGN(result, Compact(db, ""));
  EXPECT_EQ(result.removed_leftovers.size(), 1u);
  EXPECT_TRUE(result.kept_leftovers.empty());
  EXPECT_FALSE(test::FileExists(foreign));
  ExpectDatabase(db);
}

// ---- Forged counters.

// The shared state holds the counters compaction sizes its copy by, and a clean open trusts them
// as it finds them (the header page has no checksum over them). A 1 MiB file claiming 32 MiB of
// live records, or a million keys, gets a copy sized by what it can hold: never larger than the
// source. (Compaction opens the source with the default growth limit, which raises the file's:
// a claim of terabytes would have a copy that believed it fill 64 GiB, so the claims here are
// only large enough to tell.)
TEST(CompactTest, ForgedCountersDoNotSizeTheCopy) {
  struct Forgery {
    const char* what;
    size_t offset;  // in SharedState
    uint64_t value;
    bool copies;  // false: the key count disagrees with the index, and compaction says so
  };
  const Forgery forgeries[] = {
      {"live_bytes", offsetof(internal::SharedState, live_bytes), 32 * kMiB, true},
      {"count", offsetof(internal::SharedState, count), uint64_t{1} << 20, false},
  };
  for (const Forgery& f : forgeries) {
    SCOPED_TRACE(f.what);
    TempDir dir;
    const std::string db = dir.File("forged.mapkv");
    const std::string out = dir.File("out.mapkv");
    MakeDatabase(db);
    test::WriteFileU64(db, internal::kSharedStateOffset + f.offset, f.value);
    ASSERT_OK_AND_ASSIGN(const FileInfo source, internal::StatFile(db));

    // Sizes of the copy while it is written; allocated blocks may run a little ahead of the size
    // on some file systems.
    uint64_t largest_size = 0, largest_allocated = 0;
    CompactOptions options;
    options.progress = [&](const CompactProgress&) {
      for (const std::string& temp : TempFiles(out)) {
        absl::StatusOr<FileInfo> info = internal::StatFile(temp);
        if (!info.ok()) continue;
        largest_size = std::max(largest_size, info->size);
        largest_allocated = std::max(largest_allocated, info->allocated);
      }
    };
    const absl::StatusOr<CompactResult> result = Compact(db, out, options);
    EXPECT_GT(largest_size, 0u) << "the callback saw the copy";
    EXPECT_LE(largest_size, source.size) << "a copy sized by the forged " << f.what;
    EXPECT_LE(largest_allocated, source.size + kMiB);
    if (f.copies) {
      ASSERT_OK(result);
      ASSERT_OK_AND_ASSIGN(const FileInfo copy, internal::StatFile(out));
      EXPECT_LE(copy.size, source.size);
      EXPECT_LE(copy.allocated, source.size + kMiB);
      ExpectDatabase(out);
    } else {
      EXPECT_STATUS(result, absl::StatusCode::kDataLoss);
      EXPECT_FALSE(test::FileExists(out));
      EXPECT_TRUE(TempFiles(out).empty());
    }
  }
}

// Compaction opens the source alone, as its first opener, which may raise a file's growth limit
// to the opener's own: it must not change the source, nor hand a raised limit to the copy.
TEST(CompactTest, TheGrowthLimitStaysTheSources) {
  TempDir dir;
  const std::string path = dir.File("db");
  Options small;
  small.max_file_size = 8 << 20;
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, small));
    for (int i = 0; i < 100; ++i) ASSERT_OK(db->Put(Key(i), Value(i)));
  }
  ASSERT_OK(Compact(path, "").status());
  Options least;
  least.max_file_size = internal::kMinFileSize;  // never raises the file's own
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, least));
  EXPECT_EQ(db->GetStats().max_file_size, uint64_t{8} << 20);
  EXPECT_OK_AND_EQ(db->Get(Key(7)), Value(7));
}

// ---- Backup, and compaction to another file, of a database in use.

constexpr int kLiveKeys = 6000;  // over 4096: the copy reports progress once in the middle
constexpr int kRoundCommits = 5;
constexpr int kNewKeysPerCommit = 50;  // a round outgrows the index of kLiveKeys (8192 slots)

std::string LiveKey(int i) { return absl::StrCat("base/", i); }

// Commit `n` of CommitOnRequestChild, applied to `content` (to `txn` as well, when given): every
// tenth key rewritten, one deleted, new keys added.
absl::Status ApplyCommit(int n, std::map<std::string, std::string>* content, WriteTxn* txn) {
  for (int i = n % 10; i < kLiveKeys; i += 10) {
    const std::string value = absl::StrCat("changed by commit ", n);
    (*content)[LiveKey(i)] = value;
    if (txn != nullptr) MAPKV_RETURN_IF_ERROR(txn->Put(LiveKey(i), value));
  }
  content->erase(LiveKey(kLiveKeys - 1 - n));
  if (txn != nullptr) MAPKV_RETURN_IF_ERROR(txn->Delete(LiveKey(kLiveKeys - 1 - n)));
  for (int m = 0; m < kNewKeysPerCommit; ++m) {
    const std::string key = absl::StrCat("new/", n, "/", m);
    (*content)[key] = "new";
    if (txn != nullptr) MAPKV_RETURN_IF_ERROR(txn->Put(key, "new"));
  }
  return absl::OkStatus();
}

// Commits to the database at args[0] when asked, with a lock timeout of 100 ms, which a copy that
// held the lock would make expire: kRoundCommits commits for each byte on `go` (args[1]), then a
// byte on `done` (args[2]); it exits at the end of `go`. Every commit must succeed.
MAPKV_CHILD(CommitOnRequestChild) {
  test::ChildPipe go = args.PipeEnd(1);
  test::ChildPipe done = args.PipeEnd(2);
  Options options;
  options.create_if_missing = false;
  options.lock_timeout = std::chrono::milliseconds(100);
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(args.at(0), options);
  CHILD_CHECK_OK(db);
  std::map<std::string, std::string> ignored;
  for (int n = 0; go.WaitByte(std::chrono::seconds(60));) {
    for (int c = 0; c < kRoundCommits; ++c, ++n) {
      absl::StatusOr<WriteTxn> txn = (*db)->BeginWrite();
      CHILD_CHECK_OK(txn, "commit ", n);
      CHILD_CHECK_OK(ApplyCommit(n, &ignored, &*txn), "commit ", n);
      CHILD_CHECK_OK(txn->Commit(), "commit ", n);
    }
    CHILD_CHECK(done.Write("d"));
  }
  return 0;
}

std::map<std::string, std::string> ReadAll(const std::string& path) {
  std::map<std::string, std::string> content;
  Options options;
  options.create_if_missing = false;
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(path, options);
  EXPECT_OK(db);
  if (!db.ok()) return content;
  absl::StatusOr<ReadTxn> read = (*db)->BeginRead();
  EXPECT_OK(read);
  if (!read.ok()) return content;
  EXPECT_OK(read->ForEach([&](std::string_view k, std::string_view v) {
    content.emplace(k, v);
    return true;
  }));
  return content;
}

// While the copy is read, another process commits: once as the copy starts, and once half-way
// through its walk, each time a round of commits that rewrite, delete and add keys and grow the
// index. Those commits neither wait nor fail, and the copy holds the database exactly as it was
// when the copy began: it opens, verifies, and holds the content of that one commit.
TEST(CompactTest, CopyIntoAnotherFileIsOneCommitWhileAnotherProcessCommits) {
  for (const bool backup : {true, false}) {
    SCOPED_TRACE(backup ? "Backup" : "Compact into another file");
    TempDir dir;
    const std::string db = dir.File("live.mapkv");
    const std::string copy = dir.File("copy.mapkv");
    std::map<std::string, std::string> model;
    {
      // In commits of 500 keys, so that the index grows as it fills (at 3/4) to 8192 slots,
      // rather than to the half-full table that one large commit gets.
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> source, DB::Open(db));
      for (int i = 0; i < kLiveKeys; i += 500) {
        ASSERT_OK_AND_ASSIGN(WriteTxn txn, source->BeginWrite());
        for (int j = i; j < i + 500; ++j) {
          model[LiveKey(j)] = Value(j);
          ASSERT_OK(txn.Put(LiveKey(j), Value(j)));
        }
        ASSERT_OK(txn.Commit());
      }
      ASSERT_EQ(source->GetStats().index_capacity, 8192u) << "the rounds must grow the index";
    }
    test::Pipe go, done;
    const int writer =
        test::StartChild("CommitOnRequestChild", {db, go.ReadEndArg(), done.WriteEndArg()});
    go.CloseRead();
    done.CloseWrite();
    int rounds = 0;
    bool round_failed = false;
    CompactOptions options;
    options.batch_bytes = 1 << 20;
    options.progress = [&](const CompactProgress& p) {
      const bool start = rounds == 0 && p.keys_done == 0;
      const bool middle = rounds == 1 && p.keys_done > 0 && p.keys_done < p.keys_total;
      if (p.phase != CompactProgress::Phase::kCopy || round_failed || !(start || middle)) return;
      round_failed = !go.Write("g") || !done.WaitByte(std::chrono::seconds(60));
      ++rounds;
    };
    const absl::StatusOr<CompactResult> result =
        backup ? Backup(db, copy, options) : Compact(db, copy, options);
    go.CloseWrite();
    EXPECT_EQ(test::WaitChild(writer), 0) << "a commit beside the copy failed";
    ASSERT_FALSE(round_failed) << "the writer did not answer";
    ASSERT_OK(result);
    EXPECT_EQ(rounds, 2);
    EXPECT_FALSE(result->in_place);
    EXPECT_FALSE(result->read_under_lock);
    EXPECT_EQ(result->keys, static_cast<uint64_t>(kLiveKeys));

    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> copied, DB::Open(copy));
    EXPECT_OK(copied->Verify());
    EXPECT_EQ(copied->GetStats().format_version, internal::kNewestFormatVersion);
    copied.reset();
    EXPECT_TRUE(ReadAll(copy) == model) << "the copy is not the database as the copy began";
    // And the source has every commit.
    for (int n = 0; n < 2 * kRoundCommits; ++n) ASSERT_OK(ApplyCommit(n, &model, nullptr));
    EXPECT_TRUE(ReadAll(db) == model) << "the source lost a commit";
    {
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> source, DB::Open(db));
      EXPECT_GT(source->GetStats().index_capacity, 8192u) << "the index never grew meanwhile";
    }
    EXPECT_TRUE(TempFiles(copy, "backup").empty() && TempFiles(copy).empty());
  }
}

// Every refusal leaves the database, and whatever is under the copy's name, as they were, and no
// temporary file.
TEST(CompactTest, BackupRefusals) {
  TempDir dir;
  const std::string db = dir.File("db.mapkv");
  MakeDatabase(db);
  const std::string copy = dir.File("copy.mapkv");
  auto no_temp_files = [&](const std::string& dst) {
    EXPECT_TRUE(TempFiles(dst, "backup").empty()) << dst;
  };

  EXPECT_STATUS(Backup(dir.File("absent.mapkv"), copy).status(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(test::FileExists(copy));
  EXPECT_STATUS(Backup(db, dir.File("no-such-dir/copy.mapkv")).status(),
                absl::StatusCode::kNotFound);

  // The database itself, by its own path, a symbolic link or a hard link.
  std::vector<std::string> names_of_db = {db};
  std::error_code ec;
  fs::create_symlink(db, dir.File("link.mapkv"), ec);
  if (!ec) names_of_db.push_back(dir.File("link.mapkv"));
  fs::create_hard_link(db, dir.File("hard.mapkv"), ec);
  if (!ec) names_of_db.push_back(dir.File("hard.mapkv"));
  for (const std::string& name : names_of_db) {
    for (const bool replace : {false, true}) {
      CompactOptions options;
      options.replace_existing = replace;
      const absl::StatusOr<CompactResult> same = Backup(db, name, options);
      EXPECT_STATUS(same, absl::StatusCode::kInvalidArgument) << name;
      EXPECT_TRUE(absl::StrContains(same.status().message(), "the database itself"))
          << same.status();
    }
  }
  ExpectDatabase(db);

  // A file that exists: refused, and with replace_existing too when it is no mapkv file.
  ASSERT_TRUE(test::WriteFile(copy, "not a database"));
  EXPECT_STATUS(Backup(db, copy).status(), absl::StatusCode::kAlreadyExists);
  CompactOptions replace;
  replace.replace_existing = true;
  const absl::StatusOr<CompactResult> foreign = Backup(db, copy, replace);
  EXPECT_STATUS(foreign, absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(absl::StrContains(foreign.status().message(), "not a mapkv")) << foreign.status();
  EXPECT_EQ(ReadFile(copy), "not a database");
  no_temp_files(copy);

  // A database open elsewhere (a second handle in this process counts as another process).
  const std::string held = dir.File("held.mapkv");
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> holder, DB::Open(held));
    ASSERT_OK(holder->Put("old", "copy"));
    const absl::StatusOr<CompactResult> open = Backup(db, held, replace);
    EXPECT_STATUS(open, absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(absl::StrContains(open.status().message(), "open by 1 other handle"))
        << open.status();
    EXPECT_OK_AND_EQ(holder->Get("old"), "copy");
    EXPECT_EQ(holder->GetStats().keys, 1u);
  }
  no_temp_files(held);

  // A directory this user may not write (root may write any).
  if (internal::CurrentUid() != 0) {
    const std::string locked = dir.File("locked");
    fs::create_directory(locked);
    SetPermissions(locked, 0555);
    const absl::StatusOr<CompactResult> denied = Backup(db, locked + "/copy.mapkv");
    SetPermissions(locked, 0755);
    EXPECT_STATUS(denied, absl::StatusCode::kPermissionDenied);
    EXPECT_FALSE(test::FileExists(locked + "/copy.mapkv"));
    no_temp_files(locked + "/copy.mapkv");
  }
  ExpectDatabase(db);
}

// An older copy that no process has open is replaced in one step; leftovers of killed backups and
// compactions to the same name are removed first.
TEST(CompactTest, BackupReplacesAnOlderCopyAndRemovesLeftovers) {
  TempDir dir;
  const std::string db = dir.File("db.mapkv");
  MakeDatabase(db);
  const std::string copy = dir.File("copy.mapkv");
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> old, DB::Open(copy));
    ASSERT_OK(old->Put("only in the old copy", "x"));
  }
  const std::string backup_leftover = absl::StrCat(copy, ".backup-4242-0badf00d.tmp");
  const std::string compact_leftover = absl::StrCat(copy, ".compact-4243-00c0ffee.tmp");
  ASSERT_TRUE(test::WriteFile(backup_leftover, "the start of a backup"));
  ASSERT_TRUE(test::WriteFile(compact_leftover, "the start of a compaction"));

  CompactOptions options;
  options.replace_existing = true;
  ASSERT_OK_AND_ASSIGN(const CompactResult result, Backup(db, copy, options));
  EXPECT_TRUE(result.replaced);
  EXPECT_EQ(result.removed_leftovers.size(), 2u);
  EXPECT_FALSE(test::FileExists(backup_leftover) || test::FileExists(compact_leftover));
  ExpectDatabase(copy);
  Options existing;
  existing.create_if_missing = false;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> replaced, DB::Open(copy, existing));
  EXPECT_STATUS(replaced->Get("only in the old copy"), absl::StatusCode::kNotFound);
  EXPECT_TRUE(TempFiles(copy, "backup").empty());
}

// Run as root, the copy is the database owner's, with its mode, as compaction's is.
TEST(CompactTest, BackupAsRootGivesTheCopyTheDatabasesOwnerAndMode) {
  if (internal::CurrentUid() != 0) GTEST_SKIP() << "needs root (it gives files to nobody)";
  TempDir dir;
  const std::string db = dir.File("db.mapkv");
  MakeDatabase(db);
  SetPermissions(db, 0640);
  if (!GiveAway(db, kNobody, kNobody)) GTEST_SKIP() << "files cannot be given away here";
  const std::string copy = dir.File("copy.mapkv");
  ASSERT_OK(Backup(db, copy).status());
  ASSERT_OK_AND_ASSIGN(const FileInfo info, internal::StatFile(copy));
  EXPECT_EQ(info.uid, kNobody);
  EXPECT_EQ(info.gid, kNobody);
  EXPECT_EQ(info.mode & 07777, 0640u);
  ExpectDatabase(copy);
}

}  // namespace
}  // namespace mapkv
