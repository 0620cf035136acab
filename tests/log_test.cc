// Unit tests of the record format: encoding, checksums, bounds, batch digests.
#include "src/log.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "test_util.h"

namespace mapkv::internal {
namespace {

class LogTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kSize = kHeaderSize + (1 << 20);
  static constexpr uint64_t kSalt = 0x1234567890abcdefull;
  // Cache-line aligned, as the mapping is (std::aligned_alloc is missing from Windows' C library).
  struct alignas(64) Line {
    char bytes[64];
  };
  LogTest() : mem_(new Line[kSize / sizeof(Line)]) { std::memset(base(), 0xAB, kSize); }
  char* base() { return reinterpret_cast<char*>(mem_.get()); }
  std::unique_ptr<Line[]> mem_;
};

TEST_F(LogTest, PutRoundTripAndAlignment) {
  const std::string key = "key";
  const std::string value("v\0lue with a NUL", 16);
  uint64_t size = WriteRecord(base(), kHeaderSize, kSalt, kPut, kLast, 7, key, value);
  EXPECT_EQ(size, Align8(24 + key.size() + value.size()));
  EXPECT_EQ(size % 8, 0u);
  // Padding is zeroed, not left as whatever the space held.
  for (uint64_t i = 24 + key.size() + value.size(); i < size; ++i) {
    EXPECT_EQ(base()[kHeaderSize + i], 0) << i;
  }
  ASSERT_OK_AND_ASSIGN(Record r, ReadRecord(base(), kHeaderSize, kSize, kSalt, true));
  EXPECT_EQ(r.type, kPut);
  EXPECT_EQ(r.flags, kLast);
  EXPECT_EQ(r.seq, 7u);
  EXPECT_EQ(r.size, size);
  EXPECT_EQ(r.key, key);
  EXPECT_EQ(r.value, value);
}

TEST_F(LogTest, LimitsOfKeyAndValueSizes) {
  const std::string key(65535, 'k');
  uint64_t size = WriteRecord(base(), kHeaderSize, kSalt, kPut, 0, 1, key, "");
  ASSERT_OK_AND_ASSIGN(Record r, ReadRecord(base(), kHeaderSize, kSize, kSalt, true));
  EXPECT_EQ(r.key.size(), 65535u);
  EXPECT_TRUE(r.value.empty());
  EXPECT_EQ(r.size, size);
}

TEST_F(LogTest, EveryFlippedByteIsCaught) {
  const uint64_t at = kHeaderSize + 64;
  uint64_t size = WriteRecord(base(), at, kSalt, kPut, 0, 3, "some key", "some value bytes");
  const uint64_t covered = 24 + 8 + 16;
  for (uint64_t i = 0; i < covered; ++i) {
    base()[at + i] ^= 0x10;
    absl::StatusOr<Record> r = ReadRecord(base(), at, kSize, kSalt, true);
    EXPECT_FALSE(r.ok()) << "flip at byte " << i;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
      EXPECT_NE(r.status().message().find(std::to_string(at)), std::string::npos) << r.status();
    }
    base()[at + i] ^= 0x10;
  }
  EXPECT_OK(ReadRecord(base(), at, kSize, kSalt, true));
  (void)size;
}

TEST_F(LogTest, ChecksumIsBoundToOffsetAndSalt) {
  uint64_t size = WriteRecord(base(), kHeaderSize, kSalt, kPut, 0, 1, "k", "v");
  std::memcpy(base() + kHeaderSize + 4096, base() + kHeaderSize, size);
  EXPECT_STATUS(ReadRecord(base(), kHeaderSize + 4096, kSize, kSalt, true),
                absl::StatusCode::kDataLoss);
  EXPECT_STATUS(ReadRecord(base(), kHeaderSize, kSize, kSalt + 1, true),
                absl::StatusCode::kDataLoss);
  // Without verification the record still decodes (the index confirms keys, Get verifies).
  EXPECT_OK(ReadRecord(base(), kHeaderSize + 4096, kSize, kSalt, false));
}

TEST_F(LogTest, BoundsAreChecked) {
  uint64_t size = WriteRecord(base(), kHeaderSize, kSalt, kPut, 0, 1, "key", "value");
  // Past the limit, misaligned, inside the header, beyond the limit entirely.
  EXPECT_STATUS(ReadRecord(base(), kHeaderSize, kHeaderSize + size - 8, kSalt, false),
                absl::StatusCode::kDataLoss);
  EXPECT_STATUS(ReadRecord(base(), kHeaderSize + 4, kSize, kSalt, false),
                absl::StatusCode::kDataLoss);
  EXPECT_STATUS(ReadRecord(base(), 8, kSize, kSalt, false), absl::StatusCode::kDataLoss);
  EXPECT_STATUS(ReadRecord(base(), kSize + 64, kSize, kSalt, false), absl::StatusCode::kDataLoss);
  // A length that runs past the end.
  reinterpret_cast<RecordHeader*>(base() + kHeaderSize)->value_len = 0xFFFFFFF0u;
  EXPECT_STATUS(ReadRecord(base(), kHeaderSize, kSize, kSalt, false), absl::StatusCode::kDataLoss);
}

