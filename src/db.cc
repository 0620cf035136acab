// The public API: thin wrappers over DBImpl.
#include "mapkv/db.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <new>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "mapkv/compact.h"
#include "src/db_impl.h"
#include "src/errors.h"
#include "src/status_macros.h"

namespace mapkv {

using internal::DBImpl;
using internal::WriteState;

// ---- ReadTxn ----

ReadTxn::ReadTxn(ReadTxn&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      tail_(other.tail_),
      head_(other.head_),
      index_record_(other.index_record_),
      index_bits_(other.index_bits_),
      count_(other.count_),
      snapshot_(other.snapshot_),
      copy_(std::move(other.copy_)) {}

ReadTxn::ReadTxn(internal::DBImpl* db, uint64_t tail, uint64_t head, uint64_t index_record,
                 uint64_t index_bits, uint64_t count, bool snapshot)
    : db_(db),
      tail_(tail),
      head_(head),
      index_record_(index_record),
      index_bits_(index_bits),
      count_(count),
      snapshot_(snapshot) {}

ReadTxn::ReadTxn(internal::DBImpl* db, std::unique_ptr<const internal::CopiedSnapshot> copy)
    : db_(db),
      tail_(0),
      head_(0),
      index_record_(0),
      index_bits_(0),
      count_(copy->live.size()),
      snapshot_(false),
      copy_(std::move(copy)) {}

ReadTxn& ReadTxn::operator=(ReadTxn&& other) noexcept {
  if (this != &other) {
    Release();
    db_ = std::exchange(other.db_, nullptr);
    tail_ = other.tail_;
    head_ = other.head_;
    index_record_ = other.index_record_;
    index_bits_ = other.index_bits_;
    count_ = other.count_;
    snapshot_ = other.snapshot_;
    copy_ = std::move(other.copy_);
  }
  return *this;
}

ReadTxn::~ReadTxn() { Release(); }

void ReadTxn::Release() {
  if (db_ == nullptr) return;
  DBImpl* db = std::exchange(db_, nullptr);
  const bool copied = std::exchange(copy_, nullptr) != nullptr;  // holds nothing of the file
  // In a child of fork() nothing of the handle is the child's (DBImpl::Unpin, UnlockShared).
  if (!db->CheckUsable().ok()) return;
  if (snapshot_) {
    db->Unpin(tail_);
  } else if (!copied) {
    db->UnlockShared();
  }
  db->DropUser();
}

namespace {
internal::Snapshot ToSnapshot(uint64_t tail, uint64_t head, uint64_t index_record,
                              uint64_t index_bits, uint64_t count, bool as_of) {
  internal::Snapshot s;
  s.tail = tail;
  s.head = head;
  s.index_record = index_record;
  s.index_bits = static_cast<uint32_t>(index_bits);
  s.count = count;
  s.as_of = as_of;
  return s;
}

absl::Status Finished() {
  return absl::FailedPreconditionError("transaction already finished or moved from");
}
}  // namespace

absl::StatusOr<std::string_view> ReadTxn::Get(std::string_view key) const {
  if (db_ == nullptr) return Finished();
  MAPKV_RETURN_IF_ERROR(db_->CheckUsable());
  if (snapshot_) MAPKV_RETURN_IF_ERROR(db_->CheckSnapshotAge(tail_, head_));
  if (copy_ != nullptr) return CopiedGet(key);
  return db_->Lookup(ToSnapshot(tail_, head_, index_record_, index_bits_, count_, snapshot_), key);
}

void ReadTxn::MultiGet(absl::Span<const std::string_view> keys,
                       absl::Span<absl::StatusOr<std::string_view>> values) const {
  absl::Status usable = db_ == nullptr ? Finished() : db_->CheckUsable();
  if (usable.ok() && snapshot_) usable = db_->CheckSnapshotAge(tail_, head_);
  const size_t n = std::min(keys.size(), values.size());
  if (!usable.ok()) {
    for (size_t i = 0; i < n; ++i) values[i] = usable;
    return;
  }
  if (copy_ != nullptr) {
    for (size_t i = 0; i < n; ++i) values[i] = CopiedGet(keys[i]);
    return;
  }
  const internal::Snapshot snap =
      ToSnapshot(tail_, head_, index_record_, index_bits_, count_, snapshot_);
  for (size_t start = 0; start < n; start += internal::kLookupBatch) {
    db_->LookupBatch(snap, keys.data() + start, std::min(internal::kLookupBatch, n - start),
                     values.data() + start);
  }
}

absl::Status ReadTxn::ForEach(
    absl::FunctionRef<bool(std::string_view key, std::string_view value)> fn) const {
  if (db_ == nullptr) return Finished();
  MAPKV_RETURN_IF_ERROR(db_->CheckUsable());
  if (copy_ != nullptr) {
    for (const internal::CopiedSnapshot::Entry& e : copy_->log_order) {
      if (e.live && !fn(e.key, e.value)) break;
    }
    return absl::OkStatus();
  }
  return db_->ForEach(ToSnapshot(tail_, head_, index_record_, index_bits_, count_, snapshot_), fn);
}

absl::StatusOr<std::string_view> ReadTxn::CopiedGet(std::string_view key) const {
  MAPKV_RETURN_IF_ERROR(internal::CheckKeySize(db_->path(), key));
  const auto it = copy_->live.find(key);
  if (it == copy_->live.end()) return internal::KeyNotFoundError(db_->path(), key);
  return copy_->log_order[it->second].value;
}

uint64_t ReadTxn::Count() const { return db_ == nullptr ? 0 : count_; }

// ---- WriteTxn ----

WriteTxn::WriteTxn(std::unique_ptr<WriteState> state) : state_(std::move(state)) {}
WriteTxn::WriteTxn(WriteTxn&& other) noexcept = default;
WriteTxn& WriteTxn::operator=(WriteTxn&& other) noexcept {
  if (this != &other) {
    Abort();
    state_ = std::move(other.state_);
  }
  return *this;
}
WriteTxn::~WriteTxn() { Abort(); }

absl::StatusOr<std::string_view> WriteTxn::Get(std::string_view key) const {
  if (state_ == nullptr || state_->db == nullptr) return Finished();
  return state_->db->TxnGet(*state_, key);
}

absl::Status WriteTxn::Put(std::string_view key, std::string_view value) {
  if (state_ == nullptr || state_->db == nullptr) return Finished();
  return state_->db->TxnPut(*state_, key, value);
}

absl::Status WriteTxn::Delete(std::string_view key) {
  if (state_ == nullptr || state_->db == nullptr) return Finished();
  return state_->db->TxnDelete(*state_, key);
}

absl::Status WriteTxn::Commit() {
  if (state_ == nullptr || state_->db == nullptr) return Finished();
  DBImpl* db = state_->db;
  DB* owner = state_->owner;
  absl::Status s = db->Commit(*state_);
  const uint64_t bytes = state_->tail - state_->start;
  db->EndWrite(*state_);
  state_.reset();
  if (s.ok()) db->rwlock().Pace(bytes);
  if (s.ok() && owner != nullptr) owner->MaybeCompact(*owner->impl());
  return s;
}

void WriteTxn::Abort() {
  if (state_ == nullptr) return;
  // Nothing to undo: the records past the committed tail are never seen and get overwritten.
  if (state_->db != nullptr) state_->db->EndWrite(*state_);  // nothing in a child of fork()
  state_.reset();
}

// ---- DB ----

namespace internal {

// The online compactions a handle starts (Options::compact_ratio): one at a time, on a thread of
// its own, joined when the handle closes. After one that failed, the next waits until the log has
// grown by compact_min_garbage more.
class Compactor {
 public:
  explicit Compactor(const Options& options)
      : options_(options), fork_generation_(ForkGeneration()) {}
  ~Compactor() {
    if (!thread_.joinable()) return;
    // A child of fork() has no such thread: leave its object behind, unjoined.
    if (ForkGeneration() != fork_generation_) {
      new (&orphan_) std::thread(std::move(thread_));
      return;
    }
    thread_.join();
  }

  // `salt` names the file whose log has `log_bytes`: a failure holds off retries of that file
  // only, not of the file that a compaction (another's) put in its place.
  void Start(const std::string& path, uint64_t salt, uint64_t log_bytes) {
    if (running_.load(std::memory_order_acquire) || ForkGeneration() != fork_generation_) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (running_.load() || (salt == failed_salt_ && log_bytes < retry_after_)) return;
    if (thread_.joinable()) thread_.join();  // the last one, finished
    running_.store(true);
    thread_ = std::thread([this, path, salt, log_bytes] {
      CompactOptions options;
      options.lock_timeout = options_.lock_timeout;
      options.env = options_.env;
      absl::StatusOr<CompactResult> r = Compact(path, "", options);
      // A compaction beside busy writers copies the versions they replaced meanwhile too. Where
      // that left the new file past the ratio already, the next one starts now, not at a next
      // commit that may never come.
      for (int more = 0; more < kFollowUps && r.ok() && LeftPastTheRatio(*r); ++more) {
        r = Compact(path, "", options);
      }
      if (!r.ok()) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          failed_salt_ = salt;
          retry_after_ = log_bytes + options_.compact_min_garbage;
        }
        // Another process's compaction of the file, running or done first, is no news.
        if (!absl::IsFailedPrecondition(r.status()) && !IsSuperseded(r.status())) {
          Log(absl::StrCat("online compaction failed: ", r.status().ToString()));
        }
      }
      running_.store(false, std::memory_order_release);
    });
  }

 private:
  static constexpr int kFollowUps = 2;

  // Whether `r`'s new file calls for a compaction by itself (as DBImpl::WantsCompaction, with
  // the live records for what a compaction keeps).
  bool LeftPastTheRatio(const CompactResult& r) const {
    return r.garbage_after >= options_.compact_min_garbage &&
           static_cast<double>(r.garbage_after) >
               (options_.compact_ratio - 1) * static_cast<double>(r.live_bytes);
  }

  void Log(const std::string& line) const {
    if (options_.info_log) {
      options_.info_log(line);
    } else {
      std::fprintf(stderr, "mapkv: %s\n", line.c_str());
    }
  }

  const Options options_;
  const uint64_t fork_generation_;
  std::mutex mu_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  uint64_t failed_salt_ = 0;  // guarded by mu_: the file of the last failure,
  uint64_t retry_after_ = 0;  // guarded by mu_: and its log's length for the next try
  union {
    std::thread orphan_;  // never destroyed: see ~Compactor
  };
};

}  // namespace internal

