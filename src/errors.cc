#include "src/errors.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "mapkv/db.h"
#include "src/strings.h"

namespace mapkv::internal {

namespace {
// Appends `s` quoted as QuoteKey says. Printable ASCII other than the quotes and the backslash
// is what most keys are, and what CHexEscape leaves as it is: appended directly.
void AppendQuoted(std::string& out, std::string_view s) {
  const std::string_view head = s.substr(0, std::min(s.size(), kQuotedBytes));
  out += '"';
  const bool plain = std::all_of(head.begin(), head.end(), [](char c) {
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\'' && c != '\\';
  });
  if (plain) {
    out.append(head);
  } else {
    out += absl::CHexEscape(ToAbsl(head));
  }
  out += s.size() > kQuotedBytes ? "\"..." : "\"";
}
}  // namespace

std::string QuoteKey(std::string_view s) {
  std::string out;
  AppendQuoted(out, s);
  return out;
}

// A miss of DB::Get builds this: one string, sized once.
absl::Status KeyNotFoundError(std::string_view path, std::string_view key) {
  std::string message;
  message.reserve(path.size() + std::min(key.size(), kQuotedBytes) + 24);
  message.append(path);
  message.append(": key ");
  AppendQuoted(message, key);
  message.append(" not found");
  return absl::NotFoundError(message);
}

absl::Status CheckKeySize(std::string_view path, std::string_view key) {
  if (!key.empty() && key.size() <= kMaxKeySize) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      ToAbsl(path), path.empty() ? "" : ": ", "key ", key.empty() ? "" : QuoteKey(key),
      key.empty() ? "" : " ", "of ", key.size(), " bytes: keys are 1 to ", kMaxKeySize, " bytes"));
}

}  // namespace mapkv::internal
