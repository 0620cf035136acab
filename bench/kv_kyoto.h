// Kyoto Cabinet (libkyotocabinet 1.2.79 on Debian 12) HashDB behind the KvStore interface
// (bench/kv_store.h).
//
// Settings: one file hash database, data.kch, in the run's directory. Tuning, set before every
// open (the file keeps what it was created with):
//   tune_buckets  2 x expected_keys (Kyoto's advice: twice the records or more; the bucket array
//                 is sized once, as a prime)
//   tune_map      max(1 GiB, 512 bytes x expected_keys): the whole file lies in the memory-mapped
//                 region (beyond it Kyoto would fall back to pread/pwrite)
//   tune_options  TLINEAR: with twice as many buckets as records a chain holds about one record,
//                 so the default binary-tree chaining buys nothing and costs a second child link
//                 per record; no TSMALL (32-bit offsets would cap the file at 32 GiB and save
//                 nothing here: a 16-byte key and 100-byte value round to 128 bytes either way),
//                 no TCOMPRESS
//   the rest      defaults: tune_alignment 3 (8 bytes), tune_fbp 10 (1,024 free blocks), no
//                 auto-defragmentation (tune_defrag off: Compact() is the only defragmentation)
// Opened without OAUTOTRAN and OAUTOSYNC: no transaction and no sync per operation. A write is a
// store into the shared map, visible to every handle at once; a process crash loses nothing
// written (the next writable open finds the file flagged open and rebuilds it from its records);
// a power cut loses what the last Sync() did not write, and may leave a file to repair. Sync() is
// synchronize(true) (the free block pool and the header written, then msync and fsync).
//
// Calls: Put = set, Get = accept with a read-only visitor that copies the value into the caller's
// string (what get(std::string, std::string*) does, without making a std::string of the key),
// Delete = remove (NOREC is OK), Scan = iterate(visitor, false) (one sequential pass over the
// record section; it holds the database's lock, so the process's other threads wait), Load = set
// per pair (set_bulk needs a std::map copy of the pairs, then does a set per record or, atomic,
// an accept_bulk that locks every key's slot at once: no faster), Compact = defrag(0) (online:
// the whole record section, shifting records over free blocks, then the file trimmed).
//
// Processes: the file is locked with a POSIX record lock (fcntl): OWRITER takes it exclusive,
// OREADER shared, and both wait until it is granted (OTRYLOCK would fail instead). So several
// kRead processes can hold the file at once (multi_reader), but a writer cannot run beside them
// (reader_with_writer is false): its open waits until every reader has closed. ONOLOCK would let
// them in together, but that is not safe: a reader loads the header (record count, logical size,
// free blocks) once at open, the record locks live in each process's memory (nothing orders a
// reader's read against another process's in-place rewrite or a defragmentation that moves
// records), and an ONOLOCK open also skips the repair of a file left open.
//
// Within one process: POSIX record locks belong to the process, so a second open of the file
// there would be granted too (Kyoto forbids two HashDB objects on one file in a process: they
// corrupt each other's header and free blocks, and closing either drops the process's lock). So
// the backend keeps one HashDB per process, which every handle of that process shares (HashDB is
// thread-safe); the last handle to close closes it. A process that holds it read-only cannot
// open a kWrite handle beside it.
#ifndef MAPKV_BENCH_KV_KYOTO_H_
#define MAPKV_BENCH_KV_KYOTO_H_

#include <kccommon.h>
#include <kcdb.h>
#include <kchashdb.h>
#include <kcutil.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "bench/kv_store.h"
#include "bench/per_process_db.h"

namespace mapkv::bench {

inline absl::Status KyotoError(const kyotocabinet::BasicDB::Error& error, const char* call,
                               const std::string& path) {
  using Error = kyotocabinet::BasicDB::Error;
  absl::StatusCode code = absl::StatusCode::kInternal;
  switch (error.code()) {
    case Error::NOREC:
    case Error::NOREPOS:
      code = absl::StatusCode::kNotFound;
      break;
    case Error::NOPERM:
      code = absl::StatusCode::kPermissionDenied;
      break;
    case Error::INVALID:
      code = absl::StatusCode::kFailedPrecondition;
      break;
    case Error::NOIMPL:
      code = absl::StatusCode::kUnimplemented;
      break;
    case Error::DUPREC:
      code = absl::StatusCode::kAlreadyExists;
      break;
    case Error::BROKEN:
      code = absl::StatusCode::kDataLoss;
      break;
    default:
      break;
  }
  return absl::Status(code, absl::StrCat("Kyoto Cabinet HashDB ", call, " on ", path, ": ",
                                         error.name(), ": ", error.message()));
}

// The process's one open HashDB, shared by its handles.
struct KyotoDb {
  explicit KyotoDb(std::string file_path) : path(std::move(file_path)) {}
  ~KyotoDb() {
    if (open) db.close();  // an error here has no caller to go to
  }
  const std::string path;
  kyotocabinet::HashDB db;
  bool open = false;
  bool writable = false;
};

class KyotoStore : public KvStore {
 public:
  explicit KyotoStore(std::shared_ptr<KyotoDb> db) : db_(std::move(db)) {}

  absl::Status Put(std::string_view key, std::string_view value) override {
    if (!db_->db.set(key.data(), key.size(), value.data(), value.size())) {
      return KyotoError(db_->db.error(), "set", db_->path);
    }
    return absl::OkStatus();
  }

