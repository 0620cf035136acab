// LMDB (liblmdb 0.9) behind the KvStore interface (bench/kv_store.h).
//
// Settings common to every kind: one environment (data.mdb, lock.mdb in the directory) with a
// 64 GiB map, the default page size, and the unnamed B+tree database.
//
// The peer benchmark's kind, after LMDB's own advice for its workload: MDB_NOSYNC (no flush at
// commit, as mapkv's kNone; Sync() is mdb_env_sync(force)) and MDB_WRITEMAP (a commit writes its
// pages in the shared mapping instead of with pwrite: several times faster for small commits on a
// data set in RAM; the file is then as long as the map, sparse, and the driver reports the disk
// space it takes).
//
// The durability benchmark's kinds, without MDB_WRITEMAP (a commit writes its dirty pages with
// pwrite), by the flags given to mdb_env_open:
//   MDB_NOSYNC      no flush at commit (matches mapkv kNone): survives a process crash; a power
//                   cut keeps what the last mdb_env_sync() kept, and may leave a corrupt file if
//                   the file system reorders writes.
//   MDB_NOMETASYNC  one flush per commit: fdatasync of the data pages, the meta page left to the
//                   next commit's flush, so a power cut may undo the last commit (between mapkv
//                   kPeriodic and kSync).
//   (none)          two flushes per commit: fdatasync of the data pages, then the meta page
//                   written through a descriptor opened O_DSYNC (matches mapkv kSync).
//
// Calls: Put, Delete and Commit are one write transaction each (mdb_txn_begin, mdb_put or mdb_del
// per pair, mdb_txn_commit; write transactions serialise on the environment's writer mutex, as
// mapkv's do on its writer lock). Get keeps one read-only transaction per handle and
// mdb_txn_renew()s / mdb_txn_reset()s it around each lookup (LMDB's recommended way to run many
// short reads: no allocation per read), copying the value out before the reset. Scan is a cursor
// walk in that transaction, renewed; BeginSnapshot renews it and keeps it until the snapshot ends
// (pages a commit frees are not reused while it lives: the file grows instead). Load is write
// transactions of 10,000 puts. Compact copies with mdb_env_copy2(MDB_CP_COMPACT) and swaps the
// file in.
//
// Processes and threads: every process opens the environment once (LMDB forbids a second open in
// one process), read-only (MDB_RDONLY) for a kRead handle; every handle of the process shares it,
// each with its own read transaction (LMDB binds a read transaction to its thread). Readers and
// one writer run together, as LMDB is designed to.
#ifndef MAPKV_BENCH_KV_LMDB_H_
#define MAPKV_BENCH_KV_LMDB_H_

#include <lmdb.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bench/kv_store.h"
#include "bench/per_process_db.h"

namespace mapkv::bench {

inline absl::Status LmdbError(int rc, const char* what) {
  return absl::InternalError(absl::StrCat("LMDB ", what, ": ", mdb_strerror(rc)));
}

inline MDB_val LmdbVal(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

inline constexpr size_t kLmdbMapSize = size_t{64} << 30;

// The process's one open environment, shared by its handles.
struct LmdbEnv {
  LmdbEnv(std::string env_dir, unsigned int env_flags)
      : dir(std::move(env_dir)), flags(env_flags) {}
  ~LmdbEnv() { Close(); }

  absl::Status Open() {
    if (int rc = mdb_env_create(&env); rc != 0) return LmdbError(rc, "mdb_env_create");
    if (int rc = mdb_env_set_mapsize(env, kLmdbMapSize); rc != 0) {
      return LmdbError(rc, "mdb_env_set_mapsize");
    }
    if (int rc = mdb_env_open(env, dir.c_str(), flags, 0644); rc != 0) {
      return LmdbError(rc, "mdb_env_open");
    }
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env, nullptr, flags & MDB_RDONLY, &txn); rc != 0) {
      return LmdbError(rc, "mdb_txn_begin");
    }
    if (int rc = mdb_dbi_open(txn, nullptr, 0, &dbi); rc != 0) {
      mdb_txn_abort(txn);
      return LmdbError(rc, "mdb_dbi_open");
    }
    if (int rc = mdb_txn_commit(txn); rc != 0) return LmdbError(rc, "mdb_txn_commit");
    return absl::OkStatus();
  }

  void Close() {
    if (env != nullptr) mdb_env_close(std::exchange(env, nullptr));
  }

  const std::string dir;
  const unsigned int flags;  // as given to mdb_env_open
  MDB_env* env = nullptr;
  MDB_dbi dbi = 0;
  bool writable = false;  // not MDB_RDONLY (PerProcessDb asks)
};

