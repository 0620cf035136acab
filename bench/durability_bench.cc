// Commit latency and throughput per durability mode: mapkv's kNone, kPeriodic and kSync beside
// LMDB and SQLite in their matching sync modes. The driver behind docs/benchmarks.md's
// durability table.
//
//   build/bench/mapkv_durability_bench [--seconds=2.5] [--threads=1,4] [--puts=1] [--value=100]
//       [--keys=100000] [--stores=mapkv,lmdb,sqlite] [--rounds=1] [--dir=/var/tmp] [--csv=FILE]
//
// Every store in every mode (the durability kinds of bench/kv_<store>.h, whose header says the
// store's settings) gets a new database in a new directory under --dir (the file system must be a
// real one: on tmpfs a flush costs nothing), loaded with --keys keys of 16 bytes and values of
// --value bytes (in key order, in transactions of 10,000 puts) and then flushed (KvStore::Sync),
// so that the timed run does not pay for the load's write-back. Then T writer threads, for each T
// in --threads, each with its own handle (KvBackend::Open; a process's handles share the store's
// one object where the store has one), start together and commit for --seconds: each commit is one
// transaction of --puts puts, each overwriting a random key of the loaded ones with a value from a
// pool (every thread has its own random sequence). The database and its directory are removed after
// each run; LMDB and SQLite rows appear only when CMake found their libraries (the output says
// which were skipped and why).
//
// Figures, per run: commits/s is commits over the wall time from the start to the last thread's
// end; commits per CPU-s is commits over the process's user + system CPU time in that span
// (getrusage RUSAGE_SELF: the machine this runs on is shared and noisy, and CPU time is what stays
// comparable; a flush's wait for the disk is not CPU time, and neither is the kernel's own
// write-back and journal work on other threads); CPUs busy is CPU time over wall time; latency is
// of one commit as its caller sees it (the steady clock around KvStore::Commit, which includes
// the wait for the other writers), percentiles over every commit of every thread. With --rounds=R
// every configuration runs R times, round-robin, and the table shows the run with the median
// commits/s and the range over the R runs.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <latch>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/kv_mapkv.h"
#include "bench/kv_store.h"
#include "testing/subprocess.h"
#if MAPKV_BENCH_HAVE_LMDB
#include "bench/kv_lmdb.h"
#endif
#if MAPKV_BENCH_HAVE_SQLITE
#include "bench/kv_sqlite.h"
#endif

namespace mapkv::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kKeySize = 16;
constexpr uint64_t kSeed = 0x6d61706b76626e63ull;  // same keys as mapkv_bench
constexpr size_t kValuePool = 64 << 10;
constexpr size_t kLoadBatch = 10'000;

// ------------------------------------------------------------------------------------- stores

// A store this binary can measure, or says why it cannot.
struct StoreEntry {
  std::string flag;              // its name in --stores
  std::vector<StoreKind> modes;  // one kind per mode
  std::string missing;           // non-empty: not built in, and why
};

std::vector<StoreEntry> AllStores() {
  std::vector<StoreEntry> stores;
  stores.push_back({"mapkv", MapkvDurabilityKinds(), ""});
#if MAPKV_BENCH_HAVE_LMDB
  stores.push_back({"lmdb", LmdbDurabilityKinds(), ""});
#else
  stores.push_back({"lmdb",
                    {},
                    "CMake did not find lmdb.h and liblmdb when this binary was configured "
                    "(Debian: apt-get install liblmdb-dev, then run cmake again)"});
#endif
#if MAPKV_BENCH_HAVE_SQLITE
  stores.push_back({"sqlite", SqliteDurabilityKinds(), ""});
#else
  stores.push_back({"sqlite",
                    {},
                    "CMake did not find sqlite3.h and libsqlite3 when this binary was configured "
                    "(Debian: apt-get install libsqlite3-dev, then run cmake again)"});
#endif
  return stores;
}

// ------------------------------------------------------------------------------------- flags

