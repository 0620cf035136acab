// `mapkv demo`: a pool of worker processes (a pre-fork web server, job runners) sharing one
// mapkv::Cache file with a capacity, instead of a cache server on localhost; every value and
// every counter checked. The workers themselves are in demo_worker.cc.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "command.h"
#include "common.h"
#include "demo_worker.h"
#include "mapkv/cache.h"
#include "mapkv/db.h"
#include "records.h"
#include "src/strings.h"
#include "testing/subprocess.h"

// Set by tools/CMakeLists.txt: the source tree (for data/) and the installed data directory.
#ifndef MAPKV_SOURCE_DIR
#define MAPKV_SOURCE_DIR ""
#endif
#ifndef MAPKV_DATA_INSTALL_DIR
#define MAPKV_DATA_INSTALL_DIR ""
#endif

namespace mapkv::tools {
namespace {

constexpr char kSampleFile[] = "iso_codes.tsv";
constexpr int kSyntheticRecords = 1000;
constexpr uint64_t kMinValueSize = 256;

using internal::ToAbsl;

struct DemoConfig {
  DemoSettings settings;
  std::string capacity_text = "8MiB";
  std::string value_size_text = "1KiB";
  std::string path;       // empty: a file in a new temporary directory
  std::string data_path;  // empty: the sample from data/
  bool spawn = false;     // start the workers by running this program again, not by fork()
  // A worker started by the parent (--spawn, or where there is no fork()); hidden options.
  int64_t worker = -1;
  std::string report_fd;
  std::string go_fd;
  bool synthetic = false;
};

// "8M", "64MiB", "1g", "4096": bytes, 1024-based suffixes.
absl::StatusOr<uint64_t> ParseSize(std::string_view option, std::string_view text) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(option), ": \"", ToAbsl(text),
                     "\" is not a size: bytes, or a number with K, M or G (1024-based: KiB, "
                     "MiB, GiB), such as 8M or 64MiB"));
  };
  size_t digits = 0;
  while (digits < text.size() && absl::ascii_isdigit(text[digits])) ++digits;
  uint64_t n = 0;
  if (digits == 0 || digits > 19 || !absl::SimpleAtoi(ToAbsl(text.substr(0, digits)), &n)) {
    return bad();
  }
  std::string suffix = absl::AsciiStrToLower(ToAbsl(text.substr(digits)));
  int shift = -1;
  if (suffix.empty() || suffix == "b") shift = 0;
  if (suffix == "k" || suffix == "kb" || suffix == "kib") shift = 10;
  if (suffix == "m" || suffix == "mb" || suffix == "mib") shift = 20;
  if (suffix == "g" || suffix == "gb" || suffix == "gib") shift = 30;
  if (shift < 0 || n > (UINT64_MAX >> shift)) return bad();
  return n << shift;
}

// Where the sample data may be: the source tree this binary was built from, then the installed
// copy.
std::vector<std::string> SampleCandidates() {
  std::vector<std::string> out;
  if (std::string_view(MAPKV_SOURCE_DIR).size() > 0) {
    out.push_back(absl::StrCat(MAPKV_SOURCE_DIR, "/data/", kSampleFile));
  }
  if (std::string_view(MAPKV_DATA_INSTALL_DIR).size() > 0) {
    out.push_back(absl::StrCat(MAPKV_DATA_INSTALL_DIR, "/", kSampleFile));
  }
  return out;
}

std::vector<Record> SyntheticRecords() {
  std::vector<Record> records;
  for (int i = 0; i < kSyntheticRecords; ++i) {
    records.push_back({absl::StrFormat("synthetic/%04d", i),
                       absl::StrFormat("value %d of the demo's generated records", i)});
  }
  return records;
}

// One record per key (the last value wins), in first-seen order, leaving out keys too long to
// make a page key of.
std::vector<Record> Deduplicate(std::vector<Record> records, size_t* dropped) {
  absl::flat_hash_map<std::string, size_t> position;
  std::vector<Record> out;
  for (Record& record : records) {
    if (record.key.size() + 32 > kMaxKeySize) continue;
    auto [it, inserted] = position.try_emplace(record.key, out.size());
    if (inserted) {
      out.push_back(std::move(record));
    } else {
      out[it->second].value = std::move(record.value);
    }
  }
  *dropped = records.size() - out.size();
  return out;
}

