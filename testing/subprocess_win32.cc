// subprocess.h on Windows. There is no fork(): every child is a program started with
// CreateProcessW (this one, for the tests' children), and what serves forked children only
// (ForkChild, ForkProcess, StartGate) is Unimplemented. Pipes are CRT descriptors on anonymous
// pipes that no child inherits unless StartProcess() passes them; pids are process ids, with the
// process HANDLE of each child kept in a table until the child is waited for.
//
// Windows has no signals: a process ended by KillChild() or TerminateProcess() exits with
// kKilledExitStatus (137), what a SIGKILLed process reports on POSIX, so that callers compare
// exit statuses alike on both.
#include <windows.h>
// After <windows.h>:
#include <fcntl.h>
#include <io.h>
#include <psapi.h>
#include <shellapi.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
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

std::string ErrorText(DWORD error) {
  char* text = nullptr;
  const DWORD n = FormatMessageA(
      FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
      nullptr, error, MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), reinterpret_cast<char*>(&text), 0,
      nullptr);
  std::string out = n > 0 ? std::string(text, n) : std::string();
  if (text != nullptr) LocalFree(text);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == '.')) {
    out.pop_back();
  }
  return absl::StrCat(out.empty() ? "error" : out, " (Windows error ", error, ")");
}

absl::Status WinStatus(std::string_view what, DWORD error) {
  std::string message = absl::StrCat(ToAbsl(what), ": ", ErrorText(error));
  switch (error) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
      return absl::NotFoundError(message);
    case ERROR_ACCESS_DENIED:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status ErrnoStatus(std::string_view what, int error) {
  return absl::InternalError(absl::StrCat(ToAbsl(what), ": ", std::strerror(error)));
}

std::wstring Widen(std::string_view utf8) {
  if (utf8.empty()) return std::wstring();
  const int n =
      MultiByteToWideChar(CP_UTF8, 0, utf8.data(), static_cast<int>(utf8.size()), nullptr, 0);
  std::wstring out(static_cast<size_t>(std::max(n, 0)), L'\0');
  MultiByteToWideChar(CP_UTF8, 0, utf8.data(), static_cast<int>(utf8.size()), out.data(), n);
  return out;
}

std::string Narrow(std::wstring_view wide) {
  if (wide.empty()) return std::string();
  const int n = WideCharToMultiByte(CP_UTF8, 0, wide.data(), static_cast<int>(wide.size()), nullptr,
                                    0, nullptr, nullptr);
  std::string out(static_cast<size_t>(std::max(n, 0)), '\0');
  WideCharToMultiByte(CP_UTF8, 0, wide.data(), static_cast<int>(wide.size()), out.data(), n,
                      nullptr, nullptr);
  return out;
}

// The process HANDLEs of the children started here and not yet waited for, by pid.
struct Children {
  std::mutex mu;
  std::map<int, HANDLE> handles;
};
Children& children() {
  static Children* c = new Children;
  return *c;
}

void Remember(int pid, HANDLE process) {
  std::lock_guard<std::mutex> lock(children().mu);
  children().handles[pid] = process;
}

// The child's HANDLE (still owned by the table), or nullptr when `pid` is not a child of ours.
HANDLE ChildHandle(int pid) {
  std::lock_guard<std::mutex> lock(children().mu);
  auto it = children().handles.find(pid);
  return it == children().handles.end() ? nullptr : it->second;
}

// Drops `pid` from the table once it has been waited for.
void Forget(int pid) {
  HANDLE process = nullptr;
  {
    std::lock_guard<std::mutex> lock(children().mu);
    auto it = children().handles.find(pid);
    if (it == children().handles.end()) return;
    process = it->second;
    children().handles.erase(it);
  }
  CloseHandle(process);
}

HANDLE OsHandle(int fd) { return reinterpret_cast<HANDLE>(_get_osfhandle(fd)); }

// Appends `arg` to a command line so that CommandLineToArgvW (and the CRT's parser) gives it back
// unchanged: quoted when it holds blanks or quotes or is empty, backslashes doubled only where they
// precede a quote.
void AppendQuoted(const std::wstring& arg, std::wstring* line) {
  if (!arg.empty() && arg.find_first_of(L" \t\n\v\"") == std::wstring::npos) {
    line->append(arg);
    return;
  }
  line->push_back(L'"');
  size_t i = 0;
  for (;;) {
    size_t backslashes = 0;
    while (i < arg.size() && arg[i] == L'\\') {
      ++i;
      ++backslashes;
    }
    if (i == arg.size()) {
      line->append(backslashes * 2, L'\\');  // the closing quote must stay a quote
      break;
    }
    if (arg[i] == L'"') {
      line->append(backslashes * 2 + 1, L'\\');
    } else {
      line->append(backslashes, L'\\');
    }
    line->push_back(arg[i]);
    ++i;
  }
  line->push_back(L'"');
}

double Seconds(const FILETIME& t) {  // FILETIME durations count 100 ns
  const uint64_t ticks = (static_cast<uint64_t>(t.dwHighDateTime) << 32) | t.dwLowDateTime;
  return static_cast<double>(ticks) * 1e-7;
}

// Serialises StartProcess(): the pipe ends it passes are made inheritable only while it creates the
// process, and another start meanwhile must not inherit them too.
std::mutex& StartMutex() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}

