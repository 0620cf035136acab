// mapkv's C API: the whole public surface of db.h, options.h, stats.h, compact.h and cache.h for
// programs written in C and for other languages' foreign-function interfaces.
//
// Every function here is a thin wrapper over the C++ call of the same name; the contracts written
// in the C++ headers (locks taken, what survives a crash, what a cache computes once) hold as
// they are, and are not repeated. What this header adds is how they cross into C:
//
// - Errors. Every call that can fail returns a mapkv_status, whose values are those of
//   absl::StatusCode (MAPKV_NOT_FOUND is absl::StatusCode::kNotFound, ...), and takes a last
//   argument `char** errmsg`. When errmsg is not NULL, *errmsg is set to NULL when the call
//   returns MAPKV_OK, and otherwise to a message (NUL-terminated, allocated by the library) that
//   names the file and, for calls about one key, the key; free it with mapkv_free(). Free an old
//   message before passing the same variable again: the library never frees it. When even the
//   message cannot be allocated, *errmsg is NULL and the status stands alone.
// - No C++ exception crosses this API: every call catches everything at the boundary
//   (std::bad_alloc becomes MAPKV_RESOURCE_EXHAUSTED, anything else MAPKV_INTERNAL).
// - Keys and values are (pointer, length) pairs, binary-safe: no NUL terminator is read or
//   written. A key is 1 to MAPKV_MAX_KEY_SIZE bytes; a value 0 to MAPKV_MAX_VALUE_SIZE bytes. A
//   pointer may be NULL only with a length of 0; otherwise MAPKV_INVALID_ARGUMENT. So is a NULL
//   handle, or a NULL pointer to write a result through, unless the call says it is optional
//   (errmsg, result, db_stats, callbacks).
// - Values copied out go to a buffer of the caller's, as with snprintf: `buf` of `buf_len` bytes,
//   and *value_len receives the value's size. When the value does not fit, the call returns
//   MAPKV_OUT_OF_RANGE, leaves buf untouched and still sets *value_len: call again with a buffer
//   that large (buf may be NULL when buf_len is 0, to ask for the size alone). Another process may
//   change the value in between, so loop. For no copy at all, read through a read transaction
//   (mapkv_read_begin, mapkv_read_get).
// - Ownership. Every object the library creates (handles, transactions, options, messages) is
//   freed by the library call named beside its constructor: mapkv_close, mapkv_read_end,
//   mapkv_write_commit or mapkv_write_abort, mapkv_options_destroy, mapkv_free, ... Each of those
//   accepts NULL and does nothing. Nothing the caller passes in is kept after the call returns,
//   except the `user` pointers of callbacks, which must stay valid while the options that hold
//   them (or a handle opened with them) are alive.
// - ABI. Handles and options are opaque, set through functions, so they can gain fields without
//   breaking a compiled caller. The structs the library fills (mapkv_stats, mapkv_cache_stats,
//   mapkv_compact_result) begin with a `size` member that the caller sets to sizeof(the struct)
//   before the call: the library fills no more than that many bytes (an older caller gets the
//   fields it knows) and sets `size` to the bytes it filled (a newer caller learns which fields an
//   older library left out, and finds them zeroed). A size of 0, or above 4096 (a size left
//   unset), is MAPKV_INVALID_ARGUMENT, and nothing is written.
// - Callbacks (info log, compaction progress, compute, clock, verify, for-each) are called on the
//   thread that made the call, must return normally (no longjmp out of them, no C++ exception
//   through them), and must not use the handle they were called from unless said otherwise.
//
// Thread safety: as in C++. A mapkv_db or mapkv_cache may be used by many threads at once; a
// transaction belongs to one thread at a time; options objects may be read (passed to an open)
// by many threads at once but not changed meanwhile. Closing a handle must not race with other
// calls on it. Process safety is the engine's: any number of processes may open one file.
//
// Linking: with the shared library (CMake target mapkv::mapkv_shared, or `pkg-config --libs
// mapkv`), or the static one (mapkv::mapkv, or `pkg-config --static --libs mapkv`, which adds
// abseil and the C++ runtime). A program that uses mapkv as a Windows DLL defines
// MAPKV_SHARED before including this header (mapkv::mapkv_shared does so).
#ifndef MAPKV_C_H_
#define MAPKV_C_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(MAPKV_SHARED)
#if defined(MAPKV_BUILDING_LIBRARY)
#define MAPKV_C_API __declspec(dllexport)
#else
#define MAPKV_C_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define MAPKV_C_API __attribute__((visibility("default")))
#else
#define MAPKV_C_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