std::string Sci(double v) { return absl::StrFormat("%.17g", v); }

struct Child {
  int pid = -1;
  int from_child = -1;
};

class Demo {
 public:
  explicit Demo(DemoConfig config) : config_(std::move(config)), s_(config_.settings) {}
  int Run();

 private:
  void Fail(std::string message) { failures_.push_back(std::move(message)); }
  int ParseSizes();
  bool LoadData(bool quiet);
  int RunWorker();
  bool OpenCache();
  void ReadCounters(std::vector<int64_t>* counters);
  void StartWorkers();
  absl::StatusOr<Child> Spawn(int index, int go_read_fd);
  void CollectReports();
  void Check(const CacheStats& before, const CacheStats& after);
  void PrintTable() const;
  void PrintCache(const CacheStats& before, const CacheStats& after) const;
  void Cleanup();

  DemoConfig config_;
  DemoSettings& s_;
  std::vector<Record> records_;
  std::string data_description_;
  std::string data_file_;  // the file the records came from; empty: generated
  std::unique_ptr<DemoKeySpace> keys_;
  std::string temp_dir_;
  std::string path_;
  bool fresh_ = false;
  std::unique_ptr<Cache> cache_;
  std::vector<Child> children_;
  std::vector<DemoReport> reports_;
  std::vector<bool> reported_;
  std::vector<DemoCompute> computes_;
  std::vector<int64_t> counters_before_;
  std::vector<int64_t> counters_after_;
  // Results of the checks, for the summary.
  uint64_t distinct_computed_ = 0;
  uint64_t most_computes_of_one_key_ = 0;
  int overlaps_ = 0;
  bool counters_ok_ = true;
  std::vector<std::string> failures_;
};

int Demo::ParseSizes() {
  absl::StatusOr<uint64_t> capacity = ParseSize("--capacity", config_.capacity_text);
  if (!capacity.ok()) return ReportUsageError("demo", capacity.status().message());
  absl::StatusOr<uint64_t> value_size = ParseSize("--value-size", config_.value_size_text);
  if (!value_size.ok()) return ReportUsageError("demo", value_size.status().message());
  s_.capacity = *capacity;
  s_.value_size = *value_size;
  if (s_.capacity < (1u << 20)) {
    return ReportUsageError(
        "demo", absl::StrCat("--capacity ", config_.capacity_text,
                             ": a cache's capacity must be at least 1 MiB (1048576 bytes)"));
  }
  if (s_.value_size < kMinValueSize || s_.value_size > s_.capacity / 8) {
    return ReportUsageError(
        "demo", absl::StrCat("--value-size ", config_.value_size_text, ": must be ", kMinValueSize,
                             " bytes to an eighth of --capacity (", Bytes(s_.capacity / 8),
                             "), so that the cache holds many pages"));
  }
  return kExitOk;
}

bool Demo::LoadData(bool quiet) {
  std::string path = config_.data_path;
  if (path.empty() && !config_.synthetic) {
    for (const std::string& candidate : SampleCandidates()) {
      if (std::filesystem::exists(candidate)) {
        path = candidate;
        break;
      }
    }
    if (path.empty() && !quiet) {
      std::string looked;
      for (const std::string& candidate : SampleCandidates())
        absl::StrAppend(&looked, " ", candidate);
      std::fprintf(stderr,
                   "mapkv demo: no sample data found (looked for%s); using %d generated records "
                   "instead. Pass --data FILE to use a key<TAB>value file.\n",
                   looked.empty() ? " nothing: built without MAPKV_SOURCE_DIR" : looked.c_str(),
                   kSyntheticRecords);
    }
  }
  if (path.empty()) {
    records_ = SyntheticRecords();
    data_description_ = absl::StrCat(kSyntheticRecords, " generated records");
    return true;
  }
  // The sample data set starts with comment lines.
  ParseOptions parse;
  parse.comments = true;
  absl::StatusOr<std::vector<Record>> records = ReadRecordsFile(path, Format::kTsv, parse);
  if (!records.ok()) {
    ReportError("demo", records.status(), kExitError);
    return false;
  }
  size_t dropped = 0;
  records_ = Deduplicate(*std::move(records), &dropped);
  if (records_.empty()) {
    std::fprintf(stderr, "mapkv demo: %s holds no records\n", path.c_str());
    return false;
  }
  data_file_ = path;
  data_description_ = absl::StrCat(path, " (", Commas(records_.size()), " records)");
  if (dropped > 0) absl::StrAppend(&data_description_, ", ", dropped, " repeated or long keys");
  return true;
}

