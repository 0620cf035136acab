#include "src/log.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "src/hash.h"

namespace mapkv::internal {
namespace {

RecordHeader* HeaderAt(char* p) { return reinterpret_cast<RecordHeader*>(p); }

// Bytes covered by the checksum, counted from offset + 8.
uint64_t CoveredBytes(const RecordHeader& h) {
  uint64_t n = sizeof(RecordHeader) - 8;
  if (h.type != kIndex && h.type != kPad) {
    n += uint64_t{h.key_len} + h.value_len + ((h.flags & kChained) != 0 ? kPrevSize : 0);
  }
  return n;
}

absl::Status Damaged(uint64_t offset, absl::string_view what) {
  return absl::DataLossError(absl::StrCat("damaged record at offset ", offset, ": ", what));
}

}  // namespace

uint64_t RecordChecksumAt(const char* p, uint64_t offset, uint64_t salt) {
  const auto* h = reinterpret_cast<const RecordHeader*>(p);
  return Hash64(p + 8, CoveredBytes(*h), salt ^ offset);
}

uint64_t RecordChecksumOf(const char* p, const Record& r, uint64_t salt) {
  const uint64_t covered = sizeof(RecordHeader) - 8 + r.key.size() + r.value.size() +
                           ((r.flags & kChained) != 0 ? kPrevSize : 0);
  return Hash64(p + 8, covered, salt ^ r.offset);
}

uint64_t WriteRecordAt(char* p, uint64_t offset, uint64_t salt, RecordType type, uint8_t flags,
                       uint64_t seq, std::string_view key, std::string_view value, uint64_t prev) {
  RecordHeader* h = HeaderAt(p);
  h->value_len = static_cast<uint32_t>(value.size());
  h->key_len = static_cast<uint16_t>(key.size());
  h->type = type;
  h->flags = flags;
  h->seq = seq;
  char* data = p + sizeof(RecordHeader);
  const bool chained = (flags & kChained) != 0;
  if (chained) {
    std::memcpy(data, &prev, kPrevSize);
    data += kPrevSize;
  }
  if (!key.empty()) std::memcpy(data, key.data(), key.size());
  if (!value.empty()) std::memcpy(data + key.size(), value.data(), value.size());
  uint64_t size = RecordSizeOf(key.size(), value.size(), chained);
  uint64_t used = (data - p) + key.size() + value.size();
  std::memset(p + used, 0, size - used);  // no stale bytes in the padding
  h->checksum = RecordChecksumAt(p, offset, salt);
  return size;
}

void WritePadAt(char* p, uint64_t offset, uint64_t salt, uint64_t seq) {
  RecordHeader* h = HeaderAt(p);
  h->value_len = 0;
  h->key_len = 0;
  h->type = kPad;
  h->flags = 0;
  h->seq = seq;
  h->checksum = RecordChecksumAt(p, offset, salt);
}

void SetRecordFlagsAt(char* p, uint64_t offset, uint64_t salt, uint8_t flags) {
  RecordHeader* h = HeaderAt(p);
  h->flags = static_cast<uint8_t>(flags | (h->flags & kChained));
  h->checksum = RecordChecksumAt(p, offset, salt);
}

uint64_t WriteIndexHeader(char* base, uint64_t offset, uint64_t salt, uint8_t flags, uint64_t seq,
                          uint32_t bits) {
  char* p = base + offset;
  RecordHeader* h = HeaderAt(p);
  h->value_len = 0;
  h->key_len = static_cast<uint16_t>(bits);
  h->type = kIndex;
  h->flags = flags;
  h->seq = seq;
  h->checksum = RecordChecksumAt(p, offset, salt);
  return IndexRecordSize(offset, bits);
}

absl::StatusOr<Record> DecodeRecordAt(const char* p, uint64_t offset, uint64_t room, uint64_t salt,
                                      bool verify) {
  if (room < sizeof(RecordHeader)) return Damaged(offset, "runs past the end of the log");
  RecordHeader h;
  std::memcpy(&h, p, sizeof(h));
  Record r;
  r.offset = offset;
  r.type = h.type;
  r.flags = h.flags;
  r.seq = h.seq;
  r.checksum = h.checksum;
  const bool chained = (h.flags & kChained) != 0;
  if (chained && h.type != kPut && h.type != kDelete) {
    return Damaged(offset, "a chained record of a type that has no chain");
  }
  switch (h.type) {
    case kPut:
    case kDelete:
    case kCommit:
      r.size = RecordSizeOf(h.key_len, h.value_len, chained);
      break;
    case kIndex:
      if (h.key_len < 6 || h.key_len > kMaxIndexBits || h.value_len != 0) {
        return Damaged(offset, "bad index table size");
      }
      r.index_bits = h.key_len;
      r.size = IndexRecordSize(offset, h.key_len);
      break;
    case kPad:
      if (h.key_len != 0 || h.value_len != 0) return Damaged(offset, "bad lengths for its type");
      r.size = room;
      break;
    default:
      return Damaged(offset, absl::StrCat("unknown type ", h.type));
  }
  if (r.size > room) return Damaged(offset, "runs past the end of the log");
  if ((h.type == kDelete && h.value_len != 0) ||
      (h.type == kCommit && (h.key_len != 0 || h.value_len != sizeof(CommitPayload))) ||
      ((h.type == kPut || h.type == kDelete) && h.key_len == 0)) {
    return Damaged(offset, "bad lengths for its type");
  }
  if (h.type != kIndex && h.type != kPad) {
    const char* data = p + sizeof(RecordHeader);
    if (chained) {
      std::memcpy(&r.prev, data, kPrevSize);
      // A chain leads strictly back: a crafted one can neither loop nor lead forward.
      if (r.prev != 0 && (r.prev >= offset || r.prev % 8 != 0)) {
        return Damaged(offset, absl::StrCat("previous version at offset ", r.prev));
      }
      data += kPrevSize;
    }
    r.key = std::string_view(data, h.key_len);
    r.value = std::string_view(data + h.key_len, h.value_len);
  }
  // From the header read once above: the mapping's copy may change under a reader (a ring).
  if (verify && RecordChecksumOf(p, r, salt) != h.checksum) {
    return Damaged(offset, "checksum mismatch");
  }
  return r;
}

absl::StatusOr<Record> ReadRecord(const char* base, uint64_t offset, uint64_t limit, uint64_t salt,
                                  bool verify) {
  if (offset % 8 != 0 || offset < kHeaderSize || offset > limit ||
      limit - offset < sizeof(RecordHeader)) {
    return Damaged(offset, absl::StrCat("offset out of the log [", kHeaderSize, ", ", limit, ")"));
  }
  absl::StatusOr<Record> r = DecodeRecordAt(base + offset, offset, limit - offset, salt, verify);
  // A kPad belongs in a ring only.
  if (r.ok() && r->type == kPad) return Damaged(offset, "unknown type 5");
  return r;
}

uint64_t BatchDigest(const uint64_t* checksums, uint64_t n, uint64_t salt, uint64_t batch_start) {
  return Hash64(checksums, n * sizeof(uint64_t), salt ^ batch_start);
}

}  // namespace mapkv::internal
