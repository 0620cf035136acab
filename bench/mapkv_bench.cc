// Point operations of mapkv next to the same operations on an in-memory absl::flat_hash_map.
//
//   MAPKV_BENCH_KEYS=1000000 build/bench/mapkv_bench [--benchmark_filter=Mapkv]
//
// N keys (1,000,000 unless MAPKV_BENCH_KEYS says otherwise) of 16 bytes, values of 100 bytes.
// Keys are 16 hex digits of a bijective mix of their number, so distinct and in random order;
// every benchmark walks them in one fixed pseudo-random permutation. One database and one map
// holding all N keys are loaded once and shared by the benchmarks (in a temporary directory under
// /tmp, removed at exit). Insert, Delete and Erase run exactly N iterations: insert N new keys into
// an empty database or map, or delete all N keys (after which the shared copy is reloaded if a
// later benchmark needs it).
//
// Counters: items_per_second is Google Benchmark's (per CPU second of the benchmark thread);
// wall_ops/s and cpu_ops/s are measured here around the timed loop, against the steady clock and
// against the process's CPU time, so the two can be compared directly. mapkv runs with its
// defaults: Durability::kNone (commits stay in the page cache) and checksums verified on Get.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "mapkv/db.h"

namespace mapkv {
namespace {

constexpr size_t kKeySize = 16;
constexpr size_t kValueSize = 100;
constexpr size_t kDefaultKeys = 1'000'000;
constexpr uint64_t kSeed = 0x6d61706b76626e63ull;
constexpr size_t kValuePool = 64 << 10;
constexpr size_t kLoadBatch = 10'000;  // puts per write transaction when loading
constexpr int kTxnPuts = 100;

size_t NumKeys() {
  static const size_t n = [] {
    const char* env = std::getenv("MAPKV_BENCH_KEYS");
    uint64_t parsed = 0;
    if (env != nullptr && absl::SimpleAtoi(env, &parsed) && parsed > 0) return size_t{parsed};
    if (env != nullptr) {
      std::fprintf(stderr,
                   "mapkv_bench: ignoring MAPKV_BENCH_KEYS=\"%s\" (not a positive number)\n", env);
    }
    return kDefaultKeys;
  }();
  return n;
}

// A bijection on 64-bit integers (splitmix64's finaliser): distinct inputs give distinct keys.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string MakeKey(uint64_t id) {
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t bits = Mix(kSeed + id);
  std::string key(kKeySize, '0');
  for (size_t i = 0; i < kKeySize; ++i) key[i] = kHex[(bits >> (60 - 4 * i)) & 0xf];
  return key;
}

// Measures one run of a timed loop against the wall clock and the process's CPU time.
class OpsTimer {
 public:
  OpsTimer() : wall_start_(std::chrono::steady_clock::now()), cpu_start_(std::clock()) {}

  void Finish(benchmark::State& state, int64_t items) {
    double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start_).count();
    double cpu = static_cast<double>(std::clock() - cpu_start_) / CLOCKS_PER_SEC;
    state.SetItemsProcessed(items);
    state.counters["wall_ops/s"] = static_cast<double>(items) / std::max(wall, 1e-9);
    state.counters["cpu_ops/s"] = static_cast<double>(items) / std::max(cpu, 1e-9);
  }

 private:
  std::chrono::steady_clock::time_point wall_start_;
  std::clock_t cpu_start_;
};

// What the benchmarks share: keys, values, the loaded database and the loaded map.
class Fixture {
 public:
  static Fixture& Get() {
    static Fixture fixture;
    return fixture;
  }

  ~Fixture() { Cleanup(); }

  size_t n() const { return n_; }
  // Keys live in flat buffers, 16 bytes each, in the order the timed loops walk them, so fetching
  // the next key is a sequential read the prefetcher hides, not a cache miss charged to the store.
  // The loops walk a random permutation of the load order: records and slots are hit at random.
  std::string_view key(size_t i) const { return Slice(read_keys_, i); }       // present, random
  std::string_view load_key(size_t i) const { return Slice(load_keys_, i); }  // present, by id
  std::string_view miss_key(size_t i) const { return Slice(miss_keys_, i); }  // never present
  std::string_view new_key(size_t i) const { return Slice(new_keys_, i); }    // for inserts
  std::string_view value(size_t i) const {
    return std::string_view(value_pool_).substr((i * 97) % kValuePool, kValueSize);
  }