// Handles of a starting child's standard streams: opened (or duplicated) inheritable here and
// closed once the child has its own copies.
struct StreamHandles {
  HANDLE h[3] = {nullptr, nullptr, nullptr};
  bool owned[3] = {false, false, false};
  ~StreamHandles() {
    for (int i = 0; i < 3; ++i) {
      if (owned[i] && h[i] != nullptr && h[i] != INVALID_HANDLE_VALUE) CloseHandle(h[i]);
    }
  }
};

absl::Status OpenStream(const std::string& program, const std::string& path, int which, bool append,
                        StreamHandles* streams) {
  SECURITY_ATTRIBUTES inherit{sizeof(SECURITY_ATTRIBUTES), nullptr, TRUE};
  const DWORD share = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
  HANDLE h;
  if (which == 0) {
    h = CreateFileW(Widen(path).c_str(), GENERIC_READ, share, &inherit, OPEN_EXISTING,
                    FILE_ATTRIBUTE_NORMAL, nullptr);
  } else if (append) {
    h = CreateFileW(Widen(path).c_str(), FILE_APPEND_DATA | SYNCHRONIZE, share, &inherit,
                    OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
  } else {
    h = CreateFileW(Widen(path).c_str(), GENERIC_WRITE, share, &inherit, CREATE_ALWAYS,
                    FILE_ATTRIBUTE_NORMAL, nullptr);
  }
  if (h == INVALID_HANDLE_VALUE) {
    return WinStatus(absl::StrCat("start ", program, ": open ", path), GetLastError());
  }
  streams->h[which] = h;
  streams->owned[which] = true;
  return absl::OkStatus();
}

// This process's standard stream `which`, duplicated inheritable (nullptr when it has none).
void InheritStream(int which, StreamHandles* streams) {
  static const DWORD kStd[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
  HANDLE own = GetStdHandle(kStd[which]);
  if (own == nullptr || own == INVALID_HANDLE_VALUE) return;
  HANDLE dup = nullptr;
  if (DuplicateHandle(GetCurrentProcess(), own, GetCurrentProcess(), &dup, 0, TRUE,
                      DUPLICATE_SAME_ACCESS)) {
    streams->h[which] = dup;
    streams->owned[which] = true;
  } else {
    streams->h[which] = own;  // a console pseudo-handle: the child gets the console anyway
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// What needs fork().

absl::StatusOr<ChildProcess> ForkChild(absl::FunctionRef<int(int to_parent)> /*body*/) {
  return absl::UnimplementedError(
      "ForkChild needs fork(); not available on Windows (start a program instead)");
}

absl::StatusOr<StartGate> StartGate::Create() {
  return absl::UnimplementedError(
      "StartGate serves forked children: needs fork(); not available "
      "on Windows");
}

absl::Status StartGate::Wait() {
  return absl::UnimplementedError("StartGate::Wait needs fork(); not available on Windows");
}

void StartGate::Open() {
  CloseFd(write_fd_);
  write_fd_ = -1;
}

bool HasFork() { return false; }

absl::StatusOr<int> ForkProcess(absl::FunctionRef<int()> /*body*/) {
  return absl::UnimplementedError(
      "ForkProcess needs fork(); not available on Windows (start a program instead)");
}

// ---------------------------------------------------------------------------------------------
// Pipes.

absl::Status WriteAll(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(size, 1u << 30));
    const int n = _write(fd, p, chunk);
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
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (size > 0) {
    if (!WaitReadable(fd, deadline)) return absl::DeadlineExceededError("no answer in time");
    absl::StatusOr<size_t> n = ReadSome(fd, p, size);
    if (!n.ok()) return n.status();
    if (*n == 0) return absl::OutOfRangeError("the pipe closed early");
    p += *n;
    size -= *n;
  }
  return absl::OkStatus();
}

void CloseFd(int fd) {
  if (fd >= 0) _close(fd);
}

absl::StatusOr<PipeFds> MakePipe() {
  int fds[2];
  if (_pipe(fds, 65536, _O_BINARY | _O_NOINHERIT) != 0) return ErrnoStatus("_pipe", errno);
  return PipeFds{fds[0], fds[1]};
}

std::string PipeEndArg(int fd) {
  return absl::StrCat(static_cast<uint64_t>(reinterpret_cast<uintptr_t>(OsHandle(fd))));
}

absl::StatusOr<int> PipeEndFromArg(std::string_view arg) {
  uint64_t value = 0;
  DWORD flags = 0;
  HANDLE h = nullptr;
  if (absl::SimpleAtoi(ToAbsl(arg), &value))
    h = reinterpret_cast<HANDLE>(static_cast<uintptr_t>(value));
  if (h == nullptr || !GetHandleInformation(h, &flags)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", ToAbsl(arg), "\" names no pipe handle inherited by this process"));
  }
  // Not passed on to this process's own children unless it passes it itself.
  SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0);
  const int fd = _open_osfhandle(reinterpret_cast<intptr_t>(h), _O_BINARY);
  if (fd < 0) return ErrnoStatus(absl::StrCat("_open_osfhandle ", ToAbsl(arg)), errno);
  return fd;
}

