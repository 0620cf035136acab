// What a file from an untrusted source, a user with read permission alone, or a user who may
// write the directory can do to a process that opens a database, and what they cannot: crafted
// headers and shared state, lock bytes held by someone else, links planted where a database is to
// be created, and read-only opens that must leave the file exactly as it was. POSIX only (uids,
// symbolic links, byte locks taken by hand); the attacks that need a second user run as nobody
// when the suite runs as root, and skip otherwise.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mapkv/cache.h"
#include "mapkv/db.h"
#include "src/format.h"
#include "src/hash.h"
#include "src/log.h"
#include "src/platform/fs.h"
#include "src/platform/process.h"
#include "test_util.h"

namespace mapkv {
namespace {

using ::absl::StatusCode;
using internal::FileHeader;
using internal::SharedState;

bool RunningAsRoot() { return geteuid() == 0; }

bool BecomeNobody() {
  return setresgid(65534, 65534, 65534) == 0 && setresuid(65534, 65534, 65534) == 0;
}

Options Quick() {
  Options options;
  options.lock_timeout = std::chrono::milliseconds(300);
  return options;
}

// A closed database file, loaded to be damaged by hand and written back.
class FileImage {
 public:
  explicit FileImage(const std::string& path) : path_(path), bytes_(test::ReadFile(path)) {}

  FileHeader& header() { return *reinterpret_cast<FileHeader*>(bytes_.data()); }
  SharedState& state() {
    return *reinterpret_cast<SharedState*>(bytes_.data() + internal::kSharedStateOffset);
  }
  char* at(uint64_t offset) { return bytes_.data() + offset; }
  size_t size() const { return bytes_.size(); }

  void FixHeaderChecksum() {
    header().checksum = internal::Hash64(&header(), offsetof(FileHeader, checksum), 0);
  }
  // As an unclean stop in another boot would leave it: the first opener must recover.
  void FromAnotherBoot() {
    state().boot_id.store(0x1234 | 1);
    state().clean.store(0);
  }
  void Write() const { ASSERT_TRUE(test::WriteFile(path_, bytes_)); }

