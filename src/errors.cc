#include "src/errors.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "mapkv/db.h"
#include "src/strings.h"

namespace mapkv::internal {

std::string QuoteKey(std::string_view s) {
  const absl::string_view head = ToAbsl(s.substr(0, std::min(s.size(), kQuotedBytes)));
  return absl::StrCat("\"", absl::CHexEscape(head), s.size() > kQuotedBytes ? "\"..." : "\"");
}

absl::Status KeyNotFoundError(std::string_view path, std::string_view key) {
  return absl::NotFoundError(absl::StrCat(ToAbsl(path), ": key ", QuoteKey(key), " not found"));
}

absl::Status CheckKeySize(std::string_view path, std::string_view key) {
  if (!key.empty() && key.size() <= kMaxKeySize) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      ToAbsl(path), path.empty() ? "" : ": ", "key ", key.empty() ? "" : QuoteKey(key),
      key.empty() ? "" : " ", "of ", key.size(), " bytes: keys are 1 to ", kMaxKeySize, " bytes"));
}

}  // namespace mapkv::internal
