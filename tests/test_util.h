// Helpers shared by the mapkv tests: temporary directories, child processes, pipes, deterministic
// data, and assertions on absl::Status / absl::StatusOr.
//
// Every test that forks uses ForkChild() (or RunChild(), which is ForkChild() + WaitChild()). The
// child runs a function and _exit()s with its return value: it never returns into the test
// framework, runs no atexit handlers and destroys none of the parent's objects. A child reports a
// failure by printing to stderr and returning non-zero (see CHILD_CHECK); gtest assertions inside a
// child would be lost with it.
#ifndef MAPKV_TESTS_TEST_UTIL_H_
#define MAPKV_TESTS_TEST_UTIL_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/random/distributions.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace mapkv::test {

// ---------------------------------------------------------------------------------------------
// Status assertions.

inline const absl::Status& ToStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& ToStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// A short printable form of binary data: its size and an escaped prefix.
inline std::string Describe(std::string_view data) {
  constexpr size_t kShown = 48;
  std::string shown =
      absl::CHexEscape(absl::string_view(data.data(), std::min(data.size(), kShown)));
  return absl::StrCat(data.size(), " bytes \"", shown, data.size() > kShown ? "\"..." : "\"");
}

template <typename T>
::testing::AssertionResult IsOkFormat(const char* expr, const T& status_or) {
  const absl::Status& status = ToStatus(status_or);
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " returned " << status;
}

template <typename T>
::testing::AssertionResult HasCodeFormat(const char* expr, const char* /*code_expr*/,
                                         const T& status_or, absl::StatusCode code) {
  const absl::Status& status = ToStatus(status_or);
  if (status.code() == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << expr << " returned " << status << ", expected code " << absl::StatusCodeToString(code);
}

template <typename T, typename U>
::testing::AssertionResult OkAndEqFormat(const char* expr, const char* expected_expr,
                                         const absl::StatusOr<T>& got, const U& expected) {
  if (!got.ok()) {
    return ::testing::AssertionFailure()
           << expr << " returned " << got.status() << ", expected the value " << expected_expr;
  }
  const std::string_view got_view(*got);
  const std::string_view want_view(expected);
  if (got_view == want_view) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << expr << " returned " << Describe(got_view) << ", expected " << expected_expr << " = "
         << Describe(want_view);
}

}  // namespace mapkv::test

// EXPECT_OK(expr) / ASSERT_OK(expr): expr is an absl::Status or absl::StatusOr<T> that must be OK.
#define EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::mapkv::test::IsOkFormat, expr)
#define ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::mapkv::test::IsOkFormat, expr)

// EXPECT_STATUS(expr, absl::StatusCode::kNotFound): expr (Status or StatusOr) has that code.
#define EXPECT_STATUS(expr, code) EXPECT_PRED_FORMAT2(::mapkv::test::HasCodeFormat, expr, code)
#define ASSERT_STATUS(expr, code) ASSERT_PRED_FORMAT2(::mapkv::test::HasCodeFormat, expr, code)

// EXPECT_OK_AND_EQ(expr, expected): expr is an OK absl::StatusOr whose value (a string or
// string_view) equals `expected`. Prints sizes and escaped prefixes, not megabytes of binary.
#define EXPECT_OK_AND_EQ(expr, expected) \
  EXPECT_PRED_FORMAT2(::mapkv::test::OkAndEqFormat, expr, expected)
#define ASSERT_OK_AND_EQ(expr, expected) \
  ASSERT_PRED_FORMAT2(::mapkv::test::OkAndEqFormat, expr, expected)

