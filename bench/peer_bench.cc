// The peer benchmark: mapkv beside the stores a user would pick instead, measured in one run on
// one machine, in the phases of LevelDB's db_bench and YCSB.
//
//   build/bench/mapkv_peer_bench [--num=1000000] [--value_size=100] [--procs=1,2] [--seconds=2]
//       [--stores=mapkv,lmdb,...] [--phases=fillrandom,...] [--batch=32] [--phase_seconds=10]
//       [--writer_rate=0] [--txn_puts=10] [--update_rounds=20] [--update_dist=uniform|zipf]
//       [--compact_at=0]
//       [--csv=FILE] [--markdown=FILE] [--dir=DIR]
//
// Every store gets the same keys (16 bytes, the hex of a 64-bit bijective mix of 0..num-1, so key
// order is random), the same values (value_size random bytes from a pool) and the same operation
// sequence (seeded). Phases, in this order, each on the state the previous ones left (but update,
// which has a store of its own):
//   fillrandom    num Puts of new keys in random order into an empty store (one transaction each)
//   overwrite     num Puts of existing keys, uniformly random
//   readrandom    num Gets of existing keys, uniformly random; every one must be found
//   readmissing   num Gets of absent keys; none may be found
//   multiget      num Gets of random existing keys in batches of --batch (stores with a
//                 batched get)
//   zipfian       num Gets of existing keys, zipfian (theta 0.99, scrambled), YCSB workload C
//   ycsb-a        num operations, half Gets and half Puts of zipfian keys, YCSB workload A
//   readseq       one full scan
//   mp-read       for each P in --procs: P processes (forked; each opens its own handle) doing
//                 random Gets for --seconds (stores that let several processes read one database)
//   mp-read+writer  as mp-read, with one more process doing Puts of random existing keys meanwhile
//                 (as fast as it can, or --writer_rate a second); reports the readers' throughput
//                 (stores that allow a writer beside readers)
//   mp-mix        P processes each doing 90% Gets and 10% Puts of random keys: the shared-cache
//                 workload of a worker pool
//   snapshot      commits beside a long snapshot: one process commits for --seconds, each commit
//                 one Put (commit-put) or one transaction of --txn_puts Puts (commit-txnN,
//                 KvStore::Commit) overwriting random existing keys: alone; beside a second
//                 process that reads everything with Scan and then every key with Get, over and
//                 over (+reader); and beside one that does the same in a snapshot
//                 (KvStore::BeginSnapshot) it took before the start and holds to the end
//                 (+snapshot), where each Scan and each full Get pass must read the values the
//                 snapshot held at the start; then alone again, right after the snapshot ended
//                 (+after: what a store put off beside it, such as mapkv's cleaning, which pauses
//                 beside a long snapshot, is paid here). The rates are the committing process's
//                 alone (its CPU time, not the reader's). A first round of commits alone, not
//                 reported, brings the store to the state that overwrites keep it in. Stores with
//                 snapshots that another process's commits go on beside
//   compact       the store's own compaction, then its file size
//   update        steady-state updates, on a new store in a directory of its own (the other phases'
//                 store is left as it was): num Puts of new keys in random order, then
//                 --update_rounds rounds of overwrites (each round every key once in random order,
//                 or with --update_dist=zipf num Puts of zipfian keys as in zipfian), one
//                 transaction and a new value each; the space then; a random 90% of the keys
//                 deleted, and the rest overwritten in --update_rounds more rounds; the space then.
//                 Every remaining key must read its last value, every deleted key be absent.
//                 Reports the rates of each stage's overwrite rounds (rows update and update-10%),
//                 the space over the raw bytes of the live pairs, and the write amplification
//                 where the store can say (KvStore::BytesWritten). --compact_at=R: in the rounds,
//                 every 10,000 updates, a store above R x raw live is compacted online (the
//                 benchmark triggers it, where the store has KvStore::CompactOnline: mapkv), in
//                 the timed loop; the rows count the compactions
//   deleterandom  num Deletes, each existing key once, in random order
//   mp-cache      (last: it adds a cache file) for each P in --procs: P processes each doing
//                 GetOrCompute (KvStore::GetOrCompute): 9 in 10 of zipfian keys of a hot set of
//                 --cache_keys keys that start absent (each round has keys of its own), 1 in 10
//                 of keys never asked for before, so the hit rate is near 90% at any speed. A
//                 miss computes the value (busy for --compute_us, then value_size bytes) and
//                 stores it. mapkv computes each key once across the processes (mapkv::Cache);
//                 memcached and Redis are used cache-aside, as their clients do (Get, and on a
//                 miss compute and Set). Reports the hit rate and the computations of all the
//                 processes
// A single-process phase stops early after --phase_seconds (the servers need that: a round trip
// per operation); a capped fillrandom loads the rest untimed, so every store reads the same data.
// update runs whole (its space figures need the whole workload): --num and --update_rounds size it.
// fillrandom runs whenever another phase than update does.
//
// Figures: ops/s is operations over wall-clock time; "ops per CPU-s" is operations over the CPU
// time (user + system) of every process doing the store's work: this one or the forked workers,
// plus the server for memcached and Redis. The machines this runs on are shared and noisy; CPU
// time is what stays comparable between stores within a run. File size is the disk space of every
// file in the store's directory (allocated blocks, as du counts), after fillrandom and after
// compact, beside the raw bytes of the live keys and values.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/child_round.h"
#include "bench/kv_mapkv.h"
#include "bench/kv_memory.h"
#include "bench/kv_store.h"
#include "src/platform/fs.h"
#include "testing/subprocess.h"
#if MAPKV_BENCH_HAVE_LMDB
#include "bench/kv_lmdb.h"
#endif
#if MAPKV_BENCH_HAVE_SQLITE
#include "bench/kv_sqlite.h"
#endif
#if MAPKV_BENCH_HAVE_LEVELDB
#include "bench/kv_leveldb.h"
#endif
#if MAPKV_BENCH_HAVE_ROCKSDB
#include "bench/kv_rocksdb.h"
#endif
#if MAPKV_BENCH_HAVE_TKRZW
#include "bench/kv_tkrzw.h"
#endif
#if MAPKV_BENCH_HAVE_KYOTO
#include "bench/kv_kyoto.h"
#endif
#if MAPKV_BENCH_HAVE_MEMCACHED
#include "bench/kv_memcached.h"
#endif
#if MAPKV_BENCH_HAVE_REDIS
#include "bench/kv_redis.h"
#endif

namespace mapkv::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  uint64_t num = 1'000'000;
  size_t value_size = 100;
  std::vector<int> procs = {1, 2};
  double seconds = 2;
  double writer_rate = 0;  // commits per second of the mp-read+writer writer; 0: as fast as it can
  size_t txn_puts = 10;    // snapshot: Puts per transaction of the commit-txn rows
  uint32_t update_rounds = 20;          // update: overwrite rounds of each stage
  std::string update_dist = "uniform";  // update: the keys of a round, "uniform" or "zipf"
  double compact_at = 0;  // update: CompactOnline when the space passes this x raw live; 0: off
  double phase_seconds = 10;
  size_t batch = 32;
  uint64_t cache_keys = 10'000;           // mp-cache's hot set (at most num / 4)
  double compute_us = 20;                 // mp-cache: the cost of computing a missing value
  uint64_t cache_capacity = 64ull << 20;  // mp-cache: mapkv's CacheOptions::capacity
  MapkvTuning mapkv;                      // mapkv's Options where the flags say (else defaults)
  std::vector<std::string> stores;
  std::vector<std::string> phases;
  std::string csv;
  std::string markdown;
  std::string dir;
};

// A store's settings as run: mapkv's with the Options that flags changed.
std::string SettingsAsRun(const StoreKind& kind, const Config& config) {
  std::string out = kind.settings;
  if (!absl::StartsWith(kind.name, "mapkv")) return out;
  if (config.mapkv.compact_ratio >= 0) {
    absl::StrAppend(&out, "; compact_ratio ", config.mapkv.compact_ratio);
  }
  if (config.mapkv.compact_min_garbage) {
    absl::StrAppend(&out, "; compact_min_garbage ", *config.mapkv.compact_min_garbage);
  }
  return out;
}

