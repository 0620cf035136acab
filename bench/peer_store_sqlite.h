// SQLite 3 (libsqlite3, 3.40 on Debian 12) behind the PeerStore interface (bench/peer_store.h).
//
// Settings: one file (bench.sqlite) in WAL mode holding one table,
// kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID. Every writer thread has its own connection
// (opened with SQLITE_OPEN_NOMUTEX: each is used by one thread), PRAGMA synchronous as the mode
// says, and busy_timeout 10 s: a writer that finds another one committing sleeps and retries, as
// SQLite's busy handler does (1, 2, 5, 10 ms... between tries). A commit is BEGIN IMMEDIATE, one
// INSERT OR REPLACE per pair, COMMIT, all prepared once per connection. Everything else is
// SQLite's default: 4 KiB pages, a 2 MB page cache per connection (emptied when another
// connection has written), an automatic checkpoint of the WAL into the database file by the
// commit that takes the WAL past 1,000 pages. Modes (PRAGMA synchronous):
//   OFF     no flush ever (matches mapkv kNone): survives a process crash; a power cut may
//           corrupt the database.
//   NORMAL  no flush at commit; the WAL and the database file are flushed at each checkpoint
//           (matches mapkv kPeriodic): a power cut loses the commits since the last checkpoint.
//   FULL    the WAL is flushed (fdatasync) at every commit (matches mapkv kSync).
#ifndef MAPKV_BENCH_PEER_STORE_SQLITE_H_
#define MAPKV_BENCH_PEER_STORE_SQLITE_H_

#include <sqlite3.h>

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

// A connection with its prepared statements.
class SqliteConnection {
 public:
  // Opens `path` (creating it) and runs `setup`, a list of statements.
  static absl::StatusOr<std::unique_ptr<SqliteConnection>> Open(const std::string& path,
                                                                const std::string& setup) {
    std::unique_ptr<SqliteConnection> c(new SqliteConnection());
    int rc =
        sqlite3_open_v2(path.c_str(), &c->db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) return SqliteError(c->db_, rc, "open");
    if (rc = sqlite3_busy_timeout(c->db_, 10'000); rc != SQLITE_OK) {
      return SqliteError(c->db_, rc, "busy_timeout");
    }
    if (rc = sqlite3_exec(c->db_, setup.c_str(), nullptr, nullptr, nullptr); rc != SQLITE_OK) {
      return SqliteError(c->db_, rc, setup);
    }
    return c;
  }

  ~SqliteConnection() {
    for (sqlite3_stmt* s : {begin_, insert_, commit_, rollback_}) sqlite3_finalize(s);
    sqlite3_close(db_);
  }

  absl::Status Prepare() {
    struct {
      const char* sql;
      sqlite3_stmt** stmt;
    } const statements[] = {{"BEGIN IMMEDIATE", &begin_},
                            {"INSERT OR REPLACE INTO kv(k, v) VALUES(?1, ?2)", &insert_},
                            {"COMMIT", &commit_},
                            {"ROLLBACK", &rollback_}};
    for (const auto& [sql, stmt] : statements) {
      if (int rc = sqlite3_prepare_v2(db_, sql, -1, stmt, nullptr); rc != SQLITE_OK) {
        return SqliteError(db_, rc, sql);
      }
    }
    return absl::OkStatus();
  }

  absl::Status Commit(const KeyValue* puts, size_t n) {
    if (absl::Status s = Step(begin_, "BEGIN IMMEDIATE"); !s.ok()) return s;
    for (size_t i = 0; i < n; ++i) {
      sqlite3_bind_blob(insert_, 1, puts[i].key.data(), static_cast<int>(puts[i].key.size()),
                        SQLITE_STATIC);
      sqlite3_bind_blob(insert_, 2, puts[i].value.data(), static_cast<int>(puts[i].value.size()),
                        SQLITE_STATIC);
      if (absl::Status s = Step(insert_, "INSERT"); !s.ok()) {
        (void)Step(rollback_, "ROLLBACK");
        return s;
      }
    }
    absl::Status s = Step(commit_, "COMMIT");
    if (!s.ok()) (void)Step(rollback_, "ROLLBACK");
    return s;
  }

  sqlite3* db() const { return db_; }

 private:
  SqliteConnection() = default;

  absl::Status Step(sqlite3_stmt* stmt, const char* what) { return SqliteStep(db_, stmt, what); }

  sqlite3* db_ = nullptr;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
  sqlite3_stmt* rollback_ = nullptr;
};

class SqliteWriter : public PeerWriter {
 public:
  explicit SqliteWriter(std::unique_ptr<SqliteConnection> connection)
      : connection_(std::move(connection)) {}

  absl::Status Commit(const KeyValue* puts, size_t n) override {
    return connection_->Commit(puts, n);
  }

 private:
  std::unique_ptr<SqliteConnection> connection_;
};

class SqliteStore : public PeerStore {
 public:
  // `synchronous`: OFF, NORMAL or FULL.
  static absl::StatusOr<std::unique_ptr<PeerStore>> Open(const std::string& dir,
                                                         const std::string& synchronous) {
    std::unique_ptr<SqliteStore> store(new SqliteStore(dir + "/bench.sqlite", synchronous));
    // journal_mode=WAL is stored in the file; this first connection stays open to the end, so the
    // WAL is not checkpointed and deleted whenever a writer's connection closes.
    absl::StatusOr<std::unique_ptr<SqliteConnection>> c = SqliteConnection::Open(
        store->path_,
        "PRAGMA journal_mode=WAL; CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID;");
    if (!c.ok()) return c.status();
    store->keeper_ = *std::move(c);
    return std::unique_ptr<PeerStore>(std::move(store));
  }

  absl::StatusOr<std::unique_ptr<PeerWriter>> NewWriter() override {
    absl::StatusOr<std::unique_ptr<SqliteConnection>> c =
        SqliteConnection::Open(path_, "PRAGMA synchronous=" + synchronous_ + ";");
    if (!c.ok()) return c.status();
    if (absl::Status s = (*c)->Prepare(); !s.ok()) return s;
    return std::unique_ptr<PeerWriter>(new SqliteWriter(*std::move(c)));
  }

  // A checkpoint of the whole WAL into the database file, flushed whatever the mode.
  absl::Status SyncAll() override {
    const char* sql = "PRAGMA synchronous=FULL; PRAGMA wal_checkpoint(TRUNCATE);";
    if (int rc = sqlite3_exec(keeper_->db(), sql, nullptr, nullptr, nullptr); rc != SQLITE_OK) {
      return SqliteError(keeper_->db(), rc, sql);
    }
    return absl::OkStatus();
  }

 private:
  SqliteStore(std::string path, std::string synchronous)
      : path_(std::move(path)), synchronous_(std::move(synchronous)) {}

  std::string path_;
  std::string synchronous_;
  std::unique_ptr<SqliteConnection> keeper_;
};

inline std::vector<PeerMode> SqliteModes() {
  auto open = [](const char* synchronous) {
    return [synchronous](const std::string& dir) { return SqliteStore::Open(dir, synchronous); };
  };
  return {
      {"SQLite", "WAL synchronous=OFF", SyncClass::kNone, "anything (may corrupt)", open("OFF")},
      {"SQLite", "WAL synchronous=NORMAL", SyncClass::kPeriodic,
       "all since the last WAL checkpoint", open("NORMAL")},
      {"SQLite", "WAL synchronous=FULL", SyncClass::kSync, "nothing", open("FULL")},
  };
}

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_PEER_STORE_SQLITE_H_
