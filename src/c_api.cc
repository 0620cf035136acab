// The C API (include/mapkv/c.h) over the C++ one.
//
// Invariants kept here:
// - Nothing thrown leaves a function of the API: every body runs inside Guard(), whose handlers
//   build the message with malloc alone, so that an out-of-memory error cannot throw again.
// - A mapkv_db counts its live transactions; mapkv_close refuses while any is live, since a
//   transaction points into the handle it was begun on.
// - Statuses pass through as the engine made them: each names the file, and the key where there
//   is one (src/errors.h); the checks made here name both the same way.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "mapkv/c.h"
#include "mapkv/cache.h"
#include "mapkv/compact.h"
#include "mapkv/db.h"
#include "mapkv/options.h"
#include "mapkv/stats.h"
#include "src/errors.h"
#include "src/stats_fields.h"
#include "src/status_macros.h"

#ifndef MAPKV_VERSION_STRING
#error "MAPKV_VERSION_STRING is set by src/CMakeLists.txt"
#endif

// The codes are absl's, value for value: a status crosses the boundary by a cast.
#define MAPKV_SAME_CODE(c, absl_c) \
  static_assert(static_cast<int>(c) == static_cast<int>(absl::StatusCode::absl_c))
MAPKV_SAME_CODE(MAPKV_OK, kOk);
MAPKV_SAME_CODE(MAPKV_CANCELLED, kCancelled);
MAPKV_SAME_CODE(MAPKV_UNKNOWN, kUnknown);
MAPKV_SAME_CODE(MAPKV_INVALID_ARGUMENT, kInvalidArgument);
MAPKV_SAME_CODE(MAPKV_DEADLINE_EXCEEDED, kDeadlineExceeded);
MAPKV_SAME_CODE(MAPKV_NOT_FOUND, kNotFound);
MAPKV_SAME_CODE(MAPKV_ALREADY_EXISTS, kAlreadyExists);
MAPKV_SAME_CODE(MAPKV_PERMISSION_DENIED, kPermissionDenied);
MAPKV_SAME_CODE(MAPKV_RESOURCE_EXHAUSTED, kResourceExhausted);
MAPKV_SAME_CODE(MAPKV_FAILED_PRECONDITION, kFailedPrecondition);
MAPKV_SAME_CODE(MAPKV_ABORTED, kAborted);
MAPKV_SAME_CODE(MAPKV_OUT_OF_RANGE, kOutOfRange);
MAPKV_SAME_CODE(MAPKV_UNIMPLEMENTED, kUnimplemented);
MAPKV_SAME_CODE(MAPKV_INTERNAL, kInternal);
MAPKV_SAME_CODE(MAPKV_UNAVAILABLE, kUnavailable);
MAPKV_SAME_CODE(MAPKV_DATA_LOSS, kDataLoss);
MAPKV_SAME_CODE(MAPKV_UNAUTHENTICATED, kUnauthenticated);
#undef MAPKV_SAME_CODE
static_assert(MAPKV_MAX_KEY_SIZE == mapkv::kMaxKeySize);
static_assert(MAPKV_MAX_VALUE_SIZE == mapkv::kMaxValueSize);

struct mapkv_options {
  mapkv::Options options;
  // Kept as given and checked by the open that uses them (the setters cannot fail).
  int durability = MAPKV_DURABILITY_NONE;
  int kind = MAPKV_KIND_DATABASE;
  uint64_t checkpoint_interval_ms = static_cast<uint64_t>(options.checkpoint_interval.count());
  uint64_t lock_timeout_ms = static_cast<uint64_t>(options.lock_timeout.count());
};

struct mapkv_db {
  std::unique_ptr<mapkv::DB> db;
  std::atomic<int> live_txns{0};
};

struct mapkv_read_txn {
  mapkv_db* db;
  mapkv::ReadTxn txn;
};

struct mapkv_write_txn {
  mapkv_db* db;
  mapkv::WriteTxn txn;
};

struct mapkv_compact_options {
  mapkv::CompactOptions options;
  uint64_t lock_timeout_ms = static_cast<uint64_t>(options.lock_timeout.count());
  void (*progress)(const mapkv_compact_progress*, void*) = nullptr;
  void* progress_user = nullptr;
};

struct mapkv_cache_options {
  mapkv_options db;
  uint64_t capacity = mapkv::CacheOptions().capacity;
  uint64_t compute_timeout_ms =
      static_cast<uint64_t>(mapkv::CacheOptions().compute_timeout.count());
  int64_t (*clock)(void*) = nullptr;
  void* clock_user = nullptr;
};

struct mapkv_cache {
  std::unique_ptr<mapkv::Cache> cache;
};

struct mapkv_buf {
  std::string value;
};

