// Seeds for the open fuzzer: small valid databases built from data/iso_codes.tsv with the library
// as it is now, encoded as harness inputs (open_harness.h). Built at CI time (make_seed_corpus)
// and by the regression test rather than committed, so they always match the current format.
//
// The databases cover what Open and the readers meet in real files: single puts, overwrites,
// deletes (of present and absent keys), a multi-key transaction with an overwrite and a delete of
// its own writes, an aborted transaction's bytes, an index that grew (old tables stay in the log),
// a checkpoint with and without a clean close, a commit left half applied by a dead writer
// (applied tail < committed tail), and a small cache with a capacity (its log a ring). Each is
// encoded in several modes: this boot (Open trusts the state, replays), another boot (Open
// rebuilds the index unless the file was closed cleanly), with a write transaction, read-only
// without checksum verification (this boot, and another boot: a file that needs a rebuild is
// refused), and read-only without write permission (detached).
//
// MakeReproducers builds the committed reproducers of tests/fuzz/regressions/ that are not
// minimised fuzzer finds but staged damage (make_seed_corpus --reproducers writes them).
#ifndef MAPKV_TESTS_FUZZ_SEED_CORPUS_H_
#define MAPKV_TESTS_FUZZ_SEED_CORPUS_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "mapkv/cache.h"
#include "mapkv/db.h"
#include "open_harness.h"
#include "src/format.h"
#include "src/hash.h"
#include "src/log.h"
#include "src/status_macros.h"

namespace mapkv::fuzz {

struct Seed {
  std::string name;           // file name in the corpus: <database>.<mode>
  std::string input;          // the harness input
  bool clean = false;         // closed cleanly after a checkpoint: another boot trusts its index
  bool half_applied = false;  // a commit left half applied: this boot replays it
  std::vector<std::pair<std::string, std::string>> live;  // what it holds, sorted
};

namespace seed_detail {

// The database under construction and what it must hold.
struct Builder {
  std::unique_ptr<DB> db;
  std::map<std::string, std::string> live;

  absl::Status Put(std::string_view key, std::string_view value) {
    MAPKV_RETURN_IF_ERROR(db->Put(key, value));
    live[std::string(key)] = std::string(value);
    return absl::OkStatus();
  }
  absl::Status Delete(std::string_view key) {
    MAPKV_RETURN_IF_ERROR(db->Delete(key));
    live.erase(std::string(key));
    return absl::OkStatus();
  }
  uint64_t Tail() { return db->GetStats().log_bytes; }
};

inline absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ReadTsv(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  std::vector<std::pair<std::string, std::string>> records;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t tab = line.find('\t');
    if (tab == std::string::npos || tab == 0) continue;
    // Short values keep the seeds (and so the fuzzer's inputs) small.
    records.emplace_back(line.substr(0, tab), line.substr(tab + 1, 32));
  }
  if (records.size() < 100) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": only ", records.size(), " records"));
  }
  return records;
}

inline uint64_t StateWord(const std::string& file, uint64_t field_offset) {
  uint64_t v = 0;
  std::memcpy(&v, file.data() + internal::kSharedStateOffset + field_offset, sizeof(v));
  return v;
}
inline void SetStateWord(std::string& file, uint64_t field_offset, uint64_t v) {
  std::memcpy(file.data() + internal::kSharedStateOffset + field_offset, &v, sizeof(v));
}
inline void SetStateClean(std::string& file, uint32_t clean) {
  std::memcpy(file.data() + internal::kSharedStateOffset + offsetof(internal::SharedState, clean),
              &clean, sizeof(clean));
}

// The bytes of the closed file at `path`, which is then removed.
inline absl::StatusOr<std::string> TakeFile(const std::string& path) {
  std::string file;
  {
    std::ifstream in(path, std::ios::binary);
    file.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }  // closed before the remove: Windows deletes no open file
  std::filesystem::remove(path);
  if (file.size() < internal::kHeaderSize) {
    return absl::InternalError(absl::StrCat(path, ": a file of ", file.size(), " bytes"));
  }
  return file;
}

}  // namespace seed_detail

