// The on-disk and shared-memory layout of a mapkv file: the single source of truth. Every field is
// little-endian (we only build for little-endian machines; see the static_assert below) and every
// offset is from the start of the file, never a pointer: each process maps the file at its own
// address.
//
//   0        header page: FileHeader, two CheckpointRecords, SharedState (durable part),
//            CacheState (a cache's statistics)
//   4 KiB    LockState: lock words (never need to reach the disk)
//   8 KiB    ProcessSlot[kMaxSlots]: one cache line per open handle
//   64 KiB   the log: records appended in order, 8-byte aligned, up to SharedState::committed_tail
//
// A bounded cache (format version 3) has instead, from 64 KiB, two index tables of a fixed size
// (kIndex records that never move: a rehash fills the other one) and then the ring, from
// FileHeader::ring_start to FileHeader::max_file_size, its capacity. Log offsets there are
// logical: they grow forever, and offset L lives at ring_start + (L - ring_start) % ring length
// (RingPhys). A record never wraps: where one would not fit before the ring's end, a kPad record
// (or, in under 24 bytes, nothing) fills the rest of that lap. The live log is
// [SharedState::head, committed_tail), at most one ring long; making room moves `head` on past
// whole batches, and the index entries pointing below it are removed first (DBImpl::Evict).
//
// Log records (RecordHeader + payload):
//   kPut     key, value                       the value of key from this commit on
//   kDelete  key                              key is absent from this commit on
//   kCommit  CommitPayload                    ends a batch of more than one record
//   kIndex   (padding to 64) Slot[1 << key_len]  an index table; its payload changes in place
//   kPad     -                                the rest of a ring's lap is unused (version 3)
// In a database of version 4 every kPut and kDelete carries kChained: its payload starts with the
// log offset of the same key's previous record (0: none), before the key. The chain is how a
// snapshot (a ReadTxn) finds the version of a key it began with after later commits replaced it:
// records are immutable once committed and the log is never reused, so every chain stays valid.
// A batch is the records of one transaction. A batch of one record is that record with kLast set;
// a longer batch ends with a kCommit record (kLast set) whose digest covers the checksums of every
// record before it, so a batch put together from the remains of two different transactions (a torn
// write after a power cut) never validates.
#ifndef MAPKV_FORMAT_H_
#define MAPKV_FORMAT_H_

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace mapkv::internal {

static_assert(std::endian::native == std::endian::little, "mapkv files are little-endian");

inline constexpr char kMagic[8] = {'M', 'A', 'P', 'K', 'V', '\0', '\0', '\0'};
// In place of the magic while a file is being created (DBImpl::Initialize writes the magic last):
// a first opener that finds it found a creator that died, in a file that never held data, and
// creates the database again. A file with neither is not mapkv's and is never overwritten.
inline constexpr char kCreatingMagic[8] = {'M', 'A', 'P', 'K', 'V', '\0', 'N', 'E'};
inline constexpr uint32_t kFormatVersion = 1;       // a database (FileKind::kDatabase)
inline constexpr uint32_t kCacheFormatVersion = 2;  // a cache: values behind an envelope (cache.h)
inline constexpr uint32_t kRingFormatVersion = 3;   // a cache with a capacity: its log is a ring
// A database whose records chain each key's versions (kChained) and whose index keeps a deleted
// key's slot, pointing at its kDelete record (kDeadSlot), so that snapshots read without a lock.
inline constexpr uint32_t kChainFormatVersion = 4;
// Version 4 whose log's start moves (SharedState::head): the cleaner relocates the live records
// at the start of the log to its end, moves head past them, and gives the blocks below head back
// to the file system once a checkpoint made the copies durable and no snapshot reads there.
// Offsets stay file offsets and grow forever (the file is sparse below head): bytes below head
// are never written again, so a reader that comes late finds there what was committed or zeros.
inline constexpr uint32_t kCleanFormatVersion = 5;
inline constexpr uint32_t kNewestFormatVersion = kCleanFormatVersion;
constexpr bool KnownVersion(uint32_t v) { return v >= kFormatVersion && v <= kNewestFormatVersion; }
constexpr bool IsCacheVersion(uint32_t v) {
  return v == kCacheFormatVersion || v == kRingFormatVersion;
}
constexpr bool IsChainedVersion(uint32_t v) {
  return v == kChainFormatVersion || v == kCleanFormatVersion;
}
inline constexpr uint64_t kHeaderPageSize = 4096;
inline constexpr uint64_t kHeaderSize = 64 * 1024;  // the log starts here
inline constexpr uint64_t kMinFileSize = 1 << 20;
// The file's size is always a multiple of this: Windows maps a growing file in views that start on
// 64 KiB boundaries (mapped_file_win32.cc), so max_file_size is rounded down to one.
inline constexpr uint64_t kSizeGranule = 64 * 1024;
inline constexpr uint32_t kMaxSlots = 896;  // (kHeaderSize - 8 KiB) / 64
inline constexpr uint64_t kMinIndexSlots = 64;
inline constexpr uint32_t kMaxIndexBits = 40;

// Byte-range locks live far past the end of any file, on bytes that are never read or written, so
// they never interfere with the data (LockFileEx on Windows is mandatory for file I/O).
inline constexpr uint64_t kLockRegion = 1ull << 50;
inline constexpr uint64_t kOpenLockByte = kLockRegion;  // shared by every open handle
// Held (shared) by every handle opened without write permission: writable Opens refuse while it is.
inline constexpr uint64_t kDetachedLockByte = kLockRegion - 1;
inline constexpr uint64_t SlotLockByte(uint32_t slot) { return kLockRegion + 1 + slot; }
// Held (exclusive) by the online compaction of the file (compact.h): one at a time.
inline constexpr uint64_t kCompactionLockByte = kLockRegion - 3;
// (kLockRegion - 2 is the platform layer's: kPlatformLockByte in src/platform/mapped_file.h.)

// Written once when the file is created (max_file_size may be raised by a first opener).
struct FileHeader {
  char magic[8];            // 0: kMagic
  uint32_t format_version;  // 8: kFormatVersion; a newer one is refused
  uint32_t layout;          // 12: kLayoutSignature; another build's layout is refused
  uint64_t hash_seed;       // 16: seed of XXH3 for keys (random per file: no hash flooding)
  uint64_t salt;            // 24: seed of record checksums (random per file)
  uint64_t max_file_size;   // 32: growth limit in bytes
  int64_t created_unix_ms;  // 40
  uint64_t ring_start;      // 48: version 3: where the ring starts (its end: max_file_size); else 0
  uint64_t checksum;        // 56: XXH3 of bytes [0, 56)
};
static_assert(sizeof(FileHeader) == 64);

// Written by Checkpoint() after the mapping and the file were flushed: everything up to `tail` is
// on disk. Two copies (A at 512, B at 576), written alternately by the parity of `seq`, so a torn
// write of one leaves the other intact.
struct CheckpointRecord {
  uint64_t seq;           // 0: checkpoints so far, this one included (0: never written)
  uint64_t tail;          // 8: committed end of the log when flushed
  uint64_t commits;       // 16: commits so far
  uint64_t index_record;  // 24: offset of the index record then current
  int64_t unix_ms;        // 32: when
  uint64_t head;          // 40: version 5: where the log started then (the blocks below it may
                          //     be given back once this record is on the disk); else 0
  uint64_t flags;         // 48: kCheckpointLogOnly
  uint64_t checksum;      // 56: XXH3 of bytes [0, 56), seeded with FileHeader::salt
};
static_assert(sizeof(CheckpointRecord) == 64);
inline constexpr uint64_t kCheckpointOffset[2] = {512, 576};
// The cleaner's checkpoints flush the log's records, not the index table's slots (a rebuild
// after a power cut reads the records only): a clean close does not trust the index after one.
inline constexpr uint64_t kCheckpointLogOnly = 1;

// The committed state, shared by all processes through the mapping. Changed only by the writer
// that holds both the writer lock and the exclusive side of the reader-writer lock (readers read
// it under the shared side). After a process crash the first line is trustworthy (every store is
// in the page cache); after an unclean machine stop it is rebuilt from the log.
struct SharedState {
  // Line 1: written by every commit. A commit stores committed_tail first (its commit point),
  // then changes the index, then stores applied_tail: a writer that dies between the two left
  // [applied_tail, committed_tail) to be replayed by recovery (idempotently: every index change
  // is a single 8-byte store).
  std::atomic<uint64_t> committed_tail;     // 1024: end of the last committed batch
  std::atomic<uint64_t> applied_tail;       // 1032: the index reflects every batch before this
  std::atomic<uint64_t> commits;            // 1040: batches committed (the next batch's seq - 1)
  std::atomic<uint64_t> count;              // 1048: live keys
  std::atomic<uint64_t> used;               // 1056: index slots holding a key or a tombstone
  std::atomic<uint64_t> live_bytes;         // 1064: bytes of the records keys point to
  std::atomic<uint64_t> recovered_commits;  // 1072: batches replayed by recovery
  std::atomic<uint64_t> synced_tail;        // 1080: this boot, the log is on the disk up to here
                                            // (0: unknown); kSync commits flush from here
  // Line 2: written rarely (growth, open, close), so that DB::Get, which reads only this line
  // and the seqlock, does not miss on a line every commit writes.
  std::atomic<uint64_t> index_record;  // 1088: offset of the current index record (kIndex)
  std::atomic<uint64_t> file_size;     // 1096: current file size in bytes
  std::atomic<uint64_t> boot_id;       // 1104: hash of the boot id the state was last used in
  std::atomic<uint32_t> clean;         // 1112: 1: a clean close found everything checkpointed
  uint32_t rebuilt_index;              // 1116: 1 if the first opener rebuilt the index
  uint64_t rebuild_records;            // 1120
  uint64_t rebuild_micros;             // 1128
  // A ring (version 3): the oldest live log offset, and the entries evicted over the file's life.
  // Moved by Evict, under the exclusive side, only every few hundredth of the ring. A database of
  // version 5: where its log starts, moved by the cleaner (DBImpl::Clean); no index slot of a
  // live key points below it.
  std::atomic<uint64_t> head;       // 1136
  std::atomic<uint64_t> evictions;  // 1144
};
static_assert(sizeof(SharedState) == 128);
inline constexpr uint64_t kSharedStateOffset = 1024;

// Lock words (page 1). Each on its own cache line.
struct alignas(64) LockState {
  // Writer lock: 0 free, else (slot + 1) of the holder, | kWaitersBit when someone sleeps on it.
  std::atomic<uint32_t> writer;
  // 1 + the highest slot index claimed since the first opener reset the state: a commit looks at
  // slots [0, slot_hwm) only.
  std::atomic<uint32_t> slot_hwm;
  char pad0[56];
  // 1 while a commit holds the exclusive side; readers back off and sleep on it.
  std::atomic<uint32_t> writer_active;
  std::atomic<uint32_t> reader_waiters;  // readers sleeping on writer_active
  // A seqlock over the committed state: odd while a commit (or recovery) changes it. DB::Get
  // reads optimistically, writing nothing shared, and retries when it changed meanwhile.
  std::atomic<uint32_t> publish_seq;
  uint32_t pad1;
  // A database replaced by an online compaction (compact.h): the salt (FileHeader::salt) of the
  // file that took its name, set once by the compaction while it holds the writer lock and the
  // exclusive side; 0 otherwise. On this line because every optimistic read loads publish_seq:
  // a handle finds out at no cost, and moves to the file under the name (DB, db.cc).
  std::atomic<uint64_t> successor;
  // (slot + 1) of a writer that asked for the writer lock ahead of the others (an online
  // compaction's last step, which a stream of commits would otherwise keep from it): other
  // writers wait, before they try for the lock, while it names a live slot. 0: none.
  std::atomic<uint32_t> priority;
  // Writers paced while an online compaction runs (its copy of their commits costs about what
  // the commits did, so writers that run flat out would never let it finish):
  // commits take, together, at most `pace_kib_per_ms` KiB of log per millisecond (0: no pacing),
  // a token bucket whose next free time is `pace_next_ns` (MonotonicMicros * 1000), until the
  // monotonic `pace_until_ns`, which the compaction renews each round (at most a second ahead:
  // one that died stops pacing within a second). Reset by the first opener.
  std::atomic<uint32_t> pace_kib_per_ms;
  std::atomic<uint64_t> pace_next_ns;
  std::atomic<uint64_t> pace_until_ns;
  // A database of version 5: the log below this offset may be given back to the file system (a
  // hole: it reads as zeros). Raised, under the writer lock, before the pins are looked at (and
  // lowered to the oldest pinned snapshot's start where that is below); a snapshot whose log
  // start is below it, once its pin is published, begins again.
  std::atomic<uint64_t> punch_fence;
  char pad2[8];
};
static_assert(sizeof(LockState) == 128);
inline constexpr uint64_t kLockStateOffset = 4096;
inline constexpr uint32_t kWaitersBit = 0x80000000u;

// One per open handle. Owned by whoever holds the byte lock SlotLockByte(i): the kernel drops that
// lock when the process dies, so "is the owner alive" never guesses from a pid.
// Cache statistics (cache.h), counted by each handle in its own slot so that handles of different
// processes never write one line; folded into CacheState::retired when the slot is given up.
enum CacheCounter : uint32_t {
  kCacheHits,
  kCacheMisses,
  kCacheExpirations,
  kCacheComputes,
  kCacheWaits,
  kCacheTakeovers,
  kCacheCounters,
};

struct alignas(64) ProcessSlot {
  std::atomic<uint32_t> readers;  // read locks this handle holds now (bumped by its threads only)
  std::atomic<uint32_t> pid;      // for messages and `stat`; 0 when free
  std::atomic<int64_t> opened_unix_ms;
  // A cache's statistics. A database (which counts nothing) keeps its handle's snapshot pin in
  // the same words instead (kPin*).
  std::atomic<uint64_t> cache_counts[kCacheCounters];
};
static_assert(sizeof(ProcessSlot) == 64);
// A database's snapshot pin, in ProcessSlot::cache_counts: the committed tail that the handle's
// oldest open snapshot reads at (0: no snapshot), when that snapshot began, and how many the
// handle holds. Written by the handle alone; read by `stat` (and by whatever reclaims log space:
// nothing at or after the oldest live pin may be reused).
inline constexpr uint32_t kPinTail = 0;
inline constexpr uint32_t kPinSinceMs = 1;
inline constexpr uint32_t kPinCount = 2;
// Version 5: the log start (SharedState::head) that the oldest snapshot read: nothing it reads
// lies below it, so the cleaner gives back nothing from there on while it lives.
inline constexpr uint32_t kPinHead = 4;
// A database handle's features, in word 3: what another process may rely on it to do.
// Zero in a slot of a build that predates them (a slot's words are zeroed when it is given up).
inline constexpr uint32_t kSlotFeatures = 3;
inline constexpr uint64_t kFollowsSuccessor = 1;  // moves to LockState::successor's file
inline constexpr uint64_t kSlotsOffset = 8192;
static_assert(kSlotsOffset + kMaxSlots * sizeof(ProcessSlot) == kHeaderSize);

// A cache's statistics of the handles gone (closed, or dead and their slot reclaimed), in the
// header page. Zero in a database.
struct CacheState {
  std::atomic<uint64_t> retired[kCacheCounters];
  uint64_t reserved[2];
};
static_assert(sizeof(CacheState) == 64);
inline constexpr uint64_t kCacheStateOffset = 2048;

// A database's history across the compactions in place (online or offline) that replaced its
// file: each writes its source's figures, and its own, into the new file before that takes the
// name. Statistics only (Stats::compactions, bytes_written, bytes_relocated): nothing reads them
// to decide anything, so a crafted value misleads a reader of `stat` and no more. Zero in a file
// no compaction in place wrote (in a copy under another name: it is a new database), and in a
// cache.
struct LineageState {
  std::atomic<uint64_t> compactions;        // 2112: compactions in place that led to this file
  std::atomic<uint64_t> earlier_log_bytes;  // 2120: log bytes written to the files they replaced
  std::atomic<uint64_t> relocated_bytes;    // 2128: of all log bytes written, this file's
                                            //       included, those the compactions copied
  uint64_t reserved[5];
};
static_assert(sizeof(LineageState) == 64);
inline constexpr uint64_t kLineageOffset = kCacheStateOffset + sizeof(CacheState);
static_assert(kLineageOffset + sizeof(LineageState) <= kHeaderPageSize);

// Every log record starts with this, 8-byte aligned.
struct RecordHeader {
  uint64_t checksum;   // 0: XXH3 of bytes [8, 24 + key_len + value_len) (kIndex: [8, 24)),
                       //    seeded with FileHeader::salt ^ the record's offset
  uint32_t value_len;  // 8
  uint16_t key_len;    // 12: kIndex: log2 of the table's slot count
  uint8_t type;        // 14: RecordType
  uint8_t flags;       // 15: kLast
  uint64_t seq;        // 16: the batch's sequence number (SharedState::commits + 1 at commit)
};
static_assert(sizeof(RecordHeader) == 24);

enum RecordType : uint8_t { kPut = 1, kDelete = 2, kCommit = 3, kIndex = 4, kPad = 5 };
inline constexpr uint8_t kLast = 1;     // the record ends its batch
inline constexpr uint8_t kChained = 2;  // kPut/kDelete: the payload starts with a kPrevSize offset
inline constexpr uint64_t kPrevSize = 8;

struct CommitPayload {
  uint64_t digest;   // XXH3 over the checksums of the batch's other records, seeded with
                     // salt ^ the batch's first offset
  uint64_t records;  // records in the batch before this one
};
static_assert(sizeof(CommitPayload) == 16);

// An index slot. Linear probing; deletion leaves a tombstone (a backward shift moves several
// slots, which a crash could leave half done; a tombstone is one 8-byte store).
struct Slot {
  std::atomic<uint64_t> hash;    // XXH3 of the key, seeded with FileHeader::hash_seed
  std::atomic<uint64_t> offset;  // kEmpty, kTombstone, or the offset of a kPut record
};
static_assert(sizeof(Slot) == 16);
inline constexpr uint64_t kEmpty = 0;
inline constexpr uint64_t kTombstone = 1;
// Version 4: a deleted key keeps its slot, which points at its kDelete record with this bit set
// (records are 8-aligned), so that snapshots older than the delete still find the key's chain, a
// lookup of the newest state skips the slot without reading the record, and a rehash drops it.
// Version 4 tables hold no tombstones.
inline constexpr uint64_t kDeadSlot = 4;
constexpr uint64_t SlotRecord(uint64_t offset) { return offset & ~uint64_t{7}; }
constexpr bool SlotDead(uint64_t offset) { return (offset & kDeadSlot) != 0; }

static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

// Bumped by any change of field order that keeps the sizes (sizes are in the signature anyway).
inline constexpr uint32_t kLayoutRevision = 2;

// A build that lays any of these out differently refuses to share a file with this one.
inline constexpr uint32_t kLayoutSignature = static_cast<uint32_t>(
    (kLayoutRevision << 28) ^ (sizeof(FileHeader) << 0) ^ (sizeof(CheckpointRecord) << 4) ^
    (sizeof(SharedState) << 8) ^ (sizeof(LockState) << 12) ^ (sizeof(ProcessSlot) << 16) ^
    (sizeof(RecordHeader) << 20) ^ (sizeof(Slot) << 24) ^ (uint64_t{kMaxSlots} << 8) ^
    (kHeaderSize >> 4));

constexpr uint64_t Align8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }
constexpr uint64_t Align64(uint64_t n) { return (n + 63) & ~uint64_t{63}; }

