// The libFuzzer target over database files from untrusted sources: arbitrary bytes opened as a
// database (writable, read-only, or read-only without write permission), then read as the tool's
// read commands read it (open_harness.h has the input layout and the checks). A crash, a hang, a
// sanitizer report or a broken promise of the harness (reported, then abort()) is a bug; its
// minimised input goes to tests/fuzz/regressions/, which fuzz_regression_test replays.
//
//   build-fuzz/tests/fuzz/make_seed_corpus data/iso_codes.tsv corpus
//   build-fuzz/tests/fuzz/open_fuzzer -max_len=16384 -timeout=10 corpus
//
// Each process works on one file in a directory of its own (under /dev/shm when there is one:
// tmpfs keeps the per-input write and msync cheap), rewritten for every input. Run as root, the
// detached inputs open it as nobody (open_harness.h, kModeDetached), who must be able to reach it:
// TMPDIR, when used, must be searchable by all.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

#include "open_harness.h"

namespace {

std::string* g_dir = nullptr;
std::string* g_path = nullptr;

void RemoveDir() {
  std::error_code ec;
  if (g_dir != nullptr) std::filesystem::remove_all(*g_dir, ec);
}

// A run that crashed (or was killed) leaves its directory behind, file and all: remove those
// whose process is gone. Directories are named mapkv_fuzz.<pid>.XXXXXX.
void RemoveDeadRunDirs(const std::string& parent) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("mapkv_fuzz.", 0) != 0) continue;
    const long pid = std::strtol(name.c_str() + 11, nullptr, 10);
    if (pid > 0 && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::filesystem::remove_all(entry.path(), ec);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  std::error_code ec;
  std::string parent = "/dev/shm";
  if (!std::filesystem::is_directory(parent, ec)) {
    const char* tmp = std::getenv("TMPDIR");
    parent = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  RemoveDeadRunDirs(parent);
  std::string dir = parent + "/mapkv_fuzz." + std::to_string(getpid()) + ".XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) {
    std::perror(dir.c_str());
    std::abort();
  }
  g_dir = new std::string(dir);
  g_path = new std::string(dir + "/fuzz.mapkv");
  std::atexit(RemoveDir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mapkv::fuzz::HarnessResult result = mapkv::fuzz::RunOpenHarness(data, size, *g_path);
  if (!result.violations.empty()) {
    for (const std::string& v : result.violations) {
      std::fprintf(stderr, "VIOLATION: %s\n", v.c_str());
    }
    std::fprintf(stderr, "(Open: %s)\n", result.open.ToString().c_str());
    std::abort();
  }
  return 0;
}
