// Reads a mapkv file's log record by record, without the engine, for `mapkv salvage` and
// `mapkv dump --skip-damaged`: the engine's readers stop at the first damaged record, this scan
// goes past it.
//
// The log (src/format.h) is a sequence of 8-byte aligned records, each with a header whose
// checksum is seeded with the file's salt and the record's offset. The scan decodes the record at
// each offset; where one fails its checksum (or its header is nonsense) it moves on 8 bytes at a
// time until a record verifies again. A record verifies only at the offset it was written at, so
// resynchronising never takes a stray copy of a record for one.
//
// Which records count: every byte of the log below SharedState::committed_tail belongs to a
// committed batch (a commit appends at the committed end and moves it past the batch), so every
// put and delete that verifies there was committed, and log order is commit order: the last
// intact record of a key is its latest intact version. When the committed end is unreadable (out
// of the file, misaligned), the scan goes to the end of the file and takes only the records of
// batches that end intact (a record with kLast), since past the committed end lie the remains of
// aborted transactions; zero bytes there are space never written, not damage.
//
// Losses: the damaged regions (offset and length), and, when the index table is intact, the live
// keys whose record the index points at is damaged: their latest version is lost (an older one
// may have been recovered).
//
// The file is read into memory whole, with stdio: it is never written, locked or mapped.
#ifndef MAPKV_TOOLS_SCAN_H_
#define MAPKV_TOOLS_SCAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "src/format.h"

namespace mapkv::tools {

struct DamagedRegion {
  uint64_t offset = 0;
  uint64_t bytes = 0;
};

class LogScan {
 public:
  // Scans the file at `path`. NotFound when it cannot be opened; InvalidArgument when it is no
  // mapkv file; Unimplemented for a bounded cache (format version 3), whose ring needs the live
  // range to locate its records.
  static absl::StatusOr<LogScan> Read(const std::string& path);

  uint32_t format_version() const { return format_version_; }
  bool is_cache() const { return internal::IsCacheVersion(format_version_); }

  // Calls fn for the latest intact version of every key that is not deleted, in log order of
  // those versions, until it returns false. Views into the file's copy, valid while *this lives.
  template <typename Fn>
  void ForEach(Fn fn) const {
    for (const auto& [key, value] : latest_) {
      if (value && !fn(key, *value)) return;
    }
  }
  uint64_t live_keys() const { return live_keys_; }

  uint64_t intact_records() const { return intact_records_; }  // puts and deletes that verified
  uint64_t dropped_records() const {
    return dropped_records_;
  }  // intact, but of incomplete batches
  const std::vector<DamagedRegion>& damaged() const { return damaged_; }
  uint64_t damaged_bytes() const;
  // Live keys of the index whose latest record is damaged; nullopt when the index is unreadable.
  std::optional<uint64_t> lost_latest() const { return lost_latest_; }
  // Whether the scan stopped at the committed end (false: at the end of the file).
  bool used_committed_tail() const { return used_committed_tail_; }
  uint64_t scanned_to() const { return scanned_to_; }

 private:
  LogScan() = default;
  absl::Status Scan();
  void CountLostLatest(uint64_t salt);

  std::string path_;
  std::string file_;
  uint32_t format_version_ = 0;
  // Keys in the order their latest version was written; a delete is nullopt.
  std::vector<std::pair<std::string_view, std::optional<std::string_view>>> latest_;
  uint64_t live_keys_ = 0;
  uint64_t intact_records_ = 0;
  uint64_t dropped_records_ = 0;
  std::vector<DamagedRegion> damaged_;
  std::optional<uint64_t> lost_latest_;
  bool used_committed_tail_ = false;
  uint64_t scanned_to_ = 0;
};

}  // namespace mapkv::tools

#endif  // MAPKV_TOOLS_SCAN_H_
