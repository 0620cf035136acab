// `mapkv dump` and `mapkv load`: every record as text, and back (formats in records.h).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "cache_values.h"
#include "command.h"
#include "common.h"
#include "records.h"
#include "scan.h"
#include "src/errors.h"
#include "src/platform/fs.h"

namespace mapkv::tools {
namespace {

using Clock = std::chrono::steady_clock;

struct DumpArgs {
  std::string db;
  std::string format = "tsv";
  bool expired = false;
  bool skip_damaged = false;
  bool quiet = false;
};

struct LoadArgs {
  std::string db;
  std::string file = "-";
  std::string format = "tsv";
  uint64_t batch = 0;
  uint64_t max_value = kMaxValueSize;
  bool comments = false;
  std::vector<int> columns;
  bool strict = false;
  std::string ttl;
  bool quiet = false;
};

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Writes records to stdout through a large buffer, and says what a cache's dump left out.
class DumpWriter {
 public:
  DumpWriter(Format format, bool cache, bool expired)
      : format_(format), cache_(cache), expired_(expired), now_(NowUnixMs()), buffer_(1 << 20) {
    std::setvbuf(stdout, buffer_.data(), _IOFBF, buffer_.size());
  }
  ~DumpWriter() { std::setvbuf(stdout, nullptr, _IOFBF, BUFSIZ); }  // the buffer goes away

  // False when stdout fails.
  bool Write(std::string_view key, std::string_view stored) {
    const ShownValue shown = ShowValue(cache_, stored, now_);
    switch (shown.kind) {
      case ShownValue::kValue:
        break;
      case ShownValue::kExpired:
        if (expired_) break;
        ++skipped_expired_;
        return true;
      case ShownValue::kLease:
        ++skipped_leases_;
        return true;
      case ShownValue::kMalformed:
        ++malformed_;
        return true;
    }
    const std::string line =
        FormatRecord(format_, key, shown.value, cache_ ? shown.expires_unix_ms : -1);
    if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size()) return false;
    ++records_;
    return true;
  }
  bool Flush() { return std::fflush(stdout) == 0; }
  uint64_t records() const { return records_; }

  // One line on stderr for what was not listed; malformed entries make the dump fail.
  void ReportSkipped(const std::string& path) const {
    std::vector<std::string> parts;
    if (skipped_expired_ > 0) {
      parts.push_back(absl::StrCat(Plural(skipped_expired_, "expired entry", "expired entries"),
                                   " (--expired lists them)"));
    }
    if (skipped_leases_ > 0) {
      parts.push_back(
          absl::StrCat(Plural(skipped_leases_, "key", "keys"), " whose value is being computed"));
    }
    if (malformed_ > 0) {
      parts.push_back(absl::StrCat(Plural(malformed_, "value that is", "values that are"),
                                   " no cache entry (damaged: `mapkv check`)"));
    }
    if (!parts.empty()) {
      std::fprintf(stderr, "mapkv dump: %s: not listed: %s\n", path.c_str(),
                   absl::StrJoin(parts, ", ").c_str());
    }
  }
  uint64_t malformed() const { return malformed_; }