// A worker started by the parent with --worker: everything it needs is on its command line.
int Demo::RunWorker() {
  if (!LoadData(/*quiet=*/true)) return kExitError;
  absl::StatusOr<int> to_parent = PipeEndFromArg(config_.report_fd);
  absl::StatusOr<int> go = PipeEndFromArg(config_.go_fd);
  if (!to_parent.ok() || !go.ok() || config_.path.empty() || config_.worker >= s_.workers) {
    return ReportUsageError("demo", "--worker is for the processes `mapkv demo` starts itself");
  }
  DemoKeySpace keys(std::move(records_), s_.keys, s_.zipf);
  return RunDemoWorker(s_, keys, config_.path, static_cast<int>(config_.worker), *to_parent, *go);
}

bool Demo::OpenCache() {
  if (config_.path.empty()) {
    absl::StatusOr<std::string> dir = MakeTempDir("mapkv-demo-");
    if (!dir.ok()) {
      std::fprintf(stderr, "mapkv demo: cannot make a temporary directory: %s\n",
                   dir.status().ToString().c_str());
      return false;
    }
    temp_dir_ = *dir;
    path_ = temp_dir_ + "/cache.mapkv";
  } else {
    path_ = config_.path;
  }
  std::error_code error;
  fresh_ = !std::filesystem::exists(path_, error);
  CacheOptions options;
  options.capacity = s_.capacity;
  absl::StatusOr<std::unique_ptr<Cache>> cache = Cache::Open(path_, options);
  if (!cache.ok()) {
    ReportError("demo", cache.status(), kExitError);
    return false;
  }
  cache_ = *std::move(cache);
  return true;
}

void Demo::ReadCounters(std::vector<int64_t>* counters) {
  counters->assign(kDemoClients, 0);
  for (int c = 0; c < kDemoClients; ++c) {
    absl::StatusOr<std::string> value = cache_->Get(DemoClientKey(c));
    if (value.ok()) {
      if (!absl::SimpleAtoi(*value, &(*counters)[c])) {
        Fail(absl::StrCat(DemoClientKey(c), " holds \"", *value, "\", not a number"));
      }
    } else if (!absl::IsNotFound(value.status())) {
      Fail(absl::StrCat("Get(\"", DemoClientKey(c), "\"): ", value.status().ToString()));
    }
  }
}

absl::StatusOr<Child> Demo::Spawn(int index, int go_read_fd) {
  static absl::StatusOr<std::string> self = SelfExecutablePath();
  if (!self.ok()) return self.status();
  absl::StatusOr<PipeFds> pipe = MakePipe();
  if (!pipe.ok()) return pipe.status();
  std::vector<std::string> argv = {*self,          "demo",
                                   "--worker",     absl::StrCat(index),
                                   "--report-fd",  PipeEndArg(pipe->write_fd),
                                   "--go-fd",      PipeEndArg(go_read_fd),
                                   "--path",       path_,
                                   "--workers",    absl::StrCat(s_.workers),
                                   "--seconds",    Sci(s_.seconds),
                                   "--capacity",   absl::StrCat(s_.capacity),
                                   "--keys",       absl::StrCat(s_.keys),
                                   "--value-size", absl::StrCat(s_.value_size),
                                   "--zipf",       Sci(s_.zipf),
                                   "--compute-us", absl::StrCat(s_.compute_us),
                                   "--ttl",        Sci(s_.ttl_seconds),
                                   "--increments", absl::StrCat(s_.increment_percent)};
  if (data_file_.empty()) {
    argv.push_back("--synthetic");
  } else {
    argv.insert(argv.end(), {"--data", data_file_});
  }
  StartOptions options;
  options.pass_fds = {pipe->write_fd, go_read_fd};
  absl::StatusOr<int> pid = StartProcess(argv, options);
  CloseFd(pipe->write_fd);  // the worker holds it now: its exit closes the pipe
  if (!pid.ok()) {
    CloseFd(pipe->read_fd);
    return pid.status();
  }
  return Child{*pid, pipe->read_fd};
}

