// mapkv behind the PeerStore interface (bench/peer_store.h).
//
// Settings: one file (bench.mapkv) opened once with Options' defaults (1 MiB to start, doubling;
// checksums verified on Get) but for `durability`; the DB handle is shared by every writer thread
// (a handle serialises its write transactions, and the cross-process writer lock serialises
// handles). A one-put commit is DB::Put, the API's one-write transaction; a larger commit is a
// WriteTxn. Modes:
//   kNone      Commit() returns once the index is published; the page cache holds the records.
//   kPeriodic  as kNone, plus a Checkpoint() (msync + fsync of everything) by the commit that
//              finds checkpoint_interval (1 s) passed or checkpoint_bytes (64 MiB) appended.
//   kSync      Commit() msyncs (MS_SYNC) the pages holding its records before it publishes them;
//              the index is not flushed (it is rebuilt from the log after a power cut).
#ifndef MAPKV_BENCH_PEER_STORE_MAPKV_H_
#define MAPKV_BENCH_PEER_STORE_MAPKV_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/peer_store.h"
#include "mapkv/db.h"
#include "mapkv/options.h"

namespace mapkv::bench {

class MapkvWriter : public PeerWriter {
 public:
  explicit MapkvWriter(DB* db) : db_(db) {}

  absl::Status Commit(const KeyValue* puts, size_t n) override {
    if (n == 1) return db_->Put(puts[0].key, puts[0].value);
    absl::StatusOr<WriteTxn> txn = db_->BeginWrite();
    if (!txn.ok()) return txn.status();
    for (size_t i = 0; i < n; ++i) {
      if (absl::Status s = txn->Put(puts[i].key, puts[i].value); !s.ok()) return s;
    }
    return txn->Commit();
  }

 private:
  DB* db_;
};

class MapkvStore : public PeerStore {
 public:
  static absl::StatusOr<std::unique_ptr<PeerStore>> Open(const std::string& dir,
                                                         Durability durability) {
    Options options;
    options.error_if_exists = true;
    options.durability = durability;
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(dir + "/bench.mapkv", options);
    if (!db.ok()) return db.status();
    return std::unique_ptr<PeerStore>(new MapkvStore(*std::move(db)));
  }

  absl::StatusOr<std::unique_ptr<PeerWriter>> NewWriter() override {
    return std::unique_ptr<PeerWriter>(new MapkvWriter(db_.get()));
  }

  absl::Status SyncAll() override { return db_->Checkpoint(); }

 private:
  explicit MapkvStore(std::unique_ptr<DB> db) : db_(std::move(db)) {}
  std::unique_ptr<DB> db_;
};

inline std::vector<PeerMode> MapkvModes() {
  auto open = [](Durability durability) {
    return [durability](const std::string& dir) { return MapkvStore::Open(dir, durability); };
  };
  return {
      {"mapkv", "kNone", SyncClass::kNone, "all since the last Checkpoint()",
       open(Durability::kNone)},
      {"mapkv", "kPeriodic", SyncClass::kPeriodic, "up to 1 s or 64 MiB",
       open(Durability::kPeriodic)},
      {"mapkv", "kSync", SyncClass::kSync, "nothing", open(Durability::kSync)},
  };
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_PEER_STORE_MAPKV_H_