// ---- Errors, memory, limits ----

// The codes of absl::StatusCode, with the same values.
typedef enum mapkv_status {
  MAPKV_OK = 0,
  MAPKV_CANCELLED = 1,
  MAPKV_UNKNOWN = 2,
  MAPKV_INVALID_ARGUMENT = 3,   // bad sizes, a NULL pointer, not a mapkv file
  MAPKV_DEADLINE_EXCEEDED = 4,  // a lock wait past lock_timeout, naming the holder's pid
  MAPKV_NOT_FOUND = 5,
  MAPKV_ALREADY_EXISTS = 6,
  MAPKV_PERMISSION_DENIED = 7,    // a write through a read-only handle
  MAPKV_RESOURCE_EXHAUSTED = 8,   // past max_file_size, out of memory, disk full
  MAPKV_FAILED_PRECONDITION = 9,  // a newer format, the other kind of file, in use elsewhere
  MAPKV_ABORTED = 10,
  MAPKV_OUT_OF_RANGE = 11,  // a buffer too small; a counter's overflow
  MAPKV_UNIMPLEMENTED = 12,
  MAPKV_INTERNAL = 13,
  MAPKV_UNAVAILABLE = 14,
  MAPKV_DATA_LOSS = 15,  // damaged bytes, with the offset
  MAPKV_UNAUTHENTICATED = 16,
} mapkv_status;

#define MAPKV_MAX_KEY_SIZE 65535u
#define MAPKV_MAX_VALUE_SIZE 0xFFFFFFFFull
// The longest duration any *_ms argument or option takes (2^40 ms, about 34 years); a longer
// one is MAPKV_INVALID_ARGUMENT.
#define MAPKV_MAX_DURATION_MS (1ull << 40)

// The code's name without the prefix ("NOT_FOUND"); "UNKNOWN_STATUS" for a value that is none.
// A static string. Any thread.
MAPKV_C_API const char* mapkv_status_name(mapkv_status status);

// The library's version ("0.1.0"): the library linked at run time, not the header. A static
// string. Any thread.
MAPKV_C_API const char* mapkv_version(void);

// Frees a message or anything else this header says to free with it. NULL: nothing. Any thread.
MAPKV_C_API void mapkv_free(void* p);

// ---- Options (options.h) ----

typedef enum mapkv_durability {
  MAPKV_DURABILITY_NONE = 0,      // Durability::kNone (the default)
  MAPKV_DURABILITY_PERIODIC = 1,  // Durability::kPeriodic
  MAPKV_DURABILITY_SYNC = 2,      // Durability::kSync
} mapkv_durability;

typedef enum mapkv_file_kind {
  MAPKV_KIND_DATABASE = 0,  // FileKind::kDatabase (the default for mapkv_open)
  MAPKV_KIND_CACHE = 1,     // FileKind::kCache (mapkv_cache_open sets it)
  MAPKV_KIND_ANY = 2,       // FileKind::kAny: open either; a new file is a database
} mapkv_file_kind;

// Options for opening a file, with the defaults of mapkv::Options. Created by
// mapkv_options_create (NULL when out of memory), freed by mapkv_options_destroy. The setters
// never fail and do nothing on a NULL `opts`: an enum value or a duration out of range is
// reported by the call that uses the options (MAPKV_INVALID_ARGUMENT, naming the option).
typedef struct mapkv_options mapkv_options;

