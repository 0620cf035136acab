// Damaged files: empty, random, text, truncated, with flipped bytes, from a newer format. Open must
// fail with a clear status or succeed and then never return a value that was not written for the
// key asked; nothing may crash or hang.
//
// The checks that may crash run in a child process per case (MAPKV_CHILD, test::RunChild), so a
// crash or a hang is reported with the case that caused it instead of ending the whole test.
// MAPKV_CORRUPT_ITERS sets the number of flipped-bytes copies (default 300).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "test_util.h"

namespace mapkv {
namespace {

using ::absl::StatusCode;
using ::mapkv::test::ChildPipe;
using ::mapkv::test::Rng;
using ::mapkv::test::RunChild;
using ::mapkv::test::TempDir;
using ::mapkv::test::Uniform;

constexpr char kMagic[8] = {'M', 'A', 'P', 'K', 'V', '\0', '\0', '\0'};
constexpr size_t kVersionOffset = 8;
constexpr size_t kHeaderPage = 4096;

// Exit codes of CheckDamagedCopyChild besides a failed check or a crash.
constexpr int kOpenedOk = 11;
constexpr int kOpenFailedBase = 20;  // + the StatusCode Open returned

Options DamagedOptions() {
  Options options;
  options.create_if_missing = false;
  options.lock_timeout = std::chrono::milliseconds(2000);  // a bad lock word fails, not hangs
  return options;
}

// The seed of the reference database's contents.
constexpr uint64_t kReferenceSeed = 42;

// One write of the reference database: a Put of `value`, or a Delete when it has none.
struct RefWrite {
  std::string key;
  std::optional<std::string> value;
};

// The write transactions that build the reference database from `seed`: the same in every
// process, so that a child checking a damaged copy rebuilds from the seed alone what was written.
std::vector<std::vector<RefWrite>> ReferenceTxns(uint64_t seed) {
  Rng rng(seed);
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) keys.push_back(absl::StrCat("key", i));
  for (int i = 0; i < 20; ++i) keys.push_back(test::RandomBytes(rng, Uniform(rng, 1, 30)));
  std::vector<std::vector<RefWrite>> txns;
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < keys.size();) {
      std::vector<RefWrite>& txn = txns.emplace_back();
      for (size_t end = std::min(keys.size(), i + Uniform(rng, 1, 40)); i < end; ++i) {
        const uint64_t what = Uniform(rng, 0, 9);
        if (round == 0 || what < 3) {
          const uint64_t kind = Uniform(rng, 0, 49);
          const size_t size = kind == 0 ? Uniform(rng, 5000, 20000) : Uniform(rng, 0, 1000);
          txn.push_back(RefWrite{keys[i], test::RandomBytes(rng, size)});
        } else if (what < 5) {
          txn.push_back(RefWrite{keys[i], std::nullopt});
        }
      }
    }
  }
  return txns;
}

// Everything that was ever written to the reference database.
struct ReferenceWrites {
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> history;  // values per key
  absl::flat_hash_map<std::string, std::string> live;                          // final state
};

ReferenceWrites WritesOf(const std::vector<std::vector<RefWrite>>& txns) {
  ReferenceWrites writes;
  for (const std::vector<RefWrite>& txn : txns) {
    for (const RefWrite& write : txn) {
      if (write.value.has_value()) {
        writes.history[write.key].insert(*write.value);
        writes.live[write.key] = *write.value;
      } else {
        writes.live.erase(write.key);
      }
    }
  }
  return writes;
}

// A closed, valid database, built by ReferenceTxns(kReferenceSeed).
struct Reference {
  std::string bytes;       // the file
  uint64_t log_bytes = 0;  // bytes in use (Stats::log_bytes at close)
};

void BuildReference(const std::string& path, Reference* ref) {
  Options options;
  options.initial_file_size = 1 << 20;
  options.initial_index_slots = 64;  // the index grows: old tables stay in the file
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, options));
  for (const std::vector<RefWrite>& writes : ReferenceTxns(kReferenceSeed)) {
    ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
    for (const RefWrite& write : writes) {
      if (write.value.has_value()) {
        ASSERT_OK(txn.Put(write.key, *write.value));
      } else {
        ASSERT_OK(txn.Delete(write.key));
      }
    }
    ASSERT_OK(txn.Commit());
  }
  ASSERT_OK(db->Checkpoint());
  ref->log_bytes = db->GetStats().log_bytes;
  db.reset();
  ref->bytes = test::ReadFile(path);
  ASSERT_GT(ref->bytes.size(), kHeaderPage);
  ASSERT_EQ(std::memcmp(ref->bytes.data(), kMagic, sizeof(kMagic)), 0)
      << "the file does not start with the documented magic";
}