 private:
  Format format_;
  bool cache_;
  bool expired_;
  int64_t now_;
  std::vector<char> buffer_;
  uint64_t records_ = 0;
  uint64_t skipped_expired_ = 0;
  uint64_t skipped_leases_ = 0;
  uint64_t malformed_ = 0;
};

int ReportWriteError(uint64_t records) {
  return ReportError("dump",
                     About("stdout", absl::StatusCode::kDataLoss,
                           absl::StrCat("write error after ", Plural(records, "record", "records"),
                                        ": ", std::strerror(errno))),
                     kExitError);
}

// dump --skip-damaged: the latest intact version of every key, from a scan of the log (scan.h).
int DumpScanned(const DumpArgs& args, Format format) {
  absl::StatusOr<LogScan> scan = LogScan::Read(args.db);
  if (!scan.ok()) return ReportError("dump", scan.status(), kExitError);
  DumpWriter writer(format, scan->is_cache(), args.expired);
  bool write_failed = false;
  scan->ForEach([&](std::string_view key, std::string_view value) {
    write_failed = !writer.Write(key, value);
    return !write_failed;
  });
  if (write_failed || !writer.Flush()) return ReportWriteError(writer.records());
  writer.ReportSkipped(args.db);
  if (scan->damaged().empty() && writer.malformed() == 0) return kExitOk;
  std::fprintf(
      stderr, "mapkv dump: %s: %s skipped (%s); listed the latest intact version of each key%s\n",
      args.db.c_str(), Plural(scan->damaged().size(), "damaged region", "damaged regions").c_str(),
      Plural(scan->damaged_bytes(), "byte", "bytes").c_str(),
      scan->lost_latest() ? absl::StrCat("; lost: ", Plural(*scan->lost_latest(), "key", "keys"),
                                         " whose latest version is damaged")
                                .c_str()
                          : "");
  return kExitDataProblem;
}

int RunDump(const DumpArgs& args) {
  absl::StatusOr<Format> format = ParseFormat(args.format);
  if (!format.ok()) return ReportUsageError("dump", format.status().message());
  if (args.skip_damaged) return DumpScanned(args, *format);
  bool cache = false;
  absl::StatusOr<std::unique_ptr<DB>> db = OpenValues(args.db, OpenMode::kRead, &cache);
  if (!db.ok()) return ReportReadOpenError("dump", args.db, db.status());
  absl::StatusOr<ReadTxn> read = (*db)->BeginRead();
  if (!read.ok()) return ReportReadOpenError("dump", args.db, read.status());

  DumpWriter writer(*format, cache, args.expired);
  Progress progress("dumping", read->Count(), args.quiet);
  uint64_t seen = 0;
  bool write_failed = false;
  absl::Status walk = read->ForEach([&](std::string_view key, std::string_view value) {
    if (!writer.Write(key, value)) {
      write_failed = true;
      return false;
    }
    if (++seen % 1024 == 0) progress.Update(seen);
    return true;
  });
  progress.Done();
  if (write_failed || !writer.Flush()) return ReportWriteError(writer.records());
  writer.ReportSkipped(args.db);
  if (!walk.ok()) {
    return ReportError(
        "dump",
        absl::Status(walk.code(),
                     absl::StrCat(walk.message(), " (after ", Plural(seen, "record", "records"),
                                  "; `mapkv dump --skip-damaged` lists every intact record, "
                                  "`mapkv salvage` copies them, `mapkv check` tells more)")),
        kExitDataProblem);
  }
  return writer.malformed() > 0 ? kExitDataProblem : kExitOk;
}

int RunLoad(const LoadArgs& args) {
  absl::StatusOr<Format> format = ParseFormat(args.format);
  if (!format.ok()) return ReportUsageError("load", format.status().message());
  ParseOptions parse;
  parse.comments = args.comments;
  parse.strict_fields = args.strict;
  if (!args.columns.empty()) {
    if (args.columns.size() < 2 || args.columns.size() > 3) {
      return ReportUsageError("load", "--columns wants KEY,VALUE or KEY,VALUE,EXPIRES (1-based)");
    }
    parse.columns = true;
    parse.key_column = args.columns[0];
    parse.value_column = args.columns[1];
    parse.expiry_column = args.columns.size() == 3 ? args.columns[2] : 0;
  }
  absl::Duration ttl = absl::ZeroDuration();
  if (!args.ttl.empty() && (!absl::ParseDuration(args.ttl, &ttl) || ttl <= absl::ZeroDuration())) {
    return ReportUsageError(
        "load", absl::StrCat("--ttl \"", args.ttl, "\": a positive duration (90s, 15m, 2h)"));
  }
  const bool from_stdin = args.file == "-";
  const std::string input_name = from_stdin ? "stdin" : args.file;
  std::FILE* in = stdin;
  uint64_t input_size = 0;
  if (!from_stdin) {
    in = std::fopen(args.file.c_str(), "rb");
    if (in == nullptr) {
      return ReportError("load",
                         About(args.file, absl::StatusCode::kNotFound,
                               absl::StrCat("cannot open: ", std::strerror(errno))),
                         kExitError);
    }
    absl::StatusOr<internal::FileInfo> info = internal::StatFile(args.file);
    if (info.ok() && info->regular) input_size = info->size;
  }
  struct Closer {
    std::FILE* f;
    ~Closer() {
      if (f != stdin) std::fclose(f);
    }
  } closer{in};

  absl::StatusOr<bool> existed = internal::PathExists(args.db);
  if (!existed.ok()) return ReportError("load", existed.status(), kExitError);
  bool cache = false;
  absl::StatusOr<std::unique_ptr<DB>> db = OpenValues(args.db, OpenMode::kCreate, &cache);
  if (!db.ok()) return ReportError("load", db.status(), kExitError);
  const bool created = !*existed;
  // Usage errors that depend on the kind of file: a file this load created goes again.
  auto refuse = [&](std::string_view message) {
    db->reset();
    if (created) internal::RemovePath(args.db).IgnoreError();
    return ReportUsageError("load", absl::string_view(message.data(), message.size()));
  };
  if (!cache && !args.ttl.empty()) {
    return refuse(absl::StrCat(args.db,
                               " is a database, whose values never expire: --ttl is "
                               "for a cache's file"));
  }
  if (!cache && parse.expiry_column > 0) {
    return refuse(absl::StrCat(args.db,
                               " is a database, whose values never expire: --columns' "
                               "third column, the expiry, is for a cache's file"));
  }
  if (cache && !parse.columns) parse.expiry_column = 3;  // as a cache's dump writes it

  const Clock::time_point start = Clock::now();
  const int64_t now = NowUnixMs();
  const int64_t default_expiry = args.ttl.empty() ? 0 : now + absl::ToInt64Milliseconds(ttl);
  RecordReader reader(in, *format, input_name, args.max_value, parse);
  Progress progress("loading", input_size, args.quiet);
  absl::StatusOr<WriteTxn> txn = (*db)->BeginWrite();
  if (!txn.ok()) return ReportError("load", txn.status(), kExitError);
  uint64_t records = 0, bytes = 0, in_batch = 0, committed = 0, expired = 0, ignored_expiry = 0;
  // Reports a failure and what of the load was kept; a file the load created is removed.
  auto fail = [&](const absl::Status& status) {
    progress.Done();
    ReportError("load", status, kExitError);
    if (txn.ok()) txn->Abort();
    std::string kept =
        committed == 0 ? "nothing was loaded"
                       : absl::StrCat("the first ", Plural(committed, "record was", "records were"),
                                      " loaded (committed batches)");
    if (created) {
      db->reset();
      const absl::Status removed = internal::RemovePath(args.db);
      kept = removed.ok() ? absl::StrCat(committed == 0 ? "nothing was loaded" : "nothing is kept",
                                         ": removed ", args.db, ", which this load created")
                          : absl::StrCat(kept, "; ", args.db,
                                         " was created by this load, and "
                                         "removing it failed: ",
                                         removed.message());
    }
    std::fprintf(stderr, "mapkv load: %s\n", kept.c_str());
    return kExitError;
  };
  Record record;
  std::string stored;
  for (;;) {
    absl::StatusOr<bool> more = reader.Next(&record);
    if (!more.ok()) return fail(more.status());
    if (!*more) break;
    absl::Status status = internal::CheckKeySize("", record.key);
    std::string_view value = record.value;
    if (!status.ok()) {
      status = absl::InvalidArgumentError(
          absl::StrCat(input_name, ":", reader.line(), ": ", status.message()));
    } else if (cache) {
      const int64_t expires = record.expires_unix_ms >= 0 ? record.expires_unix_ms : default_expiry;
      if (expires != 0 && expires <= now) {
        ++expired;
        continue;
      }
      stored = EncodeCacheValue(record.value, expires);
      value = stored;
    } else if (record.expires_unix_ms > 0) {
      ++ignored_expiry;
    }
    if (status.ok()) status = txn->Put(record.key, value);
    if (status.ok() && args.batch > 0 && ++in_batch == args.batch) {
      status = txn->Commit();
      if (status.ok()) {
        committed = records + 1;
        in_batch = 0;
        txn = (*db)->BeginWrite();
        status = txn.status();
      }
    }
    if (!status.ok()) {
      return fail(status);
    }
    ++records;
    bytes += record.key.size() + record.value.size();
    if (records % 1024 == 0) progress.Update(input_size > 0 ? reader.bytes_read() : records);
  }
  absl::Status status = txn->Commit();
  if (status.ok()) status = (*db)->Checkpoint();
  if (!status.ok()) return fail(status);
  progress.Done();
  const double seconds = SecondsSince(start);
  std::printf("loaded %s (%s of keys and values) from %s into %s in %s\n",
              Plural(records, "record", "records").c_str(), Bytes(bytes).c_str(),
              input_name.c_str(), args.db.c_str(), Seconds(seconds).c_str());
  std::vector<std::string> skipped;
  if (reader.comment_lines() > 0) {
    skipped.push_back(Plural(reader.comment_lines(), "comment line", "comment lines"));
  }
  if (reader.blank_lines() > 0) {
    skipped.push_back(Plural(reader.blank_lines(), "blank line", "blank lines"));
  }
  if (expired > 0) {
    skipped.push_back(
        absl::StrCat(Plural(expired, "record", "records"), " already expired (not loaded)"));
  }
  if (!skipped.empty()) std::printf("skipped %s\n", absl::StrJoin(skipped, ", ").c_str());
  if (ignored_expiry > 0) {
    std::printf("ignored the expiry of %s: %s is a database, whose values never expire\n",
                Plural(ignored_expiry, "record", "records").c_str(), args.db.c_str());
  }
  return kExitOk;
}

constexpr char kFormats[] = R"(
Formats (one record a line; binary-safe, so dump then load gives the same keys and values):
  tsv    KEY<TAB>VALUE, each escaped: \\ \t \n \r, \xHH for other control bytes and for a '#'
         starting a key; bytes 0x80-0xFF as they are (UTF-8 text stays readable). Load accepts
         \0 and CRLF line ends, skips blank lines (and counts them), and skips lines that start
         with '#' only with --comments (without it, such a line is a record like any other).
         A cache's file adds a third column, the expiry: 2026-12-07T03:04:05.000Z or never.
  jsonl  {"key":"...","value":"..."} with JSON string escapes when the bytes are valid UTF-8;
         "key_base64" / "value_base64" (standard base64) when they are not; a cache's file adds
         "expires". Load ignores other fields (--strict refuses them).)";

}  // namespace