// ASSERT_OK_AND_ASSIGN(auto db, DB::Open(path)): asserts the StatusOr is OK and moves its value
// into the declaration or lvalue `lhs`.
#define MAPKV_TEST_CONCAT_INNER(a, b) a##b
#define MAPKV_TEST_CONCAT(a, b) MAPKV_TEST_CONCAT_INNER(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  MAPKV_TEST_ASSERT_OK_AND_ASSIGN_IMPL(MAPKV_TEST_CONCAT(mapkv_statusor_, __LINE__), lhs, rexpr)
#define MAPKV_TEST_ASSERT_OK_AND_ASSIGN_IMPL(statusor, lhs, rexpr)           \
  auto statusor = (rexpr);                                                   \
  ASSERT_TRUE(statusor.ok()) << #rexpr << " returned " << statusor.status(); \
  lhs = std::move(statusor).value()

// The exit code of a child whose CHILD_CHECK failed (distinct from 1, which sanitizers use).
namespace mapkv::test {
inline constexpr int kChildCheckFailed = 3;
}  // namespace mapkv::test

// Checks inside a forked child: on failure print where and why to stderr and return
// kChildCheckFailed from the child's function. The optional trailing arguments are absl::StrCat'ed
// into the message.
#define CHILD_CHECK(cond, ...)                                                  \
  do {                                                                          \
    if (!(cond)) {                                                              \
      ::mapkv::test::ChildFailure(__FILE__, __LINE__, #cond,                    \
                                  absl::StrCat("" __VA_OPT__(, ) __VA_ARGS__)); \
      return ::mapkv::test::kChildCheckFailed;                                  \
    }                                                                           \
  } while (0)
#define CHILD_CHECK_OK(expr, ...)                                                       \
  do {                                                                                  \
    const ::absl::Status mapkv_child_status = ::mapkv::test::ToStatus(expr);            \
    if (!mapkv_child_status.ok()) {                                                     \
      ::mapkv::test::ChildFailure(                                                      \
          __FILE__, __LINE__, #expr,                                                    \
          absl::StrCat(mapkv_child_status.ToString(), " " __VA_OPT__(, ) __VA_ARGS__)); \
      return ::mapkv::test::kChildCheckFailed;                                          \
    }                                                                                   \
  } while (0)

namespace mapkv::test {

inline void ChildFailure(const char* file, int line, const char* what, const std::string& why) {
  std::fprintf(stderr, "[child %d] %s:%d: check failed: %s %s\n", static_cast<int>(getpid()), file,
               line, what, why.c_str());
  std::fflush(stderr);
}

// ---------------------------------------------------------------------------------------------
// Environment knobs.

// The integer value of environment variable `name`, or `def` when it is unset or not a number.
inline int64_t EnvInt(const char* name, int64_t def) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return def;
  int64_t value = 0;
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, value);
  if (ec != std::errc() || ptr != end) return def;
  return value;
}

// ---------------------------------------------------------------------------------------------
// Temporary directories and files.

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction unless
// MAPKV_KEEP_TEMP is set to a non-zero value (then its path is printed, for post-mortems).
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    if (base == nullptr || *base == '\0') base = "/tmp";
    std::string templ = absl::StrCat(base, "/mapkv_test.XXXXXX");
    if (mkdtemp(templ.data()) == nullptr) {
      std::fprintf(stderr, "mkdtemp(%s) failed: %s\n", templ.c_str(), std::strerror(errno));
      std::abort();
    }
    path_ = templ;
  }
  ~TempDir() {
    if (EnvInt("MAPKV_KEEP_TEMP", 0) != 0) {
      std::fprintf(stderr, "keeping %s\n", path_.c_str());
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // The path of `name` inside the directory.
  std::string File(std::string_view name) const {
    return absl::StrCat(path_, "/", std::string(name));
  }

 private:
  std::string path_;
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A little-endian 64-bit word of a closed file, read or overwritten in place (to stage damage).
inline uint64_t ReadFileU64(const std::string& path, uint64_t offset) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  uint64_t v = 0;
  in.read(reinterpret_cast<char*>(&v), sizeof(v));
  return v;
}

inline void WriteFileU64(const std::string& path, uint64_t offset, uint64_t v) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(reinterpret_cast<const char*>(&v), sizeof(v));
}

