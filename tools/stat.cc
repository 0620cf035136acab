// `mapkv stat`: the shape of a database, for people (aligned text) or programs (--json).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "command.h"
#include "common.h"
#include "mapkv/cache.h"
#include "records.h"
#include "src/db_impl.h"
#include "src/format.h"
#include "src/platform/process.h"

namespace mapkv::tools {
namespace {

struct StatArgs {
  std::string db;
  bool json = false;
};

// A handle that has the file open, from its process slot (src/format.h: ProcessSlot).
struct Holder {
  uint32_t pid;
  int64_t opened_unix_ms;
  uint32_t read_locks;
};

// The live handles of other processes, as mdb_stat -r lists LMDB's readers: slots whose owner
// holds its slot lock (a dead process's slot is not listed). Only reads the slots and asks the
// kernel about the locks; changes nothing.
std::vector<Holder> ListHolders(DB& db) {
  std::vector<Holder> holders;
  internal::RwLock& lock = internal::ImplOf(db).rwlock();
  const uint32_t self = internal::CurrentPid();
  for (uint32_t i = 0; i < internal::kMaxSlots; ++i) {
    const internal::ProcessSlot& slot = lock.slot_at(i);
    const uint32_t pid = slot.pid.load();
    if (pid == 0 || pid == self || !lock.SlotAlive(i)) continue;
    holders.push_back({pid, slot.opened_unix_ms.load(), slot.readers.load()});
  }
  return holders;
}

std::string Percent(uint64_t part, uint64_t whole) {
  return whole == 0 ? "0.0%" : absl::StrFormat("%.1f%%", 100.0 * part / whole);
}

int RunStat(const StatArgs& args) {
  absl::StatusOr<std::unique_ptr<DB>> db = OpenDatabase(args.db, OpenMode::kRead, FileKind::kAny);
  if (!db.ok()) return ReportReadOpenError("stat", args.db, db.status());
  Stats s = (*db)->GetStats();
  const std::vector<Holder> holders = ListHolders(**db);
  // Format version 4 only: elsewhere a ReadTxn holds the shared lock (the holders' read locks).
  const bool has_snapshots = internal::ImplOf(**db).snapshots();
  const bool copies_snapshots = internal::ImplOf(**db).copies_snapshots();
  const std::vector<SnapshotInfo> snapshots = (*db)->Snapshots();
  // The totals of this list (as Stats sums them), not of another look at the slots.
  uint64_t snapshot_count = 0;
  uint64_t snapshot_pinned = 0;
  for (const SnapshotInfo& h : snapshots) {
    snapshot_count += h.snapshots;
    snapshot_pinned = std::max(snapshot_pinned, h.pinned_bytes);
  }
  std::optional<CacheStats> cache;
  if (s.is_cache) {
    // A cache's statistics come through a Cache handle.
    db->reset();
    CacheOptions options;
    options.db.create_if_missing = false;
    options.db.read_only = true;
    absl::StatusOr<std::unique_ptr<Cache>> opened = Cache::Open(args.db, options);
    if (!opened.ok()) return ReportReadOpenError("stat", args.db, opened.status());
    cache = (*opened)->GetStats();
    s = cache->db;
  }
  // This command's own handle is one of them.
  const uint32_t others = s.open_handles > 0 ? s.open_handles - 1 : 0;
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  const double age_s =
      s.last_checkpoint_unix_ms == 0 ? -1 : (now_ms - s.last_checkpoint_unix_ms) / 1000.0;
  const double garbage_ratio =
      s.log_bytes == 0 ? 0 : static_cast<double>(s.garbage_bytes) / s.log_bytes;

  std::string out;
  if (args.json) {
    absl::StrAppend(&out, "{\"path\":", JsonString(args.db),
                    ",\"format_version\":", s.format_version,
                    ",\"kind\":", s.is_cache ? "\"cache\"" : "\"database\"", ",\"keys\":", s.keys,
                    ",\"file_size\":", s.file_size, ",\"max_file_size\":", s.max_file_size,
                    ",\"disk_bytes\":", s.disk_bytes, ",\"log_bytes\":", s.log_bytes,
                    ",\"live_bytes\":", s.live_bytes, ",\"garbage_bytes\":", s.garbage_bytes);
    absl::StrAppendFormat(&out, ",\"garbage_ratio\":%.4f", garbage_ratio);
    absl::StrAppend(&out, ",\"index_capacity\":", s.index_capacity,
                    ",\"index_used\":", s.index_used);
    absl::StrAppendFormat(&out, ",\"index_load\":%.4f", s.index_load);
    absl::StrAppend(&out, ",\"checkpoint_seq\":", s.checkpoints,
                    ",\"last_checkpoint_unix_ms\":", s.last_checkpoint_unix_ms);
    if (age_s >= 0) {
      absl::StrAppendFormat(&out, ",\"checkpoint_age_s\":%.3f", age_s);
    } else {
      absl::StrAppend(&out, ",\"checkpoint_age_s\":null");
    }
    absl::StrAppend(&out, ",\"open_handles\":", others, ",\"handles\":[");
    for (size_t i = 0; i < holders.size(); ++i) {
      absl::StrAppend(&out, i == 0 ? "" : ",", "{\"pid\":", holders[i].pid,
                      ",\"opened_unix_ms\":", holders[i].opened_unix_ms,
                      ",\"read_locks\":", holders[i].read_locks, "}");
    }
    absl::StrAppend(&out, "],\"snapshots\":", snapshot_count,
                    ",\"snapshot_pinned_bytes\":", snapshot_pinned, ",\"snapshot_holders\":[");
    for (size_t i = 0; i < snapshots.size(); ++i) {
      const SnapshotInfo& h = snapshots[i];
      absl::StrAppend(&out, i == 0 ? "" : ",", "{\"pid\":", h.pid, ",\"snapshots\":", h.snapshots,
                      ",\"since_unix_ms\":", h.since_unix_ms);
      absl::StrAppendFormat(&out, ",\"age_s\":%.3f",
                            std::max<int64_t>(now_ms - h.since_unix_ms, 0) / 1000.0);
      absl::StrAppend(&out, ",\"tail\":", h.tail, ",\"pinned_bytes\":", h.pinned_bytes, "}");
    }
    absl::StrAppend(&out, "],\"commits\":", s.commits,
                    ",\"rebuilt_index\":", s.rebuilt_index ? "true" : "false",
                    ",\"rebuild_records\":", s.rebuild_records,
                    ",\"rebuild_micros\":", s.rebuild_micros,
                    ",\"recovered_commits\":", s.recovered_commits);
    if (!s.is_cache) {
      absl::StrAppend(&out, ",\"compactions\":", s.compactions,
                      ",\"bytes_written\":", s.bytes_written,
                      ",\"bytes_relocated\":", s.bytes_relocated);
      absl::StrAppendFormat(&out, ",\"write_amplification\":%.4f", s.write_amplification);
      absl::StrAppend(&out, ",\"writers_paced_kib_per_ms\":", s.writers_paced_kib_per_ms);
    }
    if (cache) {
      absl::StrAppend(&out, ",\"cache\":{\"hits\":", cache->hits, ",\"misses\":", cache->misses,
                      ",\"expirations\":", cache->expirations, ",\"computes\":", cache->computes,
                      ",\"waits\":", cache->waits, ",\"takeovers\":", cache->takeovers,
                      ",\"evictions\":", cache->evictions, ",\"capacity\":", s.cache_capacity, "}");
    }
    absl::StrAppend(&out, "}\n");
  } else {
    auto row = [&out](std::string_view name, const std::string& value) {
      absl::StrAppendFormat(&out, "%-16s %s\n", std::string(name), value);
    };
    row("file", args.db);
    row("format version", absl::StrCat(s.format_version, s.is_cache ? " (a cache)" : ""));
    if (cache) {
      row("cache",
          absl::StrCat(Plural(cache->hits, "hit", "hits"), ", ",
                       Plural(cache->misses, "miss", "misses"), " (",
                       Percent(cache->hits, cache->hits + cache->misses), " hit rate), ",
                       Commas(cache->expirations), " expired, ", Commas(cache->computes),
                       " computed, ", Commas(cache->waits), " waited, ", Commas(cache->takeovers),
                       " taken over, ", Commas(cache->evictions), " evicted"));
    }
    row("keys", Commas(s.keys));
    row("file size", absl::StrCat(Bytes(s.file_size), " (", Commas(s.file_size), " bytes), ",
                                  s.cache_capacity != 0
                                      ? absl::StrCat("capacity ", Bytes(s.cache_capacity),
                                                     " (a ring: the oldest entries make room)")
                                      : absl::StrCat("growth limit ", Bytes(s.max_file_size))));
    if (s.disk_bytes != 0) {
      row("on disk",
          absl::StrCat(
              Bytes(s.disk_bytes), " allocated",
              s.format_version == internal::kCleanFormatVersion && s.disk_bytes < s.file_size
                  ? " (the file's size counts the holes below the log's start, given back "
                    "by the cleaner)"
                  : ""));
    }
    row("log", absl::StrCat(Bytes(s.log_bytes), " in use (header, records, index)"));
    row("live", absl::StrCat(Bytes(s.live_bytes), " (", Percent(s.live_bytes, s.log_bytes),
                             " of the log): the current records"));
    row("garbage", absl::StrCat(Bytes(s.garbage_bytes), " (", Percent(s.garbage_bytes, s.log_bytes),
                                " of the log): overwritten and deleted records, old index tables",
                                s.garbage_bytes == 0    ? ""
                                : s.cache_capacity != 0 ? "; the ring reuses it as it turns"
                                : s.format_version == internal::kCleanFormatVersion
                                    ? "; the writer's cleaner gives it back once it passes "
                                      "Options::compact_ratio of the live data, or `mapkv "
                                      "compact` now"
                                : internal::IsChainedVersion(s.format_version)
                                    ? "; reclaimed online once it passes Options::compact_ratio "
                                      "of the live data, or now by `mapkv compact`"
                                    : "; `mapkv compact` reclaims it"));
    if (!s.is_cache) {
      row("compactions",
          absl::StrCat(
              Commas(s.compactions), " in place over the database's life; ", Bytes(s.bytes_written),
              " written to its logs, ", Bytes(s.bytes_relocated),
              s.format_version == internal::kCleanFormatVersion
                  ? " of it copies by the cleaner and compactions"
                  : " of it copies by compactions",
              s.write_amplification == 0
                  ? ""
                  : absl::StrFormat(" (write amplification %.2f)", s.write_amplification),
              s.writers_paced_kib_per_ms == 0
                  ? ""
                  : absl::StrCat("; one is running, and holds commits to ",
                                 Commas(s.writers_paced_kib_per_ms), " KiB of log a millisecond")));
    }
    row("index", absl::StrFormat("%s slots, %s used, load %.2f (%s past 0.75)",
                                 Commas(s.index_capacity), Commas(s.index_used), s.index_load,
                                 s.cache_capacity != 0 ? "rehashes" : "grows"));
    if (s.last_checkpoint_unix_ms == 0) {
      row("checkpoint", "never");
    } else {
      row("checkpoint",
          absl::StrCat("#", s.checkpoints, " at ",
                       absl::FormatTime("%Y-%m-%d %H:%M:%S UTC",
                                        absl::FromUnixMillis(s.last_checkpoint_unix_ms),
                                        absl::UTCTimeZone()),
                       ", ", absl::StrFormat("%.0f", age_s), " s ago"));
    }
    row("open by", absl::StrCat(Plural(others, "other handle", "other handles"),
                                " (processes that have it open, besides this one)"));
    for (const Holder& h : holders) {
      row("", absl::StrCat(
                  "pid ", h.pid, ", opened ",
                  absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixMillis(h.opened_unix_ms),
                                   absl::UTCTimeZone()),
                  h.read_locks > 0
                      ? absl::StrCat(", ", Plural(h.read_locks, "read lock", "read locks"), " held")
                      : ""));
    }
    if (copies_snapshots) {
      row("snapshots",
          "not listed: a read of a cache (dump, backup, ReadTxn) copies its entries "
          "and holds nothing");
    } else if (!has_snapshots) {
      row("snapshots", absl::StrCat("none: in format version ", s.format_version,
                                    " a read holds the shared lock instead (read locks above)"));
    } else if (snapshots.empty()) {
      row("snapshots", "none open");
    } else {
      row("snapshots", absl::StrCat(Commas(snapshot_count),
                                    " open (dump, backup, check, ReadTxn: reads as of their "
                                    "start); the oldest is ",
                                    Bytes(snapshot_pinned), " of commits behind"));
      for (const SnapshotInfo& h : snapshots) {
        row("",
            absl::StrCat(
                "pid ", h.pid, ": ", Plural(h.snapshots, "snapshot", "snapshots"), ", the oldest ",
                Seconds(std::max<int64_t>(now_ms - h.since_unix_ms, 0) / 1000.0), " old (since ",
                absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixMillis(h.since_unix_ms),
                                 absl::UTCTimeZone()),
                "), ", Bytes(h.pinned_bytes), " committed since"));
      }
    }
    row("commits", Commas(s.commits));
    if (s.rebuilt_index || s.recovered_commits > 0) {
      row("last first open",
          absl::StrCat(s.rebuilt_index
                           ? absl::StrCat("rebuilt the index (", Commas(s.rebuild_records),
                                          " records, ", s.rebuild_micros / 1000, " ms)")
                           : "no index rebuild",
                       ", ", s.recovered_commits, " commits recovered"));
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  if (std::fflush(stdout) != 0) {
    return ReportError("stat", About("stdout", absl::StatusCode::kDataLoss, "write error"),
                       kExitError);
  }
  return kExitOk;
}

}  // namespace

Runner SetupStat(CLI::App* app) {
  auto args = std::make_shared<StatArgs>();
  app->description(
      "Shows the shape of a database: keys, file size, live and garbage bytes, the index, the "
      "last checkpoint, how many other handles have the file open and the snapshots they read, "
      "the format version. Opens it read-only; safe while other processes use it.");
  app->add_option("DB", args->db, "the database file")->type_name("")->required();
  app->add_flag("--json", args->json, "one JSON object on one line, for programs");
  app->footer(R"(
Fields (JSON names in brackets):
  keys [keys]                 live keys
  file size [file_size]       bytes of the file; [max_file_size] its growth limit
  on disk [disk_bytes]        bytes of disk its blocks take (0: the file system does not say);
                              in format version 5, far below the file size: the cleaner gives
                              the log's start back as holes
  log [log_bytes]             bytes in use: header, every record and index table written
  live [live_bytes]           bytes of the records that hold the current values
  garbage [garbage_bytes, garbage_ratio]
                              overwritten and deleted records and old index tables, and their
                              share of the log: what `mapkv compact` would reclaim (commits
                              compact online once it passes Options::compact_ratio)
  compactions [compactions, bytes_written, bytes_relocated, write_amplification,
               writers_paced_kib_per_ms]
                              a database's compactions in place over its life, the log bytes
                              written over it (commits', and copies by the compactions and in
                              format version 5 the cleaner), those of the copies, and bytes
                              written per byte that commits wrote; while
                              one runs online, the pace it holds commits to (0: none)
  index [index_capacity, index_used, index_load]
                              slots, slots holding a key or a deletion marker, and their ratio
  checkpoint [checkpoint_seq, last_checkpoint_unix_ms, checkpoint_age_s]
                              the last checkpoint: everything before it survives a power cut
  open by [open_handles]      other handles that have the file open now (not this command's)
  [handles]                   each of them: [pid], when it opened the file [opened_unix_ms],
                              and the read locks it holds now [read_locks]
  snapshots [snapshots, snapshot_pinned_bytes]
                              open snapshots (ReadTxn of a format version 4 or 5 database,
                              `dump`, `backup`, `check`), in every process, and the log bytes
                              committed since the oldest began; they hold no lock. A cache's
                              reads copy its entries, hold nothing and are not listed
  [snapshot_holders]          per handle that holds some: [pid], how many [snapshots], when the
                              oldest began [since_unix_ms, age_s], the committed end it reads at
                              [tail] and the bytes committed since [pinned_bytes], as
                              `mdb_stat -r` lists LMDB's readers
  [commits, rebuilt_index, rebuild_records, rebuild_micros, recovered_commits]
                              commits over the file's life; what the first opener had to repair

Exit status: 0 shown, 2 bad usage, 3 the file needs recovery (left as it is), 4 error (no such
file, not a mapkv file, ...).

Examples:
  mapkv stat /var/lib/app/cache.mapkv
  mapkv stat --json cache.mapkv | jq .garbage_ratio)");
  return [args] { return RunStat(*args); };
}

}  // namespace mapkv::tools