namespace {

using mapkv::internal::QuoteKey;

// ---- Errors ----

char* CopyMessage(std::string_view a, std::string_view b = {}) {
  char* p = static_cast<char*>(std::malloc(a.size() + b.size() + 1));
  if (p == nullptr) return nullptr;
  if (!a.empty()) std::memcpy(p, a.data(), a.size());
  if (!b.empty()) std::memcpy(p + a.size(), b.data(), b.size());
  p[a.size() + b.size()] = '\0';
  return p;
}

mapkv_status Fail(char** errmsg, mapkv_status code, std::string_view a, std::string_view b = {}) {
  if (errmsg != nullptr) *errmsg = CopyMessage(a, b);
  return code;
}

mapkv_status Report(const absl::Status& s, char** errmsg) {
  if (s.ok()) return MAPKV_OK;
  return Fail(errmsg, static_cast<mapkv_status>(s.code()),
              std::string_view(s.message().data(), s.message().size()));
}

// Runs body (returning absl::Status) and reports its result; what it throws becomes a status.
// `fn` names the call in the messages of those, which have no file to name.
template <typename Body>
mapkv_status Guard(const char* fn, char** errmsg, Body&& body) noexcept {
  if (errmsg != nullptr) *errmsg = nullptr;
  try {
    return Report(body(), errmsg);
  } catch (const std::bad_alloc&) {
    return Fail(errmsg, MAPKV_RESOURCE_EXHAUSTED, fn, ": out of memory");
  } catch (const std::exception&) {
    return Fail(errmsg, MAPKV_INTERNAL, fn, ": unexpected C++ exception");
  } catch (...) {
    return Fail(errmsg, MAPKV_INTERNAL, fn, ": unexpected exception");
  }
}

absl::Status Null(const char* fn, const char* what) {
  return absl::InvalidArgumentError(absl::StrCat(fn, ": ", what, " is NULL"));
}

std::string_view Bytes(const void* p, size_t n) {
  return std::string_view(static_cast<const char*>(p), n);
}

// Pointer and length of a key or value from C: NULL only with a length of 0.
absl::Status CheckBytes(const std::string& path, const char* what, const void* p, size_t n) {
  if (p == nullptr && n > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", what, " is NULL with a length of ", n));
  }
  return absl::OkStatus();
}

absl::Status CheckDuration(const std::string& path, const char* name, uint64_t ms) {
  if (ms > MAPKV_MAX_DURATION_MS) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", name, " of ", ms, " ms: at most 2^40 ms (MAPKV_MAX_DURATION_MS)"));
  }
  return absl::OkStatus();
}

absl::Status CheckTtl(const std::string& path, std::string_view key, uint64_t ttl_ms) {
  if (ttl_ms > MAPKV_MAX_DURATION_MS) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": key ", QuoteKey(key), ": ttl_ms of ",
                                                   ttl_ms,
                                                   " ms: at most 2^40 ms (MAPKV_MAX_DURATION_MS)"));
  }
  return absl::OkStatus();
}

// Copies a value into the caller's buffer, or says how large a buffer it needs.
absl::Status CopyOut(std::string_view value, void* buf, size_t buf_len, size_t* value_len,
                     const std::string& path, std::string_view key) {
  *value_len = value.size();
  if (value.size() > buf_len) {
    return absl::OutOfRangeError(absl::StrCat(path, ": the value of key ", QuoteKey(key), " is ",
                                              value.size(), " bytes; the buffer holds ", buf_len));
  }
  if (!value.empty()) std::memcpy(buf, value.data(), value.size());
  return absl::OkStatus();
}

absl::Status CheckOutBuffer(const char* fn, const void* buf, size_t buf_len, size_t* value_len) {
  if (value_len == nullptr) return Null(fn, "value_len");
  *value_len = 0;
  if (buf == nullptr && buf_len > 0) {
    return absl::InvalidArgumentError(absl::StrCat(fn, ": buf is NULL with a length of ", buf_len));
  }
  return absl::OkStatus();
}

// A struct with a leading `size` (c.h, "ABI"): fills no more than the caller's size, zeroes what
// the caller has beyond ours, and says how much it filled. A size below the size field's own or
// above kMaxStructSize is one left unset.
constexpr size_t kMaxStructSize = 4096;
template <typename T>
absl::Status FillSized(T full, T* out, const char* fn, const char* what) {
  static_assert(sizeof(T) <= kMaxStructSize);
  if (out == nullptr) return Null(fn, what);
  if (out->size < sizeof(size_t) || out->size > kMaxStructSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(fn, ": ", what, "->size is ", out->size, ": set it to sizeof the struct"));
  }
  if (out->size > sizeof(T)) {
    std::memset(reinterpret_cast<char*>(out) + sizeof(T), 0, out->size - sizeof(T));
  }
  full.size = std::min(out->size, sizeof(T));
  std::memcpy(static_cast<void*>(out), &full, full.size);
  return absl::OkStatus();
}

mapkv_stats ToCStats(const mapkv::Stats& s) {
  mapkv_stats c;
  std::memset(&c, 0, sizeof(c));
#define MAPKV_COPY_FIELD(field) c.field = s.field;
  MAPKV_STATS_FIELDS(MAPKV_COPY_FIELD)
#undef MAPKV_COPY_FIELD
  return c;
}

