// The stores the peer benchmark (bench/peer_bench.cc) measures, behind one small interface, so
// that a store is added by one header: bench/kv_<store>.h defines a function returning its
// StoreKind, and peer_bench.cc lists it (under MAPKV_BENCH_HAVE_<STORE> when the library is
// optional).
//
// The model: a StoreKind creates a KvBackend for a run in an empty directory of its own. The
// backend is what outlives every handle (a server process for Redis and memcached, the map itself
// for the in-memory references, nothing but the directory for an embedded store). Handles
// (KvStore) are opened from the backend, in the driver's process or in a forked child: a handle
// never crosses a fork, and the driver closes every handle in its own process before it forks
// (so that stores with a file lock let the children in).
//
// Durability is matched across stores: no fsync per operation. Every write is one transaction of
// the store, visible to every other handle when the call returns; a process crash may lose what
// the store's own contract allows, a power cut anything since the last Sync().
#ifndef MAPKV_BENCH_KV_STORE_H_
#define MAPKV_BENCH_KV_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace mapkv::bench {

// How a handle is opened.
enum class Access {
  kCreate,  // the first handle of a run, in the driver, on the empty directory
  kWrite,   // reads and writes, on an existing database
  kRead,    // reads only (a store with a read-only mode uses it; others open for writing)
};

// One put: both views belong to the caller and need only outlive the call.
struct KvPair {
  std::string_view key;
  std::string_view value;
};

// One open handle, used by one thread.
class KvStore {
 public:
  virtual ~KvStore() = default;

  // One transaction per call, visible to every other handle when it returns (no fsync).
  virtual absl::Status Put(std::string_view key, std::string_view value) = 0;

  // Copies the value into *value (reusing its capacity). NotFound when the key is absent.
  virtual absl::Status Get(std::string_view key, std::string* value) = 0;

  // OK whether or not the key was present (NotFound is accepted too).
  virtual absl::Status Delete(std::string_view key) = 0;

  // Visits every pair once, in the store's own order (a full scan). Returns the pairs visited.
  virtual absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view key, std::string_view value)> fn) = 0;

  // Writes many pairs the store's fastest way (one transaction or write batch, a pipeline for a
  // server). Used to load the data set before read phases, not timed as a phase.
  virtual absl::Status Load(absl::Span<const KvPair> pairs) {
    for (const KvPair& p : pairs) {
      if (absl::Status s = Put(p.key, p.value); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // A batched lookup, where the store has one (mapkv's MultiGet, RocksDB's MultiGet, a server's
  // multi-key get): (*values)[i] gets keys[i]'s value; *found counts the keys present. Values of
  // absent keys are left unspecified. Unimplemented where the store has none.
  virtual absl::Status MultiGet(absl::Span<const std::string_view> keys,
                                std::vector<std::string>* values, size_t* found) {
    (void)keys, (void)values, (void)found;
    return absl::UnimplementedError("no batched lookup");
  }

  // Cache-aside, the worker-pool read path: the value of `key` into *value, or, when the key is
  // missing, compute()'s value, stored and returned, with *computed set. The default is what a
  // memcached or Redis client does: Get, and on NotFound compute and Put (every process that
  // misses at once computes). A store with a compute-once primitive overrides it.
  virtual absl::Status GetOrCompute(std::string_view key,
                                    absl::FunctionRef<std::string_view()> compute,
                                    std::string* value, bool* computed) {
    *computed = false;
    absl::Status s = Get(key, value);
    if (!absl::IsNotFound(s)) return s;
    *computed = true;
    const std::string_view fresh = compute();
    value->assign(fresh.data(), fresh.size());
    return Put(key, fresh);
  }

  // Makes everything written so far durable (the driver calls it before it measures file size).
  virtual absl::Status Sync() = 0;

  // The store's own compaction (offline or online) where it has one: Unimplemented otherwise.
  virtual absl::Status Compact() { return absl::UnimplementedError("no compaction"); }
};

// What a store allows; phases a store cannot run are shown as "n/a".
struct StoreCaps {
  bool multi_reader = false;        // several processes may hold kRead handles at once
  bool reader_with_writer = false;  // ... and one kWrite handle beside them
  bool on_disk = true;              // has files whose size the driver reports
};

// One store's state for a run.
class KvBackend {
 public:
  virtual ~KvBackend() = default;

  // A new handle. Called in the driver's process, or in a forked child after the driver closed
  // its own handles.
  virtual absl::StatusOr<std::unique_ptr<KvStore>> Open(Access access) = 0;

  // A process outside the driver that does the store's work (a server), whose CPU time the
  // driver adds to the phase's; -1 when none.
  virtual int server_pid() const { return -1; }
};

// The backend of an embedded store that is nothing but its files: Open(access) calls
// open(path, access).
class FileBackend : public KvBackend {
 public:
  using Opener =
      std::function<absl::StatusOr<std::unique_ptr<KvStore>>(const std::string&, Access)>;
  FileBackend(std::string path, Opener open) : path_(std::move(path)), open_(std::move(open)) {}

  absl::StatusOr<std::unique_ptr<KvStore>> Open(Access access) override {
    return open_(path_, access);
  }

 private:
  std::string path_;
  Opener open_;
};

struct StoreKind {
  std::string name;      // "mapkv", "LMDB", "tkrzw HashDBM", ...
  std::string settings;  // one line of the run's output: version, mode, tuning
  StoreCaps caps;
  // A backend in `dir`, an empty directory that nothing else uses. `expected_keys` is the data
  // set's size, for stores whose best practice is to size their tables up front (documented in
  // the adapter when it does).
  std::function<absl::StatusOr<std::unique_ptr<KvBackend>>(const std::string& dir,
                                                           uint64_t expected_keys)>
      create;
};

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_KV_STORE_H_
