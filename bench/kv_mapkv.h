// mapkv behind the KvStore interface (bench/kv_store.h).
//
// The peer benchmark's two kinds:
//   "mapkv"          Options' defaults: a 1 MiB file that grows by a quarter at a time and a
//                    1,024-slot index that doubles when 3/4 full (rehashed; outgrown tables stay
//                    in the file as garbage until compaction).
//   "mapkv presized" initial_index_slots = 2 x the expected keys and initial_file_size for the
//                    data set, as tkrzw's num_buckets and Kyoto's bnum are set for theirs.
// Both: Durability::kNone (no flush per commit; Sync() is Checkpoint(), msync + fsync), checksums
// verified on every Get (the default).
//
// The durability benchmark's three kinds, one per mode, each on Options' defaults but for
// `durability`:
//   kNone      Commit() returns once the index is published; the page cache holds the records.
//   kPeriodic  as kNone, plus a Checkpoint() (msync + fsync of everything) by the commit that
//              finds checkpoint_interval (1 s) passed or checkpoint_bytes (64 MiB) appended.
//   kSync      Commit() msyncs (MS_SYNC) the pages holding its records before it publishes them;
//              the index is not flushed (it is rebuilt from the log after a power cut).
//
// Calls: Put and Delete are one-write transactions (DB::Put, DB::Delete); Commit of one pair is
// DB::Put, of more a WriteTxn; Get is DB::Get into the caller's string (optimistic, copies the
// value); MultiGet is DB::MultiGet; Scan is a ReadTxn's ForEach; BeginSnapshot is a ReadTxn (a
// snapshot that holds no lock); Load is WriteTxns of 10,000 puts; Compact is mapkv::Compact in
// place (the DB is closed for it and reopened); CompactOnline is mapkv::Compact in place with the
// handle open (online compaction of a format version 4 file); BytesWritten is Stats::bytes_written
// (the log bytes written over the database's life, compactions' copies included). GetOrCompute
// is mapkv::Cache::GetOrCompute (compute once across processes) on a cache file beside the database
// (<path>.cache), which each handle opens at its first call.
//
// Processes and threads: every process opens the file for reading and writing (a read-only handle
// of a writable file is the same handle, minus writes), once: the handles of a process share one
// DB (thread-safe; it serialises its own writers before they take the cross-process writer lock),
// as an application's threads would.
#ifndef MAPKV_BENCH_KV_MAPKV_H_
#define MAPKV_BENCH_KV_MAPKV_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bench/kv_store.h"
#include "bench/per_process_db.h"
#include "mapkv/cache.h"
#include "mapkv/compact.h"
#include "mapkv/db.h"
#include "mapkv/options.h"

namespace mapkv::bench {

// The process's one open DB, shared by its handles.
struct MapkvDb {
  std::unique_ptr<DB> db;
  bool writable = true;  // every handle reads and writes (PerProcessDb asks)
};

class MapkvSnapshot : public KvSnapshot {
 public:
  explicit MapkvSnapshot(ReadTxn txn) : txn_(std::move(txn)) {}

  absl::Status Get(std::string_view key, std::string* value) override {
    absl::StatusOr<std::string_view> got = txn_.Get(key);
    if (!got.ok()) return got.status();
    value->assign(got->data(), got->size());
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view, std::string_view)> fn) override {
    uint64_t n = 0;
    absl::Status s = txn_.ForEach([&](std::string_view k, std::string_view v) {
      fn(k, v);
      ++n;
      return true;
    });
    if (!s.ok()) return s;
    return n;
  }

 private:
  ReadTxn txn_;
};

class MapkvKv : public KvStore {
 public:
  static constexpr size_t kLoadBatch = 10'000;

  MapkvKv(std::string path, Options options, std::shared_ptr<MapkvDb> db, uint64_t cache_capacity)
      : path_(std::move(path)),
        options_(std::move(options)),
        cache_capacity_(cache_capacity),
        db_(std::move(db)) {}

  absl::Status Put(std::string_view key, std::string_view value) override {
    return db()->Put(key, value);
  }

  absl::Status Get(std::string_view key, std::string* value) override {
    return db()->Get(key, value);
  }

  absl::Status Delete(std::string_view key) override { return db()->Delete(key); }

