// Child processes of a test, and pipes between them and the test.
//
// Child processes are named functions that rebuild everything they need from string arguments,
// so that they can run in a fresh process (on Windows, which has no fork(), always):
//
//   MAPKV_CHILD(WriterChild) {             // int WriterChild(const ChildArgs& args)
//     const std::string& path = args.at(0);
//     const int n = args.Int<int>(1);      // a bad argument fails the child, with a message
//     ChildPipe ready = args.PipeEnd(2);   // an end of a parent's Pipe
//     ...
//     CHILD_CHECK(ready.Write("r"));
//     return 0;
//   }
//   Pipe ready;
//   int pid = StartChild("WriterChild", {path, n, ready.WriteEndArg()});
//   ready.CloseWrite();
//   int status = WaitChild(pid);           // or RunChild(name, args) = StartChild + WaitChild
//
// StartChild() forks and calls the function directly on POSIX (fast); with MAPKV_CHILD_EXEC=1 in
// the environment, and always on Windows, it starts this test binary again with
// `--mapkv_child=NAME args...` (tests/test_main.cc). Either way the child gets only the pipe ends
// named in its arguments, runs no atexit handlers and destroys none of the parent's objects. A
// child reports a failure by printing to stderr and returning non-zero (see CHILD_CHECK); gtest
// assertions inside a child would be lost with it.
#ifndef MAPKV_TESTS_TESTING_CHILD_PROCESS_H_
#define MAPKV_TESTS_TESTING_CHILD_PROCESS_H_

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "testing/subprocess.h"
#include "tests/testing/env.h"
#include "tests/testing/status_matchers.h"

// The exit code of a child whose CHILD_CHECK failed, or that was given a bad argument (distinct
// from 1, which sanitizers use).
namespace mapkv::test {
inline constexpr int kChildCheckFailed = 3;
}  // namespace mapkv::test

// Checks inside a child process: on failure print where and why to stderr and return
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

