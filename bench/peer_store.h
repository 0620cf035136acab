// The stores a benchmark driver measures, behind one small interface, so that one driver measures
// mapkv and its peers the same way: bench/durability_bench.cc (the peer benchmark has its own,
// bench/kv_store.h). An adapter opens one database of one store in one durability mode, in a
// directory of its own that nothing else uses, and hands out writers, one per thread.
//
// One header per store: peer_store_mapkv.h, peer_store_lmdb.h (liblmdb), peer_store_sqlite.h
// (libsqlite3). The peers' headers are included only when CMake found the library
// (MAPKV_BENCH_HAVE_LMDB, MAPKV_BENCH_HAVE_SQLITE); each says its store's settings.
#ifndef MAPKV_BENCH_PEER_STORE_H_
#define MAPKV_BENCH_PEER_STORE_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mapkv::bench {

// One put. Both views belong to the caller and need only outlive the call that takes them.
struct KeyValue {
  std::string_view key;
  std::string_view value;
};

// What survives a power cut, in the terms of mapkv's Durability: the table groups rows by it.
enum class SyncClass {
  kNone,      // every commit survives a process crash; a power cut keeps what an explicit sync kept
  kPeriodic,  // between: a sync now and then, or every commit but the last on disk
  kSync,      // a commit is on disk when it returns
};

// One thread's way to write. Used by one thread at a time; destroyed before its store.
class PeerWriter {
 public:
  virtual ~PeerWriter() = default;

  // Puts every pair in one transaction and commits it in the store's mode: when it returns OK the
  // transaction is visible to every other writer and as durable as the mode promises. Waits for
  // the other writers (each store serialises its writers).
  virtual absl::Status Commit(const KeyValue* puts, size_t n) = 0;
};

// One open database.
class PeerStore {
 public:
  virtual ~PeerStore() = default;

  // A writer for one thread. Called from one thread at a time.
  virtual absl::StatusOr<std::unique_ptr<PeerWriter>> NewWriter() = 0;

  // Makes everything committed so far durable, whatever the mode. The driver calls it after
  // loading, so that the timed run does not pay for the load's write-back.
  virtual absl::Status SyncAll() = 0;
};

// A store in one mode, as a driver lists it.
struct PeerMode {
  std::string store;  // "mapkv", "LMDB", "SQLite"
  std::string mode;   // "kSync", "MDB_NOSYNC", "WAL synchronous=FULL"
  SyncClass sync_class;
  std::string power_cut;  // what a power cut loses, in a few words
  // Opens a new database in `dir`, an empty directory.
  std::function<absl::StatusOr<std::unique_ptr<PeerStore>>(const std::string& dir)> open;
};

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_PEER_STORE_H_