// The C++ options for opening `path`, checking what the setters could not.
absl::Status ToOptions(const mapkv_options* c, const std::string& path, mapkv::Options* out) {
  if (c == nullptr) return absl::OkStatus();
  *out = c->options;
  switch (c->durability) {
    case MAPKV_DURABILITY_NONE:
      out->durability = mapkv::Durability::kNone;
      break;
    case MAPKV_DURABILITY_PERIODIC:
      out->durability = mapkv::Durability::kPeriodic;
      break;
    case MAPKV_DURABILITY_SYNC:
      out->durability = mapkv::Durability::kSync;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": durability ", c->durability, " is no mapkv_durability"));
  }
  switch (c->kind) {
    case MAPKV_KIND_DATABASE:
      out->kind = mapkv::FileKind::kDatabase;
      break;
    case MAPKV_KIND_CACHE:
      out->kind = mapkv::FileKind::kCache;
      break;
    case MAPKV_KIND_ANY:
      out->kind = mapkv::FileKind::kAny;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": kind ", c->kind, " is no mapkv_file_kind"));
  }
  MAPKV_RETURN_IF_ERROR(CheckDuration(path, "checkpoint_interval_ms", c->checkpoint_interval_ms));
  MAPKV_RETURN_IF_ERROR(CheckDuration(path, "lock_timeout_ms", c->lock_timeout_ms));
  out->checkpoint_interval = std::chrono::milliseconds(c->checkpoint_interval_ms);
  out->lock_timeout = std::chrono::milliseconds(c->lock_timeout_ms);
  return absl::OkStatus();
}

// Keeps the largest value buffer of a thread for its next Get, up to 1 MiB.
class Scratch {
 public:
  Scratch() : s_(Buffer()) {}
  ~Scratch() {
    if (s_.capacity() > (1u << 20)) std::string().swap(s_);
  }
  std::string* get() { return &s_; }

 private:
  static std::string& Buffer() {
    thread_local std::string buffer;
    return buffer;
  }
  std::string& s_;
};

}  // namespace

extern "C" {

// ---- Errors, memory, limits ----

const char* mapkv_status_name(mapkv_status status) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int i = static_cast<int>(status);
  if (i < 0 || i >= static_cast<int>(sizeof(kNames) / sizeof(kNames[0]))) return "UNKNOWN_STATUS";
  return kNames[i];
}

const char* mapkv_version(void) { return MAPKV_VERSION_STRING; }

void mapkv_free(void* p) { std::free(p); }

// ---- Options ----

mapkv_options* mapkv_options_create(void) { return new (std::nothrow) mapkv_options(); }
void mapkv_options_destroy(mapkv_options* opts) { delete opts; }

void mapkv_options_set_create_if_missing(mapkv_options* opts, int value) {
  if (opts != nullptr) opts->options.create_if_missing = value != 0;
}
void mapkv_options_set_kind(mapkv_options* opts, mapkv_file_kind kind) {
  if (opts != nullptr) opts->kind = static_cast<int>(kind);
}
void mapkv_options_set_error_if_exists(mapkv_options* opts, int value) {
  if (opts != nullptr) opts->options.error_if_exists = value != 0;
}
void mapkv_options_set_read_only(mapkv_options* opts, int value) {
  if (opts != nullptr) opts->options.read_only = value != 0;
}
void mapkv_options_set_exclusive(mapkv_options* opts, int value) {
  if (opts != nullptr) opts->options.exclusive = value != 0;
}
void mapkv_options_set_file_mode(mapkv_options* opts, uint32_t mode) {
  if (opts != nullptr) opts->options.file_mode = mode;
}
void mapkv_options_set_durability(mapkv_options* opts, mapkv_durability durability) {
  if (opts != nullptr) opts->durability = static_cast<int>(durability);
}
void mapkv_options_set_huge_pages(mapkv_options* opts, int value) {
  if (opts != nullptr) opts->options.huge_pages = value != 0;
}
void mapkv_options_set_max_file_size(mapkv_options* opts, uint64_t bytes) {
  if (opts != nullptr) opts->options.max_file_size = bytes;
}
void mapkv_options_set_initial_file_size(mapkv_options* opts, uint64_t bytes) {
  if (opts != nullptr) opts->options.initial_file_size = bytes;
}
void mapkv_options_set_initial_index_slots(mapkv_options* opts, uint64_t slots) {
  if (opts != nullptr) opts->options.initial_index_slots = slots;
}
void mapkv_options_set_verify_checksums(mapkv_options* opts, int value) {
  if (opts != nullptr) opts->options.verify_checksums = value != 0;
}
void mapkv_options_set_checkpoint_interval_ms(mapkv_options* opts, uint64_t ms) {
  if (opts != nullptr) opts->checkpoint_interval_ms = ms;
}
void mapkv_options_set_checkpoint_bytes(mapkv_options* opts, uint64_t bytes) {
  if (opts != nullptr) opts->options.checkpoint_bytes = bytes;
}
void mapkv_options_set_lock_timeout_ms(mapkv_options* opts, uint64_t ms) {
  if (opts != nullptr) opts->lock_timeout_ms = ms;
}
void mapkv_options_set_compact_ratio(mapkv_options* opts, double ratio) {
  if (opts != nullptr) opts->options.compact_ratio = ratio > 0 ? ratio : 0;
}

void mapkv_options_set_create_format_version(mapkv_options* opts, uint32_t version) {
  if (opts != nullptr) opts->options.create_format_version = version;
}

void mapkv_options_set_compact_min_garbage(mapkv_options* opts, uint64_t bytes) {
  if (opts != nullptr) opts->options.compact_min_garbage = bytes;
}