// Opens the damaged copy of the reference database at `path` and reads everything through every
// read path. Arguments: path, the reference's seed (kReferenceSeed), the write end of `report`.
// Returns kOpenedOk, kOpenFailedBase + code when Open refused the file, kChildCheckFailed when a
// read gave a value that was never written for its key (or Open failed without a message).
// On success it sends on `report` how many Gets of the reference keys gave the current value, an
// older value, NotFound and another error.
MAPKV_CHILD(CheckDamagedCopyChild) {
  const std::string& path = args.at(0);
  const ReferenceWrites ref = WritesOf(ReferenceTxns(args.Int<uint64_t>(1)));
  ChildPipe report = args.PipeEnd(2);
  auto opened = DB::Open(path, DamagedOptions());
  if (!opened.ok()) {
    CHILD_CHECK(!opened.status().message().empty(),
                "error without a message: ", opened.status().ToString());
    return kOpenFailedBase + static_cast<int>(opened.status().code());
  }
  std::unique_ptr<DB> db = std::move(*opened);
  auto written = [&](std::string_view key, std::string_view value) {
    auto it = ref.history.find(std::string(key));
    return it != ref.history.end() && it->second.contains(std::string(value));
  };
  uint64_t current = 0, older = 0, not_found = 0, errors = 0;
  for (const auto& [key, values] : ref.history) {
    // The key's current value, NotFound or DataLoss: never another value, not even an older one.
    auto got = db->Get(key);
    if (got.ok()) {
      CHILD_CHECK(written(key, *got), "Get(", test::Describe(key), ") returned ",
                  test::Describe(*got), ", a value never written for it");
      auto live = ref.live.find(key);
      CHILD_CHECK(live != ref.live.end() && live->second == *got, "Get(", test::Describe(key),
                  ") returned ", test::Describe(*got), ", an older value");
      ++current;
    } else {
      CHILD_CHECK(absl::IsNotFound(got.status()) || absl::IsDataLoss(got.status()), "Get(",
                  test::Describe(key), ") failed with ", got.status().ToString());
      ++(absl::IsNotFound(got.status()) ? not_found : errors);
    }
  }
  for (int i = 0; i < 50; ++i) {
    const std::string key = absl::StrCat("never", i);
    auto got = db->Get(key);
    CHILD_CHECK(!got.ok(), "Get(", key, ") of a key never written returned ", test::Describe(*got));
  }
  if (auto txn = db->BeginRead(); txn.ok()) {
    (void)txn->Count();
    std::string problem;
    (void)txn->ForEach([&](std::string_view key, std::string_view value) {
      if (!written(key, value)) {
        problem = absl::StrCat("ForEach gave ", test::Describe(key), " = ", test::Describe(value),
                               ", never written");
        return false;
      }
      return true;
    });
    CHILD_CHECK(problem.empty(), problem);
    for (const auto& [key, value] : ref.live) {
      auto got = txn->Get(key);
      if (got.ok())
        CHILD_CHECK(written(key, *got), "ReadTxn::Get(", test::Describe(key), ") wrong");
    }
  }
  // Writing into a damaged file may fail, but what it reports as written must read back.
  if (db->Put("new-key", "new-value").ok()) {
    auto got = db->Get("new-key");
    if (got.ok()) CHILD_CHECK(*got == "new-value", "new-key read back ", test::Describe(*got));
  }
  (void)db->GetStats();
  db.reset();
  CHILD_CHECK(report.WriteU64(current) && report.WriteU64(older) && report.WriteU64(not_found) &&
              report.WriteU64(errors));
  return kOpenedOk;
}

absl::StatusOr<std::unique_ptr<DB>> OpenFile(const std::string& path, bool create) {
  Options options = DamagedOptions();
  options.create_if_missing = create;
  return DB::Open(path, options);
}

// OpenFile in a child. Arguments: path, create. Returns kOpenFailedBase + the StatusCode of the
// Open (OK included), out of the way of the exit codes of a child that failed otherwise.
MAPKV_CHILD(OpenFileChild) {
  auto opened = OpenFile(args.at(0), args.Bool(1));
  return kOpenFailedBase + static_cast<int>(opened.status().code());  // the handle closes here
}

