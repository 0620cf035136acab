// How the commands that read and write values (get, put, del, dump, load) see a cache's file: its
// values carry an 8-byte envelope (src/cache_entry.h) with an expiry, and a key may hold a lease
// (a value being computed) instead of a value. The tool opens either kind of file as a database
// (FileKind::kAny) and decodes or encodes the envelope itself, so that reading a cache never
// counts hits or misses in it.
#ifndef MAPKV_TOOLS_CACHE_VALUES_H_
#define MAPKV_TOOLS_CACHE_VALUES_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace mapkv::tools {

struct ShownValue {
  enum Kind { kValue, kExpired, kLease, kMalformed };
  Kind kind = kValue;
  std::string_view value;       // kValue, kExpired: the payload
  int64_t expires_unix_ms = 0;  // 0: never
  uint32_t lease_pid = 0;       // kLease: the process computing the value
};

// `stored` as the tool shows it: a database's value as it is; a cache's entry decoded, expired
// relative to `now_unix_ms`.
ShownValue ShowValue(bool cache, std::string_view stored, int64_t now_unix_ms);

// A cache's stored form of `value`, expiring at `expires_unix_ms` (0: never).
std::string EncodeCacheValue(std::string_view value, int64_t expires_unix_ms);

int64_t NowUnixMs();

// "2026-12-07T03:04:05.678Z", or "never" for 0.
std::string FormatExpiry(int64_t unix_ms);
// The inverse (RFC 3339, any offset; "never" or "-": 0). InvalidArgument otherwise.
absl::StatusOr<int64_t> ParseExpiry(std::string_view text);

}  // namespace mapkv::tools

#endif  // MAPKV_TOOLS_CACHE_VALUES_H_
