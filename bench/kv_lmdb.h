// LMDB (liblmdb 0.9) behind the KvStore interface (bench/kv_store.h).
//
// Settings, after LMDB's own advice for this workload: one environment (data.mdb, lock.mdb) with a
// 64 GiB map, the unnamed B+tree database, MDB_NOSYNC (no flush at commit, as mapkv's kNone;
// Sync() is mdb_env_sync(force)) and MDB_WRITEMAP (a commit writes its pages in the shared
// mapping instead of with pwrite: several times faster for small commits on a data set in RAM;
// the file is then as long as the map, sparse, and the driver reports the disk space it takes).
// Put and Delete are one write transaction each. Get keeps one
// read-only transaction per handle and mdb_txn_renew()s / mdb_txn_reset()s it around each lookup
// (LMDB's recommended way to run many short reads: no allocation per read), copying the value out
// before the reset. Scan is a cursor walk in one read transaction; Load is write transactions of
// 10,000 puts. Compact copies with mdb_env_copy2(MDB_CP_COMPACT) and swaps the file in.
// Multi-process: every process opens the environment itself; readers (MDB_RDONLY) and one writer
// run together, as LMDB is designed to.
#ifndef MAPKV_BENCH_KV_LMDB_H_
#define MAPKV_BENCH_KV_LMDB_H_

#include <lmdb.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bench/kv_store.h"
#include "bench/peer_store_lmdb.h"

namespace mapkv::bench {

class LmdbKv : public KvStore {
 public:
  static absl::StatusOr<std::unique_ptr<KvStore>> Open(const std::string& dir, Access access) {
    std::unique_ptr<LmdbKv> kv(new LmdbKv(dir));
    if (absl::Status s = kv->OpenEnv(access == Access::kRead); !s.ok()) return s;
    return std::unique_ptr<KvStore>(std::move(kv));
  }

  ~LmdbKv() override { CloseEnv(); }

  absl::Status Put(std::string_view key, std::string_view value) override {
    KvPair pair{key, value};
    return Write(absl::MakeConstSpan(&pair, 1), false);
  }

  absl::Status Delete(std::string_view key) override {
    KvPair pair{key, {}};
    return Write(absl::MakeConstSpan(&pair, 1), true);
  }

