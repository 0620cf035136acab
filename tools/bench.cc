// `mapkv bench`: a quick benchmark of the basic operations and a compaction, on a scratch
// database. For careful figures, use bench/ (Google Benchmark, repetitions, a baseline).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "command.h"
#include "common.h"
#include "mapkv/compact.h"
#include "src/platform/fs.h"
#include "testing/subprocess.h"

namespace mapkv::tools {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchArgs {
  uint64_t keys = 200000;
  uint64_t value_size = 100;
  std::string dir;
};

std::string Key(uint64_t i) { return absl::StrFormat("key%013u", i); }  // 16 bytes

struct Row {
  std::string name;
  uint64_t ops;
  double seconds;
};

class Bench {
 public:
  Bench(const BenchArgs& args, std::string path) : args_(args), path_(std::move(path)) {}
  int Run();

 private:
  // Times fn(i) for i in [0, n).
  template <typename Fn>
  bool Time(const std::string& name, uint64_t n, Fn fn) {
    const Clock::time_point start = Clock::now();
    for (uint64_t i = 0; i < n; ++i) {
      absl::Status s = fn(i);
      if (!s.ok()) {
        ReportError("bench", About(name, s.code(), s.message()), kExitError);
        return false;
      }
    }
    rows_.push_back({name, n, std::chrono::duration<double>(Clock::now() - start).count()});
    return true;
  }

  const BenchArgs& args_;
  const std::string path_;
  std::vector<Row> rows_;
};

int Bench::Run() {
  Options options;
  options.error_if_exists = true;
  absl::StatusOr<std::unique_ptr<DB>> opened = DB::Open(path_, options);
  if (!opened.ok()) return ReportError("bench", opened.status(), kExitError);
  DB& db = **opened;
  const uint64_t n = args_.keys;
  std::mt19937_64 rng(42);
  std::vector<uint64_t> order(n);
  for (uint64_t i = 0; i < n; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<uint64_t> reads = order;
  std::shuffle(reads.begin(), reads.end(), rng);
  const std::string value(args_.value_size, 'v');
  const std::string value2(args_.value_size, 'w');

  std::printf("mapkv bench: %s keys of 16 bytes, %s-byte values, one thread, %u CPUs\n",
              Commas(n).c_str(), Commas(args_.value_size).c_str(),
              std::thread::hardware_concurrency());
  std::printf("database   %s\n\n", path_.c_str());
  std::fflush(stdout);
  absl::StatusOr<WriteTxn> txn = absl::UnknownError("no transaction yet");
  bool ok =
      Time("put, insert (one transaction each)", n,
           [&](uint64_t i) { return db.Put(Key(order[i]), value); }) &&
      Time("checkpoint", 1, [&](uint64_t) { return db.Checkpoint(); }) &&
      Time("get, hit", n, [&](uint64_t i) { return db.Get(Key(reads[i])).status(); }) &&
      Time("get, miss", n,
           [&](uint64_t i) {
             absl::Status s = db.Get(Key(n + reads[i])).status();
             return absl::IsNotFound(s) ? absl::OkStatus() : s;
           }) &&
      Time("put, overwrite (one transaction each)", n,
           [&](uint64_t i) { return db.Put(Key(reads[i]), value2); }) &&
      Time("put, in 100-put transactions", n / 100 * 100,
           [&](uint64_t i) {
             // One op per put: a transaction commits every 100th.
             if (i % 100 == 0) {
               txn = db.BeginWrite();
               if (!txn.ok()) return txn.status();
             }
             absl::Status s = txn->Put(Key(order[i]), value);
             if (s.ok() && i % 100 == 99) s = txn->Commit();
             return s;
           }) &&
      Time("delete (half the keys)", n / 2, [&](uint64_t i) { return db.Delete(Key(order[i])); }) &&
      Time("checkpoint", 1, [&](uint64_t) { return db.Checkpoint(); });
  txn = absl::UnknownError("done");
  if (!ok) return kExitError;
  const Stats before = db.GetStats();
  opened->reset();

  const std::string compacted = path_ + ".compacted";
  absl::StatusOr<CompactResult> result = Compact(path_, compacted);
  if (!result.ok()) return ReportError("bench", result.status(), kExitError);

  std::printf("%-40s %12s %12s %14s\n", "operation", "ops", "ns/op", "ops/s");
  for (const Row& row : rows_) {
    std::printf(
        "%-40s %12s %12s %14s\n", row.name.c_str(), Commas(row.ops).c_str(),
        Commas(static_cast<uint64_t>(row.seconds * 1e9 / std::max<uint64_t>(row.ops, 1))).c_str(),
        Commas(static_cast<uint64_t>(row.ops / std::max(row.seconds, 1e-9))).c_str());
  }
  const double seconds = static_cast<double>(result->micros) / 1e6;
  std::printf(
      "\ncompact: %s keys, %s -> %s (garbage was %s) in %s: %.1f MiB/s of live data\n"
      "\nOne run, wall clock, on whatever else this machine is doing: a rough guide. bench/ has\n"
      "repeated, interleaved measurements.\n",
      Commas(result->keys).c_str(), Bytes(before.file_size).c_str(),
      Bytes(result->size_after).c_str(), Bytes(result->garbage_before).c_str(),
      Seconds(seconds).c_str(),
      seconds > 0 ? static_cast<double>(result->live_bytes) / (1 << 20) / seconds : 0.0);
  return kExitOk;
}

int RunBench(const BenchArgs& args) {
  std::string dir = args.dir;
  bool temporary = dir.empty();
  if (temporary) {
    absl::StatusOr<std::string> made = MakeTempDir("mapkv-bench-");
    if (!made.ok()) return ReportError("bench", made.status(), kExitError);
    dir = *made;
  }
  const std::string path = absl::StrCat(dir, "/bench.mapkv");
  int code = Bench(args, path).Run();
  for (const std::string& file : {path, path + ".compacted"}) {
    absl::Status s = internal::RemovePath(file);
    if (!s.ok() && !absl::IsNotFound(s)) ReportError("bench", s, kExitError);
  }
  if (temporary) {
    std::error_code error;
    std::filesystem::remove(dir, error);
  }
  return code;
}

}  // namespace

Runner SetupBench(CLI::App* app) {
  auto args = std::make_shared<BenchArgs>();
  app->description(
      "A quick benchmark on a scratch database: puts (inserts and overwrites, one transaction "
      "each, and 100 per transaction), gets (hits and misses, random order), deletes, a "
      "checkpoint, then a compaction of the result. Prints ns/op and ops/s. Takes a few seconds "
      "with the defaults; the scratch files are removed at the end.");
  app->add_option("-n,--keys", args->keys, "keys to insert")
      ->check(CLI::Range(uint64_t{100}, uint64_t{100000000}))
      ->capture_default_str();
  app->add_option("--value-size", args->value_size, "bytes per value")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 20))
      ->capture_default_str();
  app->add_option("--dir", args->dir,
                  "directory for the scratch database (default: a new temporary directory; use "
                  "the file system you care about)");
  app->footer(R"(
Exit status: 0 done, 2 bad usage, 4 error.

Examples:
  mapkv bench
  mapkv bench --keys 1000000 --dir /var/lib/app)");
  return [args] { return RunBench(*args); };
}

}  // namespace mapkv::tools
