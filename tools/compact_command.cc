// `mapkv compact`: mapkv::Compact() (include/mapkv/compact.h) with a progress bar and a report.
#include <cstdio>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "command.h"
#include "common.h"
#include "mapkv/compact.h"
#include "rewrite.h"
#include "src/platform/fs.h"

namespace mapkv::tools {
namespace {

struct CompactArgs {
  std::string db;
  std::string output;
  bool quiet = false;
};

int RunCompact(const CompactArgs& args) {
  // Said plainly here, rather than as the failure of whichever system call meets it first.
  absl::StatusOr<bool> exists = internal::PathExists(args.db);
  if (exists.ok() && !*exists) {
    return ReportError("compact", About(args.db, absl::StatusCode::kNotFound, "no such file"),
                       kExitError);
  }
  Progress progress("compacting", 0, args.quiet);
  CompactOptions options;
  FollowProgress(&progress, &options);
  absl::StatusOr<CompactResult> result = Compact(args.db, args.output, options);
  progress.Done();
  if (!result.ok()) {
    const bool refused = absl::IsFailedPrecondition(result.status());
    // The message names the file it is about (DB, NEW, or a temporary file).
    ReportError("compact", result.status(), 0);
    std::fprintf(stderr, "mapkv compact: %s is unchanged\n", args.db.c_str());
    return refused ? kExitDataProblem : kExitError;
  }
  ReportLeftovers("compact", result->in_place ? args.db : args.output, *result);
  const double seconds = static_cast<double>(result->micros) / 1e6;
  const double saved = result->size_before == 0 ? 0
                                                : 100.0 *
                                                      (static_cast<double>(result->size_before) -
                                                       static_cast<double>(result->size_after)) /
                                                      static_cast<double>(result->size_before);
  std::printf(
      "compacted %s%s: %s -> %s (%s bytes -> %s bytes, %.1f%% smaller), %s, %s of live "
      "records, %s (%.1f MiB/s of live data)\n",
      args.db.c_str(), result->in_place ? " in place" : absl::StrCat(" into ", args.output).c_str(),
      Bytes(result->size_before).c_str(), Bytes(result->size_after).c_str(),
      Commas(result->size_before).c_str(), Commas(result->size_after).c_str(), saved,
      Plural(result->keys, "key", "keys").c_str(), Bytes(result->live_bytes).c_str(),
      Seconds(seconds).c_str(), MiBPerSecond(*result));
  if (result->locked_bytes > 0) {
    std::printf("online: the last %s of commits copied holding the writer lock\n",
                Bytes(result->locked_bytes).c_str());
  }
  if (result->dropped > 0) {
    std::printf("dropped %s: expired values, and leases of computations that never finished\n",
                Plural(result->dropped, "cache entry", "cache entries").c_str());
  }
  return kExitOk;
}

}  // namespace

Runner SetupCompact(CLI::App* app) {
  auto args = std::make_shared<CompactArgs>();
  app->description(
      "Rewrites the database with only its live records (`mapkv stat` shows the garbage it "
      "would reclaim): copies them into a fresh file with an index sized for them, flushes it to "
      "disk, then atomically replaces DB with it, or writes it to NEW and leaves DB alone. In "
      "place it is offline: it refuses while any other process has DB open, and other processes' "
      "opens wait while it runs. With --output it is online: it reads DB as of one commit while "
      "other processes go on using it, as `mapkv backup` does.");
  app->add_option("DB", args->db, "the database file")->type_name("")->required();
  app->add_option("-o,--output", args->output,
                  "write the compacted database to NEW (which must not exist) instead of "
                  "replacing DB, from a snapshot of DB, which others may go on using; NEW must be "
                  "on the same file system as its temporary file, beside it")
      ->type_name("NEW");
  AddQuietFlag(app, &args->quiet);
  app->footer(R"text(
Safety:
  - In place: refused (exit 3, DB unchanged) while other handles have DB open; the message says
    how many. `mapkv stat DB` shows the count. Stop the processes using it first. While it runs,
    other processes' opens wait up to their lock_timeout (10 s by default) and then fail.
  - With --output NEW: DB may be in use. NEW holds DB as of one commit, the last one when the
    compaction began; other processes' commits go on meanwhile (a format version 1 file or a
    cache is read under its shared lock: their writers wait until it is read, see `mapkv help
    backup`).
  - The copy goes to a temporary file next to the destination (DEST.compact-PID-RANDOM.tmp). DB is
    not modified until one atomic rename puts the complete, flushed copy in place, followed by a
    flush of the directory. A failure at any point (disk full, a damaged record, permissions)
    removes the temporary file and leaves DB intact (exit 4). If the process is killed, DB is
    intact and openable, and the temporary file stays behind until the next compaction to the same
    destination removes it (it says so). Only a regular file owned by the user running compact
    (or, for root, by DB's owner) is removed; a symbolic link or another user's file of such a
    name is left alone, with a line saying so.
  - In a directory that others may write: the new file's owner and permission bits are set on the
    open file, never by name, and the rename happens only while the temporary name still names
    that file. If another process renames or replaces it meanwhile, compact fails (exit 4) and
    DB stays as it was.
  - The new file keeps DB's permission bits, owner and group, and its growth limit (with --output,
    one made by a user other than root and DB's owner is theirs: see `mapkv help backup`). The
    rename replaces the name: other hard links to DB keep the old file. A symbolic link is
    followed and the file it points to is replaced.
  - Needs free space for the live data (`live` in `mapkv stat`) plus its index beside DB.

Output: "compacted DB in place: BEFORE -> AFTER (... smaller), N keys, ... of live records, TIME
(MiB/s of live data)". A cache's file (mapkv::Cache) loses its expired values and unfinished
computations' leases, and a second line says how many.

Exit status: 0 compacted, 2 bad usage, 3 refused: DB is open elsewhere (in place), 4 error (no
such file, NEW exists, disk full, a damaged record: run `mapkv check DB`).

Examples:
  mapkv compact /var/lib/app/cache.mapkv
  mapkv compact --output /var/lib/app/cache.compact.mapkv /var/lib/app/cache.mapkv
  mapkv stat --json cache.mapkv | jq -e '.garbage_ratio > 0.5' && mapkv compact cache.mapkv)text");
  return [args] { return RunCompact(*args); };
}

}  // namespace mapkv::tools