bool WaitReadable(int fd, std::chrono::steady_clock::time_point deadline) {
  HANDLE h = OsHandle(fd);
  // Anonymous pipes cannot be waited on: peek, with short sleeps between the peeks.
  for (int round = 0;; ++round) {
    DWORD available = 0;
    if (!PeekNamedPipe(h, nullptr, 0, nullptr, &available, nullptr)) {
      return true;  // ERROR_BROKEN_PIPE: end of file; anything else the read reports
    }
    if (available > 0) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (round < 20) {
      SwitchToThread();
    } else {
      Sleep(1);
    }
  }
}

absl::StatusOr<size_t> ReadSome(int fd, void* data, size_t size) {
  const unsigned chunk = static_cast<unsigned>(std::min<size_t>(size, 1u << 30));
  for (;;) {
    const int n = _read(fd, data, chunk);  // ERROR_BROKEN_PIPE reads as end of file
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return ErrnoStatus("read from pipe", errno);
  }
}

// ---------------------------------------------------------------------------------------------
// Starting processes.

bool HasFileSizeLimit() { return false; }

absl::StatusOr<int> StartProcess(const std::vector<std::string>& argv,
                                 const StartOptions& options) {
  if (argv.empty() || argv[0].empty()) {
    return absl::InvalidArgumentError("StartProcess: no program given");
  }
  const std::string& program = argv[0];
  if (options.max_file_size > 0) {
    return absl::UnimplementedError(
        absl::StrCat("start ", program, ": a file size limit (RLIMIT_FSIZE) is POSIX only"));
  }
  // The program's name is given whole (not split at blanks): CommandLineToArgvW takes everything
  // up to the closing quote, with no escapes.
  std::wstring line = L"\"" + Widen(program) + L"\"";
  for (size_t i = 1; i < argv.size(); ++i) {
    line.push_back(L' ');
    AppendQuoted(Widen(argv[i]), &line);
  }
  const std::wstring application = Widen(program);

  StreamHandles streams;
  const std::string* paths[3] = {&options.stdin_path, &options.stdout_path, &options.stderr_path};
  for (int i = 0; i < 3; ++i) {
    if (paths[i]->empty()) {
      InheritStream(i, &streams);
    } else if (i == 2 && options.stderr_path == options.stdout_path) {
      streams.h[2] = streams.h[1];  // one open file; owned (closed) through h[1]
    } else if (absl::Status s = OpenStream(program, *paths[i], i, options.append_output, &streams);
               !s.ok()) {
      return s;
    }
  }

  std::lock_guard<std::mutex> lock(StartMutex());
  // The handles the child inherits: its standard streams and the passed pipe ends, no others.
  std::vector<HANDLE> inherited;
  auto add = [&inherited](HANDLE h) {
    if (h == nullptr || h == INVALID_HANDLE_VALUE) return;
    if (std::find(inherited.begin(), inherited.end(), h) == inherited.end()) {
      inherited.push_back(h);
    }
  };
  for (HANDLE h : streams.h) {
    DWORD flags = 0;
    if (GetHandleInformation(h, &flags) && (flags & HANDLE_FLAG_INHERIT) != 0) add(h);
  }
  std::vector<HANDLE> passed;
  for (int fd : options.pass_fds) {
    HANDLE h = OsHandle(fd);
    if (h == INVALID_HANDLE_VALUE) {
      return absl::InvalidArgumentError(
          absl::StrCat("start ", program, ": pipe end ", fd, " is not open"));
    }
    if (!SetHandleInformation(h, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT)) {
      const DWORD error = GetLastError();
      for (HANDLE p : passed) SetHandleInformation(p, HANDLE_FLAG_INHERIT, 0);
      return WinStatus(absl::StrCat("start ", program, ": make pipe end ", fd, " inheritable"),
                       error);
    }
    passed.push_back(h);
    add(h);
  }

  STARTUPINFOEXW info{};
  info.StartupInfo.cb = sizeof(info);
  info.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  info.StartupInfo.hStdInput = streams.h[0];
  info.StartupInfo.hStdOutput = streams.h[1];
  info.StartupInfo.hStdError = streams.h[2];
  // Where the attribute list works, it limits inheritance to `inherited` even when other handles
  // of this process are inheritable (CRT files are, unless opened with _O_NOINHERIT).
  DWORD creation = CREATE_UNICODE_ENVIRONMENT;
  std::vector<char> attributes;
  SIZE_T attributes_size = 0;
  InitializeProcThreadAttributeList(nullptr, 1, 0, &attributes_size);
  if (!inherited.empty() && attributes_size > 0) {
    attributes.resize(attributes_size);
    auto* list = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(attributes.data());
    if (InitializeProcThreadAttributeList(list, 1, 0, &attributes_size)) {
      if (UpdateProcThreadAttribute(list, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherited.data(),
                                    inherited.size() * sizeof(HANDLE), nullptr, nullptr)) {
        info.lpAttributeList = list;
        creation |= EXTENDED_STARTUPINFO_PRESENT;
      } else {
        DeleteProcThreadAttributeList(list);
      }
    }
  }
  if (info.lpAttributeList == nullptr) info.StartupInfo.cb = sizeof(STARTUPINFOW);

  PROCESS_INFORMATION process{};
  std::vector<wchar_t> mutable_line(line.begin(), line.end());
  mutable_line.push_back(L'\0');
  // With search_path the program is looked up as CreateProcess does for a bare command line (the
  // program's directory, the current one, the system's, then PATH; ".exe" appended).
  const BOOL created = CreateProcessW(options.search_path ? nullptr : application.c_str(),
                                      mutable_line.data(), nullptr, nullptr, TRUE, creation,
                                      nullptr, nullptr, &info.StartupInfo, &process);
  const DWORD error = GetLastError();
  if (info.lpAttributeList != nullptr) DeleteProcThreadAttributeList(info.lpAttributeList);
  for (HANDLE h : passed) SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0);
  if (!created) {
    absl::Status status = WinStatus(absl::StrCat("cannot run ", program), error);
    if (absl::IsNotFound(status) && options.search_path) {
      return absl::NotFoundError(
          absl::StrCat(status.message(), " (not found in PATH; is it installed?)"));
    }
    return status;
  }
  CloseHandle(process.hThread);
  const int pid = static_cast<int>(process.dwProcessId);
  Remember(pid, process.hProcess);
  return pid;
}

