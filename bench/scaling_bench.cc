// Multi-process read scaling of mapkv: the workload driver behind docs/benchmarks.md.
//
//   build/bench/mapkv_scaling_bench [--keys=1000000] [--seconds=2] [--procs=1,2,4] [--value=100]
//       [--writers=put,txn] [--txn_puts=10] [--mixed_readers=get] [--parts=scaling,mixed]
//       [--dir=DIR]
//
// One database of --keys keys (16 bytes, values of --value bytes) is loaded once by this process
// in write transactions of 10,000 puts, then checkpointed so that the kernel's write-back of the
// load is not measured. Every measured process is a forked child that opens its own handle after
// the fork (a handle never crosses a fork), prepares its keys, warms its page tables, reports
// ready, and waits at a StartGate so that all of a round start together. Each runs --seconds and
// sends back its operations, its wall time and its CPU time (user + system) through a pipe.
//
// Part 1, read scaling: P reader processes for each P in --procs, in two series: DB::Get (copies
// the value; optimistic, writes nothing shared) and ReadTxn::Get (zero-copy, inside a ReadTxn
// renewed every 1,000 Gets). Each reader walks all keys in its own random permutation (its own
// seed), so processes do not march through the same cache lines in step.
//
// Part 2, mixed: one writer process committing as fast as it can (DB::Put overwriting a random
// existing key, one transaction each; or WriteTxns of --txn_puts such puts) beside N reader
// processes, N in --procs. Reader throughput is compared with N readers alone, measured just
// before. The writer times every commit (DB::Put, or WriteTxn::Commit alone for a transaction)
// with the steady clock and reports percentiles.
//
// Figures: "total ops/s" is the sum over processes of ops / own wall time; "ops per CPU-s" is
// total ops / total CPU seconds; "CPUs busy" is total CPU seconds / mean wall time, which shows
// when a round has more processes than the machine has cores (they then share them, and the total
// cannot grow).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
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
#include "mapkv/db.h"
#include "testing/subprocess.h"

