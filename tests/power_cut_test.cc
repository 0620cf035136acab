// Power cuts, simulated (tests/fault_file.h): a workload of puts, overwrites, deletes, multi-key
// transactions, checkpoints and file growth runs until the power goes at a random flush (in the
// middle of a commit, a checkpoint, a rebuild or a close) or between two operations. Each cut
// keeps a random part of what was not flushed. After the reboot the database must open, pass
// Verify, and hold exactly the state after some commit at or after the last completed
// Checkpoint() (I6; with Durability::kSync, after the last Commit() that returned). Then the
// workload goes on over the recovered file, so later cuts land on files that were recovered
// before.
//
// MAPKV_POWER_CUTS sets the cuts per durability mode (300: 900 in all); MAPKV_POWER_CUT_SEED adds
// one more run with that seed.
#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fault_file.h"
#include "gtest/gtest.h"
#include "mapkv/db.h"
#include "src/format.h"
#include "test_util.h"

namespace mapkv {
namespace {

using test::History;
using test::State;
using test::Write;

struct Mode {
  const char* name;
  Durability durability;
};

std::string Key(uint64_t n) { return absl::StrCat("key-", n); }

// Mostly small; now and then one large enough to grow the file. Half the runs use one size for
// every small value, as real workloads often do: batches of equal length line up at the same
// offsets across a cut, where a stale one could pass for a new one.
std::string Value(std::mt19937_64& rng, bool fixed_size) {
  const uint64_t size = test::Uniform(rng, 0, 99) < 3 ? test::Uniform(rng, 20'000, 200'000)
                        : fixed_size                  ? 100
                                                      : test::Uniform(rng, 0, 300);
  return test::RandomBytes(rng, size);
}

class PowerCutTest : public ::testing::TestWithParam<Mode> {
 protected:
  struct Counts {
    int cuts = 0, mid_io = 0, rebuilt = 0, clean = 0, at_floor = 0, past_floor = 0;
  };