  absl::Status Get(std::string_view key, std::string* value) override {
    class Copier final : public kyotocabinet::DB::Visitor {
     public:
      explicit Copier(std::string* value) : value_(value) {}
      const char* visit_full(const char* kbuf, size_t ksiz, const char* vbuf, size_t vsiz,
                             size_t* sp) override {
        (void)kbuf, (void)ksiz, (void)sp;
        value_->assign(vbuf, vsiz);
        found_ = true;
        return NOP;
      }
      bool found() const { return found_; }

     private:
      std::string* value_;
      bool found_ = false;
    };
    Copier copier(value);
    if (!db_->db.accept(key.data(), key.size(), &copier, /*writable=*/false)) {
      return KyotoError(db_->db.error(), "accept (get)", db_->path);
    }
    // A miss is an answer, not a failure: a fixed message, no formatting per miss.
    if (!copier.found()) return absl::NotFoundError("Kyoto Cabinet HashDB get: no such key");
    return absl::OkStatus();
  }

  absl::Status Delete(std::string_view key) override {
    if (!db_->db.remove(key.data(), key.size())) {
      const kyotocabinet::BasicDB::Error error = db_->db.error();
      if (error.code() != kyotocabinet::BasicDB::Error::NOREC) {
        return KyotoError(error, "remove", db_->path);
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view key, std::string_view value)> fn) override {
    class Caller final : public kyotocabinet::DB::Visitor {
     public:
      explicit Caller(absl::FunctionRef<void(std::string_view, std::string_view)> fn) : fn_(fn) {}
      const char* visit_full(const char* kbuf, size_t ksiz, const char* vbuf, size_t vsiz,
                             size_t* sp) override {
        (void)sp;
        fn_(std::string_view(kbuf, ksiz), std::string_view(vbuf, vsiz));
        ++count_;
        return NOP;
      }
      uint64_t count() const { return count_; }

     private:
      absl::FunctionRef<void(std::string_view, std::string_view)> fn_;
      uint64_t count_ = 0;
    };
    Caller caller(fn);
    if (!db_->db.iterate(&caller, /*writable=*/false)) {
      return KyotoError(db_->db.error(), "iterate", db_->path);
    }
    return caller.count();
  }

  absl::Status Load(absl::Span<const KvPair> pairs) override {
    for (const KvPair& p : pairs) {
      if (!db_->db.set(p.key.data(), p.key.size(), p.value.data(), p.value.size())) {
        return KyotoError(db_->db.error(), "set", db_->path);
      }
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    if (!db_->writable) return absl::OkStatus();  // a reader has nothing to write
    if (!db_->db.synchronize(/*hard=*/true)) {
      return KyotoError(db_->db.error(), "synchronize(true)", db_->path);
    }
    return absl::OkStatus();
  }

  absl::Status Compact() override {
    if (!db_->db.defrag(0)) return KyotoError(db_->db.error(), "defrag(0)", db_->path);
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<KyotoDb> db_;
};

class KyotoBackend : public KvBackend {
 public:
  static constexpr int64_t kMinMapSize = int64_t{1} << 30;

  KyotoBackend(const std::string& dir, uint64_t expected_keys)
      : path_(dir + "/data.kch"), expected_keys_(std::max<uint64_t>(expected_keys, 1)) {}

  absl::StatusOr<std::unique_ptr<KvStore>> Open(Access access) override {
    const bool writable = access != Access::kRead;
    absl::StatusOr<std::shared_ptr<KyotoDb>> db = db_.Get(
        writable, absl::StrCat("Kyoto Cabinet HashDB open on ", path_),
        [&]() -> absl::StatusOr<std::shared_ptr<KyotoDb>> {
          auto db = std::make_shared<KyotoDb>(path_);
          kyotocabinet::HashDB& hdb = db->db;
          const int64_t map_size =
              std::max<int64_t>(kMinMapSize, static_cast<int64_t>(expected_keys_) * 512);
          if (!hdb.tune_buckets(static_cast<int64_t>(expected_keys_) * 2) ||
              !hdb.tune_map(map_size) || !hdb.tune_options(kyotocabinet::HashDB::TLINEAR)) {
            return KyotoError(hdb.error(), "tune", path_);
          }
          uint32_t mode = kyotocabinet::HashDB::OREADER;
          if (access == Access::kCreate) {
            mode = kyotocabinet::HashDB::OWRITER | kyotocabinet::HashDB::OCREATE;
          } else if (access == Access::kWrite) {
            mode = kyotocabinet::HashDB::OWRITER;
          }
          if (!hdb.open(path_, mode)) {
            return KyotoError(hdb.error(), writable ? "open(OWRITER)" : "open(OREADER)", path_);
          }
          db->open = true;
          db->writable = writable;
          return db;
        });
    if (!db.ok()) return db.status();
    return std::unique_ptr<KvStore>(new KyotoStore(*std::move(db)));
  }

 private:
  const std::string path_;
  const uint64_t expected_keys_;
  PerProcessDb<KyotoDb> db_;
};

inline StoreKind KyotoHashKind() {
  StoreKind kind;
  kind.name = "Kyoto Cabinet HashDB";
  kind.settings =
      absl::StrCat("Kyoto Cabinet ", kyotocabinet::VERSION,
                   " HashDB, bnum 2 x keys, msiz >= 1 GiB (whole file mapped), TLINEAR, "
                   "no OAUTOTRAN/OAUTOSYNC");
  kind.caps.multi_reader = true;
  kind.caps.reader_with_writer = false;
  kind.caps.on_disk = true;
  kind.create = [](const std::string& dir,
                   uint64_t expected_keys) -> absl::StatusOr<std::unique_ptr<KvBackend>> {
    return std::unique_ptr<KvBackend>(new KyotoBackend(dir, expected_keys));
  };
  return kind;
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_KV_KYOTO_H_