void Demo::StartWorkers() {
  const int workers = static_cast<int>(s_.workers);
  absl::StatusOr<PipeFds> go = MakePipe();
  if (!go.ok()) return Fail(absl::StrCat("the start pipe: ", go.status().ToString()));
  for (int i = 0; i < workers; ++i) {
    absl::StatusOr<Child> child;
    if (config_.spawn) {
      child = Spawn(i, go->read_fd);
    } else {
      absl::StatusOr<ChildProcess> forked = ForkChild([&](int to_parent) {
        CloseFd(go->write_fd);
        return RunDemoWorker(s_, *keys_, path_, i, to_parent, go->read_fd);
      });
      if (forked.ok()) {
        child = Child{forked->pid, forked->from_child};
      } else {
        child = forked.status();
      }
    }
    if (!child.ok()) {
      Fail(absl::StrCat("starting worker ", i, ": ", child.status().ToString()));
      break;
    }
    children_.push_back(*child);
  }
  // Start everyone at once, after every worker has opened the cache.
  for (size_t i = 0; i < children_.size(); ++i) {
    char ready = 0;
    absl::Status status = ReadAll(children_[i].from_child, &ready, 1, kDemoWorkerSlack);
    if (!status.ok()) {
      Fail(absl::StrCat("worker ", i, " did not start: ", status.ToString()));
      KillChild(children_[i].pid);
    }
  }
  std::printf("running    %zu workers for %g s...\n", children_.size(), s_.seconds);
  std::fflush(stdout);
  std::string bytes(children_.size(), 'g');
  if (absl::Status status = WriteAll(go->write_fd, bytes.data(), bytes.size()); !status.ok()) {
    Fail(absl::StrCat("starting the workers: ", status.ToString()));
  }
  CloseFd(go->write_fd);
  CloseFd(go->read_fd);
}

void Demo::CollectReports() {
  reports_.assign(children_.size(), DemoReport{});
  reported_.assign(children_.size(), false);
  auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(s_.seconds) + kDemoWorkerSlack);
  for (size_t i = 0; i < children_.size(); ++i) {
    DemoReport& r = reports_[i];
    absl::Status status = ReadAll(children_[i].from_child, &r, sizeof(r), timeout);
    if (status.ok() && r.computes_recorded > kMaxRecordedComputes) {
      status = absl::DataLossError(absl::StrCat("a report of ", r.computes_recorded, " computes"));
    }
    if (status.ok() && r.computes_recorded > 0) {
      std::vector<DemoCompute> computes(r.computes_recorded);
      status = ReadAll(children_[i].from_child, computes.data(),
                       computes.size() * sizeof(DemoCompute), kDemoWorkerSlack);
      computes_.insert(computes_.end(), computes.begin(), computes.end());
    }
    reported_[i] = status.ok();
    if (!status.ok()) {
      KillChild(children_[i].pid);
      Fail(absl::StrCat("worker ", i, " sent no report: ", status.ToString()));
    } else if (r.failures > 0) {
      Fail(absl::StrCat("worker ", i, ": ", Commas(r.failures),
                        " failed checks; the first: ", r.first_failure));
    }
    CloseFd(children_[i].from_child);
  }
  for (size_t i = 0; i < children_.size(); ++i) {
    absl::Status status = WaitChild(children_[i].pid);
    // A worker that reported failed checks exits with 1; that is already counted.
    if (!status.ok() && !(reported_[i] && reports_[i].failures > 0)) {
      Fail(absl::StrCat("worker ", i, " (pid ", children_[i].pid, ") ", status.message()));
    }
  }
}

