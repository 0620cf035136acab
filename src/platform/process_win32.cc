// Process identity, time and the boot id on Windows.
#include <windows.h>
#include <winternl.h>

#include "absl/strings/str_cat.h"
#include "src/platform/process.h"

namespace mapkv::internal {

uint32_t CurrentPid() { return static_cast<uint32_t>(GetCurrentProcessId()); }

uint32_t CurrentUid() { return 0; }  // no uids: StatFile reports 0 as every file's owner

uint64_t ForkGeneration() { return 0; }  // no fork() on Windows

// The boot time the kernel keeps (SystemTimeOfDayInformation's BootTime, in 100 ns units since
// 1601): fixed for the life of the boot, unlike now minus the uptime, which jitters.
std::string BootId() {
  struct TimeOfDay {
    LARGE_INTEGER boot_time;
    LARGE_INTEGER current_time;
    LARGE_INTEGER time_zone_bias;
    ULONG time_zone_id;
    ULONG reserved;
    ULONGLONG boot_time_bias;
    ULONGLONG sleep_time_bias;
  } info{};
  constexpr auto kSystemTimeOfDayInformation = static_cast<SYSTEM_INFORMATION_CLASS>(3);
  ULONG got = 0;
  if (NtQuerySystemInformation(kSystemTimeOfDayInformation, &info, sizeof(info), &got) != 0 ||
      info.boot_time.QuadPart == 0) {
    return "";
  }
  return absl::StrCat("boot-", info.boot_time.QuadPart);
}

}  // namespace mapkv::internal