void mapkv_options_set_max_snapshot_bytes(mapkv_options* opts, uint64_t bytes) {
  if (opts != nullptr) opts->options.max_snapshot_bytes = bytes;
}
void mapkv_options_set_info_log(mapkv_options* opts,
                                void (*fn)(void* user, const char* line, size_t len), void* user) {
  if (opts == nullptr) return;
  if (fn == nullptr) {
    opts->options.info_log = nullptr;
    return;
  }
  try {
    opts->options.info_log = [fn, user](std::string_view line) {
      try {
        const std::string terminated(line);
        fn(user, terminated.c_str(), terminated.size());
      } catch (...) {
        // Out of memory for a log line: the line is lost, the engine goes on.
      }
    };
  } catch (...) {
    // std::function may allocate; a closure of two pointers fits its small buffer in practice.
    opts->options.info_log = nullptr;
  }
}

// ---- The database ----

mapkv_status mapkv_open(const char* path, const mapkv_options* opts, mapkv_db** db, char** errmsg) {
  if (db != nullptr) *db = nullptr;
  return Guard("mapkv_open", errmsg, [&]() -> absl::Status {
    if (path == nullptr) return Null("mapkv_open", "path");
    if (db == nullptr) return Null("mapkv_open", "db");
    const std::string p(path);
    mapkv::Options options;
    MAPKV_RETURN_IF_ERROR(ToOptions(opts, p, &options));
    auto handle = std::make_unique<mapkv_db>();
    MAPKV_ASSIGN_OR_RETURN(handle->db, mapkv::DB::Open(p, options));
    *db = handle.release();
    return absl::OkStatus();
  });
}

mapkv_status mapkv_close(mapkv_db* db, char** errmsg) {
  return Guard("mapkv_close", errmsg, [&]() -> absl::Status {
    if (db == nullptr) return absl::OkStatus();
    if (const int n = db->live_txns.load(); n > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(db->db->path(), ": ", n, " transaction", n == 1 ? " is" : "s are",
                       " still open on this handle: end them before mapkv_close"));
    }
    delete db;
    return absl::OkStatus();
  });
}

const char* mapkv_path(const mapkv_db* db) {
  return db == nullptr ? nullptr : db->db->path().c_str();
}

mapkv_status mapkv_get(mapkv_db* db, const void* key, size_t key_len, void* buf, size_t buf_len,
                       size_t* value_len, char** errmsg) {
  return Guard("mapkv_get", errmsg, [&]() -> absl::Status {
    if (db == nullptr) return Null("mapkv_get", "db");
    MAPKV_RETURN_IF_ERROR(CheckOutBuffer("mapkv_get", buf, buf_len, value_len));
    const std::string& path = db->db->path();
    MAPKV_RETURN_IF_ERROR(CheckBytes(path, "key", key, key_len));
    const std::string_view k = Bytes(key, key_len);
    Scratch scratch;
    MAPKV_RETURN_IF_ERROR(db->db->Get(k, scratch.get()));
    return CopyOut(*scratch.get(), buf, buf_len, value_len, path, k);
  });
}

mapkv_status mapkv_put(mapkv_db* db, const void* key, size_t key_len, const void* value,
                       size_t value_len, char** errmsg) {
  return Guard("mapkv_put", errmsg, [&]() -> absl::Status {
    if (db == nullptr) return Null("mapkv_put", "db");
    const std::string& path = db->db->path();
    MAPKV_RETURN_IF_ERROR(CheckBytes(path, "key", key, key_len));
    MAPKV_RETURN_IF_ERROR(CheckBytes(path, "value", value, value_len));
    const std::string_view k = Bytes(key, key_len);
    return db->db->Put(k, Bytes(value, value_len));
  });
}

mapkv_status mapkv_delete(mapkv_db* db, const void* key, size_t key_len, char** errmsg) {
  return Guard("mapkv_delete", errmsg, [&]() -> absl::Status {
    if (db == nullptr) return Null("mapkv_delete", "db");
    const std::string& path = db->db->path();
    MAPKV_RETURN_IF_ERROR(CheckBytes(path, "key", key, key_len));
    const std::string_view k = Bytes(key, key_len);
    return db->db->Delete(k);
  });
}

mapkv_status mapkv_checkpoint(mapkv_db* db, char** errmsg) {
  return Guard("mapkv_checkpoint", errmsg, [&]() -> absl::Status {
    if (db == nullptr) return Null("mapkv_checkpoint", "db");
    return db->db->Checkpoint();
  });
}

mapkv_status mapkv_get_stats(mapkv_db* db, mapkv_stats* stats, char** errmsg) {
  return Guard("mapkv_get_stats", errmsg, [&]() -> absl::Status {
    if (db == nullptr) return Null("mapkv_get_stats", "db");
    if (stats == nullptr) return Null("mapkv_get_stats", "stats");
    return FillSized(ToCStats(db->db->GetStats()), stats, "mapkv_get_stats", "stats");
  });
}

mapkv_status mapkv_verify(mapkv_db* db,
                          void (*problem)(void* user, uint64_t offset, const char* kind,
                                          const char* detail),
                          void* user, char** errmsg) {
  return Guard("mapkv_verify", errmsg, [&]() -> absl::Status {
    if (db == nullptr) return Null("mapkv_verify", "db");
    std::vector<mapkv::VerifyProblem> problems;
    absl::Status s = db->db->Verify(&problems);
    if (problem != nullptr) {
      for (const mapkv::VerifyProblem& p : problems) {
        problem(user, p.offset, p.kind.c_str(), p.detail.c_str());
      }
    }
    return s;
  });
}

// ---- Read transactions ----

}  // extern "C"