 private:
  std::string path_;
  std::string bytes_;
};

// The first slot of the current index table that holds a key.
uint64_t FirstUsedSlot(FileImage& image) {
  const uint64_t record = image.state().index_record.load();
  const auto* h = reinterpret_cast<const internal::RecordHeader*>(image.at(record));
  const uint64_t slots = internal::IndexSlotsOffset(record);
  for (uint64_t i = 0; i < (uint64_t{1} << h->key_len); ++i) {
    const uint64_t at = slots + i * sizeof(internal::Slot);
    auto* slot = reinterpret_cast<internal::Slot*>(image.at(at));
    if (slot->offset.load() > internal::kTombstone) return at;
  }
  return 0;
}

// ---- Crafted files ----

// A v3 ring whose header puts the ring (and the tables before it) past the end of the file:
// resetting the ring after an unclean stop would zero bytes the file does not have (SIGBUS), and
// with index bits 40, 32 TiB of them.
TEST(CraftedFileTest, RingStartPastTheFileIsRefused) {
  test::TempDir dir;
  const std::string path = dir.File("ring.mapkv");
  {
    CacheOptions options;
    options.capacity = 1 << 20;
    ASSERT_OK_AND_ASSIGN(auto cache, Cache::Open(path, options));
    ASSERT_OK(cache->Put("k", "v"));
  }
  const std::string pristine = test::ReadFile(path);
  for (uint32_t bits : {16u, 40u}) {
    SCOPED_TRACE(bits);
    ASSERT_TRUE(test::WriteFile(path, pristine));
    FileImage image(path);
    ASSERT_EQ(image.header().format_version, internal::kRingFormatVersion);
    const uint64_t ring_start = internal::kHeaderSize + 2 * internal::RingTableSize(bits);
    ASSERT_GT(ring_start, image.size());
    image.header().ring_start = ring_start;
    image.header().max_file_size =
        (ring_start + (1 << 20)) / internal::kSizeGranule * internal::kSizeGranule;
    image.FixHeaderChecksum();
    image.FromAnotherBoot();
    ASSERT_NO_FATAL_FAILURE(image.Write());
    const std::string before = test::ReadFile(path);
    CacheOptions options;
    options.capacity = 1 << 20;
    auto opened = Cache::Open(path, options);
    EXPECT_STATUS(opened, StatusCode::kDataLoss);
    EXPECT_NE(opened.status().message().find("offset 48"), std::string::npos) << opened.status();
    EXPECT_TRUE(test::ReadFile(path) == before) << "a refused Open changed the file";
  }
}

// The shared state claims a larger file than there is, and an index slot points past the real
// end: a reader without write permission (a detached handle, which nobody else may join) must
// get DataLoss, not SIGBUS.
MAPKV_CHILD(DetachedReadOfCraftedFileChild) {
  const std::string& path = args.at(0);
  CHILD_CHECK(BecomeNobody(), std::strerror(errno));
  Options options = Quick();
  options.read_only = true;
  auto db = DB::Open(path, options);
  if (db.ok()) {
    // Whatever Open let through, reads answer with a status.
    for (int i = 0; i < 50; ++i) (void)(*db)->Get(absl::StrCat("key", i));
    return 0;
  }
  CHILD_CHECK(db.status().code() == StatusCode::kDataLoss, db.status().ToString());
  CHILD_CHECK(db.status().message().find("recorded size") != std::string::npos,
              db.status().ToString());
  return 0;
}

TEST(CraftedFileTest, DetachedReaderNeverTrustsTheRecordedSize) {
  if (!RunningAsRoot()) GTEST_SKIP() << "needs root, to read as nobody";
  test::TempDir dir;
  ASSERT_OK(internal::SetMode(dir.path(), 0755));
  const std::string path = dir.File("db");
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Quick()));
    for (int i = 0; i < 50; ++i) ASSERT_OK(db->Put(absl::StrCat("key", i), "value"));
    ASSERT_OK(db->Checkpoint());
  }
  FileImage image(path);
  ASSERT_EQ(image.state().clean.load(), 1u);
  const uint64_t slot = FirstUsedSlot(image);
  ASSERT_NE(slot, 0u);
  const uint64_t beyond = image.size() + (1 << 20);
  reinterpret_cast<internal::Slot*>(image.at(slot))->offset.store(beyond);
  image.state().file_size.store(beyond + (1 << 20));
  ASSERT_NO_FATAL_FAILURE(image.Write());
  ASSERT_OK(internal::SetMode(path, 0644));
  const std::string before = test::ReadFile(path);
  const int child = test::RunChild("DetachedReadOfCraftedFileChild", {path});
  EXPECT_EQ(child, 0) << test::ExitStatusToString(child);
  EXPECT_TRUE(test::ReadFile(path) == before);
}

// ---- Read-only opens never change the file ----

// Two committed batches (48 and 352 puts), never checkpointed, then the second one's commit
// record claims another record count (checksums fixed), and the file comes from another boot
// without a clean close: a writable open rebuilds the index from the log and keeps only the first
// batch.
std::string DamagedSecondBatch(const test::TempDir& dir) {
  const std::string path = dir.File("db");
  uint64_t second_commit = 0;
  {
    auto db = DB::Open(path, Quick());
    EXPECT_OK(db.status());
    if (!db.ok()) return path;
    for (int b = 0, key = 0; b < 2; ++b) {
      auto txn = (*db)->BeginWrite();
      EXPECT_OK(txn.status());
      for (int i = 0; i < (b == 0 ? 48 : 352); ++i, ++key) {
        EXPECT_OK(txn->Put(absl::StrCat("key", key), absl::StrCat("value", key)));
      }
      EXPECT_OK(txn->Commit());
    }
  }
  // The last record of the log is the second batch's kCommit.
  FileImage image(path);
  const uint64_t tail = image.state().committed_tail.load();
  for (uint64_t off = internal::kHeaderSize; off < tail;) {
    auto r = internal::ReadRecord(image.at(0), off, tail, image.header().salt, true);
    EXPECT_OK(r.status());
    if (!r.ok()) return path;
    if (r->type == internal::kCommit) second_commit = off;
    off += r->size;
  }
  EXPECT_NE(second_commit, 0u);
  internal::CommitPayload payload;
  char* value = image.at(second_commit) + sizeof(internal::RecordHeader) + 0;
  std::memcpy(&payload, value, sizeof(payload));
  payload.records += 1;
  std::memcpy(value, &payload, sizeof(payload));
  auto* h = reinterpret_cast<internal::RecordHeader*>(image.at(second_commit));
  h->checksum = internal::RecordChecksum(image.at(0), second_commit, image.header().salt);
  image.FromAnotherBoot();
  image.Write();
  return path;
}