struct Config {
  double seconds = 2.5;
  std::vector<int> threads = {1, 4};
  int puts = 1;
  size_t value_size = 100;
  uint64_t keys = 100'000;
  std::vector<std::string> stores = {"mapkv", "lmdb", "sqlite"};
  int rounds = 1;
  std::string dir = "/var/tmp";
  std::string csv;  // empty: no CSV
};

// The flags, parsed by CLI11 into `config` (--help lists them with their defaults).
void AddFlags(CLI::App& app, Config& config) {
  app.option_defaults()->always_capture_default();
  app.description(
      "mapkv's durability benchmark: commit latency and throughput per durability mode, beside\n"
      "LMDB and SQLite in their matching sync modes when they are built in.");
  app.add_option("--seconds", config.seconds, "seconds per run")->check(CLI::Range(0.01, 3600.0));
  app.add_option("--threads", config.threads, "writer thread counts (comma-separated)")
      ->delimiter(',')
      ->check(CLI::Range(1, 256));
  app.add_option("--puts", config.puts, "puts per commit")->check(CLI::Range(1, 100'000));
  app.add_option("--value", config.value_size, "value size in bytes")
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--keys", config.keys, "keys the puts overwrite")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32));
  app.add_option("--stores", config.stores, "stores to run")
      ->delimiter(',')
      ->check(CLI::IsMember({"mapkv", "lmdb", "sqlite"}));
  app.add_option("--rounds", config.rounds, "rounds of every mode")->check(CLI::Range(1, 100));
  app.add_option("--dir", config.dir, "where the databases go (a disk, not tmpfs)");
  app.add_option("--csv", config.csv, "also write the results as CSV to this file");
}

// ------------------------------------------------------------------------------------- data

// A bijection on 64-bit integers (splitmix64's finaliser): distinct inputs give distinct keys.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The keys in one flat buffer, and the values' pool; read-only once made.
struct Data {
  std::string keys;
  std::string value_pool;
  size_t value_size = 0;

  uint64_t n() const { return keys.size() / kKeySize; }
  std::string_view key(uint64_t i) const {
    return std::string_view(keys).substr(i * kKeySize, kKeySize);
  }
  std::string_view value(uint64_t i) const {
    return std::string_view(value_pool).substr(i % kValuePool, value_size);
  }
};

Data MakeData(const Config& config) {
  static constexpr char kHex[] = "0123456789abcdef";
  Data data;
  data.value_size = config.value_size;
  data.keys.resize(config.keys * kKeySize);
  for (uint64_t id = 0; id < config.keys; ++id) {
    uint64_t bits = Mix(kSeed + id);
    char* key = data.keys.data() + id * kKeySize;
    for (size_t i = 0; i < kKeySize; ++i) key[i] = kHex[(bits >> (60 - 4 * i)) & 0xf];
  }
  std::mt19937_64 rng(kSeed);
  data.value_pool.resize(kValuePool + config.value_size);
  for (char& c : data.value_pool) c = static_cast<char>('a' + rng() % 26);
  return data;
}

// Loads every key in key order (a bulk load, which the B-trees take fastest), then flushes.
absl::Status Load(const Data& data, KvStore* store) {
  std::vector<uint64_t> order(data.n());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](uint64_t a, uint64_t b) { return data.key(a) < data.key(b); });
  std::vector<KvPair> batch;
  for (uint64_t begin = 0; begin < data.n(); begin += kLoadBatch) {
    batch.clear();
    for (uint64_t i = begin; i < std::min(data.n(), begin + kLoadBatch); ++i) {
      batch.push_back({data.key(order[i]), data.value(order[i] * 97)});
    }
    if (absl::Status s = store->Commit(batch); !s.ok()) return s;
  }
  return store->Sync();
}

// ------------------------------------------------------------------------------------- runs

struct Result {
  uint64_t commits = 0;
  double wall_seconds = 0;
  double cpu_seconds = 0;
  double latency_us[4] = {};  // p50, p99, p99.9, max
  uint64_t fewest = 0;        // commits of the writer with the fewest
  uint64_t most = 0;          // and with the most

