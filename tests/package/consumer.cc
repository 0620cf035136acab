// Uses the installed C++ API through the shared library: writes a key in a fresh database, reads
// it back, and prints "mapkv C++: <key>=<value>", or what failed.
#include <cstdio>
#include <memory>
#include <string>

#include "mapkv/db.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DATABASE\n", argv[0]);
    return 2;
  }
  absl::StatusOr<std::unique_ptr<mapkv::DB>> db = mapkv::DB::Open(argv[1]);
  if (!db.ok()) {
    std::fprintf(stderr, "%s\n", db.status().ToString().c_str());
    return 1;
  }
  if (absl::Status s = (*db)->Put("hello", "world"); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::string> value = (*db)->Get("hello");
  if (!value.ok()) {
    std::fprintf(stderr, "%s\n", value.status().ToString().c_str());
    return 1;
  }
  std::printf("mapkv C++: hello=%s\n", value->c_str());
  return 0;
}