MAPKV_C_API mapkv_options* mapkv_options_create(void);
MAPKV_C_API void mapkv_options_destroy(mapkv_options* opts);
// Each is the field of mapkv::Options of the same name, which documents it; flags are 0 or not.
MAPKV_C_API void mapkv_options_set_create_if_missing(mapkv_options* opts, int value);
MAPKV_C_API void mapkv_options_set_kind(mapkv_options* opts, mapkv_file_kind kind);
MAPKV_C_API void mapkv_options_set_error_if_exists(mapkv_options* opts, int value);
MAPKV_C_API void mapkv_options_set_read_only(mapkv_options* opts, int value);
MAPKV_C_API void mapkv_options_set_exclusive(mapkv_options* opts, int value);
MAPKV_C_API void mapkv_options_set_file_mode(mapkv_options* opts, uint32_t mode);
MAPKV_C_API void mapkv_options_set_durability(mapkv_options* opts, mapkv_durability durability);
MAPKV_C_API void mapkv_options_set_huge_pages(mapkv_options* opts, int value);
MAPKV_C_API void mapkv_options_set_max_file_size(mapkv_options* opts, uint64_t bytes);
MAPKV_C_API void mapkv_options_set_initial_file_size(mapkv_options* opts, uint64_t bytes);
MAPKV_C_API void mapkv_options_set_initial_index_slots(mapkv_options* opts, uint64_t slots);
MAPKV_C_API void mapkv_options_set_verify_checksums(mapkv_options* opts, int value);
MAPKV_C_API void mapkv_options_set_checkpoint_interval_ms(mapkv_options* opts, uint64_t ms);
MAPKV_C_API void mapkv_options_set_checkpoint_bytes(mapkv_options* opts, uint64_t bytes);
MAPKV_C_API void mapkv_options_set_lock_timeout_ms(mapkv_options* opts, uint64_t ms);
MAPKV_C_API void mapkv_options_set_max_snapshot_bytes(mapkv_options* opts, uint64_t bytes);
// Options::compact_ratio (0: neither the writer's cleaner nor online compactions started by
// commits) and compact_min_garbage.
MAPKV_C_API void mapkv_options_set_compact_ratio(mapkv_options* opts, double ratio);
MAPKV_C_API void mapkv_options_set_compact_min_garbage(mapkv_options* opts, uint64_t bytes);
// Options::create_format_version: 0 (the newest, 5) or 4 (which older builds open too); Open
// fails with MAPKV_INVALID_ARGUMENT for anything else.
MAPKV_C_API void mapkv_options_set_create_format_version(mapkv_options* opts, uint32_t version);
// Options::info_log: fn receives each line (NUL-terminated, also given its length, no newline),
// on whichever thread of the handle's calls meets the event. NULL fn: the default (stderr).
MAPKV_C_API void mapkv_options_set_info_log(mapkv_options* opts,
                                            void (*fn)(void* user, const char* line, size_t len),
                                            void* user);

// ---- The database (db.h) ----

typedef struct mapkv_db mapkv_db;
typedef struct mapkv_read_txn mapkv_read_txn;
typedef struct mapkv_write_txn mapkv_write_txn;

// Opens or creates the database at `path` (NUL-terminated UTF-8, on Windows too) with `opts`
// (NULL: the defaults). On success *db is a
// handle to close with mapkv_close; on failure *db is NULL. Errors: those of DB::Open, each
// naming the file: MAPKV_NOT_FOUND (missing, create_if_missing off), MAPKV_ALREADY_EXISTS
// (error_if_exists), MAPKV_INVALID_ARGUMENT (not a mapkv file), MAPKV_FAILED_PRECONDITION (a
// cache, a newer format, held exclusively), MAPKV_DATA_LOSS, MAPKV_DEADLINE_EXCEEDED, and the
// OS's errors. Any thread.
MAPKV_C_API mapkv_status mapkv_open(const char* path, const mapkv_options* opts, mapkv_db** db,
                                    char** errmsg);