Runner SetupDump(CLI::App* app) {
  auto args = std::make_shared<DumpArgs>();
  app->description(
      "Writes every record of the database to stdout, one a line, in index order (no particular "
      "order: pipe through `sort` for a stable listing). One read transaction: a consistent "
      "snapshot. Opens the database read-only.");
  app->add_option("DB", args->db, "the database file (or a cache's file)")
      ->type_name("")
      ->required();
  app->add_option("-f,--format", args->format, "tsv or jsonl")
      ->type_name("FORMAT")
      ->check(CLI::IsMember({"tsv", "jsonl"}))
      ->capture_default_str();
  app->add_flag("--expired", args->expired, "a cache's file: list expired entries too");
  app->add_flag("--skip-damaged", args->skip_damaged,
                "read the log record by record, past damaged records, instead of through the "
                "index: lists the latest intact version of every key, as `mapkv salvage` "
                "recovers them (exit 3 when there was damage; reads the whole file into memory)");
  AddQuietFlag(app, &args->quiet);
  app->footer(absl::StrCat(kFormats, R"(

A cache's file (mapkv::Cache): each line carries the entry's expiry; expired entries, and keys
whose value is being computed, are left out (stderr says how many); --expired lists expired
entries too. Dumping does not count as hits or misses.

A dump reads a snapshot: the database as of one commit, the last one when it began, however long
it takes (into a slow pipe, say), while other processes go on committing; `mapkv stat` lists it
meanwhile. A format version 1 file (made before snapshots) or a cache is read under the shared
lock instead, from start to end: other processes' commits wait for it (up to their lock_timeout,
10 s by default). Dump such a file to a file, not into a slow pipe.

Exit status: 0 dumped, 2 bad usage, 3 a damaged record stopped the dump (with --skip-damaged:
damage was skipped), or the file needs recovery (it is left as it is), 4 error.

Examples:
  mapkv dump cache.mapkv > cache.tsv
  mapkv dump cache.mapkv | sort | diff - yesterday.tsv
  mapkv dump --format jsonl cache.mapkv | jq -r .key
  mapkv dump --skip-damaged damaged.mapkv > rescued.tsv
  mapkv dump old.mapkv | mapkv load new.mapkv)"));
  return [args] { return RunDump(*args); };
}

