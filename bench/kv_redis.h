// Redis (the server; 7.0 on Debian 12) through hiredis (0.14 on Debian 12) behind the KvStore
// interface (bench/kv_store.h): the shared cache that a pool of worker processes would use
// instead of mapkv.
//
// Settings: the backend starts one server per run and stops it when destroyed:
//   redis-server --port 0 --unixsocket DIR/redis.sock --unixsocketperm 600 --save ""
//       --appendonly no --dir DIR --daemonize no
// A unix socket only (--port 0 turns TCP off), readable by the owner only, and no persistence:
// no RDB snapshots, no append-only file, so the data set is a cache in memory, Sync() does
// nothing and on_disk is false. Everything else is the default: one thread runs the commands, no
// memory cap. Its output goes to DIR/redis.log.
//
// Each handle is one connection (redisConnectUnix), blocking, one command per round trip, keys and
// values sent binary-safe ("%b"): Put is SET, Get GET (nil: NotFound), Delete DEL, MultiGet one
// MGET. Load pipelines batches of 1000 SETs (redisAppendCommand, then one redisGetReply each).
// Scan walks SCAN cursor COUNT 1000 and fetches each batch's values with one MGET; a key deleted
// in between is skipped, and, as SCAN allows, a key may come twice if the table is resized during
// the walk (not on a data set that nothing writes to once its load has finished).
//
// hiredis writes with write(): if the server dies, the next command raises SIGPIPE, which kills a
// process that has not ignored it. The driver must ignore SIGPIPE (in the process that forks the
// children too) for such a run to end with an error instead (libmemcached sends with MSG_NOSIGNAL
// and needs nothing).
#ifndef MAPKV_BENCH_KV_REDIS_H_
#define MAPKV_BENCH_KV_REDIS_H_

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "bench/kv_server.h"
#include "bench/kv_store.h"
#include "testing/subprocess.h"

namespace mapkv::bench {

// "Redis 7.0.15 (jemalloc-5.3.0)" from `redis-server --version`, or "" when it cannot run.
inline std::string RedisServerVersion() {
  // "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=..."
  const std::string line = FirstOutputLine({"redis-server", "--version"});
  auto field = [&line](std::string_view name) {
    size_t at = line.find(name);
    if (at == std::string::npos) return std::string();
    at += name.size();
    return line.substr(at, line.find(' ', at) - at);
  };
  std::string version = field(" v=");
  if (version.empty()) return line;
  std::string malloc_name = field(" malloc=");
  return absl::StrCat("Redis ", version, malloc_name.empty() ? "" : " (", malloc_name,
                      malloc_name.empty() ? "" : ")");
}

struct RedisReplyFree {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyFree>;

class RedisStore : public KvStore {
 public:
  static constexpr size_t kLoadBatch = 1000;
  static constexpr const char* kScanCount = "1000";

  // A connection to the server on `socket`, checked with a PING.
  static absl::StatusOr<std::unique_ptr<RedisStore>> Connect(const std::string& socket) {
    redisContext* c = redisConnectUnix(socket.c_str());
    if (c == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("Redis redisConnectUnix on ", socket, ": cannot allocate a context"));
    }
    std::unique_ptr<RedisStore> store(new RedisStore(c, socket));
    if (c->err != 0) {
      return absl::UnavailableError(
          absl::StrCat("Redis redisConnectUnix on ", socket, ": ", c->errstr));
    }
    RedisReplyPtr reply = store->Command("PING");
    if (reply == nullptr || reply->type != REDIS_REPLY_STATUS ||
        std::string_view(reply->str, reply->len) != "PONG") {
      return store->Error("PING", reply.get(), absl::UnavailableError);
    }
    return store;
  }

  ~RedisStore() override { redisFree(c_); }

  absl::Status Put(std::string_view key, std::string_view value) override {
    RedisReplyPtr reply = Command("SET %b %b", key.data(), key.size(), value.data(), value.size());
    return CheckOk("SET", reply.get());
  }

  absl::Status Get(std::string_view key, std::string* value) override {
    RedisReplyPtr reply = Command("GET %b", key.data(), key.size());
    if (reply != nullptr && reply->type == REDIS_REPLY_STRING) {
      value->assign(reply->str, reply->len);
      return absl::OkStatus();
    }
    if (reply != nullptr && reply->type == REDIS_REPLY_NIL) {
      return absl::NotFoundError("Redis: no such key");
    }
    return Error("GET", reply.get());
  }

  absl::Status Delete(std::string_view key) override {
    RedisReplyPtr reply = Command("DEL %b", key.data(), key.size());
    if (reply != nullptr && reply->type == REDIS_REPLY_INTEGER) return absl::OkStatus();
    return Error("DEL", reply.get());
  }

  absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view key, std::string_view value)> fn) override {
    uint64_t visited = 0;
    std::string cursor = "0";
    do {
      RedisReplyPtr scan = Command("SCAN %s COUNT %s", cursor.c_str(), kScanCount);
      if (scan == nullptr || scan->type != REDIS_REPLY_ARRAY || scan->elements != 2 ||
          scan->element[0]->type != REDIS_REPLY_STRING ||
          scan->element[1]->type != REDIS_REPLY_ARRAY) {
        return Error("SCAN", scan.get());
      }
      cursor.assign(scan->element[0]->str, scan->element[0]->len);
      const redisReply* keys = scan->element[1];
      if (keys->elements == 0) continue;
      argv_.assign(1, "MGET");
      argv_sizes_.assign(1, 4);
      for (size_t i = 0; i < keys->elements; ++i) {
        argv_.push_back(keys->element[i]->str);
        argv_sizes_.push_back(keys->element[i]->len);
      }
      RedisReplyPtr values = CommandArgv();
      if (values == nullptr || values->type != REDIS_REPLY_ARRAY ||
          values->elements != keys->elements) {
        return Error("MGET (Scan)", values.get());
      }
      for (size_t i = 0; i < keys->elements; ++i) {
        const redisReply* value = values->element[i];
        if (value->type != REDIS_REPLY_STRING) continue;  // deleted since the SCAN
        fn(std::string_view(keys->element[i]->str, keys->element[i]->len),
           std::string_view(value->str, value->len));
        ++visited;
      }
    } while (cursor != "0");
    return visited;
  }

  absl::Status Load(absl::Span<const KvPair> pairs) override {
    for (size_t begin = 0; begin < pairs.size(); begin += kLoadBatch) {
      absl::Span<const KvPair> batch = pairs.subspan(begin, kLoadBatch);
      for (const KvPair& p : batch) {
        if (redisAppendCommand(c_, "SET %b %b", p.key.data(), p.key.size(), p.value.data(),
                               p.value.size()) != REDIS_OK) {
          return Error("SET (Load, redisAppendCommand)", nullptr);
        }
      }
      // Every reply is read, even after an error, so that the connection stays in step.
      absl::Status status;
      for (size_t i = 0; i < batch.size(); ++i) {
        void* raw = nullptr;
        if (redisGetReply(c_, &raw) != REDIS_OK) return Error("SET (Load)", nullptr);
        RedisReplyPtr reply(static_cast<redisReply*>(raw));
        if (status.ok()) status = CheckOk("SET (Load)", reply.get());
      }
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status MultiGet(absl::Span<const std::string_view> keys, std::vector<std::string>* values,
                        size_t* found) override {
    values->resize(keys.size());
    *found = 0;
    if (keys.empty()) return absl::OkStatus();
    argv_.assign(1, "MGET");
    argv_sizes_.assign(1, 4);
    for (std::string_view key : keys) {
      argv_.push_back(key.data());
      argv_sizes_.push_back(key.size());
    }
    RedisReplyPtr reply = CommandArgv();
    if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != keys.size()) {
      return Error("MGET", reply.get());
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      const redisReply* value = reply->element[i];
      if (value->type != REDIS_REPLY_STRING) continue;
      (*values)[i].assign(value->str, value->len);
      ++*found;
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override { return absl::OkStatus(); }  // nothing on disk

 private:
  RedisStore(redisContext* c, std::string socket) : c_(c), socket_(std::move(socket)) {}

  template <typename... Args>
  RedisReplyPtr Command(const char* format, Args... args) {
    return RedisReplyPtr(static_cast<redisReply*>(redisCommand(c_, format, args...)));
  }

  RedisReplyPtr CommandArgv() {
    return RedisReplyPtr(static_cast<redisReply*>(
        redisCommandArgv(c_, static_cast<int>(argv_.size()), argv_.data(), argv_sizes_.data())));
  }

  // A reply of "+OK", or an error.
  absl::Status CheckOk(const char* call, const redisReply* reply) const {
    if (reply != nullptr && reply->type == REDIS_REPLY_STATUS &&
        std::string_view(reply->str, reply->len) == "OK") {
      return absl::OkStatus();
    }
    return Error(call, reply);
  }

  // What went wrong with `call`: the connection (no reply; hiredis then refuses the context's
  // further commands), an error reply, or a reply of an unexpected type.
  absl::Status Error(const char* call, const redisReply* reply,
                     absl::Status (*make)(absl::string_view) = absl::InternalError) const {
    std::string prefix = absl::StrCat("Redis ", call, " on ", socket_, ": ");
    if (reply == nullptr) {
      return absl::UnavailableError(
          absl::StrCat(prefix, c_->err != 0 ? c_->errstr : "no reply", " (connection lost?)"));
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      return make(absl::StrCat(prefix, absl::string_view(reply->str, reply->len)));
    }
    return make(absl::StrCat(prefix, "unexpected reply of type ", reply->type));
  }

  redisContext* c_;
  std::string socket_;
  // Arguments of the last MGET, kept between calls.
  std::vector<const char*> argv_;
  std::vector<size_t> argv_sizes_;
};

// Starts a server for a run.
inline absl::StatusOr<std::unique_ptr<KvBackend>> StartRedis(const std::string& dir) {
  std::string socket = dir + "/redis.sock";
  std::string log = dir + "/redis.log";
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(
      {"redis-server", "--port", "0", "--unixsocket", socket, "--unixsocketperm", "600", "--save",
       "", "--appendonly", "no", "--dir", dir, "--daemonize", "no"},
      socket, log, [&] { return RedisStore::Connect(socket).status(); });
  if (!server.ok()) return server.status();
  return std::unique_ptr<KvBackend>(new ServerBackend<RedisStore>(*std::move(server), socket));
}

inline StoreKind RedisKind() {
  std::string version = RedisServerVersion();
  if (version.empty()) version = "Redis (redis-server not found: apt install redis-server)";
  StoreKind kind;
  kind.name = "Redis";
  kind.settings = absl::StrCat(
      version, " via hiredis ", HIREDIS_MAJOR, ".", HIREDIS_MINOR, ".", HIREDIS_PATCH,
      ": a server on a unix socket, no persistence (--save \"\" --appendonly no: a cache), "
      "one command per round trip, Load pipelined by 1000");
  kind.caps.multi_reader = true;
  kind.caps.reader_with_writer = true;
  kind.caps.on_disk = false;
  kind.create = [](const std::string& dir,
                   uint64_t expected_keys) -> absl::StatusOr<std::unique_ptr<KvBackend>> {
    (void)expected_keys;  // Redis grows its tables as keys arrive
    return StartRedis(dir);
  };
  return kind;
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_KV_REDIS_H_
