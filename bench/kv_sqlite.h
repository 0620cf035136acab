// SQLite 3 behind the KvStore interface (bench/kv_store.h).
//
// Settings: one file (bench.sqlite), WAL mode, one table kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT
// ROWID, PRAGMA synchronous=OFF (no flush at commit, as mapkv's kNone), and for reads the usual
// tuning: mmap_size 4 GiB (pages read through the mapping) and a 256 MiB page cache per
// connection. Every statement is prepared once per handle; each Put or Delete is its own
// autocommit transaction; Load is transactions of 10,000 INSERT OR REPLACE; Scan is SELECT k, v
// in key order; Compact is VACUUM. Multi-process: each process opens its own connection (readers
// and one writer together, as WAL allows), busy_timeout 10 s.
#ifndef MAPKV_BENCH_KV_SQLITE_H_
#define MAPKV_BENCH_KV_SQLITE_H_

#include <sqlite3.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bench/kv_store.h"
#include "bench/peer_store_sqlite.h"

namespace mapkv::bench {

class SqliteKv : public KvStore {
 public:
  static absl::StatusOr<std::unique_ptr<KvStore>> Open(const std::string& path, Access access) {
    std::unique_ptr<SqliteKv> kv(new SqliteKv());
    int rc =
        sqlite3_open_v2(path.c_str(), &kv->db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) return SqliteError(kv->db_, rc, absl::StrCat("open ", path));
    sqlite3_busy_timeout(kv->db_, 10'000);
    std::string setup =
        "PRAGMA synchronous=OFF; PRAGMA mmap_size=4294967296; PRAGMA cache_size=-262144;";
    if (access == Access::kCreate) {
      setup +=
          "PRAGMA journal_mode=WAL; CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID;";
    }
    if (absl::Status s = kv->Exec(setup); !s.ok()) return s;
    struct {
      const char* sql;
      sqlite3_stmt** stmt;
    } const statements[] = {{"INSERT OR REPLACE INTO kv(k, v) VALUES(?1, ?2)", &kv->put_},
                            {"SELECT v FROM kv WHERE k = ?1", &kv->get_},
                            {"DELETE FROM kv WHERE k = ?1", &kv->delete_},
                            {"SELECT k, v FROM kv", &kv->scan_}};
    for (const auto& [sql, stmt] : statements) {
      if (rc = sqlite3_prepare_v2(kv->db_, sql, -1, stmt, nullptr); rc != SQLITE_OK) {
        return SqliteError(kv->db_, rc, sql);
      }
    }
    return std::unique_ptr<KvStore>(std::move(kv));
  }

  ~SqliteKv() override {
    for (sqlite3_stmt* s : {put_, get_, delete_, scan_}) sqlite3_finalize(s);
    sqlite3_close(db_);
  }

  absl::Status Put(std::string_view key, std::string_view value) override {
    Bind(put_, 1, key);
    Bind(put_, 2, value);
    return SqliteStep(db_, put_, "INSERT");
  }

  absl::Status Delete(std::string_view key) override {
    Bind(delete_, 1, key);
    return SqliteStep(db_, delete_, "DELETE");
  }

  absl::Status Get(std::string_view key, std::string* value) override {
    Bind(get_, 1, key);
    int rc = sqlite3_step(get_);
    if (rc == SQLITE_ROW) {
      value->assign(static_cast<const char*>(sqlite3_column_blob(get_, 0)),
                    sqlite3_column_bytes(get_, 0));
    }
    sqlite3_reset(get_);
    if (rc == SQLITE_DONE) return absl::NotFoundError("SQLite: key not found");
    if (rc != SQLITE_ROW) return SqliteError(db_, rc, "SELECT");
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view, std::string_view)> fn) override {
    uint64_t n = 0;
    int rc;
    while ((rc = sqlite3_step(scan_)) == SQLITE_ROW) {
      fn(Column(scan_, 0), Column(scan_, 1));
      ++n;
    }
    sqlite3_reset(scan_);
    if (rc != SQLITE_DONE) return SqliteError(db_, rc, "SELECT k, v");
    return n;
  }

  absl::Status Load(absl::Span<const KvPair> pairs) override {
    for (size_t start = 0; start < pairs.size(); start += 10'000) {
      if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
      for (size_t i = start; i < std::min(pairs.size(), start + 10'000); ++i) {
        if (absl::Status s = Put(pairs[i].key, pairs[i].value); !s.ok()) {
          (void)Exec("ROLLBACK");
          return s;
        }
      }
      if (absl::Status s = Exec("COMMIT"); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // The WAL checkpointed into the database file and both flushed.
  absl::Status Sync() override {
    return Exec(
        "PRAGMA synchronous=FULL; PRAGMA wal_checkpoint(TRUNCATE); PRAGMA synchronous=OFF;");
  }

  absl::Status Compact() override { return Exec("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);"); }

 private:
  SqliteKv() = default;

  static void Bind(sqlite3_stmt* stmt, int i, std::string_view blob) {
    sqlite3_bind_blob(stmt, i, blob.data(), static_cast<int>(blob.size()), SQLITE_STATIC);
  }
  static std::string_view Column(sqlite3_stmt* stmt, int i) {
    return std::string_view(static_cast<const char*>(sqlite3_column_blob(stmt, i)),
                            sqlite3_column_bytes(stmt, i));
  }

  absl::Status Exec(const std::string& sql) {
    if (int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr); rc != SQLITE_OK) {
      return SqliteError(db_, rc, sql);
    }
    return absl::OkStatus();
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt* put_ = nullptr;
  sqlite3_stmt* get_ = nullptr;
  sqlite3_stmt* delete_ = nullptr;
  sqlite3_stmt* scan_ = nullptr;
};

inline StoreKind SqliteKind() {
  StoreKind kind;
  kind.name = "SQLite";
  kind.settings = absl::StrCat(sqlite3_libversion(),
                               "; WAL, synchronous=OFF, mmap 4 GiB, 256 MiB cache, WITHOUT ROWID");
  kind.caps = {.multi_reader = true, .reader_with_writer = true, .on_disk = true};
  kind.create = [](const std::string& dir, uint64_t) -> absl::StatusOr<std::unique_ptr<KvBackend>> {
    return std::make_unique<FileBackend>(dir + "/bench.sqlite", SqliteKv::Open);
  };
  return kind;
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_KV_SQLITE_H_