// A cursor walk of the whole database in `txn`.
inline absl::StatusOr<uint64_t> LmdbScan(
    MDB_txn* txn, MDB_dbi dbi, absl::FunctionRef<void(std::string_view, std::string_view)> fn) {
  MDB_cursor* cursor = nullptr;
  if (int rc = mdb_cursor_open(txn, dbi, &cursor); rc != 0) {
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
  if (rc != MDB_NOTFOUND) return LmdbError(rc, "mdb_cursor_get");
  return n;
}

// A lookup in `txn`, the value copied into *value.
inline absl::Status LmdbGet(MDB_txn* txn, MDB_dbi dbi, std::string_view key, std::string* value) {
  MDB_val k = LmdbVal(key), v;
  int rc = mdb_get(txn, dbi, &k, &v);
  if (rc == 0) {
    value->assign(static_cast<const char*>(v.mv_data), v.mv_size);
    return absl::OkStatus();
  }
  if (rc == MDB_NOTFOUND) return absl::NotFoundError("LMDB: key not found");
  return LmdbError(rc, "mdb_get");
}

// The handle's read transaction, renewed for the snapshot's life and reset at its end.
class LmdbSnapshot : public KvSnapshot {
 public:
  LmdbSnapshot(MDB_txn* txn, MDB_dbi dbi) : txn_(txn), dbi_(dbi) {}
  ~LmdbSnapshot() override { mdb_txn_reset(txn_); }

  absl::Status Get(std::string_view key, std::string* value) override {
    return LmdbGet(txn_, dbi_, key, value);
  }

  absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view, std::string_view)> fn) override {
    return LmdbScan(txn_, dbi_, fn);
  }

 private:
  MDB_txn* txn_;
  MDB_dbi dbi_;
};

class LmdbKv : public KvStore {
 public:
  static constexpr size_t kLoadBatch = 10'000;

  explicit LmdbKv(std::shared_ptr<LmdbEnv> env) : env_(std::move(env)) {}

  ~LmdbKv() override {
    if (reader_ != nullptr) mdb_txn_abort(reader_);
  }

  absl::Status Put(std::string_view key, std::string_view value) override {
    KvPair pair{key, value};
    return Write(absl::MakeConstSpan(&pair, 1), false);
  }

  absl::Status Delete(std::string_view key) override {
    KvPair pair{key, {}};
    return Write(absl::MakeConstSpan(&pair, 1), true);
  }

  absl::Status Commit(absl::Span<const KvPair> puts) override { return Write(puts, false); }

  absl::Status Load(absl::Span<const KvPair> pairs) override {
    for (size_t start = 0; start < pairs.size(); start += kLoadBatch) {
      if (absl::Status s = Write(pairs.subspan(start, kLoadBatch), false); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status Get(std::string_view key, std::string* value) override {
    if (int rc = RenewReader(); rc != 0) return LmdbError(rc, "mdb_txn_renew");
    absl::Status s = LmdbGet(reader_, env_->dbi, key, value);
    mdb_txn_reset(reader_);
    return s;
  }

  absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view, std::string_view)> fn) override {
    if (int rc = RenewReader(); rc != 0) return LmdbError(rc, "mdb_txn_renew");
    absl::StatusOr<uint64_t> n = LmdbScan(reader_, env_->dbi, fn);
    mdb_txn_reset(reader_);
    return n;
  }

  absl::StatusOr<std::unique_ptr<KvSnapshot>> BeginSnapshot() override {
    if (int rc = RenewReader(); rc != 0) return LmdbError(rc, "mdb_txn_renew");
    return std::unique_ptr<KvSnapshot>(new LmdbSnapshot(reader_, env_->dbi));
  }

  absl::Status Sync() override {
    if (int rc = mdb_env_sync(env_->env, 1); rc != 0) return LmdbError(rc, "mdb_env_sync");
    return absl::OkStatus();
  }

  // Copies the environment compacted, closes it, moves the copy's data file over the old one and
  // reopens: only the process's one handle may do it.
  absl::Status Compact() override {
    if (env_.use_count() > 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("LMDB ", env_->dir, ": other handles of this process hold the environment"));
    }
    const std::string& dir = env_->dir;
    const std::string copy_dir = dir + "/compact";
    std::error_code ec;
    std::filesystem::create_directory(copy_dir, ec);
    if (ec) return absl::InternalError(absl::StrCat(copy_dir, ": ", ec.message()));
    if (int rc = mdb_env_copy2(env_->env, copy_dir.c_str(), MDB_CP_COMPACT); rc != 0) {
      return LmdbError(rc, "mdb_env_copy2");
    }
    if (reader_ != nullptr) mdb_txn_abort(std::exchange(reader_, nullptr));
    env_->Close();
    std::filesystem::rename(copy_dir + "/data.mdb", dir + "/data.mdb", ec);
    std::filesystem::remove_all(copy_dir);
    if (ec) return absl::InternalError(absl::StrCat(dir, "/data.mdb: ", ec.message()));
    return env_->Open();
  }