namespace mapkv {
namespace {

using Clock = std::chrono::steady_clock;
using tools::ChildProcess;
using tools::StartGate;

constexpr size_t kKeySize = 16;
constexpr uint64_t kSeed = 0x6d61706b76626e63ull;  // same keys as mapkv_bench
constexpr size_t kValuePool = 64 << 10;
constexpr size_t kLoadBatch = 10'000;
constexpr int kReadTxnGets = 1'000;  // Gets per ReadTxn, and per look at the clock
constexpr size_t kWarmStride = 8;    // warm-up Gets every 8th key: touches every page once or more
constexpr auto kReadyTimeout = std::chrono::seconds(120);
constexpr auto kReportSlack = std::chrono::seconds(60);

enum class ReadMode { kGet, kReadTxn };
enum class WriteMode { kPut, kTxn };

const char* ReadModeName(ReadMode mode) {
  return mode == ReadMode::kGet ? "DB::Get" : "ReadTxn::Get";
}

struct Config {
  uint64_t keys = 1'000'000;
  double seconds = 2;
  std::vector<int> procs = {1, 2, 4};
  size_t value_size = 100;
  std::vector<WriteMode> writers = {WriteMode::kPut, WriteMode::kTxn};
  int txn_puts = 10;
  std::vector<ReadMode> mixed_readers = {ReadMode::kGet};
  bool scaling = true;
  bool mixed = true;
  std::string dir;  // empty: a new temporary directory, removed at exit
};

std::string WriteModeName(const Config& config, WriteMode mode) {
  return mode == WriteMode::kPut ? "DB::Put" : absl::StrCat(config.txn_puts, "-put WriteTxn");
}

// ------------------------------------------------------------------------------------- flags

// The flags, parsed by CLI11 into `config` (--help lists them with their defaults).
void AddFlags(CLI::App& app, Config& config) {
  app.option_defaults()->always_capture_default();
  app.description(
      "mapkv's multi-process benchmark: read scaling over reader processes, and readers beside\n"
      "a writer process (see the comment at the top of bench/scaling_bench.cc).");
  app.add_option("--keys", config.keys, "keys in the database")
      ->check(CLI::Range(uint64_t{100}, uint64_t{1} << 32));
  app.add_option("--seconds", config.seconds, "seconds per round")->check(CLI::Range(0.01, 3600.0));
  app.add_option("--procs", config.procs, "reader process counts (comma-separated)")
      ->delimiter(',')
      ->check(CLI::Range(1, 512));
  app.add_option("--value", config.value_size, "value size in bytes")
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--txn_puts", config.txn_puts, "puts per writer transaction")
      ->check(CLI::Range(1, 100'000));
  const std::map<std::string, WriteMode> writers = {{"put", WriteMode::kPut},
                                                    {"txn", WriteMode::kTxn}};
  app.add_option("--writers", config.writers, "writer modes of the mixed part: put, txn")
      ->delimiter(',')
      ->transform(CLI::CheckedTransformer(writers));
  const std::map<std::string, ReadMode> readers = {{"get", ReadMode::kGet},
                                                   {"txn", ReadMode::kReadTxn}};
  app.add_option("--mixed_readers", config.mixed_readers,
                 "reader modes of the mixed part: get, txn")
      ->delimiter(',')
      ->transform(CLI::CheckedTransformer(readers));
  app.add_option_function<std::vector<std::string>>(
         "--parts",
         [&config](const std::vector<std::string>& parts) {
           config.scaling = std::find(parts.begin(), parts.end(), "scaling") != parts.end();
           config.mixed = std::find(parts.begin(), parts.end(), "mixed") != parts.end();
         },
         "parts to run: scaling, mixed (both by default)")
      ->delimiter(',')
      ->check(CLI::IsMember({"scaling", "mixed"}));
  app.add_option("--dir", config.dir,
                 "where the database goes (default: a new temporary directory)");
}

// ------------------------------------------------------------------------------------- data

// A bijection on 64-bit integers (splitmix64's finaliser): distinct inputs give distinct keys.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// What every child inherits from the parent (read-only after the fork, so the pages stay shared):
// the keys in load order in one flat buffer, and the values' pool.
struct Data {
  Config config;
  std::string path;
  std::string load_keys;
  std::string value_pool;

  uint64_t n() const { return config.keys; }
  std::string_view key(size_t i) const {
    return std::string_view(load_keys).substr(i * kKeySize, kKeySize);
  }
  std::string_view value(size_t i) const {
    return std::string_view(value_pool).substr((i * 97) % kValuePool, config.value_size);
  }
};

void MakeData(Data* data) {
  static constexpr char kHex[] = "0123456789abcdef";
  data->load_keys.resize(data->n() * kKeySize);
  for (uint64_t id = 0; id < data->n(); ++id) {
    uint64_t bits = Mix(kSeed + id);
    char* key = data->load_keys.data() + id * kKeySize;
    for (size_t i = 0; i < kKeySize; ++i) key[i] = kHex[(bits >> (60 - 4 * i)) & 0xf];
  }
  std::mt19937_64 rng(kSeed);
  data->value_pool.resize(kValuePool + data->config.value_size);
  for (char& c : data->value_pool) c = static_cast<char>('a' + rng() % 26);
}

absl::Status Load(const Data& data, DB* db) {
  for (uint64_t begin = 0; begin < data.n(); begin += kLoadBatch) {
    absl::StatusOr<WriteTxn> txn = db->BeginWrite();
    if (!txn.ok()) return txn.status();
    for (uint64_t i = begin; i < std::min(data.n(), begin + kLoadBatch); ++i) {
      if (absl::Status status = txn->Put(data.key(i), data.value(i)); !status.ok()) return status;
    }
    if (absl::Status status = txn->Commit(); !status.ok()) return status;
  }
  return db->Checkpoint();
}

// ------------------------------------------------------------------------------------- children

// What a child sends back: a plain struct through the pipe.
struct Report {
  uint64_t ops = 0;      // Gets, or puts for the writer
  uint64_t commits = 0;  // writer only
  uint64_t errors = 0;
  double wall_seconds = 0;
  double cpu_seconds = 0;
  double latency_us[4] = {};  // writer only: p50, p99, p99.9, max of a commit
  char first_error[200] = {};
};

void NoteError(Report* report, std::string_view message) {
  if (report->errors++ == 0) {
    size_t size = std::min(message.size(), sizeof(report->first_error) - 1);
    std::memcpy(report->first_error, message.data(), size);
    report->first_error[size] = '\0';
  }
}

struct Role {
  bool writer = false;
  ReadMode read_mode = ReadMode::kGet;
  WriteMode write_mode = WriteMode::kPut;
  uint64_t seed = 0;
};

class Child {
 public:
  Child(const Data& data, const Role& role, Report* report)
      : data_(data), role_(role), report_(report), rng_(role.seed) {}

  // Everything before the start: the handle, the keys to read, warm page tables.
  bool Prepare() {
    Options options;
    options.create_if_missing = false;
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(data_.path, options);
    if (!db.ok()) {
      NoteError(report_, absl::StrCat("DB::Open: ", db.status().ToString()));
      return false;
    }
    db_ = *std::move(db);
    // A new process maps the file afresh: its first touch of each page is a page fault. Touch
    // them all now (records in log order, index slots at random) so that the timed loop does not
    // pay for them.
    for (size_t i = 0; i < data_.n(); i += kWarmStride) {
      absl::StatusOr<std::string> value = db_->Get(data_.key(i));
      if (!value.ok()) {
        NoteError(report_, absl::StrCat("warm-up Get: ", value.status().ToString()));
        return false;
      }
    }
    if (role_.writer) {
      latencies_.reserve(size_t{1} << 22);
      return true;
    }
    // The keys in this process's own random order, in a flat buffer: fetching the next key is a
    // sequential read, not a cache miss charged to the store.
    std::vector<uint32_t> order(data_.n());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng_);
    read_keys_.resize(data_.n() * kKeySize);
    for (size_t i = 0; i < order.size(); ++i) {
      std::memcpy(read_keys_.data() + i * kKeySize, data_.key(order[i]).data(), kKeySize);
    }
    return true;
  }

  void Run() {
    double cpu_start = tools::ProcessCpuSeconds();
    Clock::time_point start = Clock::now();
    Clock::time_point end = start + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(data_.config.seconds));
    if (role_.writer) {
      RunWriter(end);
    } else if (role_.read_mode == ReadMode::kGet) {
      RunGets(end);
    } else {
      RunReadTxns(end);
    }
    report_->wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    report_->cpu_seconds = tools::ProcessCpuSeconds() - cpu_start;
    if (role_.writer) Percentiles();
  }

  void Close() { db_.reset(); }

 private:
  std::string_view read_key(size_t i) const {
    return std::string_view(read_keys_).substr(i * kKeySize, kKeySize);
  }

  void CheckValue(const absl::Status& status, size_t size) {
    if (!status.ok()) {
      NoteError(report_, absl::StrCat("Get: ", status.ToString()));
    } else if (size != data_.config.value_size) {
      NoteError(report_,
                absl::StrCat("Get returned ", size, " bytes, not ", data_.config.value_size));
    }
  }

  void RunGets(Clock::time_point end) {
    size_t i = 0;
    do {
      for (int k = 0; k < kReadTxnGets; ++k) {
        absl::StatusOr<std::string> value = db_->Get(read_key(i));
        CheckValue(value.status(), value.ok() ? value->size() : 0);
        if (++i == data_.n()) i = 0;
      }
      report_->ops += kReadTxnGets;
    } while (Clock::now() < end);
  }

  void RunReadTxns(Clock::time_point end) {
    size_t i = 0;
    do {
      absl::StatusOr<ReadTxn> txn = db_->BeginRead();
      if (!txn.ok()) {
        NoteError(report_, absl::StrCat("BeginRead: ", txn.status().ToString()));
        return;
      }
      for (int k = 0; k < kReadTxnGets; ++k) {
        absl::StatusOr<std::string_view> value = txn->Get(read_key(i));
        CheckValue(value.status(), value.ok() ? value->size() : 0);
        if (++i == data_.n()) i = 0;
      }
      report_->ops += kReadTxnGets;
    } while (Clock::now() < end);
  }

  void RunWriter(Clock::time_point end) {
    const int puts = role_.write_mode == WriteMode::kPut ? 1 : data_.config.txn_puts;
    Clock::time_point now;
    do {
      absl::Status status;
      Clock::time_point begin;
      if (role_.write_mode == WriteMode::kPut) {
        std::string_view key = data_.key(rng_() % data_.n());
        std::string_view value = data_.value(rng_() % kValuePool);
        begin = Clock::now();
        status = db_->Put(key, value);
      } else {
        absl::StatusOr<WriteTxn> txn = db_->BeginWrite();
        if (!txn.ok()) {
          NoteError(report_, absl::StrCat("BeginWrite: ", txn.status().ToString()));
          return;
        }
        for (int k = 0; k < puts && status.ok(); ++k) {
          status = txn->Put(data_.key(rng_() % data_.n()), data_.value(rng_() % kValuePool));
        }
        begin = Clock::now();
        if (status.ok()) status = txn->Commit();
      }
      now = Clock::now();
      if (!status.ok()) {
        NoteError(report_, absl::StrCat("commit: ", status.ToString()));
        return;
      }
      latencies_.push_back(std::chrono::duration<double, std::micro>(now - begin).count());
      report_->ops += puts;
      ++report_->commits;
    } while (now < end);
  }

  void Percentiles() {
    if (latencies_.empty()) return;
    std::sort(latencies_.begin(), latencies_.end());
    const double quantiles[3] = {0.5, 0.99, 0.999};
    for (int q = 0; q < 3; ++q) {
      size_t index = static_cast<size_t>(quantiles[q] * static_cast<double>(latencies_.size()));
      report_->latency_us[q] = latencies_[std::min(index, latencies_.size() - 1)];
    }
    report_->latency_us[3] = latencies_.back();
  }

  const Data& data_;
  const Role role_;
  Report* report_;
  std::mt19937_64 rng_;
  std::unique_ptr<DB> db_;
  std::string read_keys_;
  std::vector<double> latencies_;
};

int ChildMain(const Data& data, const Role& role, StartGate* gate, int to_parent) {
  Report report;
  Child child(data, role, &report);
  char ready = child.Prepare() ? 1 : 0;
  if (!tools::WriteAll(to_parent, &ready, 1).ok()) return 1;
  if (ready) {
    if (absl::Status status = gate->Wait(); !status.ok()) {
      NoteError(&report, status.ToString());
    } else {
      child.Run();
    }
  }
  child.Close();
  if (!tools::WriteAll(to_parent, &report, sizeof(report)).ok()) return 1;
  return 0;
}

// ------------------------------------------------------------------------------------- rounds

struct Round {
  std::vector<Report> readers;
  std::optional<Report> writer;