// Where an index record's slots start, and its whole size.
constexpr uint64_t IndexSlotsOffset(uint64_t record) {
  return Align64(record + sizeof(RecordHeader));
}
constexpr uint64_t IndexRecordSize(uint64_t record, uint32_t bits) {
  return IndexSlotsOffset(record) - record + (uint64_t{sizeof(Slot)} << bits);
}
// A ring's two index tables, of 2^bits slots each, lie at kHeaderSize and kHeaderSize +
// RingTableSize(bits); the ring starts after them. RingBits: the bits of a ring that starts at
// `ring_start`, or 0 when no table size fits.
constexpr uint64_t RingTableSize(uint32_t bits) { return IndexRecordSize(kHeaderSize, bits); }
constexpr uint32_t RingBits(uint64_t ring_start) {
  for (uint32_t bits = 6; bits <= kMaxIndexBits; ++bits) {
    if (ring_start == kHeaderSize + 2 * RingTableSize(bits)) return bits;
  }
  return 0;
}

// Where logical log offset `offset` of a ring lives: [ring_start, ring_start + ring_len).
constexpr uint64_t RingPhys(uint64_t offset, uint64_t ring_start, uint64_t ring_len) {
  return offset < ring_start ? offset : ring_start + (offset - ring_start) % ring_len;
}

// Size of a kPut/kDelete/kCommit record (a chained one: RecordSize(kPrevSize + key_len, ...)).
constexpr uint64_t RecordSize(uint64_t key_len, uint64_t value_len) {
  return Align8(sizeof(RecordHeader) + key_len + value_len);
}
constexpr uint64_t RecordSizeOf(uint64_t key_len, uint64_t value_len, bool chained) {
  return RecordSize(key_len + (chained ? kPrevSize : 0), value_len);
}

}  // namespace mapkv::internal

#endif  // MAPKV_FORMAT_H_