 private:
  int RenewReader() {
    if (reader_ != nullptr) return mdb_txn_renew(reader_);
    return mdb_txn_begin(env_->env, nullptr, MDB_RDONLY, &reader_);
  }

  absl::Status Write(absl::Span<const KvPair> pairs, bool del) {
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env_->env, nullptr, 0, &txn); rc != 0) {
      return LmdbError(rc, "mdb_txn_begin");
    }
    for (const KvPair& p : pairs) {
      MDB_val k = LmdbVal(p.key), v = LmdbVal(p.value);
      int rc = del ? mdb_del(txn, env_->dbi, &k, nullptr) : mdb_put(txn, env_->dbi, &k, &v, 0);
      if (rc != 0 && !(del && rc == MDB_NOTFOUND)) {
        mdb_txn_abort(txn);
        return LmdbError(rc, del ? "mdb_del" : "mdb_put");
      }
    }
    if (int rc = mdb_txn_commit(txn); rc != 0) return LmdbError(rc, "mdb_txn_commit");
    return absl::OkStatus();
  }

  std::shared_ptr<LmdbEnv> env_;
  MDB_txn* reader_ = nullptr;  // reset between Gets; destroyed before env_
};

// Handles on the environment in `dir`: opened with `flags`, or MDB_RDONLY alone for kRead.
class LmdbBackend : public KvBackend {
 public:
  LmdbBackend(std::string dir, unsigned int flags) : dir_(std::move(dir)), flags_(flags) {}

  absl::StatusOr<std::unique_ptr<KvStore>> Open(Access access) override {
    const bool writable = access != Access::kRead;
    absl::StatusOr<std::shared_ptr<LmdbEnv>> env =
        env_.Get(writable, absl::StrCat("LMDB mdb_env_open on ", dir_),
                 [&]() -> absl::StatusOr<std::shared_ptr<LmdbEnv>> {
                   auto env = std::make_shared<LmdbEnv>(dir_, writable ? flags_ : MDB_RDONLY);
                   if (absl::Status s = env->Open(); !s.ok()) return s;
                   env->writable = writable;
                   return env;
                 });
    if (!env.ok()) return env.status();
    return std::unique_ptr<KvStore>(new LmdbKv(*std::move(env)));
  }

 private:
  const std::string dir_;
  const unsigned int flags_;
  PerProcessDb<LmdbEnv> env_;
};

inline StoreKind LmdbKind() {
  StoreKind kind;
  kind.name = "LMDB";
  kind.settings =
      absl::StrCat(MDB_VERSION_STRING, "; MDB_NOSYNC | MDB_WRITEMAP, 64 GiB map, renewed read txn");
  kind.caps = {.multi_reader = true, .reader_with_writer = true, .on_disk = true};
  kind.create = [](const std::string& dir, uint64_t) -> absl::StatusOr<std::unique_ptr<KvBackend>> {
    return std::make_unique<LmdbBackend>(dir, MDB_NOSYNC | MDB_WRITEMAP);
  };
  return kind;
}

// One kind per sync mode, for the durability benchmark.
inline std::vector<StoreKind> LmdbDurabilityKinds() {
  auto kind = [](unsigned int flags, std::string mode, SyncClass sync_class,
                 std::string power_cut) {
    StoreKind k;
    k.name = "LMDB";
    k.mode = std::move(mode);
    k.settings = absl::StrCat(MDB_VERSION_STRING, "; ", k.mode, ", 64 GiB map");
    k.sync_class = sync_class;
    k.power_cut = std::move(power_cut);
    k.caps = {.multi_reader = true, .reader_with_writer = true, .on_disk = true};
    k.create = [flags](const std::string& dir,
                       uint64_t) -> absl::StatusOr<std::unique_ptr<KvBackend>> {
      return std::make_unique<LmdbBackend>(dir, flags);
    };
    return k;
  };
  return {
      kind(MDB_NOSYNC, "MDB_NOSYNC", SyncClass::kNone, "all since the last mdb_env_sync()"),
      kind(MDB_NOMETASYNC, "MDB_NOMETASYNC", SyncClass::kPeriodic, "the last commit"),
      kind(0, "default (sync)", SyncClass::kSync, "nothing"),
  };
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_KV_LMDB_H_