inline bool WriteFile(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  return static_cast<bool>(out);
}

inline bool FileExists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

inline uint64_t FileSize(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<uint64_t>(size);
}

// ---------------------------------------------------------------------------------------------
// Child processes.

// Wait results that are not an exit code or a signal.
inline constexpr int kWaitError = -1;
inline constexpr int kWaitTimedOut = -2;

// Forks. The child runs `fn` and _exit()s with its return value (an escaping exception exits 99).
// Returns the child's pid in the parent, -1 if fork failed. Stdio is flushed first so buffered
// output is not written twice.
inline pid_t ForkChild(const std::function<int()>& fn) {
  std::fflush(nullptr);
  std::cout.flush();
  std::cerr.flush();
  const pid_t pid = fork();
  if (pid != 0) return pid;
  int rc = 99;
  try {
    rc = fn();
  } catch (...) {
    std::fprintf(stderr, "[child %d] exception escaped\n", static_cast<int>(getpid()));
  }
  std::fflush(nullptr);
  _exit(rc);
}

// Waits for child `pid` and returns its exit status the way a shell reports it: the exit code, or
// 128 + the signal number if a signal ended it. If the child has not ended after `timeout`, kills
// it with SIGKILL, reaps it and returns kWaitTimedOut; kWaitError if waitpid fails.
inline int WaitChild(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
  if (pid <= 0) return kWaitError;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::microseconds(50);
#ifdef SYS_pidfd_open
  // Where the kernel has pidfds, sleep until the child ends instead of polling for it.
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  const int pidfd = -1;
#endif
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid && (WIFEXITED(status) || WIFSIGNALED(status))) {
      if (pidfd >= 0) close(pidfd);
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (pidfd >= 0) close(pidfd);
      return kWaitError;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      std::fprintf(stderr, "child %d did not finish in %lld ms: killing it\n",
                   static_cast<int>(pid), static_cast<long long>(timeout.count()));
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      if (pidfd >= 0) close(pidfd);
      return kWaitTimedOut;
    }
    if (pidfd >= 0) {
      pollfd pfd{pidfd, POLLIN, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left.count() + 1, 1000)));
    } else {
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
  }
}

// ForkChild(fn) then WaitChild(): the child's exit status.
inline int RunChild(const std::function<int()>& fn,
                    std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
  return WaitChild(ForkChild(fn), timeout);
}

inline std::string ExitStatusToString(int status) {
  if (status == kChildCheckFailed) return "a check in the child failed (its message is above)";
  if (status == 1) return "exit code 1 (a sanitizer report? see above)";
  if (status == kWaitError) return "waitpid failed";
  if (status == kWaitTimedOut) return "timed out (killed)";
  if (status > 128)
    return absl::StrCat("killed by signal ", status - 128, " (", strsignal(status - 128), ")");
  return absl::StrCat("exit code ", status);
}

