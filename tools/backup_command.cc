// `mapkv backup`: mapkv::Backup() (include/mapkv/compact.h) with a progress bar and a report.
#include <cstdio>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "command.h"
#include "common.h"
#include "mapkv/compact.h"
#include "rewrite.h"
#include "src/platform/fs.h"

namespace mapkv::tools {
namespace {

struct BackupArgs {
  std::string db;
  std::string copy;
  bool force = false;
  bool quiet = false;
};

// Whether `a` and `b` name one existing file, whatever the paths.
bool SameExistingFile(const std::string& a, const std::string& b) {
  absl::StatusOr<internal::FileInfo> x = internal::StatFile(a);
  absl::StatusOr<internal::FileInfo> y = internal::StatFile(b);
  return x.ok() && y.ok() && internal::SameFile(*x, *y);
}

int RunBackup(const BackupArgs& args) {
  // Said plainly here, rather than as the failure of whichever system call meets it first.
  absl::StatusOr<bool> exists = internal::PathExists(args.db);
  if (exists.ok() && !*exists) {
    return ReportError("backup", About(args.db, absl::StatusCode::kNotFound, "no such file"),
                       kExitError);
  }
  if (SameExistingFile(args.db, args.copy)) {
    return ReportUsageError(
        "backup", absl::StrCat(args.copy, " is ", args.db,
                               " itself: a backup goes to another file (`mapkv compact DB` "
                               "rewrites a database in place)"));
  }
  Progress progress("backing up", 0, args.quiet);
  CompactOptions options;
  options.replace_existing = args.force;
  FollowProgress(&progress, &options);
  absl::StatusOr<CompactResult> result = Backup(args.db, args.copy, options);
  progress.Done();
  if (!result.ok()) {
    // The message names the file it is about (DB, COPY, or a temporary file beside COPY).
    ReportError("backup", result.status(), 0);
    std::fprintf(stderr, "mapkv backup: %s was not written%s\n", args.copy.c_str(),
                 args.force ? " (any file of that name is as it was)" : "");
    // Refused: the COPY that --force would replace is open elsewhere.
    return absl::IsFailedPrecondition(result.status()) ? kExitDataProblem : kExitError;
  }
  ReportLeftovers("backup", args.copy, *result);
  std::printf(
      "backed up %s into %s%s: %s, %s of live records, %s (%s bytes; %s is %s), %s (%.1f MiB/s "
      "of live data)\n",
      args.db.c_str(), args.copy.c_str(), result->replaced ? " (replacing it)" : "",
      Plural(result->keys, "key", "keys").c_str(), Bytes(result->live_bytes).c_str(),
      Bytes(result->size_after).c_str(), Commas(result->size_after).c_str(), args.db.c_str(),
      Bytes(result->size_before).c_str(),
      Seconds(static_cast<double>(result->micros) / 1e6).c_str(), MiBPerSecond(*result));
  if (result->dropped > 0) {
    std::printf("left out %s: expired values, and leases of computations in progress\n",
                Plural(result->dropped, "cache entry", "cache entries").c_str());
  }
  if (result->read_under_lock) {
    std::printf(
        "%s was read under its shared lock (a format version 1 file): its writers "
        "waited until the copy was read\n",
        args.db.c_str());
  }
  return kExitOk;
}

}  // namespace

Runner SetupBackup(CLI::App* app) {
  auto args = std::make_shared<BackupArgs>();
  app->description(
      "Writes a consistent, compact copy of DB to COPY while other processes go on using DB, as "
      "mdb_copy and SQLite's .backup do: reads DB as of one commit, copies its live records (no "
      "garbage) into a new file beside COPY, flushes it to disk, then renames it to COPY in one "
      "step. DB is only read; its other users are not held up.");
  app->add_option("DB", args->db, "the database (or cache) file to copy")
      ->type_name("")
      ->required();
  app->add_option("COPY", args->copy,
                  "the file to write, which must not exist (unless --force); never DB itself")
      ->type_name("")
      ->required();
  app->add_flag("-f,--force", args->force,
                "replace COPY if it exists, atomically (the old copy stays whole until the new "
                "one takes its name); only a mapkv file that no process has open");
  AddQuietFlag(app, &args->quiet);
  app->footer(R"text(
What COPY holds:
  - DB exactly as of one commit: the last one committed when the backup began. What other
    processes commit meanwhile is not in it, and they are not held up: a database of format
    version 4 is read from a snapshot, which holds no lock. While the backup runs, `mapkv stat DB`
    lists that snapshot, with the log bytes committed since it began.
  - A format version 1 file (made before snapshots; `mapkv stat` shows the version) or a cache is
    read under its shared lock instead: its writers wait until the copy is read, and fail with a
    lock timeout (10 s by default) if that takes longer. Back such a file up while it is quiet, or
    rewrite it once in the current version (`mapkv compact DB`, offline). The output says so.
  - Only the live records, with an index sized for them: COPY is as compact as `mapkv compact`
    would make DB, in the current format version. A cache's copy is a cache, with its capacity,
    less its expired values and the leases of computations in progress (the output says how
    many).

Safety:
  - DB is opened read-only and never changed, but for one case: a DB that needs recovery (a
    writer died in a commit, or the machine stopped before it was closed) is recovered first, as
    the next process to open it for writing would (a user who may only read it is told why it
    needs recovery instead).
  - COPY is written under a temporary name beside it (COPY.backup-PID-RANDOM.tmp), flushed to
    disk, renamed to COPY in one step, and the directory is flushed: a crash or a kill at any
    moment leaves no COPY or a whole one, never a part. A failure (disk full, no permission to
    write beside COPY, a damaged record in DB) removes the temporary file (exit 4). A killed
    backup's file is removed by the next backup or compaction to COPY, which says so (only a
    regular file owned by the user running it, or for root by DB's owner).
  - COPY must not exist (exit 4), unless --force: then it is replaced atomically, only when it is
    a mapkv file that no process has open (refused otherwise: exit 3), held alone until the
    rename so that nothing is written to it meanwhile. COPY naming DB (the same file by any path)
    is a usage error (exit 2).
  - COPY gets DB's permission bits and growth limit; run as root, DB's owner and group too. A
    user who may only read DB (a backup operator) owns their copy, in DB's group where they
    belong to it, and otherwise without its group permission bits.
  - Needs free space beside COPY for DB's live data (`live` in `mapkv stat`) and an index. COPY
    may be on another file system than DB.
  - Two backups to one COPY at once: the later one removes the earlier one's temporary file, and
    the earlier one fails (exit 4).

Restoring: stop the processes that use DB, then `mapkv backup --force COPY DB` (refused while DB
is open) or `mv COPY DB`; both leave a whole database under DB at every moment.

Output: "backed up DB into COPY: N keys, ... of live records, SIZE (... bytes; DB is SIZE), TIME
(MiB/s of live data)".

Exit status: 0 written, 2 bad usage (COPY is DB), 3 refused: --force and COPY is open elsewhere,
4 error (no such file, COPY exists, no permission, disk full, a damaged record in DB: run
`mapkv check DB`; a lock timeout on a format version 1 file).

Examples:
  mapkv backup /var/lib/app/app.mapkv /backup/app-$(date +%F).mapkv
  mapkv backup --force app.mapkv app.backup.mapkv && mapkv check app.backup.mapkv
  mapkv backup app.mapkv /mnt/other-disk/app.mapkv)text");
  return [args] { return RunBackup(*args); };
}

}  // namespace mapkv::tools
