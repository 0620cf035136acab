// Reading records from a TSV file, the format of data/ (see data/README.md): one `key<TAB>value`
// a line, `#` comment lines and blank lines skipped. Shared by `mapkv demo` and, later, `load`.
#ifndef MAPKV_TOOLS_TSV_H_
#define MAPKV_TOOLS_TSV_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mapkv::tools {

struct Record {
  std::string key;
  std::string value;
};

// The records of `path`, in file order. NotFound when the file cannot be opened;
// InvalidArgument, with the line number, for a line without a tab or with an empty key. The value
// is everything after the first tab, and a trailing "\r" is dropped.
absl::StatusOr<std::vector<Record>> ReadTsv(const std::string& path);

}  // namespace mapkv::tools

#endif  // MAPKV_TOOLS_TSV_H_
