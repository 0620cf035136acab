// Child processes for the tool (`mapkv demo`) and the benchmarks: forking workers, a start gate,
// pipes back to the parent, waiting, CPU time, a temporary directory, and server programs (the
// peer benchmark's memcached and Redis). The OS calls stay in subprocess_posix.cc, as with the
// rest of the platform code; a Windows port would add subprocess_win32.cc (spawning the tool
// itself instead of fork()).
#ifndef MAPKV_PLATFORM_SUBPROCESS_H_
#define MAPKV_PLATFORM_SUBPROCESS_H_

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mapkv::tools {

struct ChildProcess {
  int pid = -1;
  int from_child = -1;  // read end of a pipe whose write end only the child holds
};

// Forks. The child runs body(write end of the pipe), flushes stdio and exits with body's return
// value without running destructors or atexit handlers, so it never touches objects (such as an
// open mapkv::DB) that it inherited from the parent. The parent gets the pid and the read end.
// stdio is flushed before the fork so that buffered output is not written twice.
absl::StatusOr<ChildProcess> ForkChild(absl::FunctionRef<int(int to_parent)> body);

// A barrier that releases every child at once. Create it before forking; each child calls Wait(),
// which returns once the parent has called Open() and every other child holding the gate has
// reached Wait() (or exited).
class StartGate {
 public:
  static absl::StatusOr<StartGate> Create();
  StartGate(StartGate&& other) noexcept;
  StartGate& operator=(StartGate&& other) = delete;
  ~StartGate();

  absl::Status Wait();  // in a child
  void Open();          // in the parent

 private:
  StartGate(int read_fd, int write_fd) : read_fd_(read_fd), write_fd_(write_fd) {}
  int read_fd_;
  int write_fd_;
};

absl::Status WriteAll(int fd, const void* data, size_t size);

// Reads exactly `size` bytes. OutOfRange when the writer closed the pipe first (the child died or
// exited), DeadlineExceeded when `timeout` passes first.
absl::Status ReadAll(int fd, void* data, size_t size, std::chrono::milliseconds timeout);

void CloseFd(int fd);

// Reaps the child. OK when it exited with status 0; otherwise Internal, saying how it ended.
absl::Status WaitChild(int pid);
void KillChild(int pid);  // SIGKILL; for children that stopped answering

int CurrentPid();

// The longest path a unix-domain socket may have, its terminating NUL included (sun_path).
size_t MaxUnixSocketPath();

// Makes a write to a closed pipe or socket fail with EPIPE instead of killing the process with
// SIGPIPE (hiredis writes to its socket with plain write(): a server that dies mid-run would
// otherwise end the benchmark without a word).
void IgnoreBrokenPipes();

// User plus system CPU time of this process so far (getrusage RUSAGE_SELF).
double ProcessCpuSeconds();

// A new, empty directory `<TMPDIR or /tmp>/<prefix>XXXXXX`.
absl::StatusOr<std::string> MakeTempDir(std::string_view prefix);

// Starts another program: forks and execs argv[0], looked up in PATH (execvp), with argv as its
// arguments, stdin from /dev/null and stdout and stderr appended to `log_path` (created when
// absent). The program inherits no other descriptor, and on Linux gets SIGTERM if the thread that
// spawned it ends (so a driver that dies does not leave a server behind; spawn from the main
// thread). Returns its pid once the exec has succeeded; an exec that fails (no such program, not
// executable) is an error naming the program, and nothing is left running. The caller owns the
// process: TerminateProcess() or WaitChild() it.
absl::StatusOr<int> SpawnProcess(const std::vector<std::string>& argv, const std::string& log_path);

// Ends a process from SpawnProcess(): SIGTERM, up to about 2 s for it to exit, then SIGKILL, and
// reaps it. Does nothing for pid <= 0 or a process already reaped.
void TerminateProcess(int pid);

// User plus system CPU time that process `pid` has used so far (utime + stime of /proc/PID/stat,
// in clock ticks of sysconf(_SC_CLK_TCK)); its threads are included, its children are not.
// NotFound when there is no such process; an error where /proc is missing (Linux only).
absl::StatusOr<double> ProcessCpuSecondsOf(int pid);

}  // namespace mapkv::tools

#endif  // MAPKV_PLATFORM_SUBPROCESS_H_
