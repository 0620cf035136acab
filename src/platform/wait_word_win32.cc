// Sleeping on a word in shared memory on Windows. WaitOnAddress wakes only threads of the process
// that calls WakeByAddress, and the word is shared between processes, so a waiter polls: it spins
// briefly, then yields, then sleeps a millisecond at a time, until the word changes or the timeout
// passes. Waits here are rare (a commit publishing, a writer queueing behind another) and the
// callers bound them anyway. WakeWord has nothing to do.
#include <windows.h>

#include <algorithm>

#include "src/platform/process.h"
#include "src/platform/wait_word.h"

namespace mapkv::internal {

void WaitWord(std::atomic<uint32_t>* word, uint32_t expected, std::chrono::microseconds timeout) {
  const uint64_t start = MonotonicMicros();
  const uint64_t limit = static_cast<uint64_t>(std::max<int64_t>(timeout.count(), 0));
  for (uint32_t round = 0; word->load(std::memory_order_acquire) == expected; ++round) {
    const uint64_t waited = MonotonicMicros() - start;
    if (waited >= limit) return;
    if (round < 64) {
      YieldProcessor();
    } else if (waited < 200) {
      SwitchToThread();
    } else {
      Sleep(1);
    }
  }
}

void WakeWord(std::atomic<uint32_t>*) {}

}  // namespace mapkv::internal
