// One file format on every platform: a database written by the Linux build opens and reads the
// same on the Windows build, and the other way round.
//
// With MAPKV_INTEROP_DIR set, each build writes two databases there, named after its platform:
//   <platform>-clean.mapkv    closed after a checkpoint: the next opener trusts its index;
//   <platform>-unclean.mapkv  closed with commits after the last checkpoint, so the next opener
//                             on another platform (another boot id) rebuilds the index from the
//                             log;
// and checks every database another platform left there: a copy of each is opened, read key by
// key against the same deterministic contents, verified, written to and grown. .ci/run runs the
// Linux build, then the Windows build under wine (which checks the Linux files), then this test
// of the Linux build again (which checks the Windows files), with MAPKV_INTEROP_REQUIRE=1 so that
// a missing file fails instead of skipping. Without MAPKV_INTEROP_DIR the test writes and reads
// its own files in a temporary directory.
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "test_util.h"

namespace mapkv {
namespace {

constexpr int kKeys = 30000;

std::string Key(int i) { return absl::StrFormat("key/%06d", i); }

// Contents are defined by the raw output of std::mt19937_64, which the standard fixes for every
// implementation (distributions are not portable across standard libraries; this avoids them).
std::string Value(int i, int version) {
  std::mt19937_64 rng(static_cast<uint64_t>(i) * 1000003u + static_cast<uint64_t>(version));
  std::string value(static_cast<size_t>(1 + rng() % 700), '\0');
  for (char& c : value) c = static_cast<char>(rng() & 0xff);
  return value;
}

// Every key i: absent when i % 7 == 3 (deleted), version 2 when i % 5 == 0, else version 1.
bool Present(int i) { return i % 7 != 3; }
int VersionOf(int i) { return i % 5 == 0 ? 2 : 1; }

absl::Status Fill(DB& db, bool clean) {
  for (int start = 0; start < kKeys; start += 1000) {
    absl::StatusOr<WriteTxn> txn = db.BeginWrite();
    if (!txn.ok()) return txn.status();
    for (int i = start; i < start + 1000; ++i) {
      if (absl::Status s = txn->Put(Key(i), Value(i, 1)); !s.ok()) return s;
    }
    if (absl::Status s = txn->Commit(); !s.ok()) return s;
  }
  if (absl::Status s = db.Checkpoint(); !s.ok()) return s;
  // The overwrites and deletes come after the checkpoint: an unclean file has them only in its
  // log, past what the checkpoint covered.
  for (int i = 0; i < kKeys; ++i) {
    if (!Present(i)) {
      if (absl::Status s = db.Delete(Key(i)); !s.ok()) return s;
    } else if (VersionOf(i) == 2) {
      if (absl::Status s = db.Put(Key(i), Value(i, 2)); !s.ok()) return s;
    }
  }
  return clean ? db.Checkpoint() : absl::OkStatus();
}

// Reads `path` (a copy: opening writes the lock words) and checks everything; then writes and
// grows it, as a process of this platform would.
void CheckFile(const std::string& path, bool expect_rebuild) {
  SCOPED_TRACE(path);
  Options options;
  options.create_if_missing = false;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  const Stats stats = db->GetStats();
  EXPECT_EQ(stats.rebuilt_index, expect_rebuild);
  int present = 0;
  for (int i = 0; i < kKeys; ++i) {
    absl::StatusOr<std::string> got = db->Get(Key(i));
    if (!Present(i)) {
      ASSERT_STATUS(got, absl::StatusCode::kNotFound) << Key(i);
      continue;
    }
    ++present;
    ASSERT_OK_AND_EQ(got, Value(i, VersionOf(i))) << Key(i);
  }
  EXPECT_EQ(stats.keys, static_cast<uint64_t>(present));
  std::vector<VerifyProblem> problems;
  EXPECT_OK(db->Verify(&problems));
  EXPECT_TRUE(problems.empty()) << problems.size() << " problems, the first at offset "
                                << problems.front().offset;
  // Past the file's end: the other platform's file grows here.
  const uint64_t size_before = stats.file_size;
  const std::string big(64 * 1024, 'g');
  for (int i = 0; db->GetStats().file_size == size_before; ++i) {
    ASSERT_OK(db->Put(absl::StrCat("grow/", i), big));
  }
  ASSERT_OK(db->Checkpoint());
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, DB::Open(path, options));
  EXPECT_OK_AND_EQ(db->Get("grow/0"), big);
  EXPECT_OK_AND_EQ(db->Get(Key(kKeys - 1)), Value(kKeys - 1, VersionOf(kKeys - 1)));
}

TEST(InteropTest, FilesOfEveryPlatformReadTheSame) {
  test::TempDir temp;
  const char* shared = std::getenv("MAPKV_INTEROP_DIR");
  const bool required = test::EnvInt("MAPKV_INTEROP_REQUIRE", 0) != 0;
  const std::string dir = shared != nullptr && *shared != '\0' ? shared : temp.path();
  std::filesystem::create_directories(dir);
  const std::string me = MAPKV_PLATFORM_NAME;

  for (const bool clean : {true, false}) {
    const std::string path = absl::StrCat(dir, "/", me, clean ? "-clean" : "-unclean", ".mapkv");
    std::filesystem::remove(path);
    Options options;
    options.max_file_size = 256ull << 20;
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
    ASSERT_OK(Fill(*db, clean));
  }

  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const bool clean = name.ends_with("-clean.mapkv");
    if (!clean && !name.ends_with("-unclean.mapkv")) continue;
    const std::string platform = name.substr(0, name.rfind(clean ? "-clean" : "-unclean"));
    if (platform == me && shared != nullptr) continue;  // another platform's files only
    const std::string copy = temp.File(absl::StrCat("copy-of-", name));
    std::filesystem::copy_file(entry.path(), copy,
                               std::filesystem::copy_options::overwrite_existing);
    // The same boot and platform keeps the unclean file's index (the page cache had it all);
    // another platform has another boot id and rebuilds it from the log.
    CheckFile(copy, !clean && platform != me);
    ++checked;
  }
  if (checked == 0) {
    if (required) FAIL() << "no other platform's database in " << dir;
    GTEST_SKIP() << "no other platform's database in " << dir << " (set MAPKV_INTEROP_DIR)";
  }
}

}  // namespace
}  // namespace mapkv
