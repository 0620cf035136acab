// The stores the benchmark drivers measure, behind one small interface, so that one driver measures
// mapkv and its peers the same way: bench/peer_bench.cc (db_bench's and YCSB's phases) and
// bench/durability_bench.cc (commit cost per durability mode). A store is added by one header:
// bench/kv_<store>.h defines functions returning its StoreKinds, and a driver lists them (under
// MAPKV_BENCH_HAVE_<STORE> when the library is optional).
//
// The model: a StoreKind is one store in one configuration; it creates a KvBackend for a run in
// an empty directory of its own. The backend is what outlives every handle (a server process for
// Redis and memcached, the map itself for the in-memory references, nothing but the directory, or
// the process's one open object, for an embedded store). Handles (KvStore) are opened from the
// backend, in the driver's process or in a forked child: a handle never crosses a fork, and the
// driver closes every handle in its own process before it forks (so that stores with a file lock
// let the children in). One process may hold several handles at once, one per thread (the
// durability driver's writer threads); where the store allows one open object per process (LMDB's
// environment, an fcntl-locked file), or its object is meant to be shared by threads (mapkv's DB),
// the backend hands every handle of a process the same one (bench/per_process_db.h).
//
// Durability: every write is one transaction of the store, visible to every other handle when the
// call returns. What survives a power cut is the kind's: StoreKind::sync_class and power_cut. The
// peer benchmark's kinds are all SyncClass::kNone (no fsync per operation: a process crash may lose
// what the store's own contract allows, a power cut anything since the last Sync()); the
// durability benchmark's kinds are each store in each of its sync modes.
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

// What survives a power cut, in the terms of mapkv's Durability: the durability table groups rows
// by it.
enum class SyncClass {
  kNone,      // every commit survives a process crash; a power cut keeps what an explicit sync kept
  kPeriodic,  // between: a sync now and then, or every commit but the last on disk
  kSync,      // a commit is on disk when it returns
};

// A read transaction that sees one committed state of the store, whatever other handles (of any
// process) commit while it lives. Used by its handle's thread; destroyed before its handle, and
// while it lives the handle is used for nothing else (LMDB allows one read transaction per thread).
class KvSnapshot {
 public:
  virtual ~KvSnapshot() = default;

  // As KvStore::Get, as of the snapshot.
  virtual absl::Status Get(std::string_view key, std::string* value) = 0;

  // As KvStore::Scan, as of the snapshot.
  virtual absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view key, std::string_view value)> fn) = 0;
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

  // Puts every pair in one transaction and commits it in the kind's mode: when it returns OK the
  // transaction is visible to every other handle and as durable as the mode promises. Waits for
  // the other writers (each store serialises its writers). The default is Put for one pair and
  // Unimplemented for more (a store without multi-put transactions).
  virtual absl::Status Commit(absl::Span<const KvPair> puts) {
    if (puts.size() == 1) return Put(puts[0].key, puts[0].value);
    return absl::UnimplementedError("no multi-put transaction");
  }

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

  // A snapshot (KvSnapshot), where the store has read transactions that other processes' commits
  // go on beside; Unimplemented otherwise.
  virtual absl::StatusOr<std::unique_ptr<KvSnapshot>> BeginSnapshot() {
    return absl::UnimplementedError("no snapshot");
  }

  // Makes everything written so far durable, whatever the mode (the peer driver calls it before
  // it measures file size; the durability driver after loading, so that the timed run does not
  // pay for the load's write-back).
  virtual absl::Status Sync() = 0;

  // The store's own compaction (offline or online) where it has one: Unimplemented otherwise.
  virtual absl::Status Compact() { return absl::UnimplementedError("no compaction"); }

  // Compacts the store's file in place while this handle (and any other) stays open and in use:
  // Unimplemented where the store cannot. BytesWritten goes on counting across it, the
  // compaction's own writes included.
  virtual absl::Status CompactOnline() { return absl::UnimplementedError("no online compaction"); }

  // Bytes the store has written to its files so far, as it counts them itself, for write
  // amplification: the driver takes what it grew by over a run of writes with no compaction
  // between, or with CompactOnline ones. Each adapter says what it counts. 0: the store cannot say
  // (the default).
  virtual uint64_t BytesWritten() { return 0; }
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
  // The sync mode, as the durability table names it ("kSync", "MDB_NOSYNC"), its class, and what
  // a power cut loses, in a few words. The durability kinds set all three; the peer kinds, all
  // kNone, leave mode and power_cut empty (settings says it).
  std::string mode;
  SyncClass sync_class = SyncClass::kNone;
  std::string power_cut;
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