// Builds the seed databases in `work_dir` (removed again) from the TSV file at `tsv_path`.
inline absl::StatusOr<std::vector<Seed>> MakeSeeds(const std::string& tsv_path,
                                                   const std::string& work_dir) {
  using seed_detail::Builder;
  MAPKV_ASSIGN_OR_RETURN(auto records, seed_detail::ReadTsv(tsv_path));
  std::vector<Seed> seeds;
  const std::string path = work_dir + "/seed.mapkv";

  // Adds the seeds of closed file `file`, which holds `live`, one per mode.
  auto encode = [&](const std::string& name, std::string& file,
                    const std::map<std::string, std::string>& live) {
    const uint64_t tail =
        seed_detail::StateWord(file, offsetof(internal::SharedState, committed_tail));
    const bool clean = seed_detail::StateWord(file, offsetof(internal::SharedState, clean)) & 1;
    const bool half_applied =
        seed_detail::StateWord(file, offsetof(internal::SharedState, applied_tail)) < tail;
    // Keep the bytes past the committed tail that are not zero (an aborted transaction's).
    uint64_t end = file.find_last_not_of('\0') + 1;
    end = std::min<uint64_t>(std::max(tail, internal::Align8(end)), file.size());
    // The input's file ends at the next 64 KiB past `end` (BuildFile): its shared state says so,
    // as the engine's would, so that a reader that trusts the state (this boot, or detached)
    // reads the file as it is.
    const uint64_t size =
        (end + internal::kSizeGranule - 1) / internal::kSizeGranule * internal::kSizeGranule;
    std::memcpy(
        file.data() + internal::kSharedStateOffset + offsetof(internal::SharedState, file_size),
        &size, sizeof(size));
    const std::pair<const char*, uint8_t> modes[] = {
        {"same_boot", kModeFixAll | kModeSameBoot},
        {"other_boot", kModeFixAll},
        {"write", kModeFixAll | kModeSameBoot | kModeWrite},
        {"read_only", kModeFixAll | kModeSameBoot | kModeReadOnly | kModeNoVerifyChecksums},
        {"read_only_other_boot", kModeFixAll | kModeReadOnly},
        {"detached", kModeFixAll | kModeSameBoot | kModeDetached},
    };
    for (const auto& [mode_name, mode] : modes) {
      Seed seed;
      seed.name = absl::StrCat(name, ".", mode_name);
      seed.input = EncodeCompact(file, end, mode);
      seed.clean = clean;
      seed.half_applied = half_applied;
      seed.live.assign(live.begin(), live.end());
      seeds.push_back(std::move(seed));
    }
    if (seeds.size() == std::size(modes)) {
      // One raw input too: the header page alone (a truncated file).
      Seed raw;
      raw.name = "raw.header_page";
      raw.input =
          std::string(1, static_cast<char>(kModeRaw)) + file.substr(0, internal::kHeaderPageSize);
      seeds.push_back(std::move(raw));
    }
  };
  // Builds one database with `fill`; `edit` may change the closed file's bytes.
  auto build = [&](const std::string& name, auto&& fill, auto&& edit) -> absl::Status {
    std::filesystem::remove(path);
    Builder b;
    Options options;
    options.initial_index_slots = 64;  // small tables, and growth after 48 keys
    options.max_file_size = 64ull << 20;
    MAPKV_ASSIGN_OR_RETURN(b.db, DB::Open(path, options));
    MAPKV_RETURN_IF_ERROR(fill(b));
    MAPKV_RETURN_IF_ERROR(b.db->Verify());
    b.db.reset();  // the last handle out marks a checkpointed file clean
    MAPKV_ASSIGN_OR_RETURN(std::string file, seed_detail::TakeFile(path));
    edit(file);
    encode(name, file, b.live);
    return absl::OkStatus();
  };
  auto no_edit = [](std::string&) {};
  size_t next = 0;  // records are used in order, each database its own
  auto key = [&](size_t i) -> const std::string& { return records[i % records.size()].first; };
  auto value = [&](size_t i) -> const std::string& { return records[i % records.size()].second; };

  // Single puts, overwrites, deletes; no checkpoint.
  MAPKV_RETURN_IF_ERROR(build(
      "puts",
      [&](Builder& b) -> absl::Status {
        const size_t first = next;
        for (int i = 0; i < 24; ++i, ++next) MAPKV_RETURN_IF_ERROR(b.Put(key(next), value(next)));
        for (size_t i = first; i < first + 24; i += 4) {
          MAPKV_RETURN_IF_ERROR(b.Put(key(i), absl::StrCat(value(i + 1), "|v2")));
        }
        for (size_t i = first + 1; i < first + 24; i += 6) MAPKV_RETURN_IF_ERROR(b.Delete(key(i)));
        return b.Delete("absent/key");
      },
      no_edit));

  // A multi-key transaction, an aborted one, a checkpoint and a clean close.
  MAPKV_RETURN_IF_ERROR(build(
      "txn_checkpoint",
      [&](Builder& b) -> absl::Status {
        const size_t first = next;
        for (int i = 0; i < 12; ++i, ++next) MAPKV_RETURN_IF_ERROR(b.Put(key(next), value(next)));
        {
          MAPKV_ASSIGN_OR_RETURN(WriteTxn txn, b.db->BeginWrite());
          std::map<std::string, std::string> after = b.live;
          for (int i = 0; i < 8; ++i, ++next) {
            MAPKV_RETURN_IF_ERROR(txn.Put(key(next), value(next)));
            after[key(next)] = value(next);
          }
          MAPKV_RETURN_IF_ERROR(txn.Put(key(next - 1), "rewritten in the same transaction"));
          after[key(next - 1)] = "rewritten in the same transaction";
          MAPKV_RETURN_IF_ERROR(txn.Delete(key(next - 2)));
          after.erase(key(next - 2));
          MAPKV_RETURN_IF_ERROR(txn.Delete(key(first)));
          MAPKV_RETURN_IF_ERROR(txn.Put(key(first), "deleted, then put again"));
          after[key(first)] = "deleted, then put again";
          MAPKV_RETURN_IF_ERROR(txn.Delete(key(first + 1)));
          after.erase(key(first + 1));
          MAPKV_RETURN_IF_ERROR(txn.Commit());
          b.live = std::move(after);
        }
        {
          MAPKV_ASSIGN_OR_RETURN(WriteTxn txn, b.db->BeginWrite());
          for (int i = 0; i < 3; ++i) MAPKV_RETURN_IF_ERROR(txn.Put(key(next + i), "aborted"));
          txn.Abort();
        }
        return b.db->Checkpoint();
      },
      no_edit));

  // The index grows from 64 to 128 slots; a checkpoint in the middle, commits after it.
  MAPKV_RETURN_IF_ERROR(build(
      "growth",
      [&](Builder& b) -> absl::Status {
        const size_t first = next;
        for (int i = 0; i < 30; ++i, ++next) {
          MAPKV_RETURN_IF_ERROR(b.Put(key(next), value(next).substr(0, 8)));
        }
        MAPKV_RETURN_IF_ERROR(b.db->Checkpoint());
        for (int i = 0; i < 30; ++i, ++next) {
          MAPKV_RETURN_IF_ERROR(b.Put(key(next), value(next).substr(0, 8)));
        }
        for (size_t i = first; i < first + 60; i += 12) MAPKV_RETURN_IF_ERROR(b.Delete(key(i)));
        if (b.db->GetStats().index_capacity != 128) {
          return absl::InternalError("growth: the index did not grow to 128 slots");
        }
        return absl::OkStatus();
      },
      no_edit));

  // A writer that died after its commit point: the last batch is committed but not applied.
  uint64_t last_batch = 0;
  MAPKV_RETURN_IF_ERROR(build(
      "replay",
      [&](Builder& b) -> absl::Status {
        for (int i = 0; i < 10; ++i, ++next) MAPKV_RETURN_IF_ERROR(b.Put(key(next), value(next)));
        last_batch = b.Tail();
        MAPKV_ASSIGN_OR_RETURN(WriteTxn txn, b.db->BeginWrite());
        for (int i = 0; i < 3; ++i, ++next) {
          MAPKV_RETURN_IF_ERROR(txn.Put(key(next), value(next)));
          b.live[key(next)] = value(next);
        }
        MAPKV_RETURN_IF_ERROR(txn.Put(key(next - 10), "overwritten by the replayed batch"));
        b.live[key(next - 10)] = "overwritten by the replayed batch";
        MAPKV_RETURN_IF_ERROR(txn.Delete(key(next - 9)));
        b.live.erase(key(next - 9));
        return txn.Commit();
      },
      [&](std::string& file) {
        // The index already holds the batch; replaying it again must give the same index.
        std::memcpy(file.data() + internal::kSharedStateOffset +
                        offsetof(internal::SharedState, applied_tail),
                    &last_batch, sizeof(last_batch));
      }));

  // A cache with a capacity (format version 3), as small as the format allows: index tables of
  // 64 slots and a ring of 126 KiB. The library makes none that small (its tables take an eighth
  // of a capacity of at least 1 MiB: 256 KiB, past the fuzzer's input size), so the empty cache
  // is written here over one the library made, as DBImpl::Initialize writes it; the entries and
  // the clean close are the library's.
  {
    namespace in = ::mapkv::internal;
    std::filesystem::remove(path);
    CacheOptions options;
    options.capacity = in::kMinFileSize;
    MAPKV_RETURN_IF_ERROR(Cache::Open(path, options).status());
    MAPKV_ASSIGN_OR_RETURN(std::string file, seed_detail::TakeFile(path));
    constexpr uint32_t kBits = 6;
    const uint64_t table = in::RingTableSize(kBits);
    const uint64_t ring_start = in::kHeaderSize + 2 * table;
    const uint64_t capacity =
        (ring_start + 2 * in::kSizeGranule - 1) / in::kSizeGranule * in::kSizeGranule;
    file.assign(file, 0, in::kHeaderSize);
    file.resize(capacity, '\0');
    std::memset(file.data() + in::kCheckpointOffset[0], 0, 2 * sizeof(in::CheckpointRecord));
    detail::StoreU64(file, offsetof(in::FileHeader, max_file_size), capacity);
    detail::StoreU64(file, offsetof(in::FileHeader, ring_start), ring_start);
    detail::StoreU64(file, offsetof(in::FileHeader, checksum),
                     in::Hash64(file.data(), offsetof(in::FileHeader, checksum), 0));
    const uint64_t salt = detail::LoadU64(file, offsetof(in::FileHeader, salt));
    in::WriteIndexHeader(file.data(), in::kHeaderSize, salt, in::kLast, 1, kBits);
    in::WriteIndexHeader(file.data(), in::kHeaderSize + table, salt, in::kLast, 1, kBits);
    for (auto [field, value] : {std::pair{offsetof(in::SharedState, committed_tail), ring_start},
                                {offsetof(in::SharedState, applied_tail), ring_start},
                                {offsetof(in::SharedState, synced_tail), ring_start},
                                {offsetof(in::SharedState, head), ring_start},
                                {offsetof(in::SharedState, index_record), in::kHeaderSize},
                                {offsetof(in::SharedState, commits), uint64_t{1}},
                                {offsetof(in::SharedState, file_size), capacity}}) {
      seed_detail::SetStateWord(file, field, value);
    }
    for (size_t field :
         {offsetof(in::SharedState, count), offsetof(in::SharedState, used),
          offsetof(in::SharedState, live_bytes), offsetof(in::SharedState, evictions)}) {
      seed_detail::SetStateWord(file, field, 0);
    }
    seed_detail::SetStateClean(file, 0);
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(file.data(), static_cast<std::streamsize>(file.size()));
      if (!out.good()) return absl::InternalError(absl::StrCat(path, ": cannot write"));
    }
    std::map<std::string, std::string> live;
    {
      MAPKV_ASSIGN_OR_RETURN(std::unique_ptr<Cache> cache, Cache::Open(path, options));
      for (int i = 0; i < 16; ++i, ++next) {
        MAPKV_RETURN_IF_ERROR(cache->Put(key(next), value(next)));
      }
      MAPKV_RETURN_IF_ERROR(cache->Checkpoint());
    }
    {
      // What the entries are to the harness, which reads them through DB: values behind their
      // envelopes.
      Options db_options;
      db_options.kind = FileKind::kCache;
      db_options.create_if_missing = false;
      MAPKV_ASSIGN_OR_RETURN(std::unique_ptr<DB> db, DB::Open(path, db_options));
      MAPKV_RETURN_IF_ERROR(db->Verify());
      if (db->GetStats().cache_capacity != capacity) {
        return absl::InternalError("ring: the cache has not the capacity written");
      }
      MAPKV_ASSIGN_OR_RETURN(ReadTxn txn, db->BeginRead());
      MAPKV_RETURN_IF_ERROR(txn.ForEach([&](std::string_view k, std::string_view v) {
        live.emplace(k, v);
        return true;
      }));
    }
    if (live.size() != 16) return absl::InternalError("ring: not 16 entries");
    MAPKV_ASSIGN_OR_RETURN(file, seed_detail::TakeFile(path));
    encode("ring", file, live);
  }
  return seeds;
}