  void Run(uint64_t seed, int cuts) {
    SCOPED_TRACE(absl::StrCat(GetParam().name, " seed ", seed));
    test::FaultFileSystem fs;
    fs.Seed(seed);
    std::mt19937_64 rng(seed);
    const bool fixed_size = seed % 2 == 1;
    const std::string path = absl::StrCat("/simulated/", GetParam().name, "-", seed, ".mapkv");
    std::vector<std::string> logged;
    Options options;
    options.env = &fs;
    options.durability = GetParam().durability;
    options.max_file_size = 16 << 20;
    options.initial_file_size = 1 << 20;
    options.initial_index_slots = 64;  // the index grows too
    options.checkpoint_bytes = 256 << 10;
    options.info_log = [&](std::string_view line) { logged.emplace_back(line); };

    History history;
    State now;
    uint64_t next_key = 0;
    Counts counts;
    for (int cycle = 0; cycle <= cuts; ++cycle) {
      SCOPED_TRACE(absl::StrCat("after cut ", cycle));
      logged.clear();
      auto db = DB::Open(path, options);
      ASSERT_TRUE(db.ok()) << db.status();
      if (cycle > 0) {
        const Stats stats = (*db)->GetStats();
        counts.rebuilt += stats.rebuilt_index;
        counts.clean += !stats.rebuilt_index;
        if (stats.rebuilt_index) {
          ASSERT_EQ(logged.size(), 1u);
          EXPECT_NE(logged[0].find("rebuilt the index from the log"), std::string::npos)
              << logged[0];
        }
        ASSERT_OK((*db)->Verify());
        State recovered;
        {
          ASSERT_OK_AND_ASSIGN(ReadTxn txn, (*db)->BeginRead());
          ASSERT_OK(txn.ForEach([&](std::string_view k, std::string_view v) {
            recovered.emplace(k, v);
            return true;
          }));
        }
        const int match = history.Match(recovered);
        ASSERT_GE(match, 0) << "the recovered state (" << recovered.size()
                            << " keys) is no commit boundary at or after the last durable one ("
                            << history.floor.size() << " keys, then " << history.commits.size()
                            << " commits)";
        (match == 0 ? counts.at_floor : counts.past_floor)++;
        now = recovered;
        history.Durable(now);
      }
      if (cycle == cuts) break;

      // The power goes at one of the next flushes, or between two operations.
      if (test::Uniform(rng, 0, 3) != 0) fs.CutAtIo(test::Uniform(rng, 1, 40));
      const uint64_t ops = test::Uniform(rng, 1, 150);
      for (uint64_t op = 0; op < ops && !fs.cut(); ++op) {
        std::vector<Write> writes;
        const uint64_t pick = test::Uniform(rng, 0, 99);
        auto existing = [&]() -> std::optional<std::string> {
          if (now.empty()) return std::nullopt;
          auto it = now.lower_bound(Key(test::Uniform(rng, 0, next_key)));
          if (it == now.end()) it = now.begin();
          return it->first;
        };
        if (pick < 6) {
          ASSERT_OK((*db)->Checkpoint());
          if (!fs.cut()) history.Durable(now);
          continue;
        } else if (pick < 40) {
          writes.emplace_back(Key(next_key++), Value(rng, fixed_size));
        } else if (pick < 65) {
          if (auto k = existing()) writes.emplace_back(*k, Value(rng, fixed_size));
        } else if (pick < 80) {
          if (auto k = existing()) writes.emplace_back(*k, std::nullopt);
        } else {
          const uint64_t n = test::Uniform(rng, 2, 8);
          for (uint64_t i = 0; i < n; ++i) {
            const uint64_t kind = test::Uniform(rng, 0, 2);
            auto k = kind == 0 ? std::optional<std::string>(Key(next_key++)) : existing();
            if (!k) continue;
            writes.emplace_back(
                *k, kind == 2 ? std::nullopt : std::optional<std::string>(Value(rng, fixed_size)));
          }
        }
        if (writes.empty()) continue;
        if (writes.size() == 1) {
          const auto& [key, value] = writes[0];
          ASSERT_OK(value ? (*db)->Put(key, *value) : (*db)->Delete(key));
        } else {
          ASSERT_OK_AND_ASSIGN(WriteTxn txn, (*db)->BeginWrite());
          for (const auto& [key, value] : writes) {
            ASSERT_OK(value ? txn.Put(key, *value) : txn.Delete(key));
          }
          ASSERT_OK(txn.Commit());
        }
        test::Apply(writes, &now);
        history.commits.push_back(std::move(writes));
        // Every Commit() of kSync that returned before the cut is on the disk.
        if (GetParam().durability == Durability::kSync && !fs.cut()) history.Durable(now);
      }
      counts.mid_io += fs.cut();
      if (!fs.cut()) fs.PowerCut();
      ++counts.cuts;
      db->reset();  // closes on a frozen disk: nothing of it lands
      fs.Reboot();
    }
    std::printf(
        "[ %s seed %llu ] %d cuts (%d during a flush), reopened %d with an index rebuild and %d "
        "clean; recovered the last durable state %d times and a later commit %d times\n",
        GetParam().name, static_cast<unsigned long long>(seed), counts.cuts, counts.mid_io,
        counts.rebuilt, counts.clean, counts.at_floor, counts.past_floor);
  }
};

TEST_P(PowerCutTest, RecoversACommitBoundaryAtOrAfterTheLastDurableOne) {
  const int cuts = static_cast<int>(test::EnvInt("MAPKV_POWER_CUTS", 300));
  // Several seeds of at most 20 cuts each, on a file of its own: a failure names a short history
  // to replay, and no file fills up.
  const int runs = std::max(5, (cuts + 19) / 20);
  for (int run = 0; run < runs; ++run) {
    Run(1000 + run, (cuts + runs - 1) / runs);
    if (HasFatalFailure()) return;
  }
  if (const int64_t seed = test::EnvInt("MAPKV_POWER_CUT_SEED", 0); seed != 0) Run(seed, cuts);
}

// The case that the random cuts hit only rarely, built on purpose. Twenty one-page batches are
// committed after a checkpoint; the power goes and only the page of the fifth is lost, so the
// disk holds the sixth to the twentieth behind a hole. The reboot rebuilds the index over the
// hole, and a new batch then ends exactly where the seventh began, with the sequence number
// right before the seventh's. Had the rebuild left the stale batches on the disk, the next
// rebuild would take the seventh to the twentieth for commits made after the new one.
TEST(PowerCutRegressionTest, StaleBatchesPastALostPageNeverComeBack) {
  constexpr uint64_t kPage = test::FaultFileSystem::kPage;
  test::FaultFileSystem fs;
  const std::string path = "/simulated/stale-batches.mapkv";
  Options options;
  options.env = &fs;
  options.max_file_size = 16 << 20;
  options.initial_index_slots = 64;
  options.info_log = [](std::string_view) {};
  const std::string key_prefix = "page-";  // keys of one length: "page-00" .. "page-20"
  auto key = [&](int i) { return absl::StrFormat("%s%02d", key_prefix, i); };
  // A value whose one-record batch ends exactly at `end`, starting at `tail`.
  auto value_to = [&](uint64_t tail, uint64_t end) {
    const uint64_t header = internal::RecordSizeOf(key(0).size(), 0, /*chained=*/true);
    EXPECT_GE(end - tail, header);
    return std::string(end - tail - header, 'v');
  };
  uint64_t batch5 = 0;
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, options));
    uint64_t tail = db->GetStats().log_bytes;
    const uint64_t aligned = (tail + 2 * kPage - 1) / kPage * kPage;
    ASSERT_OK(db->Put(key(0), value_to(tail, aligned)));
    ASSERT_OK(db->Checkpoint());
    for (int i = 1; i <= 20; ++i) {
      tail = db->GetStats().log_bytes;
      ASSERT_EQ(tail % kPage, 0u);
      if (i == 5) batch5 = tail;
      ASSERT_OK(db->Put(key(i), value_to(tail, tail + kPage)));
    }
    fs.PowerCutLosing(batch5, batch5 + kPage);
  }
  fs.Reboot();
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, options));
    ASSERT_TRUE(db->GetStats().rebuilt_index);
    for (int i = 0; i <= 20; ++i) {
      EXPECT_EQ(db->Get(key(i)).ok(), i < 5) << key(i);
    }
    const uint64_t tail = db->GetStats().log_bytes;  // past the new index, where batch 5 was
    ASSERT_GT(tail, batch5);
    ASSERT_LT(tail, batch5 + 2 * kPage);
    ASSERT_OK(db->Put(key(99), value_to(tail, batch5 + 2 * kPage)));
    ASSERT_EQ(db->GetStats().log_bytes, batch5 + 2 * kPage);  // where batch 7 began
    ASSERT_OK(db->Checkpoint());
    fs.PowerCutLosing(0, 0);
  }
  fs.Reboot();
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path, options));
  ASSERT_OK(db->Verify());
  EXPECT_TRUE(db->Get(key(99)).ok());
  for (int i = 5; i <= 20; ++i) {
    EXPECT_TRUE(absl::IsNotFound(db->Get(key(i)).status())) << key(i) << " came back";
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, PowerCutTest,
                         ::testing::Values(Mode{"none", Durability::kNone},
                                           Mode{"periodic", Durability::kPeriodic},
                                           Mode{"sync", Durability::kSync}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace mapkv
