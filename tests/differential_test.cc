// Randomized differential test: a long random sequence of operations is applied both to mapkv and
// to an absl::flat_hash_map model, and every read is compared with the model as it happens.
//
// The database starts tiny (1 MiB file, 64 index slots) so the file and the index grow many times
// during a run; the key space is small so overwrites and deletes hit live keys often, and the
// cleaner (format version 5, Options' defaults) relocates the live records at the log's start
// and gives the blocks below back all along: about a third of the bytes written are its copies. A
// second handle on the same file (another "process") serves some of the reads, so growth made
// through one handle must be picked up by the other.
//
// MAPKV_DIFF_STEPS scales the run (default 20000 steps per seed). MAPKV_DIFF_SEED=<n> (or
// "random") adds a run with that seed; a failure prints the seed and the step.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "test_util.h"

namespace mapkv {
namespace {

using ::mapkv::test::Rng;
using ::mapkv::test::Uniform;
using Model = absl::flat_hash_map<std::string, std::string>;

// `got` (a Get result) agrees with `want` (nullptr: absent).
template <typename T>
::testing::AssertionResult Agrees(const absl::StatusOr<T>& got, const std::string* want,
                                  std::string_view key) {
  if (want == nullptr) {
    if (absl::IsNotFound(got.status())) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "key " << test::Describe(key) << " should be absent, Get gave "
           << (got.ok() ? test::Describe(std::string_view(*got)) : got.status().ToString());
  }
  if (!got.ok()) {
    return ::testing::AssertionFailure() << "key " << test::Describe(key) << ": Get gave "
                                         << got.status() << ", expected " << test::Describe(*want);
  }
  if (std::string_view(*got) == *want) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "key " << test::Describe(key) << ": Get gave " << test::Describe(std::string_view(*got))
         << ", expected " << test::Describe(*want);
}

const std::string* Find(const Model& model, const std::string& key) {
  auto it = model.find(key);
  return it == model.end() ? nullptr : &it->second;
}

// Compares the full contents seen by `txn` with the model.
::testing::AssertionResult SameContents(const ReadTxn& txn, const Model& model) {
  Model seen;
  std::string problem;
  const absl::Status status = txn.ForEach([&](std::string_view key, std::string_view value) {
    if (!seen.emplace(std::string(key), std::string(value)).second) {
      problem = absl::StrCat("ForEach visited ", test::Describe(key), " twice");
      return false;
    }
    return true;
  });
  if (!status.ok()) return ::testing::AssertionFailure() << "ForEach: " << status;
  if (!problem.empty()) return ::testing::AssertionFailure() << problem;
  if (txn.Count() != model.size()) {
    return ::testing::AssertionFailure()
           << "Count() " << txn.Count() << ", model has " << model.size();
  }
  for (const auto& [key, value] : model) {
    auto it = seen.find(key);
    if (it == seen.end()) {
      return ::testing::AssertionFailure() << "ForEach missed " << test::Describe(key);
    }
    if (it->second != value) {
      return ::testing::AssertionFailure()
             << "ForEach gave " << test::Describe(it->second) << " for " << test::Describe(key)
             << ", expected " << test::Describe(value);
    }
  }
  for (const auto& [key, value] : seen) {
    if (!model.contains(key)) {
      return ::testing::AssertionFailure()
             << "ForEach gave deleted or unknown key " << test::Describe(key);
    }
  }
  return ::testing::AssertionSuccess();
}

std::vector<std::string> MakeKeySpace(Rng& rng) {
  std::vector<std::string> keys;
  for (int i = 0; i < 400; ++i) keys.push_back(absl::StrCat("key", i));
  for (int i = 0; i < 100; ++i) {  // binary keys, NULs included, lengths 1..40
    keys.push_back(test::RandomBytes(rng, Uniform(rng, 1, 40)));
  }
  for (int i = 0; i < 20; ++i) {  // long keys
    keys.push_back(absl::StrCat("long", i, std::string(Uniform(rng, 200, 3000), 'L')));
  }
  keys.push_back(std::string(kMaxKeySize, 'M'));
  keys.push_back(std::string(1, '\0'));
  keys.push_back("key1" + std::string(1, '\0'));  // a prefix-sharing neighbour of "key1"
  return keys;
}

std::string RandomValue(Rng& rng) {
  const uint64_t kind = Uniform(rng, 0, 999);
  if (kind < 10) return test::RandomBytes(rng, Uniform(rng, 10000, 300000));  // occasional large
  if (kind < 60) return "";
  return test::RandomBytes(rng, Uniform(rng, 0, 2000));
}

void RunDifferential(uint64_t seed) {
  const int64_t steps = test::EnvInt("MAPKV_DIFF_STEPS", 20000);
  test::TempDir dir;
  const std::string path = dir.File("diff.mapkv");
  Options options;
  options.initial_file_size = 1 << 20;
  options.initial_index_slots = 64;
  options.max_file_size = 4ull << 30;
  options.lock_timeout = std::chrono::milliseconds(5000);

  Rng rng(seed);
  const std::vector<std::string> keys = MakeKeySpace(rng);
  auto pick_key = [&]() -> const std::string& {
    // Skewed: half the picks go to the first 50 keys, so they are overwritten very often.
    if (Uniform(rng, 0, 1) == 0) return keys[Uniform(rng, 0, 49)];
    return keys[Uniform(rng, 0, keys.size() - 1)];
  };

  Model model;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(path, options));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> other, DB::Open(path, options));
  int reopens = 0, checkpoints = 0, commits = 0, aborts = 0;

