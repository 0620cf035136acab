// `mapkv get`, `mapkv put`, `mapkv del`: one key at a time.
#include <cstdio>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cache_values.h"
#include "command.h"
#include "common.h"
#include "records.h"
#include "src/errors.h"
#include "testing/terminal.h"

namespace mapkv::tools {
namespace {

constexpr char kEscapedHelp[] =
    "KEY (and VALUE) are TSV-escaped, as `mapkv dump` writes them: \\\\ \\t \\n \\r \\0 \\xHH";

struct KeyArgs {
  std::string db;
  std::string key;
  bool escaped = false;
  bool expired = false;  // get: show a cache's expired value
  std::string ttl;       // put: a cache entry's time to live
};

void AddKeyArgs(CLI::App* app, KeyArgs* args) {
  app->add_option("DB", args->db, "the database file")->type_name("")->required();
  app->add_option("KEY", args->key, "the key (1 to 65,535 bytes)")->type_name("")->required();
  app->add_flag("-e,--escaped", args->escaped, kEscapedHelp);
}

// The key argument decoded and checked; prints the error and sets *exit_code otherwise.
bool DecodeKey(std::string_view command, const KeyArgs& args, std::string* key, int* exit_code) {
  absl::StatusOr<std::string> decoded = DecodeArgument(args.key, args.escaped, "KEY");
  absl::Status status = decoded.ok() ? internal::CheckKeySize("", *decoded) : decoded.status();
  if (!status.ok()) {
    *exit_code = ReportUsageError(command, status.message());
    return false;
  }
  *key = *std::move(decoded);
  return true;
}

int RunGet(const KeyArgs& args) {
  std::string key;
  int code = kExitOk;
  if (!DecodeKey("get", args, &key, &code)) return code;
  bool cache = false;
  absl::StatusOr<std::unique_ptr<DB>> db = OpenValues(args.db, OpenMode::kRead, &cache);
  if (!db.ok()) return ReportReadOpenError("get", args.db, db.status());
  absl::StatusOr<std::string> stored = (*db)->Get(key);
  auto absent = [&](std::string_view why) {
    return ReportError("get",
                       About(args.db, absl::StatusCode::kNotFound,
                             absl::StrCat("no key \"", EscapeTsv(key, true), "\"",
                                          absl::string_view(why.data(), why.size()))),
                       kExitNotFound);
  };
  if (absl::IsNotFound(stored.status())) return absent("");
  if (!stored.ok()) return ReportReadOpenError("get", args.db, stored.status());
  const ShownValue shown = ShowValue(cache, *stored, NowUnixMs());
  switch (shown.kind) {
    case ShownValue::kValue:
      break;
    case ShownValue::kExpired:
      if (args.expired) break;
      return absent(absl::StrCat(": it expired at ", FormatExpiry(shown.expires_unix_ms),
                                 " (--expired shows it)"));
    case ShownValue::kLease:
      return absent(absl::StrCat(": its value is being computed by pid ", shown.lease_pid));
    case ShownValue::kMalformed:
      return ReportError("get",
                         About(args.db, absl::StatusCode::kDataLoss,
                               absl::StrCat("key \"", EscapeTsv(key, true),
                                            "\": not a cache entry (", stored->size(), " bytes)")),
                         kExitDataProblem);
  }
  const std::string_view value = shown.value;
  if (args.escaped) {
    std::string line = EscapeTsv(value, false) + "\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
  } else {
    std::fwrite(value.data(), 1, value.size(), stdout);
    if (internal::IsTerminal(internal::StdStream::kOut)) std::fputc('\n', stdout);
  }
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    return ReportError("get", About("stdout", absl::StatusCode::kDataLoss, "write error"),
                       kExitError);
  }
  return kExitOk;
}

int RunPut(const KeyArgs& args, const std::string& value_arg) {
  std::string key;
  int code = kExitOk;
  if (!DecodeKey("put", args, &key, &code)) return code;
  std::string value;
  if (value_arg == "-") {
    absl::StatusOr<std::string> in = ReadAllStdin();
    if (!in.ok()) return ReportError("put", in.status(), kExitError);
    value = *std::move(in);
  } else {
    absl::StatusOr<std::string> decoded = DecodeArgument(value_arg, args.escaped, "VALUE");
    if (!decoded.ok()) return ReportUsageError("put", decoded.status().message());
    value = *std::move(decoded);
  }
  if (value.size() > kMaxValueSize) {
    return ReportUsageError("put", absl::StrCat("a value of ", value.size(),
                                                " bytes: values are at most ", kMaxValueSize));
  }
  absl::Duration ttl = absl::ZeroDuration();
  if (!args.ttl.empty() && (!absl::ParseDuration(args.ttl, &ttl) || ttl <= absl::ZeroDuration())) {
    return ReportUsageError(
        "put", absl::StrCat("--ttl \"", args.ttl, "\": a positive duration (90s, 15m, 2h, 1h30m)"));
  }
  bool cache = false;
  // With --ttl the file must be a cache already: a new file would be a database.
  absl::StatusOr<std::unique_ptr<DB>> db =
      OpenValues(args.db, args.ttl.empty() ? OpenMode::kCreate : OpenMode::kWrite, &cache);
  if (!db.ok()) return ReportError("put", db.status(), kExitError);
  if (!args.ttl.empty() && !cache) {
    return ReportUsageError("put", absl::StrCat(args.db,
                                                " is a database, whose values never "
                                                "expire: --ttl is for a cache's file"));
  }
  if (cache) {
    value = EncodeCacheValue(value,
                             args.ttl.empty() ? 0 : NowUnixMs() + absl::ToInt64Milliseconds(ttl));
  }
  absl::Status status = (*db)->Put(key, value);
  if (status.ok()) status = (*db)->Checkpoint();
  if (!status.ok()) return ReportError("put", status, kExitError);
  return kExitOk;
}

int RunDel(const KeyArgs& args, bool force) {
  std::string key;
  int code = kExitOk;
  if (!DecodeKey("del", args, &key, &code)) return code;
  bool cache = false;
  absl::StatusOr<std::unique_ptr<DB>> db = OpenValues(args.db, OpenMode::kWrite, &cache);
  if (!db.ok()) return ReportError("del", db.status(), kExitError);
  // Look and delete in one transaction, so "absent" is the truth at the moment of the delete.
  absl::StatusOr<WriteTxn> txn = (*db)->BeginWrite();
  if (!txn.ok()) return ReportError("del", txn.status(), kExitError);
  absl::StatusOr<std::string_view> old = txn->Get(key);
  if (absl::IsNotFound(old.status())) {
    txn->Abort();
    if (force) return kExitOk;
    return ReportError("del",
                       About(args.db, absl::StatusCode::kNotFound,
                             absl::StrCat("no key \"", EscapeTsv(key, true),
                                          "\" (nothing deleted; -f ignores this)")),
                       kExitNotFound);
  }
  absl::Status status = old.status();
  if (status.ok()) status = txn->Delete(key);
  if (status.ok()) status = txn->Commit();
  if (status.ok()) status = (*db)->Checkpoint();
  if (!status.ok()) return ReportError("del", status, kExitError);
  return kExitOk;
}

constexpr char kKeyFooter[] = R"(
Keys and values are bytes. A shell argument cannot hold a NUL byte: with --escaped, KEY and VALUE
are read in the escaped form of `mapkv dump --format tsv` (\\ \t \n \r \0 \xHH), so any key that
dump shows can be copied into get, put and del.)";

}  // namespace

