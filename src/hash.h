// The one hash function: XXH3-64, for keys and checksums.
#ifndef MAPKV_HASH_H_
#define MAPKV_HASH_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace mapkv::internal {

inline uint64_t Hash64(const void* data, size_t size, uint64_t seed) {
  return XXH3_64bits_withSeed(data, size, seed);
}

inline uint64_t HashKey(std::string_view key, uint64_t seed) {
  return Hash64(key.data(), key.size(), seed);
}

}  // namespace mapkv::internal

#endif  // MAPKV_HASH_H_