  // A database holding every key(i) -> value(i), or null after SkipWithError.
  DB* LoadedDb(benchmark::State& state) {
    if (db_ == nullptr || !db_complete_) {
      db_.reset();
      absl::StatusOr<std::unique_ptr<DB>> db = OpenFresh("loaded");
      absl::Status status = db.status();
      if (status.ok()) {
        db_ = *std::move(db);
        auto start = std::chrono::steady_clock::now();
        status = Load(db_.get());
        // Write the loaded pages back now: measuring while the kernel flushes 250 MB of dirty
        // pages (and shoots down their TLB entries) doubled the times seen and made them erratic.
        if (status.ok()) status = db_->Checkpoint();
        std::fprintf(
            stderr, "mapkv_bench: loaded %zu keys into mapkv in %.2f s\n", n(),
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      if (!status.ok()) {
        db_.reset();
        state.SkipWithError(status.ToString().c_str());
        return nullptr;
      }
      db_complete_ = true;
    }
    return db_.get();
  }
  void DbKeysRemoved() { db_complete_ = false; }

  absl::flat_hash_map<std::string, std::string>& LoadedMap() {
    if (!map_complete_) {
      map_.clear();
      for (size_t i = 0; i < n(); ++i) map_.emplace(std::string(load_key(i)), value(i));
      map_complete_ = true;
    }
    return map_;
  }
  void MapKeysRemoved() { map_complete_ = false; }

  // A new, empty database file in the fixture's directory.
  absl::StatusOr<std::unique_ptr<DB>> OpenFresh(std::string_view name) {
    absl::Status status = MakeDir();
    if (!status.ok()) return status;
    std::string path = absl::StrCat(dir_, "/", absl::string_view(name.data(), name.size()), "-",
                                    ++serial_, ".mapkv");
    Options options;
    options.error_if_exists = true;
    options.durability = Durability::kNone;
    return DB::Open(path, options);
  }

  // Closes *db and deletes its file.
  void Discard(std::unique_ptr<DB> db) {
    if (db == nullptr) return;
    std::string path = db->path();
    db.reset();
    std::error_code error;
    std::filesystem::remove(path, error);
  }

  void Cleanup() {
    db_.reset();
    if (dir_.empty()) return;
    std::error_code error;
    std::filesystem::remove_all(dir_, error);
    dir_.clear();
  }

 private:
  Fixture() {
    const size_t n = n_ = NumKeys();
    std::vector<uint64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(kSeed);
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t i = 0; i < n; ++i) {
      load_keys_ += MakeKey(i);
      read_keys_ += MakeKey(order[i]);
      miss_keys_ += MakeKey(n + order[i]);
      new_keys_ += MakeKey(2 * n + i);
    }
    value_pool_.resize(kValuePool + kValueSize);
    for (char& c : value_pool_) c = static_cast<char>('a' + rng() % 26);
  }

  absl::Status MakeDir() {
    if (!dir_.empty()) return absl::OkStatus();
    std::random_device random;
    std::error_code error;
    for (int attempt = 0; attempt < 100; ++attempt) {
      std::string dir = absl::StrCat("/tmp/mapkv_bench.", random());
      if (std::filesystem::create_directory(dir, error)) {
        dir_ = dir;
        return absl::OkStatus();
      }
    }
    return absl::InternalError(absl::StrCat("cannot make a directory in /tmp: ", error.message()));
  }

  absl::Status Load(DB* db) {
    for (size_t begin = 0; begin < n(); begin += kLoadBatch) {
      absl::StatusOr<WriteTxn> txn = db->BeginWrite();
      if (!txn.ok()) return txn.status();
      for (size_t i = begin; i < std::min(n(), begin + kLoadBatch); ++i) {
        absl::Status status = txn->Put(load_key(i), value(i));
        if (!status.ok()) return status;
      }
      absl::Status status = txn->Commit();
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  static std::string_view Slice(const std::string& keys, size_t i) {
    return std::string_view(keys).substr(i * kKeySize, kKeySize);
  }
  size_t n_ = 0;
  std::string load_keys_;
  std::string read_keys_;
  std::string miss_keys_;
  std::string new_keys_;
  std::string value_pool_;
  std::string dir_;
  uint64_t serial_ = 0;
  std::unique_ptr<DB> db_;
  bool db_complete_ = false;
  absl::flat_hash_map<std::string, std::string> map_;
  bool map_complete_ = false;
};

// Debian's abseil has its own string_view: heterogeneous lookups take that one.
absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

void ReportErrors(benchmark::State& state, uint64_t errors, const char* what) {
  if (errors > 0) {
    state.SkipWithError(absl::StrCat(errors, " ", what).c_str());
  }
}

// The timed loop every point benchmark shares: op(i) once per iteration with i walking the keys
// (wrapping), failures counted and reported, ops/s measured. `cursor` is the benchmark's own and
// outlives a run, so that repeated runs of a read go on to other keys.
template <class Op>
void RunOps(benchmark::State& state, size_t& cursor, const char* failure, Op&& op) {
  const size_t n = Fixture::Get().n();
  uint64_t errors = 0;
  OpsTimer timer;
  for (auto _ : state) {
    if (!op(cursor)) ++errors;
    if (++cursor == n) cursor = 0;
  }
  timer.Finish(state, state.iterations());
  ReportErrors(state, errors, failure);
}

// A Get that copies the value, as DB::Get does.
bool GetCopy(DB* db, std::string_view key) {
  absl::StatusOr<std::string> value = db->Get(key);
  benchmark::DoNotOptimize(value);
  return value.ok();
}

// ---------------------------------------------------------------- mapkv

void BM_MapkvGetHit(benchmark::State& state) {
  Fixture& f = Fixture::Get();
  DB* db = f.LoadedDb(state);
  if (db == nullptr) return;
  static size_t cursor = 0;
  RunOps(state, cursor, "Gets of present keys failed",
         [&](size_t i) { return GetCopy(db, f.key(i)); });
}

// The same Gets through a second handle that skips checksum verification: the price of I7.
void BM_MapkvGetHitNoVerify(benchmark::State& state) {
  Fixture& f = Fixture::Get();
  DB* loaded = f.LoadedDb(state);
  if (loaded == nullptr) return;
  Options options;
  options.create_if_missing = false;
  options.verify_checksums = false;
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(loaded->path(), options);
  if (!db.ok()) return state.SkipWithError(db.status().ToString().c_str());
  static size_t cursor = 0;
  RunOps(state, cursor, "Gets of present keys failed",
         [&](size_t i) { return GetCopy(db->get(), f.key(i)); });
}

// Zero-copy reads inside one ReadTxn (renewed every 1,000 Gets so commits are never held off
// for long): no lock per Get, no copy.
void BM_MapkvReadTxnGet(benchmark::State& state) {
  Fixture& f = Fixture::Get();
  DB* db = f.LoadedDb(state);
  if (db == nullptr) return;
  static size_t cursor = 0;
  std::optional<ReadTxn> txn;
  int renew = 0;
  RunOps(state, cursor, "Gets of present keys failed", [&](size_t i) {
    if (renew-- == 0) {
      txn.reset();
      absl::StatusOr<ReadTxn> begun = db->BeginRead();
      if (!begun.ok()) return false;
      txn.emplace(*std::move(begun));
      renew = 999;
    }
    absl::StatusOr<std::string_view> value = txn->Get(f.key(i));
    benchmark::DoNotOptimize(value);
    return value.ok();
  });
}

void BM_MapkvGetMiss(benchmark::State& state) {
  Fixture& f = Fixture::Get();
  DB* db = f.LoadedDb(state);
  if (db == nullptr) return;
  static size_t cursor = 0;
  RunOps(state, cursor, "Gets of absent keys did not say NotFound", [&](size_t i) {
    absl::StatusOr<std::string> value = db->Get(f.miss_key(i));
    benchmark::DoNotOptimize(value);
    return absl::IsNotFound(value.status());
  });
}

void BM_MapkvPutInsert(benchmark::State& state) {
  Fixture& f = Fixture::Get();
  absl::StatusOr<std::unique_ptr<DB>> db = f.OpenFresh("insert");
  if (!db.ok()) return state.SkipWithError(db.status().ToString().c_str());
  size_t cursor = 0;  // wraps only with --benchmark_min_time beyond N inserts
  RunOps(state, cursor, "Puts failed",
         [&](size_t i) { return (*db)->Put(f.new_key(i), f.value(i)).ok(); });
  f.Discard(*std::move(db));
}

void BM_MapkvPutOverwrite(benchmark::State& state) {
  Fixture& f = Fixture::Get();
  DB* db = f.LoadedDb(state);
  if (db == nullptr) return;
  static size_t cursor = 0;
  RunOps(state, cursor, "Puts failed",
         [&](size_t i) { return db->Put(f.key(i), f.value(i + 1)).ok(); });
}

void BM_MapkvTxn100(benchmark::State& state) {
  Fixture& f = Fixture::Get();
  DB* db = f.LoadedDb(state);
  if (db == nullptr) return;
  static size_t cursor = 0;
  uint64_t errors = 0;
  OpsTimer timer;
  for (auto _ : state) {
    absl::StatusOr<WriteTxn> txn = db->BeginWrite();
    if (!txn.ok()) {
      ++errors;
      continue;
    }
    for (int i = 0; i < kTxnPuts; ++i) {
      if (!txn->Put(f.key(cursor), f.value(cursor + 2)).ok()) ++errors;
      if (++cursor == f.n()) cursor = 0;
    }
    if (!txn->Commit().ok()) ++errors;
  }
  timer.Finish(state, state.iterations() * kTxnPuts);
  ReportErrors(state, errors, "transaction steps failed");
}

void BM_MapkvDelete(benchmark::State& state) {
  Fixture& f = Fixture::Get();
  DB* db = f.LoadedDb(state);
  if (db == nullptr) return;
  f.DbKeysRemoved();
  size_t cursor = 0;
  RunOps(state, cursor, "Deletes failed", [&](size_t i) { return db->Delete(f.key(i)).ok(); });
}

// ---------------------------------------------------------------- absl::flat_hash_map

void BM_FlatHashMapGetHit(benchmark::State& state) {
  Fixture& f = Fixture::Get();
  auto& map = f.LoadedMap();
  static size_t cursor = 0;
  RunOps(state, cursor, "present keys not found", [&](size_t i) {
    auto it = map.find(AbslView(f.key(i)));
    if (it == map.end()) return false;
    std::string value = it->second;
    benchmark::DoNotOptimize(value);
    return true;
  });
}

void BM_FlatHashMapGetMiss(benchmark::State& state) {
  Fixture& f = Fixture::Get();
  auto& map = f.LoadedMap();
  static size_t cursor = 0;
  RunOps(state, cursor, "absent keys found", [&](size_t i) {
    auto it = map.find(AbslView(f.miss_key(i)));
    if (it == map.end()) return true;
    std::string value = it->second;
    benchmark::DoNotOptimize(value);
    return false;
  });
}

void BM_FlatHashMapInsert(benchmark::State& state) {
  Fixture& f = Fixture::Get();
  auto map = std::make_unique<absl::flat_hash_map<std::string, std::string>>();
  size_t cursor = 0;
  RunOps(state, cursor, "inserts found the key",
         [&](size_t i) { return map->emplace(std::string(f.new_key(i)), f.value(i)).second; });
}

void BM_FlatHashMapOverwrite(benchmark::State& state) {
  Fixture& f = Fixture::Get();
  auto& map = f.LoadedMap();
  static size_t cursor = 0;
  RunOps(state, cursor, "overwrites found no key", [&](size_t i) {
    auto it = map.find(AbslView(f.key(i)));
    if (it == map.end()) return false;
    std::string_view value = f.value(i + 1);
    it->second.assign(value.data(), value.size());
    return true;
  });
}

void BM_FlatHashMapErase(benchmark::State& state) {
  Fixture& f = Fixture::Get();
  auto& map = f.LoadedMap();
  f.MapKeysRemoved();
  size_t cursor = 0;
  RunOps(state, cursor, "erases found no key",
         [&](size_t i) { return map.erase(AbslView(f.key(i))) == 1; });
}

// Order matters: the Delete and Erase benchmarks empty the shared copies, so they come after the
// benchmarks that read them (a later user would reload).
BENCHMARK(BM_MapkvGetHit);
BENCHMARK(BM_MapkvGetHitNoVerify);
BENCHMARK(BM_MapkvReadTxnGet);
BENCHMARK(BM_MapkvGetMiss);
BENCHMARK(BM_MapkvPutOverwrite);
BENCHMARK(BM_MapkvTxn100)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MapkvPutInsert)->Iterations(static_cast<int64_t>(NumKeys()));
BENCHMARK(BM_MapkvDelete)->Iterations(static_cast<int64_t>(NumKeys()));
BENCHMARK(BM_FlatHashMapGetHit);
BENCHMARK(BM_FlatHashMapGetMiss);
BENCHMARK(BM_FlatHashMapOverwrite);
BENCHMARK(BM_FlatHashMapInsert)->Iterations(static_cast<int64_t>(NumKeys()));
BENCHMARK(BM_FlatHashMapErase)->Iterations(static_cast<int64_t>(NumKeys()));

}  // namespace
}  // namespace mapkv

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("mapkv_keys", absl::StrCat(mapkv::NumKeys()));
  benchmark::AddCustomContext("key_bytes", absl::StrCat(mapkv::kKeySize));
  benchmark::AddCustomContext("value_bytes", absl::StrCat(mapkv::kValueSize));
  benchmark::AddCustomContext("mapkv_options", "defaults: Durability::kNone, verify_checksums");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  mapkv::Fixture::Get().Cleanup();
  return 0;
}