  for (int64_t step = 0; step < steps; ++step) {
    SCOPED_TRACE(absl::StrCat("seed=", seed, " step=", step));
    const uint64_t op = Uniform(rng, 0, 999);
    if (op < 330) {  // Put
      const std::string& key = pick_key();
      std::string value = RandomValue(rng);
      ASSERT_OK(db->Put(key, value));
      model[key] = std::move(value);
    } else if (op < 480) {  // Delete (present or not)
      const std::string& key = pick_key();
      ASSERT_OK(db->Delete(key));
      model.erase(key);
    } else if (op < 680) {  // Get, through either handle
      const std::string& key = pick_key();
      DB* handle = Uniform(rng, 0, 2) == 0 ? other.get() : db.get();
      ASSERT_TRUE(Agrees(handle->Get(key), Find(model, key), key));
    } else if (op < 850) {  // a multi-op write transaction: commit, abort or drop
      ASSERT_OK_AND_ASSIGN(WriteTxn txn, db->BeginWrite());
      absl::flat_hash_map<std::string, std::optional<std::string>> pending;
      const uint64_t n = Uniform(rng, 1, 30);
      for (uint64_t j = 0; j < n; ++j) {
        const std::string& key = pick_key();
        const uint64_t sub = Uniform(rng, 0, 9);
        if (sub < 5) {
          std::string value = RandomValue(rng);
          ASSERT_OK(txn.Put(key, value));
          pending[key] = std::move(value);
        } else if (sub < 7) {
          ASSERT_OK(txn.Delete(key));
          pending[key] = std::nullopt;
        } else {
          auto it = pending.find(key);
          const std::string* want =
              it != pending.end() ? (it->second ? &*it->second : nullptr) : Find(model, key);
          ASSERT_TRUE(Agrees(txn.Get(key), want, key)) << " (inside the transaction)";
        }
        if (Uniform(rng, 0, 19) == 0) {  // the committed state is unaffected meanwhile
          ASSERT_TRUE(Agrees(other->Get(key), Find(model, key), key)) << " (other handle)";
        }
      }
      const uint64_t end = Uniform(rng, 0, 99);
      if (end < 75) {
        ASSERT_OK(txn.Commit());
        ++commits;
        for (auto& [key, value] : pending) {
          if (value) {
            model[key] = std::move(*value);
          } else {
            model.erase(key);
          }
        }
      } else if (end < 90) {
        txn.Abort();
        ++aborts;
      } else {
        // Dropped: the destructor aborts at the end of this scope.
        ++aborts;
      }
    } else if (op < 900) {  // a read transaction: a few Gets and Count
      DB* handle = Uniform(rng, 0, 1) == 0 ? other.get() : db.get();
      ASSERT_OK_AND_ASSIGN(ReadTxn txn, handle->BeginRead());
      ASSERT_EQ(txn.Count(), model.size());
      for (int j = 0; j < 5; ++j) {
        const std::string& key = pick_key();
        ASSERT_TRUE(Agrees(txn.Get(key), Find(model, key), key)) << " (ReadTxn)";
      }
    } else if (op < 904) {  // full comparison
      DB* handle = Uniform(rng, 0, 1) == 0 ? other.get() : db.get();
      ASSERT_OK_AND_ASSIGN(ReadTxn txn, handle->BeginRead());
      ASSERT_TRUE(SameContents(txn, model));
    } else if (op < 907) {  // reopen one or both handles
      ++reopens;
      const uint64_t which = Uniform(rng, 0, 2);
      if (which != 1) {
        db.reset();
        ASSERT_OK_AND_ASSIGN(db, DB::Open(path, options));
      }
      if (which != 0) {
        other.reset();
        ASSERT_OK_AND_ASSIGN(other, DB::Open(path, options));
      }
    } else if (op < 909) {
      ++checkpoints;
      ASSERT_OK(db->Checkpoint());
    } else if (op < 920) {
      const Stats stats = other->GetStats();
      ASSERT_EQ(stats.keys, model.size());
      ASSERT_LE(stats.live_bytes, stats.log_bytes);
      ASSERT_LE(stats.log_bytes, stats.file_size);
      ASSERT_LE(stats.index_used, stats.index_capacity);
    } else {  // more puts: keep the database populated
      const std::string& key = pick_key();
      std::string value = test::RandomBytes(rng, Uniform(rng, 0, 200));
      ASSERT_OK(db->Put(key, value));
      model[key] = std::move(value);
    }
  }

