// Reading one line of `mapkv load --format jsonl` (records.h): one JSON object whose fields make
// a record. ParseJsonObject is defined by one of two files, picked by tools/CMakeLists.txt:
// json_read_simdjson.cc where simdjson is found (Debian: libsimdjson-dev; the fastest of
// Debian's JSON libraries at this), json_read_rapidjson.cc elsewhere (the Windows cross-build).
// Both read what RapidJSON reads, and give RapidJSON's error messages, which name the column.
#ifndef MAPKV_TOOLS_JSON_READ_H_
#define MAPKV_TOOLS_JSON_READ_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "records.h"

namespace mapkv::tools {

// What the fields of a JSON line make of a record, whichever parser read them: key / key_base64
// and value / value_base64 are strings, once each; "expires" (a cache's dump) is an expiry; other
// fields are ignored, or refused with ParseOptions::strict_fields.
class JsonFields {
 public:
  JsonFields(const ParseOptions& options, Record* record);
  // `text`: the field's string, or nullptr when its value is not a string.
  absl::Status Add(std::string_view name, const std::string_view* text);
  absl::StatusOr<LineKind> Finish() const;

 private:
  const ParseOptions& options_;
  Record* record_;
  bool have_key_ = false;
  bool have_value_ = false;
};

// `line` (not blank) as one JSON object, read by RapidJSON. InvalidArgument saying what is wrong
// and at which column.
absl::StatusOr<LineKind> ParseJsonObjectRapid(std::string_view line, const ParseOptions& options,
                                              Record* record);

// The same, by the fastest parser this build has.
absl::StatusOr<LineKind> ParseJsonObject(std::string_view line, const ParseOptions& options,
                                         Record* record);

}  // namespace mapkv::tools

#endif  // MAPKV_TOOLS_JSON_READ_H_
