// LMDB (liblmdb, 0.9 on Debian 12) behind the PeerStore interface (bench/peer_store.h).
//
// Settings: one environment (data.mdb and lock.mdb in the directory) with a 64 GiB map, the
// default page size, no MDB_WRITEMAP (a commit writes its dirty pages with pwrite), and the
// unnamed database; the environment is shared by every writer thread (write transactions
// serialise on its writer mutex, as mapkv's do on its writer lock). A commit is mdb_txn_begin,
// mdb_put per pair, mdb_txn_commit. Modes, by flags given to mdb_env_open:
//   MDB_NOSYNC      no flush at commit (matches mapkv kNone): survives a process crash; a power
//                   cut keeps what the last mdb_env_sync() kept, and may leave a corrupt file if
//                   the file system reorders writes.
//   MDB_NOMETASYNC  one flush per commit: fdatasync of the data pages, the meta page left to the
//                   next commit's flush, so a power cut may undo the last commit (between mapkv
//                   kPeriodic and kSync).
//   (none)          two flushes per commit: fdatasync of the data pages, then the meta page
//                   written through a descriptor opened O_DSYNC (matches mapkv kSync).
#ifndef MAPKV_BENCH_PEER_STORE_LMDB_H_
#define MAPKV_BENCH_PEER_STORE_LMDB_H_

#include <lmdb.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bench/peer_store.h"

namespace mapkv::bench {

inline absl::Status LmdbError(int rc, const char* what) {
  return absl::InternalError(absl::StrCat("LMDB ", what, ": ", mdb_strerror(rc)));
}

inline MDB_val LmdbVal(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

class LmdbWriter : public PeerWriter {
 public:
  LmdbWriter(MDB_env* env, MDB_dbi dbi) : env_(env), dbi_(dbi) {}

  absl::Status Commit(const KeyValue* puts, size_t n) override {
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env_, nullptr, 0, &txn); rc != 0) {
      return LmdbError(rc, "mdb_txn_begin");
    }
    for (size_t i = 0; i < n; ++i) {
      MDB_val key = LmdbVal(puts[i].key);
      MDB_val value = LmdbVal(puts[i].value);
      if (int rc = mdb_put(txn, dbi_, &key, &value, 0); rc != 0) {
        mdb_txn_abort(txn);
        return LmdbError(rc, "mdb_put");
      }
    }
    if (int rc = mdb_txn_commit(txn); rc != 0) return LmdbError(rc, "mdb_txn_commit");
    return absl::OkStatus();
  }

 private:
  MDB_env* env_;
  MDB_dbi dbi_;
};

class LmdbStore : public PeerStore {
 public:
  static constexpr size_t kMapSize = size_t{64} << 30;

  static absl::StatusOr<std::unique_ptr<PeerStore>> Open(const std::string& dir,
                                                         unsigned int flags) {
    MDB_env* env = nullptr;
    if (int rc = mdb_env_create(&env); rc != 0) return LmdbError(rc, "mdb_env_create");
    std::unique_ptr<LmdbStore> store(new LmdbStore(env));
    if (int rc = mdb_env_set_mapsize(env, kMapSize); rc != 0) {
      return LmdbError(rc, "mdb_env_set_mapsize");
    }
    if (int rc = mdb_env_open(env, dir.c_str(), flags, 0644); rc != 0) {
      return LmdbError(rc, "mdb_env_open");
    }
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env, nullptr, 0, &txn); rc != 0) {
      return LmdbError(rc, "mdb_txn_begin");
    }
    if (int rc = mdb_dbi_open(txn, nullptr, 0, &store->dbi_); rc != 0) {
      mdb_txn_abort(txn);
      return LmdbError(rc, "mdb_dbi_open");
    }
    if (int rc = mdb_txn_commit(txn); rc != 0) return LmdbError(rc, "mdb_txn_commit");
    return std::unique_ptr<PeerStore>(std::move(store));
  }

  ~LmdbStore() override { mdb_env_close(env_); }

  absl::StatusOr<std::unique_ptr<PeerWriter>> NewWriter() override {
    return std::unique_ptr<PeerWriter>(new LmdbWriter(env_, dbi_));
  }

  absl::Status SyncAll() override {
    if (int rc = mdb_env_sync(env_, 1); rc != 0) return LmdbError(rc, "mdb_env_sync");
    return absl::OkStatus();
  }

 private:
  explicit LmdbStore(MDB_env* env) : env_(env) {}
  MDB_env* env_;
  MDB_dbi dbi_ = 0;
};

inline std::vector<PeerMode> LmdbModes() {
  auto open = [](unsigned int flags) {
    return [flags](const std::string& dir) { return LmdbStore::Open(dir, flags); };
  };
  return {
      {"LMDB", "MDB_NOSYNC", SyncClass::kNone, "all since the last mdb_env_sync()",
       open(MDB_NOSYNC)},
      {"LMDB", "MDB_NOMETASYNC", SyncClass::kPeriodic, "the last commit", open(MDB_NOMETASYNC)},
      {"LMDB", "default (sync)", SyncClass::kSync, "nothing", open(0)},
  };
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_PEER_STORE_LMDB_H_
