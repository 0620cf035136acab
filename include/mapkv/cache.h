// mapkv::Cache: one cache shared by a pool of worker processes (pre-fork servers, job runners),
// at memory speed, instead of a cache server on localhost.
//
// A cache is a mapkv file of its own kind (FileKind::kCache, format version 2): every value is
// stored behind an 8-byte envelope that holds its expiry time, and a key may hold a lease instead
// of a value while one process computes it. On top of the database it adds:
// - expiry: Put(key, value, ttl); Get treats an expired value as absent; `mapkv compact` drops
//   expired values;
// - compute once: GetOrCompute(key, ttl, fn) runs fn in exactly one process (or thread) per
//   missing key while the others wait for its value; when that process dies (or closes its handle)
//   before it is done, a waiter takes over;
// - counters: Increment(key, delta), atomic across processes;
// - statistics across every process: hits, misses, expirations, computes, waits.
//
// - a capacity: the file never grows past CacheOptions::capacity bytes. Its log is a ring: when
//   an append would pass the capacity, the oldest entries are evicted to make room, so a Put never
//   fails for lack of space.
//
// Thread safety: as DB. A Cache handle may be used from many threads at once.
#ifndef MAPKV_CACHE_H_
#define MAPKV_CACHE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mapkv/db.h"
#include "mapkv/options.h"

namespace mapkv {

struct CacheOptions {
  // The file's options. `kind` is set to FileKind::kCache by Cache::Open.
  Options db;

  // The most bytes the file ever takes, fixed when the cache is created (rounded down to a
  // multiple of 64 KiB; at least 1 MiB; InvalidArgument otherwise). An eighth of it holds the
  // index (two tables of a slot per 256 bytes, or db.initial_index_slots if more), the rest the
  // entries. When an entry would not fit, the oldest entries are evicted, first in first out
  // (CacheStats::evictions); so are the oldest when the index is full of small entries (past
  // capacity / 512 of them). An entry larger than a quarter of the rest is refused with
  // InvalidArgument. An existing cache keeps the capacity it was created with. After an unclean
  // machine stop such a cache starts empty. 0: no capacity, the file grows as a database does, up
  // to db.max_file_size, and nothing is evicted.
  uint64_t capacity = 64ull << 20;

  // The clock expiry is measured by, in milliseconds since the Unix epoch. Every process that
  // shares a cache must use the same clock; tests inject one. Unset: the system clock.
  std::function<int64_t()> now_unix_ms;

  // How long GetOrCompute waits for a value another process (or thread) is computing before it
  // gives up with DeadlineExceeded (naming the pid). A computation older than this is no longer
  // waited for: a waiter takes the key over, as from a dead process.
  std::chrono::milliseconds compute_timeout{30000};
};

// Counts over the life of the file, summed over every process that has used it.
struct CacheStats {
  uint64_t hits = 0;         // Get or GetOrCompute found a live value
  uint64_t misses = 0;       // Get or GetOrCompute found none (expired or computing included)
  uint64_t expirations = 0;  // of those misses, how many found an expired value
  uint64_t computes = 0;     // GetOrCompute ran its function
  uint64_t waits = 0;        // GetOrCompute waited for another's computation
  uint64_t takeovers = 0;    // GetOrCompute took a key over from a dead or late computation
  uint64_t evictions = 0;    // entries dropped for space (capacity)
  Stats db;                  // the file underneath
};

// Time to live: zero means never expires.
using Ttl = std::chrono::milliseconds;

class Cache {
 public:
  // Opens or creates the cache at `path`. FailedPrecondition when the file is a database (open it
  // with DB::Open), and every error of DB::Open.
  static absl::StatusOr<std::unique_ptr<Cache>> Open(const std::string& path,
                                                     CacheOptions options = {});
  ~Cache();
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  // The value of `key`; NotFound when absent, expired, or being computed.
  absl::StatusOr<std::string> Get(std::string_view key);
  // Stores `value`, to expire after `ttl` (zero: never).
  absl::Status Put(std::string_view key, std::string_view value, Ttl ttl = Ttl{0});
  absl::Status Delete(std::string_view key);  // OK when absent

  // The value of `key`; when there is none, exactly one caller across every process and thread
  // runs `fn` and stores its value for `ttl`, while the others asking for the same key wait for it
  // (up to compute_timeout). When `fn` fails, its status is returned to that caller, nothing is
  // stored, and one of the waiters computes instead. When the computing process dies, one of the
  // waiters takes over.
  absl::StatusOr<std::string> GetOrCompute(std::string_view key, Ttl ttl,
                                           absl::FunctionRef<absl::StatusOr<std::string>()> fn);

  // Adds `delta` to the counter at `key` and returns the new value. The counter is stored as a
  // decimal integer; a missing or expired one starts from 0 and expires after `ttl` (zero:
  // never); an existing one keeps its expiry. InvalidArgument when the value is not a decimal
  // integer, OutOfRange when the sum overflows 64 bits (nothing is changed then).
  absl::StatusOr<int64_t> Increment(std::string_view key, int64_t delta, Ttl ttl = Ttl{0});

  CacheStats GetStats();
  absl::Status Checkpoint();
  const std::string& path() const;

 private:
  class Impl;
  explicit Cache(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mapkv

#endif  // MAPKV_CACHE_H_
