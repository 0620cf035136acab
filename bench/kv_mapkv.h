// mapkv behind the KvStore interface (bench/kv_store.h), in two rows:
//   "mapkv"          Options' defaults: a 1 MiB file that grows by a quarter at a time and a
//                    1,024-slot index that doubles when 3/4 full (rehashed; outgrown tables stay
//                    in the file as garbage until compaction).
//   "mapkv presized" initial_index_slots = 2 x the expected keys and initial_file_size for the
//                    data set, as tkrzw's num_buckets and Kyoto's bnum are set for theirs.
// Both: Durability::kNone (no flush per commit; Sync() is Checkpoint(), msync + fsync), checksums
// verified on every Get (the default). Put and Delete are one-write transactions (DB::Put,
// DB::Delete); Get is DB::Get into the caller's string (optimistic, copies the value); MultiGet is
// DB::MultiGet; Scan is a ReadTxn's ForEach; Load is WriteTxns of 10,000 puts; Compact is
// mapkv::Compact in place (the handle is closed for it and reopened). GetOrCompute is
// mapkv::Cache::GetOrCompute (compute once across processes) on a cache file beside the database
// (<path>.cache), which each handle opens at its first call. Every process opens the file
// for reading and writing (a read-only handle of a writable file is the same handle, minus writes).
#ifndef MAPKV_BENCH_KV_MAPKV_H_
#define MAPKV_BENCH_KV_MAPKV_H_

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/kv_store.h"
#include "mapkv/cache.h"
#include "mapkv/compact.h"
#include "mapkv/db.h"
#include "mapkv/options.h"

namespace mapkv::bench {

class MapkvKv : public KvStore {
 public:
  MapkvKv(std::string path, Options options, std::unique_ptr<DB> db, uint64_t cache_capacity)
      : path_(std::move(path)),
        options_(std::move(options)),
        cache_capacity_(cache_capacity),
        db_(std::move(db)) {}

  absl::Status Put(std::string_view key, std::string_view value) override {
    return db_->Put(key, value);
  }

  absl::Status Get(std::string_view key, std::string* value) override {
    return db_->Get(key, value);
  }

  absl::Status Delete(std::string_view key) override { return db_->Delete(key); }

  absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view, std::string_view)> fn) override {
    absl::StatusOr<ReadTxn> txn = db_->BeginRead();
    if (!txn.ok()) return txn.status();
    uint64_t n = 0;
    absl::Status s = txn->ForEach([&](std::string_view k, std::string_view v) {
      fn(k, v);
      ++n;
      return true;
    });
    if (!s.ok()) return s;
    return n;
  }

  absl::Status Load(absl::Span<const KvPair> pairs) override {
    for (size_t start = 0; start < pairs.size(); start += 10'000) {
      absl::StatusOr<WriteTxn> txn = db_->BeginWrite();
      if (!txn.ok()) return txn.status();
      for (size_t i = start; i < std::min(pairs.size(), start + 10'000); ++i) {
        if (absl::Status s = txn->Put(pairs[i].key, pairs[i].value); !s.ok()) return s;
      }
      if (absl::Status s = txn->Commit(); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status MultiGet(absl::Span<const std::string_view> keys, std::vector<std::string>* values,
                        size_t* found) override {
    if (absl::Status s = db_->MultiGet(keys, &results_); !s.ok()) return s;
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

  absl::Status Sync() override { return db_->Checkpoint(); }

  absl::Status Compact() override {
    db_.reset();
    absl::StatusOr<CompactResult> r = mapkv::Compact(path_, path_);
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(path_, options_);
    if (!db.ok()) return db.status();
    db_ = *std::move(db);
    return r.status();
  }

 private:
  std::string path_;
  Options options_;
  uint64_t cache_capacity_;
  std::unique_ptr<DB> db_;
  std::unique_ptr<Cache> cache_;
  std::vector<absl::StatusOr<std::string>> results_;
};

// `presized`: the index and the file sized for `expected_keys` pairs of 16-byte keys and
// 100-byte values (records are 144 bytes with their header).
// `cache_capacity`: read when a store is created, the capacity of its cache file (mp-cache).
inline StoreKind MapkvKind(bool presized, const uint64_t* cache_capacity) {
  StoreKind kind;
  kind.name = presized ? "mapkv presized" : "mapkv";
  kind.settings = presized ? "kNone; initial_index_slots = 2 x keys, initial_file_size for the data"
                           : "kNone; Options' defaults (1 MiB file, 1,024 slots, growing)";
  kind.caps = {.multi_reader = true, .reader_with_writer = true, .on_disk = true};
  kind.create = [presized, cache_capacity](
                    const std::string& dir,
                    uint64_t expected_keys) -> absl::StatusOr<std::unique_ptr<KvBackend>> {
    Options options;
    options.durability = Durability::kNone;
    if (presized) {
      options.initial_index_slots = 2 * expected_keys;
      options.initial_file_size = expected_keys * 160 + 32 * expected_keys + (1 << 20);
    }
    return std::make_unique<FileBackend>(
        dir + "/bench.mapkv",
        [options, capacity = *cache_capacity](
            const std::string& path, Access access) -> absl::StatusOr<std::unique_ptr<KvStore>> {
          Options o = options;
          o.error_if_exists = access == Access::kCreate;
          absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(path, o);
          if (!db.ok()) return db.status();
          return std::make_unique<MapkvKv>(path, options, *std::move(db), capacity);
        });
  };
  return kind;
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_KV_MAPKV_H_
