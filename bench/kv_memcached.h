// memcached (the server; 1.6 on Debian 12) through libmemcached (1.1 on Debian 12) behind the
// KvStore interface (bench/kv_store.h): the shared cache that a pool of worker processes would use
// instead of mapkv.
//
// Settings: the backend starts one server per run and stops it when destroyed:
//   memcached -s DIR/memcached.sock -a 0600 -m MIB -M -t 4 -U 0 -u root
// A unix socket only (-s turns TCP off, -U 0 UDP), readable by the owner only, 4 worker threads
// (the default). Item memory (-m) is max(1024, expected_keys x 256 B) MiB: a cap that the server
// fills as items arrive, not an allocation, sized for the benchmark's 16-byte keys and 100-byte
// values with a third to spare (an item of those sizes takes a 192-byte slab chunk). Evictions
// are off (-M): a data set that outgrows the cap makes the server refuse writes, which Put and
// Load report, instead of dropping keys. -u only matters when memcached runs as root (it refuses
// to without -u); the server then stays root. Its output goes to DIR/memcached.log. Nothing is
// written to disk (a cache): Sync() does nothing, on_disk is false.
//
// Each handle is one connection (a memcached_st) speaking the text protocol, replies on, with a
// 10 s poll timeout (the default 1 s can expire on a loaded machine, and libmemcached then marks
// the server dead for 2 s): Put is memcached_set (no expiry), Get memcached_get (its malloc'd
// value copied out), Delete memcached_delete (NotFound accepted), MultiGet one memcached_mget
// ("get k1 k2 ...") and a memcached_fetch_result loop. Load writes batches of 1000 sets buffered
// and without replies (MEMCACHED_BEHAVIOR_BUFFER_REQUESTS and NOREPLY, then
// memcached_flush_buffers; buffered sets with replies lose keys and trip assertions in
// libmemcached 1.1.4), and checks each batch with an mget of its keys on the same connection,
// since a quiet set that fails says nothing. Scan is Unimplemented: memcached cannot list its
// keys. The text protocol rather than the binary one: memcached 1.6 deprecates the binary
// protocol and answered some 15% more single Gets in the text one in a quick test, and a failed
// "set ... noreply" sends nothing where a failed binary SETQ sends a reply that libmemcached does
// not expect. Keys are therefore 1 to 250 bytes without spaces or control characters (others are
// InvalidArgument); values at most 1 MiB (the server's -I default).
#ifndef MAPKV_BENCH_KV_MEMCACHED_H_
#define MAPKV_BENCH_KV_MEMCACHED_H_

#include <libmemcached/memcached.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
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

// The first line that `memcached -V` prints ("memcached 1.6.18"), or "" when it cannot run.
inline std::string MemcachedServerVersion() { return FirstOutputLine({"memcached", "-V"}); }

class MemcachedStore : public KvStore {
 public:
  static constexpr size_t kLoadBatch = 1000;
  static constexpr uint64_t kPollTimeoutMs = 10000;

