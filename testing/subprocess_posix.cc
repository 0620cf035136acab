#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "src/strings.h"
#include "testing/subprocess.h"

namespace mapkv::tools {
namespace {

using internal::ToAbsl;

absl::Status ErrnoStatus(std::string_view what, int error) {
  return absl::InternalError(absl::StrCat(ToAbsl(what), ": ", std::strerror(error)));
}

}  // namespace

absl::StatusOr<ChildProcess> ForkChild(absl::FunctionRef<int(int to_parent)> body) {
  int fds[2];
  if (pipe(fds) != 0) return ErrnoStatus("pipe", errno);
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    int error = errno;
    close(fds[0]);
    close(fds[1]);
    return ErrnoStatus("fork", error);
  }
  if (pid == 0) {
    close(fds[0]);
    int rc = body(fds[1]);
    std::fflush(nullptr);
    _exit(rc);
  }
  close(fds[1]);
  return ChildProcess{pid, fds[0]};
}

absl::StatusOr<StartGate> StartGate::Create() {
  int fds[2];
  if (pipe(fds) != 0) return ErrnoStatus("pipe", errno);
  return StartGate(fds[0], fds[1]);
}

absl::Status StartGate::Wait() {
  // Nobody ever writes: the read returns end-of-file once every write end is closed, that is when
  // the parent has opened the gate and every child has come this far.
  CloseFd(write_fd_);
  write_fd_ = -1;
  char byte;
  for (;;) {
    ssize_t n = read(read_fd_, &byte, 1);
    if (n == 0) return absl::OkStatus();
    if (n < 0 && errno != EINTR) return ErrnoStatus("start gate", errno);
  }
}

void StartGate::Open() {
  CloseFd(write_fd_);
  write_fd_ = -1;
}

absl::Status WriteAll(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write to pipe", errno);
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ReadAll(int fd, void* data, size_t size, std::chrono::milliseconds timeout) {
  char* p = static_cast<char*>(data);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (size > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return absl::DeadlineExceededError("no answer in time");
    pollfd pfd{fd, POLLIN, 0};
    int ready = poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("poll", errno);
    }
    if (ready == 0) continue;
    ssize_t n = read(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read from pipe", errno);
    }
    if (n == 0) return absl::OutOfRangeError("the pipe closed early");
    p += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

void CloseFd(int fd) {
  if (fd >= 0) close(fd);
}

absl::Status WaitChild(int pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoStatus("waitpid", errno);
  }
  if (WIFEXITED(status)) {
    if (WEXITSTATUS(status) == 0) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("exited with status ", WEXITSTATUS(status)));
  }
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = strsignal(sig);
    return absl::InternalError(
        absl::StrCat("killed by signal ", sig, " (", name != nullptr ? name : "?", ")"));
  }
  return absl::InternalError("ended in an unknown way");
}

void KillChild(int pid) {
  if (pid > 0) kill(pid, SIGKILL);
}

size_t MaxUnixSocketPath() { return sizeof(sockaddr_un{}.sun_path); }

void IgnoreBrokenPipes() { signal(SIGPIPE, SIG_IGN); }

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

absl::StatusOr<std::string> MakeTempDir(std::string_view prefix) {
  std::error_code error;
  std::filesystem::path base = std::filesystem::temp_directory_path(error);
  if (error) base = "/tmp";
  std::string templ = (base / absl::StrCat(ToAbsl(prefix), "XXXXXX")).string();
  if (mkdtemp(templ.data()) == nullptr) return ErrnoStatus(absl::StrCat("mkdtemp ", templ), errno);
  return templ;
}

