// Encoding, decoding and validation of log records (format.h). Pure functions over a mapping.
#ifndef MAPKV_LOG_H_
#define MAPKV_LOG_H_

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "src/format.h"

namespace mapkv::internal {

struct Record {
  uint64_t offset = 0;
  uint64_t size = 0;  // bytes the record occupies, padding included
  uint8_t type = 0;
  uint8_t flags = 0;
  uint64_t seq = 0;
  uint64_t checksum = 0;
  uint32_t index_bits = 0;  // kIndex only
  std::string_view key;
  std::string_view value;
};

// The checksum of the record at `offset` whose header fields are already written.
uint64_t RecordChecksum(const char* base, uint64_t offset, uint64_t salt);

// Writes a kPut, kDelete or kCommit record at `offset` (space checked by the caller) and returns
// its size. Its checksum is in the header.
uint64_t WriteRecord(char* base, uint64_t offset, uint64_t salt, RecordType type, uint8_t flags,
                     uint64_t seq, std::string_view key, std::string_view value);

// Rewrites the flags of a written record and its checksum.
void SetRecordFlags(char* base, uint64_t offset, uint64_t salt, uint8_t flags);

// Writes the header of a kIndex record with 2^bits slots at `offset` (the caller fills the slots).
uint64_t WriteIndexHeader(char* base, uint64_t offset, uint64_t salt, uint8_t flags, uint64_t seq,
                          uint32_t bits);

// Decodes the record at `offset`, which with all its payload must lie below `limit`. With `verify`
// the checksum is checked. DataLoss naming the offset for anything malformed.
absl::StatusOr<Record> ReadRecord(const char* base, uint64_t offset, uint64_t limit, uint64_t salt,
                                  bool verify);

// The digest a kCommit record carries for a batch starting at `batch_start`.
uint64_t BatchDigest(const uint64_t* checksums, uint64_t n, uint64_t salt, uint64_t batch_start);

}  // namespace mapkv::internal

#endif  // MAPKV_LOG_H_
