#include "json_read.h"

namespace mapkv::tools {

// RapidJSON alone, where simdjson is not found (tools/CMakeLists.txt).
absl::StatusOr<LineKind> ParseJsonObject(std::string_view line, const ParseOptions& options,
                                         Record* record) {
  return ParseJsonObjectRapid(line, options, record);
}

}  // namespace mapkv::tools