  // A connection to the server on `socket`, checked with a get.
  static absl::StatusOr<std::unique_ptr<MemcachedStore>> Connect(const std::string& socket) {
    memcached_st* mc = memcached_create(nullptr);
    if (mc == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("memcached memcached_create for ", socket, ": out of memory"));
    }
    std::unique_ptr<MemcachedStore> store(new MemcachedStore(mc, socket));
    if (memcached_return_t rc = memcached_server_add_unix_socket(mc, socket.c_str());
        !memcached_success(rc)) {
      return store->Error(rc, "memcached_server_add_unix_socket");
    }
    // The text protocol: memcached 1.6 answers it faster than the (deprecated) binary one, and a
    // quiet set that fails there leaves nothing on the wire (Load). Keys are checked for it.
    if (memcached_return_t rc = memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_VERIFY_KEY, 1);
        !memcached_success(rc)) {
      return store->Error(rc, "memcached_behavior_set(VERIFY_KEY)");
    }
    if (memcached_return_t rc =
            memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, kPollTimeoutMs);
        !memcached_success(rc)) {
      return store->Error(rc, "memcached_behavior_set(POLL_TIMEOUT)");
    }
    // libmemcached connects on first use: a get of a key nobody writes checks the connection (its
    // error says what failed, where memcached_version's says "SOME ERRORS WERE REPORTED").
    constexpr std::string_view kProbe = "mapkv-bench-connect-probe";
    memcached_return_t rc = MEMCACHED_SUCCESS;
    size_t length = 0;
    uint32_t flags = 0;
    std::free(memcached_get(mc, kProbe.data(), kProbe.size(), &length, &flags, &rc));
    if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_NOTFOUND) {
      return store->Error(rc, "connect (a probe get)", absl::UnavailableError);
    }
    // In storage of ours: memcached_fetch_result frees a result it allocated itself when the
    // fetch ends.
    if (memcached_result_create(mc, &store->result_) == nullptr) {
      return store->Error(MEMCACHED_MEMORY_ALLOCATION_FAILURE, "memcached_result_create");
    }
    store->result_created_ = true;
    return store;
  }

  ~MemcachedStore() override {
    if (result_created_) memcached_result_free(&result_);
    memcached_free(mc_);
  }

  absl::Status Put(std::string_view key, std::string_view value) override {
    memcached_return_t rc =
        memcached_set(mc_, key.data(), key.size(), value.data(), value.size(), 0, 0);
    if (rc != MEMCACHED_SUCCESS) return Error(rc, "memcached_set");
    return absl::OkStatus();
  }

  absl::Status Get(std::string_view key, std::string* value) override {
    size_t length = 0;
    uint32_t flags = 0;
    memcached_return_t rc = MEMCACHED_SUCCESS;
    char* data = memcached_get(mc_, key.data(), key.size(), &length, &flags, &rc);
    if (data == nullptr) {
      if (rc == MEMCACHED_SUCCESS) {  // an empty value
        value->clear();
        return absl::OkStatus();
      }
      if (rc == MEMCACHED_NOTFOUND) return absl::NotFoundError("memcached: no such key");
      return Error(rc, "memcached_get");
    }
    value->assign(data, length);
    std::free(data);
    if (rc != MEMCACHED_SUCCESS) return Error(rc, "memcached_get");
    return absl::OkStatus();
  }

  absl::Status Delete(std::string_view key) override {
    memcached_return_t rc = memcached_delete(mc_, key.data(), key.size(), 0);
    if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_NOTFOUND) return Error(rc, "memcached_delete");
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view key, std::string_view value)> fn) override {
    (void)fn;
    return absl::UnimplementedError("memcached cannot list its keys");
  }

  absl::Status Load(absl::Span<const KvPair> pairs) override {
    // Setting BUFFER_REQUESTS reconnects (libmemcached quits its connections): once per Load.
    for (memcached_behavior_t behavior :
         {MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, MEMCACHED_BEHAVIOR_NOREPLY}) {
      if (memcached_return_t rc = memcached_behavior_set(mc_, behavior, 1);
          !memcached_success(rc)) {
        return Error(rc, "memcached_behavior_set (Load)");
      }
    }
    absl::Status status = LoadQuietly(pairs);
    memcached_behavior_set(mc_, MEMCACHED_BEHAVIOR_NOREPLY, 0);
    memcached_behavior_set(mc_, MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 0);
    return status;
  }

  absl::Status MultiGet(absl::Span<const std::string_view> keys, std::vector<std::string>* values,
                        size_t* found) override {
    values->resize(keys.size());
    *found = 0;
    if (keys.empty()) return absl::OkStatus();
    key_ptrs_.clear();
    key_sizes_.clear();
    for (std::string_view key : keys) {
      key_ptrs_.push_back(key.data());
      key_sizes_.push_back(key.size());
    }
    memcached_return_t rc = memcached_mget(mc_, key_ptrs_.data(), key_sizes_.data(), keys.size());
    if (rc != MEMCACHED_SUCCESS) return Error(rc, "memcached_mget");
    // The replies come in the server's order and name their key: find its positions in `keys`
    // (a key asked twice is answered for both) through an index sorted by key.
    order_.resize(keys.size());
    for (uint32_t i = 0; i < keys.size(); ++i) order_[i] = i;
    std::sort(order_.begin(), order_.end(),
              [&keys](uint32_t a, uint32_t b) { return keys[a] < keys[b]; });
    filled_.assign(keys.size(), 0);
    while (memcached_result_st* result = memcached_fetch_result(mc_, &result_, &rc)) {
      std::string_view key(memcached_result_key_value(result), memcached_result_key_length(result));
      auto [first, last] = std::equal_range(order_.begin(), order_.end(), key, KeyOrder{keys});
      for (auto it = first; it != last; ++it) {
        if (filled_[*it]) continue;
        filled_[*it] = 1;
        (*values)[*it].assign(memcached_result_value(result), memcached_result_length(result));
        ++*found;
      }
    }
    if (rc != MEMCACHED_END && rc != MEMCACHED_SUCCESS && rc != MEMCACHED_NOTFOUND) {
      return Error(rc, "memcached_fetch_result");
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override { return absl::OkStatus(); }  // nothing on disk

 private:
  MemcachedStore(memcached_st* mc, std::string socket) : mc_(mc), socket_(std::move(socket)) {}

  // Compares an index into `keys` with a key, both ways, for std::equal_range.
  struct KeyOrder {
    absl::Span<const std::string_view> keys;
    bool operator()(uint32_t a, std::string_view b) const { return keys[a] < b; }
    bool operator()(std::string_view a, uint32_t b) const { return a < keys[b]; }
  };

  absl::Status Error(memcached_return_t rc, const char* call,
                     absl::Status (*make)(absl::string_view) = absl::InternalError) const {
    std::string message =
        absl::StrCat("memcached ", call, " on ", socket_, ": ", memcached_strerror(mc_, rc));
    // The library's own message for the same error adds the system's reason (connect, read).
    if (memcached_last_error(mc_) == rc && memcached_last_error_errno(mc_) != 0) {
      absl::StrAppend(&message, " (", std::strerror(memcached_last_error_errno(mc_)), ")");
    }
    switch (rc) {
      case MEMCACHED_BAD_KEY_PROVIDED:
      case MEMCACHED_KEY_TOO_BIG:
        return absl::InvalidArgumentError(
            absl::StrCat(message, ": keys are 1 to 250 bytes, no spaces or control characters"));
      case MEMCACHED_E2BIG:
      case MEMCACHED_SERVER_MEMORY_ALLOCATION_FAILURE:
      case MEMCACHED_MEMORY_ALLOCATION_FAILURE:
        return absl::ResourceExhaustedError(message);
      default:
        return make(message);
    }
  }

  // Sets without replies ("set ... noreply"), written in batches; after each batch an mget on the
  // same connection (so after the sets) checks that every key arrived, since a quiet set that fails
  // says nothing.
  absl::Status LoadQuietly(absl::Span<const KvPair> pairs) {
    std::vector<std::string_view> keys;
    std::vector<std::string> values;
    for (size_t begin = 0; begin < pairs.size(); begin += kLoadBatch) {
      absl::Span<const KvPair> batch = pairs.subspan(begin, kLoadBatch);
      for (const KvPair& p : batch) {
        memcached_return_t rc =
            memcached_set(mc_, p.key.data(), p.key.size(), p.value.data(), p.value.size(), 0, 0);
        if (rc != MEMCACHED_BUFFERED && rc != MEMCACHED_SUCCESS) {
          return Error(rc, "memcached_set (Load)");
        }
      }
      if (memcached_return_t rc = memcached_flush_buffers(mc_); !memcached_success(rc)) {
        return Error(rc, "memcached_flush_buffers (Load)");
      }
      keys.clear();
      for (const KvPair& p : batch) keys.push_back(p.key);
      size_t found = 0;
      if (absl::Status s = MultiGet(keys, &values, &found); !s.ok()) return s;
      if (found != keys.size()) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "memcached Load on ", socket_, ": ", keys.size() - found, " of ", keys.size(),
            " keys of a batch missing after their sets (item memory full? -m with -M; see "
            "memcached.log beside the socket)"));
      }
    }
    return absl::OkStatus();
  }

  memcached_st* mc_;
  std::string socket_;
  memcached_result_st result_{};  // MultiGet's replies, one at a time
  bool result_created_ = false;
  // MultiGet's buffers, kept between calls.
  std::vector<const char*> key_ptrs_;
  std::vector<size_t> key_sizes_;
  std::vector<uint32_t> order_;
  std::vector<char> filled_;
};

