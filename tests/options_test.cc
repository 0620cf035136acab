// Options that decide who may do what with the file: the permissions of a new file, an exclusive
// open, read-only opens by a user who may only read the file, and the info log.
//
// File modes go through the platform layer (src/platform/fs.h). Windows has no uids, no umask, no
// permission bits but one read-only attribute (a mode of 0444 or 0666) and no root who passes
// every permission check: the cases about those skip there (kPosixUsers). A read-only attribute
// is what takes the write permission away from a reader there, as mode 0444 does on POSIX.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "src/format.h"
#include "src/platform/fs.h"
#include "test_util.h"

// ---------------------------------------------------------------------------------------------
// The one platform-specific part of this test: POSIX users and the umask, which the platform
// layer does not offer (mapkv never changes either). Where they do not exist (Windows) the stubs
// below are never called: every case that needs them skips when kPosixUsers is false.
#ifdef _WIN32
namespace mapkv {
namespace {
constexpr bool kPosixUsers = false;
bool RunningAsRoot() { return false; }
bool BecomeNobody(std::string* error) {
  *error = "no POSIX users here";
  return false;
}
uint32_t SetUmask(uint32_t) { return 0; }
}  // namespace
}  // namespace mapkv
#else
#include <sys/stat.h>
#include <unistd.h>

namespace mapkv {
namespace {
// Whether there are uids, gids, owner/group/other permission bits and a umask.
constexpr bool kPosixUsers = true;
// Whether this process is root, whom permission bits do not stop.
bool RunningAsRoot() { return geteuid() == 0; }
// Makes this process nobody (uid and gid 65534) for good; false, with *error, when it cannot.
bool BecomeNobody(std::string* error) {
  if (setresgid(65534, 65534, 65534) == 0 && setresuid(65534, 65534, 65534) == 0) return true;
  *error = std::strerror(errno);
  return false;
}
// Sets this process's umask; returns the old one.
uint32_t SetUmask(uint32_t mask) { return umask(static_cast<mode_t>(mask)); }
}  // namespace
}  // namespace mapkv
#endif
// ---------------------------------------------------------------------------------------------

namespace mapkv {
namespace {

using ::absl::StatusCode;
using ::mapkv::test::ChildPipe;
using ::mapkv::test::Pipe;
using ::mapkv::test::RunChild;
using ::mapkv::test::StartChild;

constexpr char kNoPosixUsers[] =
    "about POSIX users and permission bits; on Windows a file has only a read-only attribute "
    "(StatFile: mode 0444 or 0666), there is no umask, and no account bypasses the attribute";

// The permission bits of `path`, in octal ("0600"); "error: ..." when it cannot be looked at.
std::string Mode(const std::string& path) {
  absl::StatusOr<internal::FileInfo> info = internal::StatFile(path);
  if (!info.ok()) return absl::StrCat("error: ", info.status().ToString());
  return absl::StrFormat("%04o", info->mode & 07777);
}

// Whether this process may open `path` for reading, or for reading and writing (nothing is
// written): what its permissions (POSIX) or its read-only attribute (Windows) let it do.
bool MayOpen(const std::string& path, bool write) {
  std::fstream file(path, write ? std::ios::in | std::ios::out | std::ios::binary
                                : std::ios::in | std::ios::binary);
  return file.is_open();
}

Options Quick() {
  Options options;
  options.lock_timeout = std::chrono::milliseconds(300);
  return options;
}

TEST(FileModeTest, NewFilesAreReadableAndWritableByTheirOwnerOnly) {
  if (!kPosixUsers) GTEST_SKIP() << kNoPosixUsers;
  test::TempDir dir;
  const std::string path = dir.File("db");
  ASSERT_OK(DB::Open(path, Options{}).status());
  EXPECT_EQ(Mode(path), "0600");
}

TEST(FileModeTest, FileModeIsHonouredAndNeverWidened) {
  if (!kPosixUsers) GTEST_SKIP() << kNoPosixUsers;
  test::TempDir dir;
  const uint32_t old_umask = SetUmask(027);  // narrows: group may not write, others get nothing
  Options options;
  options.file_mode = 0666;
  ASSERT_OK(DB::Open(dir.File("wide"), options).status());
  options.file_mode = 0640;
  ASSERT_OK(DB::Open(dir.File("group"), options).status());
  SetUmask(old_umask);
  EXPECT_EQ(Mode(dir.File("wide")), "0640");
  EXPECT_EQ(Mode(dir.File("group")), "0640");
  // An existing file keeps its mode whatever the option says.
  ASSERT_OK(internal::SetMode(dir.File("group"), 0600));
  options.file_mode = 0644;
  ASSERT_OK(DB::Open(dir.File("group"), options).status());
  EXPECT_EQ(Mode(dir.File("group")), "0600");
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

// Another process, while the parent has the database open exclusively: its open times out.
// Arguments: path.
MAPKV_CHILD(LockedOutChild) {
  auto db = DB::Open(args.at(0), Quick());
  CHILD_CHECK(db.status().code() == StatusCode::kDeadlineExceeded, db.status().ToString());
  return 0;
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
    const int child = RunChild("LockedOutChild", {path});
    EXPECT_EQ(child, 0) << test::ExitStatusToString(child);
  }
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Quick()));
  EXPECT_EQ(*db->Get("k"), "v");
  Options both = exclusive;
  both.read_only = true;
  EXPECT_EQ(DB::Open(path, both).status().code(), StatusCode::kInvalidArgument);
}