// Every store the build has, with the id --stores selects it by.
// mapkv's cache capacity is read from `config` when a store is created (after the flags).
std::vector<std::pair<std::string, StoreKind>> AllStores(const Config& config) {
  std::vector<std::pair<std::string, StoreKind>> stores = {
      {"mapkv", MapkvKind(false, &config.cache_capacity, &config.mapkv)},
      {"mapkv-presized", MapkvKind(true, &config.cache_capacity, &config.mapkv)},
  };
#if MAPKV_BENCH_HAVE_LMDB
  stores.emplace_back("lmdb", LmdbKind());
#endif
#if MAPKV_BENCH_HAVE_LEVELDB
  stores.emplace_back("leveldb", LevelDbKind());
#endif
#if MAPKV_BENCH_HAVE_ROCKSDB
  stores.emplace_back("rocksdb", RocksDbKind());
#endif
#if MAPKV_BENCH_HAVE_TKRZW
  stores.emplace_back("tkrzw", TkrzwHashKind());
#endif
#if MAPKV_BENCH_HAVE_KYOTO
  stores.emplace_back("kyoto", KyotoHashKind());
#endif
#if MAPKV_BENCH_HAVE_SQLITE
  stores.emplace_back("sqlite", SqliteKind());
#endif
  stores.emplace_back("flat_hash_map", FlatHashMapKind());
  stores.emplace_back("unordered_map", UnorderedMapKind());
#if MAPKV_BENCH_HAVE_MEMCACHED
  stores.emplace_back("memcached", MemcachedKind());
#endif
#if MAPKV_BENCH_HAVE_REDIS
  stores.emplace_back("redis", RedisKind());
#endif
  return stores;
}

const std::vector<std::string>& AllPhases() {
  static const std::vector<std::string> phases = {
      "fillrandom", "overwrite", "readrandom",   "readmissing",    "multiget", "zipfian",
      "ycsb-a",     "readseq",   "mp-read",      "mp-read+writer", "mp-mix",   "snapshot",
      "compact",    "update",    "deleterandom", "mp-cache"};
  return phases;
}

// ------------------------------------------------------------------------------ the workload

// splitmix64's finalizer: a bijection of 64-bit words, so distinct inputs give distinct keys.
uint64_t Mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() { return Mix(state_ += 0x9e3779b97f4a7c15ull); }
  uint64_t Below(uint64_t n) { return static_cast<uint64_t>((__uint128_t{Next()} * n) >> 64); }

 private:
  uint64_t state_;
};

// YCSB's zipfian generator (Gray et al., "Quickly generating billion-record synthetic
// databases"), scrambled as YCSB's ScrambledZipfianGenerator is: rank r becomes key Mix(r) % n,
// so the popular keys are spread over the key space instead of being its first ones.
class Zipfian {
 public:
  Zipfian(uint64_t n, double theta) : n_(n), theta_(theta) {
    double zeta2 = 0;
    for (uint64_t i = 1; i <= n; ++i) {
      const double term = 1.0 / std::pow(static_cast<double>(i), theta);
      zetan_ += term;
      if (i <= 2) zeta2 += term;
    }
    alpha_ = 1.0 / (1.0 - theta);
    eta_ = (1 - std::pow(2.0 / static_cast<double>(n), 1 - theta)) / (1 - zeta2 / zetan_);
  }

  uint64_t Next(Rng& rng) const {
    const double u = static_cast<double>(rng.Next() >> 11) * 0x1.0p-53;
    const double uz = u * zetan_;
    uint64_t rank;
    if (uz < 1.0) {
      rank = 0;
    } else if (uz < 1.0 + std::pow(0.5, theta_)) {
      rank = 1;
    } else {
      rank = static_cast<uint64_t>(static_cast<double>(n_) * std::pow(eta_ * u - eta_ + 1, alpha_));
    }
    return Mix(std::min(rank, n_ - 1)) % n_;
  }

 private:
  uint64_t n_;
  double theta_;
  double zetan_ = 0;
  double alpha_ = 0;
  double eta_ = 0;
};

// Fisher-Yates.
void Shuffle(std::vector<uint64_t>& v, Rng& rng) {
  for (uint64_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.Below(i)]);
}

constexpr size_t kKeySize = 16;
constexpr uint64_t kSeed = 0x70656572626e6368ull;

// A key, made from its number when needed rather than read from a table: a table of 2 x num keys
// (32 MB for a million) would add a cache miss of the benchmark's own to every operation.
class Key {
 public:
  explicit Key(uint64_t i) {
    static constexpr char kHex[] = "0123456789abcdef";
    uint64_t bits = Mix(i ^ kSeed);
    for (int d = kKeySize - 1; d >= 0; --d, bits >>= 4) bytes_[d] = kHex[bits & 15];
  }
  std::string_view view() const { return {bytes_, kKeySize}; }
  operator std::string_view() const { return view(); }  // for arguments: lives to the call's end

 private:
  char bytes_[kKeySize];
};

// The data set: keys 0..num-1 exist after fillrandom; keys num..2num-1 never do.
class Data {
 public:
  explicit Data(const Config& config) : num_(config.num), value_size_(config.value_size) {
    Rng rng(kSeed);
    pool_.resize(std::max<size_t>(1 << 20, 4 * value_size_));
    for (char& c : pool_) c = static_cast<char>(rng.Next());
  }

  uint64_t num() const { return num_; }
  Key ExistingKey(uint64_t i) const { return Key(i); }
  Key MissingKey(uint64_t i) const { return Key(num_ + i % num_); }
  std::string_view Value(Rng& rng) const { return ValueAt(ValueOffset(rng)); }
  // A value named by where it starts in the pool, for a phase that checks what it reads back.
  uint32_t ValueOffset(Rng& rng) const {
    return static_cast<uint32_t>(rng.Below(pool_.size() - value_size_));
  }
  std::string_view ValueAt(uint32_t offset) const { return {&pool_[offset], value_size_}; }
  // A random order of 0..num-1.
  std::vector<uint64_t> Permutation(uint64_t seed) const {
    std::vector<uint64_t> order(num_);
    for (uint64_t i = 0; i < num_; ++i) order[i] = i;
    Rng rng(seed);
    Shuffle(order, rng);
    return order;
  }
  // The raw bytes of `keys` pairs: keys and values, nothing else.
  uint64_t raw_bytes(uint64_t keys) const { return keys * (kKeySize + value_size_); }
  uint64_t raw_bytes() const { return raw_bytes(num_); }

 private:
  uint64_t num_;
  size_t value_size_;
  std::string pool_;
};

// ------------------------------------------------------------------------------ measuring

struct Result {
  std::string store;
  std::string phase;
  int procs = 1;
  uint64_t ops = 0;
  double wall_seconds = 0;
  double cpu_seconds = 0;
  uint64_t file_bytes = 0;     // after the phase, for fillrandom, compact and update
  uint64_t live_keys = 0;      // update: the keys live at the end of the stage
  uint64_t bytes_written = 0;  // update: KvStore::BytesWritten's growth over the rounds
  uint64_t compactions = 0;    // update: the online compactions (--compact_at) in the rounds
  // update: the directory's disk space sampled every kSpaceSample updates of the rounds (their
  // sum, count and largest), and the longest single update.
  uint64_t space_sum = 0;
  uint64_t space_samples = 0;
  uint64_t space_max = 0;
  double longest_op_seconds = 0;
  double writer_ops_per_second = 0;  // mp-read+writer: the writer's commits per second
  uint64_t computes = 0;             // mp-cache: values computed by all the processes
  uint64_t reader_passes = 0;        // snapshot: the snapshot reader's full passes
  double reader_ops_per_second = 0;  // snapshot: its reads (Gets and pairs scanned) per second
  std::string note;                  // "n/a: ...", "capped", an error, or update's figures

  double OpsPerSecond() const { return ops / wall_seconds; }
  double OpsPerCpuSecond() const { return ops / cpu_seconds; }
  bool measured() const { return ops > 0 && wall_seconds > 0 && cpu_seconds > 0; }
};

// CPU seconds of the server behind a backend, 0 when there is none.
double ServerCpu(const KvBackend& backend) {
  if (backend.server_pid() < 0) return 0;
  absl::StatusOr<double> cpu = tools::ProcessCpuSecondsOf(backend.server_pid());
  return cpu.ok() ? *cpu : 0;
}

// The update phase samples its store's disk space this often, in updates.
constexpr uint64_t kSpaceSample = 10'000;

// The disk space the files in `dir` take, as du counts it: LMDB's MDB_WRITEMAP file is as long
// as its map (64 GiB) but sparse, and mapkv's file is allocated ahead of its log.
uint64_t DirectoryBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (!entry.is_regular_file(ec)) continue;
    absl::StatusOr<internal::FileInfo> info = internal::StatFile(entry.path().string());
    if (info.ok()) total += info->allocated;
  }
  return total;
}