// Starts a server for a run, with memory for `expected_keys` pairs (evictions off: a cap too small
// fails the load instead of dropping keys).
inline absl::StatusOr<std::unique_ptr<KvBackend>> StartMemcached(const std::string& dir,
                                                                 uint64_t expected_keys) {
  constexpr uint64_t kBytesPerKey = 256;
  constexpr uint64_t kMinMemoryMiB = 1024;
  std::string socket = dir + "/memcached.sock";
  std::string log = dir + "/memcached.log";
  uint64_t mib = std::max(kMinMemoryMiB, (expected_keys * kBytesPerKey + (1 << 20) - 1) >> 20);
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start({"memcached", "-s", socket, "-a", "0600", "-m", absl::StrCat(mib), "-M",
                            "-t", "4", "-U", "0", "-u", "root"},
                           socket, log, [&] { return MemcachedStore::Connect(socket).status(); });
  if (!server.ok()) return server.status();
  return std::unique_ptr<KvBackend>(new ServerBackend<MemcachedStore>(*std::move(server), socket));
}

inline StoreKind MemcachedKind() {
  std::string version = MemcachedServerVersion();
  if (version.empty()) version = "memcached (not found: apt install memcached)";
  StoreKind kind;
  kind.name = "memcached";
  kind.settings = absl::StrCat(
      version, " via libmemcached ", memcached_lib_version(),
      ": a server on a unix socket, -t 4, -m max(1024, 256 B x keys) MiB, -M (no evictions), "
      "text protocol, in memory only (a cache)");
  kind.caps.multi_reader = true;
  kind.caps.reader_with_writer = true;
  kind.caps.on_disk = false;
  kind.create = [](const std::string& dir,
                   uint64_t expected_keys) -> absl::StatusOr<std::unique_ptr<KvBackend>> {
    return StartMemcached(dir, expected_keys);
  };
  return kind;
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_KV_MEMCACHED_H_
