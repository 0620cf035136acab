#include "tsv.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace mapkv::tools {

absl::StatusOr<std::vector<Record>> ReadTsv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  std::vector<Record> records;
  std::string line;
  for (size_t line_number = 1; std::getline(in, line); ++line_number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    size_t tab = line.find('\t');
    if (tab == std::string::npos || tab == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_number, ": expected key<TAB>value",
                       tab == 0 ? " with a non-empty key" : ", found no tab"));
    }
    records.push_back({line.substr(0, tab), line.substr(tab + 1)});
  }
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat("error reading ", path, ": ", std::strerror(errno)));
  }
  return records;
}

}  // namespace mapkv::tools
