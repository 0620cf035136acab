#include <cstring>
#include <string>

#include "json_read.h"
#include "simdjson.h"

namespace mapkv::tools {

// simdjson's DOM API, which picks the CPU's SIMD kernel at run time. A line it refuses is read
// again by RapidJSON: for an error that names its column (simdjson's do not), and for the rare
// line past simdjson's 4 GiB limit.
absl::StatusOr<LineKind> ParseJsonObject(std::string_view line, const ParseOptions& options,
                                         Record* record) {
  // simdjson reads up to SIMDJSON_PADDING bytes past the end of its input.
  thread_local simdjson::dom::parser parser;
  thread_local std::string padded;
  padded.resize(line.size() + simdjson::SIMDJSON_PADDING);
  std::memcpy(padded.data(), line.data(), line.size());
  simdjson::dom::object object;
  if (parser.parse(padded.data(), line.size(), /*realloc_if_needed=*/false)
          .get_object()
          .get(object) != simdjson::SUCCESS) {
    return ParseJsonObjectRapid(line, options, record);
  }
  JsonFields fields(options, record);
  for (const simdjson::dom::key_value_pair field : object) {
    std::string_view text;
    const bool is_string = field.value.get_string().get(text) == simdjson::SUCCESS;
    if (absl::Status s = fields.Add(field.key, is_string ? &text : nullptr); !s.ok()) return s;
  }
  return fields.Finish();
}

}  // namespace mapkv::tools