// The start of every reader child, which may read the file at `path` but not write it: as root,
// it becomes nobody (the file is readable by all); otherwise the file is read-only (mode 0444,
// Windows: the read-only attribute). Returns 0, or kChildCheckFailed when the child could write.
int BecomeReader(const std::string& path) {
  if (RunningAsRoot()) {
    std::string error;
    CHILD_CHECK(BecomeNobody(&error), error);
  }
  CHILD_CHECK(MayOpen(path, /*write=*/false) && !MayOpen(path, /*write=*/true),
              "the child must be able to read the file but not write it");
  return 0;
}

class ReadPermissionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path_, Quick()));
    for (int i = 0; i < 100; ++i) ASSERT_OK(db->Put(absl::StrCat("key", i), absl::StrCat(i)));
    ASSERT_OK(db->Checkpoint());
    db.reset();
    ASSERT_OK(internal::SetMode(dir_.path(), 0755));
    ASSERT_NO_FATAL_FAILURE(ForReadersOnly());
    if (!RunningAsRoot() && MayOpen(path_, /*write=*/true)) {
      GTEST_SKIP() << "a read-only file opens for writing here, so no process lacks write "
                      "permission (wine run as root: the read-only attribute is mode 0444 to "
                      "Linux, which root passes)";
    }
  }
  // Windows removes no read-only file: TempDir could not clean up after this test.
  void TearDown() override { (void)internal::SetMode(path_, 0644); }

  // Lets the reader children (BecomeReader) read the file but not write it.
  void ForReadersOnly() { ASSERT_OK(internal::SetMode(path_, RunningAsRoot() ? 0644 : 0444)); }

  test::TempDir dir_;
  const std::string path_ = dir_.File("db");
};

// A reader without write permission: a writable open is refused, a read-only one reads everything
// and writes nothing. Arguments: path.
MAPKV_CHILD(ReadOnlyOpenChild) {
  const std::string& path = args.at(0);
  if (int rc = BecomeReader(path); rc != 0) return rc;
  Options options = Quick();
  CHILD_CHECK(DB::Open(path, options).status().code() == StatusCode::kPermissionDenied,
              "a writable open needs write permission");
  options.read_only = true;
  auto db = DB::Open(path, options);
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
}

