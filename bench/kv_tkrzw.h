// tkrzw (libtkrzw 1.0.25 on Debian 12) HashDBM behind the KvStore interface (bench/kv_store.h).
//
// Settings: one hash database file, data.tkh, in the run's directory, on HashDBM's default file
// class, MemoryMapParallelFile (what HashDBM() constructs: the file is mapped with mmap and grown
// by doubling from 1 MiB, and madvise()d MADV_RANDOM, so each 4 KiB page is faulted in on its
// own; threads of one process read and write in parallel under tkrzw's per-bucket locks). Tuning,
// set when the file is created (tkrzw's advice for a known data set):
//   num_buckets   2 x expected_keys (the bucket array is sized once; tkrzw rounds it to a prime)
//   update_mode   UPDATE_IN_PLACE (an overwrite rewrites the record where it is when it fits; a
//                 removal leaves a free block that later records reuse)
//   the rest      defaults: offset_width 4 and align_pow 3 (8-byte alignment, files up to
//                 32 GiB), no record CRC, no compression, the default free block pool and
//                 restore mode.
// No sync per operation: a write lands in the shared map and is visible to every handle at once;
// a process crash loses nothing (the next writable open finds the file unclosed and validates
// it); a power cut loses what the last Sync() did not write. Sync() is Synchronize(true) (msync
// and fsync; it also truncates the file to its logical size, so measure the size after it).
//
// Calls: Put = Set (overwrite), Get = Get (copies into the caller's string, reusing it), Delete =
// Remove (NOT_FOUND is OK), Scan = a read-only ProcessEach (on an in-place file, one sequential
// pass over the record section), Load = Set per pair (tkrzw's SetMulti takes a std::map copy and
// locks every key's bucket at once: slower; a Set is its fastest one-pair write), Compact =
// Rebuild() (online: writes a fresh file with num_buckets = 2 x the live records, then renames it
// over the old one).
//
// Processes: MemoryMapParallelFile locks the whole file with a POSIX record lock (fcntl): a
// writable open takes it exclusive, a read-only open shared, and both wait until it is granted
// (OPEN_NO_WAIT would fail instead). So several kRead processes can hold the file at once
// (multi_reader), but a writer cannot run beside them (reader_with_writer is false): its open
// waits until every reader has closed. OPEN_NO_LOCK would let them in together, but that is not
// safe: a reader loads the metadata (record count, file size) once at open and maps the file at
// its size then, the per-bucket locks live in each process's memory (nothing orders a reader's
// read against another process's in-place rewrite), and Rebuild() replaces the file by rename.
//
// Within one process: POSIX record locks belong to the process, so a second open of the file
// there would be granted too, and two HashDBM objects would corrupt each other's free block pool
// and counts (and closing either drops the process's lock). So the backend keeps one HashDBM per
// process, which every handle of that process shares (HashDBM is thread-safe); the last handle to
// close closes it. A process that holds it read-only cannot open a kWrite handle beside it.
#ifndef MAPKV_BENCH_KV_TKRZW_H_
#define MAPKV_BENCH_KV_TKRZW_H_

#include <tkrzw_dbm.h>
#include <tkrzw_dbm_hash.h>
#include <tkrzw_file.h>
#include <tkrzw_lib_common.h>

#include <algorithm>
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

inline absl::Status TkrzwError(const tkrzw::Status& status, const char* call,
                               const std::string& path) {
  absl::StatusCode code = absl::StatusCode::kInternal;
  switch (status.GetCode()) {
    case tkrzw::Status::NOT_FOUND_ERROR:
      code = absl::StatusCode::kNotFound;
      break;
    case tkrzw::Status::PERMISSION_ERROR:
      code = absl::StatusCode::kPermissionDenied;
      break;
    case tkrzw::Status::INVALID_ARGUMENT_ERROR:
      code = absl::StatusCode::kInvalidArgument;
      break;
    case tkrzw::Status::PRECONDITION_ERROR:
    case tkrzw::Status::INFEASIBLE_ERROR:
      code = absl::StatusCode::kFailedPrecondition;
      break;
    case tkrzw::Status::NOT_IMPLEMENTED_ERROR:
      code = absl::StatusCode::kUnimplemented;
      break;
    case tkrzw::Status::DUPLICATION_ERROR:
      code = absl::StatusCode::kAlreadyExists;
      break;
    case tkrzw::Status::BROKEN_DATA_ERROR:
      code = absl::StatusCode::kDataLoss;
      break;
    case tkrzw::Status::CANCELED_ERROR:
      code = absl::StatusCode::kCancelled;
      break;
    default:
      break;
  }
  return absl::Status(
      code, absl::StrCat("tkrzw HashDBM ", call, " on ", path, ": ", tkrzw::ToString(status)));
}

// The process's one open HashDBM, shared by its handles.
struct TkrzwDb {
  explicit TkrzwDb(std::string file_path) : path(std::move(file_path)) {}
  ~TkrzwDb() {
    if (dbm.IsOpen()) dbm.Close();  // an error here has no caller to go to
  }
  const std::string path;
  tkrzw::HashDBM dbm;  // the default file class: MemoryMapParallelFile
  bool writable = false;
};

