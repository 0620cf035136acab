#include "cache_values.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "src/cache_entry.h"

namespace mapkv::tools {

ShownValue ShowValue(bool cache, std::string_view stored, int64_t now_unix_ms) {
  ShownValue shown;
  if (!cache) {
    shown.value = stored;
    return shown;
  }
  const std::optional<internal::Entry> entry = internal::ParseEntry(stored);
  if (!entry) {
    shown.kind = ShownValue::kMalformed;
    shown.value = stored;
    return shown;
  }
  shown.expires_unix_ms = entry->expires_unix_ms;
  if (entry->kind == internal::EntryKind::kLease) {
    internal::LeasePayload lease;
    std::memcpy(&lease, entry->payload.data(), sizeof(lease));
    shown.kind = ShownValue::kLease;
    shown.lease_pid = lease.pid;
    return shown;
  }
  shown.value = entry->payload;
  shown.kind = entry->ExpiredAt(now_unix_ms) ? ShownValue::kExpired : ShownValue::kValue;
  return shown;
}

std::string EncodeCacheValue(std::string_view value, int64_t expires_unix_ms) {
  std::string out;
  internal::EncodeEntry(internal::EntryKind::kValue, expires_unix_ms, value, &out);
  return out;
}

int64_t NowUnixMs() { return absl::ToUnixMillis(absl::Now()); }

std::string FormatExpiry(int64_t unix_ms) {
  if (unix_ms == 0) return "never";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(unix_ms),
                          absl::UTCTimeZone());
}

absl::StatusOr<int64_t> ParseExpiry(std::string_view text) {
  if (text == "never" || text == "-") return 0;
  absl::Time t;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, absl::string_view(text.data(), text.size()), &t,
                       &error)) {
    return absl::InvalidArgumentError(
        absl::StrCat("expiry \"", absl::string_view(text.data(), text.size()),
                     "\" is not an RFC 3339 time (2026-12-07T03:04:05Z) or \"never\": ", error));
  }
  const int64_t ms = absl::ToUnixMillis(t);
  return ms <= 0 ? 1 : ms;
}

}  // namespace mapkv::tools