// Runs op(i) for i in [0, n) until it fails or --phase_seconds pass; times it.
class Timer {
 public:
  Timer(const KvBackend& backend, double limit_seconds)
      : backend_(backend),
        limit_(std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(limit_seconds))) {}

  template <class Op>
  absl::Status Run(uint64_t n, Result& result, Op&& op) {
    const double cpu0 = tools::ProcessCpuSeconds() + ServerCpu(backend_);
    const Clock::time_point start = Clock::now();
    uint64_t i = 0;
    absl::Status status;
    for (; i < n && status.ok(); ++i) {
      status = op(i);
      if ((i & 255) == 255 && Clock::now() - start > limit_) {
        ++i;
        result.note = "capped";
        break;
      }
    }
    result.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    result.cpu_seconds = tools::ProcessCpuSeconds() + ServerCpu(backend_) - cpu0;
    result.ops = status.ok() ? i : 0;
    return status;
  }

 private:
  const KvBackend& backend_;
  Clock::duration limit_;
};

// ------------------------------------------------------------------------------ multi-process

// How long the snapshot reader goes on past --seconds: past the committer's last burst of commits
// (it looks at the clock every 256), so that the snapshot is held for the whole of its run.
constexpr double kSnapshotMargin = 0.2;

// The snapshot phase's: kCommitter commits; kSnapshot holds a snapshot and re-reads it; kRereader
// does the same reads through its handle without holding one.
enum class Role : uint8_t { kReader, kWriter, kMixed, kCache, kCommitter, kSnapshot, kRereader };

struct ChildReport {
  uint64_t ops = 0;
  uint64_t misses = 0;    // Gets of existing keys that found nothing: must stay 0
  uint64_t computes = 0;  // mp-cache: values this process computed
  uint64_t passes = 0;    // snapshot reader: full passes (a Scan, then every key by Get)
  double wall_seconds = 0;
  double cpu_seconds = 0;
  char error[240] = {};
};

// The body of one forked worker: opens its own handle, warms it, waits for the start, runs.
class Worker {
 public:
  // `commit_puts`: Puts per commit of a kCommitter.
  Worker(const Data& data, const Config& config, KvBackend& backend, Role role, uint64_t seed,
         uint64_t round, size_t commit_puts)
      : data_(data),
        config_(config),
        backend_(backend),
        role_(role),
        rng_(seed),
        cache_base_(round * CacheKeys()),
        commit_keys_(commit_puts, Key(0)),
        commit_pairs_(commit_puts) {
    if (role_ == Role::kCache) zipf_.emplace(CacheKeys(), 0.99);
  }

  uint64_t CacheKeys() const { return std::min(config_.cache_keys, data_.num() / 4); }

  absl::Status Prepare() {
    const bool reads_only =
        role_ == Role::kReader || role_ == Role::kSnapshot || role_ == Role::kRereader;
    absl::StatusOr<std::unique_ptr<KvStore>> store =
        backend_.Open(reads_only ? Access::kRead : Access::kWrite);
    if (!store.ok()) return store.status();
    store_ = *std::move(store);
    // Warm-up: every 8th key (touches every page of a mapped store), at most one second.
    const Clock::time_point until = Clock::now() + std::chrono::seconds(1);
    for (uint64_t i = 0; i < data_.num() && Clock::now() < until; i += 8 * 64) {
      for (uint64_t j = i; j < std::min(data_.num(), i + 8 * 64); j += 8) {
        absl::Status s = store_->Get(data_.ExistingKey(j), &value_);
        if (!s.ok() && !absl::IsNotFound(s)) return s;
      }
    }
    if (role_ != Role::kSnapshot) return absl::OkStatus();
    // The snapshot, taken before the start, and what every later pass must read in it.
    absl::StatusOr<std::unique_ptr<KvSnapshot>> snapshot = store_->BeginSnapshot();
    if (!snapshot.ok()) return snapshot.status();
    snapshot_ = *std::move(snapshot);
    snapshot_digest_ = 0;
    absl::StatusOr<uint64_t> n = snapshot_->Scan(
        [&](std::string_view k, std::string_view v) { snapshot_digest_ += PairDigest(k, v); });
    if (!n.ok()) return n.status();
    if (*n != data_.num()) {
      return absl::InternalError(
          absl::StrCat("the snapshot holds ", *n, " pairs of ", data_.num()));
    }
    return absl::OkStatus();
  }

  absl::Status Run(ChildReport& report) {
    if (role_ == Role::kSnapshot || role_ == Role::kRereader) return RunRereader(report);
    const double cpu0 = tools::ProcessCpuSeconds();
    const Clock::time_point start = Clock::now();
    const Clock::time_point until = start + std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(config_.seconds));
    // A paced writer sleeps until its next commit is due (--writer_rate commits per second).
    const bool paced = role_ == Role::kWriter && config_.writer_rate > 0;
    const int burst = paced ? 1 : 256;
    absl::Status status;
    while (status.ok()) {
      for (int i = 0; i < burst && status.ok(); ++i) status = Step(report);
      const Clock::time_point now = Clock::now();
      if (now >= until) break;
      if (paced) {
        const auto due =
            start + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(report.ops / config_.writer_rate));
        if (due > now) std::this_thread::sleep_until(std::min(due, until));
      }
    }
    report.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    report.cpu_seconds = tools::ProcessCpuSeconds() - cpu0;
    store_.reset();
    return status;
  }

 private:
  // A digest of one pair; the sum over a set of pairs does not depend on their order.
  static uint64_t PairDigest(std::string_view key, std::string_view value) {
    const std::hash<std::string_view> hash;
    return Mix(hash(key) ^ Mix(hash(value)));
  }

  // Reads everything by Scan and then by Get (every key), pass after pass, until the committer is
  // surely done (--seconds and a margin past its last burst). A kSnapshot reads its snapshot, and
  // each Scan, and each Get pass that completes, must read what the snapshot held at the start; a
  // kRereader reads through its handle (each Scan its own read transaction, each Get the newest
  // value). Ends the snapshot last.
  absl::Status RunRereader(ChildReport& report) {
    const double cpu0 = tools::ProcessCpuSeconds();
    const Clock::time_point start = Clock::now();
    const Clock::time_point until =
        start + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(config_.seconds + kSnapshotMargin));
    const bool check = snapshot_ != nullptr;
    auto scan = [&](absl::FunctionRef<void(std::string_view, std::string_view)> fn) {
      return check ? snapshot_->Scan(fn) : store_->Scan(fn);
    };
    auto get = [&](std::string_view key) {
      return check ? snapshot_->Get(key, &value_) : store_->Get(key, &value_);
    };
    absl::Status status;
    bool done = false;
    while (status.ok() && !done) {
      uint64_t digest = 0;
      absl::StatusOr<uint64_t> n =
          scan([&](std::string_view k, std::string_view v) { digest += PairDigest(k, v); });
      if (!n.ok()) {
        status = n.status();
        break;
      }
      report.ops += *n;
      if (*n != data_.num() || (check && digest != snapshot_digest_)) {
        status = absl::InternalError(absl::StrCat("a Scan of the snapshot read ", *n,
                                                  " pairs, or other values than at its start"));
        break;
      }
      digest = 0;
      for (uint64_t i = 0; i < data_.num() && status.ok(); ++i) {
        const Key key = data_.ExistingKey(i);
        status = get(key);
        digest += PairDigest(key, value_);
        ++report.ops;
        if ((i & 1023) == 1023 && Clock::now() >= until) {
          done = true;
          break;
        }
      }
      if (!status.ok() || done) break;
      if (check && digest != snapshot_digest_) {
        status =
            absl::InternalError("a Get pass over the snapshot read other values than at its start");
        break;
      }
      ++report.passes;
      done = Clock::now() >= until;
    }
    report.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    report.cpu_seconds = tools::ProcessCpuSeconds() - cpu0;
    snapshot_.reset();
    store_.reset();
    return status;
  }

  absl::Status Step(ChildReport& report) {
    if (role_ == Role::kCommitter) {
      for (size_t j = 0; j < commit_pairs_.size(); ++j) {
        commit_keys_[j] = data_.ExistingKey(rng_.Below(data_.num()));
        commit_pairs_[j] = {commit_keys_[j].view(), data_.Value(rng_)};
      }
      ++report.ops;
      return store_->Commit(commit_pairs_);
    }
    if (role_ == Role::kCache) {
      // 9 in 10: a zipfian key of the hot set (keys num.., never loaded, each round's its own:
      // each starts absent, then hits). 1 in 10: a key nobody asked for before (a random 63-bit
      // number past every other key's), a miss. So the hit rate is near 90% however fast the
      // store is, and the hot keys show how often processes that miss together compute again.
      const bool cold = rng_.Below(10) == 0;
      const Key key = cold ? Key(rng_.Next() | (uint64_t{1} << 63))
                           : data_.MissingKey(cache_base_ + zipf_->Next(rng_));
      bool computed = false;
      ++report.ops;
      absl::Status s = store_->GetOrCompute(
          key,
          [&] {
            const Clock::time_point until =
                Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double, std::micro>(config_.compute_us));
            while (Clock::now() < until) {
            }
            return data_.Value(rng_);
          },
          &value_, &computed);
      report.computes += computed ? 1 : 0;
      if (s.ok() && value_.size() != config_.value_size) {
        s = absl::InternalError(absl::StrCat("a cached value of ", value_.size(), " bytes"));
      }
      return s;
    }
    const Key key = data_.ExistingKey(rng_.Below(data_.num()));
    const bool put = role_ == Role::kWriter || (role_ == Role::kMixed && rng_.Below(10) == 0);
    ++report.ops;
    if (put) return store_->Put(key, data_.Value(rng_));
    absl::Status s = store_->Get(key, &value_);
    if (absl::IsNotFound(s)) {
      ++report.misses;
      return absl::OkStatus();
    }
    return s;
  }

  const Data& data_;
  const Config& config_;
  KvBackend& backend_;
  const Role role_;
  Rng rng_;
  std::unique_ptr<KvStore> store_;
  std::string value_;
  std::optional<Zipfian> zipf_;
  const uint64_t cache_base_;
  std::vector<Key> commit_keys_;  // a kCommitter's keys, which commit_pairs_ view
  std::vector<KvPair> commit_pairs_;
  std::unique_ptr<KvSnapshot> snapshot_;  // a kSnapshot's, from Prepare to the end of its run
  uint64_t snapshot_digest_ = 0;          // what each pass must read in it
};

