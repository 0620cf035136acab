// Child processes for the tool (`mapkv demo`), the benchmarks and the tests: forking workers, a
// start gate, pipes between a parent and its children, starting programs (this one included) with
// redirected standard streams, waiting, CPU time, a temporary directory, and server programs (the
// peer benchmark's memcached and Redis). The OS calls stay in subprocess_posix.cc and
// subprocess_win32.cc, as with the rest of the platform code.
//
// Processes are named by an int pid everywhere. On Windows that is the process id, and this layer
// keeps the process HANDLE of every child it started until the child is waited for.
#ifndef MAPKV_TESTING_SUBPROCESS_H_
#define MAPKV_TESTING_SUBPROCESS_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/platform/process.h"

namespace mapkv::tools {

struct ChildProcess {
  int pid = -1;
  int from_child = -1;  // read end of a pipe whose write end only the child holds
};

// Forks. The child runs body(write end of the pipe), flushes stdio and exits with body's return
// value without running destructors or atexit handlers, so it never touches objects (such as an
// open mapkv::DB) that it inherited from the parent. The parent gets the pid and the read end.
// stdio is flushed before the fork so that buffered output is not written twice. Unimplemented
// where there is no fork() (Windows).
absl::StatusOr<ChildProcess> ForkChild(absl::FunctionRef<int(int to_parent)> body);

// A barrier that releases every child at once. Create it before forking; each child calls Wait(),
// which returns once the parent has called Open() and every other child holding the gate has
// reached Wait() (or exited). It serves forked children only: Create() is Unimplemented where there
// is no fork() (Windows).
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

// Reaps the child (waits as long as it takes). OK when it exited with status 0; otherwise
// Internal, saying how it ended.
absl::Status WaitChild(int pid);
// Ends child `pid` at once: SIGKILL on POSIX, TerminateProcess with exit code kKilledExitStatus on
// Windows. For children that stopped answering; reap it afterwards.
void KillChild(int pid);

// This process's id: the library's (src/platform/process.h), one function for both.
using internal::CurrentPid;

// The longest path a unix-domain socket may have, its terminating NUL included (sun_path; 108 in
// Windows' afunix.h).
size_t MaxUnixSocketPath();

// Makes a write to a closed pipe or socket fail with EPIPE instead of killing the process with
// SIGPIPE (hiredis writes to its socket with plain write(): a server that dies mid-run would
// otherwise end the benchmark without a word). Nothing to do on Windows, which has no SIGPIPE.
void IgnoreBrokenPipes();

// User plus system CPU time of this process so far (getrusage RUSAGE_SELF; GetProcessTimes).
double ProcessCpuSeconds();

// A new, empty directory `<TMPDIR or /tmp>/<prefix>XXXXXX` (Windows: under GetTempPathW, with
// a random suffix).
absl::StatusOr<std::string> MakeTempDir(std::string_view prefix);

// Starts another program: forks and execs argv[0], looked up in PATH (execvp), with argv as its
// arguments, stdin from /dev/null and stdout and stderr appended to `log_path` (created when
// absent). The program inherits no other descriptor, and on Linux gets SIGTERM if the thread that
// spawned it ends (so a driver that dies does not leave a server behind; spawn from the main
// thread). Returns its pid once the exec has succeeded; an exec that fails (no such program, not
// executable) is an error naming the program, and nothing is left running. The caller owns the
// process: TerminateProcess() or WaitChild() it. (StartProcess() with these options.)
absl::StatusOr<int> SpawnProcess(const std::vector<std::string>& argv, const std::string& log_path);

// Ends a process from SpawnProcess(): SIGTERM, up to about 2 s for it to exit, then SIGKILL, and
// reaps it. Does nothing for pid <= 0 or a process already reaped. Windows has no SIGTERM for a
// process without a window: it is ended at once (TerminateProcess, exit code kKilledExitStatus).
void TerminateProcess(int pid);

// User plus system CPU time that process `pid` has used so far (utime + stime of /proc/PID/stat,
// in clock ticks of sysconf(_SC_CLK_TCK)); its threads are included, its children are not.
// NotFound when there is no such process; an error where /proc is missing (other POSIX systems).
// Windows: GetProcessTimes.
absl::StatusOr<double> ProcessCpuSecondsOf(int pid);

// ---------------------------------------------------------------------------------------------
// Portable processes and pipes (the tests' child processes, tests/test_util.h, build on these).

// Exit statuses are reported the way a shell reports them: the exit code, or 128 + the signal
// number when a signal ended the process. KillChild() on Windows ends a process with exit code
// kKilledExitStatus, which is what a SIGKILLed process reports on POSIX.
inline constexpr int kKilledExitStatus = 128 + 9;

// Whether this platform has fork() (POSIX). Where it does not, ForkChild(), ForkProcess() and
// StartGate::Create() fail with Unimplemented.
bool HasFork();

// Forks. The child runs body(), flushes stdio and exits with body's return value, without
// running destructors or atexit handlers (see ForkChild). stdio is flushed before the fork.
// Returns the child's pid in the parent. Unimplemented where there is no fork().
absl::StatusOr<int> ForkProcess(absl::FunctionRef<int()> body);

// A pipe whose ends no child inherits unless it is passed to it (StartOptions::pass_fds):
// close-on-exec descriptors on POSIX, CRT descriptors on non-inheritable handles on Windows
// (binary mode). Close the ends with CloseFd().
struct PipeFds {
  int read_fd = -1;
  int write_fd = -1;
};
absl::StatusOr<PipeFds> MakePipe();

// The text that names pipe end `fd` in a child it is passed to (POSIX: the descriptor's number;
// Windows: the value of the inherited HANDLE), and the child's side: a descriptor for the end it
// was given (POSIX: the same number; Windows: a new CRT descriptor on the inherited handle).
// InvalidArgument when `arg` names no open pipe end.
std::string PipeEndArg(int fd);
absl::StatusOr<int> PipeEndFromArg(std::string_view arg);

// Waits until a read of `fd` (a pipe's read end) would not block: data is there, or every write
// end is closed (end of file). False when `deadline` passes first (at once when it is past).
bool WaitReadable(int fd, std::chrono::steady_clock::time_point deadline);

// One read of at most `size` bytes (blocks while the pipe is empty and open): the number of bytes
// read, 0 at end of file.
absl::StatusOr<size_t> ReadSome(int fd, void* data, size_t size);

// How to start a program with StartProcess().
struct StartOptions {
  // Standard streams: "" inherits this process's. stdin is opened for reading; stdout and stderr
  // are created (mode 0644 on POSIX) and truncated, or appended to with `append_output`; one
  // path for both opens the file once, so their writes interleave as written. NullDevicePath()
  // discards or reads nothing.
  std::string stdin_path;
  std::string stdout_path;
  std::string stderr_path;
  bool append_output = false;
  // Pipe ends (from MakePipe) the program inherits, named to it by PipeEndArg(). Nothing else is
  // inherited but the standard streams.
  std::vector<int> pass_fds;
  // Look argv[0] up in PATH when it has no directory part (execvp; SearchPath on Windows).
  bool search_path = false;
  // Linux: the program gets SIGTERM if the thread that started it ends (PR_SET_PDEATHSIG; start
  // long-lived servers from the main thread). Ignored elsewhere.
  bool end_with_starting_thread = false;
  // POSIX: RLIMIT_FSIZE for the program, in bytes, with SIGXFSZ ignored, so that a write past it
  // fails with EFBIG as a write to a full disk fails with ENOSPC (0: no limit). Unimplemented on
  // Windows, which has no such limit.
  uint64_t max_file_size = 0;
};

// Whether StartOptions::max_file_size works here (POSIX).
bool HasFileSizeLimit();

// Starts `argv[0]` with `argv` as its arguments (POSIX: fork and exec; Windows: CreateProcessW,
// arguments quoted as CommandLineToArgvW parses them, UTF-8 converted to UTF-16). Returns its pid
// once the program runs; a program that cannot be started (not found, not executable, a stream
// that cannot be opened) is an error naming it, and nothing is left running. The caller owns the
// process: WaitExitStatus(), WaitChild(), KillChild() or TerminateProcess() it.
absl::StatusOr<int> StartProcess(const std::vector<std::string>& argv, const StartOptions& options);

// The path of this program's executable (/proc/self/exe resolved; GetModuleFileNameW), for
// starting it again.
absl::StatusOr<std::string> SelfExecutablePath();

// "/dev/null" or "NUL".
std::string NullDevicePath();

// This program's arguments, argv[0] included, in UTF-8 (on Windows from GetCommandLineW, so that
// what StartProcess passed arrives intact whatever the code page; elsewhere argv itself).
std::vector<std::string> ProgramArguments(int argc, char** argv);

// How child `pid` (started here, by ForkProcess, StartProcess, ...) ended, as a shell reports it
// (see kKilledExitStatus), once it has; the child is reaped. DeadlineExceeded when it still runs
// after `timeout` (it is left running and can be waited for again).
absl::StatusOr<int> WaitExitStatus(int pid, std::chrono::milliseconds timeout);

// The name of signal `sig` ("Killed"), for messages; "signal N" where there are no signals.
std::string SignalName(int sig);

// The limit on open descriptors of this process, raised first towards `want` when it is lower
// and the hard limit allows (RLIMIT_NOFILE). Where there is no such limit (Windows: a process may
// hold millions of handles), `want`.
uint64_t RaiseOpenFileLimit(uint64_t want);

// Linux: makes this process the reaper of its orphaned descendants (PR_SET_CHILD_SUBREAPER), or
// stops it. Unimplemented elsewhere.
absl::Status SetChildSubreaper(bool on);

// True when process `pid` exists (a zombie counts until it is reaped).
bool ProcessExists(int pid);

// Kernel resources this process holds, for tests that prove open/close cycles leak nothing:
// open descriptors (Linux: entries of /proc/self/fd) or handles (Windows: GetProcessHandleCount),
// and memory mappings (Linux: lines of /proc/self/maps; Windows: mapped views, found with
// VirtualQuery), only those of files whose name contains `containing` when it is not empty.
// -1 where the platform cannot tell.
int CountOpenHandles();
int CountMappings(std::string_view containing);

}  // namespace mapkv::tools

#endif  // MAPKV_TESTING_SUBPROCESS_H_