// A read-only open of `path`, which needs recovery: refused as such, naming the file, and the
// file is byte for byte as it was.
void ExpectReadOnlyOpenRefusedUnchanged(const std::string& path) {
  const std::string before = test::ReadFile(path);
  Options options = Quick();
  options.read_only = true;
  auto opened = DB::Open(path, options);
  EXPECT_STATUS(opened, StatusCode::kFailedPrecondition);
  EXPECT_TRUE(IsNeedsRecovery(opened.status())) << opened.status();
  EXPECT_NE(opened.status().message().find(path), std::string::npos) << opened.status();
  EXPECT_TRUE(test::ReadFile(path) == before) << "a read-only open changed the file";
}

TEST(ReadOnlyTest, AnOpenThatNeedsRecoveryIsRefusedAndChangesNothing) {
  test::TempDir dir;
  const std::string path = DamagedSecondBatch(dir);
  ExpectReadOnlyOpenRefusedUnchanged(path);
  // A writable open recovers, as documented: the first batch only.
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Quick()));
  EXPECT_EQ(db->GetStats().keys, 48u);
}

// The same file through the tool's commands that only look: none of them changes a byte, and
// check reports what recovery would do instead of "ok".
TEST(ReadOnlyTest, ToolCommandsThatLookChangeNothing) {
#ifndef MAPKV_TOOL_PATH
  GTEST_SKIP() << "the mapkv tool is not built";
#else
  test::TempDir dir;
  const std::string path = DamagedSecondBatch(dir);
  const std::string before = test::ReadFile(path);
  const std::string out = dir.File("out.txt");
  for (const char* command : {"check", "dump", "stat", "get"}) {
    SCOPED_TRACE(command);
    std::string line = absl::StrCat(MAPKV_TOOL_PATH, " ", command, " ", path);
    if (std::string(command) == "get") absl::StrAppend(&line, " key1");
    absl::StrAppend(&line, " >", out, " 2>&1");
    const int status = std::system(line.c_str());
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_NE(WEXITSTATUS(status), 0) << test::ReadFile(out);
    EXPECT_NE(test::ReadFile(out).find("needs recovery"), std::string::npos) << test::ReadFile(out);
    EXPECT_TRUE(test::ReadFile(path) == before) << "mapkv " << command << " changed the file";
  }
#endif
}

// A database left by a writer that died half-way through a commit, in this boot: a read-only
// open does not finish that commit (a writable one does).
TEST(ReadOnlyTest, AHalfAppliedCommitIsLeftForAWriter) {
  test::TempDir dir;
  const std::string path = dir.File("db");
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Quick()));
    ASSERT_OK(db->Put("a", "1"));
  }
  uint64_t applied = 0;
  {
    FileImage image(path);
    applied = image.state().committed_tail.load();
  }
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Quick()));
    ASSERT_OK(db->Put("b", "2"));
  }
  FileImage image(path);
  image.state().applied_tail.store(applied);  // "b" committed, its index change not applied
  image.Write();
  ExpectReadOnlyOpenRefusedUnchanged(path);
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Quick()));
  EXPECT_OK_AND_EQ(db->Get("b"), "2");
}

// A clean file opened read-only by its owner: everything readable, and afterwards the header,
// the checkpoints, the durable state and the log are as they were.
TEST(ReadOnlyTest, ReadingEverythingChangesNoDataByte) {
  test::TempDir dir;
  const std::string path = dir.File("db");
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, Quick()));
    for (int i = 0; i < 300; ++i) ASSERT_OK(db->Put(absl::StrCat("key", i), absl::StrCat(i)));
    ASSERT_OK(db->Checkpoint());
  }
  const std::string before = test::ReadFile(path);
  {
    Options options = Quick();
    options.read_only = true;
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, options));
    EXPECT_OK(db->Verify());
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    uint64_t seen = 0;
    EXPECT_OK(txn.ForEach([&](std::string_view, std::string_view) { return ++seen > 0; }));
    EXPECT_EQ(seen, 300u);
    EXPECT_EQ(db->GetStats().keys, 300u);
    EXPECT_OK_AND_EQ(db->Get("key7"), "7");
  }
  const std::string after = test::ReadFile(path);
  ASSERT_EQ(after.size(), before.size());
  // The lock page and the process slots change; so may the boot id. Nothing else.
  std::string a = after, b = before;
  const uint64_t boot = internal::kSharedStateOffset + offsetof(SharedState, boot_id);
  std::memset(a.data() + boot, 0, 8);
  std::memset(b.data() + boot, 0, 8);
  for (std::string* s : {&a, &b}) {
    std::memset(s->data() + internal::kLockStateOffset, 0,
                internal::kHeaderSize - internal::kLockStateOffset);
  }
  EXPECT_TRUE(a == b) << "a read-only handle changed a data byte";
}

