// Text helpers every layer shares, the platform layer included: it depends on nothing of mapkv.
#ifndef MAPKV_STRINGS_H_
#define MAPKV_STRINGS_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace mapkv::internal {

// Debian's abseil has its own absl::string_view, not std::string_view: the conversion at the edge
// (absl::StrCat, absl::SimpleAtoi, abseil's table lookups).
inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

}  // namespace mapkv::internal

#endif  // MAPKV_STRINGS_H_