namespace {

// mapkv_read_begin and mapkv_write_begin: `begin` is DB::BeginRead or DB::BeginWrite.
template <class Handle, class Begin>
mapkv_status BeginTxn(const char* fn, mapkv_db* db, Handle** txn, char** errmsg, Begin begin) {
  if (txn != nullptr) *txn = nullptr;
  return Guard(fn, errmsg, [&]() -> absl::Status {
    if (db == nullptr) return Null(fn, "db");
    if (txn == nullptr) return Null(fn, "txn");
    MAPKV_ASSIGN_OR_RETURN(auto begun, begin(*db->db));
    *txn = new Handle{db, std::move(begun)};
    db->live_txns.fetch_add(1);
    return absl::OkStatus();
  });
}

// mapkv_read_get and mapkv_write_get: a view of the value, valid while the transaction lives.
template <class Handle>
mapkv_status TxnGet(const char* fn, Handle* txn, const void* key, size_t key_len,
                    const void** value, size_t* value_len, char** errmsg) {
  return Guard(fn, errmsg, [&]() -> absl::Status {
    if (txn == nullptr) return Null(fn, "txn");
    if (value == nullptr) return Null(fn, "value");
    if (value_len == nullptr) return Null(fn, "value_len");
    *value = nullptr;
    *value_len = 0;
    const std::string& path = txn->db->db->path();
    MAPKV_RETURN_IF_ERROR(CheckBytes(path, "key", key, key_len));
    const std::string_view k = Bytes(key, key_len);
    MAPKV_ASSIGN_OR_RETURN(const std::string_view v, txn->txn.Get(k));
    *value = v.data();
    *value_len = v.size();
    return absl::OkStatus();
  });
}

}  // namespace