absl::StatusOr<std::string> SelfExecutablePath() {
  std::wstring path(MAX_PATH, L'\0');
  for (;;) {
    const DWORD n = GetModuleFileNameW(nullptr, path.data(), static_cast<DWORD>(path.size()));
    if (n == 0) return WinStatus("GetModuleFileNameW", GetLastError());
    if (n < path.size()) {
      path.resize(n);
      return Narrow(path);
    }
    path.resize(path.size() * 2);  // truncated
  }
}

std::string NullDevicePath() { return "NUL"; }

std::vector<std::string> ProgramArguments(int argc, char** argv) {
  int n = 0;
  LPWSTR* wide = CommandLineToArgvW(GetCommandLineW(), &n);
  if (wide == nullptr) return std::vector<std::string>(argv, argv + argc);
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out.push_back(Narrow(wide[i]));
  LocalFree(wide);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Waiting and ending.

absl::StatusOr<int> WaitExitStatus(int pid, std::chrono::milliseconds timeout) {
  HANDLE process = ChildHandle(pid);
  if (process == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("process ", pid, " is no child of this process, or was waited for already"));
  }
  const int64_t ms = std::clamp<int64_t>(timeout.count(), 0, INFINITE - 1);
  const DWORD r = WaitForSingleObject(process, static_cast<DWORD>(ms));
  if (r == WAIT_TIMEOUT) {
    return absl::DeadlineExceededError(
        absl::StrCat("process ", pid, " still runs after ", timeout.count(), " ms"));
  }
  if (r != WAIT_OBJECT_0) return WinStatus(absl::StrCat("wait for process ", pid), GetLastError());
  DWORD code = 0;
  if (!GetExitCodeProcess(process, &code)) {
    return WinStatus(absl::StrCat("exit code of process ", pid), GetLastError());
  }
  Forget(pid);
  // Exception codes (0xC0000005, ...) come out negative: never 0, never a code a program chose.
  return static_cast<int>(code);
}

