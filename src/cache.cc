// Cache (include/mapkv/cache.h): entries behind an envelope (cache_entry.h) in a database of kind
// kCache, statistics in the process slots (format.h: ProcessSlot::cache_counts).
//
// Compute once: the first caller to find a key missing commits a lease in its place, naming its
// process slot; the others find the lease and wait, polling, until a value replaces it. A lease
// whose slot's byte lock is free (the kernel dropped it with the process), whose slot was taken
// by another handle since, or which is older than compute_timeout is taken over by the next
// caller, under the writer lock, so that exactly one of them does.
#include "mapkv/cache.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "src/cache_entry.h"
#include "src/db_impl.h"
#include "src/errors.h"
#include "src/platform/process.h"
#include "src/status_macros.h"
#include "src/strings.h"

namespace mapkv {

using internal::CacheCounter;
using internal::EncodeEntry;
using internal::Entry;
using internal::EntryKind;
using internal::LeasePayload;
using internal::ParseEntry;
using internal::QuoteKey;

namespace {

int64_t SystemNowMs() { return internal::NowUnixMs(); }

int64_t ExpiryFor(int64_t now_ms, Ttl ttl) { return ttl.count() > 0 ? now_ms + ttl.count() : 0; }

}  // namespace

class Cache::Impl {
 public:
  Impl(std::unique_ptr<DB> db, CacheOptions options)
      : db_(std::move(db)), impl_(db_->impl()), options_(std::move(options)) {
    if (!options_.now_unix_ms) options_.now_unix_ms = SystemNowMs;
  }

  int64_t Now() const { return options_.now_unix_ms(); }
  void Count(CacheCounter c) {
    if (impl_->has_slot()) impl_->rwlock().counter(c).fetch_add(1, std::memory_order_relaxed);
  }

  absl::Status NotAnEntry(std::string_view key, size_t size) const {
    return absl::DataLossError(absl::StrCat(impl_->path(), ": the value of key ", QuoteKey(key),
                                            " is no cache entry (", size, " bytes)"));
  }

  // What a read of `stored` means now: the value (a hit), or NotFound (a miss; a lease or an
  // expired value), counted. DataLoss for a value that is no entry.
  absl::StatusOr<std::string_view> Interpret(std::string_view key, std::string_view stored) {
    std::optional<Entry> e = ParseEntry(stored);
    if (!e) return NotAnEntry(key, stored.size());
    if (e->kind == EntryKind::kValue && !e->ExpiredAt(Now())) {
      Count(internal::kCacheHits);
      return e->payload;
    }
    Count(internal::kCacheMisses);
    if (e->kind == EntryKind::kValue) Count(internal::kCacheExpirations);
    return internal::KeyNotFoundError(impl_->path(), key);
  }

  absl::StatusOr<std::string> Get(std::string_view key) {
    std::string stored;
    absl::Status s = impl_->Get(key, &stored);
    if (absl::IsNotFound(s)) Count(internal::kCacheMisses);
    MAPKV_RETURN_IF_ERROR(s);
    MAPKV_ASSIGN_OR_RETURN(std::string_view value, Interpret(key, stored));
    stored.erase(0, value.data() - stored.data());
    return stored;
  }

  absl::Status Put(std::string_view key, std::string_view value, Ttl ttl) {
    std::string stored;
    EncodeEntry(EntryKind::kValue, ExpiryFor(Now(), ttl), value, &stored);
    const std::string_view v = stored;
    return impl_->PutOrDelete(key, &v);
  }

  // Whether the lease is held by a live handle that is not late.
  bool LeaseLive(const Entry& lease) {
    if (lease.ExpiredAt(Now())) return false;
    LeasePayload p;
    std::memcpy(&p, lease.payload.data(), sizeof(p));
    if (p.slot >= internal::kMaxSlots) return false;
    internal::RwLock& lock = impl_->rwlock();
    const internal::ProcessSlot& slot = lock.slot_at(p.slot);
    return slot.pid.load() == p.pid && slot.opened_unix_ms.load() == p.opened_unix_ms &&
           lock.SlotAlive(p.slot);
  }

  uint32_t LeasePid(const Entry& lease) const {
    LeasePayload p;
    std::memcpy(&p, lease.payload.data(), sizeof(p));
    return p.pid;
  }