Runner SetupLoad(CLI::App* app) {
  auto args = std::make_shared<LoadArgs>();
  app->description(
      "Reads records from FILE (or stdin) and puts them into the database, creating it when it is "
      "missing; a key already there is overwritten, and a key repeated in the input keeps its "
      "last value. By default one write transaction: all or nothing. Checkpoints at the end, so "
      "the records are on disk when it returns.");
  app->add_option("DB", args->db, "the database file (created when missing)")
      ->type_name("")
      ->required();
  app->add_option("FILE", args->file, "the input; - or nothing: stdin")
      ->type_name("")
      ->capture_default_str();
  app->add_option("-f,--format", args->format, "tsv or jsonl")
      ->type_name("FORMAT")
      ->check(CLI::IsMember({"tsv", "jsonl"}))
      ->capture_default_str();
  app->add_option("-b,--batch", args->batch,
                  "commit every N records (0: one transaction for the whole input). One "
                  "transaction holds the writer lock throughout: other writers wait")
      ->type_name("N")
      ->capture_default_str();
  app->add_option("--max-value", args->max_value,
                  "refuse values longer than BYTES. A line is read only as far as the longest "
                  "record with such a value could go (in its longest escapes: 4 bytes a byte in "
                  "tsv, 6 in jsonl), so this also bounds the memory load takes")
      ->type_name("BYTES")
      ->check(CLI::Range(uint64_t{0}, kMaxValueSize))
      ->capture_default_str();
  app->add_flag("--comments", args->comments,
                "tsv: skip lines that start with '#' (counted in the summary)");
  app->add_option("--columns", args->columns,
                  "tsv: the 1-based columns of the key and the value (and of a cache's expiry); "
                  "the other columns are ignored. Without it a line has exactly two (a cache's: "
                  "two or three)")
      ->type_name("K,V[,E]")
      ->delimiter(',')
      ->expected(2, 3)
      ->check(CLI::Range(1, 1000));
  app->add_flag("--strict", args->strict,
                "jsonl: refuse fields other than key, value (or *_base64) and expires");
  app->add_option("--ttl", args->ttl,
                  "a cache's file: records without an expiry of their own expire after DURATION "
                  "(90s, 15m, 2h); without it, never")
      ->type_name("DURATION");
  AddQuietFlag(app, &args->quiet);
  app->footer(absl::StrCat(kFormats, R"(

No line is dropped silently: every line is a record, a blank line, a comment (with --comments),
or an error that stops the load. The summary counts the lines skipped.

A cache's file (mapkv::Cache): each record is stored as Cache::Put stores it, with the expiry of
its line (a cache's dump), or --ttl, or none; a record whose expiry has passed is not loaded (the
summary counts it).

Exit status: 0 loaded, 2 bad usage, 4 error: a malformed line (FILE:LINE: what is wrong; nothing
is loaded, or with --batch only the batches committed before it; a value over --max-value, or a
line longer than any record with one could be, refused before it is read whole), a missing file,
database full. A database the failed load created is removed.

Examples:
  mapkv load --comments cache.mapkv data/iso_codes.tsv
  cut -f1,3 export.tsv | mapkv load cache.mapkv
  mapkv load --columns 2,5 cache.mapkv export.tsv
  mapkv dump old.mapkv | mapkv load new.mapkv
  mapkv load --format jsonl --batch 100000 cache.mapkv export.jsonl
  printf 'greeting\thello\\tworld\n' | mapkv load cache.mapkv)"));
  return [args] { return RunLoad(*args); };
}

}  // namespace mapkv::tools
