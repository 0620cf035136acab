// Sleeping on a 32-bit word in shared memory, across processes (Linux futex on a shared mapping,
// keyed by file and offset; WaitOnAddress does not cross processes, so Windows polls).
#ifndef MAPKV_PLATFORM_WAIT_WORD_H_
#define MAPKV_PLATFORM_WAIT_WORD_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace mapkv::internal {

// Sleeps while *word == expected, at most `timeout` (spurious wake-ups are possible).
void WaitWord(std::atomic<uint32_t>* word, uint32_t expected, std::chrono::microseconds timeout);
// Wakes every sleeper on `word`.
void WakeWord(std::atomic<uint32_t>* word);

}  // namespace mapkv::internal

#endif  // MAPKV_PLATFORM_WAIT_WORD_H_