absl::Status WaitChild(int pid) {
  absl::StatusOr<int> status = WaitExitStatus(pid, std::chrono::milliseconds(INFINITE - 1));
  if (!status.ok()) return status.status();
  if (*status == 0) return absl::OkStatus();
  if (*status == kKilledExitStatus) {
    return absl::InternalError(absl::StrCat("killed (exit code ", kKilledExitStatus, ")"));
  }
  if (*status < 0) {
    return absl::InternalError(
        absl::StrCat("ended by exception 0x", absl::Hex(static_cast<uint32_t>(*status))));
  }
  return absl::InternalError(absl::StrCat("exited with status ", *status));
}

void KillChild(int pid) {
  HANDLE process = ChildHandle(pid);
  if (process != nullptr) ::TerminateProcess(process, kKilledExitStatus);
}

void TerminateProcess(int pid) {
  if (pid <= 0) return;
  HANDLE process = ChildHandle(pid);
  if (process == nullptr) return;  // waited for already, or not ours
  ::TerminateProcess(process, kKilledExitStatus);
  WaitForSingleObject(process, INFINITE);
  Forget(pid);
}

bool ProcessExists(int pid) {
  if (pid <= 0) return false;
  if (HANDLE process = ChildHandle(pid); process != nullptr) {
    return true;  // a child not yet waited for exists, like a zombie
  }
  HANDLE process = OpenProcess(SYNCHRONIZE, FALSE, static_cast<DWORD>(pid));
  if (process == nullptr) return GetLastError() == ERROR_ACCESS_DENIED;
  const bool running = WaitForSingleObject(process, 0) == WAIT_TIMEOUT;
  CloseHandle(process);
  return running;
}

int CountOpenHandles() {
  DWORD n = 0;
  return GetProcessHandleCount(GetCurrentProcess(), &n) ? static_cast<int>(n) : -1;
}