// Forks one worker per role, starts them together, and sums the readers' (or all) reports. A
// kSnapshot's or kRereader's report goes to result.reader_passes and .reader_ops_per_second alone.
absl::Status RunProcesses(const Data& data, const Config& config, KvBackend& backend,
                          const std::vector<Role>& roles, bool count_writers, Result& result,
                          size_t commit_puts = 1) {
  static uint64_t round = 0;
  ++round;
  const double server0 = ServerCpu(backend);
  absl::StatusOr<std::vector<ChildReport>> reports = RunChildRound<ChildReport>(
      roles.size(), std::chrono::duration<double>(config.seconds),
      [&](size_t i, ChildReport& report, absl::FunctionRef<absl::Status()> wait_for_start) {
        Worker worker(data, config, backend, roles[i], Mix(kSeed ^ (round << 20) ^ i), round,
                      commit_puts);
        absl::Status s = worker.Prepare();
        if (s.ok()) s = wait_for_start();
        if (s.ok()) s = worker.Run(report);
        if (s.ok() && report.misses > 0) {
          s = absl::InternalError(absl::StrCat(report.misses, " Gets of existing keys missed"));
        }
        return s;
      });
  if (!reports.ok()) return reports.status();
  const double server_cpu = ServerCpu(backend) - server0;
  double wall = 0;
  for (size_t i = 0; i < roles.size(); ++i) {
    const ChildReport& r = (*reports)[i];
    if (roles[i] == Role::kSnapshot || roles[i] == Role::kRereader) {
      result.reader_passes = r.passes;
      result.reader_ops_per_second = r.ops / r.wall_seconds;
      continue;
    }
    result.cpu_seconds += r.cpu_seconds;  // every process's CPU: a writer's work is the store's
    if (roles[i] == Role::kWriter) result.writer_ops_per_second = r.ops / r.wall_seconds;
    if (roles[i] == Role::kWriter && !count_writers) continue;
    result.ops += r.ops;
    result.computes += r.computes;
    wall = std::max(wall, r.wall_seconds);
  }
  result.cpu_seconds += server_cpu;
  result.wall_seconds = wall;
  return absl::OkStatus();
}

// ------------------------------------------------------------------------------ one store

class StoreRun {
 public:
  StoreRun(const Data& data, const Config& config, const StoreKind& kind, std::string dir,
           std::vector<Result>* results)
      : data_(data), config_(config), kind_(kind), dir_(std::move(dir)), results_(results) {}