// Closes the handle and frees it. MAPKV_FAILED_PRECONDITION, closing nothing, while a transaction
// begun on it has not ended (end it, then close again): a transaction holds the handle's locks.
// NULL: MAPKV_OK. Must not race with any other call on the handle.
MAPKV_C_API mapkv_status mapkv_close(mapkv_db* db, char** errmsg);

// The path the handle was opened with, NUL-terminated, valid until mapkv_close.
MAPKV_C_API const char* mapkv_path(const mapkv_db* db);

// Copies the value of `key` into buf (see "Values copied out" above). MAPKV_NOT_FOUND when
// absent (*value_len is then 0), MAPKV_OUT_OF_RANGE when buf is too small, MAPKV_INVALID_ARGUMENT
// for a bad key size, MAPKV_DATA_LOSS when the record fails its checksum. Reads without a lock
// (DB::Get). Any thread.
MAPKV_C_API mapkv_status mapkv_get(mapkv_db* db, const void* key, size_t key_len, void* buf,
                                   size_t buf_len, size_t* value_len, char** errmsg);

// A transaction of one write: DB::Put and DB::Delete (OK when the key is absent). Put fails with
// MAPKV_INVALID_ARGUMENT for a bad key or value size, MAPKV_PERMISSION_DENIED on a read-only
// handle, MAPKV_RESOURCE_EXHAUSTED past max_file_size (nothing committed is lost), and both wait
// for the writer lock up to lock_timeout (MAPKV_DEADLINE_EXCEEDED). Any thread.
MAPKV_C_API mapkv_status mapkv_put(mapkv_db* db, const void* key, size_t key_len, const void* value,
                                   size_t value_len, char** errmsg);
MAPKV_C_API mapkv_status mapkv_delete(mapkv_db* db, const void* key, size_t key_len, char** errmsg);

// Flushes every committed byte to disk and records a checkpoint (DB::Checkpoint). Waits for the
// current writer. Any thread.
MAPKV_C_API mapkv_status mapkv_checkpoint(mapkv_db* db, char** errmsg);

// A snapshot of the file's shape: the fields of mapkv::Stats (stats.h), with flags as 0 or 1.
typedef struct mapkv_stats {
  size_t size;  // set to sizeof(mapkv_stats) before the call (see "ABI" above)
  uint64_t keys;
  uint64_t file_size;
  uint64_t max_file_size;
  uint64_t log_bytes;
  uint64_t live_bytes;
  uint64_t garbage_bytes;
  uint64_t index_capacity;
  uint64_t index_used;
  double index_load;
  uint64_t commits;
  uint64_t checkpoints;
  int64_t last_checkpoint_unix_ms;
  uint32_t open_handles;
  uint32_t format_version;
  int is_cache;
  int rebuilt_index;
  uint64_t rebuild_records;
  uint64_t rebuild_micros;
  uint64_t recovered_commits;
  uint64_t cache_capacity;  // a cache's capacity (0: none)
  uint64_t evictions;       // entries a cache evicted for space
  uint64_t snapshots;       // open snapshots (read transactions of a version 4 or 5 database)
  uint64_t snapshot_pinned_bytes;     // log bytes committed since the oldest of them began
  uint64_t compactions;               // compactions in place over the database's life
  uint64_t bytes_written;             // log bytes written over it, by commits and compactions
  uint64_t bytes_relocated;           // of those, copies by compactions and the cleaner
  double write_amplification;         // bytes_written per byte commits wrote (0: none)
  uint64_t writers_paced_kib_per_ms;  // an online compaction's pace for commits now (0: none)
  uint64_t disk_bytes;                // the file's allocated blocks (0: not known)
} mapkv_stats;

