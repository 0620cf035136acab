// The fields of mapkv::Stats and mapkv::CacheStats (include/mapkv/stats.h, cache.h) as X-macro
// lists, so that every conversion into another shape (the C API's structs, a binding's dict, the
// tool's JSON) is written once, as X(field), and a field added to the struct is added here alone.
//
//   #define COPY(field) out.field = in.field;
//   MAPKV_STATS_FIELDS(COPY)
#ifndef MAPKV_STATS_FIELDS_H_
#define MAPKV_STATS_FIELDS_H_

#define MAPKV_STATS_FIELDS(X) \
  X(keys)                     \
  X(file_size)                \
  X(max_file_size)            \
  X(log_bytes)                \
  X(live_bytes)               \
  X(garbage_bytes)            \
  X(index_capacity)           \
  X(index_used)               \
  X(index_load)               \
  X(commits)                  \
  X(checkpoints)              \
  X(last_checkpoint_unix_ms)  \
  X(open_handles)             \
  X(format_version)           \
  X(is_cache)                 \
  X(cache_capacity)           \
  X(evictions)                \
  X(rebuilt_index)            \
  X(rebuild_records)          \
  X(rebuild_micros)           \
  X(recovered_commits)        \
  X(snapshots)                \
  X(snapshot_pinned_bytes)    \
  X(compactions)              \
  X(bytes_written)            \
  X(bytes_relocated)          \
  X(write_amplification)      \
  X(writers_paced_kib_per_ms) \
  X(disk_bytes)

// CacheStats less its `db` (a Stats: MAPKV_STATS_FIELDS).
#define MAPKV_CACHE_STATS_FIELDS(X) \
  X(hits)                           \
  X(misses)                         \
  X(expirations)                    \
  X(computes)                       \
  X(waits)                          \
  X(takeovers)                      \
  X(evictions)

#endif  // MAPKV_STATS_FIELDS_H_
