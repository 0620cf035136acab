// The tests' knobs: integers from the environment (tests/CMakeLists.txt lists them).
#ifndef MAPKV_TESTS_TESTING_ENV_H_
#define MAPKV_TESTS_TESTING_ENV_H_

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace mapkv::test {

// The integer value of environment variable `name`, or `def` when it is unset or not a number.
inline int64_t EnvInt(const char* name, int64_t def) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return def;
  int64_t value = 0;
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, value);
  if (ec != std::errc() || ptr != end) return def;
  return value;
}

}  // namespace mapkv::test

#endif  // MAPKV_TESTS_TESTING_ENV_H_
