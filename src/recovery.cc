// Recovery: finishing a dead writer's commit (I5) and rebuilding the index from the log after an
// unclean machine stop (I6).
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "src/db_impl.h"
#include "src/hash.h"
#include "src/platform/process.h"
#include "src/status_macros.h"
#include "src/strings.h"

namespace mapkv::internal {
namespace {

struct ScanResult {
  uint64_t end = 0;       // end of the last complete batch: the longest valid prefix
  uint64_t last_seq = 0;  // that batch's sequence number
  uint64_t batches = 0;
  uint64_t records = 0;
};

// Walks the log from `from` to `limit` batch by batch, validating every record and every batch
// (format.h), and calls apply(record) for the kPut and kDelete records of each complete batch, in
// log order. Stops at the first record or batch that does not validate. read(offset) decodes and
// verifies a record (DBImpl::ReadAt); a ring's kPad records are stepped over.
template <class Read, class Apply>
ScanResult ScanBatches(Read&& read, uint64_t from, uint64_t limit, uint64_t salt, uint64_t prev_seq,
                       Apply&& apply) {
  ScanResult result{from, prev_seq, 0, 0};
  std::vector<uint64_t> checksums;
  std::vector<Record> writes;
  uint64_t batch_start = from;
  uint64_t batch_seq = 0;
  for (uint64_t off = from; off < limit;) {
    absl::StatusOr<Record> r = read(off);
    if (!r.ok()) break;
    if (r->type == kPad) {
      off += r->size;
      continue;
    }
    if (checksums.empty()) {
      batch_start = off;
      batch_seq = r->seq;
      if (batch_seq <= result.last_seq) break;  // sequence numbers grow batch by batch
    } else if (r->seq != batch_seq) {
      break;
    }
    bool complete = false;
    if (r->type == kCommit) {
      CommitPayload payload;
      std::memcpy(&payload, r->value.data(), sizeof(payload));
      if ((r->flags & kLast) == 0 || checksums.empty() || payload.records != checksums.size() ||
          payload.digest != BatchDigest(checksums.data(), checksums.size(), salt, batch_start)) {
        break;
      }
      complete = true;
    } else {
      checksums.push_back(r->checksum);
      if (r->type == kPut || r->type == kDelete) writes.push_back(*r);
      if (r->flags & kLast) {
        if (checksums.size() != 1) break;  // a longer batch ends with a kCommit
        complete = true;
      }
    }
    off += r->size;
    ++result.records;
    if (complete) {
      for (const Record& w : writes) apply(w);
      result.end = off;
      result.last_seq = batch_seq;
      ++result.batches;
      checksums.clear();
      writes.clear();
    }
  }
  return result;
}

}  // namespace

void DBImpl::InvalidateAfterTail() {
  // Bytes past the committed tail may hold a sealed batch whose commit never happened (its writer
  // died or failed before publishing). Break its first checksum so that a rebuild after a power
  // cut never takes it for a commit; a kSync writer may have flushed the batch already, so the
  // broken checksum goes to the disk too.
  const uint64_t committed = state_->committed_tail.load();
  const uint64_t tail = Phys(committed);
  const uint64_t end = ring() ? ring_start_ + ring_len_ : UINT64_MAX;
  // In a ring that is (nearly) full, the bytes past the tail are the oldest live record's: no
  // batch can lie there.
  if (ring() && committed - state_->head.load() + sizeof(uint64_t) > ring_len_) return;
  if (tail + sizeof(uint64_t) <= std::min(state_->file_size.load(), end)) {
    std::memset(base_ + tail, 0, sizeof(uint64_t));
    if (options_.durability == Durability::kSync) (void)file_->Flush(tail, sizeof(uint64_t));
  }
}

void DBImpl::RecountStats() {
  const uint64_t record = state_->index_record.load();
  IndexTable table(base_, record, IndexBits(record));
  uint64_t count = 0, used = 0, live_bytes = 0;
  for (uint64_t i = 0; i < table.capacity(); ++i) {
    const uint64_t offset = table.slot(i).offset.load(std::memory_order_relaxed);
    if (offset == kEmpty) continue;
    ++used;
    if (offset == kTombstone || SlotDead(offset)) continue;
    ++count;
    live_bytes += SizeAt(offset);
  }
  state_->count.store(count);
  state_->used.store(used);
  state_->live_bytes.store(live_bytes);
}

absl::Status DBImpl::Recover() {
  MAPKV_RETURN_IF_ERROR(lock_.LockExclusive());
  absl::Status s = Replay();
  // A ring's writer may have died evicting, between moving head and its index changes.
  if (s.ok() && ring()) DropEvicted();
  lock_.UnlockExclusive();
  return s;
}

void DBImpl::DropEvicted() {
  const uint64_t head = state_->head.load();
  const uint64_t record = state_->index_record.load();
  IndexTable table(base_, record, IndexBits(record));
  for (uint64_t i = 0; i < table.capacity(); ++i) {
    Slot& slot = table.slot(i);
    const uint64_t offset = slot.offset.load(std::memory_order_relaxed);
    if (offset != kEmpty && offset != kTombstone && offset < head) {
      slot.offset.store(kTombstone, std::memory_order_release);
    }
  }
  RecountStats();  // and the counts it had not changed yet
}

absl::Status DBImpl::Replay() {
  const uint64_t applied = state_->applied_tail.load();
  const uint64_t committed = state_->committed_tail.load();
  if (applied < committed) {
    // A writer died between its commit point and the end of its index changes. Every index change
    // is idempotent, so apply the whole batch again over whatever part of it was done.
    std::vector<Record> writes;
    uint64_t puts = 0;
    ScanResult scan = ScanBatches([&](uint64_t off) { return ReadAt(off, committed, true); },
                                  applied, committed, salt_, 0,
                                  [&](const Record& r) {
                                    writes.push_back(r);
                                    puts += r.type == kPut;
                                  });
    // Anything past the last complete batch cannot have been acknowledged: drop it.
    state_->committed_tail.store(scan.end);
    if (scan.last_seq > state_->commits.load()) state_->commits.store(scan.last_seq);
    WriteState grow;
    grow.seq = state_->commits.load() + 1;
    grow.start = grow.tail = scan.end;
    // Size any new table by the table itself: the counters of a writer that died mid-publish, or
    // of a damaged file, may be anything.
    RecountStats();
    MAPKV_ASSIGN_OR_RETURN(uint64_t new_index, MaybeGrowIndexLocked(grow, puts));
    if (new_index != 0 && ring()) {
      state_->index_record.store(new_index);  // a ring's tables are outside its log
    } else if (new_index != 0) {
      SetRecordFlags(base_, new_index, salt_, kLast);  // a batch of its own
      state_->committed_tail.store(grow.tail);
      state_->index_record.store(new_index);
      state_->commits.store(grow.seq);
    }
    IndexTable table(base_, state_->index_record.load(), IndexBits(state_->index_record.load()));
    for (const Record& r : writes) {
      ApplyWrite(table, {r.key, HashKey(r.key, hash_seed_), r.offset, r.type == kPut});
    }
    state_->applied_tail.store(state_->committed_tail.load());
    state_->synced_tail.store(std::min(state_->synced_tail.load(), scan.end));
    state_->recovered_commits.fetch_add(scan.batches);
    RecountStats();
  }
  InvalidateAfterTail();
  return absl::OkStatus();
}

absl::Status DBImpl::RebuildIndex(std::string_view reason) {
  const uint64_t started = MonotonicMicros();
  const uint64_t limit = state_->file_size.load();
  // Version 5: from the start the latest checkpoint holds. Below it the blocks may be given back;
  // from it on, every batch is on the disk up to that checkpoint's tail (the cleaner gives back
  // nothing before a checkpoint holds the head past it).
  const CheckpointRecord* durable = LatestCheckpoint();
  uint64_t from = kHeaderSize;
  if (cleaned_ && durable != nullptr && durable->head != 0) {
    if (durable->head < kHeaderSize || durable->head % 8 != 0 || durable->head > durable->tail ||
        durable->tail > limit) {
      return absl::DataLossError(absl::StrCat(path(), ": the last checkpoint's log start (",
                                              durable->head, ") is outside its log"));
    }
    from = durable->head;
  }
  absl::flat_hash_map<std::string_view, uint64_t, KeyHash, KeyEq> live;
  ScanResult scan =
      ScanBatches([&](uint64_t off) { return ReadRecord(base_, off, limit, salt_, true); }, from,
                  limit, salt_, 0,
                  [&](const Record& r) {
                    if (r.type == kPut) {
                      live[r.key] = r.offset;
                    } else {
                      live.erase(r.key);
                    }
                  });
  if (scan.batches == 0) {
    // Creation writes and flushes the first batch (the empty index) before the magic: a file
    // without it is damaged at the start, and rebuilding over it would destroy what is there.
    return absl::DataLossError(
        absl::StrCat(path(), ": the log is damaged at its start (offset ", from, ")"));
  }
  if (const CheckpointRecord* ckpt = durable; ckpt != nullptr && ckpt->tail > scan.end) {
    return absl::DataLossError(absl::StrCat(
        path(), ": the log is damaged at offset ", scan.end, ", before the end of the data the ",
        "last checkpoint made durable (offset ", ckpt->tail, ")"));
  }
  // Past the valid prefix the disk may still hold later batches that were committed but cut off
  // from it by a lost page. Their sequence numbers would follow on from the ones the log is
  // about to reuse, so one could validate again behind a new batch of the same length: erase
  // them, durably, before anything is written there.
  MAPKV_RETURN_IF_ERROR(file_->Zero(scan.end, limit - scan.end));
  MAPKV_RETURN_IF_ERROR(file_->Sync());
  const uint32_t bits = IndexBitsFor(live.size(), options_.initial_index_slots);
  const uint64_t at = scan.end;
  const uint64_t seq = scan.last_seq + 1;
  MAPKV_ASSIGN_OR_RETURN(uint64_t size, WriteIndexTable(at, seq, kLast, bits));
  IndexTable table(base_, at, bits);
  for (const auto& [key, offset] : live) table.InsertFresh(HashKey(key, hash_seed_), offset);
  state_->index_record.store(at);
  if (cleaned_) state_->head.store(from);
  state_->committed_tail.store(at + size);
  state_->applied_tail.store(at + size);
  state_->synced_tail.store(0);  // unknown: the next kSync commit flushes the whole log
  state_->commits.store(seq);
  RecountStats();
  state_->clean.store(0);
  state_->rebuilt_index = 1;
  state_->rebuild_records = scan.records;
  state_->rebuild_micros = MonotonicMicros() - started;
  Log(absl::StrCat(path(), ": ", ToAbsl(reason), "; rebuilt the index from the log: ", scan.records,
                   " records, ", live.size(), " keys, ", state_->rebuild_micros / 1000,
                   " ms; the valid log ends at offset ", scan.end, " of ", limit));
  return absl::OkStatus();
}

void DBImpl::ResetRing(std::string_view reason) {
  // Records are not kept across an unclean machine stop: a cache starts empty. Its log goes on
  // from the next lap, so that nothing it held validates where a record is expected.
  const uint64_t committed = state_->committed_tail.load();
  const uint64_t lap = TailsSane(*header_, *state_, state_->file_size.load())
                           ? (committed - ring_start_) / ring_len_ + 1
                           : 0;
  const uint64_t start = ring_start_ + lap * ring_len_;
  const uint32_t bits = RingBits(ring_start_);
  std::memset(base_ + kHeaderSize, 0, ring_start_ - kHeaderSize);
  for (uint64_t table : ring_tables_) WriteIndexHeader(base_, table, salt_, kLast, 1, bits);
  const uint64_t dropped = state_->count.load();
  state_->index_record.store(ring_tables_[0]);
  state_->head.store(start);
  state_->committed_tail.store(start);
  state_->applied_tail.store(start);
  state_->synced_tail.store(0);
  state_->commits.store(std::max<uint64_t>(state_->commits.load(), 1));
  RecountStats();
  state_->clean.store(0);
  state_->rebuilt_index = 1;
  state_->rebuild_records = 0;
  state_->rebuild_micros = 0;
  InvalidateAfterTail();
  Log(absl::StrCat(path(), ": ", ToAbsl(reason), "; a cache starts empty then (it held about ",
                   dropped, " entries)"));
}

absl::Status DBImpl::Verify(std::vector<VerifyProblem>* out) {
  // A version 4 file is checked as of a snapshot, beside live commits: the log up to its tail is
  // immutable, and the index is read as of it. Older files: under the shared lock.
  MAPKV_ASSIGN_OR_RETURN(Snapshot snap, chained_ ? BeginSnapshot() : LockShared());
  std::vector<VerifyProblem> problems;
  auto problem = [&](uint64_t offset, std::string kind, std::string detail) {
    problems.push_back({offset, std::move(kind), std::move(detail)});
  };
  if (header_->checksum != Hash64(header_, offsetof(FileHeader, checksum), 0)) {
    problem(0, "header", "file header checksum mismatch");
  }
  for (uint64_t offset : kCheckpointOffset) {
    // A checkpoint may be writing this record meanwhile (it holds the writer lock, which Verify
    // does not take): a mismatch counts only once the bytes stay the same.
    CheckpointRecord copy, again;
    std::memcpy(&again, base_ + offset, sizeof(again));
    for (int i = 0; i < 10; ++i) {
      copy = again;
      if (copy.checksum == Hash64(&copy, offsetof(CheckpointRecord, checksum), salt_)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      std::memcpy(&again, base_ + offset, sizeof(again));
      if (std::memcmp(&copy, &again, sizeof(copy)) == 0) break;
    }
    const CheckpointRecord* c = &copy;
    if (c->seq == 0) continue;
    const uint64_t committed = std::max(snap.tail, state_->committed_tail.load());
    if (c->checksum != Hash64(c, offsetof(CheckpointRecord, checksum), salt_)) {
      problem(offset, "checkpoint", "checkpoint record checksum mismatch");
    } else if (c->tail > committed) {
      problem(offset, "checkpoint",
              absl::StrCat("checkpoint covers ", c->tail, " bytes, past the committed end ",
                           committed));
    }
  }
  // The log, batch by batch, replayed into a model of what the index must hold; in version 4,
  // each record's chain checked against the key's records before it.
  absl::flat_hash_map<std::string_view, uint64_t, KeyHash, KeyEq> model;
  absl::flat_hash_map<std::string_view, Record, KeyHash, KeyEq> newest;
  // A ring's live log starts at head, at a batch boundary; so does a version 5 database's, as
  // of the snapshot. Its first record of a key may name one before the start.
  const uint64_t start = cleaned_ ? snap.head : LogStart();
  auto read = [&](uint64_t off) { return ReadAt(off, snap.tail, true); };
  ScanResult scan = ScanBatches(read, start, snap.tail, salt_, 0, [&](const Record& r) {
    if (chained_) {
      auto it = newest.find(r.key);
      const bool starts = it == newest.end() || it->second.type == kDelete;
      if ((r.flags & kChained) == 0) {
        problem(r.offset, "log", "a record without the chain to its key's previous version");
      } else if (r.prev != (it == newest.end() ? 0 : it->second.offset) &&
                 !(r.prev == 0 && starts) && !(it == newest.end() && r.prev < start)) {
        problem(r.offset, "log",
                absl::StrCat("names ", r.prev, " as its key's previous version; that is ",
                             it == newest.end() ? 0 : it->second.offset));
      }
      newest[r.key] = r;
    }
    if (r.type == kPut) {
      model[r.key] = r.offset;
    } else {
      model.erase(r.key);
    }
  });
  if (scan.end != snap.tail) {
    absl::StatusOr<Record> r = read(scan.end);
    problem(scan.end, "log",
            r.ok() ? std::string("incomplete or inconsistent batch")
                   : std::string(r.status().message()));
  }
  // The next batch's sequence number is commits + 1: at or below the last batch's, the log would
  // end there for a rebuild, and every later commit would be lost with it.
  if (state_->commits.load() < scan.last_seq) {
    problem(kSharedStateOffset, "counters",
            absl::StrCat("commits is ", state_->commits.load(), ", below the sequence number ",
                         scan.last_seq, " of the last batch in the log"));
  }
  // The index: every slot a valid record of its own hash (a put; a deleted key's kDelete in
  // version 4), found by its own probe, and (as of the snapshot) the latest record of its key;
  // nothing the log says is live missing.
  IndexTable table(base_, snap.index_record, snap.index_bits);
  uint64_t live = 0, used = 0, live_bytes = 0;
  for (uint64_t i = 0; i < table.capacity(); ++i) {
    const uint64_t offset = table.slot(i).offset.load(std::memory_order_acquire);
    const uint64_t slot_at = IndexSlotsOffset(snap.index_record) + i * sizeof(Slot);
    if (offset == kEmpty) continue;
    ++used;
    if (offset == kTombstone) continue;
    absl::Status cover;
    const uint64_t limit = snap.as_of ? AsOfLimit(cover) : snap.tail;
    if (limit == 0) {
      problem(slot_at, "index", std::string(cover.message()));
      break;
    }
    if ((offset & 3) != 0) {
      // Records are 8-aligned, and bit 2 is kDeadSlot's: a reader of this slot fails at it.
      problem(slot_at, "index", absl::StrCat("slot points at ", offset, ", not a record offset"));
      continue;
    }
    const bool dead = SlotDead(offset);
    if (cleaned_ && SlotRecord(offset) < start) {
      // A deleted key's slot may stay behind the start until a rehash; a live key's may not:
      // the cleaner relocates its record before it moves the start past it.
      if (!dead) {
        problem(slot_at, "index",
                absl::StrCat("slot points at ", offset, ", below the log's start ", start));
      }
      continue;
    }
    absl::StatusOr<Record> r = ReadAt(SlotRecord(offset), limit, !snap.as_of);
    if (!r.ok() || r->type != (dead ? kDelete : kPut) || (dead && !chained_)) {
      problem(slot_at, "index",
              absl::StrCat("slot points at ", offset, ", not a valid ",
                           dead && chained_ ? "delete" : "put", ": ",
                           r.ok() ? "another record type" : r.status().message()));
      continue;
    }
    const uint64_t hash = HashKey(r->key, hash_seed_);
    if (table.slot(i).hash.load(std::memory_order_relaxed) != hash) {
      problem(slot_at, "index", absl::StrCat("slot hash does not match the key at ", offset));
    } else if (table.Probe(hash, [&](uint64_t o) { return KeyAt(o, limit, start) == r->key; }) !=
               &table.slot(i)) {
      problem(slot_at, "index", "a lookup of this slot's key finds another slot or none");
    }
    if (snap.as_of) {
      r = VersionAsOf(*r, snap, limit);
      if (!r.ok()) {
        problem(slot_at, "index", std::string(r.status().message()));
        continue;
      }
      if (r->type == 0) continue;  // a key first written after the snapshot
    }
    auto it = model.find(r->key);
    if (r->type == kDelete) {
      if (it != model.end()) {
        problem(slot_at, "index",
                absl::StrCat("key of the record at ", r->offset,
                             " is deleted in the index; its latest put is at ", it->second));
      }
      continue;
    }
    ++live;
    live_bytes += r->size;
    if (it == model.end()) {
      problem(
          slot_at, "index",
          absl::StrCat("key of the record at ", r->offset, " is deleted in the log or never put"));
    } else if (it->second != r->offset) {
      problem(slot_at, "index",
              absl::StrCat("points at ", r->offset, "; the key's latest put is at ", it->second));
    }
  }
  if (live != model.size()) {
    problem(snap.index_record, "index",
            absl::StrCat(live, " live slots, but the log has ", model.size(), " live keys"));
  }
  // The counters, where no commit changed them since the snapshot (they are of now).
  const bool still = !snap.as_of || (state_->committed_tail.load() == snap.tail &&
                                     state_->index_record.load() == snap.index_record);
  if (live != snap.count ||
      (still && (used != state_->used.load() || live_bytes != state_->live_bytes.load()))) {
    problem(kSharedStateOffset, "counters",
            absl::StrCat("keys/used/live bytes are ", snap.count, "/", state_->used.load(), "/",
                         state_->live_bytes.load(), ", the index says ", live, "/", used, "/",
                         live_bytes));
  }
  if (snap.as_of) {
    Unpin(snap.tail);
  } else {
    lock_.UnlockShared();
  }
  if (problems.empty()) return absl::OkStatus();
  std::string summary =
      absl::StrCat(path(), ": ", problems.size(), " problem(s); first: ", problems[0].kind,
                   " at offset ", problems[0].offset, ": ", problems[0].detail);
  if (out != nullptr) out->insert(out->end(), problems.begin(), problems.end());
  return absl::DataLossError(summary);
}

}  // namespace mapkv::internal
