// Scanner: ReadTxn::ForEach turned into batches taken one at a time, so that Python iterates a
// read transaction lazily. ForEach calls back and cannot stop at a place and go on from there; the
// Scanner runs it on a thread of its own, which hands over a batch of views into the mapping (valid
// while the transaction lives) and waits until the consumer takes it. The first batch is small
// (next(iter(db)) costs little), the later ones larger; the thread fills the next batch while the
// consumer reads the current one.
#ifndef MAPKV_PYTHON_SCANNER_H_
#define MAPKV_PYTHON_SCANNER_H_

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "mapkv/db.h"

namespace mapkv {
namespace python {

class Scanner {
 public:
  using Batch = std::vector<std::pair<std::string_view, std::string_view>>;

  // Starts the scan of `txn`, which must outlive this object.
  explicit Scanner(const ReadTxn& txn);
  // Stops the scan and waits for its thread.
  ~Scanner();
  Scanner(const Scanner&) = delete;
  Scanner& operator=(const Scanner&) = delete;

  // A batch ready now, without waiting: true with *out filled; false when none is ready yet.
  bool TryNext(Batch* out, bool* end, absl::Status* status);
  // The next batch, waiting for it: true with *out filled; false at the end, with *status the
  // scan's result. Call without the GIL.
  bool Next(Batch* out, absl::Status* status);

 private:
  static constexpr size_t kFirstBatch = 32;
  static constexpr size_t kBatch = 1024;

  void Run(const ReadTxn& txn);
  bool Hand(Batch* local);  // false when cancelled
  bool TakeLocked(Batch* out, absl::Status* status, bool* end);

  std::mutex mu_;
  std::condition_variable cv_;
  Batch ready_;  // guarded by mu_
  bool has_ready_ = false;
  bool done_ = false;    // the scan ended: ready_ is its last batch, status_ its result
  bool cancel_ = false;  // the consumer went away
  absl::Status status_;
  std::thread thread_;
};

}  // namespace python
}  // namespace mapkv

#endif  // MAPKV_PYTHON_SCANNER_H_
