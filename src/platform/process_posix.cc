#include <pthread.h>
#include <sys/types.h>
#include <unistd.h>

#include <fstream>

#include "src/platform/process.h"

namespace mapkv::internal {
namespace {

std::atomic<uint64_t> fork_generation{0};

void OnForkChild() { fork_generation.fetch_add(1, std::memory_order_relaxed); }

[[maybe_unused]] const bool registered = [] {
  pthread_atfork(nullptr, nullptr, &OnForkChild);
  return true;
}();

}  // namespace

uint32_t CurrentPid() { return static_cast<uint32_t>(getpid()); }

uint32_t CurrentUid() { return static_cast<uint32_t>(geteuid()); }

uint64_t ForkGeneration() { return fork_generation.load(std::memory_order_relaxed); }

std::string BootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

}  // namespace mapkv::internal
