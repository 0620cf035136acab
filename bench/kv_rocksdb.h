// RocksDB (librocksdb, 7.8 on Debian 12) behind the KvStore interface (bench/kv_store.h).
//
// Settings, RocksDB's best practice for random point reads and writes of small pairs (the
// benchmark's 16-byte keys and 100-byte values, about 1M keys) on a data set that fits in RAM;
// what ColumnFamilyOptions::OptimizeForPointLookup(1024) sets, spelled out, plus sizes:
//   table              BlockBasedTable, 4 KiB blocks (default), format_version 5 (default).
//     filter_policy    NewBloomFilterPolicy(10): full filters, 10 bits per key (about 1% false
//                      positives), so a lookup reads one data block per hit and almost none per
//                      miss; whole-key filtering (default).
//     block_cache      NewLRUCache(1 GiB): generous on purpose. The data set (about 130 MB) fits,
//                      so after warm-up every block is served from the cache, as every page of
//                      mapkv and LMDB is served from the page cache: the benchmark measures the
//                      stores in RAM, not the disk. It is a capacity, not an allocation.
//     data blocks      kDataBlockBinaryAndHash (util ratio 0.75): a hash index inside each data
//                      block, so a point lookup skips the binary search over restart points.
//     index, filters   outside the block cache (cache_index_and_filter_blocks = false, default),
//                      held by the table readers of files kept open (max_open_files = -1).
//   memtable           a whole-key bloom filter (memtable_prefix_bloom_size_ratio 0.02,
//                      memtable_whole_key_filtering), so a miss skips the memtable's skip list.
//   write_buffer_size  64 MiB, target_file_size_base 64 MiB (both RocksDB's defaults), leveled
//                      compaction, max_background_jobs 2 (default).
//   compression        kNoCompression at every level (default snappy): mapkv and LMDB store raw
//                      bytes, and the benchmark's values are random, which snappy cannot shrink.
//   ReadOptions        defaults: checksums verified when a block is read from its file (not on a
//                      block-cache hit); blocks enter the cache. Scan sets fill_cache = false.
// `expected_keys` is unused: an LSM tree has nothing to size up front.
//
// Modes. WAL on (the default) with WriteOptions::sync = false: every Put, Delete and Load batch is
// one DB::Put, DB::Delete or DB::Write, appended to the WAL with write() but not flushed, so it
// survives a process crash and a power cut may lose it. Load writes WriteBatches of 1,000 pairs.
// Sync() is DB::SyncWAL(), which fsyncs the WAL (table files and the MANIFEST are always fsynced
// when written). MultiGet is the batched DB::MultiGet (one column family, C arrays of Slice,
// PinnableSlice and Status), which sorts the keys and reads each block once. Compact() is
// CompactRange over the whole key range, the bottommost level rewritten too (kForceOptimized).
//
// Processes. Access::kCreate and kWrite open with DB::Open, which takes the directory's LOCK file:
// one such handle at a time. Access::kRead opens with DB::OpenForReadOnly, which takes no lock,
// so several processes may read at once (multi_reader); it sees the database as it was when
// opened, and RocksDB leaves a read-only instance beside a writer undefined, so no
// reader_with_writer (a secondary instance, DB::OpenAsSecondary, would follow a writer only when
// told to catch up, not at every write's return). A read-only open replays the WAL into a
// memtable of its own (up to one write buffer per process: RocksDB does not flush at close when
// the WAL is on); when the database is fully compacted (one level, empty WAL) it is RocksDB's
// CompactedDBImpl instead, which finds a key by binary search over the files. Writes and Compact
// on a kRead handle fail (FailedPrecondition); Sync on one is a no-op.
//
// Fork. RocksDB's default Env runs flushes and compactions on thread pools started on first use,
// and a forked child inherits the pools as started without their threads: a flush or compaction
// scheduled in the child would never run, writes would stall and closing would hang. So each
// handle gives RocksDB its own Env (RocksDbHandleEnv, a wrapper of Env::Default() whose pools run
// on threads of the handle's own process, joined when the handle closes).
//
// The directory also holds RocksDB's info LOG and OPTIONS files, counted in the on-disk size: every
// open, a read-only one included, renames the last LOG to LOG.old.<time> (10 to 40 KB each).
#ifndef MAPKV_BENCH_KV_ROCKSDB_H_
#define MAPKV_BENCH_KV_ROCKSDB_H_

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/status.h>
#include <rocksdb/table.h>
#include <rocksdb/version.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "bench/kv_store.h"