// The staged reproducers of tests/fuzz/regressions/ (README there), built in `work_dir` (removed
// again) from the TSV file at `tsv_path`: damage written over files the library makes now. Their
// names are the file names; each input sets its boot mode bit, so it behaves the same on every
// machine.
inline absl::StatusOr<std::vector<Seed>> MakeReproducers(const std::string& tsv_path,
                                                         const std::string& work_dir) {
  namespace in = ::mapkv::internal;
  MAPKV_ASSIGN_OR_RETURN(auto records, seed_detail::ReadTsv(tsv_path));
  std::vector<Seed> out;
  auto add = [&](std::string name, std::string input) {
    Seed seed;
    seed.name = std::move(name);
    seed.input = std::move(input);
    out.push_back(std::move(seed));
  };
  const std::string path = work_dir + "/reproducer.mapkv";
  std::filesystem::remove(path);
  // The log of the ring inputs: the header of the first index table alone, so that the file
  // ends at 128 KiB.
  const uint64_t table_header_end = in::IndexSlotsOffset(in::kHeaderSize);

  // A cache with a capacity (format version 3) of 1 MiB, whose tables of 2^13 slots put the
  // ring at 320 KiB, not closed cleanly and seen from another boot: Open resets the ring.
  {
    CacheOptions options;
    options.capacity = in::kMinFileSize;
    options.db.initial_index_slots = 64;
    MAPKV_ASSIGN_OR_RETURN(std::unique_ptr<Cache> cache, Cache::Open(path, options));
    for (size_t i = 0; i < 8; ++i) {
      MAPKV_RETURN_IF_ERROR(cache->Put(records[i].first, records[i].second));
    }
    MAPKV_RETURN_IF_ERROR(cache->Checkpoint());
  }
  MAPKV_ASSIGN_OR_RETURN(std::string ring, seed_detail::TakeFile(path));
  seed_detail::SetStateClean(ring, 0);
  uint64_t ring_start = 0;
  std::memcpy(&ring_start, ring.data() + offsetof(in::FileHeader, ring_start), sizeof(ring_start));
  if (in::RingBits(ring_start) == 0 || ring_start <= 2 * in::kSizeGranule) {
    return absl::InternalError(absl::StrCat("a 1 MiB cache's ring starts at ", ring_start,
                                            ", not past the first 128 KiB"));
  }
  // Truncated: the file ends before the ring starts (in the second index table).
  add("ring-truncated-before-ring-start", EncodeCompact(ring, table_header_end, kModeFixAll));
  // Its header changed to tables of 2^40 slots: the ring starts past 32 TiB, its capacity 64 KiB
  // later. kModeFixHeader recomputes the header checksum.
  {
    std::string header40 = ring;
    const uint64_t start = in::kHeaderSize + 2 * in::RingTableSize(in::kMaxIndexBits);
    static_assert(in::RingBits(in::kHeaderSize + 2 * in::RingTableSize(in::kMaxIndexBits)) ==
                  in::kMaxIndexBits);
    const uint64_t capacity =
        (start + in::kSizeGranule - 1) / in::kSizeGranule * in::kSizeGranule + in::kSizeGranule;
    std::memcpy(header40.data() + offsetof(in::FileHeader, ring_start), &start, sizeof(start));
    std::memcpy(header40.data() + offsetof(in::FileHeader, max_file_size), &capacity,
                sizeof(capacity));
    add("ring-start-for-40-index-bits", EncodeCompact(header40, table_header_end, kModeFixAll));
  }

  // A database closed cleanly, so that a reader without write permission opens it, with the
  // slot of "country/AD" (a key the harness reads) pointing at 2 MiB and the shared state's file
  // size claiming 4 MiB: the file is 128 KiB.
  {
    Options options;
    options.initial_index_slots = 64;
    options.max_file_size = 64ull << 20;
    MAPKV_ASSIGN_OR_RETURN(std::unique_ptr<DB> db, DB::Open(path, options));
    for (size_t i = 0; i < 24; ++i) {
      MAPKV_RETURN_IF_ERROR(db->Put(records[i].first, records[i].second));
    }
    MAPKV_RETURN_IF_ERROR(db->Checkpoint());
  }
  MAPKV_ASSIGN_OR_RETURN(std::string clean, seed_detail::TakeFile(path));
  {
    const uint64_t committed =
        seed_detail::StateWord(clean, offsetof(in::SharedState, committed_tail));
    const uint64_t index = seed_detail::StateWord(clean, offsetof(in::SharedState, index_record));
    const uint64_t salt = detail::LoadU64(clean, offsetof(in::FileHeader, salt));
    if ((seed_detail::StateWord(clean, offsetof(in::SharedState, clean)) & 1) == 0) {
      return absl::InternalError("a checkpointed database was not closed cleanly");
    }
    absl::StatusOr<in::Record> table = in::ReadRecord(clean.data(), index, committed, salt, true);
    if (!table.ok() || table->type != in::kIndex) {
      return absl::InternalError(absl::StrCat("no index table at offset ", index));
    }
    uint64_t slot_at = 0;
    for (uint64_t i = 0; i < (uint64_t{1} << table->index_bits); ++i) {
      const uint64_t at = in::IndexSlotsOffset(index) + i * sizeof(in::Slot);
      const uint64_t offset = detail::LoadU64(clean, at + offsetof(in::Slot, offset));
      if (offset == in::kEmpty || offset == in::kTombstone) continue;
      absl::StatusOr<in::Record> r = in::ReadRecord(clean.data(), offset, committed, salt, true);
      if (r.ok() && r->key == "country/AD") slot_at = at;
    }
    if (slot_at == 0) return absl::InternalError("no slot holds country/AD");
    detail::StoreU64(clean, slot_at + offsetof(in::Slot, offset), uint64_t{2} << 20);
    seed_detail::SetStateWord(clean, offsetof(in::SharedState, file_size), uint64_t{4} << 20);
    add("detached-slot-past-file", EncodeCompact(clean, committed, kModeFixAll | kModeDetached));
  }

  // A database never checkpointed (so not clean), seen from another boot, whose one kCommit
  // record counts one record more than its batch has: a rebuild drops that batch and erases the
  // log after it. Opened read-only, it must be refused, the file untouched.
  {
    Options options;
    options.initial_index_slots = 64;
    options.max_file_size = 64ull << 20;
    MAPKV_ASSIGN_OR_RETURN(std::unique_ptr<DB> db, DB::Open(path, options));
    size_t next = 0;
    for (int i = 0; i < 6; ++i, ++next) {
      MAPKV_RETURN_IF_ERROR(db->Put(records[next].first, records[next].second));
    }
    MAPKV_ASSIGN_OR_RETURN(WriteTxn txn, db->BeginWrite());
    for (int i = 0; i < 4; ++i, ++next) {
      MAPKV_RETURN_IF_ERROR(txn.Put(records[next].first, records[next].second));
    }
    MAPKV_RETURN_IF_ERROR(txn.Commit());
    for (int i = 0; i < 6; ++i, ++next) {
      MAPKV_RETURN_IF_ERROR(db->Put(records[next].first, records[next].second));
    }
  }
  MAPKV_ASSIGN_OR_RETURN(std::string unclean, seed_detail::TakeFile(path));
  {
    seed_detail::SetStateClean(unclean, 0);
    const uint64_t committed =
        seed_detail::StateWord(unclean, offsetof(in::SharedState, committed_tail));
    const uint64_t salt = detail::LoadU64(unclean, offsetof(in::FileHeader, salt));
    uint64_t commits = 0;
    for (uint64_t off = in::kHeaderSize; off < committed;) {
      absl::StatusOr<in::Record> r = in::ReadRecord(unclean.data(), off, committed, salt, true);
      if (!r.ok()) return absl::InternalError(r.status().ToString());
      if (r->type == in::kCommit) {
        const uint64_t at = off + sizeof(in::RecordHeader) + offsetof(in::CommitPayload, records);
        detail::StoreU64(unclean, at, detail::LoadU64(unclean, at) + 1);
        ++commits;
      }
      off += r->size;
    }
    if (commits != 1) return absl::InternalError(absl::StrCat(commits, " kCommit records"));
    add("read-only-rebuild-damaged-commit",
        EncodeCompact(unclean, committed, kModeFixAll | kModeReadOnly));
  }
  return out;
}

}  // namespace mapkv::fuzz

#endif  // MAPKV_TESTS_FUZZ_SEED_CORPUS_H_
