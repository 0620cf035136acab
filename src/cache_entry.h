// How a cache (include/mapkv/cache.h) stores an entry in a value: an 8-byte envelope, then the
// payload. The envelope is one little-endian word: the expiry time in milliseconds since the
// Unix epoch in the low 56 bits (0: never), the entry's kind in the top 8.
//   kValue  payload: the value
//   kLease  payload: LeasePayload, the handle computing the value (GetOrCompute); the expiry is
//           when waiters stop waiting for it (CacheOptions::compute_timeout)
#ifndef MAPKV_CACHE_ENTRY_H_
#define MAPKV_CACHE_ENTRY_H_

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace mapkv::internal {

inline constexpr size_t kEnvelopeSize = 8;
inline constexpr uint64_t kExpiryMask = (uint64_t{1} << 56) - 1;

enum class EntryKind : uint8_t { kValue = 0, kLease = 1 };

struct Entry {
  EntryKind kind = EntryKind::kValue;
  int64_t expires_unix_ms = 0;  // 0: never
  std::string_view payload;

  bool ExpiredAt(int64_t now_unix_ms) const {
    return expires_unix_ms != 0 && now_unix_ms >= expires_unix_ms;
  }
};

struct LeasePayload {
  uint32_t slot;           // the computing handle's process slot
  uint32_t pid;            // and that slot's pid and open time when it took the lease: a slot
  int64_t opened_unix_ms;  // reused by another handle does not keep the lease alive
  uint64_t nonce;          // tells two leases of one handle apart (cache.cc: DropLease)
};
static_assert(sizeof(LeasePayload) == 24);

// Nothing when `stored` is no cache entry (too short, or an unknown kind).
inline std::optional<Entry> ParseEntry(std::string_view stored) {
  if (stored.size() < kEnvelopeSize) return std::nullopt;
  uint64_t word;
  std::memcpy(&word, stored.data(), sizeof(word));
  const uint8_t kind = static_cast<uint8_t>(word >> 56);
  if (kind > static_cast<uint8_t>(EntryKind::kLease)) return std::nullopt;
  Entry e;
  e.kind = static_cast<EntryKind>(kind);
  e.expires_unix_ms = static_cast<int64_t>(word & kExpiryMask);
  e.payload = stored.substr(kEnvelopeSize);
  if (e.kind == EntryKind::kLease && e.payload.size() != sizeof(LeasePayload)) return std::nullopt;
  return e;
}

// Writes the envelope and the payload to *out (replacing it, reusing its capacity).
inline void EncodeEntry(EntryKind kind, int64_t expires_unix_ms, std::string_view payload,
                        std::string* out) {
  const uint64_t word =
      (static_cast<uint64_t>(kind) << 56) |
      (static_cast<uint64_t>(expires_unix_ms > 0 ? expires_unix_ms : 0) & kExpiryMask);
  out->resize(kEnvelopeSize + payload.size());
  std::memcpy(out->data(), &word, sizeof(word));
  if (!payload.empty()) std::memcpy(out->data() + kEnvelopeSize, payload.data(), payload.size());
}

// Whether a compaction or a backup at `now_unix_ms` keeps the stored value: a live value, not an
// expired one nor a lease (a lease belongs to a process computing in the original file, which
// never fills it in the copy: a copy's lease would only make its readers wait for nothing). A
// value that is no entry is kept, for Verify and the reader to report.
inline bool KeepWhenCompacting(std::string_view stored, int64_t now_unix_ms) {
  const std::optional<Entry> e = ParseEntry(stored);
  return !e || (e->kind == EntryKind::kValue && !e->ExpiredAt(now_unix_ms));
}

}  // namespace mapkv::internal

#endif  // MAPKV_CACHE_ENTRY_H_