TEST_F(LogTest, MalformedTypesAndLengths) {
  WriteRecord(base(), kHeaderSize, kSalt, kPut, 0, 1, "key", "value");
  auto* h = reinterpret_cast<RecordHeader*>(base() + kHeaderSize);
  h->type = 99;
  EXPECT_STATUS(ReadRecord(base(), kHeaderSize, kSize, kSalt, false), absl::StatusCode::kDataLoss);
  h->type = kDelete;  // a delete with a value
  EXPECT_STATUS(ReadRecord(base(), kHeaderSize, kSize, kSalt, false), absl::StatusCode::kDataLoss);
  WriteRecord(base(), kHeaderSize, kSalt, kPut, 0, 1, "", "value");  // a put without a key
  EXPECT_STATUS(ReadRecord(base(), kHeaderSize, kSize, kSalt, false), absl::StatusCode::kDataLoss);
  WriteRecord(base(), kHeaderSize, kSalt, kCommit, kLast, 1, "", "short");
  EXPECT_STATUS(ReadRecord(base(), kHeaderSize, kSize, kSalt, false), absl::StatusCode::kDataLoss);
}

TEST_F(LogTest, DeleteAndCommitRecords) {
  uint64_t at = kHeaderSize;
  at += WriteRecord(base(), at, kSalt, kDelete, 0, 5, "gone", "");
  CommitPayload p{42, 1};
  WriteRecord(base(), at, kSalt, kCommit, kLast, 5, "",
              std::string_view(reinterpret_cast<char*>(&p), sizeof(p)));
  ASSERT_OK_AND_ASSIGN(Record d, ReadRecord(base(), kHeaderSize, kSize, kSalt, true));
  EXPECT_EQ(d.type, kDelete);
  EXPECT_EQ(d.key, "gone");
  ASSERT_OK_AND_ASSIGN(Record c, ReadRecord(base(), at, kSize, kSalt, true));
  EXPECT_EQ(c.type, kCommit);
  EXPECT_EQ(c.value.size(), sizeof(CommitPayload));
}

TEST_F(LogTest, IndexRecordSlotsAreCacheLineAligned) {
  for (uint64_t at = kHeaderSize; at < kHeaderSize + 64; at += 8) {
    uint64_t size = WriteIndexHeader(base(), at, kSalt, kLast, 2, 6);
    EXPECT_EQ(IndexSlotsOffset(at) % 64, 0u);
    EXPECT_GE(IndexSlotsOffset(at), at + sizeof(RecordHeader));
    EXPECT_EQ(size, IndexSlotsOffset(at) - at + 64 * 16);
    ASSERT_OK_AND_ASSIGN(Record r, ReadRecord(base(), at, kSize, kSalt, true));
    EXPECT_EQ(r.type, kIndex);
    EXPECT_EQ(r.index_bits, 6u);
    EXPECT_EQ(r.size, size);
    // The slots change in place: they are not under the checksum.
    base()[IndexSlotsOffset(at)] ^= 1;
    EXPECT_OK(ReadRecord(base(), at, kSize, kSalt, true));
  }
  WriteIndexHeader(base(), kHeaderSize, kSalt, kLast, 2, kMaxIndexBits + 1);
  EXPECT_STATUS(ReadRecord(base(), kHeaderSize, kSize, kSalt, false), absl::StatusCode::kDataLoss);
}

TEST_F(LogTest, SetRecordFlagsKeepsTheRecordValid) {
  WriteRecord(base(), kHeaderSize, kSalt, kPut, 0, 1, "key", "value");
  const uint64_t before = reinterpret_cast<RecordHeader*>(base() + kHeaderSize)->checksum;
  SetRecordFlags(base(), kHeaderSize, kSalt, kLast);
  ASSERT_OK_AND_ASSIGN(Record r, ReadRecord(base(), kHeaderSize, kSize, kSalt, true));
  EXPECT_EQ(r.flags, kLast);
  EXPECT_NE(r.checksum, before);
}

TEST(BatchDigestTest, DependsOnEveryChecksumTheirOrderAndTheStart) {
  const uint64_t a[3] = {1, 2, 3};
  const uint64_t b[3] = {1, 3, 2};
  const uint64_t d = BatchDigest(a, 3, 9, kHeaderSize);
  EXPECT_NE(d, BatchDigest(b, 3, 9, kHeaderSize));
  EXPECT_NE(d, BatchDigest(a, 2, 9, kHeaderSize));
  EXPECT_NE(d, BatchDigest(a, 3, 9, kHeaderSize + 8));
  EXPECT_EQ(d, BatchDigest(a, 3, 9, kHeaderSize));
}

}  // namespace
}  // namespace mapkv::internal