void Demo::Check(const CacheStats& before, const CacheStats& after) {
  const bool all = children_.size() == static_cast<size_t>(s_.workers) &&
                   std::all_of(reported_.begin(), reported_.end(), [](bool b) { return b; });
  uint64_t gets = 0, computes = 0, unrecorded = 0;
  std::vector<uint64_t> increments(kDemoClients, 0);
  for (const DemoReport& r : reports_) {
    gets += r.gets;
    computes += r.computes;
    unrecorded += r.computes_unrecorded;
    for (int c = 0; c < kDemoClients; ++c) increments[c] += r.increments_of[c];
  }

  // The statistics every handle added to the file agree with what the workers counted.
  if (all && after.computes - before.computes != computes) {
    Fail(absl::StrCat("GetStats() counts ", after.computes - before.computes,
                      " computes in this run, the workers ", computes));
  }
  const uint64_t answered =
      (after.hits - before.hits) + (after.misses - before.misses);  // one of them per call
  if (all && answered != gets) {
    Fail(absl::StrCat("GetStats() counts ", answered, " hits and misses in this run, the workers ",
                      gets, " GetOrCompute calls"));
  }

  // The file never passed its capacity.
  if (after.db.cache_capacity != 0 && after.db.file_size > after.db.cache_capacity) {
    Fail(absl::StrCat("the file is ", after.db.file_size, " bytes, past its capacity of ",
                      after.db.cache_capacity));
  }

  // Each missing key was computed by one worker at a time: the computations of one key never
  // overlap (another's starts only after the value was stored, then evicted or expired).
  std::sort(computes_.begin(), computes_.end(), [](const DemoCompute& a, const DemoCompute& b) {
    return a.key != b.key ? a.key < b.key : a.start_ns < b.start_ns;
  });
  uint64_t run = 0;
  for (size_t i = 0; i < computes_.size(); ++i) {
    const bool same = i > 0 && computes_[i].key == computes_[i - 1].key;
    if (!same) ++distinct_computed_;
    run = same ? run + 1 : 1;
    most_computes_of_one_key_ = std::max(most_computes_of_one_key_, run);
    if (same && computes_[i].start_ns < computes_[i - 1].end_ns && overlaps_++ == 0) {
      // A lease is an entry of the ring like any other: one evicted while its page is computed
      // (the ring turned in less time than that) leaves the key free for a second computation.
      Fail(absl::StrCat(
          "workers ", computes_[i - 1].worker, " and ", computes_[i].worker, " computed \"",
          keys_->key(computes_[i].key), "\" at the same time (",
          absl::StrFormat("%.1f", (computes_[i - 1].end_ns - computes_[i].start_ns) / 1e3),
          " us of overlap)",
          after.evictions > before.evictions
              ? "; was the first one's lease evicted by a ring that turns faster "
                "than a page is computed?"
              : ""));
    }
  }
  if (overlaps_ > 1) Fail(absl::StrCat(overlaps_ - 1, " more overlapping computations"));
  if (all && computes_.size() + unrecorded != computes) {
    Fail(absl::StrCat("the workers reported ", computes, " computes but sent ", computes_.size()));
  }

  // Every increment landed once: no update lost, none applied twice.
  for (int c = 0; all && c < kDemoClients; ++c) {
    const int64_t expected = counters_before_[c] + static_cast<int64_t>(increments[c]);
    if (counters_after_[c] != expected) {
      counters_ok_ = false;
      Fail(absl::StrCat(DemoClientKey(c), " is ", counters_after_[c], " after the run: it was ",
                        counters_before_[c], " and the workers incremented it ", increments[c],
                        " times", counters_after_[c] < expected ? " (lost, or evicted)" : ""));
    }
  }
}

std::string Percent(uint64_t part, uint64_t whole) {
  return whole == 0 ? "-" : absl::StrFormat("%.1f%%", 100.0 * part / whole);
}

std::string PerSecond(uint64_t n, double seconds) {
  return Commas(static_cast<uint64_t>(n / std::max(seconds, 1e-9)));
}

