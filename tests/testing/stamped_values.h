// Deterministic data: stamps that sort as numbers, random bytes, values derived from a key and a
// version, and values that carry their key and version so that a reader can check them.
#ifndef MAPKV_TESTS_TESTING_STAMPED_VALUES_H_
#define MAPKV_TESTS_TESTING_STAMPED_VALUES_H_

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>

#include "absl/random/distributions.h"
#include "absl/strings/str_format.h"

namespace mapkv::test {

using Rng = std::mt19937_64;

// A fixed-width decimal stamp (20 digits), so that stamps sort as numbers.
inline std::string Stamp(uint64_t n) { return absl::StrFormat("%020d", n); }

// The number in a stamp; false if `text` does not start with one.
inline bool ParseStamp(std::string_view text, uint64_t* n) {
  if (text.size() < 20) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + 20, *n);
  return ec == std::errc() && ptr == text.data() + 20;
}

// `size` random bytes (all 256 byte values occur).
inline std::string RandomBytes(Rng& rng, size_t size) {
  std::string out(size, '\0');
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const uint64_t word = rng();
    std::memcpy(out.data() + i, &word, 8);
  }
  if (i < size) {
    const uint64_t word = rng();
    std::memcpy(out.data() + i, &word, size - i);
  }
  return out;
}

// Uniform integer in [lo, hi].
inline uint64_t Uniform(Rng& rng, uint64_t lo, uint64_t hi) {
  return absl::Uniform<uint64_t>(absl::IntervalClosedClosed, rng, lo, hi);
}

// A seed derived from a key and a number, so that data can be regenerated for checking.
inline uint64_t MixSeed(std::string_view key, uint64_t n) {
  return std::hash<std::string_view>()(key) ^ (n * 0x9E3779B97F4A7C15ull);
}

// Deterministic pseudo-random bytes for (key, version): a writer and a checker that agree on the
// key, the version and the size produce the same value.
inline std::string DeterministicValue(std::string_view key, uint64_t version, size_t size) {
  Rng rng(MixSeed(key, version));
  return RandomBytes(rng, size);
}

// A self-describing value: Stamp(version) followed by DeterministicValue(key, version, size).
// CheckStampedValue() recognises exactly these, so a reader can tell a value that was written for
// `key` from anything else.
inline std::string StampedValue(std::string_view key, uint64_t version, size_t size) {
  return Stamp(version) + DeterministicValue(key, version, size);
}
inline bool CheckStampedValue(std::string_view key, std::string_view value, uint64_t* version) {
  if (!ParseStamp(value, version)) return false;
  return value.substr(20) == DeterministicValue(key, *version, value.size() - 20);
}

}  // namespace mapkv::test

#endif  // MAPKV_TESTS_TESTING_STAMPED_VALUES_H_
