// Resources of this process, to catch leaks across open/close cycles.
#ifndef MAPKV_TESTS_TESTING_RESOURCES_H_
#define MAPKV_TESTS_TESTING_RESOURCES_H_

#include <string_view>

#include "testing/subprocess.h"

namespace mapkv::test {

// True where this process can count its open descriptors or handles and its mappings (Linux
// through /proc, Windows through GetProcessHandleCount and VirtualQuery).
inline bool CanCountResources() { return tools::CountOpenHandles() >= 0; }

// Open descriptors (Windows: handles) of this process; -1 when it cannot tell.
inline int CountOpenFds() { return tools::CountOpenHandles(); }

// Memory mappings of this process, only those of files whose name contains `containing` when it
// is not empty; -1 when it cannot tell.
inline int CountMappings(std::string_view containing = {}) {
  return tools::CountMappings(containing);
}

// Mappings a sanitizer's allocator may add on its own between two counts (AddressSanitizer keeps
// freed large blocks mapped in its quarantine for a while); 0 in a plain build.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr int kAllocatorMappingSlack = 16;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr int kAllocatorMappingSlack = 16;
#else
inline constexpr int kAllocatorMappingSlack = 0;
#endif
#else
inline constexpr int kAllocatorMappingSlack = 0;
#endif

}  // namespace mapkv::test

#endif  // MAPKV_TESTS_TESTING_RESOURCES_H_