  double ReaderOpsPerSecond() const {
    double sum = 0;
    for (const Report& r : readers) sum += static_cast<double>(r.ops) / r.wall_seconds;
    return sum;
  }
  // The readers' CPU seconds per second of wall time: below their number when they sleep (or
  // wait for a core).
  double ReaderCpusBusy() const {
    double cpu = 0, wall = 0;
    for (const Report& r : readers) {
      cpu += r.cpu_seconds;
      wall += r.wall_seconds;
    }
    return cpu / (wall / static_cast<double>(readers.size()));
  }
};

// Forks the readers (and a writer), starts them together, and collects their reports.
absl::StatusOr<Round> RunRound(const Data& data, int readers, ReadMode read_mode,
                               std::optional<WriteMode> write_mode) {
  static uint64_t round_number = 0;
  ++round_number;
  std::vector<Role> roles;
  for (int i = 0; i < readers; ++i) {
    roles.push_back({.read_mode = read_mode, .seed = Mix(kSeed ^ (round_number << 20) ^ i)});
  }
  if (write_mode.has_value()) {
    roles.push_back({.writer = true,
                     .write_mode = *write_mode,
                     .seed = Mix(kSeed ^ (round_number << 20) ^ 0xfffff)});
  }

  absl::StatusOr<StartGate> gate = StartGate::Create();
  if (!gate.ok()) return gate.status();
  std::vector<ChildProcess> children;
  absl::Status failure;
  for (const Role& role : roles) {
    absl::StatusOr<ChildProcess> child =
        tools::ForkChild([&](int to_parent) { return ChildMain(data, role, &*gate, to_parent); });
    if (!child.ok()) {
      failure = child.status();
      break;
    }
    children.push_back(*child);
  }
  for (const ChildProcess& child : children) {
    char ready = 0;
    absl::Status status = tools::ReadAll(child.from_child, &ready, 1, kReadyTimeout);
    if (!status.ok() && failure.ok()) {
      failure = absl::InternalError(absl::StrCat("a child did not start: ", status.ToString()));
    }
  }
  gate->Open();

  auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(data.config.seconds) + kReportSlack);
  std::vector<Report> reports(children.size());
  for (size_t i = 0; i < children.size(); ++i) {
    absl::Status status =
        tools::ReadAll(children[i].from_child, &reports[i], sizeof(Report), timeout);
    if (!status.ok()) {
      tools::KillChild(children[i].pid);
      if (failure.ok()) {
        failure = absl::InternalError(
            absl::StrCat("pid ", children[i].pid, " sent no report: ", status.ToString()));
      }
    } else if (reports[i].errors > 0 && failure.ok()) {
      failure = absl::InternalError(absl::StrCat("pid ", children[i].pid, ": ", reports[i].errors,
                                                 " errors; the first: ", reports[i].first_error));
    }
    tools::CloseFd(children[i].from_child);
  }
  for (const ChildProcess& child : children) {
    absl::Status status = tools::WaitChild(child.pid);
    if (!status.ok() && failure.ok()) {
      failure = absl::InternalError(absl::StrCat("pid ", child.pid, " ", status.message()));
    }
  }
  if (!failure.ok()) return failure;