  absl::Status Commit(absl::Span<const KvPair> puts) override {
    if (puts.size() == 1) return db()->Put(puts[0].key, puts[0].value);
    return CommitTxn(puts);
  }

  absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view, std::string_view)> fn) override {
    absl::StatusOr<ReadTxn> txn = db()->BeginRead();
    if (!txn.ok()) return txn.status();
    return MapkvSnapshot(*std::move(txn)).Scan(fn);
  }

  absl::StatusOr<std::unique_ptr<KvSnapshot>> BeginSnapshot() override {
    absl::StatusOr<ReadTxn> txn = db()->BeginRead();
    if (!txn.ok()) return txn.status();
    return std::unique_ptr<KvSnapshot>(new MapkvSnapshot(*std::move(txn)));
  }

  absl::Status Load(absl::Span<const KvPair> pairs) override {
    for (size_t start = 0; start < pairs.size(); start += kLoadBatch) {
      if (absl::Status s = CommitTxn(pairs.subspan(start, kLoadBatch)); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status MultiGet(absl::Span<const std::string_view> keys, std::vector<std::string>* values,
                        size_t* found) override {
    if (absl::Status s = db()->MultiGet(keys, &results_); !s.ok()) return s;
    values->resize(keys.size());
    *found = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (results_[i].ok()) {
        (*values)[i].swap(*results_[i]);  // hands the buffers back and forth: no copy
        ++*found;
      }
    }
    return absl::OkStatus();
  }

  absl::Status GetOrCompute(std::string_view key, absl::FunctionRef<std::string_view()> compute,
                            std::string* value, bool* computed) override {
    if (cache_ == nullptr) {
      CacheOptions options;
      options.db = options_;
      options.db.error_if_exists = false;
      options.capacity = cache_capacity_;
      absl::StatusOr<std::unique_ptr<Cache>> cache = Cache::Open(path_ + ".cache", options);
      if (!cache.ok()) return cache.status();
      cache_ = *std::move(cache);
    }
    *computed = false;
    absl::StatusOr<std::string> got =
        cache_->GetOrCompute(key, Ttl{0}, [&]() -> absl::StatusOr<std::string> {
          *computed = true;
          return std::string(compute());
        });
    if (!got.ok()) return got.status();
    value->swap(*got);
    return absl::OkStatus();
  }

  absl::Status Sync() override { return db()->Checkpoint(); }

  // The log bytes written over the database's life (Stats::bytes_written): records, and a new
  // index table when the index grows, by commits and by the copies of the compactions in place
  // (started by commits, Options::compact_ratio, or by CompactOnline), whose file carries the
  // count on. The index slots a commit rewrites in place are not counted.
  uint64_t BytesWritten() override { return db()->GetStats().bytes_written; }

  // mapkv::Compact in place while this handle stays open; the handle moves to the new file at its
  // next call.
  absl::Status CompactOnline() override { return mapkv::Compact(path_, "").status(); }

  // Closes the process's DB, compacts the file in place and reopens it: only the process's one
  // handle may do it.
  absl::Status Compact() override {
    if (db_.use_count() > 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          path_, ": other handles of this process hold the DB; Compact needs it closed"));
    }
    db_->db.reset();
    absl::StatusOr<CompactResult> r = mapkv::Compact(path_, path_);
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(path_, options_);
    if (!db.ok()) return db.status();
    db_->db = *std::move(db);
    return r.status();
  }

 private:
  DB* db() const { return db_->db.get(); }

  absl::Status CommitTxn(absl::Span<const KvPair> puts) {
    absl::StatusOr<WriteTxn> txn = db()->BeginWrite();
    if (!txn.ok()) return txn.status();
    for (const KvPair& p : puts) {
      if (absl::Status s = txn->Put(p.key, p.value); !s.ok()) return s;
    }
    return txn->Commit();
  }

  std::string path_;
  Options options_;
  uint64_t cache_capacity_;
  std::shared_ptr<MapkvDb> db_;
  std::unique_ptr<Cache> cache_;
  std::vector<absl::StatusOr<std::string>> results_;
};

