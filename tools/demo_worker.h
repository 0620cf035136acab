// `mapkv demo`'s worker processes: the key space they ask for, the pages they compute, one
// worker's timed run against the shared cache, and the report it sends its parent. demo.cc starts
// the workers (forked, or this program run again with --worker), checks their reports against the
// cache and prints the story.
#ifndef MAPKV_TOOLS_DEMO_WORKER_H_
#define MAPKV_TOOLS_DEMO_WORKER_H_

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "records.h"

namespace mapkv::tools {

// The rate-limit counters every worker increments: "ratelimit/10.0.0.<1..kDemoClients>".
inline constexpr int kDemoClients = 8;
std::string DemoClientKey(int client);

// What every worker of one run must agree on (the spawned ones get it on their command line).
struct DemoSettings {
  int64_t workers = 4;
  double seconds = 3;
  uint64_t capacity = 8ull << 20;
  int64_t keys = 20000;
  uint64_t value_size = 1024;
  double zipf = 0.99;
  int64_t compute_us = 200;
  double ttl_seconds = 0.5;
  int64_t increment_percent = 10;
};

// The pages the workers ask for: key i is page i / R of record i % R ("page/country/AD/3"), and a
// request picks a key with a Zipfian skew: the key of rank r (from 0) with weight 1 / (r + 1)^s.
// Ranks are spread over the keys by a fixed permutation, the same in every process.
class DemoKeySpace {
 public:
  DemoKeySpace(std::vector<Record> records, int64_t keys, double zipf);

  size_t size() const { return keys_.size(); }
  const std::string& key(uint32_t i) const { return keys_[i]; }
  uint32_t Sample(std::mt19937_64& rng) const;

  // The page of key `i`, as computed by `worker`: it names its key at both ends, and is filled
  // to `value_size` bytes (more when the record alone is longer) with lines derived from the key.
  std::string Render(uint32_t i, int worker, uint64_t value_size) const;
  // Whether `value` is key i's page as some worker 0 <= w < workers computed it; sets *worker.
  bool Check(uint32_t i, std::string_view value, int workers, uint64_t value_size,
             int* worker) const;

 private:
  std::vector<Record> records_;
  std::vector<std::string> keys_;
  std::vector<uint32_t> by_rank_;  // key index of each rank
  std::vector<double> cdf_;        // cumulative weight of ranks 0..r, the last one 1
};

// One GetOrCompute that ran its function: which key, and when (steady clock, nanoseconds; one
// clock for every process of the machine), so that the parent can check that no two workers
// computed one key at the same time.
struct DemoCompute {
  uint32_t key = 0;
  uint32_t worker = 0;
  int64_t start_ns = 0;
  int64_t end_ns = 0;
};
static_assert(std::is_trivially_copyable_v<DemoCompute>);

// A worker keeps at most this many computes for the check (a run with --compute-us 0 makes more
// than the parent needs); it counts the rest in computes_unrecorded.
inline constexpr uint64_t kMaxRecordedComputes = 1 << 20;

// What a worker sends its parent through its pipe: a byte (1: the cache is open, 0: it is not),
// then, after the run, this report and report.computes_recorded DemoCompute records.
struct DemoReport {
  int32_t worker = 0;
  int32_t pid = 0;
  uint64_t requests = 0;     // GetOrCompute calls plus Increments
  uint64_t gets = 0;         // GetOrCompute calls, each value checked
  uint64_t computes = 0;     // of those, the ones that ran the function (misses)
  uint64_t from_others = 0;  // values another worker computed
  uint64_t increments = 0;
  uint64_t increments_of[kDemoClients] = {};
  uint64_t computes_recorded = 0;
  uint64_t computes_unrecorded = 0;
  uint64_t failures = 0;
  double wall_seconds = 0;
  double cpu_seconds = 0;
  char first_failure[400] = {};
};
static_assert(std::is_trivially_copyable_v<DemoReport>);

// One worker: opens the cache at `path` (which the parent created), writes its ready byte to
// `to_parent`, waits for a byte from `go_fd`, serves requests for settings.seconds, closes the
// cache and sends its report. Returns the process's exit status: 0 when every check passed.
int RunDemoWorker(const DemoSettings& settings, const DemoKeySpace& keys, const std::string& path,
                  int index, int to_parent, int go_fd);

// How long the parent waits for a worker to open the cache, and past the end of the run for its
// report, before it gives up on it; how long a worker waits for the start.
inline constexpr auto kDemoWorkerSlack = std::chrono::seconds(30);

}  // namespace mapkv::tools

#endif  // MAPKV_TOOLS_DEMO_WORKER_H_