namespace {

// What the child of StartProcess() writes to the parent before it gives up: the step that failed
// and its errno. Nothing is written when the exec succeeds (the pipe closes on exec).
struct SpawnFailure {
  int step;  // kSpawnSetup or kSpawnExec
  int error;
};
constexpr int kSpawnSetup = 0;
constexpr int kSpawnExec = 1;

// Moves `fd` above the standard descriptors (keeping close-on-exec), so that the child's dup2()
// onto 0, 1 and 2 cannot clobber it. Returns the descriptor to use, or -1 with errno set.
int AboveStdio(int fd) {
  if (fd > STDERR_FILENO) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  int error = errno;
  close(fd);
  errno = error;
  return moved;
}

// Everything the child of StartProcess() needs, prepared before the fork: between fork() and exec
// the child may only make async-signal-safe calls (the parent may have threads, whose locks the
// child inherits held), so it must not allocate.
struct ExecPlan {
  char* const* argv = nullptr;
  bool search_path = false;
  int stdio_fds[3] = {-1, -1, -1};  // -1: inherited
  const int* pass_fds = nullptr;
  size_t pass_count = 0;
  int report_fd = -1;
  pid_t parent = 0;
  bool end_with_starting_thread = false;
  uint64_t max_file_size = 0;
  int max_fd = 1024;
};

[[noreturn]] void ExecChild(const ExecPlan& plan) {
  auto fail = [&plan](int step) {
    SpawnFailure failure{step, errno};
    (void)!write(plan.report_fd, &failure, sizeof(failure));
    _exit(127);
  };
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (plan.end_with_starting_thread) {
#if defined(__linux__)
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) fail(kSpawnSetup);
    if (getppid() != plan.parent) _exit(127);  // the parent died before prctl took effect
#endif
  }
  for (int i = 0; i < 3; ++i) {
    if (plan.stdio_fds[i] >= 0 && dup2(plan.stdio_fds[i], i) < 0) fail(kSpawnSetup);
  }
  if (plan.max_file_size > 0) {
    signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{static_cast<rlim_t>(plan.max_file_size),
                       static_cast<rlim_t>(plan.max_file_size)};
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) fail(kSpawnSetup);
  }
  // Every other descriptor closes on exec (report_fd already does): the program must not hold,
  // say, the write end of a StartGate or of another child's pipe. Then the passed pipe ends are
  // let through.