extern "C" {

mapkv_status mapkv_read_begin(mapkv_db* db, mapkv_read_txn** txn, char** errmsg) {
  return BeginTxn("mapkv_read_begin", db, txn, errmsg, [](mapkv::DB& d) { return d.BeginRead(); });
}

mapkv_status mapkv_read_get(mapkv_read_txn* txn, const void* key, size_t key_len,
                            const void** value, size_t* value_len, char** errmsg) {
  return TxnGet("mapkv_read_get", txn, key, key_len, value, value_len, errmsg);
}

mapkv_status mapkv_read_multi_get(mapkv_read_txn* txn, size_t n, const void* const* keys,
                                  const size_t* key_lens, const void** values, size_t* value_lens,
                                  mapkv_status* statuses, char** errmsg) {
  return Guard("mapkv_read_multi_get", errmsg, [&]() -> absl::Status {
    constexpr const char* kFn = "mapkv_read_multi_get";
    if (txn == nullptr) return Null(kFn, "txn");
    if (n == 0) return absl::OkStatus();
    if (keys == nullptr) return Null(kFn, "keys");
    if (key_lens == nullptr) return Null(kFn, "key_lens");
    if (values == nullptr) return Null(kFn, "values");
    if (value_lens == nullptr) return Null(kFn, "value_lens");
    if (statuses == nullptr) return Null(kFn, "statuses");
    std::vector<std::string_view> ks(n);
    std::vector<absl::StatusOr<std::string_view>> vs(n);
    std::vector<bool> bad(n, false);
    for (size_t i = 0; i < n; ++i) {
      if (keys[i] == nullptr && key_lens[i] > 0) {
        bad[i] = true;  // looked up as an empty key, which the engine refuses; reported below
      } else {
        ks[i] = Bytes(keys[i], key_lens[i]);
      }
    }
    txn->txn.MultiGet(ks, absl::MakeSpan(vs));
    for (size_t i = 0; i < n; ++i) {
      values[i] = nullptr;
      value_lens[i] = 0;
      if (bad[i]) {
        statuses[i] = MAPKV_INVALID_ARGUMENT;
      } else if (vs[i].ok()) {
        statuses[i] = MAPKV_OK;
        values[i] = vs[i]->data();
        value_lens[i] = vs[i]->size();
      } else {
        statuses[i] = static_cast<mapkv_status>(vs[i].status().code());
      }
    }
    return absl::OkStatus();
  });
}

mapkv_status mapkv_read_foreach(mapkv_read_txn* txn,
                                int (*fn)(void* user, const void* key, size_t key_len,
                                          const void* value, size_t value_len),
                                void* user, char** errmsg) {
  return Guard("mapkv_read_foreach", errmsg, [&]() -> absl::Status {
    if (txn == nullptr) return Null("mapkv_read_foreach", "txn");
    if (fn == nullptr) return Null("mapkv_read_foreach", "fn");
    return txn->txn.ForEach([&](std::string_view key, std::string_view value) {
      return fn(user, key.data(), key.size(), value.data(), value.size()) != 0;
    });
  });
}

mapkv_status mapkv_read_count(mapkv_read_txn* txn, uint64_t* count, char** errmsg) {
  return Guard("mapkv_read_count", errmsg, [&]() -> absl::Status {
    if (txn == nullptr) return Null("mapkv_read_count", "txn");
    if (count == nullptr) return Null("mapkv_read_count", "count");
    *count = txn->txn.Count();
    return absl::OkStatus();
  });
}

void mapkv_read_end(mapkv_read_txn* txn) {
  if (txn == nullptr) return;
  mapkv_db* db = txn->db;
  delete txn;  // ends its snapshot (a version 1 file: releases the shared lock)
  db->live_txns.fetch_sub(1);
}

// ---- Write transactions ----

mapkv_status mapkv_write_begin(mapkv_db* db, mapkv_write_txn** txn, char** errmsg) {
  return BeginTxn("mapkv_write_begin", db, txn, errmsg,
                  [](mapkv::DB& d) { return d.BeginWrite(); });
}

mapkv_status mapkv_write_get(mapkv_write_txn* txn, const void* key, size_t key_len,
                             const void** value, size_t* value_len, char** errmsg) {
  return TxnGet("mapkv_write_get", txn, key, key_len, value, value_len, errmsg);
}

mapkv_status mapkv_write_put(mapkv_write_txn* txn, const void* key, size_t key_len,
                             const void* value, size_t value_len, char** errmsg) {
  return Guard("mapkv_write_put", errmsg, [&]() -> absl::Status {
    if (txn == nullptr) return Null("mapkv_write_put", "txn");
    const std::string& path = txn->db->db->path();
    MAPKV_RETURN_IF_ERROR(CheckBytes(path, "key", key, key_len));
    MAPKV_RETURN_IF_ERROR(CheckBytes(path, "value", value, value_len));
    const std::string_view k = Bytes(key, key_len);
    return txn->txn.Put(k, Bytes(value, value_len));
  });
}

mapkv_status mapkv_write_delete(mapkv_write_txn* txn, const void* key, size_t key_len,
                                char** errmsg) {
  return Guard("mapkv_write_delete", errmsg, [&]() -> absl::Status {
    if (txn == nullptr) return Null("mapkv_write_delete", "txn");
    const std::string& path = txn->db->db->path();
    MAPKV_RETURN_IF_ERROR(CheckBytes(path, "key", key, key_len));
    const std::string_view k = Bytes(key, key_len);
    return txn->txn.Delete(k);
  });
}

mapkv_status mapkv_write_commit(mapkv_write_txn* txn, char** errmsg) {
  return Guard("mapkv_write_commit", errmsg, [&]() -> absl::Status {
    if (txn == nullptr) return Null("mapkv_write_commit", "txn");
    // Freed whatever the result, a throw included.
    struct Release {
      mapkv_write_txn* txn;
      ~Release() {
        mapkv_db* db = txn->db;
        delete txn;
        db->live_txns.fetch_sub(1);
      }
    } release{txn};
    return txn->txn.Commit();
  });
}

void mapkv_write_abort(mapkv_write_txn* txn) {
  if (txn == nullptr) return;
  mapkv_db* db = txn->db;
  delete txn;  // ~WriteTxn aborts and releases the writer lock
  db->live_txns.fetch_sub(1);
}

// ---- Compaction ----

mapkv_compact_options* mapkv_compact_options_create(void) {
  return new (std::nothrow) mapkv_compact_options();
}
void mapkv_compact_options_destroy(mapkv_compact_options* opts) { delete opts; }
void mapkv_compact_options_set_progress(mapkv_compact_options* opts,
                                        void (*fn)(const mapkv_compact_progress* progress,
                                                   void* user),
                                        void* user) {
  if (opts == nullptr) return;
  opts->progress = fn;
  opts->progress_user = user;
}
void mapkv_compact_options_set_lock_timeout_ms(mapkv_compact_options* opts, uint64_t ms) {
  if (opts != nullptr) opts->lock_timeout_ms = ms;
}
void mapkv_compact_options_set_batch_bytes(mapkv_compact_options* opts, uint64_t bytes) {
  if (opts != nullptr) opts->options.batch_bytes = bytes;
}

mapkv_status mapkv_compact(const char* src, const char* dst, const mapkv_compact_options* opts,
                           mapkv_compact_result* result, char** errmsg) {
  return Guard("mapkv_compact", errmsg, [&]() -> absl::Status {
    if (src == nullptr) return Null("mapkv_compact", "src");
    const std::string source(src);
    mapkv::CompactOptions options;
    if (opts != nullptr) {
      options = opts->options;
      MAPKV_RETURN_IF_ERROR(CheckDuration(source, "lock_timeout_ms", opts->lock_timeout_ms));
      options.lock_timeout = std::chrono::milliseconds(opts->lock_timeout_ms);
      if (opts->progress != nullptr) {
        auto* fn = opts->progress;
        void* user = opts->progress_user;
        options.progress = [fn, user](const mapkv::CompactProgress& p) {
          mapkv_compact_progress c;
          std::memset(&c, 0, sizeof(c));
          c.size = sizeof(c);
          switch (p.phase) {
            case mapkv::CompactProgress::Phase::kCopy:
              c.phase = MAPKV_COMPACT_COPY;
              break;
            case mapkv::CompactProgress::Phase::kFlush:
              c.phase = MAPKV_COMPACT_FLUSH;
              break;
            case mapkv::CompactProgress::Phase::kReplace:
              c.phase = MAPKV_COMPACT_REPLACE;
              break;
          }
          c.keys_done = p.keys_done;
          c.keys_total = p.keys_total;
          c.bytes_done = p.bytes_done;
          c.bytes_total = p.bytes_total;
          fn(&c, user);
        };
      }
    }
    if (result != nullptr && (result->size < sizeof(size_t) || result->size > kMaxStructSize)) {
      // Refused before the work, not after it.
      return FillSized(mapkv_compact_result{}, result, "mapkv_compact", "result");
    }
    MAPKV_ASSIGN_OR_RETURN(
        const mapkv::CompactResult r,
        mapkv::Compact(source, dst == nullptr ? std::string() : std::string(dst), options));
    if (result == nullptr) return absl::OkStatus();
    mapkv_compact_result c;
    std::memset(&c, 0, sizeof(c));
    c.in_place = r.in_place ? 1 : 0;
    c.keys = r.keys;
    c.dropped = r.dropped;
    c.size_before = r.size_before;
    c.size_after = r.size_after;
    c.live_bytes = r.live_bytes;
    c.garbage_before = r.garbage_before;
    c.micros = r.micros;
    c.removed_leftovers = r.removed_leftovers.size();
    c.garbage_after = r.garbage_after;
    c.locked_bytes = r.locked_bytes;
    return FillSized(c, result, "mapkv_compact", "result");
  });
}

// ---- The shared cache ----

mapkv_cache_options* mapkv_cache_options_create(void) {
  return new (std::nothrow) mapkv_cache_options();
}
void mapkv_cache_options_destroy(mapkv_cache_options* opts) { delete opts; }
void mapkv_cache_options_set_db_options(mapkv_cache_options* opts, const mapkv_options* db) {
  if (opts == nullptr) return;
  try {
    opts->db = db == nullptr ? mapkv_options() : *db;
  } catch (...) {
    // Copying the info_log closure may allocate; the previous db options stay.
  }
}
void mapkv_cache_options_set_capacity(mapkv_cache_options* opts, uint64_t bytes) {
  if (opts != nullptr) opts->capacity = bytes;
}
void mapkv_cache_options_set_compute_timeout_ms(mapkv_cache_options* opts, uint64_t ms) {
  if (opts != nullptr) opts->compute_timeout_ms = ms;
}
void mapkv_cache_options_set_clock(mapkv_cache_options* opts, int64_t (*now_unix_ms)(void* user),
                                   void* user) {
  if (opts == nullptr) return;
  opts->clock = now_unix_ms;
  opts->clock_user = user;
}

mapkv_status mapkv_cache_open(const char* path, const mapkv_cache_options* opts,
                              mapkv_cache** cache, char** errmsg) {
  if (cache != nullptr) *cache = nullptr;
  return Guard("mapkv_cache_open", errmsg, [&]() -> absl::Status {
    if (path == nullptr) return Null("mapkv_cache_open", "path");
    if (cache == nullptr) return Null("mapkv_cache_open", "cache");
    const std::string p(path);
    mapkv::CacheOptions options;
    if (opts != nullptr) {
      MAPKV_RETURN_IF_ERROR(ToOptions(&opts->db, p, &options.db));
      MAPKV_RETURN_IF_ERROR(CheckDuration(p, "compute_timeout_ms", opts->compute_timeout_ms));
      options.capacity = opts->capacity;
      options.compute_timeout = std::chrono::milliseconds(opts->compute_timeout_ms);
      if (opts->clock != nullptr) {
        auto* fn = opts->clock;
        void* user = opts->clock_user;
        options.now_unix_ms = [fn, user]() { return fn(user); };
      }
    }
    auto handle = std::make_unique<mapkv_cache>();
    MAPKV_ASSIGN_OR_RETURN(handle->cache, mapkv::Cache::Open(p, options));
    *cache = handle.release();
    return absl::OkStatus();
  });
}

void mapkv_cache_close(mapkv_cache* cache) { delete cache; }

const char* mapkv_cache_path(const mapkv_cache* cache) {
  return cache == nullptr ? nullptr : cache->cache->path().c_str();
}

mapkv_status mapkv_cache_get(mapkv_cache* cache, const void* key, size_t key_len, void* buf,
                             size_t buf_len, size_t* value_len, char** errmsg) {
  return Guard("mapkv_cache_get", errmsg, [&]() -> absl::Status {
    if (cache == nullptr) return Null("mapkv_cache_get", "cache");
    MAPKV_RETURN_IF_ERROR(CheckOutBuffer("mapkv_cache_get", buf, buf_len, value_len));
    const std::string& path = cache->cache->path();
    MAPKV_RETURN_IF_ERROR(CheckBytes(path, "key", key, key_len));
    const std::string_view k = Bytes(key, key_len);
    MAPKV_ASSIGN_OR_RETURN(const std::string v, cache->cache->Get(k));
    return CopyOut(v, buf, buf_len, value_len, path, k);
  });
}

mapkv_status mapkv_cache_put(mapkv_cache* cache, const void* key, size_t key_len, const void* value,
                             size_t value_len, uint64_t ttl_ms, char** errmsg) {
  return Guard("mapkv_cache_put", errmsg, [&]() -> absl::Status {
    if (cache == nullptr) return Null("mapkv_cache_put", "cache");
    const std::string& path = cache->cache->path();
    MAPKV_RETURN_IF_ERROR(CheckBytes(path, "key", key, key_len));
    MAPKV_RETURN_IF_ERROR(CheckBytes(path, "value", value, value_len));
    const std::string_view k = Bytes(key, key_len);
    MAPKV_RETURN_IF_ERROR(CheckTtl(path, k, ttl_ms));
    return cache->cache->Put(k, Bytes(value, value_len), mapkv::Ttl(ttl_ms));
  });
}

mapkv_status mapkv_cache_delete(mapkv_cache* cache, const void* key, size_t key_len,
                                char** errmsg) {
  return Guard("mapkv_cache_delete", errmsg, [&]() -> absl::Status {
    if (cache == nullptr) return Null("mapkv_cache_delete", "cache");
    const std::string& path = cache->cache->path();
    MAPKV_RETURN_IF_ERROR(CheckBytes(path, "key", key, key_len));
    const std::string_view k = Bytes(key, key_len);
    return cache->cache->Delete(k);
  });
}

mapkv_status mapkv_buf_set(mapkv_buf* buf, const void* data, size_t size) {
  return Guard("mapkv_buf_set", nullptr, [&]() -> absl::Status {
    if (buf == nullptr) return Null("mapkv_buf_set", "buf");
    if (data == nullptr && size > 0) return Null("mapkv_buf_set", "data");
    buf->value.assign(static_cast<const char*>(data), size);
    return absl::OkStatus();
  });
}

mapkv_status mapkv_cache_get_or_compute(mapkv_cache* cache, const void* key, size_t key_len,
                                        uint64_t ttl_ms, mapkv_compute_fn fn, void* user, void* buf,
                                        size_t buf_len, size_t* value_len, char** errmsg) {
  return Guard("mapkv_cache_get_or_compute", errmsg, [&]() -> absl::Status {
    constexpr const char* kFn = "mapkv_cache_get_or_compute";
    if (cache == nullptr) return Null(kFn, "cache");
    if (fn == nullptr) return Null(kFn, "fn");
    MAPKV_RETURN_IF_ERROR(CheckOutBuffer(kFn, buf, buf_len, value_len));
    const std::string& path = cache->cache->path();
    MAPKV_RETURN_IF_ERROR(CheckBytes(path, "key", key, key_len));
    const std::string_view k = Bytes(key, key_len);
    MAPKV_RETURN_IF_ERROR(CheckTtl(path, k, ttl_ms));
    MAPKV_ASSIGN_OR_RETURN(
        const std::string v,
        cache->cache->GetOrCompute(k, mapkv::Ttl(ttl_ms), [&]() -> absl::StatusOr<std::string> {
          mapkv_buf out;
          const mapkv_status rc = fn(user, &out);
          if (rc == MAPKV_OK) return std::move(out.value);
          const int code = static_cast<int>(rc);
          const bool known = code > 0 && code <= static_cast<int>(MAPKV_UNAUTHENTICATED);
          return absl::Status(
              known ? static_cast<absl::StatusCode>(code) : absl::StatusCode::kUnknown,
              absl::StrCat(path, ": key ", QuoteKey(k), ": the compute function failed with ",
                           known ? mapkv_status_name(rc) : absl::StrCat("code ", code)));
        }));
    return CopyOut(v, buf, buf_len, value_len, path, k);
  });
}

mapkv_status mapkv_cache_increment(mapkv_cache* cache, const void* key, size_t key_len,
                                   int64_t delta, uint64_t ttl_ms, int64_t* result, char** errmsg) {
  return Guard("mapkv_cache_increment", errmsg, [&]() -> absl::Status {
    if (cache == nullptr) return Null("mapkv_cache_increment", "cache");
    const std::string& path = cache->cache->path();
    MAPKV_RETURN_IF_ERROR(CheckBytes(path, "key", key, key_len));
    const std::string_view k = Bytes(key, key_len);
    MAPKV_RETURN_IF_ERROR(CheckTtl(path, k, ttl_ms));
    MAPKV_ASSIGN_OR_RETURN(const int64_t sum,
                           cache->cache->Increment(k, delta, mapkv::Ttl(ttl_ms)));
    if (result != nullptr) *result = sum;
    return absl::OkStatus();
  });
}

mapkv_status mapkv_cache_get_stats(mapkv_cache* cache, mapkv_cache_stats* stats,
                                   mapkv_stats* db_stats, char** errmsg) {
  return Guard("mapkv_cache_get_stats", errmsg, [&]() -> absl::Status {
    constexpr const char* kFn = "mapkv_cache_get_stats";
    if (cache == nullptr) return Null(kFn, "cache");
    if (stats == nullptr) return Null(kFn, "stats");
    if (db_stats != nullptr &&
        (db_stats->size < sizeof(size_t) || db_stats->size > kMaxStructSize)) {
      return FillSized(mapkv_stats{}, db_stats, kFn, "db_stats");
    }
    const mapkv::CacheStats s = cache->cache->GetStats();
    mapkv_cache_stats c;
    std::memset(&c, 0, sizeof(c));
#define MAPKV_COPY_FIELD(field) c.field = s.field;
    MAPKV_CACHE_STATS_FIELDS(MAPKV_COPY_FIELD)
#undef MAPKV_COPY_FIELD
    MAPKV_RETURN_IF_ERROR(FillSized(c, stats, kFn, "stats"));
    if (db_stats == nullptr) return absl::OkStatus();
    return FillSized(ToCStats(s.db), db_stats, kFn, "db_stats");
  });
}

mapkv_status mapkv_cache_checkpoint(mapkv_cache* cache, char** errmsg) {
  return Guard("mapkv_cache_checkpoint", errmsg, [&]() -> absl::Status {
    if (cache == nullptr) return Null("mapkv_cache_checkpoint", "cache");
    return cache->cache->Checkpoint();
  });
}

}  // extern "C"