// Fills *stats (DB::GetStats). Fails only for bad arguments. Any thread.
MAPKV_C_API mapkv_status mapkv_get_stats(mapkv_db* db, mapkv_stats* stats, char** errmsg);

// Checks the whole file (DB::Verify). MAPKV_OK when all is well; otherwise MAPKV_DATA_LOSS summing
// up the problems, and `problem` (when not NULL) is called once for each, before the call returns,
// with its offset in the file, its kind ("header", "checkpoint", "log", "index" or "counters") and
// what is wrong (both NUL-terminated, valid during the callback only). Reads a snapshot beside
// live commits (a format version 1 file: holds the shared lock throughout, and commits wait).
// Any thread.
MAPKV_C_API mapkv_status mapkv_verify(mapkv_db* db,
                                      void (*problem)(void* user, uint64_t offset, const char* kind,
                                                      const char* detail),
                                      void* user, char** errmsg);

// ---- Read transactions (DB::BeginRead, ReadTxn) ----

// Begins a snapshot: the database as of now, until mapkv_read_end, whatever commits (of any
// process, this thread's included) follow; it holds no lock. In a format version 1 file it holds
// the shared lock instead, commits wait for it, and a commit from the thread that holds it waits
// until lock_timeout. On success *txn is the transaction; on failure NULL
// (MAPKV_DEADLINE_EXCEEDED when a lock is not had within lock_timeout). The transaction belongs
// to one thread at a time.
MAPKV_C_API mapkv_status mapkv_read_begin(mapkv_db* db, mapkv_read_txn** txn, char** errmsg);

// The value of `key` without a copy: *value points into the mapping and stays valid until
// mapkv_read_end (an empty value may point anywhere: read 0 bytes of it). Never write through it.
// Errors as mapkv_get, without MAPKV_OUT_OF_RANGE.
MAPKV_C_API mapkv_status mapkv_read_get(mapkv_read_txn* txn, const void* key, size_t key_len,
                                        const void** value, size_t* value_len, char** errmsg);

// Looks up n keys at once, overlapping their cache misses (ReadTxn::MultiGet): for each i,
// statuses[i] is what mapkv_read_get of keys[i] (key_lens[i] bytes) would return, and values[i]
// and value_lens[i] its value when that is MAPKV_OK (NULL and 0 otherwise). Returns MAPKV_OK once
// every entry is filled in; MAPKV_INVALID_ARGUMENT for a NULL array with n > 0.
MAPKV_C_API mapkv_status mapkv_read_multi_get(mapkv_read_txn* txn, size_t n,
                                              const void* const* keys, const size_t* key_lens,
                                              const void** values, size_t* value_lens,
                                              mapkv_status* statuses, char** errmsg);

// Calls fn for every live key, in index order, until it returns 0 (ReadTxn::ForEach). Key and
// value point into the mapping, valid until mapkv_read_end. MAPKV_DATA_LOSS at a damaged record.
MAPKV_C_API mapkv_status mapkv_read_foreach(mapkv_read_txn* txn,
                                            int (*fn)(void* user, const void* key, size_t key_len,
                                                      const void* value, size_t value_len),
                                            void* user, char** errmsg);

// The number of live keys in the view.
MAPKV_C_API mapkv_status mapkv_read_count(mapkv_read_txn* txn, uint64_t* count, char** errmsg);

// Ends the transaction (its snapshot, or the shared lock) and frees txn: every pointer it gave is
// invalid from now on. NULL: nothing.
MAPKV_C_API void mapkv_read_end(mapkv_read_txn* txn);

// ---- Write transactions (DB::BeginWrite, WriteTxn) ----