#if defined(CLOSE_RANGE_CLOEXEC)
  if (close_range(STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
#endif
  {
    for (int fd = STDERR_FILENO + 1; fd < plan.max_fd; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  for (size_t i = 0; i < plan.pass_count; ++i) {
    if (fcntl(plan.pass_fds[i], F_SETFD, 0) != 0) fail(kSpawnSetup);
  }
  if (plan.search_path) {
    execvp(plan.argv[0], plan.argv);
  } else {
    execv(plan.argv[0], plan.argv);
  }
  fail(kSpawnExec);
  _exit(127);  // not reached
}

// Opens a standard stream's file for StartProcess(), close-on-exec and above the standard
// descriptors.
absl::StatusOr<int> OpenStream(const std::string& program, const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd >= 0) fd = AboveStdio(fd);
  if (fd < 0) return ErrnoStatus(absl::StrCat("start ", program, ": open ", path), errno);
  return fd;
}

}  // namespace

bool HasFileSizeLimit() { return true; }

absl::StatusOr<int> StartProcess(const std::vector<std::string>& argv,
                                 const StartOptions& options) {
  if (argv.empty() || argv[0].empty()) {
    return absl::InvalidArgumentError("StartProcess: no program given");
  }
  const std::string& program = argv[0];
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  ExecPlan plan;
  plan.argv = args.data();
  plan.search_path = options.search_path;
  plan.pass_fds = options.pass_fds.data();
  plan.pass_count = options.pass_fds.size();
  plan.parent = getpid();
  plan.end_with_starting_thread = options.end_with_starting_thread;
  plan.max_file_size = options.max_file_size;
  long open_max = sysconf(_SC_OPEN_MAX);
  plan.max_fd = open_max > 0 ? static_cast<int>(std::min<long>(open_max, 1 << 16)) : 1024;

  // The parent's copies of every descriptor opened here, closed whatever happens.
  std::vector<int> opened;
  struct CloseAll {
    std::vector<int>* fds;
    ~CloseAll() {
      for (int fd : *fds) close(fd);
    }
  } close_all{&opened};
  const int write_flags = O_WRONLY | O_CREAT | (options.append_output ? O_APPEND : O_TRUNC);
  if (!options.stdin_path.empty()) {
    absl::StatusOr<int> fd = OpenStream(program, options.stdin_path, O_RDONLY);
    if (!fd.ok()) return fd.status();
    opened.push_back(plan.stdio_fds[0] = *fd);
  }
  if (!options.stdout_path.empty()) {
    absl::StatusOr<int> fd = OpenStream(program, options.stdout_path, write_flags);
    if (!fd.ok()) return fd.status();
    opened.push_back(plan.stdio_fds[1] = *fd);
  }
  if (!options.stderr_path.empty()) {
    if (options.stderr_path == options.stdout_path) {
      plan.stdio_fds[2] = plan.stdio_fds[1];
    } else {
      absl::StatusOr<int> fd = OpenStream(program, options.stderr_path, write_flags);
      if (!fd.ok()) return fd.status();
      opened.push_back(plan.stdio_fds[2] = *fd);
    }
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    return ErrnoStatus(absl::StrCat("start ", program, ": pipe"), errno);
  const int report_read = fds[0];
  opened.push_back(report_read);
  plan.report_fd = AboveStdio(fds[1]);
  if (plan.report_fd < 0) return ErrnoStatus(absl::StrCat("start ", program, ": fcntl"), errno);

  std::fflush(nullptr);  // or the child's buffered copy of the parent's output is written twice
  const pid_t pid = fork();
  if (pid == 0) ExecChild(plan);
  const int fork_error = errno;
  close(plan.report_fd);
  if (pid < 0) return ErrnoStatus(absl::StrCat("start ", program, ": fork"), fork_error);

  // End of file: the exec closed the child's end, so the program runs.
  SpawnFailure failure{};
  ssize_t n;
  do {
    n = read(report_read, &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  const int read_error = errno;
  if (n == 0) return static_cast<int>(pid);

  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof(failure))) {
    return n < 0 ? ErrnoStatus(absl::StrCat("start ", program, ": read from the child"), read_error)
                 : absl::InternalError(absl::StrCat("start ", program, ": a short report"));
  }
  if (failure.step == kSpawnExec) {
    std::string message = absl::StrCat("cannot run ", program, ": ", std::strerror(failure.error));
    if (failure.error == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat(message, options.search_path ? " (not found in PATH; is it installed?)"
                                                    : " (no such file)"));
    }
    return absl::InternalError(message);
  }
  return ErrnoStatus(absl::StrCat("start ", program, ": set up the child"), failure.error);
}

void TerminateProcess(int pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    pid_t reaped = waitpid(pid, nullptr, WNOHANG);
    if (reaped == pid) return;
    if (reaped < 0 && errno != EINTR) return;  // ECHILD: already reaped, or not our child
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

absl::StatusOr<double> ProcessCpuSecondsOf(int pid) {
  std::string path = absl::StrCat("/proc/", pid, "/stat");
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int error = errno;
    if (error == ENOENT) {
      return absl::NotFoundError(absl::StrCat("no process ", pid, " (", path, ")"));
    }
    return ErrnoStatus(absl::StrCat("open ", path), error);
  }
  char buffer[4096];
  size_t size = 0;
  while (size < sizeof(buffer)) {
    ssize_t n = read(fd, buffer + size, sizeof(buffer) - size);
    if (n < 0) {
      if (errno == EINTR) continue;
      int error = errno;
      close(fd);
      // A process that is reaped while we read: ESRCH.
      if (error == ESRCH) return absl::NotFoundError(absl::StrCat("no process ", pid));
      return ErrnoStatus(absl::StrCat("read ", path), error);
    }
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  close(fd);
  // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so fields are counted from
  // the last ')'. utime and stime are fields 14 and 15, the 12th and 13th after it.
  std::string_view stat(buffer, size);
  size_t close_paren = stat.rfind(')');
  if (close_paren == std::string_view::npos) {
    return absl::InternalError(absl::StrCat(path, ": no ')' in \"", std::string(stat), "\""));
  }
  std::string_view rest = stat.substr(close_paren + 1);
  unsigned long long ticks[2];
  for (int field = 0, want = 0; want < 2; ++field) {
    size_t start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) {
      return absl::InternalError(absl::StrCat(path, ": too few fields"));
    }
    rest.remove_prefix(start);
    size_t end = std::min(rest.find(' '), rest.size());
    if (field == 11 || field == 12) {
      std::string number(rest.substr(0, end));
      char* parse_end = nullptr;
      ticks[want++] = std::strtoull(number.c_str(), &parse_end, 10);
      if (parse_end == number.c_str() || *parse_end != '\0') {
        return absl::InternalError(absl::StrCat(path, ": field ", field + 3, " is not a number"));
      }
    }
    rest.remove_prefix(end);
  }
  long ticks_per_second = sysconf(_SC_CLK_TCK);
  if (ticks_per_second <= 0) return ErrnoStatus("sysconf(_SC_CLK_TCK)", errno);
  return static_cast<double>(ticks[0] + ticks[1]) / static_cast<double>(ticks_per_second);
}

// ---------------------------------------------------------------------------------------------
// Portable processes and pipes.

bool HasFork() { return true; }

absl::StatusOr<int> ForkProcess(absl::FunctionRef<int()> body) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return ErrnoStatus("fork", errno);
  if (pid == 0) {
    const int rc = body();
    std::fflush(nullptr);
    _exit(rc);
  }
  return static_cast<int>(pid);
}