  absl::Status Run() {
    // Every phase but update works on one store that fillrandom fills.
    const bool shared_store = std::any_of(config_.phases.begin(), config_.phases.end(),
                                          [](const std::string& p) { return p != "update"; });
    if (shared_store) {
      absl::StatusOr<std::unique_ptr<KvBackend>> backend = kind_.create(dir_, data_.num());
      if (!backend.ok()) return backend.status();
      backend_ = *std::move(backend);
      absl::StatusOr<std::unique_ptr<KvStore>> store = backend_->Open(Access::kCreate);
      if (!store.ok()) return store.status();
      store_ = *std::move(store);
    }
    for (const std::string& phase : AllPhases()) {
      if (std::find(config_.phases.begin(), config_.phases.end(), phase) == config_.phases.end() &&
          !(phase == "fillrandom" && shared_store)) {
        continue;
      }
      if (absl::Status s = RunPhase(phase); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat(phase, ": ", s.message()));
      }
    }
    store_.reset();
    backend_.reset();
    return absl::OkStatus();
  }

 private:
  Result& NewResult(const std::string& phase, int procs = 1) {
    results_->push_back({.store = kind_.name, .phase = phase, .procs = procs});
    return results_->back();
  }

  void Report(const Result& r) {
    if (!r.measured()) {
      std::fprintf(stderr, "  %-15s %-3s %s\n", r.phase.c_str(),
                   r.procs > 1 ? absl::StrCat(r.procs).c_str() : "", r.note.c_str());
      return;
    }
    std::fprintf(stderr, "  %-15s %-3d %12.0f ops/s %12.0f ops/CPU-s %s%s\n", r.phase.c_str(),
                 r.procs, r.OpsPerSecond(), r.OpsPerCpuSecond(),
                 r.file_bytes > 0 ? absl::StrCat(r.file_bytes >> 20, " MiB ").c_str() : "",
                 r.note.c_str());
  }

  absl::Status RunPhase(const std::string& phase) {
    if (phase == "snapshot") return RunSnapshot();
    if (phase == "update") return RunUpdate();
    if (phase.rfind("mp-", 0) == 0) return RunMultiProcess(phase);
    Result& r = NewResult(phase);
    Timer timer(*backend_, config_.phase_seconds);
    Rng rng(Mix(kSeed ^ std::hash<std::string>()(phase)));
    absl::Status s;
    std::string value;
    if (phase == "fillrandom") {
      const std::vector<uint64_t> order = data_.Permutation(kSeed);
      s = timer.Run(data_.num(), r, [&](uint64_t i) {
        return store_->Put(data_.ExistingKey(order[i]), data_.Value(rng));
      });
      if (s.ok() && r.ops < data_.num()) s = LoadRest(order, r.ops, rng);
      if (s.ok()) s = SyncAndMeasure(r);
    } else if (phase == "overwrite") {
      s = timer.Run(data_.num(), r, [&](uint64_t) {
        return store_->Put(data_.ExistingKey(rng.Below(data_.num())), data_.Value(rng));
      });
    } else if (phase == "readrandom" || phase == "zipfian") {
      std::optional<Zipfian> zipf;
      if (phase == "zipfian") zipf.emplace(data_.num(), 0.99);
      s = timer.Run(data_.num(), r, [&](uint64_t) {
        return store_->Get(data_.ExistingKey(zipf ? zipf->Next(rng) : rng.Below(data_.num())),
                           &value);
      });
    } else if (phase == "readmissing") {
      s = timer.Run(data_.num(), r, [&](uint64_t) -> absl::Status {
        absl::Status got = store_->Get(data_.MissingKey(rng.Below(data_.num())), &value);
        if (absl::IsNotFound(got)) return absl::OkStatus();
        return got.ok() ? absl::InternalError("found a key that was never written") : got;
      });
    } else if (phase == "multiget") {
      std::vector<Key> batch(config_.batch, Key(0));
      std::vector<std::string_view> keys(config_.batch);
      std::vector<std::string> values;
      s = timer.Run(data_.num() / config_.batch, r, [&](uint64_t) -> absl::Status {
        for (size_t i = 0; i < batch.size(); ++i) {
          batch[i] = data_.ExistingKey(rng.Below(data_.num()));
          keys[i] = batch[i].view();
        }
        size_t found = 0;
        absl::Status got = store_->MultiGet(keys, &values, &found);
        if (got.ok() && found != keys.size()) {
          return absl::InternalError(absl::StrCat("MultiGet found ", found, " of ", keys.size()));
        }
        return got;
      });
      r.ops *= config_.batch;
    } else if (phase == "ycsb-a") {
      const Zipfian zipf(data_.num(), 0.99);
      s = timer.Run(data_.num(), r, [&](uint64_t) {
        const Key key = data_.ExistingKey(zipf.Next(rng));
        return rng.Below(2) == 0 ? store_->Get(key, &value) : store_->Put(key, data_.Value(rng));
      });
    } else if (phase == "readseq") {
      uint64_t bytes = 0;
      absl::StatusOr<uint64_t> n;
      s = timer.Run(1, r, [&](uint64_t) {
        n = store_->Scan(
            [&](std::string_view k, std::string_view v) { bytes += k.size() + v.size(); });
        return n.status();
      });
      if (s.ok() && *n != data_.num()) {
        s = absl::InternalError(absl::StrCat("the scan visited ", *n, " pairs of ", data_.num()));
      }
      r.ops = s.ok() ? *n : 0;
    } else if (phase == "compact") {
      s = timer.Run(1, r, [&](uint64_t) { return store_->Compact(); });
      r.ops = 0;  // a compaction has no rate: the row shows the time and the size
      if (s.ok()) s = SyncAndMeasure(r);
    } else if (phase == "deleterandom") {
      const std::vector<uint64_t> order = data_.Permutation(kSeed + 1);
      s = timer.Run(data_.num(), r,
                    [&](uint64_t i) { return store_->Delete(data_.ExistingKey(order[i])); });
    }
    if (absl::IsUnimplemented(s)) {
      r.ops = 0;
      r.note = absl::StrCat("n/a: ", s.message());
      s = absl::OkStatus();
    }
    if (s.ok()) Report(r);
    return s;
  }

  // The pairs a capped fillrandom did not put, loaded untimed.
  absl::Status LoadRest(const std::vector<uint64_t>& order, uint64_t done, Rng& rng) {
    std::vector<Key> keys;
    for (uint64_t i = done; i < order.size(); ++i) keys.push_back(data_.ExistingKey(order[i]));
    std::vector<KvPair> pairs;
    for (const Key& key : keys) pairs.push_back({key.view(), data_.Value(rng)});
    return store_->Load(pairs);
  }

  absl::Status SyncAndMeasure(Result& r) {
    if (!kind_.caps.on_disk) return absl::OkStatus();
    if (absl::Status s = store_->Sync(); !s.ok()) return s;
    r.file_bytes = DirectoryBytes(dir_);
    return absl::OkStatus();
  }

  absl::Status RunMultiProcess(const std::string& phase) {
    const bool with_writer = phase == "mp-read+writer";
    const bool mixed = phase == "mp-mix";
    const bool cache = phase == "mp-cache";
    const bool allowed = kind_.caps.multi_reader &&
                         (!(with_writer || mixed || cache) || kind_.caps.reader_with_writer);
    if (!allowed) {
      NewResult(phase).note =
          kind_.caps.multi_reader ? "n/a: no writer beside readers" : "n/a: one process at a time";
      Report(results_->back());
      return absl::OkStatus();
    }
    store_.reset();  // no handle of this process may cross the fork, or hold a file lock
    for (int procs : config_.procs) {
      Result& r = NewResult(phase, procs);
      std::vector<Role> roles(procs, mixed ? Role::kMixed : (cache ? Role::kCache : Role::kReader));
      if (with_writer) roles.push_back(Role::kWriter);
      if (absl::Status s = RunProcesses(data_, config_, *backend_, roles, mixed || cache, r);
          !s.ok()) {
        return s;
      }
      if (cache && r.ops > 0) {
        r.note = absl::StrFormat("hit rate %.1f%%, %d computes, %.0f ops/s per process",
                                 100.0 * static_cast<double>(r.ops - r.computes) / r.ops,
                                 r.computes, r.OpsPerSecond() / procs);
      }
      Report(r);
    }
    absl::StatusOr<std::unique_ptr<KvStore>> store = backend_->Open(Access::kWrite);
    if (!store.ok()) return store.status();
    store_ = *std::move(store);
    return absl::OkStatus();
  }

  // The snapshot phase: for a one-Put commit and a --txn_puts transaction, the committer alone,
  // beside a rereader, and beside a snapshot reader.
  absl::Status RunSnapshot() {
    const std::vector<std::pair<std::string, size_t>> commits = {
        {"commit-put", 1}, {absl::StrCat("commit-txn", config_.txn_puts), config_.txn_puts}};
    std::string na;
    if (!kind_.caps.multi_reader || !kind_.caps.reader_with_writer) {
      na = "n/a: no writer beside readers";
    } else {
      absl::StatusOr<std::unique_ptr<KvSnapshot>> snapshot = store_->BeginSnapshot();
      if (absl::IsUnimplemented(snapshot.status())) {
        na = absl::StrCat("n/a: ", snapshot.status().message());
      } else if (!snapshot.ok()) {
        return snapshot.status();
      }
    }
    if (!na.empty()) {
      for (const auto& [label, puts] : commits) {
        for (const char* suffix : {"", "+reader", "+snapshot", "+after"}) {
          NewResult(absl::StrCat(label, suffix)).note = na;
          Report(results_->back());
        }
      }
      return absl::OkStatus();
    }
    store_.reset();  // no handle of this process may cross the fork
    // Not reported: commits for --seconds first, so that every row runs on a store in the state
    // that overwrites keep it in. Otherwise the first row would run on a freshly filled store:
    // mapkv's cleaner (format version 5) begins only once the log is past compact_ratio times
    // what it keeps, a third of the way into that row, and the rows after it would pay for
    // cleaning that the first one did not.
    Result warm_up{.store = kind_.name, .phase = "warm-up"};
    if (absl::Status s =
            RunProcesses(data_, config_, *backend_, {Role::kCommitter}, true, warm_up, 1);
        !s.ok()) {
      return s;
    }
    for (const auto& [label, puts] : commits) {
      for (const char* beside : {"", "+reader", "+snapshot", "+after"}) {
        Result& r = NewResult(absl::StrCat(label, beside));
        std::vector<Role> roles = {Role::kCommitter};
        const std::string_view with = beside;
        if (with == "+reader") roles.push_back(Role::kRereader);
        if (with == "+snapshot") roles.push_back(Role::kSnapshot);
        if (absl::Status s = RunProcesses(data_, config_, *backend_, roles, true, r, puts);
            !s.ok()) {
          return s;
        }
        if (roles.size() > 1) {
          r.note = absl::StrFormat("%s: %d passes, %.2f M reads/s", beside + 1, r.reader_passes,
                                   r.reader_ops_per_second / 1e6);
        }
        Report(r);
      }
    }
    absl::StatusOr<std::unique_ptr<KvStore>> store = backend_->Open(Access::kWrite);
    if (!store.ok()) return store.status();
    store_ = *std::move(store);
    return absl::OkStatus();
  }

  // The update phase, on a store of its own in a new directory beside the run's (so the size of
  // the run's directory stays the other phases' alone), removed at the end.
  absl::Status RunUpdate() {
    const std::string dir = dir_ + "-update";
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat(dir, ": ", ec.message()));
    Result all{.store = kind_.name, .phase = "update"};
    Result rest{.store = kind_.name, .phase = "update-10%"};
    absl::Status s = Update(dir, all, rest);
    std::filesystem::remove_all(dir, ec);
    if (!s.ok()) return s;
    for (Result* r : {&all, &rest}) {
      const uint64_t raw = data_.raw_bytes(r->live_keys);
      r->note = absl::StrFormat(
          "%d keys live, space %s, write amplification %s%s", r->live_keys,
          r->file_bytes > 0
              ? absl::StrFormat("%.2fx raw live (rounds: mean %.2fx, max %.2fx)",
                                static_cast<double>(r->file_bytes) / raw,
                                r->space_samples > 0
                                    ? static_cast<double>(r->space_sum) / r->space_samples / raw
                                    : 0.0,
                                static_cast<double>(r->space_max) / raw)
              : "n/a",
          r->bytes_written > 0 ? absl::StrFormat("%.2f", static_cast<double>(r->bytes_written) /
                                                             data_.raw_bytes(r->ops))
                               : "n/a",
          config_.compact_at > 0 ? absl::StrFormat(", %d online compactions", r->compactions) : "");
      results_->push_back(*r);
      Report(*r);
    }
    return absl::OkStatus();
  }

  // Fill, overwrite, measure into `all`; delete 90%, overwrite, measure into `rest`; check.
  absl::Status Update(const std::string& dir, Result& all, Result& rest) {
    absl::StatusOr<std::unique_ptr<KvBackend>> backend = kind_.create(dir, data_.num());
    if (!backend.ok()) return backend.status();
    absl::StatusOr<std::unique_ptr<KvStore>> opened = (*backend)->Open(Access::kCreate);
    if (!opened.ok()) return opened.status();
    KvStore& store = **opened;
    Rng rng(Mix(kSeed ^ std::hash<std::string>()("update")));
    std::vector<uint32_t> last(data_.num());  // each key's latest value, by its place in the pool
    std::vector<uint64_t> live = data_.Permutation(kSeed);
    for (uint64_t k : live) {
      last[k] = data_.ValueOffset(rng);
      if (absl::Status s = store.Put(data_.ExistingKey(k), data_.ValueAt(last[k])); !s.ok()) {
        return s;
      }
    }
    if (absl::Status s = Overwrite(store, **backend, dir, live, rng, last, all); !s.ok()) return s;
    if (absl::Status s = MeasureSpace(store, dir, live.size(), all); !s.ok()) return s;

    Shuffle(live, rng);
    const std::vector<uint64_t> deleted(live.begin(), live.begin() + live.size() * 9 / 10);
    live.erase(live.begin(), live.begin() + deleted.size());
    for (uint64_t k : deleted) {
      if (absl::Status s = store.Delete(data_.ExistingKey(k)); !s.ok()) return s;
    }
    if (absl::Status s = Overwrite(store, **backend, dir, live, rng, last, rest); !s.ok()) {
      return s;
    }
    if (absl::Status s = MeasureSpace(store, dir, live.size(), rest); !s.ok()) return s;

    std::string value;
    for (uint64_t k : live) {
      const Key key = data_.ExistingKey(k);
      if (absl::Status s = store.Get(key, &value); !s.ok()) {
        return absl::Status(
            s.code(), absl::StrCat("a live key, ", std::string(key.view()), ": ", s.message()));
      }
      if (value != data_.ValueAt(last[k])) {
        return absl::InternalError(absl::StrCat("key ", std::string(key.view()),
                                                " reads another value than the last one written"));
      }
    }
    for (uint64_t k : deleted) {
      const Key key = data_.ExistingKey(k);
      absl::Status s = store.Get(key, &value);
      if (s.ok()) {
        return absl::InternalError(absl::StrCat("deleted key ", std::string(key.view()), " found"));
      }
      if (!absl::IsNotFound(s)) return s;
    }
    absl::StatusOr<uint64_t> scanned = store.Scan([](std::string_view, std::string_view) {});
    if (absl::IsUnimplemented(scanned.status())) return absl::OkStatus();  // memcached
    if (!scanned.ok()) return scanned.status();
    if (*scanned != live.size()) {
      return absl::InternalError(
          absl::StrCat("a scan visited ", *scanned, " pairs of ", live.size(), " live"));
    }
    return absl::OkStatus();
  }

  // --update_rounds rounds of Puts of `keys` (each once in random order, or as many zipfian
  // ones), each with a new value (into `last`), timed into r; the round's keys are drawn before
  // its clock starts. Every kSpaceSample Puts (inside the clock: its time counts, a directory
  // walk) the disk space of `dir` is sampled into r. With --compact_at=R, when it passes R x the
  // raw bytes of the live pairs the store is compacted online (KvStore::CompactOnline) there and
  // then; where the compacted file itself is above that, the next one waits for R x the
  // compacted file's space. Stores without online compaction are not checked after their first
  // Unimplemented.
  absl::Status Overwrite(KvStore& store, const KvBackend& backend, const std::string& dir,
                         const std::vector<uint64_t>& keys, Rng& rng, std::vector<uint32_t>& last,
                         Result& r) {
    bool compact = config_.compact_at > 0 && kind_.caps.on_disk;
    const double raw_live = static_cast<double>(data_.raw_bytes(keys.size()));
    double compacted = 0;  // the space right after this stage's last online compaction
    uint64_t puts = 0;
    std::optional<Zipfian> zipf;
    if (config_.update_dist == "zipf") zipf.emplace(keys.size(), 0.99);
    std::vector<uint64_t> order = keys;
    const uint64_t written0 = store.BytesWritten();
    for (uint32_t round = 0; round < config_.update_rounds; ++round) {
      if (zipf) {
        for (uint64_t& k : order) k = keys[zipf->Next(rng)];
      } else {
        Shuffle(order, rng);
      }
      const double cpu0 = tools::ProcessCpuSeconds() + ServerCpu(backend);
      const Clock::time_point start = Clock::now();
      Clock::time_point before = start;  // one clock read an update: the end of the one before
      for (uint64_t k : order) {
        last[k] = data_.ValueOffset(rng);
        if (absl::Status s = store.Put(data_.ExistingKey(k), data_.ValueAt(last[k])); !s.ok()) {
          return s;
        }
        const Clock::time_point after = Clock::now();
        r.longest_op_seconds =
            std::max(r.longest_op_seconds, std::chrono::duration<double>(after - before).count());
        before = after;
        if (++puts % kSpaceSample != 0 || !kind_.caps.on_disk) continue;
        const uint64_t space = DirectoryBytes(dir);
        r.space_sum += space;
        ++r.space_samples;
        r.space_max = std::max(r.space_max, space);
        before = Clock::now();
        if (compact && static_cast<double>(space) >
                           config_.compact_at *
                               (compacted > config_.compact_at * raw_live ? compacted : raw_live)) {
          absl::Status s = store.CompactOnline();
          if (absl::IsUnimplemented(s)) {
            compact = false;
            continue;
          }
          if (!s.ok()) return s;
          ++r.compactions;
          compacted = static_cast<double>(DirectoryBytes(dir));
          before = Clock::now();
        }
      }
      r.wall_seconds += std::chrono::duration<double>(Clock::now() - start).count();
      r.cpu_seconds += tools::ProcessCpuSeconds() + ServerCpu(backend) - cpu0;
      r.ops += order.size();
    }
    const uint64_t written = store.BytesWritten();
    r.bytes_written = written > written0 ? written - written0 : 0;
    return absl::OkStatus();
  }

  absl::Status MeasureSpace(KvStore& store, const std::string& dir, uint64_t keys, Result& r) {
    r.live_keys = keys;
    if (!kind_.caps.on_disk) return absl::OkStatus();
    if (absl::Status s = store.Sync(); !s.ok()) return s;
    r.file_bytes = DirectoryBytes(dir);
    return absl::OkStatus();
  }

  const Data& data_;
  const Config& config_;
  const StoreKind& kind_;
  const std::string dir_;
  std::vector<Result>* results_;
  std::unique_ptr<KvBackend> backend_;
  std::unique_ptr<KvStore> store_;
};