Runner SetupGet(CLI::App* app) {
  auto args = std::make_shared<KeyArgs>();
  app->description(
      "Prints the value of KEY to stdout: its exact bytes, so `mapkv get DB KEY > file` saves it "
      "unchanged (a line feed follows only when stdout is a terminal). With --escaped the value "
      "is printed escaped, with a line feed. Opens the database read-only.");
  AddKeyArgs(app, args.get());
  app->add_flag("--expired", args->expired,
                "a cache's file: print the value even when it has expired");
  app->footer(absl::StrCat(R"(
A cache's file (mapkv::Cache) is read as the cache reads it: an expired value, or one being
computed, is absent (exit 1, saying which); --expired prints an expired value anyway. Reading does
not count as a hit or a miss in the cache's statistics.

Exit status: 0 found, 1 no such key (or expired), 2 bad usage, 3 the file needs recovery (left
as it is) or the entry is damaged, 4 error (no such file, not a mapkv file, ...).
)",
                           kKeyFooter, R"(

Examples:
  mapkv get /var/lib/app/cache.mapkv user/42
  mapkv get cache.mapkv avatar/42 > avatar.png
  mapkv get --escaped cache.mapkv 'bin\x00key'
  if mapkv get cache.mapkv lock/job7 >/dev/null 2>&1; then echo held; fi)"));
  return [args] { return RunGet(*args); };
}

Runner SetupPut(CLI::App* app) {
  auto args = std::make_shared<KeyArgs>();
  auto value = std::make_shared<std::string>();
  app->description(
      "Sets KEY to VALUE in one transaction, then checkpoints, so the change is on disk when the "
      "command returns. VALUE `-` reads the value from stdin, every byte of it (binary-safe; "
      "`echo` adds a line feed, `printf %s` does not). Creates the database when it is missing.");
  AddKeyArgs(app, args.get());
  app->add_option("VALUE", *value, "the value, or - to read it from stdin")
      ->type_name("")
      ->required();
  app->add_option("--ttl", args->ttl,
                  "a cache's file: the value expires after DURATION (90s, 15m, 2h); without it, "
                  "never. The file must exist and be a cache")
      ->type_name("DURATION");
  app->footer(absl::StrCat(R"(
On a cache's file (mapkv::Cache) the value is stored as Cache::Put stores it, with --ttl's expiry.

Exit status: 0 stored, 2 bad usage (--ttl on a database), 4 error (cannot create or open the
file, database full, ...).
)",
                           kKeyFooter, R"( To store the literal value "-", pass --escaped '\x2d'.

Examples:
  mapkv put cache.mapkv user/42 Ada
  mapkv put --ttl 15m cache.mapkv session/7 token
  mapkv put cache.mapkv avatar/42 - < avatar.png
  printf 'line one\nline two' | mapkv put cache.mapkv note/1 -
  mapkv put --escaped cache.mapkv 'tab\tkey' 'value\x00with NUL')"));
  return [args, value] { return RunPut(*args, *value); };
}

Runner SetupDel(CLI::App* app) {
  auto args = std::make_shared<KeyArgs>();
  auto force = std::make_shared<bool>(false);
  app->description(
      "Deletes KEY in one transaction, then checkpoints. Exits 1, deleting nothing, when KEY is "
      "absent, unless -f is given. Works on a cache's file too (an expired entry is deleted "
      "as any other).");
  AddKeyArgs(app, args.get());
  app->add_flag("-f,--force", *force, "exit 0 when KEY is absent (as rm -f)");
  app->footer(absl::StrCat(R"(
Exit status: 0 deleted, 1 no such key (without -f), 2 bad usage, 4 error.
)",
                           kKeyFooter, R"(

Examples:
  mapkv del cache.mapkv user/42
  mapkv dump cache.mapkv | grep '^session/' | cut -f1 |
    xargs -d '\n' -n1 mapkv del --escaped cache.mapkv --)"));
  return [args, force] { return RunDel(*args, *force); };
}

}  // namespace mapkv::tools
