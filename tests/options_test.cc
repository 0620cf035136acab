// Options that decide who may do what with the file: the permissions of a new file, an exclusive
// open, read-only opens by a user who may only read the file, and the info log.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "src/format.h"
#include "test_util.h"

namespace mapkv {
namespace {

namespace fs = std::filesystem;
using ::absl::StatusCode;

fs::perms Perms(const std::string& path) {
  return fs::status(path).permissions() & fs::perms::mask;
}

Options Quick() {
  Options options;
  options.lock_timeout = std::chrono::milliseconds(300);
  return options;
}

TEST(FileModeTest, NewFilesAreReadableAndWritableByTheirOwnerOnly) {
  test::TempDir dir;
  const std::string path = dir.File("db");
  ASSERT_OK(DB::Open(path, Options{}).status());
  EXPECT_EQ(Perms(path), fs::perms::owner_read | fs::perms::owner_write);
}

TEST(FileModeTest, FileModeIsHonouredAndNeverWidened) {
  test::TempDir dir;
  const mode_t old_umask = umask(027);  // narrows: group may not write, others get nothing
  Options options;
  options.file_mode = 0666;
  ASSERT_OK(DB::Open(dir.File("wide"), options).status());
  options.file_mode = 0640;
  ASSERT_OK(DB::Open(dir.File("group"), options).status());
  umask(old_umask);
  EXPECT_EQ(Perms(dir.File("wide")), static_cast<fs::perms>(0640));
  EXPECT_EQ(Perms(dir.File("group")), static_cast<fs::perms>(0640));
  // An existing file keeps its mode whatever the option says.
  fs::permissions(dir.File("group"), static_cast<fs::perms>(0600));
  options.file_mode = 0644;
  ASSERT_OK(DB::Open(dir.File("group"), options).status());
  EXPECT_EQ(Perms(dir.File("group")), static_cast<fs::perms>(0600));
}

TEST(ExclusiveTest, RefusedWhileAnotherHandleHasTheFileOpen) {
  test::TempDir dir;
  const std::string path = dir.File("db");
  ASSERT_OK_AND_ASSIGN(auto other, DB::Open(path, Quick()));
  Options exclusive = Quick();
  exclusive.exclusive = true;
  auto db = DB::Open(path, exclusive);
  EXPECT_EQ(db.status().code(), StatusCode::kFailedPrecondition) << db.status();
  EXPECT_TRUE(absl::StrContains(db.status().message(), path)) << db.status();
}

TEST(ExclusiveTest, KeepsOtherOpensOutUntilClosed) {
  test::TempDir dir;
  const std::string path = dir.File("db");
  Options exclusive = Quick();
  exclusive.exclusive = true;
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, exclusive));
    ASSERT_OK(db->Put("k", "v"));
    auto other = DB::Open(path, Quick());  // a second open file: a lock conflict like any other
    EXPECT_EQ(other.status().code(), StatusCode::kDeadlineExceeded) << other.status();
    EXPECT_TRUE(absl::StrContains(other.status().message(), "exclusively")) << other.status();
    const int child = test::RunChild([&] {
      auto db = DB::Open(path, Quick());
      CHILD_CHECK(db.status().code() == StatusCode::kDeadlineExceeded, db.status().ToString());
      return 0;
    });
    EXPECT_EQ(child, 0);
  }
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Quick()));
  EXPECT_EQ(*db->Get("k"), "v");
  Options both = exclusive;
  both.read_only = true;
  EXPECT_EQ(DB::Open(path, both).status().code(), StatusCode::kInvalidArgument);
}

// Runs `fn` in a child that may read the file at `path` but not write it: as root, the child
// becomes nobody (the file is made readable by all); otherwise the file is made read-only.
int RunAsReader(const test::TempDir& dir, const std::string& path, std::function<int()> fn) {
  return test::RunChild([&] {
    if (geteuid() == 0) {
      CHILD_CHECK(setresgid(65534, 65534, 65534) == 0 && setresuid(65534, 65534, 65534) == 0,
                  std::strerror(errno));
    }
    CHILD_CHECK(access(path.c_str(), R_OK) == 0 && access(path.c_str(), W_OK) != 0,
                "the child must be able to read the file but not write it");
    return fn();
  });
}

class ReadPermissionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path_, Quick()));
    for (int i = 0; i < 100; ++i) ASSERT_OK(db->Put(absl::StrCat("key", i), absl::StrCat(i)));
    ASSERT_OK(db->Checkpoint());
    db.reset();
    fs::permissions(dir_.path(), static_cast<fs::perms>(0755));
    fs::permissions(path_, static_cast<fs::perms>(geteuid() == 0 ? 0644 : 0444));
  }

  test::TempDir dir_;
  const std::string path_ = dir_.File("db");
};