void DB::MaybeCompact(DBImpl& db) {
  // On the committing thread, after it released the writer lock. Run from the compaction thread
  // instead, beside a writer that went on, it doubled the CPU time per update (measured with
  // mapkv_peer_bench's update phase; the cause was not located).
  db.MaybeStartWriteback();
  if (db.WantsGiveBack()) db.MaybeGiveBack();
  if (db.WantsCompaction()) compactor_->Start(db.path(), db.salt(), db.committed_tail());
}

namespace {
const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <class T>
const absl::Status& StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}
// Moves per call: each is to a file that an online compaction put in place after the call
// began, so more than one means compactions one after another faster than a call.
constexpr int kMaxMoves = 16;
}  // namespace

DB::DB(std::unique_ptr<DBImpl> impl)
    : current_(impl.get()), compactor_(std::make_unique<internal::Compactor>(impl->options())) {
  impls_.push_back(std::move(impl));
}
DB::~DB() { compactor_.reset(); }  // before the handles it may still be compacting beside

absl::StatusOr<std::unique_ptr<DB>> DB::Open(const std::string& path, const Options& options) {
  MAPKV_ASSIGN_OR_RETURN(std::unique_ptr<DBImpl> impl, DBImpl::Open(path, options));
  return std::unique_ptr<DB>(new DB(std::move(impl)));
}