  absl::StatusOr<std::string> GetOrCompute(std::string_view key, Ttl ttl,
                                           absl::FunctionRef<absl::StatusOr<std::string>()> fn) {
    if (!impl_->has_slot()) {
      return absl::FailedPreconditionError(absl::StrCat(
          impl_->path(), ": GetOrCompute needs write permission (a lease is written)"));
    }
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + options_.compute_timeout;
    std::chrono::microseconds backoff{100};
    bool waited = false;
    uint32_t waited_for = 0;
    for (;;) {
      // Read without the writer lock first: a hit never waits for a writer.
      std::string stored;
      absl::Status s = impl_->Get(key, &stored);
      if (!s.ok() && !absl::IsNotFound(s)) return s;
      if (s.ok()) {
        std::optional<Entry> e = ParseEntry(stored);
        if (!e) return NotAnEntry(key, stored.size());
        if (e->kind == EntryKind::kValue && !e->ExpiredAt(Now())) {
          Count(internal::kCacheHits);
          stored.erase(0, internal::kEnvelopeSize);
          return stored;
        }
        if (e->kind == EntryKind::kLease && LeaseLive(*e)) {
          // Someone computes it: wait, polling, for its value.
          if (!waited) {
            waited = true;
            Count(internal::kCacheWaits);
          }
          waited_for = LeasePid(*e);
          if (std::chrono::steady_clock::now() >= deadline) {
            Count(internal::kCacheMisses);
            return absl::DeadlineExceededError(
                absl::StrCat(impl_->path(), ": timed out waiting for pid ", waited_for,
                             " to compute the value of key ", QuoteKey(key)));
          }
          std::this_thread::sleep_for(backoff);
          backoff = std::min<std::chrono::microseconds>(backoff * 2, std::chrono::milliseconds(5));
          continue;
        }
      }
      // Missing, expired, or a dead or late lease: take the lease, under the writer lock, unless
      // another caller did meanwhile.
      MAPKV_ASSIGN_OR_RETURN(std::optional<std::string> lease, TakeLease(key));
      if (!lease) continue;
      return Compute(key, *lease, ttl, fn);
    }
  }

  // Commits a lease of this handle at `key` when the key still has no live value and no live
  // lease, and returns the lease as stored. Nothing when the key has one now (the caller looks
  // again).
  absl::StatusOr<std::optional<std::string>> TakeLease(std::string_view key) {
    MAPKV_ASSIGN_OR_RETURN(WriteTxn txn, db_->BeginWrite());
    absl::StatusOr<std::string_view> cur = txn.Get(key);
    if (!cur.ok() && !absl::IsNotFound(cur.status())) return cur.status();
    bool takeover = false;
    bool expired = false;
    if (cur.ok()) {
      std::optional<Entry> e = ParseEntry(*cur);
      if (!e) return NotAnEntry(key, cur->size());
      if (e->kind == EntryKind::kValue && !e->ExpiredAt(Now())) return std::nullopt;
      if (e->kind == EntryKind::kLease) {
        if (LeaseLive(*e)) return std::nullopt;
        takeover = true;
      } else {
        expired = true;
      }
    }
    internal::RwLock& lock = impl_->rwlock();
    const internal::ProcessSlot& own = lock.slot_at(lock.slot());
    // The nonce tells this lease from another of the same handle (another thread's, taken over
    // from this one when it was late): only its own is dropped when a computation fails.
    static std::atomic<uint64_t> nonces{0};
    LeasePayload p{lock.slot(), own.pid.load(), own.opened_unix_ms.load(), ++nonces};
    std::string stored;
    EncodeEntry(
        EntryKind::kLease,
        std::chrono::duration_cast<std::chrono::milliseconds>(options_.compute_timeout).count() +
            Now(),
        std::string_view(reinterpret_cast<const char*>(&p), sizeof(p)), &stored);
    MAPKV_RETURN_IF_ERROR(txn.Put(key, stored));
    MAPKV_RETURN_IF_ERROR(txn.Commit());
    Count(internal::kCacheMisses);
    if (expired) Count(internal::kCacheExpirations);
    if (takeover) Count(internal::kCacheTakeovers);
    return stored;
  }

  // Runs fn for a key whose lease this handle holds, and stores its value; when fn fails (or
  // throws), removes the lease so that a waiter computes instead.
  absl::StatusOr<std::string> Compute(std::string_view key, std::string_view lease, Ttl ttl,
                                      absl::FunctionRef<absl::StatusOr<std::string>()> fn) {
    Count(internal::kCacheComputes);
    struct LeaseGuard {
      Impl* cache;
      std::string_view key;
      std::string_view lease;
      bool armed = true;
      ~LeaseGuard() {
        if (armed) (void)cache->DropLease(key, lease);
      }
    } guard{this, key, lease};
    absl::StatusOr<std::string> value = fn();
    if (!value.ok()) return value.status();  // the guard drops the lease
    guard.armed = false;
    absl::Status s = Put(key, *value, ttl);
    if (!s.ok()) {
      (void)DropLease(key, lease);
      return s;
    }
    return value;
  }