class TkrzwStore : public KvStore {
 public:
  explicit TkrzwStore(std::shared_ptr<TkrzwDb> db) : db_(std::move(db)) {}

  absl::Status Put(std::string_view key, std::string_view value) override {
    const tkrzw::Status s = db_->dbm.Set(key, value, /*overwrite=*/true);
    if (!s.IsOK()) return TkrzwError(s, "Set", db_->path);
    return absl::OkStatus();
  }

  absl::Status Get(std::string_view key, std::string* value) override {
    const tkrzw::Status s = db_->dbm.Get(key, value);
    if (s.IsOK()) return absl::OkStatus();
    // A miss is an answer, not a failure: a fixed message, no formatting per miss.
    if (s == tkrzw::Status::NOT_FOUND_ERROR) {
      return absl::NotFoundError("tkrzw HashDBM Get: no such key");
    }
    return TkrzwError(s, "Get", db_->path);
  }

  absl::Status Delete(std::string_view key) override {
    const tkrzw::Status s = db_->dbm.Remove(key);
    if (!s.IsOK() && s != tkrzw::Status::NOT_FOUND_ERROR) {
      return TkrzwError(s, "Remove", db_->path);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view key, std::string_view value)> fn) override {
    class Visitor final : public tkrzw::DBM::RecordProcessor {
     public:
      explicit Visitor(absl::FunctionRef<void(std::string_view, std::string_view)> fn) : fn_(fn) {}
      std::string_view ProcessFull(std::string_view key, std::string_view value) override {
        fn_(key, value);
        ++count_;
        return NOOP;
      }
      uint64_t count() const { return count_; }

     private:
      absl::FunctionRef<void(std::string_view, std::string_view)> fn_;
      uint64_t count_ = 0;
    };
    Visitor visitor(fn);
    const tkrzw::Status s = db_->dbm.ProcessEach(&visitor, /*writable=*/false);
    if (!s.IsOK()) return TkrzwError(s, "ProcessEach", db_->path);
    return visitor.count();
  }

  absl::Status Load(absl::Span<const KvPair> pairs) override {
    for (const KvPair& p : pairs) {
      const tkrzw::Status s = db_->dbm.Set(p.key, p.value, /*overwrite=*/true);
      if (!s.IsOK()) return TkrzwError(s, "Set", db_->path);
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    if (!db_->writable) return absl::OkStatus();  // a reader has nothing to write
    const tkrzw::Status s = db_->dbm.Synchronize(/*hard=*/true);
    if (!s.IsOK()) return TkrzwError(s, "Synchronize(true)", db_->path);
    return absl::OkStatus();
  }

  absl::Status Compact() override {
    const tkrzw::Status s = db_->dbm.Rebuild();
    if (!s.IsOK()) return TkrzwError(s, "Rebuild", db_->path);
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<TkrzwDb> db_;
};

class TkrzwBackend : public KvBackend {
 public:
  TkrzwBackend(const std::string& dir, uint64_t expected_keys)
      : path_(dir + "/data.tkh"), expected_keys_(expected_keys) {}

  absl::StatusOr<std::unique_ptr<KvStore>> Open(Access access) override {
    const bool writable = access != Access::kRead;
    absl::StatusOr<std::shared_ptr<TkrzwDb>> db = db_.Get(
        writable, absl::StrCat("tkrzw HashDBM OpenAdvanced on ", path_),
        [&]() -> absl::StatusOr<std::shared_ptr<TkrzwDb>> {
          auto db = std::make_shared<TkrzwDb>(path_);
          tkrzw::HashDBM::TuningParameters tuning;
          tuning.update_mode = tkrzw::HashDBM::UPDATE_IN_PLACE;
          tuning.num_buckets = static_cast<int64_t>(std::max<uint64_t>(expected_keys_, 1) * 2);
          const int32_t options =
              access == Access::kCreate ? tkrzw::File::OPEN_DEFAULT : tkrzw::File::OPEN_NO_CREATE;
          const tkrzw::Status s = db->dbm.OpenAdvanced(path_, writable, options, tuning);
          if (!s.IsOK()) {
            return TkrzwError(s, writable ? "OpenAdvanced(writable)" : "OpenAdvanced(read-only)",
                              path_);
          }
          db->writable = writable;
          return db;
        });
    if (!db.ok()) return db.status();
    return std::unique_ptr<KvStore>(new TkrzwStore(*std::move(db)));
  }

 private:
  const std::string path_;
  const uint64_t expected_keys_;
  PerProcessDb<TkrzwDb> db_;
};

inline StoreKind TkrzwHashKind() {
  StoreKind kind;
  kind.name = "tkrzw HashDBM";
  kind.settings = absl::StrCat(
      "tkrzw ", tkrzw::PACKAGE_VERSION,
      " HashDBM, MemoryMapParallelFile (mmap), num_buckets 2 x keys, in-place updates, "
      "no sync per op");
  kind.caps.multi_reader = true;
  kind.caps.reader_with_writer = false;
  kind.caps.on_disk = true;
  kind.create = [](const std::string& dir,
                   uint64_t expected_keys) -> absl::StatusOr<std::unique_ptr<KvBackend>> {
    return std::unique_ptr<KvBackend>(new TkrzwBackend(dir, expected_keys));
  };
  return kind;
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_KV_TKRZW_H_