TEST_F(ReadPermissionTest, ReadOnlyOpenReadsEverythingAndWritesNothing) {
  const std::string before = test::ReadFile(path_);
  const int child = RunAsReader(dir_, path_, [&] {
    Options options = Quick();
    CHILD_CHECK(DB::Open(path_, options).status().code() == StatusCode::kPermissionDenied,
                "a writable open needs write permission");
    options.read_only = true;
    auto db = DB::Open(path_, options);
    CHILD_CHECK_OK(db.status());
    for (int i = 0; i < 100; ++i) {
      auto v = (*db)->Get(absl::StrCat("key", i));
      CHILD_CHECK(v.ok() && *v == absl::StrCat(i), i);
    }
    CHILD_CHECK(absl::IsNotFound((*db)->Get("missing").status()));
    auto txn = (*db)->BeginRead();
    CHILD_CHECK_OK(txn.status());
    int seen = 0;
    CHILD_CHECK_OK(txn->ForEach([&](std::string_view, std::string_view) { return ++seen > 0; }));
    CHILD_CHECK(seen == 100 && txn->Count() == 100, seen);
    CHILD_CHECK_OK((*db)->Verify());
    CHILD_CHECK((*db)->GetStats().keys == 100 && (*db)->GetStats().open_handles == 1);
    CHILD_CHECK((*db)->Put("k", "v").code() == StatusCode::kPermissionDenied);
    CHILD_CHECK((*db)->Checkpoint().code() == StatusCode::kPermissionDenied);
    return 0;
  });
  EXPECT_EQ(child, 0);
  EXPECT_EQ(test::ReadFile(path_), before) << "a reader without write permission changed the file";
}

TEST_F(ReadPermissionTest, ReaderAndWritersExcludeEachOther) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: the writer and the reader are different users";
  test::Pipe opened, done;
  const pid_t reader = test::ForkChild([&] {
    CHILD_CHECK(setresgid(65534, 65534, 65534) == 0 && setresuid(65534, 65534, 65534) == 0);
    Options options = Quick();
    options.read_only = true;
    auto db = DB::Open(path_, options);
    CHILD_CHECK_OK(db.status());
    CHILD_CHECK(opened.WriteU64(1));
    done.CloseWrite();
    std::string ignored;  // until the parent closes its end
    done.ReadUntil(std::chrono::steady_clock::now() + std::chrono::seconds(30), &ignored);
    return 0;
  });
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (got.size() < 8 && std::chrono::steady_clock::now() < deadline) {
    if (!opened.ReadUntil(std::chrono::steady_clock::now() + std::chrono::milliseconds(50), &got)) {
      break;
    }
  }
  ASSERT_EQ(got.size(), 8u) << "the reader did not open";
  auto writer = DB::Open(path_, Quick());
  EXPECT_EQ(writer.status().code(), StatusCode::kFailedPrecondition) << writer.status();
  EXPECT_TRUE(absl::StrContains(writer.status().message(), "without write permission"))
      << writer.status();
  done.CloseWrite();
  EXPECT_EQ(test::WaitChild(reader), 0);

  // And the other way round: a writer has it open, the reader is refused.
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path_, Quick()));
  const int child = RunAsReader(dir_, path_, [&] {
    Options options = Quick();
    options.read_only = true;
    auto db = DB::Open(path_, options);
    CHILD_CHECK(db.status().code() == StatusCode::kFailedPrecondition, db.status().ToString());
    return 0;
  });
  EXPECT_EQ(child, 0);
}

TEST_F(ReadPermissionTest, AFileThatNeedsRecoveryIsRefusedWithAClearMessage) {
  // As after a machine stop: not closed cleanly, and last used in another boot.
  test::WriteFileU64(path_, internal::kSharedStateOffset + offsetof(internal::SharedState, clean),
                     0);
  test::WriteFileU64(path_, internal::kSharedStateOffset + offsetof(internal::SharedState, boot_id),
                     12345);
  const int child = RunAsReader(dir_, path_, [&] {
    Options options = Quick();
    options.read_only = true;
    auto db = DB::Open(path_, options);
    CHILD_CHECK(db.status().code() == StatusCode::kFailedPrecondition, db.status().ToString());
    CHILD_CHECK(absl::StrContains(db.status().message(), "write permission"),
                db.status().ToString());
    return 0;
  });
  EXPECT_EQ(child, 0);
}

TEST(InfoLogTest, RebuildIsReportedThroughTheLogWithItsCost) {
  test::TempDir dir;
  const std::string path = dir.File("db");
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Options{}));
    for (int i = 0; i < 50; ++i) ASSERT_OK(db->Put(absl::StrCat("k", i), "v"));
  }
  // Another boot found the file not closed cleanly.
  test::WriteFileU64(path, internal::kSharedStateOffset + offsetof(internal::SharedState, boot_id),
                     12345);
  std::vector<std::string> lines;
  Options options;
  options.info_log = [&](std::string_view line) { lines.emplace_back(line); };
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, options));
  ASSERT_TRUE(db->GetStats().rebuilt_index);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(absl::StrContains(lines[0], path)) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "rebuilt the index from the log")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "50 keys")) << lines[0];
  // Reopened after a clean close: no rebuild, nothing logged.
  ASSERT_OK(db->Checkpoint());
  db.reset();
  lines.clear();
  ASSERT_OK_AND_ASSIGN(db, DB::Open(path, options));
  EXPECT_FALSE(db->GetStats().rebuilt_index);
  EXPECT_TRUE(lines.empty());
}

}  // namespace
}  // namespace mapkv
