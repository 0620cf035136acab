// A full disk: every store into the mapping lands in blocks that growth allocated, so a full disk
// is ResourceExhausted from a call, never SIGBUS from a store, after an index rebuild too; and
// deletes still go through when puts no longer do. Each case runs in a child process, in a mount
// namespace of its own, on a small tmpfs it mounts there (root only; skipped otherwise). Linux.
#include <sched.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "src/env.h"
#include "test_util.h"

namespace mapkv {
namespace {

constexpr int kNoMount = 77;  // a child's exit status: no tmpfs could be mounted here

// Mounts a tmpfs of `mib` MiB on `dir` in a mount namespace of this process's own, so that it
// goes when the process does. kNoMount, with a message, when it cannot.
int MountSmallDisk(const std::string& dir, int mib) {
  if (unshare(CLONE_NEWNS) != 0 ||
      mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      mount("tmpfs", dir.c_str(), "tmpfs", 0, absl::StrCat("size=", mib, "m").c_str()) != 0) {
    std::fprintf(stderr, "cannot mount a tmpfs on %s: %s\n", dir.c_str(), std::strerror(errno));
    return kNoMount;
  }
  return 0;
}

// Writes `path` in 64 KiB pieces until the disk is full (or `max_mib` MiB): returns the bytes
// written.
uint64_t FillDisk(const std::string& path, uint64_t max_mib) {
  std::ofstream out(path, std::ios::binary);
  const std::string piece(64 << 10, 'f');
  uint64_t written = 0;
  while (written < (max_mib << 20)) {
    out.write(piece.data(), static_cast<std::streamsize>(piece.size()));
    out.flush();
    if (!out) break;
    written += piece.size();
  }
  return written;
}

// The machine after a reboot: another boot id.
class RebootedEnv : public internal::Env {
 public:
  std::string BootId() override { return "another boot"; }
};

void RunOnSmallDisk(const char* child) {
  test::TempDir dir;
  const int status = test::RunChild(child, {dir.path()});
  if (status == kNoMount) GTEST_SKIP() << "no tmpfs could be mounted (needs root)";
  EXPECT_EQ(status, 0) << test::ExitStatusToString(status);
}

// An 8 MiB database on a 20 MiB disk, 200 keys, no checkpoint, then a "reboot": the index is
// rebuilt, which zeroes everything past the valid log. The disk is then filled; the next puts
// land in the blocks growth reserved before and must not find them gone. Arguments: a directory.
MAPKV_CHILD(RebuildThenFullDiskChild) {
  const std::string& dir = args.at(0);
  if (int rc = MountSmallDisk(dir, 20); rc != 0) return rc;
  const std::string path = dir + "/db";
  Options options;
  options.initial_file_size = 8 << 20;
  options.max_file_size = 64 << 20;
  options.info_log = [](std::string_view) {};
  {
    auto db = DB::Open(path, options);
    CHILD_CHECK_OK(db.status());
    for (int i = 0; i < 200; ++i) CHILD_CHECK_OK((*db)->Put(absl::StrCat("k", i), "v"));
  }
  RebootedEnv rebooted;
  options.env = &rebooted;
  auto db = DB::Open(path, options);
  CHILD_CHECK_OK(db.status());
  CHILD_CHECK((*db)->GetStats().rebuilt_index, "the reopen must rebuild the index");
  const uint64_t filled = FillDisk(dir + "/filler", 64);
  CHILD_CHECK(filled < (64ull << 20), "the disk never filled");
  // Into the 8 MiB the file already has: no growth, so no error is allowed either.
  const std::string value(1000, 'x');
  for (int i = 0; i < 2000; ++i) CHILD_CHECK_OK((*db)->Put(absl::StrCat("n", i), value), i);
  CHILD_CHECK_OK((*db)->Verify());
  return 0;
}

TEST(FullDiskTest, StoresAfterAnIndexRebuildLandInReservedBlocks) {
  RunOnSmallDisk("RebuildThenFullDiskChild");
}

// Puts fill a 16 MiB disk until growth fails; every put before that is readable; then every key
// is deleted; and once 2 MiB are freed, a small put goes through again. Arguments: a directory.
MAPKV_CHILD(DeletesOnAFullDiskChild) {
  const std::string& dir = args.at(0);
  if (int rc = MountSmallDisk(dir, 16); rc != 0) return rc;
  const std::string ballast = dir + "/ballast";
  CHILD_CHECK(FillDisk(ballast, 2) == (2u << 20));
  Options options;
  options.max_file_size = 1ull << 30;
  auto db = DB::Open(dir + "/db", options);
  CHILD_CHECK_OK(db.status());
  const std::string value(1000, 'x');
  int stored = 0;
  absl::Status full;
  for (; stored < 100000; ++stored) {
    full = (*db)->Put(absl::StrCat("key", stored), value);
    if (!full.ok()) break;
  }
  CHILD_CHECK(absl::IsResourceExhausted(full), "the disk filled: ", full.ToString());
  CHILD_CHECK(stored > 5000, stored, " puts on a 16 MiB disk");
  for (int i = 0; i < stored; i += 97) {
    auto got = (*db)->Get(absl::StrCat("key", i));
    CHILD_CHECK(got.ok() && *got == value, i);
  }
  for (int i = 0; i < stored; ++i) CHILD_CHECK_OK((*db)->Delete(absl::StrCat("key", i)), i);
  CHILD_CHECK((*db)->GetStats().keys == 0);
  CHILD_CHECK(std::remove(ballast.c_str()) == 0, std::strerror(errno));
  CHILD_CHECK_OK((*db)->Put("small", std::string(900, 's')));
  CHILD_CHECK_OK((*db)->Verify());
  return 0;
}

TEST(FullDiskTest, DeletesGoThroughWhenPutsNoLongerDo) {
  RunOnSmallDisk("DeletesOnAFullDiskChild");
}

}  // namespace
}  // namespace mapkv