  Round round;
  round.readers.assign(reports.begin(), reports.begin() + readers);
  if (write_mode.has_value()) round.writer = reports.back();
  return round;
}

// ------------------------------------------------------------------------------------- output

std::string Rate(double per_second) {
  if (per_second >= 1e6) return absl::StrFormat("%.2f M", per_second / 1e6);
  if (per_second >= 1e3) return absl::StrFormat("%.1f k", per_second / 1e3);
  return absl::StrFormat("%.0f", per_second);
}

std::string Micros(double us) {
  return us >= 100 ? absl::StrFormat("%.0f", us) : absl::StrFormat("%.1f", us);
}

// Best effort: the CPU's name where /proc/cpuinfo exists, for the machine line.
std::string CpuName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown CPU";
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  if (!(in >> one >> five >> fifteen)) return "unknown";
  return absl::StrCat(one, " ", five, " ", fifteen);
}

void PrintMachine(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  std::printf(
      "machine: %u hardware threads (std::thread::hardware_concurrency), %s; "
      "load average before the run %s; %s\n",
      std::thread::hardware_concurrency(), CpuName().c_str(), LoadAverage().c_str(),
      absl::FormatTime("%Y-%m-%d %H:%M", absl::Now(), absl::LocalTimeZone()).c_str());
  std::printf("command: %s\n", absl::StrJoin(args, " ").c_str());
  std::fflush(stdout);
}

