// `mapkv check`: DB::Verify() over the whole file.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "command.h"
#include "common.h"

namespace mapkv::tools {
namespace {

struct CheckArgs {
  std::string db;
  bool quiet = false;
};

int RunCheck(const CheckArgs& args) {
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<DB>> db = OpenDatabase(args.db, OpenMode::kRead, FileKind::kAny);
  if (!db.ok()) {
    // Damage found while opening is a finding of the check, and so is work left for recovery,
    // which a check never does (it would change the file); a missing file is not.
    const bool damaged = absl::IsDataLoss(db.status()) || absl::IsInvalidArgument(db.status()) ||
                         IsNeedsRecovery(db.status());
    if (damaged) {
      // The library's messages name the file.
      std::printf("%s\n", std::string(db.status().message()).c_str());
    }
    if (IsNeedsRecovery(db.status())) return ReportReadOpenError("check", args.db, db.status());
    return ReportError("check", db.status(), damaged ? kExitDataProblem : kExitError);
  }
  const Stats stats = (*db)->GetStats();
  std::vector<VerifyProblem> problems;
  absl::Status verified;
  {
    // Verify() reports no progress: show the time it has taken, so a long check of a large file
    // does not look hung.
    Progress progress(absl::StrCat("checking ", Bytes(stats.log_bytes), " of log"), 0, args.quiet);
    std::atomic<bool> done{false};
    std::thread worker([&] {
      verified = (*db)->Verify(&problems);
      done.store(true);
    });
    while (!done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      progress.Elapsed();
    }
    worker.join();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (verified.ok()) {
    std::printf("%s: ok: %s, %s of log checked in %s\n", args.db.c_str(),
                Plural(stats.keys, "key", "keys").c_str(), Bytes(stats.log_bytes).c_str(),
                Seconds(seconds).c_str());
    return kExitOk;
  }
  for (const VerifyProblem& p : problems) {
    std::printf("%s: offset %llu: %s: %s\n", args.db.c_str(),
                static_cast<unsigned long long>(p.offset), p.kind.c_str(), p.detail.c_str());
  }
  std::fflush(stdout);
  if (!absl::IsDataLoss(verified)) return ReportError("check", verified, kExitError);
  return ReportError(
      "check",
      absl::DataLossError(absl::StrCat(problems.size(), " problem", problems.size() == 1 ? "" : "s",
                                       " found: ", verified.message())),
      kExitDataProblem);
}

}  // namespace

Runner SetupCheck(CLI::App* app) {
  auto args = std::make_shared<CheckArgs>();
  app->description(
      "Checks the whole file: the header, both checkpoint records, every record and batch of the "
      "log (checksums, sequence), and the index against a replay of the log (every live key found "
      "by its own probe, pointing at its latest put; the counters right). Prints one line per "
      "problem, with its offset, to stdout. Opens the database read-only and reads it as of one "
      "commit (a snapshot) while other processes go on committing; a format version 1 file or a "
      "cache is read under the shared lock instead, so their commits wait for it.");
  app->add_option("DB", args->db, "the database file")->type_name("")->required();
  AddQuietFlag(app, &args->quiet);
  app->footer(R"(
Output: "DB: ok: ..." when clean; otherwise "DB: offset N: KIND: DETAIL" per problem, KIND one of
header, checkpoint, log, index, counters.

Exit status: 0 clean, 2 bad usage, 3 problems found (or the file is damaged or not a mapkv file
beyond opening), 4 error (no such file, permission, a lock wait timed out).

A file that needs recovery (a writer died half-way through a commit, or the machine stopped
before it was closed cleanly) is reported as a problem and left as it is: check never writes.
Opening it for writing (any command that writes, or the program that uses it) recovers it.

What to do with problems: first keep a copy of the file. `mapkv dump` stops at the first damaged
record it meets, and `mapkv compact` refuses to copy one; `mapkv salvage DB OUT` copies every
intact record into a new file and says what was lost (`mapkv dump --skip-damaged` lists them).

Examples:
  mapkv check /var/lib/app/cache.mapkv
  mapkv check cache.mapkv || echo "cache.mapkv is damaged" >&2)");
  return [args] { return RunCheck(*args); };
}

}  // namespace mapkv::tools
