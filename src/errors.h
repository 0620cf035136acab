// How errors about a key are made: each names the file and the key where it is made, so that no
// caller adds context afterwards and none recognises an error by its text.
//
// NotFound from a key operation (Get, TxnGet, a cache miss) means only "no such key": callers test
// absl::IsNotFound and nothing else. Its message is "<path>: key \"<key>\" not found".
#ifndef MAPKV_ERRORS_H_
#define MAPKV_ERRORS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace mapkv::internal {

// Bytes of a key or value a message shows; a longer one is cut there and marked "...".
inline constexpr size_t kQuotedBytes = 64;

// `s` for a message: in double quotes, C-escaped, at most kQuotedBytes of it ("..." after the
// closing quote when cut).
std::string QuoteKey(std::string_view s);

// NotFound: "<path>: key \"<key>\" not found".
absl::Status KeyNotFoundError(std::string_view path, std::string_view key);

// InvalidArgument unless `key` is 1 to kMaxKeySize bytes. The message names `path` when it is not
// empty, and the key (quoted) when it is not empty. The engine and the tool's loaders share it.
absl::Status CheckKeySize(std::string_view path, std::string_view key);

// The payload of the Unavailable error of a call on a handle whose file an online compaction
// replaced (DBImpl::Superseded): DB moves to the file under the name and calls again.
inline constexpr char kSupersededPayload[] = "mapkv/superseded";
inline bool IsSuperseded(const absl::Status& status) {
  // ok() first: it is inline, and every call of a DB (each Get) asks this of its result.
  return !status.ok() && status.code() == absl::StatusCode::kUnavailable &&
         status.GetPayload(kSupersededPayload).has_value();
}

}  // namespace mapkv::internal

#endif  // MAPKV_ERRORS_H_