// A process count, marked "*" when larger than the machine's hardware threads: those processes
// share cores, so their total cannot grow with their number.
std::string Procs(int procs) {
  const unsigned threads = std::thread::hardware_concurrency();
  return absl::StrCat(procs, threads > 0 && static_cast<unsigned>(procs) > threads ? " *" : "");
}

void PrintOversubscribed(int most_procs) {
  const unsigned threads = std::thread::hardware_concurrency();
  if (threads > 0 && static_cast<unsigned>(most_procs) > threads) {
    std::printf("\n\\* more processes than the %u hardware threads: they share cores.\n", threads);
  }
}

absl::Status RunScaling(const Data& data) {
  const Config& config = data.config;
  std::printf(
      "\n## Read scaling: %s keys of %zu bytes, %zu-byte values, %g s per round\n\n"
      "| reader | processes | total ops/s | ops per CPU-s | speedup vs %d | per-process ops/s "
      "(min-max) | CPUs busy |\n"
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
      absl::StrCat(data.n()).c_str(), kKeySize, config.value_size, config.seconds,
      config.procs.front());
  std::fflush(stdout);
  int most_procs = 0;
  for (ReadMode mode : {ReadMode::kGet, ReadMode::kReadTxn}) {
    double first = 0;
    for (int procs : config.procs) {
      absl::StatusOr<Round> round = RunRound(data, procs, mode, std::nullopt);
      if (!round.ok()) {
        return absl::InternalError(absl::StrCat(ReadModeName(mode), " with ", procs,
                                                " processes: ", round.status().ToString()));
      }
      most_procs = std::max(most_procs, procs);
      double total = round->ReaderOpsPerSecond();
      if (first == 0) first = total;
      uint64_t ops = 0;
      double cpu = 0, low = 1e300, high = 0;
      for (const Report& r : round->readers) {
        ops += r.ops;
        cpu += r.cpu_seconds;
        double rate = static_cast<double>(r.ops) / r.wall_seconds;
        low = std::min(low, rate);
        high = std::max(high, rate);
      }
      std::printf("| %s | %s | %s | %s | %.2f | %s (%s-%s) | %.2f |\n", ReadModeName(mode),
                  Procs(procs).c_str(), Rate(total).c_str(),
                  Rate(static_cast<double>(ops) / cpu).c_str(), total / first,
                  Rate(total / procs).c_str(), Rate(low).c_str(), Rate(high).c_str(),
                  round->ReaderCpusBusy());
      std::fflush(stdout);
    }
  }
  PrintOversubscribed(most_procs);
  return absl::OkStatus();
}