void Demo::PrintTable() const {
  constexpr char kRow[] = "%6s %8s %9s %9s %10s %5s %9s %9s %6s %11s %10s  %s\n";
  std::printf("\n");
  std::printf(kRow, "worker", "pid", "requests", "req/s", "req/CPU-s", "CPU%", "hits", "computes",
              "hit%", "from others", "increments", "checks");
  DemoReport total;
  double wall = 0;
  uint64_t failed = 0;
  auto row = [&](std::string name, std::string pid, const DemoReport& r, double wall_seconds,
                 std::string checks) {
    const uint64_t hits = r.gets - r.computes;
    std::printf(kRow, name.c_str(), pid.c_str(), Commas(r.requests).c_str(),
                PerSecond(r.requests, wall_seconds).c_str(),
                PerSecond(r.requests, r.cpu_seconds).c_str(),
                absl::StrFormat("%.0f", 100 * r.cpu_seconds / std::max(wall_seconds, 1e-9)).c_str(),
                Commas(hits).c_str(), Commas(r.computes).c_str(), Percent(hits, r.gets).c_str(),
                Commas(r.from_others).c_str(), Commas(r.increments).c_str(), checks.c_str());
  };
  for (size_t i = 0; i < reports_.size(); ++i) {
    const DemoReport& r = reports_[i];
    if (!reported_[i]) {
      std::printf("%6zu %8d  (no report: see below)\n", i, children_[i].pid);
      ++failed;
      continue;
    }
    row(absl::StrCat(i), absl::StrCat(r.pid), r, r.wall_seconds,
        r.failures == 0 ? "ok" : absl::StrCat(Commas(r.failures), " FAILED"));
    total.requests += r.requests;
    total.gets += r.gets;
    total.computes += r.computes;
    total.from_others += r.from_others;
    total.increments += r.increments;
    total.cpu_seconds += r.cpu_seconds;
    failed += r.failures;
    wall = std::max(wall, r.wall_seconds);
  }
  row("total", "", total, wall, failed == 0 ? "ok" : absl::StrCat(Commas(failed), " FAILED"));
  std::printf(
      "\nrequests: GetOrCompute of a page (each value checked: the whole page of the key asked "
      "for)\n"
      "  or, %lld%% of them, an Increment of a rate-limit counter.\n"
      "hits: pages served without computing (stored, or computed by another worker while this "
      "one\n"
      "  waited); computes: misses this worker computed; from others: pages it got that another\n"
      "  worker computed. req/CPU-s: requests per second of the worker's own CPU time;\n"
      "  CPU%%: its CPU time over its wall time (the total: of one CPU).\n",
      static_cast<long long>(s_.increment_percent));
}

void Demo::PrintCache(const CacheStats& before, const CacheStats& after) const {
  const Stats& db = after.db;
  const std::string ttl = s_.ttl_seconds == 0
                              ? "no ttl"
                              : absl::StrCat("ttl ", absl::StrFormat("%g", s_.ttl_seconds), " s");
  std::printf("\nthe cache, Cache::GetStats() (summed over every process; this run's share):\n");
  std::printf("  hits         %12s  requests answered from the cache\n",
              Commas(after.hits - before.hits).c_str());
  std::printf("  misses       %12s  of which expired: %s (%s)\n",
              Commas(after.misses - before.misses).c_str(),
              Commas(after.expirations - before.expirations).c_str(), ttl.c_str());
  std::printf("  computes     %12s  one per miss, by the worker that took the key's lease\n",
              Commas(after.computes - before.computes).c_str());
  std::printf("  waits        %12s  requests that waited for another worker's computation\n",
              Commas(after.waits - before.waits).c_str());
  std::printf("  takeovers    %12s  computations taken over from a dead or late worker\n",
              Commas(after.takeovers - before.takeovers).c_str());
  std::printf("  evictions    %12s  entries dropped, oldest first, to stay within the capacity\n",
              Commas(after.evictions - before.evictions).c_str());
  std::printf("  keys         %12s  in the cache now (pages and counters), of %s pages asked for\n",
              Commas(db.keys).c_str(), Commas(s_.keys).c_str());
  if (db.cache_capacity == 0) {
    std::printf("  file size    %12s  (a cache without a capacity: it grows as needed)\n",
                Bytes(db.file_size).c_str());
  } else {
    std::printf("  file size    %12s  of a capacity of %s%s\n", Bytes(db.file_size).c_str(),
                Bytes(db.cache_capacity).c_str(),
                db.file_size <= db.cache_capacity ? ": within it" : ": PAST IT");
  }
  if (after.evictions == before.evictions) {
    std::printf(
        "  (nothing was evicted: the pages computed fit in the capacity; a smaller --capacity,\n"
        "  more --keys or a longer run shows eviction)\n");
  }

  uint64_t computes = 0;
  std::vector<uint64_t> increments(kDemoClients, 0);
  for (const DemoReport& r : reports_) {
    computes += r.computes;
    for (int c = 0; c < kDemoClients; ++c) increments[c] += r.increments_of[c];
  }
  std::printf("\ncompute once: %s computes of %s distinct pages, %s\n", Commas(computes).c_str(),
              Commas(distinct_computed_).c_str(),
              overlaps_ == 0
                  ? "no two of one page at the same time"
                  : absl::StrCat(overlaps_, " of them BESIDE another of the same page").c_str());
  std::printf("  (the most of one page: %s, each after the last was evicted or expired)\n",
              Commas(most_computes_of_one_key_).c_str());
  uint64_t total = 0;
  for (uint64_t n : increments) total += n;
  std::printf("counters:     %s increments of %s..%d; %s:\n ", Commas(total).c_str(),
              DemoClientKey(0).c_str(), kDemoClients,
              counters_ok_ ? "each holds its start plus its increments"
                           : "SOME DO NOT HOLD their start plus their increments");
  for (int c = 0; c < kDemoClients; ++c) {
    std::printf(" %s", Commas(static_cast<uint64_t>(counters_after_[c])).c_str());
  }
  std::printf("\n");
}

