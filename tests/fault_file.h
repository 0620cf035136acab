// A simulated disk for power-cut tests: a MappedFile backend (src/platform/mapped_file.h) that
// keeps the "disk" in memory beside the mapping the engine writes to.
//
// What the engine stores into the mapping reaches the disk image only through Flush() (msync),
// a whole page at a time, as the page cache does; Sync() (fsync) makes the file's size durable,
// and so does a Flush (Linux's msync is fdatasync of the range). PowerCut() is the machine losing
// power: of the pages that differ from the disk, a random subset (none, all, or any in between,
// taken in a random order, the last one possibly torn at a 512-byte sector) reaches the disk and
// the rest is lost; the file's size is the durable one or, at random, the latest. From then on
// the disk is frozen: whatever the engine still does (its handle closing, say) touches only
// memory. Reboot() starts the next boot: the mapping holds what the disk held, and the boot id
// changes.
//
// An Env (src/env.h): handles opened with Options::env pointing at it use the simulation. Single-
// threaded. Byte-range locks are kept in memory per file, between the handles of this process.
#ifndef MAPKV_TESTS_FAULT_FILE_H_
#define MAPKV_TESTS_FAULT_FILE_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "src/env.h"
#include "src/platform/mapped_file.h"

namespace mapkv::test {

class FaultFileSystem : public internal::Env {
 public:
  static constexpr uint64_t kPage = 4096;
  static constexpr uint64_t kSector = 512;

  FaultFileSystem() = default;
  FaultFileSystem(const FaultFileSystem&) = delete;
  FaultFileSystem& operator=(const FaultFileSystem&) = delete;

  // Cuts the power just before the n-th flush or sync from now (1: the next one); 0: never.
  void CutAtIo(uint64_t n) { cut_countdown_ = n; }
  uint64_t io_calls() const { return io_calls_; }
  bool cut() const { return cut_; }

  // Cuts the power now (see the file comment). Returns how many dirty pages reached the disk.
  uint64_t PowerCut() {
    uint64_t kept = 0;
    for (auto& [path, file] : files_) kept += file->Cut(rng_);
    cut_ = true;
    cut_countdown_ = 0;
    return kept;
  }

  // Cuts the power now, losing exactly the dirty pages that overlap [begin, end) of every file
  // and keeping the rest (and the latest size): for tests that need one particular loss.
  void PowerCutLosing(uint64_t begin, uint64_t end) {
    for (auto& [path, file] : files_) file->CutLosing(begin, end);
    cut_ = true;
    cut_countdown_ = 0;
  }

  // The next boot: every mapping shows the disk's bytes, and the boot id changes. Call it with no
  // handle open.
  void Reboot() {
    for (auto& [path, file] : files_) file->Reboot();
    cut_ = false;
    ++boot_;
  }

  void Seed(uint64_t seed) { rng_.seed(seed); }

  // The disk's image of `path` (what a reboot would see), for tests that damage it.
  std::string* DiskImage(const std::string& path) { return &files_.at(path)->disk; }

 private:
  // One file: the disk image, the memory the handles map, and the locks of its handles.
  struct File {
    std::string path;
    std::string disk;       // the durable bytes (its size is the durable size)
    uint64_t size = 0;      // the size the engine sees
    std::vector<char> mem;  // the mapping, reserve bytes, allocated once (it must not move)
    std::vector<std::pair<uint64_t, uint64_t>> zeroed;      // Zero() ranges, durable at Sync()
    std::map<uint64_t, std::map<const void*, bool>> locks;  // byte -> handle -> exclusive

    void FlushRange(uint64_t offset, uint64_t length) {
      uint64_t begin = offset / kPage * kPage;
      uint64_t end = std::min(size, (offset + length + kPage - 1) / kPage * kPage);
      if (disk.size() < end) disk.resize(end, '\0');
      if (begin < end) std::memcpy(disk.data() + begin, mem.data() + begin, end - begin);
    }

    uint64_t Cut(std::mt19937_64& rng) {
      // The file's size: the durable one, or the latest (its metadata may have been written).
      const uint64_t durable = disk.size();
      const uint64_t new_size = absl::Bernoulli(rng, 0.5) ? size : durable;
      if (new_size > durable) disk.resize(new_size, '\0');
      if (absl::Bernoulli(rng, 0.5)) {
        for (auto [offset, length] : zeroed) {
          if (offset < disk.size()) {
            std::memset(disk.data() + offset, 0, std::min(length, disk.size() - offset));
          }
        }
      }
      zeroed.clear();
      std::vector<uint64_t> dirty;
      for (uint64_t page = 0; page < new_size; page += kPage) {
        const uint64_t n = std::min(kPage, new_size - page);
        if (std::memcmp(disk.data() + page, mem.data() + page, n) != 0) dirty.push_back(page);
      }
      std::shuffle(dirty.begin(), dirty.end(), rng);
      // None, all, or a uniform number in between: each with a fair share of the cuts.
      const uint64_t choice = absl::Uniform<uint64_t>(rng, 0, 4);
      const uint64_t keep = choice == 0   ? 0
                            : choice == 1 ? dirty.size()
                                          : absl::Uniform<uint64_t>(rng, 0, dirty.size() + 1);
      for (uint64_t i = 0; i < keep; ++i) {
        const uint64_t n = std::min(kPage, new_size - dirty[i]);
        std::memcpy(disk.data() + dirty[i], mem.data() + dirty[i], n);
      }
      if (keep < dirty.size() && absl::Bernoulli(rng, 0.5)) {
        // The page being written when the power went: some of its sectors made it.
        const uint64_t page = dirty[keep];
        for (uint64_t s = page; s < std::min(page + kPage, new_size); s += kSector) {
          if (absl::Bernoulli(rng, 0.5)) {
            std::memcpy(disk.data() + s, mem.data() + s, std::min(kSector, new_size - s));
          }
        }
      }
      return keep;
    }

