// The parts of process.h that are the same on every platform: clocks and random bits from the
// standard library.
#include <chrono>
#include <random>

#include "src/platform/process.h"

namespace mapkv::internal {

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t MonotonicMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t RandomU64() {
  std::random_device rd;  // /dev/urandom on glibc
  return (uint64_t{rd()} << 32) ^ rd();
}

}  // namespace mapkv::internal