class CorruptionTest : public ::testing::Test {
 protected:
  // Runs CheckDamagedCopyChild for the file `data`, a damaged copy of the reference database;
  // fails the test on a wrong value, a crash or a hang. Returns the child's exit status.
  int CheckDamaged(const std::string& data, const std::string& what) {
    const std::string path = dir_.File(absl::StrCat("damaged", ++copies_, ".mapkv"));
    EXPECT_TRUE(test::WriteFile(path, data));
    test::Pipe report;
    const int status =
        RunChild("CheckDamagedCopyChild", {path, kReferenceSeed, report.WriteEndArg()},
                 std::chrono::seconds(60));
    report.CloseWrite();
    EXPECT_TRUE(status == kOpenedOk ||
                (status >= kOpenFailedBase && status <= kOpenFailedBase + 16))
        << what << ": " << DescribeResult(status);
    std::remove(path.c_str());
    ++results_[DescribeResult(status)];
    const std::vector<uint64_t> counts = test::Pipe::DecodeU64s(report.ReadAll());
    if (counts.size() == 4) {
      for (int i = 0; i < 4; ++i) get_counts_[i] += counts[i];
    }
    if (verbose_) {
      std::printf("  %-50s %s\n", what.c_str(), DescribeResult(status).c_str());
      if (counts.size() == 4) {
        std::printf(
            "  %-50s Gets: %llu current, %llu older, %llu NotFound, %llu DataLoss\n", "",
            static_cast<unsigned long long>(counts[0]), static_cast<unsigned long long>(counts[1]),
            static_cast<unsigned long long>(counts[2]), static_cast<unsigned long long>(counts[3]));
      }
    }
    return status;
  }

  static std::string DescribeResult(int status) {
    if (status == kOpenedOk) return "opened, no wrong value";
    if (status >= kOpenFailedBase && status <= kOpenFailedBase + 16) {
      return absl::StrCat(
          "Open failed with ",
          absl::StatusCodeToString(static_cast<StatusCode>(status - kOpenFailedBase)));
    }
    if (status == test::kChildCheckFailed) return "WRONG VALUE (see the child's message above)";
    return test::ExitStatusToString(status);
  }

  void PrintResults(const std::string& title) {
    std::printf("%s:\n", title.c_str());
    for (const auto& [what, count] : results_) std::printf("  %5d  %s\n", count, what.c_str());
    std::printf(
        "  Gets of the reference keys on the copies that opened: %llu current value, %llu "
        "older value, %llu NotFound, %llu DataLoss\n",
        static_cast<unsigned long long>(get_counts_[0]),
        static_cast<unsigned long long>(get_counts_[1]),
        static_cast<unsigned long long>(get_counts_[2]),
        static_cast<unsigned long long>(get_counts_[3]));
  }

  // OpenFile, tried first in a child process (OpenFileChild): if Open crashes or hangs there, the
  // test fails with that and gets an Internal status instead of crashing itself; otherwise Open
  // runs here.
  absl::StatusOr<std::unique_ptr<DB>> SafeOpen(const std::string& path, bool create) {
    const int status = RunChild("OpenFileChild", {path, create}, std::chrono::seconds(60));
    if (status < kOpenFailedBase || status > kOpenFailedBase + 16) {
      ADD_FAILURE() << "Open(" << path << ", create_if_missing=" << create
                    << ") crashed or hung: " << test::ExitStatusToString(status);
      return absl::InternalError("Open crashed in the child");
    }
    return OpenFile(path, create);
  }

  TempDir dir_;
  int copies_ = 0;
  bool verbose_ = false;  // print each case's result
  std::map<std::string, int> results_;
  uint64_t get_counts_[4] = {0, 0, 0, 0};
};

TEST_F(CorruptionTest, EmptyFile) {
  const std::string path = dir_.File("empty.mapkv");
  ASSERT_TRUE(test::WriteFile(path, ""));
  EXPECT_STATUS(SafeOpen(path, /*create=*/false), StatusCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(auto db, SafeOpen(path, /*create=*/true));  // initialised as a new database
  ASSERT_OK(db->Put("a", "1"));
  EXPECT_OK_AND_EQ(db->Get("a"), "1");
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, SafeOpen(path, /*create=*/false));
  EXPECT_OK_AND_EQ(db->Get("a"), "1");
}

