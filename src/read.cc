// Reads: lookups (one key, a batch with their cache misses overlapped), iteration, and the
// optimistic read that needs no lock. DBImpl (db_impl.h) declares these.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "src/db_impl.h"
#include "src/errors.h"
#include "src/hash.h"
#include "src/status_macros.h"

namespace mapkv::internal {

// Fetches the first lines of the record at `offset` (a 16-byte key and a 100-byte value span
// three): one round trip to memory instead of the header's and then the value's. Only in-bounds
// offsets: a damaged slot may hold anything.
void DBImpl::PrefetchRecord(uint64_t offset, uint64_t tail) const {
  if (offset < tail) {
    const char* record = At(offset);
    __builtin_prefetch(record);
    __builtin_prefetch(record + 64);
    __builtin_prefetch(record + 128);
  }
}

absl::StatusOr<std::string_view> DBImpl::LookupHashed(const Snapshot& snap, std::string_view key,
                                                      uint64_t hash) const {
  MAPKV_RETURN_IF_ERROR(CheckKeySize(path(), key));
  IndexTable table(base_, snap.index_record, snap.index_bits);
  absl::Status damage;
  Record found;
  Slot* slot = table.Probe(hash, [&](uint64_t offset) {
    PrefetchRecord(offset, snap.tail);
    absl::StatusOr<Record> r = ReadAt(offset, snap.tail, false);
    if (!r.ok()) {
      damage = r.status();
      return false;
    }
    if (r->key != key) return false;
    found = *r;
    return true;
  });
  if (slot == nullptr) {
    if (!damage.ok()) return damage;
    return KeyNotFoundError(path(), key);
  }
  if (found.type != kPut) {
    return absl::DataLossError(
        absl::StrCat(path(), ": index points at a non-put record at offset ", found.offset));
  }
  if (options_.verify_checksums &&
      RecordChecksumOf(At(found.offset), found, salt_) != found.checksum) {
    return absl::DataLossError(absl::StrCat(path(), ": checksum mismatch in the record of key ",
                                            QuoteKey(key), " at offset ", found.offset));
  }
  return found.value;
}

absl::Status DBImpl::ForEach(const Snapshot& snap,
                             absl::FunctionRef<bool(std::string_view, std::string_view)> fn) const {
  IndexTable table(base_, snap.index_record, snap.index_bits);
  // Slots are read in order, records in the order of their keys' hashes: random. Fetching the
  // record 16 slots ahead keeps several of those misses in flight instead of one.
  constexpr uint64_t kAhead = 16;
  for (uint64_t i = 0; i < table.capacity(); ++i) {
    if (i + kAhead < table.capacity()) {
      PrefetchRecord(table.slot(i + kAhead).offset.load(std::memory_order_relaxed), snap.tail);
    }
    uint64_t offset = table.slot(i).offset.load(std::memory_order_relaxed);
    if (offset == kEmpty || offset == kTombstone) continue;
    MAPKV_ASSIGN_OR_RETURN(Record r, ReadAt(offset, snap.tail, options_.verify_checksums));
    if (r.type != kPut) {
      return absl::DataLossError(
          absl::StrCat(path(), ": index points at a non-put record at offset ", offset));
    }
    if (!fn(r.key, r.value)) break;
  }
  return absl::OkStatus();
}

// Every ReadConsistent caller is in this file.
template <class Read>
absl::Status DBImpl::ReadConsistent(Read&& read) {
  MAPKV_RETURN_IF_ERROR(CheckUsable());
  // Optimistic first: read without taking the lock, then check that no commit published
  // meanwhile. A reader that writes nothing shared scales with processes, and without a locked
  // instruction consecutive reads overlap their cache misses. A continuous writer publishes every
  // few microseconds: wait out a publish rather than fall back to the lock (which would make
  // readers and the writer wait for each other), and retry a read that overlapped one.
  for (int attempt = 0; attempt < 64; ++attempt) {
    const uint32_t seq = lock_.ReadBeginSpinning();
    if (seq & 1) break;  // a publish that long: its writer may be dead; the lock path finds out
    // The file size bounds the offsets instead of the committed tail: that keeps every access
    // inside the file, and the seqlock check rejects anything a commit changed meanwhile.
    // A ring's offsets are logical: its committed tail bounds them, with the ring's bounds.
    Snapshot snap;
    snap.index_record = state_->index_record.load(std::memory_order_acquire);
    snap.tail = state_->file_size.load(std::memory_order_relaxed);
    MAPKV_RETURN_IF_ERROR(Cover(snap.tail));
    if (ring()) snap.tail = state_->committed_tail.load(std::memory_order_acquire);
    snap.index_bits = IndexBits(snap.index_record);
    read(snap);
    if (lock_.ReadValid(seq)) return absl::OkStatus();
  }
  MAPKV_ASSIGN_OR_RETURN(Snapshot snap, LockShared());
  read(snap);
  lock_.UnlockShared();
  return absl::OkStatus();
}

namespace {
// Copies a looked-up value out of the mapping, reusing `out`'s capacity when it holds a string.
void CopyResult(const absl::StatusOr<std::string_view>& v, absl::StatusOr<std::string>& out) {
  if (!v.ok()) {
    out = v.status();
  } else if (out.ok()) {
    out->assign(v->data(), v->size());
  } else {
    out = std::string(*v);
  }
}
}  // namespace

absl::StatusOr<std::string> DBImpl::Get(std::string_view key) {
  absl::StatusOr<std::string> result;
  MAPKV_RETURN_IF_ERROR(
      ReadConsistent([&](const Snapshot& snap) { CopyResult(Lookup(snap, key), result); }));
  return result;
}

absl::Status DBImpl::Get(std::string_view key, std::string* value) {
  absl::Status result;
  MAPKV_RETURN_IF_ERROR(ReadConsistent([&](const Snapshot& snap) {
    absl::StatusOr<std::string_view> v = Lookup(snap, key);
    result = v.status();
    if (v.ok()) value->assign(v->data(), v->size());
  }));
  return result;
}

// Three passes over a batch, each starting the next pass's cache misses for every key before it
// waits on any: hash the keys and prefetch their home slots; read the home slots and prefetch the
// records they point at; then look each key up, which now finds its lines in cache. A key whose
// probe runs past its home slot still gets the right answer, only without the overlap.
void DBImpl::LookupBatch(const Snapshot& snap, const std::string_view* keys, size_t n,
                         absl::StatusOr<std::string_view>* out) const {
  IndexTable table(base_, snap.index_record, snap.index_bits);
  uint64_t hashes[kLookupBatch];
  for (size_t i = 0; i < n; ++i) {
    hashes[i] = HashKey(keys[i], hash_seed_);
    __builtin_prefetch(&table.home(hashes[i]));
  }
  for (size_t i = 0; i < n; ++i) {
    const Slot& s = table.home(hashes[i]);
    if (s.hash.load(std::memory_order_relaxed) == hashes[i]) {
      PrefetchRecord(s.offset.load(std::memory_order_relaxed), snap.tail);
    }
  }
  for (size_t i = 0; i < n; ++i) out[i] = LookupHashed(snap, keys[i], hashes[i]);
}

absl::Status DBImpl::MultiGet(absl::Span<const std::string_view> keys,
                              std::vector<absl::StatusOr<std::string>>* values) {
  values->resize(keys.size());
  absl::StatusOr<std::string_view> found[kLookupBatch];
  for (size_t start = 0; start < keys.size(); start += kLookupBatch) {
    const size_t n = std::min(kLookupBatch, keys.size() - start);
    MAPKV_RETURN_IF_ERROR(ReadConsistent([&](const Snapshot& snap) {
      LookupBatch(snap, keys.data() + start, n, found);
      for (size_t i = 0; i < n; ++i) CopyResult(found[i], (*values)[start + i]);
    }));
  }
  return absl::OkStatus();
}

}  // namespace mapkv::internal