  double CommitsPerSecond() const { return static_cast<double>(commits) / wall_seconds; }
  double CommitsPerCpuSecond() const { return static_cast<double>(commits) / cpu_seconds; }
};

// What one writer thread does and finds.
struct Worker {
  std::unique_ptr<KvStore> writer;
  std::vector<int64_t> latencies_ns;
  Clock::time_point end;
  absl::Status status;
};

void RunWorker(const Config& config, const Data& data, uint64_t seed, std::latch* go,
               Clock::time_point* deadline, Worker* w) {
  std::mt19937_64 rng(seed);
  std::vector<KvPair> puts(config.puts);
  go->wait();
  const Clock::time_point stop = *deadline;
  Clock::time_point now;
  do {
    for (KvPair& kv : puts) {
      kv.key = data.key(rng() % data.n());
      kv.value = data.value(rng());
    }
    Clock::time_point begin = Clock::now();
    absl::Status s = w->writer->Commit(puts);
    now = Clock::now();
    if (!s.ok()) {
      w->status = s;
      break;
    }
    w->latencies_ns.push_back((now - begin).count());
  } while (now < stop);
  w->end = now;
}

// One store in one mode with `threads` writers, in a new directory `dir` that it removes.
absl::StatusOr<Result> RunOne(const Config& config, const Data& data, const StoreKind& mode,
                              int threads, const std::string& dir, uint64_t seed) {
  std::error_code error;
  if (!std::filesystem::create_directory(dir, error)) {
    return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", error.message()));
  }
  absl::StatusOr<Result> result = [&]() -> absl::StatusOr<Result> {
    absl::StatusOr<std::unique_ptr<KvBackend>> backend = mode.create(dir, config.keys);
    if (!backend.ok()) return backend.status();
    // The first handle loads and stays open to the end (SQLite: the WAL stays).
    absl::StatusOr<std::unique_ptr<KvStore>> store = (*backend)->Open(Access::kCreate);
    if (!store.ok()) return store.status();
    if (absl::Status s = Load(data, store->get()); !s.ok()) return s;

    std::vector<Worker> workers(threads);
    for (Worker& w : workers) {
      absl::StatusOr<std::unique_ptr<KvStore>> writer = (*backend)->Open(Access::kWrite);
      if (!writer.ok()) return writer.status();
      w.writer = *std::move(writer);
      // 32 MiB in all: room for a default run of the fastest store (4M commits) without a
      // reallocation in the timed loop.
      w.latencies_ns.reserve((size_t{1} << 22) / threads);
    }
    std::latch go(1);
    Clock::time_point deadline;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back(RunWorker, std::cref(config), std::cref(data), Mix(seed + t), &go,
                        &deadline, &workers[t]);
    }
    const double cpu_start = tools::ProcessCpuSeconds();
    const Clock::time_point start = Clock::now();
    deadline = start + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(config.seconds));
    go.count_down();
    for (std::thread& t : pool) t.join();
    const double cpu_end = tools::ProcessCpuSeconds();

    Result r;
    Clock::time_point last = start;
    std::vector<int64_t> all;
    for (Worker& w : workers) {
      if (!w.status.ok()) return w.status;
      last = std::max(last, w.end);
      r.commits += w.latencies_ns.size();
      r.fewest = &w == &workers.front() ? w.latencies_ns.size()
                                        : std::min<uint64_t>(r.fewest, w.latencies_ns.size());
      r.most = std::max<uint64_t>(r.most, w.latencies_ns.size());
      all.insert(all.end(), w.latencies_ns.begin(), w.latencies_ns.end());
    }
    if (all.empty()) return absl::InternalError("no commit finished");
    r.wall_seconds = std::chrono::duration<double>(last - start).count();
    r.cpu_seconds = std::max(cpu_end - cpu_start, 1e-6);
    const double quantiles[3] = {0.5, 0.99, 0.999};
    for (int q = 0; q < 3; ++q) {
      auto at =
          all.begin() + std::min(all.size() - 1, static_cast<size_t>(quantiles[q] * all.size()));
      std::nth_element(all.begin(), at, all.end());
      r.latency_us[q] = static_cast<double>(*at) / 1e3;
    }
    r.latency_us[3] = static_cast<double>(*std::max_element(all.begin(), all.end())) / 1e3;
    return r;
  }();
  std::filesystem::remove_all(dir, error);
  return result;
}

