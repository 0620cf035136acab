// Process identity, time, and the boot id, for the layers above that must not call the OS.
#ifndef MAPKV_PLATFORM_PROCESS_H_
#define MAPKV_PLATFORM_PROCESS_H_

#include <atomic>
#include <cstdint>
#include <string>

namespace mapkv::internal {

uint32_t CurrentPid();

// The effective user id: whom the files this process creates belong to (FileInfo::uid). 0 on
// Windows, where owners are ACLs and StatFile reports uid 0 for every file.
uint32_t CurrentUid();

// Counts fork()s this process went through (0 in the original process). A handle records it at
// Open and refuses to work in a child, whose generation differs. A plain load: cheap to check.
uint64_t ForkGeneration();

// A string that changes on every boot of the machine ("" where unknown).
std::string BootId();

int64_t NowUnixMs();
uint64_t MonotonicMicros();

// Random bits from the OS.
uint64_t RandomU64();

}  // namespace mapkv::internal

#endif  // MAPKV_PLATFORM_PROCESS_H_