// ------------------------------------------------------------------------------ output

std::string Mops(double ops_per_second) { return absl::StrFormat("%.3f", ops_per_second / 1e6); }

std::string PhaseLabel(const Result& r) {
  return r.phase.rfind("mp-", 0) == 0 ? absl::StrCat(r.phase, " P=", r.procs) : r.phase;
}

// One Markdown table: a row per phase, a column per store.
std::string Table(const std::vector<Result>& results, const std::vector<std::string>& stores,
                  const std::function<std::string(const Result&)>& cell) {
  std::vector<std::string> rows;
  std::map<std::string, std::map<std::string, std::string>> cells;
  for (const Result& r : results) {
    const std::string label = PhaseLabel(r);
    if (std::find(rows.begin(), rows.end(), label) == rows.end()) rows.push_back(label);
    cells[label][r.store] = cell(r);
  }
  std::string out = absl::StrCat("| phase | ", absl::StrJoin(stores, " | "), " |\n|---|");
  for (size_t i = 0; i < stores.size(); ++i) out += "---:|";
  out += "\n";
  for (const std::string& row : rows) {
    absl::StrAppend(&out, "| ", row, " |");
    for (const std::string& store : stores) {
      auto it = cells[row].find(store);
      absl::StrAppend(&out, " ", it == cells[row].end() ? "" : it->second, " |");
    }
    out += "\n";
  }
  return out;
}