// A pipe between a parent and its children. Both ends are closed on destruction.
class Pipe {
 public:
  Pipe() {
    if (pipe(fds_) != 0) {
      std::fprintf(stderr, "pipe failed: %s\n", std::strerror(errno));
      std::abort();
    }
  }
  ~Pipe() {
    CloseRead();
    CloseWrite();
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;

  int read_fd() const { return fds_[0]; }
  int write_fd() const { return fds_[1]; }
  void CloseRead() { Close(0); }
  void CloseWrite() { Close(1); }

  // Writes all of `data` (a write of at most PIPE_BUF bytes is atomic).
  bool Write(std::string_view data) const {
    while (!data.empty()) {
      const ssize_t n = write(fds_[1], data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  bool WriteU64(uint64_t value) const {
    return Write(std::string_view(reinterpret_cast<const char*>(&value), sizeof(value)));
  }

  // Reads what arrives until `deadline` or end of file, appending it to *out. Returns false at end
  // of file (every write end closed), true when the deadline passed first.
  bool ReadUntil(std::chrono::steady_clock::time_point deadline, std::string* out) const {
    char buf[4096];
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return true;
      const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now);
      timespec ts;
      ts.tv_sec = static_cast<time_t>(left.count() / 1000000000);
      ts.tv_nsec = static_cast<long>(left.count() % 1000000000);
      pollfd pfd{fds_[0], POLLIN, 0};
      const int r = ppoll(&pfd, 1, &ts, nullptr);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) continue;  // timeout: the loop head sees the deadline
      const ssize_t n = read(fds_[0], buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      out->append(buf, static_cast<size_t>(n));
    }
  }
  // Reads until end of file (or `timeout`, as a guard against a hung writer).
  std::string ReadAll(std::chrono::milliseconds timeout = std::chrono::seconds(60)) const {
    std::string out;
    ReadUntil(std::chrono::steady_clock::now() + timeout, &out);
    return out;
  }
  // Blocks until one byte arrives (true) or end of file / timeout (false).
  bool WaitByte(std::chrono::milliseconds timeout = std::chrono::seconds(60)) const {
    pollfd pfd{fds_[0], POLLIN, 0};
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() < 0) return false;
      const int r = poll(&pfd, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      char c;
      const ssize_t n = read(fds_[0], &c, 1);
      if (n < 0 && errno == EINTR) continue;
      return n == 1;
    }
  }
  // True when the read end has data or every write end is closed (does not block).
  bool Readable() const {
    pollfd pfd{fds_[0], POLLIN, 0};
    return poll(&pfd, 1, 0) > 0;
  }

  // Splits bytes written by WriteU64 into values (ignores an incomplete tail).
  static std::vector<uint64_t> DecodeU64s(std::string_view bytes) {
    std::vector<uint64_t> values(bytes.size() / sizeof(uint64_t));
    if (!values.empty()) std::memcpy(values.data(), bytes.data(), values.size() * sizeof(uint64_t));
    return values;
  }

 private:
  void Close(int i) {
    if (fds_[i] >= 0) {
      close(fds_[i]);
      fds_[i] = -1;
    }
  }
  int fds_[2] = {-1, -1};
};

// SIGKILLs child `pid` and reaps it: its exit status as WaitChild() reports it (128 + SIGKILL
// unless it had already ended by itself).
inline int KillChild(pid_t pid) {
  if (pid <= 0) return kWaitError;
  kill(pid, SIGKILL);
  return WaitChild(pid);
}

// True when an error message names process `pid` as "pid <pid>" (and not a longer number that
// starts with the same digits).
inline bool NamesPid(absl::string_view message, pid_t pid) {
  const std::string needle = absl::StrCat("pid ", pid);
  for (size_t at = message.find(needle); at != absl::string_view::npos;
       at = message.find(needle, at + 1)) {
    const size_t end = at + needle.size();
    if (end == message.size() || message[end] < '0' || message[end] > '9') return true;
  }
  return false;
}

// Time since `start` on the steady clock.
inline std::chrono::microseconds Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                               start);
}

// ---------------------------------------------------------------------------------------------
// Resources of this process, to catch leaks across open/close cycles (Linux /proc).

// Open file descriptors of this process (entries of /proc/self/fd, less the one used to list it);
// -1 when /proc is unavailable.
inline int CountOpenFds() {
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/self/fd", ec);
  if (ec) return -1;
  int n = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return -1;
    ++n;
  }
  return n - 1;  // the iterator's own descriptor
}

// Memory mappings of this process (lines of /proc/self/maps), only those whose line contains
// `containing` (a file's path) when it is not empty; -1 when /proc is unavailable.
inline int CountMappings(std::string_view containing = {}) {
  std::ifstream in("/proc/self/maps");
  if (!in) return -1;
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    if (containing.empty() || line.find(containing) != std::string::npos) ++n;
  }
  return n;
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

// ---------------------------------------------------------------------------------------------
// Data.

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

#endif  // MAPKV_TESTS_TEST_UTIL_H_