  // Deletes `lease` from `key` if it is still there (not replaced, nor taken over).
  absl::Status DropLease(std::string_view key, std::string_view lease) {
    MAPKV_ASSIGN_OR_RETURN(WriteTxn txn, db_->BeginWrite());
    absl::StatusOr<std::string_view> cur = txn.Get(key);
    if (!cur.ok()) return absl::IsNotFound(cur.status()) ? absl::OkStatus() : cur.status();
    if (*cur != lease) return absl::OkStatus();
    MAPKV_RETURN_IF_ERROR(txn.Delete(key));
    return txn.Commit();
  }

  absl::StatusOr<int64_t> Increment(std::string_view key, int64_t delta, Ttl ttl) {
    MAPKV_ASSIGN_OR_RETURN(WriteTxn txn, db_->BeginWrite());
    absl::StatusOr<std::string_view> cur = txn.Get(key);
    if (!cur.ok() && !absl::IsNotFound(cur.status())) return cur.status();
    const int64_t now = Now();
    int64_t base = 0;
    int64_t expires = ExpiryFor(now, ttl);
    if (cur.ok()) {
      std::optional<Entry> e = ParseEntry(*cur);
      if (!e) return NotAnEntry(key, cur->size());
      if (e->kind == EntryKind::kValue && !e->ExpiredAt(now)) {
        if (!absl::SimpleAtoi(internal::ToAbsl(e->payload), &base)) {
          return absl::InvalidArgumentError(
              absl::StrCat(impl_->path(), ": the value of key ", QuoteKey(key),
                           " is not a decimal integer: ", QuoteKey(e->payload)));
        }
        expires = e->expires_unix_ms;
      }
    }
    int64_t sum;
    if (__builtin_add_overflow(base, delta, &sum)) {
      return absl::OutOfRangeError(absl::StrCat(impl_->path(), ": key ", QuoteKey(key), ": ", base,
                                                " + ", delta, " overflows 64 bits"));
    }
    std::string stored;
    EncodeEntry(EntryKind::kValue, expires, absl::StrCat(sum), &stored);
    MAPKV_RETURN_IF_ERROR(txn.Put(key, stored));
    MAPKV_RETURN_IF_ERROR(txn.Commit());
    return sum;
  }

  CacheStats GetStats() {
    CacheStats s;
    if (!impl_->CheckUsable().ok()) return s;  // a child of fork(): the slots are not mapped
    internal::RwLock& lock = impl_->rwlock();
    s.hits = lock.CounterTotal(internal::kCacheHits);
    s.misses = lock.CounterTotal(internal::kCacheMisses);
    s.expirations = lock.CounterTotal(internal::kCacheExpirations);
    s.computes = lock.CounterTotal(internal::kCacheComputes);
    s.waits = lock.CounterTotal(internal::kCacheWaits);
    s.takeovers = lock.CounterTotal(internal::kCacheTakeovers);
    s.db = db_->GetStats();
    s.evictions = s.db.evictions;
    return s;
  }

  std::unique_ptr<DB> db_;
  internal::DBImpl* impl_;
  CacheOptions options_;
};

Cache::Cache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Cache::~Cache() = default;

absl::StatusOr<std::unique_ptr<Cache>> Cache::Open(const std::string& path, CacheOptions options) {
  options.db.kind = FileKind::kCache;
  if (options.capacity != 0) {
    if (options.capacity < (1u << 20)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": a cache's capacity must be at least 1 MiB (1048576 bytes); it is ",
                       options.capacity));
    }
    // A new file's capacity; every handle then reserves that much address space (an existing
    // cache's own capacity is used when larger).
    options.db.cache_capacity = options.capacity;
    options.db.max_file_size = options.capacity;
  }
  MAPKV_ASSIGN_OR_RETURN(std::unique_ptr<DB> db, DB::Open(path, options.db));
  return std::unique_ptr<Cache>(
      new Cache(std::make_unique<Impl>(std::move(db), std::move(options))));
}

absl::StatusOr<std::string> Cache::Get(std::string_view key) { return impl_->Get(key); }

absl::Status Cache::Put(std::string_view key, std::string_view value, Ttl ttl) {
  return impl_->Put(key, value, ttl);
}

absl::Status Cache::Delete(std::string_view key) { return impl_->db_->Delete(key); }

absl::StatusOr<std::string> Cache::GetOrCompute(
    std::string_view key, Ttl ttl, absl::FunctionRef<absl::StatusOr<std::string>()> fn) {
  return impl_->GetOrCompute(key, ttl, fn);
}

absl::StatusOr<int64_t> Cache::Increment(std::string_view key, int64_t delta, Ttl ttl) {
  return impl_->Increment(key, delta, ttl);
}

CacheStats Cache::GetStats() { return impl_->GetStats(); }

absl::Status Cache::Checkpoint() { return impl_->db_->Checkpoint(); }

const std::string& Cache::path() const { return impl_->db_->path(); }

}  // namespace mapkv