    void CutLosing(uint64_t begin, uint64_t end) {
      disk.resize(size, '\0');
      for (uint64_t page = 0; page < size; page += kPage) {
        if (page < end && page + kPage > begin) continue;
        std::memcpy(disk.data() + page, mem.data() + page, std::min(kPage, size - page));
      }
      zeroed.clear();
    }

    void Reboot() {
      std::fill(mem.begin(), mem.end(), '\0');
      std::memcpy(mem.data(), disk.data(), std::min<uint64_t>(disk.size(), mem.size()));
      size = disk.size();
      zeroed.clear();
      locks.clear();
    }
  };

  class Handle final : public internal::MappedFile {
   public:
    Handle(FaultFileSystem* fs, File* file) : fs_(fs), file_(file) {}
    ~Handle() override {
      for (auto& [byte, holders] : file_->locks) holders.erase(this);
    }
    const std::string& path() const override { return file_->path; }
    char* base() const override { return file_->mem.data(); }
    uint64_t mapped_size() const override { return file_->mem.size(); }
    absl::StatusOr<uint64_t> Size() override { return file_->size; }
    absl::Status Grow(uint64_t size) override {
      if (size > file_->mem.size()) {
        return absl::ResourceExhaustedError(absl::StrCat(path(), ": past the reserve"));
      }
      file_->size = std::max(file_->size, size);
      return absl::OkStatus();
    }
    absl::Status Flush(uint64_t offset, uint64_t length) override {
      if (fs_->BeforeIo()) return absl::OkStatus();
      file_->FlushRange(offset, length);
      return absl::OkStatus();
    }
    absl::Status Sync() override {
      if (fs_->BeforeIo()) return absl::OkStatus();
      file_->disk.resize(file_->size, '\0');
      for (auto [offset, length] : file_->zeroed) {
        if (offset < file_->disk.size()) {
          std::memset(file_->disk.data() + offset, 0,
                      std::min(length, file_->disk.size() - offset));
        }
      }
      file_->zeroed.clear();
      return absl::OkStatus();
    }
    absl::Status Zero(uint64_t offset, uint64_t length) override {
      std::memset(file_->mem.data() + offset, 0, length);
      if (!fs_->cut_) file_->zeroed.emplace_back(offset, length);
      return absl::OkStatus();
    }
    absl::StatusOr<bool> Lock(uint64_t byte, bool exclusive, bool wait) override {
      for (auto [holder, holder_exclusive] : file_->locks[byte]) {
        if (holder != this && (exclusive || holder_exclusive)) {
          if (wait) return absl::InternalError("fault file system: a lock wait would block");
          return false;
        }
      }
      file_->locks[byte][this] = exclusive;
      return true;
    }
    absl::Status Unlock(uint64_t byte) override {
      file_->locks[byte].erase(this);
      return absl::OkStatus();
    }
    absl::StatusOr<bool> IsLockedByOther(uint64_t byte) override {
      const auto& holders = file_->locks[byte];
      return std::any_of(holders.begin(), holders.end(),
                         [this](const auto& h) { return h.first != this; });
    }

   private:
    FaultFileSystem* const fs_;
    File* const file_;
  };

  // True when the disk is frozen (the power is off): the flush must not happen.
  bool BeforeIo() {
    ++io_calls_;
    if (!cut_ && cut_countdown_ != 0 && --cut_countdown_ == 0) PowerCut();
    return cut_;
  }

  absl::StatusOr<std::unique_ptr<internal::MappedFile>> OpenFile(
      const std::string& path, const internal::FileOpenOptions& options) override {
    FaultFileSystem& fs = *this;
    auto it = fs.files_.find(path);
    if (it == fs.files_.end()) {
      if (!options.create || options.read_only) {
        return absl::NotFoundError(absl::StrCat(path, ": no such file (simulated)"));
      }
      auto file = std::make_unique<File>();
      file->path = path;
      file->mem.assign(std::max<uint64_t>(options.reserve, 1), '\0');
      it = fs.files_.emplace(path, std::move(file)).first;
    } else if (options.exclusive) {
      return absl::AlreadyExistsError(absl::StrCat(path, ": exists (simulated)"));
    } else if (options.reserve > it->second->mem.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": the simulation maps every file once, with the first reserve"));
    }
    return std::unique_ptr<internal::MappedFile>(new Handle(&fs, it->second.get()));
  }

  std::string BootId() override { return absl::StrCat("simulated-boot-", boot_); }

  std::map<std::string, std::unique_ptr<File>> files_;
  std::mt19937_64 rng_;
  uint64_t boot_ = 1;
  uint64_t io_calls_ = 0;
  uint64_t cut_countdown_ = 0;
  bool cut_ = false;
};

}  // namespace mapkv::test

#endif  // MAPKV_TESTS_FAULT_FILE_H_