// Multi-process reads against one process: "speedup" is total ops/s over the one-process round's
// (what a machine with a core per process shows); "CPU-normalised" is P x the ratio of ops per
// CPU-second, the speedup the processes would reach with a core each (what a machine with fewer
// cores than processes can still tell). "kept beside a writer" is the readers' ops per CPU-second
// with one writer process committing meanwhile, over the same readers' alone.
std::string Scaling(const std::vector<Result>& results, const std::vector<std::string>& stores) {
  auto find = [&](const std::string& store, const std::string& phase, int procs) {
    for (const Result& r : results) {
      if (r.store == store && r.phase == phase && r.procs == procs && r.measured()) return &r;
    }
    return static_cast<const Result*>(nullptr);
  };
  std::string rows;
  for (const std::string& store : stores) {
    const Result* one = find(store, "mp-read", 1);
    if (one == nullptr) continue;
    for (const Result& r : results) {
      if (r.store != store || r.phase != "mp-read" || !r.measured()) continue;
      const Result* mixed = find(store, "mp-read+writer", r.procs);
      absl::StrAppendFormat(
          &rows, "| %s | %d | %.2f | %.2f | %s | %s |\n", store, r.procs,
          r.OpsPerSecond() / one->OpsPerSecond(),
          r.procs * r.OpsPerCpuSecond() / one->OpsPerCpuSecond(),
          mixed == nullptr
              ? "n/a"
              : absl::StrFormat("%.0f%%", 100 * mixed->OpsPerCpuSecond() / r.OpsPerCpuSecond()),
          mixed == nullptr ? "" : Mops(mixed->writer_ops_per_second));
    }
  }
  if (rows.empty()) return "";
  return absl::StrCat(
      "\nmp-read against one process (speedup: ops/s; CPU-normalised: P x ops per CPU-s), and "
      "the readers' ops per CPU-s kept beside one writer:\n\n"
      "| store | P | speedup | CPU-normalised | kept beside a writer | writer M commits/s |\n"
      "|---|---:|---:|---:|---:|---:|\n",
      rows);
}

// A rate in thousands or millions.
std::string Rate(double per_second) {
  if (per_second >= 1e6) return absl::StrFormat("%.2f M", per_second / 1e6);
  return absl::StrFormat("%.1f k", per_second / 1e3);
}

// The snapshot phase: each commit row beside a snapshot, and beside a rereader, against the same
// commits alone. "kept" is beside over alone, of the committing process's commits per CPU-second
// and per second.
std::string Snapshots(const std::vector<Result>& results, const std::vector<std::string>& stores) {
  auto find = [&](const std::string& store, const std::string& phase) {
    for (const Result& r : results) {
      if (r.store == store && r.phase == phase && r.measured()) return &r;
    }
    return static_cast<const Result*>(nullptr);
  };
  std::string rows;
  for (const std::string& store : stores) {
    for (const Result& alone : results) {
      if (alone.store != store || alone.phase.rfind("commit-", 0) != 0 ||
          alone.phase.find('+') != std::string::npos || !alone.measured()) {
        continue;
      }
      const Result* beside = find(store, alone.phase + "+snapshot");
      const Result* reader = find(store, alone.phase + "+reader");
      const Result* after = find(store, alone.phase + "+after");
      if (beside == nullptr) continue;
      auto kept = [&](const Result* r) {
        return r == nullptr
                   ? std::string("n/a")
                   : absl::StrFormat("%.2f", r->OpsPerCpuSecond() / alone.OpsPerCpuSecond());
      };
      absl::StrAppendFormat(&rows, "| %s | %s | %s | %s | %s | %s | %.2f | %.2f | %d | %s | %s |\n",
                            store, alone.phase, Rate(alone.OpsPerSecond()),
                            Rate(alone.OpsPerCpuSecond()), Rate(beside->OpsPerSecond()),
                            Rate(beside->OpsPerCpuSecond()),
                            beside->OpsPerCpuSecond() / alone.OpsPerCpuSecond(),
                            beside->OpsPerSecond() / alone.OpsPerSecond(), beside->reader_passes,
                            kept(reader), kept(after));
    }
  }
  if (rows.empty()) return "";
  return absl::StrCat(
      "\nCommits of one process alone and beside another holding a snapshot and re-reading it "
      "(per CPU-s: the committing process's CPU time; kept: beside / alone; the last columns: "
      "kept per CPU-s beside the same reads without a snapshot held, and alone again right after "
      "the snapshot ended, which pays for work a snapshot put off):\n\n"
      "| store | commit | alone commits/s | alone per CPU-s | beside commits/s | beside per CPU-s "
      "| kept per CPU-s | kept commits/s | reader passes | kept per CPU-s, no snapshot "
      "| kept per CPU-s, right after |\n"
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
      rows);
}

// The update phase: a row per store, its two stages side by side.
std::string SteadyState(const std::vector<Result>& results, const std::vector<std::string>& stores,
                        const Data& data, const Config& config) {
  auto find = [&](const std::string& store, const std::string& phase) {
    for (const Result& r : results) {
      if (r.store == store && r.phase == phase && r.measured()) return &r;
    }
    return static_cast<const Result*>(nullptr);
  };
  auto space = [&](const Result& r) {
    if (r.file_bytes == 0) return std::string("n/a");
    return absl::StrFormat("%.2f", static_cast<double>(r.file_bytes) / data.raw_bytes(r.live_keys));
  };
  auto during = [&](const Result& r) {
    if (r.space_samples == 0) return std::string("n/a");
    const double raw = static_cast<double>(data.raw_bytes(r.live_keys));
    return absl::StrFormat("%.2f / %.2f", static_cast<double>(r.space_sum) / r.space_samples / raw,
                           static_cast<double>(r.space_max) / raw);
  };
  std::string rows;
  for (const std::string& store : stores) {
    const Result* all = find(store, "update");
    const Result* rest = find(store, "update-10%");
    if (all == nullptr || rest == nullptr) continue;
    const uint64_t written = all->bytes_written + rest->bytes_written;
    absl::StrAppendFormat(
        &rows, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %.1f | %s |", store,
        config.update_dist, all->live_keys, Rate(all->OpsPerSecond()), Rate(all->OpsPerCpuSecond()),
        Rate(rest->OpsPerSecond()), Rate(rest->OpsPerCpuSecond()), space(*all), during(*all),
        space(*rest), during(*rest),
        std::max(all->longest_op_seconds, rest->longest_op_seconds) * 1e3,
        all->bytes_written > 0 && rest->bytes_written > 0
            ? absl::StrFormat("%.2f",
                              static_cast<double>(written) / data.raw_bytes(all->ops + rest->ops))
            : "n/a");
    if (config.compact_at > 0) {
      absl::StrAppendFormat(&rows, " %d / %d |", all->compactions, rest->compactions);
    }
    rows += "\n";
  }
  if (rows.empty()) return "";
  const bool compacting = config.compact_at > 0;
  return absl::StrCat(
      absl::StrFormat(
          "\nSteady-state updates (update): %d keys put, then %d rounds of overwrites (%s), a "
          "random 90%% of the keys deleted, %d rounds over the rest. Updates per second and per "
          "CPU-s over the overwrite rounds, of all the keys and of the 10%% left; space: the "
          "disk space of the store's directory (as du counts) over the raw bytes of the live "
          "keys and values, after each stage, and its mean and largest over samples taken every "
          "10,000 updates of the stage's rounds; the longest update, of both stages; write "
          "amplification: the bytes the store says it "
          "wrote / the raw bytes updated, over both stages' rounds (KvStore::BytesWritten: "
          "mapkv's is log bytes appended, compactions' copies included, not counting the index "
          "slots rewritten in place; n/a: "
          "the store cannot say)%s:\n\n",
          data.num(), config.update_rounds,
          config.update_dist == "zipf" ? "each num Puts of zipfian keys, theta 0.99"
                                       : "each every key once, in random order",
          config.update_rounds,
          compacting
              ? absl::StrFormat(
                    "; online compactions (--compact_at=%g): triggered by the benchmark, in the "
                    "timed rounds, when at a check every 10,000 updates the space passes %g x raw "
                    "live (KvStore::CompactOnline: mapkv's counts the compactions' writes in its "
                    "write amplification), in each stage",
                    config.compact_at, config.compact_at)
              : ""),
      "| store | dist | keys | updates/s | updates/CPU-s | updates/s, 10% left | updates/CPU-s, "
      "10% left | space after overwrites (x raw live) | during them, mean / max | space after "
      "deleting 90% (x raw live) | during the rest's rounds, mean / max | longest update (ms) | "
      "write amplification |",
      compacting ? " online compactions |\n" : "\n",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
      compacting ? "---:|\n" : "\n", rows);
}