  absl::Status Load(absl::Span<const KvPair> pairs) override {
    for (size_t start = 0; start < pairs.size(); start += 10'000) {
      if (absl::Status s = Write(pairs.subspan(start, 10'000), false); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status Get(std::string_view key, std::string* value) override {
    if (int rc = RenewReader(); rc != 0) return LmdbError(rc, "mdb_txn_renew");
    MDB_val k = LmdbVal(key), v;
    int rc = mdb_get(reader_, dbi_, &k, &v);
    if (rc == 0) value->assign(static_cast<const char*>(v.mv_data), v.mv_size);
    mdb_txn_reset(reader_);
    if (rc == MDB_NOTFOUND) return absl::NotFoundError("LMDB: key not found");
    if (rc != 0) return LmdbError(rc, "mdb_get");
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view, std::string_view)> fn) override {
    if (int rc = RenewReader(); rc != 0) return LmdbError(rc, "mdb_txn_renew");
    MDB_cursor* cursor = nullptr;
    if (int rc = mdb_cursor_open(reader_, dbi_, &cursor); rc != 0) {
      mdb_txn_reset(reader_);
      return LmdbError(rc, "mdb_cursor_open");
    }
    uint64_t n = 0;
    MDB_val k, v;
    int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT), ++n) {
      fn(std::string_view(static_cast<const char*>(k.mv_data), k.mv_size),
         std::string_view(static_cast<const char*>(v.mv_data), v.mv_size));
    }
    mdb_cursor_close(cursor);
    mdb_txn_reset(reader_);
    if (rc != MDB_NOTFOUND) return LmdbError(rc, "mdb_cursor_get");
    return n;
  }

  absl::Status Sync() override {
    if (int rc = mdb_env_sync(env_, 1); rc != 0) return LmdbError(rc, "mdb_env_sync");
    return absl::OkStatus();
  }

  absl::Status Compact() override {
    const std::string copy_dir = dir_ + "/compact";
    std::error_code ec;
    std::filesystem::create_directory(copy_dir, ec);
    if (ec) return absl::InternalError(absl::StrCat(copy_dir, ": ", ec.message()));
    if (int rc = mdb_env_copy2(env_, copy_dir.c_str(), MDB_CP_COMPACT); rc != 0) {
      return LmdbError(rc, "mdb_env_copy2");
    }
    CloseEnv();
    std::filesystem::rename(copy_dir + "/data.mdb", dir_ + "/data.mdb", ec);
    std::filesystem::remove_all(copy_dir);
    if (ec) return absl::InternalError(absl::StrCat(dir_, "/data.mdb: ", ec.message()));
    return OpenEnv(false);
  }

 private:
  explicit LmdbKv(std::string dir) : dir_(std::move(dir)) {}

  absl::Status OpenEnv(bool read_only) {
    if (int rc = mdb_env_create(&env_); rc != 0) return LmdbError(rc, "mdb_env_create");
    if (int rc = mdb_env_set_mapsize(env_, LmdbStore::kMapSize); rc != 0) {
      return LmdbError(rc, "mdb_env_set_mapsize");
    }
    const unsigned int flags = read_only ? MDB_RDONLY : MDB_NOSYNC | MDB_WRITEMAP;
    if (int rc = mdb_env_open(env_, dir_.c_str(), flags, 0644); rc != 0) {
      return LmdbError(rc, "mdb_env_open");
    }
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env_, nullptr, read_only ? MDB_RDONLY : 0, &txn); rc != 0) {
      return LmdbError(rc, "mdb_txn_begin");
    }
    if (int rc = mdb_dbi_open(txn, nullptr, 0, &dbi_); rc != 0) {
      mdb_txn_abort(txn);
      return LmdbError(rc, "mdb_dbi_open");
    }
    if (int rc = mdb_txn_commit(txn); rc != 0) return LmdbError(rc, "mdb_txn_commit");
    return absl::OkStatus();
  }

  void CloseEnv() {
    if (reader_ != nullptr) mdb_txn_abort(std::exchange(reader_, nullptr));
    if (env_ != nullptr) mdb_env_close(std::exchange(env_, nullptr));
  }

  int RenewReader() {
    if (reader_ != nullptr) return mdb_txn_renew(reader_);
    return mdb_txn_begin(env_, nullptr, MDB_RDONLY, &reader_);
  }

  absl::Status Write(absl::Span<const KvPair> pairs, bool del) {
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env_, nullptr, 0, &txn); rc != 0) {
      return LmdbError(rc, "mdb_txn_begin");
    }
    for (const KvPair& p : pairs) {
      MDB_val k = LmdbVal(p.key), v = LmdbVal(p.value);
      int rc = del ? mdb_del(txn, dbi_, &k, nullptr) : mdb_put(txn, dbi_, &k, &v, 0);
      if (rc != 0 && !(del && rc == MDB_NOTFOUND)) {
        mdb_txn_abort(txn);
        return LmdbError(rc, del ? "mdb_del" : "mdb_put");
      }
    }
    if (int rc = mdb_txn_commit(txn); rc != 0) return LmdbError(rc, "mdb_txn_commit");
    return absl::OkStatus();
  }

  std::string dir_;
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
  MDB_txn* reader_ = nullptr;  // reset between Gets
};

inline StoreKind LmdbKind() {
  StoreKind kind;
  kind.name = "LMDB";
  kind.settings =
      absl::StrCat(MDB_VERSION_STRING, "; MDB_NOSYNC | MDB_WRITEMAP, 64 GiB map, renewed read txn");
  kind.caps = {.multi_reader = true, .reader_with_writer = true, .on_disk = true};
  kind.create = [](const std::string& dir, uint64_t) -> absl::StatusOr<std::unique_ptr<KvBackend>> {
    return std::make_unique<FileBackend>(dir, LmdbKv::Open);
  };
  return kind;
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_KV_LMDB_H_
