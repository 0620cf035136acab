#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

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

}  // namespace mapkv::tools
