#include "scan.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "src/format.h"
#include "src/log.h"

namespace mapkv::tools {
namespace {

uint64_t Load64(const std::string& file, uint64_t offset) {
  uint64_t v = 0;
  if (offset + sizeof(v) <= file.size()) std::memcpy(&v, file.data() + offset, sizeof(v));
  return v;
}

bool AllZero(const std::string& file, uint64_t offset, uint64_t n) {
  for (uint64_t i = offset; i < offset + n && i < file.size(); ++i) {
    if (file[i] != 0) return false;
  }
  return true;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::FILE* in = std::fopen(path.c_str(), "rb");
  if (in == nullptr) {
    const int error = errno;
    const std::string message = absl::StrCat(path, ": cannot open: ", std::strerror(error));
    return error == ENOENT ? absl::NotFoundError(message) : absl::UnknownError(message);
  }
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), in)) > 0) out.append(buf, n);
  const bool failed = std::ferror(in) != 0;
  const int error = errno;
  std::fclose(in);
  if (failed) {
    return absl::DataLossError(absl::StrCat(path, ": read error: ", std::strerror(error)));
  }
  return out;
}

}  // namespace

absl::StatusOr<LogScan> LogScan::Read(const std::string& path) {
  LogScan scan;
  scan.path_ = path;
  absl::StatusOr<std::string> file = ReadWholeFile(path);
  if (!file.ok()) return file.status();
  scan.file_ = *std::move(file);
  absl::Status status = scan.Scan();
  if (!status.ok()) return status;
  return scan;
}

uint64_t LogScan::damaged_bytes() const {
  uint64_t n = 0;
  for (const DamagedRegion& d : damaged_) n += d.bytes;
  return n;
}

absl::Status LogScan::Scan() {
  using namespace internal;  // NOLINT: the format's names
  if (file_.size() < kHeaderSize || std::memcmp(file_.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": not a mapkv file (no magic)"));
  }
  FileHeader header;
  std::memcpy(&header, file_.data(), sizeof(header));
  format_version_ = header.format_version;
  if (format_version_ == kRingFormatVersion) {
    return absl::UnimplementedError(absl::StrCat(
        path_,
        ": a cache with a capacity (format version 3): its log is a ring, which salvage "
        "cannot scan; `mapkv dump` lists what the engine can read"));
  }
  if (!KnownVersion(format_version_)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": unknown format version ", format_version_));
  }
  const uint64_t salt = header.salt;
  const uint64_t tail = Load64(file_, kSharedStateOffset);  // SharedState::committed_tail
  used_committed_tail_ = tail >= kHeaderSize && tail <= file_.size() && tail % 8 == 0;
  const uint64_t limit = used_committed_tail_ ? tail : file_.size() & ~uint64_t{7};
  scanned_to_ = limit;

  struct Version {
    uint64_t order;
    std::optional<std::string_view> value;
  };
  absl::flat_hash_map<std::string_view, Version> versions;
  uint64_t order = 0;
  auto apply = [&](const Record& r) {
    Version& v = versions[r.key];
    v.order = order++;
    v.value = r.type == kPut ? std::optional<std::string_view>(r.value) : std::nullopt;
  };
  // Past the committed end only whole batches count: the records of the batch being read.
  std::vector<Record> pending;
  auto drop_pending = [&] {
    dropped_records_ += pending.size();
    pending.clear();
  };

  uint64_t offset = kHeaderSize;
  std::optional<DamagedRegion> damage;
  while (offset + sizeof(RecordHeader) <= limit) {
    if (!used_committed_tail_ && AllZero(file_, offset, sizeof(RecordHeader))) {
      // Past the end of what was ever written (the file grows zero-filled): no damage.
      if (damage) {
        damage->bytes = offset - damage->offset;
        damaged_.push_back(*damage);
        damage.reset();
      }
      drop_pending();
      offset += 8;
      continue;
    }
    absl::StatusOr<Record> r = ReadRecord(file_.data(), offset, limit, salt, /*verify=*/true);
    if (!r.ok()) {
      if (!damage) damage = DamagedRegion{offset, 0};
      if (!used_committed_tail_) drop_pending();
      offset += 8;
      continue;
    }
    if (damage) {
      damage->bytes = offset - damage->offset;
      damaged_.push_back(*damage);
      damage.reset();
    }
    if (r->type == kPut || r->type == kDelete) {
      ++intact_records_;
      if (used_committed_tail_) {
        apply(*r);
      } else {
        if (!pending.empty() && pending.back().seq != r->seq) drop_pending();
        pending.push_back(*r);
      }
    }
    if (!used_committed_tail_ && r->type != kIndex && (r->flags & kLast) != 0) {
      if (!pending.empty() && pending.back().seq == r->seq) {
        for (const Record& p : pending) apply(p);
        pending.clear();
      }
    }
    offset += r->size;
  }
  if (damage) {
    damage->bytes = limit - damage->offset;
    damaged_.push_back(*damage);
  }
  drop_pending();

  latest_.reserve(versions.size());
  std::vector<std::pair<uint64_t, std::pair<std::string_view, std::optional<std::string_view>>>>
      ordered;
  ordered.reserve(versions.size());
  for (const auto& [key, v] : versions) {
    ordered.push_back({v.order, {key, v.value}});
    if (v.value) ++live_keys_;
  }
  std::sort(ordered.begin(), ordered.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [o, kv] : ordered) latest_.push_back(kv);
  CountLostLatest(salt);
  return absl::OkStatus();
}

void LogScan::CountLostLatest(uint64_t salt) {
  using namespace internal;  // NOLINT: the format's names
  // SharedState::index_record, the current index table.
  const uint64_t index = Load64(file_, kSharedStateOffset + 64);
  if (index < kHeaderSize || index % 8 != 0 || index >= file_.size()) return;
  absl::StatusOr<Record> r = ReadRecord(file_.data(), index, file_.size() & ~uint64_t{7}, salt,
                                        /*verify=*/true);
  if (!r.ok() || r->type != kIndex) return;
  const uint64_t slots = IndexSlotsOffset(index);
  const uint64_t capacity = uint64_t{1} << r->index_bits;
  if (slots + capacity * sizeof(Slot) > file_.size()) return;
  uint64_t lost = 0;
  for (uint64_t i = 0; i < capacity; ++i) {
    const uint64_t target = Load64(file_, slots + i * sizeof(Slot) + 8);
    // A dead slot (format version 4) is a deleted key, pointing at its kDelete: not live.
    if (target == kEmpty || target == kTombstone || SlotDead(target)) continue;
    absl::StatusOr<Record> put = ReadRecord(file_.data(), SlotRecord(target),
                                            file_.size() & ~uint64_t{7}, salt, /*verify=*/true);
    if (!put.ok() || put->type != kPut) ++lost;
  }
  lost_latest_ = lost;
}

}  // namespace mapkv::tools