void Demo::Cleanup() {
  cache_.reset();
  if (temp_dir_.empty()) return;
  std::error_code error;
  std::filesystem::remove_all(temp_dir_, error);
  if (error) {
    std::fprintf(stderr, "mapkv demo: could not remove %s: %s\n", temp_dir_.c_str(),
                 error.message().c_str());
  }
}

int Demo::Run() {
  if (int status = ParseSizes(); status != kExitOk) return status;
  if (config_.worker >= 0) return RunWorker();
  // Without fork() (Windows), the workers are this program run again.
  if (!HasFork()) config_.spawn = true;
  if (!LoadData(/*quiet=*/false)) return kExitError;
  keys_ = std::make_unique<DemoKeySpace>(records_, s_.keys, s_.zipf);
  if (!OpenCache()) {
    Cleanup();
    return kExitError;
  }
  std::printf("mapkv demo: %lld worker processes (%s) share one cache for %g s (%u CPUs)\n",
              static_cast<long long>(s_.workers),
              config_.spawn ? "each this program, started again" : "forked", s_.seconds,
              std::thread::hardware_concurrency());
  std::printf("cache      %s%s, capacity %s\n", path_.c_str(),
              temp_dir_.empty() ? (fresh_ ? " (new, kept)" : " (existing, kept)")
                                : " (temporary, removed at the end)",
              Bytes(s_.capacity).c_str());
  std::printf("pages      %s of %s (\"%s\", ...) from %s; zipf %g\n", Commas(s_.keys).c_str(),
              Bytes(s_.value_size).c_str(), keys_->key(0).c_str(), data_description_.c_str(),
              s_.zipf);
  std::printf(
      "a miss     computes for %lld us (busy CPU) and stores the page, %s\n",
      static_cast<long long>(s_.compute_us),
      s_.ttl_seconds == 0
          ? "never to expire"
          : absl::StrCat("to expire after ", absl::StrFormat("%g", s_.ttl_seconds), " s").c_str());
  std::printf("counters   %lld%% of requests increment one of %d rate-limit counters\n",
              static_cast<long long>(s_.increment_percent), kDemoClients);

  ReadCounters(&counters_before_);
  const CacheStats before = cache_->GetStats();
  StartWorkers();
  CollectReports();
  const CacheStats after = cache_->GetStats();
  ReadCounters(&counters_after_);
  Check(before, after);
  PrintTable();
  PrintCache(before, after);
  Cleanup();

  if (!failures_.empty()) {
    std::printf("\n");
    for (const std::string& failure : failures_) std::printf("FAILED: %s\n", failure.c_str());
    std::fflush(stdout);
    std::fprintf(stderr, "mapkv demo: %zu check%s failed\n", failures_.size(),
                 failures_.size() == 1 ? "" : "s");
    return kExitDataProblem;
  }
  std::printf(
      "\nall checks passed: every page served was whole and its own key's, the file stayed within\n"
      "its capacity, no page was computed by two workers at once, the statistics add up, and no\n"
      "increment was lost.\n");
  return kExitOk;
}

constexpr char kDescription[] =
    R"(Shows a pool of worker processes (a pre-fork web server, job runners) sharing one cache
file with a capacity (mapkv::Cache) instead of a cache server on localhost, and checks what
they get:
  1. creates a cache of --capacity bytes (in a new temporary directory, unless --path names a
     file);
  2. starts N workers (forked; where there is no fork(), or with --spawn, this program run
     again); each opens the cache and for S seconds serves requests:
     - most ask for a page, "page/<record>/<n>" with records from data/iso_codes.tsv (ISO
       country, language, currency and script codes), chosen with a Zipfian skew, through
       GetOrCompute(key, ttl, fn); on a miss, fn does --compute-us of busy CPU work and
       renders a --value-size page that names its key and the worker that computed it. Each
       page served is checked: whole, and the page of the key asked for;
     - --increments percent Increment one of 8 rate-limit counters ("ratelimit/10.0.0.<n>"),
       shared by the pool; a counter seen going back is a failure;
  3. prints per worker its requests, hits, computes, hit rate, pages computed by the others,
     requests per second and per CPU-second; then the cache's statistics (hits, misses,
     computes, waits, takeovers, evictions, expirations, file size against the capacity);
  4. checks that the file stayed within its capacity, that no two workers computed one page
     at the same time, that the statistics match what the workers counted, and that each
     counter holds its start value plus exactly the increments the workers made.
