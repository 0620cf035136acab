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
  uint64_t prev = 0;        // kChained: the key's previous record (0: none)
  std::string_view key;
  std::string_view value;
};

// The *At functions take the record's address `p` in the mapping and its log offset `offset`,
// which seeds its checksum: in a ring (format.h) p is not base + offset. The others are for a
// linear log, with the record at base + offset.

// The checksum of the record whose header fields are already written.
uint64_t RecordChecksumAt(const char* p, uint64_t offset, uint64_t salt);
inline uint64_t RecordChecksum(const char* base, uint64_t offset, uint64_t salt) {
  return RecordChecksumAt(base + offset, offset, salt);
}

// The checksum of a decoded record (DecodeRecordAt), from the lengths it was decoded with: a
// reader racing a writer that reuses the space (a ring) must never re-read them from the mapping.
uint64_t RecordChecksumOf(const char* p, const Record& r, uint64_t salt);

// Writes a kPut, kDelete or kCommit record (space checked by the caller) and returns its size.
// Its checksum is in the header. With kChained in `flags`, `prev` goes before the key.
uint64_t WriteRecordAt(char* p, uint64_t offset, uint64_t salt, RecordType type, uint8_t flags,
                       uint64_t seq, std::string_view key, std::string_view value,
                       uint64_t prev = 0);
inline uint64_t WriteRecord(char* base, uint64_t offset, uint64_t salt, RecordType type,
                            uint8_t flags, uint64_t seq, std::string_view key,
                            std::string_view value, uint64_t prev = 0) {
  return WriteRecordAt(base + offset, offset, salt, type, flags, seq, key, value, prev);
}

// Writes a kPad record header: the rest of a ring's lap from `offset` is unused.
void WritePadAt(char* p, uint64_t offset, uint64_t salt, uint64_t seq);

// Rewrites the flags of a written record and its checksum (kChained stays as it was).
void SetRecordFlagsAt(char* p, uint64_t offset, uint64_t salt, uint8_t flags);
inline void SetRecordFlags(char* base, uint64_t offset, uint64_t salt, uint8_t flags) {
  SetRecordFlagsAt(base + offset, offset, salt, flags);
}

// Writes the header of a kIndex record with 2^bits slots at `offset` (the caller fills the
// slots). Index tables are never in a ring.
uint64_t WriteIndexHeader(char* base, uint64_t offset, uint64_t salt, uint8_t flags, uint64_t seq,
                          uint32_t bits);

// Decodes the record at `p`, which with all its payload must fit in the `room` bytes from there (a
// kPad takes them all). With `verify` the checksum is checked. DataLoss naming the offset for
// anything malformed.
absl::StatusOr<Record> DecodeRecordAt(const char* p, uint64_t offset, uint64_t room, uint64_t salt,
                                      bool verify);

// DecodeRecordAt for a linear log: the record at base + offset, in the log [kHeaderSize, limit).
absl::StatusOr<Record> ReadRecord(const char* base, uint64_t offset, uint64_t limit, uint64_t salt,
                                  bool verify);

// The digest a kCommit record carries for a batch starting at `batch_start`.
uint64_t BatchDigest(const uint64_t* checksums, uint64_t n, uint64_t salt, uint64_t batch_start);

}  // namespace mapkv::internal

#endif  // MAPKV_LOG_H_