// ---- Lock bytes taken by a user with read permission alone ----

// Holds, shared, the lock bytes [first, first + count) of `path` until the parent closes `done`;
// says so on `held` first. As nobody when run as root. Arguments: path, first, count, held, done.
MAPKV_CHILD(HoldLockBytesChild) {
  const std::string& path = args.at(0);
  const uint64_t first = args.Int<uint64_t>(1);
  const uint64_t count = args.Int<uint64_t>(2);
  test::ChildPipe held = args.PipeEnd(3);
  test::ChildPipe done = args.PipeEnd(4);
  if (RunningAsRoot()) CHILD_CHECK(BecomeNobody(), std::strerror(errno));
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  CHILD_CHECK(fd >= 0, std::strerror(errno));
  struct flock fl;
  std::memset(&fl, 0, sizeof(fl));
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(first);
  fl.l_len = static_cast<off_t>(count);
  CHILD_CHECK(fcntl(fd, F_OFD_SETLK, &fl) == 0, std::strerror(errno));
  CHILD_CHECK(held.WriteU64(1));
  std::string ignored;
  done.ReadUntil(std::chrono::steady_clock::now() + std::chrono::seconds(60), &ignored);
  return 0;
}

class LockBytesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RunningAsRoot()) GTEST_SKIP() << "needs root, to hold the bytes as nobody";
    ASSERT_OK(internal::SetMode(dir_.path(), 0755));
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path_, Quick()));
    for (int i = 0; i < 50; ++i) ASSERT_OK(db->Put(absl::StrCat("key", i), "value"));
    ASSERT_OK(db->Checkpoint());
    db.reset();
    ASSERT_OK(internal::SetMode(path_, 0644));
  }
  // Starts the holder of [first, first + count) and waits until it holds them.
  void Hold(uint64_t first, uint64_t count) {
    pid_ = test::StartChild("HoldLockBytesChild",
                            {path_, first, count, held_.WriteEndArg(), done_.ReadEndArg()});
    held_.CloseWrite();
    done_.CloseRead();
    ASSERT_TRUE(held_.WaitByte()) << "the holder did not take the bytes";
  }
  void TearDown() override {
    if (pid_ > 0) {
      done_.CloseWrite();
      const int status = test::WaitChild(pid_);
      EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
    }
  }

  test::TempDir dir_;
  const std::string path_ = dir_.File("db");
  test::Pipe held_, done_;
  int pid_ = 0;
};

// Holding the open byte keeps writers from being the first opener, who validates the state: a
// writer that joins validates it as well, and a damaged state is DataLoss, never a crash.
TEST_F(LockBytesTest, AHeldOpenByteDoesNotLetADamagedStateThrough) {
  FileImage image(path_);
  image.state().file_size.store(image.size() * 4);
  image.state().committed_tail.store(image.size() * 2);
  image.Write();
  ASSERT_NO_FATAL_FAILURE(Hold(internal::kOpenLockByte, 1));
  for (bool read_only : {false, true}) {
    Options options = Quick();
    options.read_only = read_only;
    auto opened = DB::Open(path_, options);
    EXPECT_STATUS(opened, StatusCode::kDataLoss);
    EXPECT_NE(opened.status().message().find(path_), std::string::npos) << opened.status();
  }
}

// Holding every slot's byte makes every slot look taken: opens fail with a message that says
// what holds them, and a healthy file is unchanged.
TEST_F(LockBytesTest, HeldSlotBytesFailOpensCleanly) {
  ASSERT_NO_FATAL_FAILURE(Hold(internal::SlotLockByte(0), internal::kMaxSlots));
  const std::string before = test::ReadFile(path_);
  auto opened = DB::Open(path_, Quick());
  EXPECT_STATUS(opened, StatusCode::kResourceExhausted);
  EXPECT_NE(opened.status().message().find("read permission"), std::string::npos)
      << opened.status();
  EXPECT_EQ(test::ReadFile(path_).substr(internal::kHeaderSize),
            before.substr(internal::kHeaderSize));
}