template <class Call>
auto DB::OnCurrent(Call&& call) {
  for (int moves = 0;; ++moves) {
    DBImpl* from = impl();
    auto result = call(*from);
    if (!internal::IsSuperseded(StatusOf(result)) || moves == kMaxMoves) return result;
    if (absl::Status s = MoveOn(from); !s.ok()) return decltype(result)(s);
  }
}

absl::Status DB::MoveOn(DBImpl* from) {
  std::lock_guard<std::mutex> lock(move_mu_);
  if (impl() != from) return absl::OkStatus();  // another thread moved on
  Options options = from->options();
  options.create_if_missing = false;
  options.error_if_exists = false;
  const auto deadline = std::chrono::steady_clock::now() + options.lock_timeout;
  for (;;) {
    // Taken back: the compaction died before its file took the name (DBImpl::Recover).
    if (from->successor() == 0) return absl::OkStatus();
    absl::StatusOr<std::unique_ptr<DBImpl>> next = DBImpl::Open(from->path(), options);
    if (!next.ok()) return next.status();
    if ((*next)->salt() != from->salt()) {
      current_.store(next->get(), std::memory_order_release);
      impls_.push_back(*std::move(next));
      from->Retire();
      return absl::OkStatus();
    }
    // The name still leads here: the compaction marked this file and has not yet renamed its
    // own over it. It holds the writer lock until it has; a writer that takes the lock from it
    // dead takes the mark back. A handle that may not write waits for either.
    next->reset();
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(from->path(), ": an online compaction marked it replaced, but its new file ",
                       "did not take the name within lock_timeout"));
    }
    if (!from->WaitForWriter().ok()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

absl::StatusOr<std::string> DB::Get(std::string_view key) {
  return OnCurrent([&](DBImpl& db) { return db.Get(key); });
}

absl::Status DB::Get(std::string_view key, std::string* value) {
  return OnCurrent([&](DBImpl& db) { return db.Get(key, value); });
}

absl::Status DB::MultiGet(absl::Span<const std::string_view> keys,
                          std::vector<absl::StatusOr<std::string>>* values) {
  return OnCurrent([&](DBImpl& db) { return db.MultiGet(keys, values); });
}

absl::Status DB::Put(std::string_view key, std::string_view value) {
  absl::Status s = OnCurrent([&](DBImpl& db) { return db.PutOrDelete(key, &value); });
  if (s.ok()) MaybeCompact(*impl());
  return s;
}

absl::Status DB::Delete(std::string_view key) {
  absl::Status s = OnCurrent([&](DBImpl& db) { return db.PutOrDelete(key, nullptr); });
  if (s.ok()) MaybeCompact(*impl());
  return s;
}

absl::StatusOr<ReadTxn> DB::BeginRead() {
  return OnCurrent([&](DBImpl& db) -> absl::StatusOr<ReadTxn> {
    MAPKV_RETURN_IF_ERROR(db.AddUser());
    if (db.copies_snapshots()) {
      // A cache whose log is damaged is read as before the copy, under the shared lock, where
      // ForEach and Get report the damage at the record it lies in.
      absl::StatusOr<std::unique_ptr<internal::CopiedSnapshot>> copy = db.CopySnapshot();
      if (copy.ok()) return ReadTxn(&db, *std::move(copy));
      if (!absl::IsDataLoss(copy.status())) {
        db.DropUser();
        return copy.status();
      }
    }
    absl::StatusOr<internal::Snapshot> snap = db.snapshots() ? db.BeginSnapshot() : db.LockShared();
    if (!snap.ok()) {
      db.DropUser();
      return snap.status();
    }
    return ReadTxn(&db, snap->tail, snap->head, snap->index_record, snap->index_bits, snap->count,
                   snap->as_of);
  });
}

absl::StatusOr<WriteTxn> DB::BeginWrite() {
  return OnCurrent([&](DBImpl& db) -> absl::StatusOr<WriteTxn> {
    MAPKV_ASSIGN_OR_RETURN(std::unique_ptr<WriteState> state, db.BeginWrite());
    state->owner = this;
    return WriteTxn(std::move(state));
  });
}

absl::Status DB::Checkpoint() {
  return OnCurrent([&](DBImpl& db) { return db.Checkpoint(); });
}

namespace {
// call(db) as a user of `db` (DBImpl::AddUser), for the calls that may use its descriptor, on a
// file not replaced: Superseded() otherwise, for OnCurrent to move on.
template <class Call>
auto AsUser(DBImpl& db, Call&& call) -> absl::StatusOr<decltype(call())> {
  if (db.successor() != 0) return db.Superseded();
  MAPKV_RETURN_IF_ERROR(db.AddUser());
  auto result = call();
  db.DropUser();
  return result;
}
}  // namespace

Stats DB::GetStats() {
  absl::StatusOr<Stats> stats =
      OnCurrent([&](DBImpl& db) { return AsUser(db, [&] { return db.GetStats(); }); });
  return stats.ok() ? *stats : Stats{};
}

std::vector<SnapshotInfo> DB::Snapshots() {
  absl::StatusOr<std::vector<SnapshotInfo>> out =
      OnCurrent([&](DBImpl& db) { return AsUser(db, [&] { return db.Snapshots(); }); });
  return out.ok() ? *std::move(out) : std::vector<SnapshotInfo>{};
}

absl::Status DB::Verify(std::vector<VerifyProblem>* problems) {
  return OnCurrent([&](DBImpl& db) -> absl::Status {
    if (db.successor() != 0) return db.Superseded();
    MAPKV_RETURN_IF_ERROR(db.AddUser());
    absl::Status s = db.Verify(problems);
    db.DropUser();
    return s;
  });
}

const std::string& DB::path() const { return impl()->path(); }

}  // namespace mapkv
