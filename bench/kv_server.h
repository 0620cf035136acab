// What the server-backed stores (bench/kv_memcached.h, bench/kv_redis.h) share: a server process
// on a unix socket that the benchmark starts, waits for and stops, and the helpers around it.
#ifndef MAPKV_BENCH_KV_SERVER_H_
#define MAPKV_BENCH_KV_SERVER_H_

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bench/kv_store.h"
#include "testing/subprocess.h"

namespace mapkv::bench {

// The first line `argv` prints (a server's version), or "" when it cannot run.
inline std::string FirstOutputLine(const std::vector<std::string>& argv) {
  absl::StatusOr<std::string> dir = tools::MakeTempDir("mapkv_server_version_");
  if (!dir.ok()) return "";
  const std::string path = *dir + "/out.txt";
  std::string line;
  absl::StatusOr<int> pid = tools::SpawnProcess(argv, path);
  if (pid.ok() && tools::WaitChild(*pid).ok()) {
    std::ifstream in(path);
    std::getline(in, line);
  }
  std::error_code ignored;
  std::filesystem::remove_all(*dir, ignored);
  return line;
}

// The last lines of a server's log (up to 1000 bytes), for an error message.
inline std::string LogTail(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > 1000) text = "..." + text.substr(text.size() - 1000);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text.empty() ? "(empty)" : text;
}

// A server the benchmark runs: started by Start(), stopped (SIGTERM, then SIGKILL) when destroyed
// in the process that started it, never by a forked child that exits through destructors.
class ServerProcess {
 public:
  static constexpr auto kStartTimeout = std::chrono::seconds(10);

  // Starts argv (output to `log`), listening on `socket`, and calls probe() every 10 ms until it
  // succeeds (the server answers) or kStartTimeout passes.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::vector<std::string>& argv, const std::string& socket, const std::string& log,
      absl::FunctionRef<absl::Status()> probe) {
    if (socket.size() >= tools::MaxUnixSocketPath()) {
      return absl::InvalidArgumentError(
          absl::StrCat(argv[0], ": the socket path ", socket, " is ", socket.size(),
                       " bytes, over what a unix socket allows; use a shorter TMPDIR"));
    }
    absl::StatusOr<int> pid = tools::SpawnProcess(argv, log);
    if (!pid.ok()) return pid.status();
    std::unique_ptr<ServerProcess> server(new ServerProcess(*pid));
    const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
    absl::Status last = absl::UnavailableError("no socket yet");
    for (;;) {
      if (std::filesystem::exists(socket)) {
        last = probe();
        if (last.ok()) return server;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat(argv[0], " (pid ", *pid, ") did not answer on ", socket, " within ",
                         kStartTimeout.count(), " s (", last.message(), "); its log, ", log, ":\n",
                         LogTail(log)));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  ~ServerProcess() {
    if (tools::CurrentPid() == owner_pid_) tools::TerminateProcess(pid_);
  }

  int pid() const { return pid_; }

 private:
  explicit ServerProcess(int pid) : pid_(pid), owner_pid_(tools::CurrentPid()) {}

  int pid_;
  int owner_pid_;
};

// A server-backed store's backend: the server, and handles that connect to its socket.
// Store::Connect(socket) returns absl::StatusOr<std::unique_ptr<Store>>; every handle reads and
// writes, whatever the Access.
template <class Store>
class ServerBackend : public KvBackend {
 public:
  ServerBackend(std::unique_ptr<ServerProcess> server, std::string socket)
      : server_(std::move(server)), socket_(std::move(socket)) {}

  absl::StatusOr<std::unique_ptr<KvStore>> Open(Access /*access*/) override {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Connect(socket_);
    if (!store.ok()) return store.status();
    return std::unique_ptr<KvStore>(std::move(*store));
  }

  int server_pid() const override { return server_->pid(); }

 private:
  std::unique_ptr<ServerProcess> server_;
  std::string socket_;
};

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_KV_SERVER_H_