// ---- Creating a database where others may write the directory ----

class CreateTest : public ::testing::Test {
 protected:
  test::TempDir dir_;
  const std::string path_ = dir_.File("db");
  const std::string victim_ = dir_.File("victim");
};

// A link planted under the name to a file with data after 4 KiB of zeros (which an interrupted
// creation once looked like): the open refuses and the file is untouched.
TEST_F(CreateTest, APlantedLinkToAFileIsNeverOverwritten) {
  const std::string data = std::string(4096, '\0') + "precious data";
  ASSERT_TRUE(test::WriteFile(victim_, data));
  ASSERT_EQ(symlink(victim_.c_str(), path_.c_str()), 0);
  auto opened = DB::Open(path_, Quick());
  EXPECT_STATUS(opened, StatusCode::kInvalidArgument);
  EXPECT_TRUE(test::ReadFile(victim_) == data) << "the linked file was overwritten";
}

// A link to an empty file, or to nothing: no database is made through it.
TEST_F(CreateTest, APlantedLinkToAnEmptyFileOrToNothingMakesNoDatabase) {
  ASSERT_TRUE(test::WriteFile(victim_, ""));
  ASSERT_EQ(symlink(victim_.c_str(), path_.c_str()), 0);
  EXPECT_STATUS(DB::Open(path_, Quick()), StatusCode::kFailedPrecondition);
  EXPECT_EQ(test::ReadFile(victim_), "");
  ASSERT_EQ(unlink(victim_.c_str()), 0);
  EXPECT_STATUS(DB::Open(path_, Quick()), StatusCode::kNotFound);
  EXPECT_EQ(access(victim_.c_str(), F_OK), -1) << "a file was created through the link";
}

// A hard link to an empty file of someone else's is refused the same way.
TEST_F(CreateTest, AnEmptyFileWithAnotherLinkMakesNoDatabase) {
  ASSERT_TRUE(test::WriteFile(victim_, ""));
  ASSERT_EQ(link(victim_.c_str(), path_.c_str()), 0);
  EXPECT_STATUS(DB::Open(path_, Quick()), StatusCode::kFailedPrecondition);
  EXPECT_EQ(test::ReadFile(victim_), "");
}

// A link to a database is how some deploy one: it opens.
TEST_F(CreateTest, ALinkToADatabaseOpensIt) {
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(victim_, Quick()));
    ASSERT_OK(db->Put("k", "v"));
  }
  ASSERT_EQ(symlink(victim_.c_str(), path_.c_str()), 0);
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path_, Quick()));
  EXPECT_OK_AND_EQ(db->Get("k"), "v");
}

// A first page of zeros with data after it is not mapkv's: only a file that carries the creation
// marker, or holds nothing but zeros (a creator killed before it marked the file), was a creation
// cut short.
TEST_F(CreateTest, OnlyACreationMarkerOrZerosAloneMakeAFileAnInterruptedCreation) {
  const std::string data = std::string(8192, '\0') + "data";
  ASSERT_TRUE(test::WriteFile(path_, data));
  EXPECT_STATUS(DB::Open(path_, Quick()), StatusCode::kInvalidArgument);
  EXPECT_EQ(test::ReadFile(path_), data);
  ASSERT_TRUE(test::WriteFile(path_, std::string(1 << 20, '\0')));
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path_, Quick()));
    EXPECT_OK(db->Put("k", "v"));
  }
  std::string marked(1 << 20, '\0');
  std::memcpy(marked.data(), internal::kCreatingMagic, sizeof(internal::kCreatingMagic));
  ASSERT_TRUE(test::WriteFile(path_, marked));
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path_, Quick()));
  EXPECT_OK(db->Put("k", "v"));
}

// The mode of a new file is its permission bits alone: never setuid, setgid or sticky.
TEST_F(CreateTest, FileModeIsMaskedToPermissionBits) {
  Options options = Quick();
  options.file_mode = 07777;
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path_, options));
  ASSERT_OK_AND_ASSIGN(internal::FileInfo info, internal::StatFile(path_));
  EXPECT_EQ(info.mode & 07000, 0u) << std::oct << info.mode;
}

}  // namespace
}  // namespace mapkv