std::string Markdown(const std::vector<Result>& all_results, const std::vector<std::string>& stores,
                     const Data& data, const Config& config) {
  // The update phase has a table of its own.
  std::vector<Result> results;
  for (const Result& r : all_results) {
    if (r.phase.rfind("update", 0) != 0) results.push_back(r);
  }
  if (results.empty()) return SteadyState(all_results, stores, data, config);
  auto rate = [](const std::function<double(const Result&)>& f) {
    return [f](const Result& r) -> std::string {
      if (!r.note.empty() && !r.measured()) return r.note.rfind("n/a", 0) == 0 ? "n/a" : "";
      if (!r.measured()) return "";
      return absl::StrCat(Mops(f(r)), r.note == "capped" ? "*" : "");
    };
  };
  std::string out =
      "Million operations per CPU-second (the CPU of every process doing the store's work):\n\n";
  out += Table(results, stores, rate([](const Result& r) { return r.OpsPerCpuSecond(); }));
  out += "\nMillion operations per second, wall clock:\n\n";
  out += Table(results, stores, rate([](const Result& r) { return r.OpsPerSecond(); }));
  std::vector<Result> sizes;
  for (const Result& r : results) {
    if (r.file_bytes > 0) sizes.push_back(r);
  }
  if (!sizes.empty()) {
    out += absl::StrFormat(
        "\nFile size in MiB (x the %.1f MiB of raw keys and values), and the compaction's "
        "time:\n\n",
        data.raw_bytes() / 1048576.0);
    out += Table(sizes, stores, [&](const Result& r) {
      std::string s = absl::StrFormat("%.1f (%.2fx)", r.file_bytes / 1048576.0,
                                      static_cast<double>(r.file_bytes) / data.raw_bytes());
      if (r.phase == "compact") absl::StrAppendFormat(&s, " in %.1f s", r.wall_seconds);
      return s;
    });
  }
  out += Scaling(results, stores);
  out += Snapshots(results, stores);
  out += SteadyState(all_results, stores, data, config);
  out += "\n* stopped after --phase_seconds; the rate is of the operations done.\n";
  return out;
}

std::string Csv(const std::vector<Result>& results) {
  std::string out =
      "store,phase,procs,ops,wall_seconds,cpu_seconds,ops_per_second,ops_per_cpu_second,"
      "file_bytes,note,live_keys,bytes_written\n";
  for (const Result& r : results) {
    absl::StrAppendFormat(
        &out, "\"%s\",%s,%d,%d,%.4f,%.4f,%.0f,%.0f,%d,\"%s\",%d,%d\n", r.store, r.phase, r.procs,
        r.ops, r.wall_seconds, r.cpu_seconds, r.measured() ? r.OpsPerSecond() : 0,
        r.measured() ? r.OpsPerCpuSecond() : 0, r.file_bytes, r.note, r.live_keys, r.bytes_written);
  }
  return out;
}

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path, ": cannot write"));
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  Config config;
  const std::vector<std::pair<std::string, StoreKind>> all = AllStores(config);
  std::vector<std::string> ids;
  for (const auto& [id, kind] : all) ids.push_back(id);
  config.stores = ids;
  config.phases = AllPhases();

  CLI::App app(
      "mapkv's peer benchmark: mapkv beside the stores a user would pick instead, in the phases "
      "of\n"
      "db_bench and YCSB, measured in one run. Prints progress to stderr and the tables "
      "(Markdown)\n"
      "to stdout. See the comment at the top of bench/peer_bench.cc for what each phase does.");
  app.option_defaults()->always_capture_default();
  app.add_option("--num", config.num, "keys in the data set")->check(CLI::Range(1000, 1 << 30));
  app.add_option("--value_size", config.value_size, "bytes per value")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--procs", config.procs, "process counts of the mp- phases (comma-separated)")
      ->delimiter(',')
      ->check(CLI::Range(1, 256));
  app.add_option("--seconds", config.seconds, "length of each multi-process round")
      ->check(CLI::Range(0.1, 600.0));
  app.add_option("--writer_rate", config.writer_rate,
                 "commits per second of the writer beside the readers in mp-read+writer (0: as "
                 "fast as it can)")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--phase_seconds", config.phase_seconds,
                 "cap on a single-process phase but update (slow stores stop early, marked *)")
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--batch", config.batch, "keys per MultiGet")->check(CLI::Range(1, 4096));
  app.add_option("--txn_puts", config.txn_puts,
                 "Puts per transaction of the snapshot phase's commit-txn rows")
      ->check(CLI::Range(2, 10'000));
  app.add_option("--update_rounds", config.update_rounds,
                 "update: overwrite rounds before and after deleting 90% of the keys")
      ->check(CLI::Range(1, 10'000));
  app.add_option("--update_dist", config.update_dist,
                 "update: a round overwrites every key once in random order (uniform) or puts "
                 "num zipfian keys (zipf)")
      ->check(CLI::IsMember({"uniform", "zipf"}));
  app.add_option("--compact_at", config.compact_at,
                 "update: compact the store online (stores that can: mapkv) when, at a check "
                 "every 10,000 updates, its disk space passes this x the raw live bytes; 0: never")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--compact_ratio", config.mapkv.compact_ratio,
                 "mapkv's Options::compact_ratio (commits start an online compaction past it; "
                 "0: never); default: Options' default")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--compact_min_garbage", config.mapkv.compact_min_garbage,
                 "mapkv's Options::compact_min_garbage in bytes; default: Options' default");
  app.add_option("--cache_keys", config.cache_keys,
                 "hot keys of mp-cache (zipfian; they start absent; at most num / 4)");
  app.add_option("--compute_us", config.compute_us,
                 "microseconds of busy work per computed value in mp-cache")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--cache_capacity", config.cache_capacity,
                 "bytes of mapkv's cache file in mp-cache (CacheOptions::capacity; its oldest "
                 "entries are evicted past it; the servers run without eviction)")
      ->check(CLI::Range(uint64_t{1} << 20, uint64_t{1} << 40));
  app.add_option("--stores", config.stores, "stores to run, of: " + absl::StrJoin(ids, ","))
      ->delimiter(',')
      ->check(CLI::IsMember(ids));
  app.add_option("--phases", config.phases,
                 "phases to run (fillrandom runs with any but update), of: " +
                     absl::StrJoin(AllPhases(), ","))
      ->delimiter(',')
      ->check(CLI::IsMember(AllPhases()));
  app.add_option("--csv", config.csv, "also write every result as CSV to this file");
  app.add_option("--markdown", config.markdown, "write the tables to this file, not stdout");
  app.add_option("--dir", config.dir,
                 "where the stores' directories go (default: a new temporary directory, removed "
                 "at the end)");
  CLI11_PARSE(app, argc, argv);
  tools::IgnoreBrokenPipes();

  std::string root = config.dir;
  const bool own_root = root.empty();
  if (own_root) {
    absl::StatusOr<std::string> tmp = tools::MakeTempDir("mapkv-peer-bench-");
    if (!tmp.ok()) {
      std::fprintf(stderr, "mapkv_peer_bench: %s\n", tmp.status().ToString().c_str());
      return 1;
    }
    root = *tmp;
  }

  std::fprintf(stderr, "preparing %llu keys...\n", static_cast<unsigned long long>(config.num));
  const Data data(config);
  std::vector<Result> results;
  std::vector<std::string> names;
  int failures = 0;
  for (const auto& [id, kind] : all) {
    if (std::find(config.stores.begin(), config.stores.end(), id) == config.stores.end()) continue;
    names.push_back(kind.name);
    std::fprintf(stderr, "%s (%s)\n", kind.name.c_str(), SettingsAsRun(kind, config).c_str());
    const std::string dir = absl::StrCat(root, "/", id);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      std::fprintf(stderr, "mapkv_peer_bench: %s: %s\n", dir.c_str(), ec.message().c_str());
      return 1;
    }
    absl::Status s = StoreRun(data, config, kind, dir, &results).Run();
    if (!s.ok()) {
      ++failures;
      std::fprintf(stderr, "  FAILED: %s\n", s.ToString().c_str());
      results.push_back({.store = kind.name, .phase = "error", .note = s.ToString()});
    }
    std::filesystem::remove_all(dir, ec);
  }
  if (own_root) {
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }

  std::string tables = Markdown(results, names, data, config);
  absl::StrAppend(&tables, "\nStores:\n\n");
  for (const auto& [id, kind] : all) {
    if (std::find(config.stores.begin(), config.stores.end(), id) != config.stores.end()) {
      absl::StrAppend(&tables, "- ", kind.name, ": ", SettingsAsRun(kind, config), "\n");
    }
  }
  if (!config.markdown.empty()) {
    if (absl::Status s = WriteFile(config.markdown, tables); !s.ok()) {
      std::fprintf(stderr, "mapkv_peer_bench: %s\n", s.ToString().c_str());
      return 1;
    }
  } else {
    std::fputs(tables.c_str(), stdout);
  }
  if (!config.csv.empty()) {
    if (absl::Status s = WriteFile(config.csv, Csv(results)); !s.ok()) {
      std::fprintf(stderr, "mapkv_peer_bench: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace mapkv::bench

int main(int argc, char** argv) { return mapkv::bench::Main(argc, argv); }
