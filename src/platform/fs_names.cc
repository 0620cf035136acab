// The parts of fs.h that are the same on every platform: temporary names beside a file.
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "src/platform/fs.h"
#include "src/platform/process.h"
#include "src/strings.h"

namespace mapkv::internal {

std::string UniqueTempPath(const std::string& path, std::string_view tag) {
  return absl::StrCat(path, ".", ToAbsl(tag), "-", CurrentPid(), "-",
                      absl::Hex(static_cast<uint32_t>(RandomU64()), absl::kZeroPad8), ".tmp");
}

bool IsTempNameOf(std::string_view name, const std::string& path, std::string_view tag) {
  // "<base>.<tag>-<digits>-<8 hex>.tmp"
  absl::string_view rest = ToAbsl(name);
  const std::string prefix = absl::StrCat(BaseName(path), ".", ToAbsl(tag), "-");
  if (!absl::ConsumePrefix(&rest, prefix) || !absl::ConsumeSuffix(&rest, ".tmp")) return false;
  size_t dash = rest.find('-');
  if (dash == absl::string_view::npos || dash == 0 || rest.size() - dash - 1 != 8) return false;
  uint64_t pid = 0;
  uint32_t random = 0;
  return absl::SimpleAtoi(rest.substr(0, dash), &pid) &&
         absl::SimpleHexAtoi(rest.substr(dash + 1), &random);
}

}  // namespace mapkv::internal