// Begins the one write transaction on the file (across all processes), waiting for the current
// writer up to lock_timeout (MAPKV_DEADLINE_EXCEEDED, naming its pid). A thread that holds a
// write transaction and asks for another on any handle of the same file waits for itself. On
// success *txn must be ended by mapkv_write_commit or mapkv_write_abort; on failure it is NULL.
// The transaction belongs to one thread at a time.
MAPKV_C_API mapkv_status mapkv_write_begin(mapkv_db* db, mapkv_write_txn** txn, char** errmsg);

// The value of `key` as this transaction sees it (its own writes included), without a copy:
// valid until the next call on the transaction.
MAPKV_C_API mapkv_status mapkv_write_get(mapkv_write_txn* txn, const void* key, size_t key_len,
                                         const void** value, size_t* value_len, char** errmsg);

// Writes invisible to others until commit. Errors as mapkv_put; after MAPKV_RESOURCE_EXHAUSTED
// the transaction stays usable (delete and commit still work).
MAPKV_C_API mapkv_status mapkv_write_put(mapkv_write_txn* txn, const void* key, size_t key_len,
                                         const void* value, size_t value_len, char** errmsg);
MAPKV_C_API mapkv_status mapkv_write_delete(mapkv_write_txn* txn, const void* key, size_t key_len,
                                            char** errmsg);

// Commits all or nothing, and frees txn whatever the result (do not call mapkv_write_abort
// after it). NULL: MAPKV_INVALID_ARGUMENT.
MAPKV_C_API mapkv_status mapkv_write_commit(mapkv_write_txn* txn, char** errmsg);

// Drops every write of the transaction and frees txn. NULL: nothing.
MAPKV_C_API void mapkv_write_abort(mapkv_write_txn* txn);

// ---- Offline compaction (compact.h) ----

typedef enum mapkv_compact_phase {
  MAPKV_COMPACT_COPY = 0,     // copying live records; keys_done and bytes_done advance
  MAPKV_COMPACT_FLUSH = 1,    // the copy is complete; flushing it to disk
  MAPKV_COMPACT_REPLACE = 2,  // renaming it into place
} mapkv_compact_phase;

// Where a compaction is (CompactProgress). Made by the library for the callback: `size` is the
// bytes it holds, so fields added later are there only when size says so.
typedef struct mapkv_compact_progress {
  size_t size;
  mapkv_compact_phase phase;
  uint64_t keys_done;
  uint64_t keys_total;
  uint64_t bytes_done;
  uint64_t bytes_total;
} mapkv_compact_progress;

// What a compaction did (CompactResult), with removed_leftovers as the number of temporary files
// of earlier, killed compactions it removed first.
typedef struct mapkv_compact_result {
  size_t size;  // set to sizeof(mapkv_compact_result) before the call (see "ABI" above)
  int in_place;
  uint64_t keys;
  uint64_t dropped;
  uint64_t size_before;
  uint64_t size_after;
  uint64_t live_bytes;
  uint64_t garbage_before;
  uint64_t micros;
  uint64_t removed_leftovers;
  uint64_t garbage_after;  // CompactResult::garbage_after
  uint64_t locked_bytes;   // CompactResult::locked_bytes
} mapkv_compact_result;

// Options of a compaction, with the defaults of mapkv::CompactOptions. Created by
// mapkv_compact_options_create (NULL when out of memory), freed by mapkv_compact_options_destroy;
// setters as for mapkv_options.
typedef struct mapkv_compact_options mapkv_compact_options;

MAPKV_C_API mapkv_compact_options* mapkv_compact_options_create(void);
MAPKV_C_API void mapkv_compact_options_destroy(mapkv_compact_options* opts);
// Called on the calling thread at the start of each phase and every few thousand keys while
// copying; `progress` is valid during the call only. It must not use the database. NULL: none.
MAPKV_C_API void mapkv_compact_options_set_progress(
    mapkv_compact_options* opts, void (*fn)(const mapkv_compact_progress* progress, void* user),
    void* user);
MAPKV_C_API void mapkv_compact_options_set_lock_timeout_ms(mapkv_compact_options* opts,
                                                           uint64_t ms);