// Handles on <dir>/bench.mapkv opened with `options` (error_if_exists for Access::kCreate), one DB
// per process.
class MapkvBackend : public KvBackend {
 public:
  MapkvBackend(std::string path, Options options, uint64_t cache_capacity)
      : path_(std::move(path)), options_(std::move(options)), cache_capacity_(cache_capacity) {}

  absl::StatusOr<std::unique_ptr<KvStore>> Open(Access access) override {
    absl::StatusOr<std::shared_ptr<MapkvDb>> db = db_.Get(
        true, absl::StrCat("mapkv on ", path_), [&]() -> absl::StatusOr<std::shared_ptr<MapkvDb>> {
          Options o = options_;
          o.error_if_exists = access == Access::kCreate;
          absl::StatusOr<std::unique_ptr<DB>> opened = DB::Open(path_, o);
          if (!opened.ok()) return opened.status();
          auto shared = std::make_shared<MapkvDb>();
          shared->db = *std::move(opened);
          return shared;
        });
    if (!db.ok()) return db.status();
    return std::unique_ptr<KvStore>(new MapkvKv(path_, options_, *std::move(db), cache_capacity_));
  }

 private:
  const std::string path_;
  const Options options_;
  const uint64_t cache_capacity_;
  PerProcessDb<MapkvDb> db_;
};

// Options a benchmark's flags may set; unset (negative, or empty) ones keep Options' defaults.
struct MapkvTuning {
  double compact_ratio = -1;
  std::optional<uint64_t> compact_min_garbage;
};

// `presized`: the index and the file sized for `expected_keys` pairs of 16-byte keys and
// 100-byte values (records are 152 bytes with their header).
// `cache_capacity`: read when a store is created, the capacity of its cache file (mp-cache).
// `tuning`: read when a store is created, like `cache_capacity`.

inline StoreKind MapkvKind(bool presized, const uint64_t* cache_capacity,
                           const MapkvTuning* tuning) {
  StoreKind kind;
  kind.name = presized ? "mapkv presized" : "mapkv";
  kind.settings = presized ? "kNone; initial_index_slots = 2 x keys, initial_file_size for the data"
                           : "kNone; Options' defaults (1 MiB file, 1,024 slots, growing)";
  kind.caps = {.multi_reader = true, .reader_with_writer = true, .on_disk = true};
  kind.create = [presized, cache_capacity, tuning](
                    const std::string& dir,
                    uint64_t expected_keys) -> absl::StatusOr<std::unique_ptr<KvBackend>> {
    Options options;
    options.durability = Durability::kNone;
    if (tuning->compact_ratio >= 0) options.compact_ratio = tuning->compact_ratio;
    if (tuning->compact_min_garbage) options.compact_min_garbage = *tuning->compact_min_garbage;
    if (presized) {
      options.initial_index_slots = 2 * expected_keys;
      options.initial_file_size = expected_keys * 160 + 32 * expected_keys + (1 << 20);
    }
    return std::make_unique<MapkvBackend>(dir + "/bench.mapkv", options, *cache_capacity);
  };
  return kind;
}

// One kind per durability mode, for the durability benchmark.
inline std::vector<StoreKind> MapkvDurabilityKinds() {
  auto kind = [](Durability durability, std::string mode, SyncClass sync_class,
                 std::string power_cut) {
    StoreKind k;
    k.name = "mapkv";
    k.mode = std::move(mode);
    k.settings = absl::StrCat(k.mode, "; Options' defaults");
    k.sync_class = sync_class;
    k.power_cut = std::move(power_cut);
    k.caps = {.multi_reader = true, .reader_with_writer = true, .on_disk = true};
    k.create = [durability](const std::string& dir,
                            uint64_t) -> absl::StatusOr<std::unique_ptr<KvBackend>> {
      Options options;
      options.durability = durability;
      return std::make_unique<MapkvBackend>(dir + "/bench.mapkv", options, CacheOptions().capacity);
    };
    return k;
  };
  return {
      kind(Durability::kNone, "kNone", SyncClass::kNone, "all since the last Checkpoint()"),
      kind(Durability::kPeriodic, "kPeriodic", SyncClass::kPeriodic, "up to 1 s or 64 MiB"),
      kind(Durability::kSync, "kSync", SyncClass::kSync, "nothing"),
  };
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_KV_MAPKV_H_