  SCOPED_TRACE(absl::StrCat("seed=", seed, " at the end"));
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    ASSERT_TRUE(SameContents(txn, model));
  }
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, other->BeginRead());
    ASSERT_TRUE(SameContents(txn, model));
  }
  const Stats stats = db->GetStats();
  EXPECT_GT(stats.index_capacity, 64u) << "the index never grew";
  EXPECT_GT(stats.file_size, 1u << 20) << "the file never grew";
  if (steps >= 2000) {  // fewer write too little for the log to turn over
    EXPECT_GT(stats.bytes_relocated * 10, stats.bytes_written) << "the cleaner hardly ran";
  }
  db.reset();
  other.reset();
  ASSERT_OK_AND_ASSIGN(db, DB::Open(path, options));
  {
    ASSERT_OK_AND_ASSIGN(ReadTxn txn, db->BeginRead());
    ASSERT_TRUE(SameContents(txn, model)) << " (after the final reopen)";
  }
  {
    // The whole file agrees with itself: every batch valid, the index equal to the log's replay.
    std::vector<VerifyProblem> problems;
    EXPECT_OK(db->Verify(&problems));
    for (const VerifyProblem& p : problems)
      ADD_FAILURE() << p.kind << " @" << p.offset << ": " << p.detail;
  }
  std::printf(
      "seed %llu: %lld steps, %d commits, %d aborts, %d reopens, %d checkpoints, %zu keys, "
      "file %llu bytes, index %llu slots, %llu of %llu bytes written relocated\n",
      static_cast<unsigned long long>(seed), static_cast<long long>(steps), commits, aborts,
      reopens, checkpoints, model.size(), static_cast<unsigned long long>(stats.file_size),
      static_cast<unsigned long long>(stats.index_capacity),
      static_cast<unsigned long long>(stats.bytes_relocated),
      static_cast<unsigned long long>(stats.bytes_written));
}

class DifferentialTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(DifferentialTest, MatchesHashMapModel) { RunDifferential(GetParam()); }

INSTANTIATE_TEST_SUITE_P(FixedSeeds, DifferentialTest,
                         ::testing::Values(1, 2, 3, 0x5eed, 20240601));

TEST(DifferentialSeedTest, SeedFromEnvironment) {
  const char* text = std::getenv("MAPKV_DIFF_SEED");
  if (text == nullptr || *text == '\0') GTEST_SKIP() << "set MAPKV_DIFF_SEED=<n> or =random";
  uint64_t seed = 0;
  if (std::string_view(text) == "random") {
    seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  } else {
    seed = static_cast<uint64_t>(test::EnvInt("MAPKV_DIFF_SEED", 0));
  }
  std::printf("MAPKV_DIFF_SEED: seed %llu\n", static_cast<unsigned long long>(seed));
  RunDifferential(seed);
}

}  // namespace
}  // namespace mapkv
