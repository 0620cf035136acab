// LevelDB (libleveldb, 1.23 on Debian 12) behind the KvStore interface (bench/kv_store.h).
//
// Settings, LevelDB's best practice for random point reads and writes of small pairs (the
// benchmark's 16-byte keys and 100-byte values, about 1M keys) on a data set that fits in RAM:
//   filter_policy      NewBloomFilterPolicy(10): 10 bits per key, about 1% false positives, so
//                      a lookup reads one data block per hit and almost none per miss.
//   block_cache        NewLRUCache(1 GiB): generous on purpose. The data set (about 130 MB) fits,
//                      so after warm-up every block is served from the cache, as every page of
//                      mapkv and LMDB is served from the page cache: the benchmark measures the
//                      stores in RAM, not the disk. It is a capacity, not an allocation.
//   write_buffer_size  64 MiB (default 4 MiB): fewer, larger level-0 files, fewer compactions.
//   max_file_size      64 MiB (default 2 MiB): fewer table files to open and search.
//   compression        kNoCompression (default snappy): mapkv and LMDB store raw bytes, and the
//                      benchmark's values are random, which snappy cannot shrink (LevelDB would
//                      store them raw after paying for the attempt).
//   block_size, max_open_files (1000: every file stays open), paranoid_checks: defaults.
// `expected_keys` is unused: an LSM tree has nothing to size up front.
//
// Modes. WriteOptions::sync = false: every Put, Delete and Load batch is one DB::Put, DB::Delete
// or DB::Write, appended to the log file with write() but not flushed, so it survives a process
// crash and a power cut may lose it. Load writes WriteBatches of 1,000 pairs. Sync() is a synced
// empty DB::Write, which fsyncs the log (table files and the MANIFEST are always fsynced when
// written). Get reads with default ReadOptions (no checksum verification, blocks enter the
// cache); MultiGet is Unimplemented (LevelDB has no batched lookup); Scan iterates with
// fill_cache = false. Compact() is CompactRange(nullptr, nullptr), a manual compaction of the
// whole key range, then a synced empty write, which returns the error of a failed compaction.
//
// Processes. The directory holds one LOCK file (fcntl lock): one handle at a time, in one
// process, so both caps are false; a second DB::Open fails with an IO error naming the LOCK
// file. LevelDB has no read-only mode, so Access::kRead opens for writing like kWrite.
//
// Fork. LevelDB's default Env runs compactions on one background thread started on first use,
// and a forked child inherits the Env as "started" without the thread: a compaction scheduled in
// the child would never run, and closing the DB, which waits for it, would hang. So each handle
// gives LevelDB its own Env (LevelDbHandleEnv, a wrapper of Env::Default() that runs scheduled
// work on a thread of the handle's own process, joined when the handle closes).
#ifndef MAPKV_BENCH_KV_LEVELDB_H_
#define MAPKV_BENCH_KV_LEVELDB_H_

#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/filter_policy.h>
#include <leveldb/iterator.h>
#include <leveldb/options.h>
#include <leveldb/slice.h>
#include <leveldb/status.h>
#include <leveldb/write_batch.h>

#include <algorithm>
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

