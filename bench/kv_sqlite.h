// SQLite 3 (libsqlite3, 3.40 on Debian 12) behind the KvStore interface (bench/kv_store.h).
//
// Settings common to every kind: one file (bench.sqlite) in WAL mode holding one table,
// kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID. Every handle is a connection of its own (opened
// with SQLITE_OPEN_NOMUTEX: each is used by one thread), with busy_timeout 10 s: a writer that
// finds another one committing sleeps and retries, as SQLite's busy handler does (1, 2, 5,
// 10 ms... between tries). Multi-process: each process opens its own connections (readers and one
// writer together, as WAL allows).
//
// The peer benchmark's kind: PRAGMA synchronous=OFF (no flush at commit, as mapkv's kNone), and for
// reads the usual tuning: mmap_size 4 GiB (pages read through the mapping) and a 256 MiB page
// cache per connection.
//
// The durability benchmark's kinds, on SQLite's defaults otherwise (4 KiB pages, a 2 MB page
// cache per connection, emptied when another connection has written, an automatic checkpoint of
// the WAL into the database file by the commit that takes the WAL past 1,000 pages), by PRAGMA
// synchronous:
//   OFF     no flush ever (matches mapkv kNone): survives a process crash; a power cut may
//           corrupt the database.
//   NORMAL  no flush at commit; the WAL and the database file are flushed at each checkpoint
//           (matches mapkv kPeriodic): a power cut loses the commits since the last checkpoint.
//   FULL    the WAL is flushed (fdatasync) at every commit (matches mapkv kSync).
//
// Calls, every statement prepared once per handle: Put and Delete are autocommit statements
// (INSERT OR REPLACE, DELETE); Commit is BEGIN IMMEDIATE, one INSERT OR REPLACE per pair, COMMIT;
// Load is Commits of 10,000 pairs; Get is SELECT v; Scan is SELECT k, v in key order;
// BeginSnapshot is BEGIN and a first read (a WAL read transaction: commits go on beside it, and
// checkpoints stop at its mark, so the WAL grows while it lives); Sync is a checkpoint of the whole
// WAL into the database file with both flushed (synchronous=FULL for it); Compact is VACUUM. The
// first handle (Access::kCreate) should stay open to the end: while a connection is open the WAL
// is not checkpointed and deleted whenever another closes.
#ifndef MAPKV_BENCH_KV_SQLITE_H_
#define MAPKV_BENCH_KV_SQLITE_H_

#include <sqlite3.h>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bench/kv_store.h"