The defaults are short so that a 3 s run shows both: far more pages (20,000 x 1 KiB) than 8 MiB
holds, so entries are evicted within a second, and a ttl of 0.5 s, so hot pages expire. Counters are entries too: one left alone for a whole lap of the ring
would be evicted (and the counter check would say so); these are rewritten far more often. So
is a lease: a ring that turns in less time than a page takes to compute (a tiny --capacity,
--compute-us 0) can evict one mid-computation, and the compute-once check then fails.
)";

std::string DefaultDataText() {
  std::vector<std::string> candidates = SampleCandidates();
  if (candidates.empty()) return "generated records";
  return absl::StrCat(candidates.front(), ", else generated records");
}

}  // namespace

Runner SetupDemo(CLI::App* app) {
  auto config = std::make_shared<DemoConfig>();
  DemoSettings& s = config->settings;
  app->description(kDescription);
  app->add_option("--workers", s.workers, "worker processes")
      ->check(CLI::Range(int64_t{1}, int64_t{256}))
      ->capture_default_str();
  app->add_option("--seconds", s.seconds, "how long the workers run")
      ->check(CLI::Range(0.01, 86400.0))
      ->capture_default_str();
  app->add_option("--capacity", config->capacity_text,
                  "the cache's capacity, fixed when it is created: bytes, or with K, M, G "
                  "(1024-based), at least 1M")
      ->capture_default_str();
  app->add_option("--keys", s.keys, "distinct pages the workers ask for")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}))
      ->capture_default_str();
  app->add_option("--value-size", config->value_size_text,
                  "bytes of a page (more when its record alone is longer)")
      ->capture_default_str();
  app->add_option("--zipf", s.zipf,
                  "skew of the requests: the page of rank r is asked for in proportion to "
                  "1/r^zipf (0: uniform)")
      ->check(CLI::Range(0.0, 5.0))
      ->capture_default_str();
  app->add_option("--compute-us", s.compute_us,
                  "microseconds of busy CPU work (not a sleep) that computing a page takes")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}))
      ->capture_default_str();
  app->add_option("--ttl", s.ttl_seconds, "seconds a page lives (0: until evicted)")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  app->add_option("--increments", s.increment_percent,
                  "percent of requests that increment a rate-limit counter instead")
      ->check(CLI::Range(int64_t{0}, int64_t{100}))
      ->capture_default_str();
  app->add_option("--path", config->path,
                  "cache file to use (created with --capacity when missing; kept afterwards). "
                  "Default: a new temporary directory, removed at the end");
  app->add_option("--data", config->data_path,
                  absl::StrCat("key<TAB>value records the pages are made of, in `mapkv load`'s "
                               "TSV format. Default: ",
                               DefaultDataText()));
  app->add_flag("--spawn", config->spawn,
                "start the workers by running this program again (`mapkv demo --worker ...`) "
                "instead of forking them; always so where there is no fork() (Windows)");
  // The parent's way of starting a worker with --spawn: not for people.
  app->add_option("--worker", config->worker)->group("");
  app->add_option("--report-fd", config->report_fd)->group("");
  app->add_option("--go-fd", config->go_fd)->group("");
  app->add_flag("--synthetic", config->synthetic)->group("");
  app->footer(R"(
Exit status: 0 when every check passed, 2 bad usage, 3 a check failed (a wrong or torn page, a
lost increment, the file past its capacity, two computes of one page at once), 4 error (the
cache or the data file could not be opened).

Examples:
  mapkv demo
  mapkv demo --workers 8 --seconds 10 --capacity 64MiB --keys 100000 --compute-us 1000
  mapkv demo --path /tmp/demo.mapkv && mapkv stat /tmp/demo.mapkv)");
  return [config] { return Demo(*config).Run(); };
}

}  // namespace mapkv::tools