MAPKV_C_API void mapkv_compact_options_set_batch_bytes(mapkv_compact_options* opts, uint64_t bytes);

// Compacts the database (or cache) at `src` (mapkv::Compact): into `dst` when it is neither NULL
// nor empty nor `src` itself (dst must not exist; src is read from a snapshot while others may go
// on using it, and left as it was), otherwise in place. `opts` NULL: the defaults; `result` NULL:
// not reported. Errors, each naming the file: MAPKV_NOT_FOUND (no src), MAPKV_FAILED_PRECONDITION
// (in place: src open elsewhere, this process included), MAPKV_ALREADY_EXISTS (dst exists),
// MAPKV_DATA_LOSS, MAPKV_RESOURCE_EXHAUSTED (disk full), and the OS's errors; on any error src is
// unchanged. Any thread.
MAPKV_C_API mapkv_status mapkv_compact(const char* src, const char* dst,
                                       const mapkv_compact_options* opts,
                                       mapkv_compact_result* result, char** errmsg);

// ---- The shared cache (cache.h) ----

typedef struct mapkv_cache mapkv_cache;

// Options of a cache, with the defaults of mapkv::CacheOptions. Created by
// mapkv_cache_options_create (NULL when out of memory), freed by mapkv_cache_options_destroy;
// setters as for mapkv_options.
typedef struct mapkv_cache_options mapkv_cache_options;

MAPKV_C_API mapkv_cache_options* mapkv_cache_options_create(void);
MAPKV_C_API void mapkv_cache_options_destroy(mapkv_cache_options* opts);
// CacheOptions::db: a copy of `db` as it is now (NULL: the defaults); its kind is ignored.
MAPKV_C_API void mapkv_cache_options_set_db_options(mapkv_cache_options* opts,
                                                    const mapkv_options* db);
// CacheOptions::capacity in bytes (0: none). Passed to the engine as it is; see cache.h for what
// it promises in the build you link.
MAPKV_C_API void mapkv_cache_options_set_capacity(mapkv_cache_options* opts, uint64_t bytes);
MAPKV_C_API void mapkv_cache_options_set_compute_timeout_ms(mapkv_cache_options* opts, uint64_t ms);
// CacheOptions::now_unix_ms: the clock expiry is measured by, called from any thread that uses
// the cache (tests inject one). NULL fn: the system clock.
MAPKV_C_API void mapkv_cache_options_set_clock(mapkv_cache_options* opts,
                                               int64_t (*now_unix_ms)(void* user), void* user);

// Opens or creates the cache at `path` (Cache::Open), with `opts` NULL meaning the defaults. On
// success *cache is a handle to close with mapkv_cache_close; on failure NULL. Errors: those of
// mapkv_open, and MAPKV_FAILED_PRECONDITION when the file is a database. Any thread.
MAPKV_C_API mapkv_status mapkv_cache_open(const char* path, const mapkv_cache_options* opts,
                                          mapkv_cache** cache, char** errmsg);

// Closes the handle (its statistics go to the file's totals) and frees it. NULL: nothing. Must
// not race with any other call on the handle.
MAPKV_C_API void mapkv_cache_close(mapkv_cache* cache);

// The path the cache was opened with, valid until mapkv_cache_close.
MAPKV_C_API const char* mapkv_cache_path(const mapkv_cache* cache);

// Copies the value of `key` into buf, as mapkv_get: MAPKV_NOT_FOUND when absent, expired or being
// computed. Every call counts as a Get in the statistics (a size query included). Any thread.
MAPKV_C_API mapkv_status mapkv_cache_get(mapkv_cache* cache, const void* key, size_t key_len,
                                         void* buf, size_t buf_len, size_t* value_len,
                                         char** errmsg);

// Stores `value`, to expire after ttl_ms milliseconds (0: never). Any thread.
MAPKV_C_API mapkv_status mapkv_cache_put(mapkv_cache* cache, const void* key, size_t key_len,
                                         const void* value, size_t value_len, uint64_t ttl_ms,
                                         char** errmsg);

