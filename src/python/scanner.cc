#include "src/python/scanner.h"

#include <exception>
#include <new>

namespace mapkv {
namespace python {

Scanner::Scanner(const ReadTxn& txn) : thread_([this, &txn] { Run(txn); }) {}

Scanner::~Scanner() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancel_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Scanner::Run(const ReadTxn& txn) {
  Batch local;
  local.reserve(kFirstBatch);
  size_t limit = kFirstBatch;
  absl::Status s;
  try {
    s = txn.ForEach([&](std::string_view k, std::string_view v) {
      local.emplace_back(k, v);
      if (local.size() < limit) return true;
      limit = kBatch;
      return Hand(&local);
    });
  } catch (const std::bad_alloc&) {
    s = absl::ResourceExhaustedError("mapkv: out of memory while iterating");
  }
  std::lock_guard<std::mutex> lock(mu_);
  // The last batch waits for the one before it to be taken.
  if (!cancel_ && !has_ready_) {
    ready_.swap(local);
    has_ready_ = !ready_.empty();
  } else if (!cancel_) {
    ready_.insert(ready_.end(), local.begin(), local.end());
  }
  status_ = std::move(s);
  done_ = true;
  cv_.notify_all();
}

bool Scanner::Hand(Batch* local) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !has_ready_ || cancel_; });
  if (cancel_) return false;
  ready_.swap(*local);
  has_ready_ = true;
  local->clear();
  cv_.notify_all();
  return true;
}

bool Scanner::TakeLocked(Batch* out, absl::Status* status, bool* end) {
  if (has_ready_) {
    out->swap(ready_);
    ready_.clear();
    has_ready_ = false;
    cv_.notify_all();
    *end = false;
    return true;
  }
  if (done_) {
    *status = status_;
    *end = true;
    return true;
  }
  return false;
}

bool Scanner::TryNext(Batch* out, bool* end, absl::Status* status) {
  std::lock_guard<std::mutex> lock(mu_);
  return TakeLocked(out, status, end);
}

bool Scanner::Next(Batch* out, absl::Status* status) {
  std::unique_lock<std::mutex> lock(mu_);
  bool end = false;
  cv_.wait(lock, [&] { return TakeLocked(out, status, &end); });
  return !end;
}

}  // namespace python
}  // namespace mapkv