int CountMappings(std::string_view containing) {
  // Every region of a mapped view, walked with VirtualQuery; a view shows up as one region per
  // run of pages with the same protection, so count views by their allocation bases.
  const std::string want(containing);
  int n = 0;
  void* last_base = nullptr;
  MEMORY_BASIC_INFORMATION info;
  for (char* at = nullptr; VirtualQuery(at, &info, sizeof(info)) == sizeof(info);
       at = static_cast<char*>(info.BaseAddress) + info.RegionSize) {
    if (info.Type != MEM_MAPPED || info.AllocationBase == last_base) continue;
    last_base = info.AllocationBase;
    if (!want.empty()) {
      char name[MAX_PATH * 4];
      const DWORD len =
          GetMappedFileNameA(GetCurrentProcess(), info.AllocationBase, name, sizeof(name));
      // The kernel's name (\Device\HarddiskVolume1\dir\file): compare the last component.
      const std::string_view got(name, len);
      const size_t cut = want.find_last_of("/\\");
      const std::string_view base = cut == std::string::npos
                                        ? std::string_view(want)
                                        : std::string_view(want).substr(cut + 1);
      if (len == 0 || got.find(base) == std::string_view::npos) continue;
    }
    ++n;
  }
  return n;
}

std::string SignalName(int sig) { return absl::StrCat("signal ", sig); }

// ---------------------------------------------------------------------------------------------
// The rest.

size_t MaxUnixSocketPath() { return 108; }  // afunix.h: sun_path[UNIX_PATH_MAX]

void IgnoreBrokenPipes() {}

double ProcessCpuSeconds() {
  FILETIME creation, exit, kernel, user;
  if (!GetProcessTimes(GetCurrentProcess(), &creation, &exit, &kernel, &user)) return 0;
  return Seconds(kernel) + Seconds(user);
}

absl::StatusOr<double> ProcessCpuSecondsOf(int pid) {
  HANDLE process = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, static_cast<DWORD>(pid));
  if (process == nullptr) {
    const DWORD error = GetLastError();
    if (error == ERROR_INVALID_PARAMETER) {
      return absl::NotFoundError(absl::StrCat("no process ", pid));
    }
    return WinStatus(absl::StrCat("OpenProcess ", pid), error);
  }
  FILETIME creation, exit, kernel, user;
  const bool ok = GetProcessTimes(process, &creation, &exit, &kernel, &user);
  const DWORD error = GetLastError();
  CloseHandle(process);
  if (!ok) return WinStatus(absl::StrCat("GetProcessTimes ", pid), error);
  return Seconds(kernel) + Seconds(user);
}

absl::StatusOr<std::string> MakeTempDir(std::string_view prefix) {
  wchar_t base[MAX_PATH + 2];
  const DWORD n = GetTempPathW(MAX_PATH + 1, base);
  if (n == 0 || n > MAX_PATH + 1) return WinStatus("GetTempPathW", GetLastError());
  // CreateDirectoryW fails on a name that exists, so a guess that collides is simply retried.
  static std::atomic<uint64_t> counter{0};
  LARGE_INTEGER now;
  QueryPerformanceCounter(&now);
  uint64_t state = static_cast<uint64_t>(now.QuadPart) ^
                   (static_cast<uint64_t>(GetCurrentProcessId()) << 32) ^
                   (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull);
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string name(ToAbsl(prefix));
    for (int i = 0; i < 6; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      name.push_back(kChars[(state >> 33) % 36]);
    }
    const std::wstring path = std::wstring(base, n) + Widen(name);
    if (CreateDirectoryW(path.c_str(), nullptr)) return Narrow(path);
    const DWORD error = GetLastError();
    if (error != ERROR_ALREADY_EXISTS) {
      return WinStatus(absl::StrCat("create directory ", Narrow(path)), error);
    }
  }
  return absl::InternalError(absl::StrCat("no free temporary directory name for ", ToAbsl(prefix)));
}

uint64_t RaiseOpenFileLimit(uint64_t want) { return want; }

absl::Status SetChildSubreaper(bool /*on*/) {
  return absl::UnimplementedError("a child subreaper needs Linux (PR_SET_CHILD_SUBREAPER)");
}

}  // namespace mapkv::tools
