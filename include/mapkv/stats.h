// A snapshot of a database's shape, as returned by DB::GetStats().
#ifndef MAPKV_STATS_H_
#define MAPKV_STATS_H_

#include <cstdint>

namespace mapkv {

struct Stats {
  uint64_t keys = 0;            // live keys
  uint64_t file_size = 0;       // bytes of the file now
  uint64_t max_file_size = 0;   // growth limit
  uint64_t log_bytes = 0;       // bytes in use: header plus every committed record and table
  uint64_t live_bytes = 0;      // bytes of the records that hold the current values
  uint64_t garbage_bytes = 0;   // overwritten and deleted records, old index tables, padding
  uint64_t index_capacity = 0;  // slots in the current index table
  uint64_t index_used = 0;      // slots holding a key or a deletion marker
  double index_load = 0;        // index_used / index_capacity
  uint64_t commits = 0;         // batches committed over the life of the file: transactions,
                                // plus the empty index of a new file and each index rebuild
  uint64_t checkpoints = 0;     // checkpoints completed over the life of the file
  int64_t last_checkpoint_unix_ms = 0;  // 0 if never
  uint32_t open_handles = 0;            // handles (in all processes) that have the file open now
  uint32_t format_version = 0;
  bool is_cache = false;        // a Cache's file (FileKind::kCache)
  uint64_t cache_capacity = 0;  // a cache's capacity (0: none; the file grows as a database does)
  uint64_t evictions = 0;       // entries a cache evicted for space, over the life of the file

  // What the first opener (the process that found the file open by no other) had to do.
  bool rebuilt_index = false;      // unclean machine stop: index rebuilt from the log
  uint64_t rebuild_records = 0;    // records scanned by that rebuild
  uint64_t rebuild_micros = 0;     // and its wall-clock cost
  uint64_t recovered_commits = 0;  // commits finished by recovery after a writer died

  // A database's compactions in place (online: started by commits or by `mapkv compact` beside
  // other handles; or offline) over its life, and the log bytes written over it, by commits and
  // by copies (bytes_relocated): those compactions', and in format version 5 the cleaner's.
  // write_amplification: bytes_written per byte that commits wrote, bytes_written / (bytes_written
  // - bytes_relocated) (0: nothing written). A copy under another name (`compact --output`,
  // `backup`) starts a new history. Zero in a cache.
  uint64_t compactions = 0;
  uint64_t bytes_written = 0;
  uint64_t bytes_relocated = 0;
  double write_amplification = 0;

  // Open snapshots (ReadTxn of a version 4 database), over every handle alive, and the log bytes
  // committed since the oldest of them began: what it keeps readable.
  uint64_t snapshots = 0;
  uint64_t snapshot_pinned_bytes = 0;

  // While an online compaction of the database runs, the pace it holds the commits of every
  // process to, together, in KiB of log a millisecond (a commit ahead of it sleeps: design.md,
  // "Online compaction"); 0 otherwise.
  uint64_t writers_paced_kib_per_ms = 0;

  // Bytes of disk the file takes: its allocated blocks, which holes do not take (in format
  // version 5 the cleaner gives the log's start back as holes, so the file's size, which only
  // grows, says little of its space). 0 where the file system does not say.
  uint64_t disk_bytes = 0;
};

// The open snapshots of one handle, as DB::Snapshots() lists them (`mdb_stat -r` lists LMDB's
// readers so).
struct SnapshotInfo {
  uint32_t pid = 0;           // the process that holds them
  uint64_t snapshots = 0;     // how many that handle holds
  int64_t since_unix_ms = 0;  // when the oldest began
  uint64_t tail = 0;          // the committed end of the log the oldest reads at
  uint64_t pinned_bytes = 0;  // log bytes committed since then
};

}  // namespace mapkv

#endif  // MAPKV_STATS_H_
