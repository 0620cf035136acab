#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <sys/wait.h>
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
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "src/platform/subprocess.h"

namespace mapkv::tools {
namespace {

absl::Status ErrnoStatus(std::string_view what, int error) {
  return absl::InternalError(
      absl::StrCat(absl::string_view(what.data(), what.size()), ": ", std::strerror(error)));
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

StartGate::StartGate(StartGate&& other) noexcept
    : read_fd_(other.read_fd_), write_fd_(other.write_fd_) {
  other.read_fd_ = -1;
  other.write_fd_ = -1;
}

StartGate::~StartGate() {
  CloseFd(read_fd_);
  CloseFd(write_fd_);
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

int CurrentPid() { return static_cast<int>(getpid()); }

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
  std::string templ =
      (base / absl::StrCat(absl::string_view(prefix.data(), prefix.size()), "XXXXXX")).string();
  if (mkdtemp(templ.data()) == nullptr) return ErrnoStatus(absl::StrCat("mkdtemp ", templ), errno);
  return templ;
}

namespace {

// What the child of SpawnProcess() writes to the parent before it gives up: the step that failed
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

// The child's side, between fork() and exec: async-signal-safe calls only (the parent may have
// threads, whose locks the child inherits held).
[[noreturn]] void ExecChild(char* const* argv, int log_fd, int report_fd, pid_t parent,
                            int max_fd) {
  auto fail = [report_fd](int step) {
    SpawnFailure failure{step, errno};
    (void)!write(report_fd, &failure, sizeof(failure));
    _exit(127);
  };
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
#if defined(__linux__)
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) fail(kSpawnSetup);
  if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
#else
  (void)parent;
#endif
  int null_fd = open("/dev/null", O_RDONLY);
  if (null_fd < 0) fail(kSpawnSetup);
  if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
      dup2(log_fd, STDERR_FILENO) < 0) {
    fail(kSpawnSetup);
  }
  // Every other descriptor closes on exec (report_fd already does): the program must not hold,
  // say, the write end of a StartGate or another child's pipe.
#if defined(CLOSE_RANGE_CLOEXEC)
  if (close_range(STDERR_FILENO + 1, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
#endif
  {
    for (int fd = STDERR_FILENO + 1; fd < max_fd; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  execvp(argv[0], argv);
  fail(kSpawnExec);
  _exit(127);  // not reached
}

}  // namespace

absl::StatusOr<int> SpawnProcess(const std::vector<std::string>& argv,
                                 const std::string& log_path) {
  if (argv.empty() || argv[0].empty()) {
    return absl::InvalidArgumentError("SpawnProcess: no program given");
  }
  const std::string& program = argv[0];
  // Everything the child needs is allocated before the fork.
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  long open_max = sysconf(_SC_OPEN_MAX);
  int max_fd = open_max > 0 ? static_cast<int>(std::min<long>(open_max, 1 << 16)) : 1024;

  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd >= 0) log_fd = AboveStdio(log_fd);
  if (log_fd < 0) {
    return ErrnoStatus(absl::StrCat("start ", program, ": open log ", log_path), errno);
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    int error = errno;
    close(log_fd);
    return ErrnoStatus(absl::StrCat("start ", program, ": pipe"), error);
  }
  int report_read = fds[0];
  int report_write = AboveStdio(fds[1]);
  if (report_write < 0) {
    int error = errno;
    close(report_read);
    close(log_fd);
    return ErrnoStatus(absl::StrCat("start ", program, ": fcntl"), error);
  }

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) ExecChild(args.data(), log_fd, report_write, parent, max_fd);
  int fork_error = errno;
  close(report_write);
  close(log_fd);
  if (pid < 0) {
    close(report_read);
    return ErrnoStatus(absl::StrCat("start ", program, ": fork"), fork_error);
  }

  // End of file: the exec closed the child's end, so the program runs.
  SpawnFailure failure{};
  ssize_t n;
  do {
    n = read(report_read, &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  int read_error = errno;
  close(report_read);
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
      return absl::NotFoundError(absl::StrCat(message, " (not found in PATH; is it installed?)"));
    }
    return absl::InternalError(message);
  }
  return ErrnoStatus(
      absl::StrCat("start ", program, ": set up the child (/dev/null, ", log_path, ")"),
      failure.error);
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

}  // namespace mapkv::tools