namespace mapkv::bench {

inline absl::Status RocksDbError(const rocksdb::Status& s, const char* call,
                                 const std::string& path) {
  std::string message = absl::StrCat("RocksDB ", call, " (", path, "): ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsNotSupported()) return absl::FailedPreconditionError(message);  // e.g. read-only
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) return absl::UnavailableError(message);
  return absl::InternalError(message);  // IOError, a held LOCK file included
}

inline rocksdb::Slice RocksDbSlice(std::string_view s) { return {s.data(), s.size()}; }

inline std::string_view RocksDbView(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

// Env::Default() with its background pools (BOTTOM, LOW, HIGH, USER) replaced by pools owned by
// this object, whose threads exist in the process that uses the handle (see "Fork" above). A pool
// starts its threads on first use, up to the number RocksDB asks for (at least one). UnSchedule
// removes queued jobs with the tag, as the default pools do, calling their unschedule function.
// The destructor stops and joins the threads; the DB must be closed first (closing waits for, or
// unschedules, every job it scheduled).
class RocksDbHandleEnv : public rocksdb::EnvWrapper {
 public:
  RocksDbHandleEnv() : rocksdb::EnvWrapper(rocksdb::Env::Default()) {}

  ~RocksDbHandleEnv() override {
    for (Pool& pool : pools_) {
      {
        std::lock_guard<std::mutex> lock(pool.mu);
        pool.stop = true;
      }
      pool.cv.notify_all();
      for (std::thread& t : pool.threads) t.join();
    }
  }

  const char* Name() const override { return "MapkvBenchRocksDbHandleEnv"; }

  void Schedule(void (*function)(void* arg), void* arg, Priority pri, void* tag,
                void (*unschedule)(void* arg)) override {
    Pool& pool = pools_[Index(pri)];
    {
      std::lock_guard<std::mutex> lock(pool.mu);
      pool.queue.push_back(Job{function, arg, tag, unschedule});
      const size_t want = static_cast<size_t>(std::max(pool.limit, 1));
      while (pool.threads.size() < want) {
        pool.threads.emplace_back([&pool] { RunPool(pool); });
      }
    }
    pool.cv.notify_one();
  }

  int UnSchedule(void* tag, Priority pri) override {
    Pool& pool = pools_[Index(pri)];
    std::vector<Job> removed;
    {
      std::lock_guard<std::mutex> lock(pool.mu);
      auto keep = std::stable_partition(pool.queue.begin(), pool.queue.end(),
                                        [tag](const Job& job) { return job.tag != tag; });
      removed.assign(keep, pool.queue.end());
      pool.queue.erase(keep, pool.queue.end());
    }
    for (const Job& job : removed) {
      if (job.unschedule != nullptr) job.unschedule(job.arg);
    }
    return static_cast<int>(removed.size());
  }

  unsigned int GetThreadPoolQueueLen(Priority pri) const override {
    const Pool& pool = pools_[Index(pri)];
    std::lock_guard<std::mutex> lock(pool.mu);
    return static_cast<unsigned int>(pool.queue.size());
  }

  void SetBackgroundThreads(int number, Priority pri) override {
    Pool& pool = pools_[Index(pri)];
    std::lock_guard<std::mutex> lock(pool.mu);
    pool.limit = number;  // threads beyond a lowered limit stay (idle) until the handle closes
  }

  int GetBackgroundThreads(Priority pri) override {
    Pool& pool = pools_[Index(pri)];
    std::lock_guard<std::mutex> lock(pool.mu);
    return pool.limit;
  }

  void IncBackgroundThreadsIfNeeded(int number, Priority pri) override {
    Pool& pool = pools_[Index(pri)];
    std::lock_guard<std::mutex> lock(pool.mu);
    pool.limit = std::max(pool.limit, number);
  }

  int ReserveThreads(int /*threads*/, Priority /*pri*/) override { return 0; }
  int ReleaseThreads(int /*threads*/, Priority /*pri*/) override { return 0; }
  void LowerThreadPoolIOPriority(Priority /*pool*/) override {}
  void LowerThreadPoolCPUPriority(Priority /*pool*/) override {}
  rocksdb::Status LowerThreadPoolCPUPriority(Priority /*pool*/,
                                             rocksdb::CpuPriority /*pri*/) override {
    return rocksdb::Status::OK();
  }

 private:
  struct Job {
    void (*function)(void*);
    void* arg;
    void* tag;
    void (*unschedule)(void*);
  };

  struct Pool {
    mutable std::mutex mu;
    std::condition_variable cv;
    std::deque<Job> queue;
    int limit = 0;
    bool stop = false;
    std::vector<std::thread> threads;
  };

  static size_t Index(Priority pri) {
    const int i = static_cast<int>(pri);
    return i >= 0 && i < static_cast<int>(Priority::TOTAL) ? static_cast<size_t>(i) : 1;
  }

  static void RunPool(Pool& pool) {
    std::unique_lock<std::mutex> lock(pool.mu);
    while (true) {
      pool.cv.wait(lock, [&pool] { return pool.stop || !pool.queue.empty(); });
      if (pool.stop) return;  // the DB is closed: nothing of it is left to run
      Job job = pool.queue.front();
      pool.queue.pop_front();
      lock.unlock();
      job.function(job.arg);
      lock.lock();
    }
  }

  std::array<Pool, static_cast<size_t>(Priority::TOTAL)> pools_;
};

class RocksDbStore : public KvStore {
 public:
  static constexpr size_t kBlockCacheBytes = size_t{1} << 30;
  static constexpr size_t kWriteBufferBytes = size_t{64} << 20;
  static constexpr uint64_t kTargetFileBytes = uint64_t{64} << 20;
  static constexpr double kBloomBitsPerKey = 10;
  static constexpr size_t kLoadBatch = 1000;

  static absl::StatusOr<std::unique_ptr<KvStore>> Open(const std::string& dir, Access access) {
    std::unique_ptr<RocksDbStore> store(new RocksDbStore(dir, access == Access::kRead));
    rocksdb::BlockBasedTableOptions table;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(kBloomBitsPerKey));
    table.block_cache = rocksdb::NewLRUCache(kBlockCacheBytes);
    table.data_block_index_type = rocksdb::BlockBasedTableOptions::kDataBlockBinaryAndHash;
    table.data_block_hash_table_util_ratio = 0.75;
    rocksdb::Options options;
    options.env = store->env_.get();
    options.create_if_missing = access == Access::kCreate;
    options.error_if_exists = access == Access::kCreate;
    options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    options.memtable_prefix_bloom_size_ratio = 0.02;
    options.memtable_whole_key_filtering = true;
    options.write_buffer_size = kWriteBufferBytes;
    options.target_file_size_base = kTargetFileBytes;
    options.compression = rocksdb::kNoCompression;
    options.bottommost_compression = rocksdb::kNoCompression;
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = access == Access::kRead ? rocksdb::DB::OpenForReadOnly(options, dir, &db)
                                                : rocksdb::DB::Open(options, dir, &db);
    if (!s.ok()) {
      return RocksDbError(s, access == Access::kRead ? "DB::OpenForReadOnly" : "DB::Open", dir);
    }
    store->db_.reset(db);
    return std::unique_ptr<KvStore>(std::move(store));
  }

  ~RocksDbStore() override {
    if (db_ != nullptr) db_->Close().PermitUncheckedError();  // then deleted, before env_
  }

  absl::Status Put(std::string_view key, std::string_view value) override {
    rocksdb::Status s = db_->Put(write_options_, RocksDbSlice(key), RocksDbSlice(value));
    if (!s.ok()) return RocksDbError(s, "Put", dir_);
    return absl::OkStatus();
  }

  absl::Status Get(std::string_view key, std::string* value) override {
    rocksdb::Status s =
        db_->Get(read_options_, db_->DefaultColumnFamily(), RocksDbSlice(key), value);
    if (s.ok()) return absl::OkStatus();
    // A missing key is an expected answer, not a fault of the store: a short message.
    if (s.IsNotFound()) return absl::NotFoundError("RocksDB: key not found");
    return RocksDbError(s, "Get", dir_);
  }

  absl::Status Delete(std::string_view key) override {
    rocksdb::Status s = db_->Delete(write_options_, RocksDbSlice(key));
    if (!s.ok()) return RocksDbError(s, "Delete", dir_);
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view key, std::string_view value)> fn) override {
    rocksdb::ReadOptions options;
    options.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options));
    uint64_t n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      fn(RocksDbView(it->key()), RocksDbView(it->value()));
      ++n;
    }
    if (!it->status().ok()) return RocksDbError(it->status(), "Iterator", dir_);
    return n;
  }

  absl::Status Load(absl::Span<const KvPair> pairs) override {
    rocksdb::WriteBatch batch;
    for (size_t begin = 0; begin < pairs.size(); begin += kLoadBatch) {
      batch.Clear();
      const size_t end = std::min(pairs.size(), begin + kLoadBatch);
      for (size_t i = begin; i < end; ++i) {
        rocksdb::Status s = batch.Put(RocksDbSlice(pairs[i].key), RocksDbSlice(pairs[i].value));
        if (!s.ok()) return RocksDbError(s, "WriteBatch::Put", dir_);
      }
      if (rocksdb::Status s = db_->Write(write_options_, &batch); !s.ok()) {
        return RocksDbError(s, "Write", dir_);
      }
    }
    return absl::OkStatus();
  }

  absl::Status MultiGet(absl::Span<const std::string_view> keys, std::vector<std::string>* values,
                        size_t* found) override {
    const size_t n = keys.size();
    slices_.resize(n);
    pinned_.resize(n);
    statuses_.resize(n);
    for (size_t i = 0; i < n; ++i) slices_[i] = RocksDbSlice(keys[i]);
    db_->MultiGet(read_options_, db_->DefaultColumnFamily(), n, slices_.data(), pinned_.data(),
                  statuses_.data(), /*sorted_input=*/false);
    values->resize(n);
    size_t hits = 0;
    absl::Status error;
    for (size_t i = 0; i < n; ++i) {
      if (statuses_[i].ok()) {
        (*values)[i].assign(pinned_[i].data(), pinned_[i].size());
        ++hits;
      } else if (!statuses_[i].IsNotFound() && error.ok()) {
        error = RocksDbError(statuses_[i], "MultiGet", dir_);
      }
      pinned_[i].Reset();  // releases the block-cache pin before the next call
    }
    *found = hits;
    return error;
  }

  absl::Status Sync() override {
    if (read_only_) return absl::OkStatus();  // nothing written through this handle
    if (rocksdb::Status s = db_->SyncWAL(); !s.ok()) return RocksDbError(s, "SyncWAL", dir_);
    return absl::OkStatus();
  }

  absl::Status Compact() override {
    rocksdb::CompactRangeOptions options;
    options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
    if (rocksdb::Status s = db_->CompactRange(options, nullptr, nullptr); !s.ok()) {
      return RocksDbError(s, "CompactRange", dir_);
    }
    return absl::OkStatus();
  }

 private:
  RocksDbStore(std::string dir, bool read_only)
      : dir_(std::move(dir)), read_only_(read_only), env_(new RocksDbHandleEnv) {}

  std::string dir_;
  bool read_only_;
  rocksdb::ReadOptions read_options_;
  rocksdb::WriteOptions write_options_;  // sync = false, WAL on
  // MultiGet's arrays, kept to reuse their capacity.
  std::vector<rocksdb::Slice> slices_;
  std::vector<rocksdb::PinnableSlice> pinned_;
  std::vector<rocksdb::Status> statuses_;
  // Declared before db_, so destroyed after it.
  std::unique_ptr<RocksDbHandleEnv> env_;
  std::unique_ptr<rocksdb::DB> db_;
};

inline StoreKind RocksDbKind() {
  StoreKind kind;
  kind.name = "RocksDB";
  kind.settings = absl::StrCat(
      "RocksDB ", ROCKSDB_MAJOR, ".", ROCKSDB_MINOR, ".", ROCKSDB_PATCH,
      ": leveled, bloom filter 10 bits/key, 1 GiB LRU block cache, data-block hash index, "
      "memtable bloom, 64 MiB write buffer, 64 MiB files, no compression; WAL written per "
      "write, not fsynced (sync=false); readers open read-only (several processes)");
  kind.caps.multi_reader = true;
  kind.caps.reader_with_writer = false;
  kind.caps.on_disk = true;
  kind.create = [](const std::string& dir,
                   uint64_t /*expected_keys*/) -> absl::StatusOr<std::unique_ptr<KvBackend>> {
    return std::make_unique<FileBackend>(dir, RocksDbStore::Open);
  };
  return kind;
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_KV_ROCKSDB_H_
