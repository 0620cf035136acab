// `mapkv salvage`: every intact record of a damaged file into a new one (as sqlite3's .recover,
// tkrzw_dbm_util's restore and LevelDB's RepairDB do). The log is scanned record by record past
// any damage (scan.h); DB is read with stdio and never changed; OUT is written as compaction
// writes: into a temporary file beside it, flushed, then renamed into place, which fails when OUT
// exists.
#include <cstdio>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "command.h"
#include "common.h"
#include "scan.h"
#include "src/platform/fs.h"
#include "src/platform/process.h"

namespace mapkv::tools {
namespace {

struct SalvageArgs {
  std::string db;
  std::string out;
  uint64_t batch = 100000;
  bool quiet = false;
};

// Writes the latest intact version of every key into a new file at `tmp`.
absl::Status WriteSalvaged(const LogScan& scan, const std::string& tmp, uint64_t batch,
                           Progress* progress) {
  Options options;
  options.kind = scan.is_cache() ? FileKind::kCache : FileKind::kDatabase;
  options.error_if_exists = true;
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(tmp, options);
  if (!db.ok()) return db.status();
  absl::StatusOr<WriteTxn> txn = (*db)->BeginWrite();
  if (!txn.ok()) return txn.status();
  absl::Status status;
  uint64_t done = 0;
  scan.ForEach([&](std::string_view key, std::string_view value) {
    status = txn->Put(key, value);
    if (status.ok() && ++done % batch == 0) {
      status = txn->Commit();
      if (status.ok()) {
        txn = (*db)->BeginWrite();
        status = txn.status();
      }
    }
    if (done % 1024 == 0) progress->Update(done);
    return status.ok();
  });
  if (status.ok()) status = txn->Commit();
  if (status.ok()) status = (*db)->Checkpoint();
  return status;
}

int RunSalvage(const SalvageArgs& args) {
  absl::StatusOr<bool> exists = internal::PathExists(args.out);
  if (!exists.ok()) return ReportError("salvage", exists.status(), kExitError);
  if (*exists) {
    return ReportError(
        "salvage",
        About(args.out, absl::StatusCode::kAlreadyExists, "exists: salvage writes a new file"),
        kExitError);
  }
  Progress progress("reading", 0, args.quiet);
  progress.Update(0, true);
  absl::StatusOr<LogScan> scan = LogScan::Read(args.db);
  if (!scan.ok()) {
    progress.Done();
    return ReportError("salvage", scan.status(), kExitError);
  }
  progress.set_label("writing");
  progress.set_total(scan->live_keys());
  const std::string tmp = absl::StrCat(args.out, ".salvage-", internal::CurrentPid(), ".tmp");
  absl::Status status = WriteSalvaged(*scan, tmp, args.batch, &progress);
  if (status.ok()) status = internal::RenameNoReplace(tmp, args.out);
  if (status.ok()) status = internal::SyncDirectoryOf(args.out);
  progress.Done();
  if (!status.ok()) {
    internal::RemovePath(tmp).IgnoreError();
    ReportError("salvage", status, kExitError);
    std::fprintf(stderr, "mapkv salvage: %s was not written; %s is unchanged\n", args.out.c_str(),
                 args.db.c_str());
    return kExitError;
  }

  std::printf("salvaged %s into %s: %s (the latest intact version of each), from %s\n",
              args.db.c_str(), args.out.c_str(), Plural(scan->live_keys(), "key", "keys").c_str(),
              Plural(scan->intact_records(), "intact record", "intact records").c_str());
  if (!scan->used_committed_tail()) {
    std::printf(
        "the committed end of the log is unreadable: scanned to the end of the file, "
        "keeping only batches that end intact\n");
  }
  const uint64_t regions = scan->damaged().size();
  if (regions > 0) {
    std::vector<std::string> where;
    for (size_t i = 0; i < regions && i < 10; ++i) {
      where.push_back(
          absl::StrCat(scan->damaged()[i].offset, " (", scan->damaged()[i].bytes, " bytes)"));
    }
    std::printf("damaged: %s, %s skipped, at offset%s %s%s\n",
                Plural(regions, "region", "regions").c_str(),
                Plural(scan->damaged_bytes(), "byte", "bytes").c_str(), regions == 1 ? "" : "s",
                absl::StrJoin(where, ", ").c_str(), regions > 10 ? ", ..." : "");
  }
  if (scan->lost_latest()) {
    std::printf("lost: %s whose latest version is damaged (an older one may have been recovered)\n",
                Plural(*scan->lost_latest(), "key", "keys").c_str());
  } else {
    std::printf("lost: unknown: the index table is damaged too, so the keys lost are not known\n");
  }
  if (scan->dropped_records() > 0) {
    std::printf(
        "dropped: %s of batches that do not end intact (the committed end of the log is "
        "unreadable, so such a batch may never have been committed)\n",
        Plural(scan->dropped_records(), "intact record", "intact records").c_str());
  }
  const bool lost = regions > 0 || scan->dropped_records() > 0 || !scan->used_committed_tail() ||
                    scan->lost_latest().value_or(1) > 0;
  return lost ? kExitDataProblem : kExitOk;
}

}  // namespace

Runner SetupSalvage(CLI::App* app) {
  auto args = std::make_shared<SalvageArgs>();
  app->description(
      "Copies every intact record of DB, damaged or not, into a new file OUT: it reads the log "
      "record by record, goes past damaged records to the next intact one, and keeps the latest "
      "intact version of each key. DB is only read (never opened by the engine, locked or "
      "changed). OUT is written as compaction writes: into a temporary file beside it, flushed, "
      "then renamed; it must not exist. Reports what was recovered and what was lost.");
  app->add_option("DB", args->db, "the damaged file (a database or a cache without a capacity)")
      ->type_name("")
      ->required();
  app->add_option("OUT", args->out, "the new file (must not exist)")->type_name("")->required();
  app->add_option("-b,--batch", args->batch, "records per write transaction in OUT")
      ->type_name("N")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40))
      ->capture_default_str();
  AddQuietFlag(app, &args->quiet);
  app->footer(R"(
How: records are 8-byte aligned with a checksummed header whose checksum depends on the record's
offset; after a record that fails, the scan tries every following 8-byte boundary until a record
verifies again. Every intact record below the log's committed end was committed; log order is
commit order, so the last intact put or delete of a key is its latest intact version. A key whose
latest version is damaged comes back with an older intact version, if any, or not at all.

Output (stdout):
  salvaged DB into OUT: N keys (the latest intact version of each), from M intact records
  damaged: R regions, B bytes skipped, at offsets ...
  lost: K keys whose latest version is damaged (counted from DB's index, when it is intact)

Not for a cache with a capacity (format version 3, a ring): `mapkv dump` and `mapkv check` it.
DB is read into memory whole.

Exit status: 0 salvaged, nothing damaged; 2 bad usage; 3 salvaged, with damage found and
reported; 4 error (no such file, not a mapkv file, OUT exists, disk full: OUT is not written).

Examples:
  mapkv check app.mapkv || mapkv salvage app.mapkv app.salvaged.mapkv
  mapkv salvage app.mapkv app.salvaged.mapkv; mapkv check app.salvaged.mapkv)");
  return [args] { return RunSalvage(*args); };
}

}  // namespace mapkv::tools