absl::Status RunMixed(const Data& data, DB* db) {
  const Config& config = data.config;
  std::printf(
      "\n## Mixed: one writer process beside N reader processes, %g s per round\n\n"
      "Writer: DB::Put overwrites a random existing key (one transaction each), or a WriteTxn of "
      "%d such puts; latency is of DB::Put, or of WriteTxn::Commit alone. \"alone\" is the same N "
      "readers without the writer, run just before.\n\n"
      "| readers | processes | writer | reader ops/s | alone | ratio | reader CPUs busy (alone) | "
      "writer commits/s | writer puts/s | commit p50 us | p99 us | p99.9 us | max us |\n"
      "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
      "|\n",
      config.seconds, config.txn_puts);
  std::fflush(stdout);
  int most_procs = 0;
  for (ReadMode read_mode : config.mixed_readers) {
    for (int procs : config.procs) {
      absl::StatusOr<Round> alone = RunRound(data, procs, read_mode, std::nullopt);
      if (!alone.ok()) {
        return absl::InternalError(
            absl::StrCat(procs, " readers alone: ", alone.status().ToString()));
      }
      for (WriteMode write_mode : config.writers) {
        absl::StatusOr<Round> mixed = RunRound(data, procs, read_mode, write_mode);
        if (!mixed.ok()) {
          return absl::InternalError(
              absl::StrCat(procs, " readers and a writer: ", mixed.status().ToString()));
        }
        // Write the writer's dirty pages back now, not during the next round.
        if (absl::Status status = db->Checkpoint(); !status.ok()) return status;
        most_procs = std::max(most_procs, procs + 1);
        const Report& w = *mixed->writer;
        double with = mixed->ReaderOpsPerSecond();
        double without = alone->ReaderOpsPerSecond();
        std::printf(
            "| %d x %s | %s | %s | %s | %s | %.2f | %.2f (%.2f) | %s | %s | %s | %s | %s | %s |\n",
            procs, ReadModeName(read_mode), Procs(procs + 1).c_str(),
            WriteModeName(config, write_mode).c_str(), Rate(with).c_str(), Rate(without).c_str(),
            with / without, mixed->ReaderCpusBusy(), alone->ReaderCpusBusy(),
            Rate(static_cast<double>(w.commits) / w.wall_seconds).c_str(),
            Rate(static_cast<double>(w.ops) / w.wall_seconds).c_str(),
            Micros(w.latency_us[0]).c_str(), Micros(w.latency_us[1]).c_str(),
            Micros(w.latency_us[2]).c_str(), Micros(w.latency_us[3]).c_str());
        std::fflush(stdout);
      }
    }
  }
  PrintOversubscribed(most_procs);
  return absl::OkStatus();
}

absl::Status Main(const Config& config, int argc, char** argv) {
  Data data;
  data.config = config;
  if (data.config.writers.empty() || data.config.mixed_readers.empty()) data.config.mixed = false;
  std::string dir = data.config.dir;
  bool remove_dir = dir.empty();
  if (remove_dir) {
    absl::StatusOr<std::string> made = tools::MakeTempDir("mapkv_scaling.");
    if (!made.ok()) return made.status();
    dir = *made;
  }
  data.path = absl::StrCat(dir, "/scaling.mapkv");

  PrintMachine(argc, argv);
  MakeData(&data);
  absl::Status status;
  {
    Options options;
    options.error_if_exists = true;
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(data.path, options);
    if (!db.ok()) return db.status();
    Clock::time_point start = Clock::now();
    status = Load(data, db->get());
    std::printf("loaded and checkpointed %s keys in %.2f s\n", absl::StrCat(data.n()).c_str(),
                std::chrono::duration<double>(Clock::now() - start).count());
    std::fflush(stdout);
    if (status.ok() && data.config.scaling) status = RunScaling(data);
    if (status.ok() && data.config.mixed) status = RunMixed(data, db->get());
  }
  std::error_code error;
  if (remove_dir) {
    std::filesystem::remove_all(dir, error);
  } else {
    std::filesystem::remove(data.path, error);
  }
  return status;
}

}  // namespace
}  // namespace mapkv

int main(int argc, char** argv) {
  mapkv::Config config;
  CLI::App app;
  mapkv::AddFlags(app, config);
  CLI11_PARSE(app, argc, argv);
  absl::Status status = mapkv::Main(config, argc, argv);
  if (!status.ok()) {
    std::fprintf(stderr, "mapkv_scaling_bench: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
