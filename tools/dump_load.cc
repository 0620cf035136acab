// `mapkv dump` and `mapkv load`: every record as text, and back (formats in records.h).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "command.h"
#include "common.h"
#include "records.h"
#include "src/platform/fs.h"

namespace mapkv::tools {
namespace {

using Clock = std::chrono::steady_clock;

struct DumpArgs {
  std::string db;
  std::string format = "tsv";
  bool quiet = false;
};

struct LoadArgs {
  std::string db;
  std::string file = "-";
  std::string format = "tsv";
  uint64_t batch = 0;
  uint64_t max_value = kMaxValueSize;
  bool quiet = false;
};

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int RunDump(const DumpArgs& args) {
  absl::StatusOr<Format> format = ParseFormat(args.format);
  if (!format.ok()) return ReportUsageError("dump", format.status().message());
  absl::StatusOr<std::unique_ptr<DB>> db = OpenDatabase(args.db, OpenMode::kRead);
  if (!db.ok()) return ReportError("dump", args.db, db.status(), kExitError);
  absl::StatusOr<ReadTxn> read = (*db)->BeginRead();
  if (!read.ok()) return ReportError("dump", args.db, read.status(), kExitError);

  std::vector<char> buffer(1 << 20);
  std::setvbuf(stdout, buffer.data(), _IOFBF, buffer.size());
  Progress progress("dumping", read->Count(), args.quiet);
  uint64_t records = 0;
  bool write_failed = false;
  absl::Status walk = read->ForEach([&](std::string_view key, std::string_view value) {
    const std::string line = FormatRecord(*format, key, value);
    if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size()) {
      write_failed = true;
      return false;
    }
    if (++records % 1024 == 0) progress.Update(records);
    return true;
  });
  progress.Done();
  const bool flushed = std::fflush(stdout) == 0;
  std::setvbuf(stdout, nullptr, _IOFBF, BUFSIZ);  // the buffer goes out of scope
  if (write_failed || !flushed) {
    return ReportError("dump", "stdout",
                       absl::DataLossError(absl::StrCat("write error after ", records,
                                                        " records: ", std::strerror(errno))),
                       kExitError);
  }
  if (!walk.ok()) {
    return ReportError(
        "dump", args.db,
        absl::Status(walk.code(), absl::StrCat(walk.message(), " (after ", records,
                                               " records; `mapkv check` tells more)")),
        kExitDataProblem);
  }
  return kExitOk;
}

int RunLoad(const LoadArgs& args) {
  absl::StatusOr<Format> format = ParseFormat(args.format);
  if (!format.ok()) return ReportUsageError("load", format.status().message());
  const bool from_stdin = args.file == "-";
  const std::string input_name = from_stdin ? "stdin" : args.file;
  std::FILE* in = stdin;
  uint64_t input_size = 0;
  if (from_stdin) {
  } else {
    in = std::fopen(args.file.c_str(), "rb");
    if (in == nullptr) {
      return ReportError("load", args.file,
                         absl::NotFoundError(absl::StrCat("cannot open: ", std::strerror(errno))),
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

  absl::StatusOr<std::unique_ptr<DB>> db = OpenDatabase(args.db, OpenMode::kCreate);
  if (!db.ok()) return ReportError("load", args.db, db.status(), kExitError);
  const Clock::time_point start = Clock::now();
  RecordReader reader(in, *format, input_name, args.max_value);
  Progress progress("loading", input_size, args.quiet);
  absl::StatusOr<WriteTxn> txn = (*db)->BeginWrite();
  if (!txn.ok()) return ReportError("load", args.db, txn.status(), kExitError);
  uint64_t records = 0, bytes = 0, in_batch = 0, committed = 0;
  // Reports a failure and what of the load was committed before it.
  auto fail = [&](std::string_view where, const absl::Status& status) {
    progress.Done();
    ReportError("load", where, status, kExitError);
    std::fprintf(stderr, "mapkv load: %s\n",
                 committed == 0 ? "nothing was loaded"
                                : absl::StrCat("the first ", committed,
                                               " records were loaded (committed batches)")
                                      .c_str());
    return kExitError;
  };
  Record record;
  for (;;) {
    absl::StatusOr<bool> more = reader.Next(&record);
    if (!more.ok()) {
      txn->Abort();
      return fail(input_name, more.status());
    }
    if (!*more) break;
    absl::Status status = CheckKeySize(record.key);
    if (!status.ok()) {
      status = absl::InvalidArgumentError(
          absl::StrCat(input_name, ":", reader.line(), ": ", status.message()));
    } else {
      status = txn->Put(record.key, record.value);
    }
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
      return fail(absl::IsInvalidArgument(status) ? input_name : args.db, status);
    }
    ++records;
    bytes += record.key.size() + record.value.size();
    if (records % 1024 == 0) progress.Update(input_size > 0 ? reader.bytes_read() : records);
  }
  absl::Status status = txn->Commit();
  if (status.ok()) status = (*db)->Checkpoint();
  progress.Done();
  if (!status.ok()) return ReportError("load", args.db, status, kExitError);
  const double seconds = SecondsSince(start);
  std::printf("loaded %s records (%s of keys and values) from %s into %s in %s\n",
              Commas(records).c_str(), Bytes(bytes).c_str(), input_name.c_str(), args.db.c_str(),
              Seconds(seconds).c_str());
  return kExitOk;
}

constexpr char kFormats[] = R"(
Formats (one record a line; binary-safe, so dump then load gives the same keys and values):
  tsv    KEY<TAB>VALUE, each escaped: \\ \t \n \r, \xHH for other control bytes and for a '#'
         starting a key; bytes 0x80-0xFF as they are (UTF-8 text stays readable). Load skips
         blank lines and '#' comment lines, and accepts \0 and CRLF line ends.
  jsonl  {"key":"...","value":"..."} with JSON string escapes when the bytes are valid UTF-8;
         "key_base64" / "value_base64" (standard base64) when they are not.)";

}  // namespace

Runner SetupDump(CLI::App* app) {
  auto args = std::make_shared<DumpArgs>();
  app->description(
      "Writes every record of the database to stdout, one a line, in index order (no particular "
      "order: pipe through `sort` for a stable listing). One read transaction: a consistent "
      "snapshot. Opens the database read-only.");
  app->add_option("DB", args->db, "the database file")->type_name("")->required();
  app->add_option("-f,--format", args->format, "tsv or jsonl")
      ->type_name("FORMAT")
      ->check(CLI::IsMember({"tsv", "jsonl"}))
      ->capture_default_str();
  AddQuietFlag(app, &args->quiet);
  app->footer(absl::StrCat(kFormats, R"(

A dump holds the shared lock from start to end: other processes' commits wait for it (up to their
lock_timeout, 10 s by default). On a busy database, dump to a file, not into a slow pipe.

Exit status: 0 dumped, 2 bad usage, 3 a damaged record stopped the dump, 4 error.

Examples:
  mapkv dump cache.mapkv > cache.tsv
  mapkv dump cache.mapkv | sort | diff - yesterday.tsv
  mapkv dump --format jsonl cache.mapkv | jq -r .key
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
  AddQuietFlag(app, &args->quiet);
  app->footer(absl::StrCat(kFormats, R"(

Exit status: 0 loaded, 2 bad usage, 4 error: a malformed line (FILE:LINE: what is wrong; nothing
is loaded, or with --batch only the batches committed before it; a value over --max-value, or a
line longer than any record with one could be, refused before it is read whole), a missing file,
database full.

Examples:
  mapkv load cache.mapkv data/iso_codes.tsv
  mapkv dump old.mapkv | mapkv load new.mapkv
  mapkv load --format jsonl --batch 100000 cache.mapkv export.jsonl
  printf 'greeting\thello\\tworld\n' | mapkv load cache.mapkv)"));
  return [args] { return RunLoad(*args); };
}

}  // namespace mapkv::tools