TEST_F(CorruptionTest, RandomBytesAreRejectedAndLeftAlone) {
  Rng rng(1);
  for (size_t size : {size_t{64} << 10, size_t{1} << 20}) {
    SCOPED_TRACE(absl::StrCat(size, " random bytes"));
    const std::string path = dir_.File(absl::StrCat("random", size, ".mapkv"));
    const std::string data = test::RandomBytes(rng, size);
    ASSERT_TRUE(test::WriteFile(path, data));
    for (bool create : {false, true}) {
      auto opened = SafeOpen(path, create);
      EXPECT_STATUS(opened, StatusCode::kInvalidArgument);
      EXPECT_NE(opened.status().ToString().find(path), std::string::npos)
          << "the message does not name the path: " << opened.status();
    }
    EXPECT_TRUE(test::ReadFile(path) == data) << "a refused Open changed the file";
  }
}

TEST_F(CorruptionTest, TextFileIsRejected) {
  const std::string path = dir_.File("notes.txt");
  std::string text;
  for (int i = 0; i < 200; ++i) absl::StrAppend(&text, "line ", i, ": this is not a database\n");
  ASSERT_TRUE(test::WriteFile(path, text));
  for (bool create : {false, true}) {
    auto opened = SafeOpen(path, create);
    EXPECT_STATUS(opened, StatusCode::kInvalidArgument);
    EXPECT_NE(opened.status().ToString().find(path), std::string::npos) << opened.status();
  }
  EXPECT_EQ(test::ReadFile(path), text);
}

// Files too short to hold a header. Without create_if_missing every one is refused. With it, a
// file that is not ours (neither our magic nor all zeros) is refused and left alone; one that may
// be a creation cut short (our magic, or zeros) may be refused or initialised, without a crash.
TEST_F(CorruptionTest, TinyFilesAreRejected) {
  const std::string magic(kMagic, sizeof(kMagic));
  struct Case {
    std::string data;
    bool foreign;
  };
  for (const Case& c : {Case{"MAP", true}, Case{"MAPKX", true}, Case{"hello, world", true},
                        Case{std::string(1, '\0'), false}, Case{std::string(100, '\0'), false},
                        Case{magic, false}, Case{magic + std::string("\x01\0\0\0", 4), false},
                        Case{magic + std::string(100, '\0'), false}}) {
    SCOPED_TRACE(test::Describe(c.data));
    const std::string path = dir_.File(absl::StrCat("tiny", ++copies_, ".mapkv"));
    ASSERT_TRUE(test::WriteFile(path, c.data));
    auto opened = SafeOpen(path, /*create=*/false);
    EXPECT_FALSE(opened.ok());
    EXPECT_FALSE(opened.status().message().empty());
    EXPECT_EQ(test::ReadFile(path), c.data) << "a refused Open changed the file";
    opened = SafeOpen(path, /*create=*/true);
    if (c.foreign) {
      EXPECT_STATUS(opened, StatusCode::kInvalidArgument);
      EXPECT_EQ(test::ReadFile(path), c.data) << "a refused Open changed the file";
    } else if (opened.ok()) {
      EXPECT_OK((*opened)->Put("a", "1"));
      EXPECT_OK_AND_EQ((*opened)->Get("a"), "1");
    } else {
      EXPECT_FALSE(opened.status().message().empty());
    }
  }
}

TEST_F(CorruptionTest, NewerFormatVersionIsFailedPrecondition) {
  Reference ref;
  ASSERT_NO_FATAL_FAILURE(BuildReference(dir_.File("ref.mapkv"), &ref));
  uint32_t version = 0;
  std::memcpy(&version, ref.bytes.data() + kVersionOffset, sizeof(version));
  EXPECT_GE(version, 1u);
  EXPECT_LT(version, 999u);
  std::string data = ref.bytes;
  const uint32_t newer = 999;  // little-endian on every platform we build for
  std::memcpy(data.data() + kVersionOffset, &newer, sizeof(newer));
  const std::string path = dir_.File("newer.mapkv");
  ASSERT_TRUE(test::WriteFile(path, data));
  for (bool create : {false, true}) {
    auto opened = SafeOpen(path, create);
    EXPECT_STATUS(opened, StatusCode::kFailedPrecondition);
    EXPECT_NE(absl::AsciiStrToLower(opened.status().ToString()).find("version"), std::string::npos)
        << opened.status();
  }
  EXPECT_TRUE(test::ReadFile(path) == data) << "a refused Open changed the file";
}

TEST_F(CorruptionTest, MissingDirectoryAndDirectoryPath) {
  const std::string missing = dir_.File("no/such/dir/db.mapkv");
  auto opened = SafeOpen(missing, /*create=*/true);
  EXPECT_FALSE(opened.ok());
  EXPECT_NE(opened.status().ToString().find(missing), std::string::npos) << opened.status();
  opened = SafeOpen(dir_.path(), /*create=*/true);
  EXPECT_FALSE(opened.ok());
  EXPECT_NE(opened.status().ToString().find(dir_.path()), std::string::npos) << opened.status();
}

