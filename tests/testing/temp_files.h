// Temporary directories, removed with what they hold, and whole-file reads and writes.
#ifndef MAPKV_TESTS_TESTING_TEMP_FILES_H_
#define MAPKV_TESTS_TESTING_TEMP_FILES_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "testing/subprocess.h"
#include "tests/testing/env.h"

namespace mapkv::test {

// A fresh directory under $TMPDIR or /tmp (Windows: the user's temporary directory), removed with
// its contents on destruction unless MAPKV_KEEP_TEMP is set to a non-zero value (then its path is
// printed, for post-mortems).
class TempDir {
 public:
  TempDir() {
    absl::StatusOr<std::string> made = tools::MakeTempDir("mapkv_test.");
    if (!made.ok()) {
      std::fprintf(stderr, "no temporary directory: %s\n", made.status().ToString().c_str());
      std::abort();
    }
    path_ = *made;
  }
  ~TempDir() {
    if (EnvInt("MAPKV_KEEP_TEMP", 0) != 0) {
      std::fprintf(stderr, "keeping %s\n", path_.c_str());
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // The path of `name` inside the directory.
  std::string File(std::string_view name) const {
    return absl::StrCat(path_, "/", std::string(name));
  }

 private:
  std::string path_;
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A little-endian 64-bit word of a closed file, read or overwritten in place (to stage damage).
inline uint64_t ReadFileU64(const std::string& path, uint64_t offset) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  uint64_t v = 0;
  in.read(reinterpret_cast<char*>(&v), sizeof(v));
  return v;
}

inline void WriteFileU64(const std::string& path, uint64_t offset, uint64_t v) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(reinterpret_cast<const char*>(&v), sizeof(v));
}

inline bool WriteFile(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  return static_cast<bool>(out);
}

inline bool FileExists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

inline uint64_t FileSize(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<uint64_t>(size);
}

}  // namespace mapkv::test

#endif  // MAPKV_TESTS_TESTING_TEMP_FILES_H_