inline absl::Status LevelDbError(const leveldb::Status& s, const char* call,
                                 const std::string& path) {
  std::string message = absl::StrCat("LevelDB ", call, " (", path, "): ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsNotSupportedError()) return absl::UnimplementedError(message);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  return absl::InternalError(message);  // IOError, a held LOCK file included
}

inline leveldb::Slice LevelDbSlice(std::string_view s) { return {s.data(), s.size()}; }

inline std::string_view LevelDbView(const leveldb::Slice& s) { return {s.data(), s.size()}; }

// Env::Default() with background work (compactions) run on a thread owned by this object, so that
// it exists in the process that uses the handle (see "Fork" above). LevelDB schedules at most one
// job at a time per DB; jobs run in order. The destructor runs what is queued and joins; the DB
// must be deleted first (DB's destructor waits for its scheduled job).
class LevelDbHandleEnv : public leveldb::EnvWrapper {
 public:
  LevelDbHandleEnv() : leveldb::EnvWrapper(leveldb::Env::Default()) {}

  ~LevelDbHandleEnv() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  void Schedule(void (*function)(void*), void* arg) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
      queue_.emplace_back(function, arg);
    }
    cv_.notify_one();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and nothing left
      auto [function, arg] = queue_.front();
      queue_.pop_front();
      lock.unlock();
      function(arg);
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<void (*)(void*), void*>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

class LevelDbStore : public KvStore {
 public:
  static constexpr size_t kBlockCacheBytes = size_t{1} << 30;
  static constexpr size_t kWriteBufferBytes = size_t{64} << 20;
  static constexpr size_t kMaxFileBytes = size_t{64} << 20;
  static constexpr int kBloomBitsPerKey = 10;
  static constexpr size_t kLoadBatch = 1000;

  static absl::StatusOr<std::unique_ptr<KvStore>> Open(const std::string& dir, Access access) {
    std::unique_ptr<LevelDbStore> store(new LevelDbStore(dir));
    leveldb::Options options;
    options.create_if_missing = access == Access::kCreate;
    options.error_if_exists = access == Access::kCreate;
    options.env = &store->env_;
    options.filter_policy = store->filter_.get();
    options.block_cache = store->cache_.get();
    options.write_buffer_size = kWriteBufferBytes;
    options.max_file_size = kMaxFileBytes;
    options.compression = leveldb::kNoCompression;
    leveldb::DB* db = nullptr;
    if (leveldb::Status s = leveldb::DB::Open(options, dir, &db); !s.ok()) {
      return LevelDbError(s, "DB::Open", dir);
    }
    store->db_.reset(db);
    return std::unique_ptr<KvStore>(std::move(store));
  }

  absl::Status Put(std::string_view key, std::string_view value) override {
    leveldb::Status s = db_->Put(write_options_, LevelDbSlice(key), LevelDbSlice(value));
    if (!s.ok()) return LevelDbError(s, "Put", dir_);
    return absl::OkStatus();
  }

  absl::Status Get(std::string_view key, std::string* value) override {
    leveldb::Status s = db_->Get(leveldb::ReadOptions(), LevelDbSlice(key), value);
    if (s.ok()) return absl::OkStatus();
    // A missing key is an expected answer, not a fault of the store: a short message.
    if (s.IsNotFound()) return absl::NotFoundError("LevelDB: key not found");
    return LevelDbError(s, "Get", dir_);
  }

  absl::Status Delete(std::string_view key) override {
    leveldb::Status s = db_->Delete(write_options_, LevelDbSlice(key));
    if (!s.ok()) return LevelDbError(s, "Delete", dir_);
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view key, std::string_view value)> fn) override {
    leveldb::ReadOptions options;
    options.fill_cache = false;
    std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(options));
    uint64_t n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      fn(LevelDbView(it->key()), LevelDbView(it->value()));
      ++n;
    }
    if (!it->status().ok()) return LevelDbError(it->status(), "Iterator", dir_);
    return n;
  }

  absl::Status Load(absl::Span<const KvPair> pairs) override {
    leveldb::WriteBatch batch;
    for (size_t begin = 0; begin < pairs.size(); begin += kLoadBatch) {
      batch.Clear();
      const size_t end = std::min(pairs.size(), begin + kLoadBatch);
      for (size_t i = begin; i < end; ++i) {
        batch.Put(LevelDbSlice(pairs[i].key), LevelDbSlice(pairs[i].value));
      }
      if (leveldb::Status s = db_->Write(write_options_, &batch); !s.ok()) {
        return LevelDbError(s, "Write", dir_);
      }
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    leveldb::WriteOptions options;
    options.sync = true;
    leveldb::WriteBatch empty;
    if (leveldb::Status s = db_->Write(options, &empty); !s.ok()) {
      return LevelDbError(s, "Write (sync)", dir_);
    }
    return absl::OkStatus();
  }

  absl::Status Compact() override {
    db_->CompactRange(nullptr, nullptr);
    // CompactRange reports nothing; a failed compaction leaves a background error that the next
    // write returns: surface it now with a synced empty write.
    return Sync();
  }

 private:
  explicit LevelDbStore(std::string dir)
      : dir_(std::move(dir)),
        filter_(leveldb::NewBloomFilterPolicy(kBloomBitsPerKey)),
        cache_(leveldb::NewLRUCache(kBlockCacheBytes)) {}

  std::string dir_;
  leveldb::WriteOptions write_options_;  // sync = false
  // Declared before db_, so destroyed after it: the DB uses all three.
  LevelDbHandleEnv env_;
  std::unique_ptr<const leveldb::FilterPolicy> filter_;
  std::unique_ptr<leveldb::Cache> cache_;
  std::unique_ptr<leveldb::DB> db_;
};

inline StoreKind LevelDbKind() {
  StoreKind kind;
  kind.name = "LevelDB";
  kind.settings = absl::StrCat(
      "LevelDB ", leveldb::kMajorVersion, ".", leveldb::kMinorVersion,
      ": bloom filter 10 bits/key, 1 GiB LRU block cache, 64 MiB write buffer, 64 MiB files, "
      "no compression, 4 KiB blocks; log written per write, not fsynced (sync=false); "
      "one process (LOCK file)");
  kind.caps.multi_reader = false;
  kind.caps.reader_with_writer = false;
  kind.caps.on_disk = true;
  kind.create = [](const std::string& dir,
                   uint64_t /*expected_keys*/) -> absl::StatusOr<std::unique_ptr<KvBackend>> {
    return std::make_unique<FileBackend>(dir, LevelDbStore::Open);
  };
  return kind;
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_KV_LEVELDB_H_