// Deletes `key`; MAPKV_OK when absent. Any thread.
MAPKV_C_API mapkv_status mapkv_cache_delete(mapkv_cache* cache, const void* key, size_t key_len,
                                            char** errmsg);

// Where a compute function hands its value back: a buffer owned by the library, valid during the
// function only.
typedef struct mapkv_buf mapkv_buf;

// Copies `size` bytes of `data` into `buf` (a second call replaces the first).
// MAPKV_RESOURCE_EXHAUSTED when out of memory, MAPKV_INVALID_ARGUMENT for a NULL buf, or NULL data
// with size > 0.
MAPKV_C_API mapkv_status mapkv_buf_set(mapkv_buf* buf, const void* data, size_t size);

// Computes a missing value: sets it with mapkv_buf_set (not set: an empty value) and returns
// MAPKV_OK; or returns another code, which fails the compute (nothing is stored, and a waiting
// caller computes instead). It must not ask the same cache for the same key.
typedef mapkv_status (*mapkv_compute_fn)(void* user, mapkv_buf* out);

// The value of `key`, copied into buf as mapkv_get; when there is none, exactly one caller across
// every process and thread runs fn and stores its value for ttl_ms (0: never expires) while the
// others asking for the same key wait for it, up to compute_timeout (Cache::GetOrCompute). When
// fn fails, its code is returned with a message naming the key. When buf is too small
// (MAPKV_OUT_OF_RANGE), a computed value has been stored all the same: ask again with a larger
// buffer. MAPKV_DEADLINE_EXCEEDED when a wait passes compute_timeout, naming the computing pid;
// MAPKV_PERMISSION_DENIED on a read-only handle (MAPKV_FAILED_PRECONDITION on one of a user
// without write permission to the file). Any thread.
MAPKV_C_API mapkv_status mapkv_cache_get_or_compute(mapkv_cache* cache, const void* key,
                                                    size_t key_len, uint64_t ttl_ms,
                                                    mapkv_compute_fn fn, void* user, void* buf,
                                                    size_t buf_len, size_t* value_len,
                                                    char** errmsg);

// Adds `delta` to the decimal counter at `key` and sets *result (when not NULL) to the new value
// (Cache::Increment): a missing or expired counter starts from 0 and expires after ttl_ms (0:
// never); an existing one keeps its expiry. MAPKV_INVALID_ARGUMENT when the value is not a decimal
// integer, MAPKV_OUT_OF_RANGE when the sum overflows 64 bits; nothing changes then. Any thread.
MAPKV_C_API mapkv_status mapkv_cache_increment(mapkv_cache* cache, const void* key, size_t key_len,
                                               int64_t delta, uint64_t ttl_ms, int64_t* result,
                                               char** errmsg);

// Counts over the life of the file, summed over every process that has used it (CacheStats).
typedef struct mapkv_cache_stats {
  size_t size;  // set to sizeof(mapkv_cache_stats) before the call (see "ABI" above)
  uint64_t hits;
  uint64_t misses;
  uint64_t expirations;
  uint64_t computes;
  uint64_t waits;
  uint64_t takeovers;
  uint64_t evictions;
} mapkv_cache_stats;

// Fills *stats and, when db_stats is not NULL, *db_stats with the file underneath
// (Cache::GetStats, one snapshot). Fails only for bad arguments. Any thread.
MAPKV_C_API mapkv_status mapkv_cache_get_stats(mapkv_cache* cache, mapkv_cache_stats* stats,
                                               mapkv_stats* db_stats, char** errmsg);

// Flushes the cache's file to disk and records a checkpoint (Cache::Checkpoint). Any thread.
MAPKV_C_API mapkv_status mapkv_cache_checkpoint(mapkv_cache* cache, char** errmsg);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // MAPKV_C_H_