TEST_F(CorruptionTest, MagicFollowedByRandomBytes) {
  Reference ref;
  ASSERT_NO_FATAL_FAILURE(BuildReference(dir_.File("ref.mapkv"), &ref));
  verbose_ = true;
  Rng rng(2);
  for (size_t size : {size_t{64} << 10, size_t{1} << 20, ref.bytes.size()}) {
    for (size_t keep : {size_t{12}, size_t{64}, size_t{512}}) {
      std::string data = ref.bytes.substr(0, keep) + test::RandomBytes(rng, size - keep);
      CheckDamaged(data, absl::StrCat(size, " bytes, the first ", keep, " valid"));
    }
  }
  // The whole header page valid, the rest random or zero: the index and the log are garbage.
  std::string data =
      ref.bytes.substr(0, kHeaderPage) + test::RandomBytes(rng, ref.bytes.size() - kHeaderPage);
  CheckDamaged(data, "valid header page, random body");
  data = ref.bytes.substr(0, kHeaderPage) + std::string(ref.bytes.size() - kHeaderPage, '\0');
  CheckDamaged(data, "valid header page, zero body");
  PrintResults("valid prefix, random rest");
}

TEST_F(CorruptionTest, TruncatedFiles) {
  Reference ref;
  ASSERT_NO_FATAL_FAILURE(BuildReference(dir_.File("ref.mapkv"), &ref));
  verbose_ = true;
  const size_t size = ref.bytes.size();
  std::printf("reference file: %zu bytes, %llu in use\n", size,
              static_cast<unsigned long long>(ref.log_bytes));
  std::vector<size_t> lengths = {100,
                                 kHeaderPage / 2,
                                 kHeaderPage - 1,
                                 kHeaderPage,
                                 kHeaderPage + 100,
                                 size / 4,
                                 size / 2,
                                 static_cast<size_t>(ref.log_bytes / 2),
                                 static_cast<size_t>(ref.log_bytes - 1),
                                 static_cast<size_t>(ref.log_bytes),
                                 size - kHeaderPage,
                                 size - 1};
  Rng rng(3);
  for (int i = 0; i < 10; ++i) lengths.push_back(Uniform(rng, 1, size - 1));
  for (size_t length : lengths) {
    if (length == 0 || length >= size) continue;
    CheckDamaged(ref.bytes.substr(0, length), absl::StrCat("truncated to ", length, " bytes"));
  }
  PrintResults("truncated copies");
}

TEST_F(CorruptionTest, FlippedBytes) {
  Reference ref;
  ASSERT_NO_FATAL_FAILURE(BuildReference(dir_.File("ref.mapkv"), &ref));
  const int64_t iterations = test::EnvInt("MAPKV_CORRUPT_ITERS", 300);
  const uint64_t size = ref.bytes.size();
  int failures = 0;
  std::string data = ref.bytes;  // reused: flipped, checked, flipped back
  for (int64_t it = 0; it < iterations; ++it) {
    const uint64_t seed = 1000 + static_cast<uint64_t>(it);
    Rng rng(seed);
    const uint64_t flips = Uniform(rng, 1, 16);
    std::vector<std::pair<uint64_t, char>> flipped;
    std::string where;
    for (uint64_t f = 0; f < flips; ++f) {
      // 30% in the header page, 60% in the part of the log in use, 10% anywhere.
      const uint64_t region = Uniform(rng, 0, 9);
      const uint64_t limit = region < 3 ? kHeaderPage : region < 9 ? ref.log_bytes : size;
      const uint64_t offset = Uniform(rng, 0, limit - 1);
      const auto mask = static_cast<char>(Uniform(rng, 1, 255));
      data[offset] = static_cast<char>(data[offset] ^ mask);
      flipped.emplace_back(offset, mask);
      absl::StrAppend(&where, where.empty() ? "" : ",", offset);
    }
    const int status = CheckDamaged(
        data, absl::StrCat("iteration ", it, " (seed ", seed, "), flipped offsets ", where));
    for (const auto& [offset, mask] : flipped)
      data[offset] = static_cast<char>(data[offset] ^ mask);
    if (status != kOpenedOk && (status < kOpenFailedBase || status > kOpenFailedBase + 16)) {
      if (++failures >= 5) break;  // enough to debug with
    }
  }
  PrintResults(absl::StrCat(iterations, " copies with 1..16 flipped bytes"));
}

}  // namespace
}  // namespace mapkv