namespace mapkv::bench {

inline absl::Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  return absl::InternalError(absl::StrCat("SQLite ", absl::string_view(what.data(), what.size()),
                                          ": ",
                                          db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
}

// Runs a statement that returns no rows and resets it for the next use.
inline absl::Status SqliteStep(sqlite3* db, sqlite3_stmt* stmt, const char* what) {
  int rc = sqlite3_step(stmt);
  sqlite3_reset(stmt);
  if (rc != SQLITE_DONE) return SqliteError(db, rc, what);
  return absl::OkStatus();
}

class SqliteKv;

// A read transaction on the handle's connection: its Gets and Scans are the handle's.
class SqliteSnapshot : public KvSnapshot {
 public:
  explicit SqliteSnapshot(SqliteKv* kv) : kv_(kv) {}
  ~SqliteSnapshot() override;
  absl::Status Get(std::string_view key, std::string* value) override;
  absl::StatusOr<uint64_t> Scan(
      absl::FunctionRef<void(std::string_view, std::string_view)> fn) override;

 private:
  SqliteKv* kv_;
};

class SqliteKv : public KvStore {
 public:
  static constexpr size_t kLoadBatch = 10'000;

  // `synchronous`: OFF, NORMAL or FULL; `tuning`: more statements run on every connection.
  static absl::StatusOr<std::unique_ptr<KvStore>> Open(const std::string& path, Access access,
                                                       const std::string& synchronous,
                                                       const std::string& tuning) {
    std::unique_ptr<SqliteKv> kv(new SqliteKv(synchronous));
    int rc =
        sqlite3_open_v2(path.c_str(), &kv->db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) return SqliteError(kv->db_, rc, absl::StrCat("open ", path));
    if (rc = sqlite3_busy_timeout(kv->db_, 10'000); rc != SQLITE_OK) {
      return SqliteError(kv->db_, rc, "busy_timeout");
    }
    std::string setup = absl::StrCat("PRAGMA synchronous=", synchronous, "; ", tuning);
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
                            {"SELECT k, v FROM kv", &kv->scan_},
                            {"BEGIN IMMEDIATE", &kv->begin_},
                            {"COMMIT", &kv->commit_},
                            {"ROLLBACK", &kv->rollback_}};
    for (const auto& [sql, stmt] : statements) {
      if (rc = sqlite3_prepare_v2(kv->db_, sql, -1, stmt, nullptr); rc != SQLITE_OK) {
        return SqliteError(kv->db_, rc, sql);
      }
    }
    return std::unique_ptr<KvStore>(std::move(kv));
  }

  ~SqliteKv() override {
    for (sqlite3_stmt* s : {put_, get_, delete_, scan_, begin_, commit_, rollback_}) {
      sqlite3_finalize(s);
    }
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

  absl::Status Commit(absl::Span<const KvPair> puts) override {
    if (absl::Status s = SqliteStep(db_, begin_, "BEGIN IMMEDIATE"); !s.ok()) return s;
    for (const KvPair& p : puts) {
      if (absl::Status s = Put(p.key, p.value); !s.ok()) {
        (void)SqliteStep(db_, rollback_, "ROLLBACK");
        return s;
      }
    }
    absl::Status s = SqliteStep(db_, commit_, "COMMIT");
    if (!s.ok()) (void)SqliteStep(db_, rollback_, "ROLLBACK");
    return s;
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

  absl::StatusOr<std::unique_ptr<KvSnapshot>> BeginSnapshot() override {
    if (absl::Status s = Exec("BEGIN; SELECT 1 FROM kv LIMIT 1;"); !s.ok()) return s;
    return std::unique_ptr<KvSnapshot>(new SqliteSnapshot(this));
  }

  absl::Status Load(absl::Span<const KvPair> pairs) override {
    for (size_t start = 0; start < pairs.size(); start += kLoadBatch) {
      if (absl::Status s = Commit(pairs.subspan(start, kLoadBatch)); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // The WAL checkpointed into the database file and both flushed.
  absl::Status Sync() override {
    return Exec(absl::StrCat("PRAGMA synchronous=FULL; PRAGMA wal_checkpoint(TRUNCATE); ",
                             "PRAGMA synchronous=", synchronous_, ";"));
  }

  absl::Status Compact() override { return Exec("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);"); }

 private:
  friend class SqliteSnapshot;

  explicit SqliteKv(std::string synchronous) : synchronous_(std::move(synchronous)) {}

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

  const std::string synchronous_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* put_ = nullptr;
  sqlite3_stmt* get_ = nullptr;
  sqlite3_stmt* delete_ = nullptr;
  sqlite3_stmt* scan_ = nullptr;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
  sqlite3_stmt* rollback_ = nullptr;
};

inline SqliteSnapshot::~SqliteSnapshot() { (void)kv_->Exec("ROLLBACK"); }

inline absl::Status SqliteSnapshot::Get(std::string_view key, std::string* value) {
  return kv_->Get(key, value);
}

inline absl::StatusOr<uint64_t> SqliteSnapshot::Scan(
    absl::FunctionRef<void(std::string_view, std::string_view)> fn) {
  return kv_->Scan(fn);
}

// Handles on <dir>/bench.sqlite, each its own connection.
inline StoreKind SqliteKindOf(std::string synchronous, std::string tuning) {
  StoreKind kind;
  kind.name = "SQLite";
  kind.caps = {.multi_reader = true, .reader_with_writer = true, .on_disk = true};
  kind.create = [synchronous, tuning](const std::string& dir,
                                      uint64_t) -> absl::StatusOr<std::unique_ptr<KvBackend>> {
    return std::make_unique<FileBackend>(
        dir + "/bench.sqlite", [synchronous, tuning](const std::string& path, Access access) {
          return SqliteKv::Open(path, access, synchronous, tuning);
        });
  };
  return kind;
}

inline StoreKind SqliteKind() {
  StoreKind kind = SqliteKindOf("OFF", "PRAGMA mmap_size=4294967296; PRAGMA cache_size=-262144;");
  kind.settings = absl::StrCat(sqlite3_libversion(),
                               "; WAL, synchronous=OFF, mmap 4 GiB, 256 MiB cache, WITHOUT ROWID");
  return kind;
}

// One kind per PRAGMA synchronous, for the durability benchmark.
inline std::vector<StoreKind> SqliteDurabilityKinds() {
  auto kind = [](const char* synchronous, SyncClass sync_class, std::string power_cut) {
    StoreKind k = SqliteKindOf(synchronous, "");
    k.mode = absl::StrCat("WAL synchronous=", synchronous);
    k.settings = absl::StrCat(sqlite3_libversion(), "; ", k.mode, ", defaults otherwise");
    k.sync_class = sync_class;
    k.power_cut = std::move(power_cut);
    return k;
  };
  return {
      kind("OFF", SyncClass::kNone, "anything (may corrupt)"),
      kind("NORMAL", SyncClass::kPeriodic, "all since the last WAL checkpoint"),
      kind("FULL", SyncClass::kSync, "nothing"),
  };
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_KV_SQLITE_H_
