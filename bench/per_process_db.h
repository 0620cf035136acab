// One open database object per process, which every handle of the process shares (a forked child
// starts afresh). For the stores whose file lock is an fcntl lock (tkrzw, Kyoto Cabinet): such a
// lock belongs to the process, so a second object opening the same file in the same process would
// get the "exclusive" lock too, and the two would corrupt each other's free lists and counts (and
// closing either drops the lock); both libraries are thread-safe. For LMDB, whose environment must
// be opened once per process. For mapkv, whose DB is thread-safe and shared by an application's
// threads (two DBs on one file in one process behave as two processes).
#ifndef MAPKV_BENCH_PER_PROCESS_DB_H_
#define MAPKV_BENCH_PER_PROCESS_DB_H_

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "testing/subprocess.h"

namespace mapkv::bench {

// `Db` has a `bool writable` member, set by whoever opens it.
template <class Db>
class PerProcessDb {
 public:
  // The process's open Db, or a new one from open() (an absl::StatusOr<std::shared_ptr<Db>>)
  // when there is none. FailedPrecondition, naming `what`, when the process holds the file
  // read-only and `writable` is asked for.
  template <class Open>
  absl::StatusOr<std::shared_ptr<Db>> Get(bool writable, const std::string& what, Open&& open) {
    std::lock_guard<std::mutex> lock(mu_);
    std::shared_ptr<Db> db;
    if (pid_ == tools::CurrentPid()) db = db_.lock();  // a forked child starts afresh
    if (db != nullptr && writable && !db->writable) {
      return absl::FailedPreconditionError(absl::StrCat(
          what,
          ": this process holds the file read-only and cannot open it for writing beside that"));
    }
    if (db == nullptr) {
      absl::StatusOr<std::shared_ptr<Db>> opened = open();
      if (!opened.ok()) return opened.status();
      db = *std::move(opened);
      db_ = db;
      pid_ = tools::CurrentPid();
    }
    return db;
  }

 private:
  std::mutex mu_;
  std::weak_ptr<Db> db_;  // the open database of process pid_, while a handle holds it
  int pid_ = -1;
};

}  // namespace mapkv::bench

#endif  // MAPKV_BENCH_PER_PROCESS_DB_H_