// ------------------------------------------------------------------------------------- output

std::string Rate(double per_second) {
  if (per_second >= 1e6) return absl::StrFormat("%.2f M", per_second / 1e6);
  if (per_second >= 1e3) return absl::StrFormat("%.1f k", per_second / 1e3);
  return absl::StrFormat("%.0f", per_second);
}

std::string Micros(double us) {
  if (us >= 10'000) return absl::StrFormat("%.0f ms", us / 1e3);
  if (us >= 1'000) return absl::StrFormat("%.1f ms", us / 1e3);
  return us >= 100 ? absl::StrFormat("%.0f us", us) : absl::StrFormat("%.1f us", us);
}

// The table's groups: what a commit leaves for a flush.
const char* SyncClassName(SyncClass c) {
  switch (c) {
    case SyncClass::kNone:
      return "no sync";
    case SyncClass::kPeriodic:
      return "middle";
    case SyncClass::kSync:
      return "sync";
  }
  return "?";
}

std::string FirstLine(const char* path, std::string_view prefix = "") {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

std::string CpuName() {
  std::string line = FirstLine("/proc/cpuinfo", "model name");
  size_t colon = line.find(':');
  if (colon == std::string::npos) return "unknown CPU";
  return line.substr(line.find_first_not_of(' ', colon + 1));
}

// The file system holding `path`, from /proc/mounts (the longest mount point above it), as
// "ext4 on /dev/vda mounted at /"; best effort.
std::string FileSystemOf(const std::string& path) {
  std::error_code error;
  std::string canonical = std::filesystem::weakly_canonical(path, error).string();
  std::ifstream in("/proc/mounts");
  std::string device, mount_point, type, rest, best;
  size_t best_length = 0;
  while (in >> device >> mount_point >> type && std::getline(in, rest)) {
    bool above = canonical.rfind(mount_point, 0) == 0 &&
                 (mount_point == "/" || canonical.size() == mount_point.size() ||
                  canonical[mount_point.size()] == '/');
    if (above && mount_point.size() >= best_length) {
      best_length = mount_point.size();
      best = absl::StrCat(type, " on ", device, " mounted at ", mount_point);
    }
  }
  return best.empty() ? "unknown" : best;
}

void PrintMachine(int argc, char** argv, const Config& config) {
  std::vector<std::string> args(argv, argv + argc);
  std::string load = FirstLine("/proc/loadavg");
  std::printf("machine: %u hardware threads, %s, Linux %s; load average before the run: %s; %s\n",
              std::thread::hardware_concurrency(), CpuName().c_str(),
              FirstLine("/proc/sys/kernel/osrelease").c_str(),
              load.substr(0, load.find(' ', load.find(' ', load.find(' ') + 1) + 1)).c_str(),
              absl::FormatTime("%Y-%m-%d %H:%M %Z", absl::Now(), absl::UTCTimeZone()).c_str());
  std::string fs = FileSystemOf(config.dir);
  std::printf("directory: %s (%s)\n", config.dir.c_str(), fs.c_str());
  if (fs.rfind("tmpfs", 0) == 0 || fs.rfind("ramfs", 0) == 0) {
    std::printf(
        "WARNING: %s is in memory: a flush costs nothing there, the sync rows mean "
        "nothing.\n",
        config.dir.c_str());
  }
  std::printf("command: %s\n", absl::StrJoin(args, " ").c_str());
  std::fflush(stdout);
}

struct Row {
  const StoreKind* mode;
  int threads;
  std::vector<Result> runs;

  // The run with the median commits/s.
  const Result& Median() const {
    std::vector<const Result*> sorted;
    for (const Result& r : runs) sorted.push_back(&r);
    std::sort(sorted.begin(), sorted.end(), [](const Result* a, const Result* b) {
      return a->CommitsPerSecond() < b->CommitsPerSecond();
    });
    return *sorted[sorted.size() / 2];
  }
};

void PrintTable(const Config& config, const std::vector<Row>& rows) {
  std::printf(
      "\n## Commits of %d put%s (%zu-byte key, %zu-byte value, overwriting one of %s keys), "
      "%g s per run%s\n\n",
      config.puts, config.puts == 1 ? "" : "s", kKeySize, config.value_size,
      absl::StrCat(config.keys).c_str(), config.seconds,
      config.rounds > 1
          ? absl::StrCat(", median of ", config.rounds, " runs (range: min-max)").c_str()
          : "");
  std::printf(
      "| writers | group | store | mode | commits/s |%s commits per CPU-s | CPUs busy | "
      "fewest/most per writer | p50 | p99 | p99.9 | max |\n"
      "| ---: | --- | --- | --- | ---: |%s ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
      config.rounds > 1 ? " range |" : "", config.rounds > 1 ? " ---: |" : "");
  std::vector<const StoreKind*> modes;
  for (const Row& row : rows) {
    if (std::find(modes.begin(), modes.end(), row.mode) == modes.end()) modes.push_back(row.mode);
    const Result& r = row.Median();
    std::string range;
    if (config.rounds > 1) {
      double low = 1e300, high = 0;
      for (const Result& run : row.runs) {
        low = std::min(low, run.CommitsPerSecond());
        high = std::max(high, run.CommitsPerSecond());
      }
      range = absl::StrCat(" ", Rate(low), "-", Rate(high), " |");
    }
    std::printf("| %d | %s | %s | %s | %s |%s %s | %.2f | %.2f | %s | %s | %s | %s |\n",
                row.threads, SyncClassName(row.mode->sync_class), row.mode->name.c_str(),
                row.mode->mode.c_str(), Rate(r.CommitsPerSecond()).c_str(), range.c_str(),
                Rate(r.CommitsPerCpuSecond()).c_str(), r.cpu_seconds / r.wall_seconds,
                static_cast<double>(r.fewest) / static_cast<double>(r.most),
                Micros(r.latency_us[0]).c_str(), Micros(r.latency_us[1]).c_str(),
                Micros(r.latency_us[2]).c_str(), Micros(r.latency_us[3]).c_str());
  }
  std::printf("\nWhat a power cut loses:\n");
  for (const StoreKind* mode : modes) {
    std::printf("- %s %s: %s\n", mode->name.c_str(), mode->mode.c_str(), mode->power_cut.c_str());
  }
  std::fflush(stdout);
}

absl::Status WriteCsv(const Config& config, const std::vector<Row>& rows) {
  std::ofstream out(config.csv);
  out << "store,mode,class,writers,puts_per_commit,value_bytes,keys,round,seconds,commits,"
         "wall_s,cpu_s,commits_per_s,commits_per_cpu_s,fewest_per_writer,most_per_writer,"
         "p50_us,p99_us,p999_us,max_us\n";
  for (const Row& row : rows) {
    for (size_t i = 0; i < row.runs.size(); ++i) {
      const Result& r = row.runs[i];
      out << absl::StrFormat(
          "%s,%s,%s,%d,%d,%d,%d,%d,%g,%d,%.4f,%.4f,%.1f,%.1f,%d,%d,%.2f,%.2f,%.2f,%.2f\n",
          row.mode->name, row.mode->mode, SyncClassName(row.mode->sync_class), row.threads,
          config.puts, config.value_size, config.keys, i + 1, config.seconds, r.commits,
          r.wall_seconds, r.cpu_seconds, r.CommitsPerSecond(), r.CommitsPerCpuSecond(), r.fewest,
          r.most, r.latency_us[0], r.latency_us[1], r.latency_us[2], r.latency_us[3]);
    }
  }
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", config.csv));
  return absl::OkStatus();
}

absl::Status Main(const Config& config, int argc, char** argv) {
  // The modes to run, by group, then store. Stores asked for but not built in are named with
  // the reason.
  const std::vector<StoreEntry> stores = AllStores();
  std::vector<const StoreKind*> modes;
  std::vector<std::string> skipped;
  for (const StoreEntry& store : stores) {
    if (std::find(config.stores.begin(), config.stores.end(), store.flag) == config.stores.end()) {
      skipped.push_back(absl::StrCat(store.flag, ": not in --stores"));
    } else if (!store.missing.empty()) {
      skipped.push_back(absl::StrCat(store.flag, ": ", store.missing));
    } else {
      for (const StoreKind& mode : store.modes) modes.push_back(&mode);
    }
  }
  std::stable_sort(modes.begin(), modes.end(), [](const StoreKind* a, const StoreKind* b) {
    return a->sync_class < b->sync_class;
  });

  PrintMachine(argc, argv, config);
  for (const std::string& s : skipped) std::printf("skipped %s\n", s.c_str());
  std::fflush(stdout);
  if (modes.empty()) return absl::InvalidArgumentError("no store to run");

  std::error_code error;
  std::string top;
  std::random_device random;
  for (int attempt = 0; attempt < 100 && top.empty(); ++attempt) {
    std::string dir = absl::StrCat(config.dir, "/mapkv_durability.", random());
    if (std::filesystem::create_directory(dir, error)) top = dir;
  }
  if (top.empty()) {
    return absl::InternalError(
        absl::StrCat("cannot make a directory in ", config.dir, ": ", error.message()));
  }

  const Data data = MakeData(config);
  std::vector<Row> rows;
  for (int threads : config.threads) {
    for (const StoreKind* mode : modes) rows.push_back({mode, threads, {}});
  }
  // Run (and show) the rows to be compared next to each other in time: the disk's flush latency
  // on a shared machine drifts over minutes.
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return a.mode->sync_class != b.mode->sync_class ? a.mode->sync_class < b.mode->sync_class
                                                    : a.threads < b.threads;
  });
  absl::Status status;
  uint64_t serial = 0;
  for (int round = 0; round < config.rounds && status.ok(); ++round) {
    for (Row& row : rows) {
      ++serial;
      std::string dir = absl::StrCat(top, "/", serial);
      absl::StatusOr<Result> r =
          RunOne(config, data, *row.mode, row.threads, dir, Mix(kSeed ^ (serial << 16)));
      if (!r.ok()) {
        status =
            absl::InternalError(absl::StrCat(row.mode->name, " ", row.mode->mode, ", ", row.threads,
                                             " writers: ", r.status().ToString()));
        break;
      }
      std::fprintf(stderr, "[%zu/%zu] %s %s, %d writers: %s commits/s, p99 %s\n",
                   static_cast<size_t>(serial), rows.size() * config.rounds, row.mode->name.c_str(),
                   row.mode->mode.c_str(), row.threads, Rate(r->CommitsPerSecond()).c_str(),
                   Micros(r->latency_us[1]).c_str());
      row.runs.push_back(*r);
    }
  }
  std::filesystem::remove_all(top, error);
  if (!status.ok()) return status;

  PrintTable(config, rows);
  if (!config.csv.empty()) return WriteCsv(config, rows);
  return absl::OkStatus();
}

}  // namespace
}  // namespace mapkv::bench

int main(int argc, char** argv) {
  mapkv::bench::Config config;
  CLI::App app;
  mapkv::bench::AddFlags(app, config);
  CLI11_PARSE(app, argc, argv);
  absl::Status status = mapkv::bench::Main(config, argc, argv);
  if (!status.ok()) {
    std::fprintf(stderr, "mapkv_durability_bench: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
