// The public API: thin wrappers over DBImpl.
#include "mapkv/db.h"

#include <algorithm>
#include <utility>

#include "src/db_impl.h"
#include "src/status_macros.h"

namespace mapkv {

using internal::DBImpl;
using internal::WriteState;

// ---- ReadTxn ----

ReadTxn::ReadTxn(ReadTxn&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      tail_(other.tail_),
      index_record_(other.index_record_),
      index_bits_(other.index_bits_),
      count_(other.count_),
      snapshot_(other.snapshot_) {}

ReadTxn& ReadTxn::operator=(ReadTxn&& other) noexcept {
  if (this != &other) {
    Release();
    db_ = std::exchange(other.db_, nullptr);
    tail_ = other.tail_;
    index_record_ = other.index_record_;
    index_bits_ = other.index_bits_;
    count_ = other.count_;
    snapshot_ = other.snapshot_;
  }
  return *this;
}

ReadTxn::~ReadTxn() { Release(); }

void ReadTxn::Release() {
  if (db_ == nullptr) return;
  DBImpl* db = std::exchange(db_, nullptr);
  if (snapshot_) {
    db->Unpin(tail_);
  } else {
    db->UnlockShared();
  }
}

namespace {
internal::Snapshot ToSnapshot(uint64_t tail, uint64_t index_record, uint64_t index_bits,
                              uint64_t count, bool as_of) {
  internal::Snapshot s;
  s.tail = tail;
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
  if (snapshot_) MAPKV_RETURN_IF_ERROR(db_->CheckSnapshotAge(tail_));
  return db_->Lookup(ToSnapshot(tail_, index_record_, index_bits_, count_, snapshot_), key);
}

void ReadTxn::MultiGet(absl::Span<const std::string_view> keys,
                       absl::Span<absl::StatusOr<std::string_view>> values) const {
  absl::Status usable = db_ == nullptr ? Finished() : db_->CheckUsable();
  if (usable.ok() && snapshot_) usable = db_->CheckSnapshotAge(tail_);
  const size_t n = std::min(keys.size(), values.size());
  if (!usable.ok()) {
    for (size_t i = 0; i < n; ++i) values[i] = usable;
    return;
  }
  const internal::Snapshot snap = ToSnapshot(tail_, index_record_, index_bits_, count_, snapshot_);
  for (size_t start = 0; start < n; start += internal::kLookupBatch) {
    db_->LookupBatch(snap, keys.data() + start, std::min(internal::kLookupBatch, n - start),
                     values.data() + start);
  }
}

absl::Status ReadTxn::ForEach(
    absl::FunctionRef<bool(std::string_view key, std::string_view value)> fn) const {
  if (db_ == nullptr) return Finished();
  MAPKV_RETURN_IF_ERROR(db_->CheckUsable());
  return db_->ForEach(ToSnapshot(tail_, index_record_, index_bits_, count_, snapshot_), fn);
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
  absl::Status s = db->Commit(*state_);
  db->EndWrite(*state_);
  state_.reset();
  return s;
}

void WriteTxn::Abort() {
  if (state_ == nullptr) return;
  // Nothing to undo: the records past the committed tail are never seen and get overwritten.
  if (state_->db != nullptr) state_->db->EndWrite(*state_);  // nothing in a child of fork()
  state_.reset();
}

// ---- DB ----

DB::DB(std::unique_ptr<DBImpl> impl) : impl_(std::move(impl)) {}
DB::~DB() = default;

absl::StatusOr<std::unique_ptr<DB>> DB::Open(const std::string& path, const Options& options) {
  MAPKV_ASSIGN_OR_RETURN(std::unique_ptr<DBImpl> impl, DBImpl::Open(path, options));
  return std::unique_ptr<DB>(new DB(std::move(impl)));
}

absl::StatusOr<std::string> DB::Get(std::string_view key) { return impl_->Get(key); }

absl::Status DB::Get(std::string_view key, std::string* value) { return impl_->Get(key, value); }

absl::Status DB::MultiGet(absl::Span<const std::string_view> keys,
                          std::vector<absl::StatusOr<std::string>>* values) {
  return impl_->MultiGet(keys, values);
}

absl::Status DB::Put(std::string_view key, std::string_view value) {
  return impl_->PutOrDelete(key, &value);
}

absl::Status DB::Delete(std::string_view key) { return impl_->PutOrDelete(key, nullptr); }

absl::StatusOr<ReadTxn> DB::BeginRead() {
  MAPKV_ASSIGN_OR_RETURN(internal::Snapshot snap,
                         impl_->snapshots() ? impl_->BeginSnapshot() : impl_->LockShared());
  return ReadTxn(impl_.get(), snap.tail, snap.index_record, snap.index_bits, snap.count,
                 snap.as_of);
}

absl::StatusOr<WriteTxn> DB::BeginWrite() {
  MAPKV_ASSIGN_OR_RETURN(std::unique_ptr<WriteState> state, impl_->BeginWrite());
  return WriteTxn(std::move(state));
}

absl::Status DB::Checkpoint() { return impl_->Checkpoint(); }

Stats DB::GetStats() { return impl_->GetStats(); }

std::vector<SnapshotInfo> DB::Snapshots() { return impl_->Snapshots(); }

absl::Status DB::Verify(std::vector<VerifyProblem>* problems) { return impl_->Verify(problems); }

const std::string& DB::path() const { return impl_->path(); }

}  // namespace mapkv