// MAPKV_CHILD(Name) { ... } defines `int Name(const ::mapkv::test::ChildArgs& args)` and registers
// it, at static initialisation, as the child function that StartChild("Name", ...) runs.
#define MAPKV_CHILD(name)                                            \
  int name(const ::mapkv::test::ChildArgs& args);                    \
  [[maybe_unused]] static const bool mapkv_child_registered_##name = \
      ::mapkv::test::RegisterChild(#name, &name);                    \
  int name([[maybe_unused]] const ::mapkv::test::ChildArgs& args)

namespace mapkv::test {

inline void ChildFailure(const char* file, int line, const char* what, const std::string& why) {
  std::fprintf(stderr, "[child %u] %s:%d: check failed: %s %s\n", tools::CurrentPid(), file, line,
               what, why.c_str());
  std::fflush(stderr);
}

// Wait results that are not an exit status.
inline constexpr int kWaitError = -1;
inline constexpr int kWaitTimedOut = -2;
// What WaitChild() reports for a child ended by KillChild(): 128 + SIGKILL on POSIX, and the exit
// code TerminateProcess gives it on Windows.
inline constexpr int kKilledStatus = tools::kKilledExitStatus;
// The exit status of a child whose function let an exception escape.
inline constexpr int kChildException = 99;

// A missing or malformed argument of a child: thrown by ChildArgs, caught around the child's
// function, which then fails with kChildCheckFailed after printing the message.
class ChildArgError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads and writes on one pipe end, shared by Pipe (the parent's) and ChildPipe (a child's).
namespace pipe_io {

inline bool Write(int fd, std::string_view data) {
  return fd >= 0 && tools::WriteAll(fd, data.data(), data.size()).ok();
}

inline bool ReadUntil(int fd, std::chrono::steady_clock::time_point deadline, std::string* out) {
  if (fd < 0) return false;
  char buf[4096];
  for (;;) {
    if (std::chrono::steady_clock::now() >= deadline) return true;
    if (!tools::WaitReadable(fd, deadline)) return true;
    absl::StatusOr<size_t> n = tools::ReadSome(fd, buf, sizeof(buf));
    if (!n.ok() || *n == 0) return false;
    out->append(buf, *n);
  }
}

inline bool WaitByte(int fd, std::chrono::milliseconds timeout) {
  if (fd < 0 || !tools::WaitReadable(fd, std::chrono::steady_clock::now() + timeout)) return false;
  char c;
  absl::StatusOr<size_t> n = tools::ReadSome(fd, &c, 1);
  return n.ok() && *n == 1;
}

inline bool Readable(int fd) {
  return fd >= 0 && tools::WaitReadable(fd, std::chrono::steady_clock::now());
}

}  // namespace pipe_io

// The pipe ends this process holds (its Pipes' and ChildPipes'): a child started by forking
// closes those it was not given, as a child started afresh never has them (or it would hold, say,
// the write end whose closing its parent uses as a signal).
class OpenPipeEnds {
 public:
  static void Add(int fd) {
    std::lock_guard<std::mutex> lock(Get().mu);
    Get().fds.insert(fd);
  }
  static void Remove(int fd) {
    std::lock_guard<std::mutex> lock(Get().mu);
    Get().fds.erase(fd);
  }
  // Those of them not in `keep`.
  static std::vector<int> Except(const std::vector<int>& keep) {
    std::vector<int> out;
    std::lock_guard<std::mutex> lock(Get().mu);
    for (int fd : Get().fds) {
      if (std::find(keep.begin(), keep.end(), fd) == keep.end()) out.push_back(fd);
    }
    return out;
  }
  // In a forked child, which has closed what it was not given and owns nothing yet: starts an
  // empty table (the old one's mutex may have been held by a thread that the fork left behind).
  static void ForgetAllInChild() { instance() = new OpenPipeEnds; }

 private:
  static OpenPipeEnds*& instance() {
    static OpenPipeEnds* ends = new OpenPipeEnds;
    return ends;
  }
  static OpenPipeEnds& Get() { return *instance(); }

  std::mutex mu;
  std::set<int> fds;
};

// One argument of a child: text, or a pipe end that the child inherits (Pipe::ReadEndArg(),
// Pipe::WriteEndArg()). Strings and integers convert implicitly, so that a child's arguments can be
// written {path, i, ready.WriteEndArg()}.
class ChildArg {
 public:
  ChildArg(std::string text) : text_(std::move(text)) {}
  ChildArg(const char* text) : text_(text) {}
  ChildArg(std::string_view text) : text_(text) {}
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, char>, int> = 0>
  ChildArg(T value) {
    if constexpr (std::is_same_v<T, bool>) {
      text_ = value ? "1" : "0";
    } else {
      text_ = absl::StrCat(value);
    }
  }

  const std::string& text() const { return text_; }
  int fd() const { return fd_; }  // the pipe end to pass, or -1

 private:
  friend class Pipe;
  ChildArg(std::string text, int fd) : text_(std::move(text)), fd_(fd) {}

  std::string text_;
  int fd_ = -1;
};

// A child's end of a parent's Pipe (from ChildArgs::PipeEnd or ChildPipe::FromArg). Reads or
// writes, whichever end it is; closed on destruction.
class ChildPipe {
 public:
  // The end that a child's argument `arg` names. Throws ChildArgError when it names none. Take
  // each end once: on Windows every call makes a new descriptor on the inherited handle.
  static ChildPipe FromArg(std::string_view arg) {
    absl::StatusOr<int> fd = tools::PipeEndFromArg(arg);
    if (!fd.ok()) throw ChildArgError(fd.status().ToString());
    OpenPipeEnds::Add(*fd);
    return ChildPipe(*fd);
  }
  ChildPipe(ChildPipe&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ChildPipe& operator=(ChildPipe&& other) noexcept {
    if (this != &other) {
      Close();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~ChildPipe() { Close(); }

  int fd() const { return fd_; }
  void Close() {
    if (fd_ < 0) return;
    OpenPipeEnds::Remove(fd_);
    tools::CloseFd(fd_);
    fd_ = -1;
  }

  // As the Pipe methods of the same names.
  bool Write(std::string_view data) const { return pipe_io::Write(fd_, data); }
  bool WriteU64(uint64_t value) const {
    return Write(std::string_view(reinterpret_cast<const char*>(&value), sizeof(value)));
  }
  bool ReadUntil(std::chrono::steady_clock::time_point deadline, std::string* out) const {
    return pipe_io::ReadUntil(fd_, deadline, out);
  }
  std::string ReadAll(std::chrono::milliseconds timeout = std::chrono::seconds(60)) const {
    std::string out;
    ReadUntil(std::chrono::steady_clock::now() + timeout, &out);
    return out;
  }
  bool WaitByte(std::chrono::milliseconds timeout = std::chrono::seconds(60)) const {
    return pipe_io::WaitByte(fd_, timeout);
  }
  bool Readable() const { return pipe_io::Readable(fd_); }

 private:
  explicit ChildPipe(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// The arguments of a child function: what the parent passed to StartChild() after the name.
class ChildArgs {
 public:
  ChildArgs(std::string name, std::vector<std::string> args)
      : name_(std::move(name)), args_(std::move(args)) {}

  const std::string& name() const { return name_; }
  size_t size() const { return args_.size(); }

  // Argument `i`; throws ChildArgError when there are fewer.
  const std::string& at(size_t i) const {
    if (i >= args_.size()) {
      throw ChildArgError(
          absl::StrCat(name_, ": argument ", i, " missing (", args_.size(), " given)"));
    }
    return args_[i];
  }

  // Argument `i` as an integer of type T, all of it; throws ChildArgError when it is not one or
  // does not fit.
  template <typename T = int64_t>
  T Int(size_t i) const {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
    const std::string& text = at(i);
    T value{};
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end) {
      throw ChildArgError(absl::StrCat(name_, ": argument ", i, " \"", text, "\" is not ",
                                       std::is_signed_v<T> ? "an" : "an unsigned", " integer of ",
                                       sizeof(T) * 8, " bits"));
    }
    return value;
  }

  // Argument `i`, "1" or "0" (as ChildArg writes a bool).
  bool Bool(size_t i) const {
    const std::string& text = at(i);
    if (text != "0" && text != "1") {
      throw ChildArgError(absl::StrCat(name_, ": argument ", i, " \"", text, "\" is not 0 or 1"));
    }
    return text == "1";
  }

  // The pipe end that argument `i` names (Pipe::ReadEndArg/WriteEndArg in the parent).
  ChildPipe PipeEnd(size_t i) const {
    try {
      return ChildPipe::FromArg(at(i));
    } catch (const ChildArgError& e) {
      throw ChildArgError(absl::StrCat(name_, ": argument ", i, ": ", e.what()));
    }
  }

 private:
  std::string name_;
  std::vector<std::string> args_;
};

// The child functions of this test binary, by name (MAPKV_CHILD registers them).
using ChildFunction = int (*)(const ChildArgs& args);
inline std::map<std::string, ChildFunction, std::less<>>& ChildRegistry() {
  static auto* registry = new std::map<std::string, ChildFunction, std::less<>>;
  return *registry;
}
inline bool RegisterChild(const char* name, ChildFunction fn) {
  if (!ChildRegistry().emplace(name, fn).second) {
    std::fprintf(stderr, "two child functions are named %s\n", name);
    std::abort();
  }
  return true;
}

// The flag that makes a test binary run a child function instead of its tests (test_main.cc).
inline constexpr std::string_view kChildFlag = "--mapkv_child=";

// Runs child function `name` in this process: its return value; kChildCheckFailed, with a
// message, when there is no such function or an argument is bad; kChildException when another
// exception escapes it.
inline int RunChildFunction(std::string_view name, std::vector<std::string> args) {
  const int pid = tools::CurrentPid();
  auto it = ChildRegistry().find(name);
  if (it == ChildRegistry().end()) {
    std::fprintf(stderr, "[child %d] no child function named %.*s in this test binary\n", pid,
                 static_cast<int>(name.size()), name.data());
    return kChildCheckFailed;
  }
  try {
    return it->second(ChildArgs(std::string(name), std::move(args)));
  } catch (const ChildArgError& e) {
    std::fprintf(stderr, "[child %d] bad argument: %s\n", pid, e.what());
    return kChildCheckFailed;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[child %d] %s: exception escaped: %s\n", pid, it->first.c_str(),
                 e.what());
  } catch (...) {
    std::fprintf(stderr, "[child %d] %s: exception escaped\n", pid, it->first.c_str());
  }
  return kChildException;
}

// Whether StartChild() starts this binary afresh (MAPKV_CHILD_EXEC=1, or no fork() here) rather
// than forking.
inline bool ChildExecMode() { return !tools::HasFork() || EnvInt("MAPKV_CHILD_EXEC", 0) != 0; }

// Starts child function `name` (a MAPKV_CHILD of this binary) with `args` in a new process: forks
// and calls it, or (ChildExecMode()) starts this binary with `--mapkv_child=NAME args...`. The
// child inherits the pipe ends among `args` and the standard streams, no other pipe end. Returns
// its pid; -1, with a test failure, when it could not be started.
inline int StartChild(std::string_view name, const std::vector<ChildArg>& args = {}) {
  if (ChildRegistry().find(name) == ChildRegistry().end()) {
    ADD_FAILURE() << "no child function named " << name << " (MAPKV_CHILD) in this test binary";
    return -1;
  }
  std::vector<std::string> texts;
  std::vector<int> pass;
  for (const ChildArg& arg : args) {
    texts.push_back(arg.text());
    if (arg.fd() >= 0) pass.push_back(arg.fd());
  }
  std::cout.flush();
  std::cerr.flush();
  absl::StatusOr<int> pid;
  if (ChildExecMode()) {
    absl::StatusOr<std::string> self = tools::SelfExecutablePath();
    if (!self.ok()) {
      ADD_FAILURE() << "cannot start child " << name << ": " << self.status();
      return -1;
    }
    std::vector<std::string> argv = {*self, std::string(kChildFlag) + std::string(name)};
    argv.insert(argv.end(), texts.begin(), texts.end());
    tools::StartOptions options;
    options.pass_fds = pass;
    pid = tools::StartProcess(argv, options);
  } else {
    const std::vector<int> not_given = OpenPipeEnds::Except(pass);
    pid = tools::ForkProcess([&]() -> int {
      for (int fd : not_given) tools::CloseFd(fd);
      OpenPipeEnds::ForgetAllInChild();
      return RunChildFunction(name, std::move(texts));
    });
  }
  if (!pid.ok()) {
    ADD_FAILURE() << "cannot start child " << name << ": " << pid.status();
    return -1;
  }
  return *pid;
}

// Waits for child `pid` and returns its exit status the way a shell reports it: the exit code, or
// 128 + the signal number if a signal ended it (kKilledStatus after KillChild()). If the child has
// not ended after `timeout`, kills it, reaps it and returns kWaitTimedOut; kWaitError if waiting
// fails (pid <= 0: the child never started).
inline int WaitChild(int pid, std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
  if (pid <= 0) return kWaitError;
  absl::StatusOr<int> status = tools::WaitExitStatus(pid, timeout);
  if (status.ok()) return *status;
  if (absl::IsDeadlineExceeded(status.status())) {
    std::fprintf(stderr, "child %d did not finish in %lld ms: killing it\n", pid,
                 static_cast<long long>(timeout.count()));
    tools::KillChild(pid);
    (void)tools::WaitExitStatus(pid, std::chrono::hours(1));
    return kWaitTimedOut;
  }
  std::fprintf(stderr, "waiting for child %d: %s\n", pid, status.status().ToString().c_str());
  return kWaitError;
}

// StartChild() then WaitChild(): the child's exit status.
inline int RunChild(std::string_view name, const std::vector<ChildArg>& args = {},
                    std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
  return WaitChild(StartChild(name, args), timeout);
}

// Kills child `pid` (SIGKILL; TerminateProcess on Windows) and reaps it: its exit status as
// WaitChild() reports it (kKilledStatus unless it had already ended by itself).
inline int KillChild(int pid) {
  if (pid <= 0) return kWaitError;
  tools::KillChild(pid);
  return WaitChild(pid);
}

// Whether this platform can fork (POSIX): ForkInheriting() works only then.
inline bool HasFork() { return tools::HasFork(); }

// POSIX only: forks a copy of this process that runs fn() with everything it inherited (the
// parent's objects, its mapkv handles, every pipe end) and _exit()s with its return value (an
// escaping exception exits kChildException). Only for tests whose subject is fork() itself, such
// as a handle inherited across fork(); they GTEST_SKIP() where !HasFork(). Every other child is a
// MAPKV_CHILD. Returns the pid, -1 if it could not fork.
inline int ForkInheriting(const std::function<int()>& fn) {
  std::cout.flush();
  std::cerr.flush();
  absl::StatusOr<int> pid = tools::ForkProcess([&]() -> int {
    try {
      return fn();
    } catch (...) {
      std::fprintf(stderr, "[child %u] exception escaped\n", tools::CurrentPid());
    }
    return kChildException;
  });
  if (!pid.ok()) {
    std::fprintf(stderr, "%s\n", pid.status().ToString().c_str());
    return -1;
  }
  return *pid;
}

inline std::string ExitStatusToString(int status) {
  if (status == kChildCheckFailed) return "a check in the child failed (its message is above)";
  if (status == 1) return "exit code 1 (a sanitizer report? see above)";
  if (status == kChildException) return "exit code 99 (an exception escaped the child; see above)";
  if (status == kWaitError) return "waiting for it failed (or it never started)";
  if (status == kWaitTimedOut) return "timed out (killed)";
  if (status < 0) {
    return absl::StrCat("ended by exception 0x", absl::Hex(static_cast<uint32_t>(status)));
  }
  if (status > 128) {
    return absl::StrCat("killed by signal ", status - 128, " (", tools::SignalName(status - 128),
                        ")");
  }
  return absl::StrCat("exit code ", status);
}

// A pipe between a parent and its children. Both ends are closed on destruction. A child started
// with StartChild() gets an end named among its arguments (ReadEndArg(), WriteEndArg()) and no
// other; the parent closes its copy of an end it no longer needs, so that the other side sees end
// of file when the children holding it end.
class Pipe {
 public:
  Pipe() {
    absl::StatusOr<tools::PipeFds> fds = tools::MakePipe();
    if (!fds.ok()) {
      std::fprintf(stderr, "%s\n", fds.status().ToString().c_str());
      std::abort();
    }
    fds_[0] = fds->read_fd;
    fds_[1] = fds->write_fd;
    OpenPipeEnds::Add(fds_[0]);
    OpenPipeEnds::Add(fds_[1]);
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

  // An argument for StartChild() that gives the child this end (ChildArgs::PipeEnd).
  ChildArg ReadEndArg() const { return ChildArg(tools::PipeEndArg(fds_[0]), fds_[0]); }
  ChildArg WriteEndArg() const { return ChildArg(tools::PipeEndArg(fds_[1]), fds_[1]); }

  // Writes all of `data` (a write of at most 512 bytes is atomic: POSIX PIPE_BUF, and Windows
  // pipes take writes whole while their buffer has room).
  bool Write(std::string_view data) const { return pipe_io::Write(fds_[1], data); }
  bool WriteU64(uint64_t value) const {
    return Write(std::string_view(reinterpret_cast<const char*>(&value), sizeof(value)));
  }

  // Reads what arrives until `deadline` or end of file, appending it to *out. Returns false at end
  // of file (every write end closed), true when the deadline passed first.
  bool ReadUntil(std::chrono::steady_clock::time_point deadline, std::string* out) const {
    return pipe_io::ReadUntil(fds_[0], deadline, out);
  }
  // Reads until end of file (or `timeout`, as a guard against a hung writer).
  std::string ReadAll(std::chrono::milliseconds timeout = std::chrono::seconds(60)) const {
    std::string out;
    ReadUntil(std::chrono::steady_clock::now() + timeout, &out);
    return out;
  }
  // Blocks until one byte arrives (true) or end of file / timeout (false).
  bool WaitByte(std::chrono::milliseconds timeout = std::chrono::seconds(60)) const {
    return pipe_io::WaitByte(fds_[0], timeout);
  }
  // True when the read end has data or every write end is closed (does not block).
  bool Readable() const { return pipe_io::Readable(fds_[0]); }

  // Splits bytes written by WriteU64 into values (ignores an incomplete tail).
  static std::vector<uint64_t> DecodeU64s(std::string_view bytes) {
    std::vector<uint64_t> values(bytes.size() / sizeof(uint64_t));
    if (!values.empty()) std::memcpy(values.data(), bytes.data(), values.size() * sizeof(uint64_t));
    return values;
  }

 private:
  void Close(int i) {
    if (fds_[i] < 0) return;
    OpenPipeEnds::Remove(fds_[i]);
    tools::CloseFd(fds_[i]);
    fds_[i] = -1;
  }
  int fds_[2] = {-1, -1};
};

// True when an error message names process `pid` as "pid <pid>" (and not a longer number that
// starts with the same digits).
inline bool NamesPid(absl::string_view message, int pid) {
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

}  // namespace mapkv::test

#endif  // MAPKV_TESTS_TESTING_CHILD_PROCESS_H_