absl::StatusOr<PipeFds> MakePipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);
  return PipeFds{fds[0], fds[1]};
}

std::string PipeEndArg(int fd) { return absl::StrCat(fd); }

absl::StatusOr<int> PipeEndFromArg(std::string_view arg) {
  int fd = -1;
  if (!absl::SimpleAtoi(ToAbsl(arg), &fd) || fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat("\"", ToAbsl(arg), "\" names no pipe end"));
  }
  // Close-on-exec again: not passed on to this process's own children unless it passes it itself.
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    if (errno == EBADF) {
      return absl::InvalidArgumentError(
          absl::StrCat("no descriptor ", fd, " open in this process"));
    }
    return ErrnoStatus(absl::StrCat("pipe end ", fd, " (passed to this process)"), errno);
  }
  return fd;
}

bool WaitReadable(int fd, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const auto left = std::max(deadline - std::chrono::steady_clock::now(),
                               std::chrono::steady_clock::duration::zero());
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts;
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
    pollfd pfd{fd, POLLIN, 0};
    const int r = ppoll(&pfd, 1, &ts, nullptr);
    if (r > 0) return true;  // data, end of file (POLLHUP) or an error the read will report
    if (r < 0 && errno != EINTR) return true;
    if (ns == 0) return false;
  }
}

absl::StatusOr<size_t> ReadSome(int fd, void* data, size_t size) {
  for (;;) {
    const ssize_t n = read(fd, data, size);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return ErrnoStatus("read from pipe", errno);
  }
}

absl::StatusOr<std::string> SelfExecutablePath() {
  char path[PATH_MAX + 1];
  const ssize_t n = readlink("/proc/self/exe", path, PATH_MAX);
  if (n < 0) return ErrnoStatus("readlink /proc/self/exe", errno);
  return std::string(path, static_cast<size_t>(n));
}

std::string NullDevicePath() { return "/dev/null"; }

std::vector<std::string> ProgramArguments(int argc, char** argv) {
  return std::vector<std::string>(argv, argv + argc);
}

absl::StatusOr<int> WaitExitStatus(int pid, std::chrono::milliseconds timeout) {
  if (pid <= 0) return absl::InvalidArgumentError(absl::StrCat("no process ", pid));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
#ifdef SYS_pidfd_open
  // Where the kernel has pidfds, sleep until the child ends instead of polling for it.
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  const int pidfd = -1;
#endif
  struct ClosePidfd {
    int fd;
    ~ClosePidfd() {
      if (fd >= 0) close(fd);
    }
  } close_pidfd{pidfd};
  auto pause = std::chrono::microseconds(50);
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid && (WIFEXITED(status) || WIFSIGNALED(status))) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(absl::StrCat("waitpid ", pid), errno);
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("process ", pid, " still runs after ", timeout.count(), " ms"));
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

std::string SignalName(int sig) {
  const char* name = strsignal(sig);
  return name != nullptr ? std::string(name) : absl::StrCat("signal ", sig);
}

uint64_t RaiseOpenFileLimit(uint64_t want) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < want) {
    const rlim_t raised =
        limit.rlim_max == RLIM_INFINITY ? want : std::min<rlim_t>(limit.rlim_max, want);
    if (raised > limit.rlim_cur) {
      rlimit wanted = limit;
      wanted.rlim_cur = raised;
      if (setrlimit(RLIMIT_NOFILE, &wanted) == 0) limit = wanted;
    }
  }
  return limit.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(limit.rlim_cur);
}

absl::Status SetChildSubreaper(bool on) {
#if defined(__linux__)
  if (prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0) != 0) {
    return ErrnoStatus("prctl PR_SET_CHILD_SUBREAPER", errno);
  }
  return absl::OkStatus();
#else
  (void)on;
  return absl::UnimplementedError("a child subreaper needs Linux (PR_SET_CHILD_SUBREAPER)");
#endif
}

bool ProcessExists(int pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

int CountOpenHandles() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (readdir(dir) != nullptr) ++n;
  closedir(dir);
  return n - 3;  // ".", ".." and the directory's own descriptor
}

int CountMappings(std::string_view containing) {
  std::ifstream in("/proc/self/maps");
  if (!in) return -1;
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    if (containing.empty() || line.find(containing) != std::string::npos) ++n;
  }
  return n;
}

}  // namespace mapkv::tools