TEST_F(ReadPermissionTest, ReadOnlyOpenReadsEverythingAndWritesNothing) {
  const std::string before = test::ReadFile(path_);
  const int child = RunChild("ReadOnlyOpenChild", {path_});
  EXPECT_EQ(child, 0) << test::ExitStatusToString(child);
  EXPECT_EQ(test::ReadFile(path_), before) << "a reader without write permission changed the file";
}

// A reader that is another user than the parent (root becomes nobody): opens the database
// read-only, says so with 8 bytes on `opened`, and keeps it open until the parent closes `done`.
// Arguments: path, the write end of `opened`, the read end of `done`.
MAPKV_CHILD(HoldingReaderChild) {
  const std::string& path = args.at(0);
  ChildPipe opened = args.PipeEnd(1);
  ChildPipe done = args.PipeEnd(2);
  std::string error;
  CHILD_CHECK(BecomeNobody(&error), error);
  Options options = Quick();
  options.read_only = true;
  auto db = DB::Open(path, options);
  CHILD_CHECK_OK(db.status());
  CHILD_CHECK(opened.WriteU64(1));
  std::string ignored;  // until the parent closes its end
  done.ReadUntil(std::chrono::steady_clock::now() + std::chrono::seconds(30), &ignored);
  return 0;
}

// A reader without write permission while a writer has the database open: refused. Arguments:
// path.
MAPKV_CHILD(RefusedReaderChild) {
  const std::string& path = args.at(0);
  if (int rc = BecomeReader(path); rc != 0) return rc;
  Options options = Quick();
  options.read_only = true;
  auto db = DB::Open(path, options);
  CHILD_CHECK(db.status().code() == StatusCode::kFailedPrecondition, db.status().ToString());
  return 0;
}

TEST_F(ReadPermissionTest, ReaderAndWritersExcludeEachOther) {
  if (!kPosixUsers) GTEST_SKIP() << kNoPosixUsers << " (this case needs two users)";
  if (!RunningAsRoot()) {
    GTEST_SKIP() << "needs root: the writer and the reader are different users";
  }
  Pipe opened, done;
  const int reader =
      StartChild("HoldingReaderChild", {path_, opened.WriteEndArg(), done.ReadEndArg()});
  opened.CloseWrite();
  done.CloseRead();
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
  const int child = RunChild("RefusedReaderChild", {path_});
  EXPECT_EQ(child, 0) << test::ExitStatusToString(child);
}

// A reader without write permission, of a file that needs recovery: refused, saying why.
// Arguments: path.
MAPKV_CHILD(RecoveryRefusedChild) {
  const std::string& path = args.at(0);
  if (int rc = BecomeReader(path); rc != 0) return rc;
  Options options = Quick();
  options.read_only = true;
  auto db = DB::Open(path, options);
  CHILD_CHECK(db.status().code() == StatusCode::kFailedPrecondition, db.status().ToString());
  CHILD_CHECK(absl::StrContains(db.status().message(), "write permission"), db.status().ToString());
  return 0;
}

TEST_F(ReadPermissionTest, AFileThatNeedsRecoveryIsRefusedWithAClearMessage) {
  // As after a machine stop: not closed cleanly, and last used in another boot. Written with the
  // write permission back, so that the writes happen whoever runs this.
  const uint64_t clean_at = internal::kSharedStateOffset + offsetof(internal::SharedState, clean);
  const uint64_t boot_id_at =
      internal::kSharedStateOffset + offsetof(internal::SharedState, boot_id);
  ASSERT_OK(internal::SetMode(path_, 0644));
  test::WriteFileU64(path_, clean_at, 0);
  test::WriteFileU64(path_, boot_id_at, 12345);
  ASSERT_EQ(test::ReadFileU64(path_, boot_id_at), 12345u) << "the damage was not written";
  ASSERT_NO_FATAL_FAILURE(ForReadersOnly());
  const int child = RunChild("RecoveryRefusedChild", {path_});
  EXPECT_EQ(child, 0) << test::ExitStatusToString(child);
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
