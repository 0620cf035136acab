// The open fuzzer's harness (tests/fuzz/open_harness.h) run in the ordinary and sanitizer builds,
// over four sets of inputs:
// - every file in tests/fuzz/regressions/: inputs the fuzzer found crashing, tripping a sanitizer
//   or breaking a promise of the harness, kept after the fix, and staged damage;
// - the seed corpus (tests/fuzz/seed_corpus.h), built here by the library under test: each must
//   open, pass Verify and read back exactly what was written, in every mode, except that a
//   read-only handle refuses a file that needs a repair;
// - the staged reproducers as MakeReproducers builds them now, with the outcome each must have;
// - hand-made damage to the seeds, each with the status Open (or Verify) must give.
// Every run also checks the harness's own promises (no violation): a failed Open names the file,
// reads answer with the expected codes, a verified file reads consistently, a read-only handle
// leaves the file as it was. On Linux the detached inputs open without write permission (as root:
// with this thread's file-system identity nobody's).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "fuzz/open_harness.h"
#include "fuzz/seed_corpus.h"
#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "src/format.h"
#include "test_util.h"

namespace mapkv {
namespace {

using ::absl::StatusCode;
using ::mapkv::fuzz::CompactInputOffset;
using ::mapkv::fuzz::HarnessResult;
using ::mapkv::fuzz::RunOpenHarness;
using ::mapkv::fuzz::Seed;
using ::mapkv::internal::kHeaderSize;
using ::mapkv::internal::kSharedStateOffset;
using ::mapkv::internal::SharedState;

const std::string kSourceDir = MAPKV_SOURCE_DIR;

HarnessResult RunInput(const std::string& input, const std::string& path, bool collect = false) {
  return RunOpenHarness(reinterpret_cast<const uint8_t*>(input.data()), input.size(), path,
                        collect);
}

std::string Violations(const HarnessResult& r) {
  std::string all;
  for (const std::string& v : r.violations) absl::StrAppend(&all, "\n  ", v);
  return all;
}

const std::vector<Seed>& Seeds() {
  static const std::vector<Seed>* seeds = [] {
    test::TempDir dir;
    absl::StatusOr<std::vector<Seed>> made =
        fuzz::MakeSeeds(kSourceDir + "/data/iso_codes.tsv", dir.path());
    EXPECT_OK(made);
    return new std::vector<Seed>(made.ok() ? std::move(*made) : std::vector<Seed>{});
  }();
  return *seeds;
}

const Seed& SeedNamed(const std::string& name) {
  for (const Seed& s : Seeds()) {
    if (s.name == name) return s;
  }
  ADD_FAILURE() << "no seed " << name;
  static const Seed none;
  return none;
}

// A 64-bit word of the file a compact input describes.
uint64_t FileWord(const std::string& input, uint64_t file_offset) {
  const size_t at = CompactInputOffset(file_offset);
  uint64_t v = 0;
  if (at != std::string::npos && at + sizeof(v) <= input.size()) {
    std::memcpy(&v, input.data() + at, sizeof(v));
  }
  return v;
}
void SetFileWord(std::string& input, uint64_t file_offset, uint64_t v) {
  const size_t at = CompactInputOffset(file_offset);
  ASSERT_TRUE(at != std::string::npos && at + sizeof(v) <= input.size()) << file_offset;
  std::memcpy(input.data() + at, &v, sizeof(v));
}
constexpr uint64_t StateField(size_t field_offset) { return kSharedStateOffset + field_offset; }

TEST(FuzzRegressionTest, CommittedReproducers) {
  test::TempDir dir;
  const std::string path = dir.File("db.mapkv");
  const std::filesystem::path regressions = kSourceDir + "/tests/fuzz/regressions";
  int inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(regressions)) {
    if (!entry.is_regular_file() || entry.path().extension() == ".md") continue;
    SCOPED_TRACE(entry.path().filename().string());
    const std::string input = test::ReadFile(entry.path().string());
    const HarnessResult r = RunInput(input, path);
    EXPECT_TRUE(r.violations.empty()) << Violations(r);
    if (!r.open.ok()) EXPECT_TRUE(absl::StrContains(r.open.message(), path)) << r.open;
    ++inputs;
  }
  EXPECT_GT(inputs, 0) << "no reproducers in " << regressions;
}

TEST(FuzzRegressionTest, SeedsOpenVerifyAndReadBack) {
  test::TempDir dir;
  const std::string path = dir.File("db.mapkv");
  ASSERT_GE(Seeds().size(), 25u);
  for (const Seed& seed : Seeds()) {
    SCOPED_TRACE(seed.name);
    const HarnessResult r = RunInput(seed.input, path, /*collect=*/true);
    EXPECT_TRUE(r.violations.empty()) << Violations(r);
    if (seed.name.rfind("raw.", 0) == 0) {
      // The header page alone: a truncated file.
      EXPECT_STATUS(r.open, StatusCode::kDataLoss);
      EXPECT_TRUE(absl::StrContains(r.open.message(), path)) << r.open;
      continue;
    }
    const uint8_t mode = static_cast<uint8_t>(seed.input[0]);
    // This boot: the state is trusted (a half-applied commit replayed). Another boot: the index
    // is rebuilt from the log unless a clean close left it trustworthy.
    const bool same_boot = (mode & fuzz::kModeSameBoot) != 0;
    const bool repair = same_boot ? seed.half_applied : !seed.clean;
    EXPECT_EQ(r.detached, fuzz::kDetachedSupported && fuzz::IsDetachedMode(mode));
    if ((mode & fuzz::kModeReadOnly) && repair) {
      // A read-only handle repairs nothing: it refuses the file instead.
      EXPECT_TRUE(r.open.code() == StatusCode::kFailedPrecondition ||
                  r.open.code() == StatusCode::kDataLoss)
          << r.open;
      EXPECT_TRUE(absl::StrContains(r.open.message(), path)) << r.open;
      continue;
    }
    ASSERT_OK(r.open);
    EXPECT_OK(r.verify);
    EXPECT_EQ(r.contents, seed.live);
    EXPECT_EQ(r.stats.keys, seed.live.size());
    EXPECT_EQ(r.stats.rebuilt_index, !same_boot && !seed.clean);
    if ((mode & fuzz::kModeWrite) && !(mode & fuzz::kModeReadOnly)) EXPECT_OK(r.write);
  }
}

// The damage MakeReproducers stages, as the library writes files now, with the outcome each
// must have (the committed copies in tests/fuzz/regressions/ run in CommittedReproducers).
TEST(FuzzRegressionTest, StagedReproducers) {
  test::TempDir dir;
  const std::string path = dir.File("db.mapkv");
  test::TempDir work;
  absl::StatusOr<std::vector<Seed>> made =
      fuzz::MakeReproducers(kSourceDir + "/data/iso_codes.tsv", work.path());
  ASSERT_OK(made);
  ASSERT_EQ(made->size(), 4u);
  for (const Seed& staged : *made) {
    SCOPED_TRACE(staged.name);
    // Each has its committed copy (the bytes differ: every file has its own seeds and salt).
    EXPECT_TRUE(
        std::filesystem::is_regular_file(kSourceDir + "/tests/fuzz/regressions/" + staged.name));
    const HarnessResult r = RunInput(staged.input, path);
    EXPECT_TRUE(r.violations.empty()) << Violations(r);
    if (staged.name.rfind("ring-", 0) == 0) {
      // A ring that starts past the end of the file is refused, whatever its capacity.
      EXPECT_FALSE(r.open.ok());
    } else if (staged.name == "detached-slot-past-file") {
      EXPECT_EQ(r.detached, fuzz::kDetachedSupported);
      if (r.open.ok()) EXPECT_FALSE(r.verify.ok());
    } else if (staged.name == "read-only-rebuild-damaged-commit") {
      EXPECT_TRUE(r.open.code() == StatusCode::kFailedPrecondition ||
                  r.open.code() == StatusCode::kDataLoss)
          << r.open;
      // With write permission the same file is repaired: the index is rebuilt from the log, which
      // ends before the damaged batch.
      std::string writable = staged.input;
      writable[0] = static_cast<char>(writable[0] & ~fuzz::kModeReadOnly);
      const HarnessResult w = RunInput(writable, path, /*collect=*/true);
      EXPECT_TRUE(w.violations.empty()) << Violations(w);
      ASSERT_OK(w.open);
      EXPECT_OK(w.verify);
      EXPECT_TRUE(w.stats.rebuilt_index);
      EXPECT_EQ(w.contents.size(), 6u);  // the puts before the damaged batch
    } else {
      ADD_FAILURE() << "no expectation for " << staged.name;
    }
  }
}

TEST(FuzzRegressionTest, SeedsWithoutChecksumFixesAreUnchanged) {
  // The seeds' checksums are right as written: the fix-up modes change nothing in them.
  for (const Seed& seed : Seeds()) {
    SCOPED_TRACE(seed.name);
    std::string plain = seed.input;
    plain[0] = static_cast<char>(plain[0] & ~fuzz::kModeFixAll);
    const auto* fixed_data = reinterpret_cast<const uint8_t*>(seed.input.data());
    const auto* plain_data = reinterpret_cast<const uint8_t*>(plain.data());
    // Not EXPECT_EQ: a failure would print two 64 KiB files.
    EXPECT_TRUE(fuzz::BuildFile(fixed_data, seed.input.size()) ==
                fuzz::BuildFile(plain_data, plain.size()));
  }
}

// Damage staged by hand, with the answer expected of Open (and of Verify when Open succeeds).
struct DamageCase {
  std::string name;
  std::string input;
  StatusCode open;
  std::string open_message;  // a part of Open's message
  StatusCode verify = StatusCode::kOk;
  std::string verify_message;
};

std::vector<DamageCase> DamageCases() {
  using internal::FileHeader;
  std::vector<DamageCase> cases;
  cases.push_back({"an empty file", "\x01", StatusCode::kInvalidArgument, "empty file"});
  cases.push_back({"64 KiB of zeros", std::string(1 + fuzz::kCompactHeaderBytes, '\0'),
                   StatusCode::kInvalidArgument, "interrupted"});
  cases.push_back({"a text file", "\x01not a database, just some text\n",
                   StatusCode::kInvalidArgument, "no magic"});
  // The cases below edit seeds in place: without every one of them (SeedNamed has reported it),
  // there are too few cases, and the test says so rather than write past an empty input.
  for (const char* name : {"puts.same_boot", "puts.other_boot", "growth.other_boot",
                           "replay.same_boot", "puts.write"}) {
    if (SeedNamed(name).input.size() <= fuzz::kCompactHeaderBytes) return cases;
  }
  {
    std::string in = SeedNamed("puts.same_boot").input;
    in[0] = static_cast<char>(in[0] & ~fuzz::kModeFixHeader);
    in[CompactInputOffset(offsetof(FileHeader, hash_seed))] ^= 1;
    cases.push_back({"a header byte flipped", in, StatusCode::kDataLoss, "header checksum"});
  }
  {
    std::string in = SeedNamed("puts.same_boot").input;
    in[CompactInputOffset(offsetof(FileHeader, format_version))] =
        internal::kNewestFormatVersion + 1;
    cases.push_back({"a newer format version", in, StatusCode::kFailedPrecondition, "newer"});
  }
  {
    std::string in = SeedNamed("puts.same_boot").input;
    in[CompactInputOffset(offsetof(FileHeader, layout))] ^= 1;
    cases.push_back({"another layout", in, StatusCode::kFailedPrecondition, "layout"});
  }
  {
    std::string in = SeedNamed("puts.same_boot").input;
    const uint64_t log_end = kHeaderSize + in.size() - CompactInputOffset(kHeaderSize);
    const uint64_t size = (log_end + internal::kSizeGranule - 1) / internal::kSizeGranule *
                          internal::kSizeGranule;  // padded
    SetFileWord(in, StateField(offsetof(SharedState, committed_tail)), size + 4096);
    cases.push_back({"committed tail past the end of the file", in, StatusCode::kDataLoss,
                     "shorter than its committed log"});
  }
  {
    // More address space than any machine has: the reservation the header asks for fails.
    std::string in = SeedNamed("puts.same_boot").input;
    SetFileWord(in, offsetof(FileHeader, max_file_size), uint64_t{1} << 62);
    cases.push_back(
        {"a header asking for 4 EiB", in, StatusCode::kResourceExhausted, "4611686018427387904"});
    // The same with damaged tails from this boot: Open fails on them before it asks for the
    // header's reservation (found by the fuzzer, a 62 TiB one: 96 s under wine).
    SetFileWord(in, StateField(offsetof(SharedState, applied_tail)), kHeaderSize + 4);
    cases.push_back({"damaged tails and a 4 EiB header", in, StatusCode::kDataLoss, "log tail"});
  }
  {
    std::string in = SeedNamed("puts.same_boot").input;
    SetFileWord(in, StateField(offsetof(SharedState, index_record)), kHeaderSize + 8);
    cases.push_back({"index record offset inside a record", in, StatusCode::kDataLoss,
                     "no index table at the recorded offset"});
  }
  {
    // Another boot and the first record (the empty index) damaged: nothing to rebuild from.
    std::string in = SeedNamed("puts.other_boot").input;
    in[0] = static_cast<char>(in[0] & ~fuzz::kModeFixRecords);
    in[CompactInputOffset(kHeaderSize + offsetof(internal::RecordHeader, seq))] ^= 4;
    cases.push_back({"log damaged at its start", in, StatusCode::kDataLoss, "at its start"});
  }
  {
    // Another boot, not closed cleanly, and a record before the checkpoint's end damaged.
    std::string in = SeedNamed("growth.other_boot").input;
    in[0] = static_cast<char>(in[0] & ~fuzz::kModeFixRecords);
    const uint64_t first_put = kHeaderSize + internal::IndexRecordSize(kHeaderSize, 6);
    in[CompactInputOffset(first_put + sizeof(internal::RecordHeader))] ^= 0x20;  // its key
    cases.push_back({"damage before the checkpoint", in, StatusCode::kDataLoss, "checkpoint"});
  }
  {
    // Found by the fuzzer: recovery recounted the index through a slot pointing far past the
    // file (SEGV in DBImpl::SizeAt). Replay completes; Verify names the slot.
    std::string in = SeedNamed("replay.same_boot").input;
    const uint64_t index = FileWord(in, StateField(offsetof(SharedState, index_record)));
    SetFileWord(in, internal::IndexSlotsOffset(index) + offsetof(internal::Slot, offset),
                uint64_t{1} << 44);
    cases.push_back({"replay over a slot pointing past the file", in, StatusCode::kOk, "",
                     StatusCode::kDataLoss, "not a valid put"});
  }
  {
    // Found by the fuzzer: recovery sized a new index by a damaged key count (a shift by 64 in
    // IndexBitsFor). Replay counts the table itself, and repairs the counters.
    std::string in = SeedNamed("replay.same_boot").input;
    SetFileWord(in, StateField(offsetof(SharedState, count)), (uint64_t{1} << 62) + 1);
    SetFileWord(in, StateField(offsetof(SharedState, used)), uint64_t{1} << 40);
    cases.push_back({"replay with a damaged key count", in, StatusCode::kOk, ""});
  }
  {
    // Found by the fuzzer: a commits counter below the last batch's sequence number passed
    // Verify, and the next commit then took a sequence number that ends the log for a rebuild.
    std::string in = SeedNamed("puts.write").input;
    const uint64_t commits = FileWord(in, StateField(offsetof(SharedState, commits)));
    SetFileWord(in, StateField(offsetof(SharedState, commits)), commits - 3);
    cases.push_back({"commits counter behind the log", in, StatusCode::kOk, "",
                     StatusCode::kDataLoss, "below the sequence number"});
  }
  return cases;
}

TEST(FuzzRegressionTest, HandMadeDamage) {
  test::TempDir dir;
  const std::string path = dir.File("db.mapkv");
  const std::vector<DamageCase> cases = DamageCases();
  ASSERT_GE(cases.size(), 15u);
  for (const DamageCase& c : cases) {
    SCOPED_TRACE(c.name);
    const HarnessResult r = RunInput(c.input, path);
    EXPECT_TRUE(r.violations.empty()) << Violations(r);
    EXPECT_STATUS(r.open, c.open);
    if (!r.open.ok()) {
      EXPECT_TRUE(absl::StrContains(r.open.message(), path)) << r.open;
      EXPECT_TRUE(absl::StrContains(r.open.message(), c.open_message)) << r.open;
      continue;
    }
    EXPECT_STATUS(r.verify, c.verify);
    EXPECT_TRUE(absl::StrContains(r.verify.message(), c.verify_message)) << r.verify;
  }
}

}  // namespace
}  // namespace mapkv
