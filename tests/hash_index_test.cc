// Unit tests of the open-addressing table: probing, tombstones, wrap-around, growth arithmetic.
#include "src/hash_index.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace mapkv::internal {
namespace {

class IndexTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kBits = 6;  // 64 slots
  static constexpr uint64_t kRecord = kHeaderSize;
  static constexpr uint64_t kSize = kHeaderSize + (1 << 16);
  // Cache-line aligned, as the mapping is (std::aligned_alloc is missing from Windows' C library).
  struct alignas(64) Line {
    char bytes[64];
  };
  IndexTest()
      : mem_(new Line[kSize / sizeof(Line)]),
        table_(reinterpret_cast<char*>(mem_.get()), kRecord, kBits) {
    std::memset(mem_.get(), 0, kSize);
  }
  // A lookup that confirms by offset (standing in for the key comparison).
  Slot* Find(uint64_t hash, uint64_t offset, Slot** free_slot = nullptr) {
    return table_.Probe(
        hash, [&](uint64_t o) { return o == offset; }, free_slot);
  }
  std::unique_ptr<Line[]> mem_;
  IndexTable table_;
};

TEST_F(IndexTest, EmptyTableFindsNothingAndOffersTheHomeSlot) {
  Slot* free_slot = nullptr;
  EXPECT_EQ(Find(5, 80), nullptr);
  EXPECT_EQ(Find(5, 80, &free_slot), nullptr);
  EXPECT_EQ(free_slot, &table_.slot(5));
  EXPECT_EQ(table_.capacity(), 64u);
}

TEST_F(IndexTest, CollidingHashesProbeLinearlyAndWrapAround) {
  // Three keys with the same hash homed at the last slot: the run wraps to slots 0 and 1.
  const uint64_t hash = 63;
  table_.InsertFresh(hash, 1000);
  table_.InsertFresh(hash, 2000);
  table_.InsertFresh(hash, 3000);
  EXPECT_EQ(table_.slot(63).offset.load(), 1000u);
  EXPECT_EQ(table_.slot(0).offset.load(), 2000u);
  EXPECT_EQ(table_.slot(1).offset.load(), 3000u);
  EXPECT_EQ(Find(hash, 3000), &table_.slot(1));
  EXPECT_EQ(Find(hash, 4000), nullptr);
  // A different hash in the run is skipped without calling visit on it.
  int visits = 0;
  table_.Probe(hash + 64, [&](uint64_t) {
    ++visits;
    return false;
  });
  EXPECT_EQ(visits, 0);
}

TEST_F(IndexTest, TombstonesKeepRunsWalkableAndAreReused) {
  table_.InsertFresh(10, 1000);
  table_.InsertFresh(10, 2000);
  table_.slot(10).offset.store(kTombstone);
  EXPECT_EQ(Find(10, 2000), &table_.slot(11));  // the run continues past the tombstone
  Slot* free_slot = nullptr;
  EXPECT_EQ(Find(10, 9999, &free_slot), nullptr);
  EXPECT_EQ(free_slot, &table_.slot(10));  // an insert reuses the first tombstone
}

TEST_F(IndexTest, ProbeEndsOnAFullTable) {
  // A damaged table with no empty slot must not loop forever.
  for (uint64_t i = 0; i < 64; ++i) IndexTable::Fill(table_.slot(i), i + 100, 1000 + 8 * i);
  EXPECT_EQ(Find(7, 1), nullptr);
  for (uint64_t i = 0; i < 64; ++i) table_.slot(i).offset.store(kTombstone);
  Slot* free_slot = nullptr;
  EXPECT_EQ(Find(7, 1, &free_slot), nullptr);
  EXPECT_EQ(free_slot, &table_.slot(7));
}

TEST(IndexSizingTest, BitsAndLoadLimit) {
  EXPECT_EQ(IndexBitsFor(0, 0), 6u);
  EXPECT_EQ(IndexBitsFor(0, 1024), 10u);
  EXPECT_EQ(IndexBitsFor(1000, 64), 11u);  // at most half full after a rehash
  EXPECT_EQ(IndexBitsFor(1024, 64), 11u);
  EXPECT_EQ(IndexBitsFor(1025, 64), 12u);
  EXPECT_FALSE(IndexOverLimit(48, 64));
  EXPECT_TRUE(IndexOverLimit(49, 64));
}

}  // namespace
}  // namespace mapkv::internal
