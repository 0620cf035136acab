// MappedFile for POSIX systems (Linux first): one MAP_SHARED mapping of the whole reserved range,
// made once, so growth never moves the mapping or the lock words in it; byte-range locks are
// open-file-description (OFD) locks, which belong to the open file rather than the process.
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "src/platform/mapped_file.h"
#include "src/platform/posix_status.h"
#include "src/status_macros.h"

namespace mapkv::internal {
namespace {

class PosixMappedFile;

// Every open file of this process. The byte locks belong to the open file description, which a
// child of fork() would keep alive through its copy of the descriptor and of the mapping (a
// mapping holds a reference to its file), so a child that outlived its parent would keep the
// parent's slot looking alive. So mappings are not inherited at all (MADV_DONTFORK) and a child
// closes its copies of the descriptors at once. A handle refuses to work in a child anyway.
class OpenFiles {
 public:
  static OpenFiles& Get() {
    static OpenFiles* files = [] {
      auto* f = new OpenFiles;
      pthread_atfork([] { Get().mu_.lock(); }, [] { Get().mu_.unlock(); }, [] { Get().OnChild(); });
      return f;
    }();
    return *files;
  }
  // Held from before a descriptor exists until its file is in the set (MappedFile::Open): the
  // prepare handler of fork() takes the same mutex, so no child is born holding a descriptor it
  // does not know to close.
  std::unique_lock<std::mutex> LockForOpen() { return std::unique_lock<std::mutex>(mu_); }
  void AddLocked(PosixMappedFile* f) { files_.insert(f); }
  // Unregisters `f` and runs close_fd() under the same mutex, so that no fork() comes between
  // the two and leaves the child a descriptor that nothing closes.
  template <class Close>
  void Remove(PosixMappedFile* f, Close&& close_fd) {
    std::lock_guard<std::mutex> lock(mu_);
    files_.erase(f);
    close_fd();
  }

 private:
  void OnChild();
  std::mutex mu_;
  std::unordered_set<PosixMappedFile*> files_;
};

class PosixMappedFile final : public MappedFile {
 public:
  PosixMappedFile(std::string path, int fd, char* base, uint64_t mapped)
      : path_(std::move(path)), fd_(fd), base_(base), mapped_(mapped) {}
  ~PosixMappedFile() override {
    OpenFiles::Get().Remove(this, [this] {
      if (fd_ < 0 && !retired_) return;  // in a child of fork(): nothing of this handle is ours
      munmap(base_, mapped_);
      if (fd_ >= 0) close(fd_);  // drops every OFD lock of this handle
    });
  }

#ifdef __linux__
  void StartFlush(uint64_t offset, uint64_t length) override {
    (void)sync_file_range(fd_, static_cast<off_t>(offset), static_cast<off_t>(length),
                          SYNC_FILE_RANGE_WRITE);
  }
#endif

  absl::Status Punch(uint64_t offset, uint64_t length) override {
    static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    const uint64_t begin = (offset + page - 1) / page * page, end = (offset + length) / page * page;
    if (end <= begin) return absl::OkStatus();
    if (fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(begin),
                  static_cast<off_t>(end - begin)) != 0) {
      if (errno == EOPNOTSUPP) {
        return absl::UnimplementedError(
            absl::StrCat(path_, ": the file system cannot give blocks back (no hole punching)"));
      }
      return ErrnoStatus(errno, path_, "fallocate(FALLOC_FL_PUNCH_HOLE)");
    }
    return absl::OkStatus();
  }

  void Retire(uint64_t keep) override {
    // Under the fork mutex, and still in the set: a child of fork() forgets this mapping, as
    // it forgets the others (CloseInChild).
    std::unique_lock<std::mutex> lock = OpenFiles::Get().LockForOpen();
    if (fd_ < 0) return;
    static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    struct stat st;
    const uint64_t size = fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : mapped_;
    const uint64_t end = std::min((size + page - 1) / page * page, mapped_);
    if (end > keep) {
      // One call puts zero pages in place of the file's, atomically for a racing reader.
      void* zeros = mmap(base_ + keep, end - keep, PROT_READ,
                         MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (zeros != MAP_FAILED) (void)madvise(zeros, end - keep, MADV_DONTFORK);
    }
    if (mapped_ > end) munmap(base_ + end, mapped_ - end);
    mapped_ = end;
    close(fd_);
    fd_ = -1;
    retired_ = true;
  }
  void CloseInChild() {
    // Not munmap: the child has no mapping here, and the range may be reused by its own.
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    retired_ = false;
  }

  const std::string& path() const override { return path_; }
  char* base() const override { return base_; }
  uint64_t mapped_size() const override { return mapped_; }

  absl::StatusOr<uint64_t> Size() override {
    struct stat st;
    if (fstat(fd_, &st) != 0) return ErrnoStatus(errno, path_, "fstat");
    return static_cast<uint64_t>(st.st_size);
  }

  absl::Status Grow(uint64_t size) override {
    if (size > mapped_) {
      return absl::ResourceExhaustedError(
          absl::StrCat(path_, ": cannot grow to ", size, " bytes past the mapped ", mapped_));
    }
    auto current = Size();
    if (!current.ok()) return current.status();
    if (size <= *current) return absl::OkStatus();
    // posix_fallocate allocates blocks, so a full disk fails here rather than as SIGBUS on a
    // store into the mapping. Filesystems without it get ftruncate (sparse).
    int err =
        posix_fallocate(fd_, static_cast<off_t>(*current), static_cast<off_t>(size - *current));
    if (err == EOPNOTSUPP || err == EINVAL) {
      err = ftruncate(fd_, static_cast<off_t>(size)) == 0 ? 0 : errno;
    }
    if (err != 0) {
      // A failed allocation may have left the file longer, over blocks it could not allocate:
      // give that back, so that the size never promises a block that is not there.
      (void)ftruncate(fd_, static_cast<off_t>(*current));
      return ErrnoStatus(err, path_, absl::StrCat("growing to ", size, " bytes"));
    }
    return absl::OkStatus();
  }

  void Prefault(uint64_t offset, uint64_t length) override {
#ifdef MADV_POPULATE_WRITE
    static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    const uint64_t begin = offset / page * page;
    (void)madvise(base_ + begin, offset + length - begin, MADV_POPULATE_WRITE);  // Linux 5.14+
#else
    (void)offset, (void)length;
#endif
  }

  absl::Status Flush(uint64_t offset, uint64_t length) override {
    static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    uint64_t begin = offset / page * page;
    if (msync(base_ + begin, offset + length - begin, MS_SYNC) != 0) {
      return ErrnoStatus(errno, path_, "msync");
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    if (fsync(fd_) != 0) return ErrnoStatus(errno, path_, "fsync");
    return absl::OkStatus();
  }

  absl::Status Zero(uint64_t offset, uint64_t length) override {
    if (length == 0) return absl::OkStatus();
    // Both ways zero the page cache too, so every mapping sees the zeros at once. The range stays
    // allocated: Grow() reserved its blocks so that a store into the mapping never meets a full
    // disk (SIGBUS), and the file's size, which says how far Grow() went, does not change here.
    const off_t at = static_cast<off_t>(offset), len = static_cast<off_t>(length);
    if (fallocate(fd_, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, at, len) == 0) {
      return absl::OkStatus();
    }
    if (errno != EOPNOTSUPP) return ErrnoStatus(errno, path_, "fallocate(FALLOC_FL_ZERO_RANGE)");
    // tmpfs and others: release the blocks, then take them again.
    if (fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, len) == 0) {
      if (int err = posix_fallocate(fd_, at, len); err != 0 && err != EOPNOTSUPP && err != EINVAL) {
        return ErrnoStatus(err, path_,
                           absl::StrCat("allocating bytes ", offset, "..", offset + length,
                                        " again after zeroing them"));
      }
      return absl::OkStatus();
    }
    if (errno != EOPNOTSUPP) return ErrnoStatus(errno, path_, "fallocate(FALLOC_FL_PUNCH_HOLE)");
    std::memset(base_ + offset, 0, length);
    return Flush(offset, length);
  }

  absl::StatusOr<bool> Lock(uint64_t byte, bool exclusive, bool wait) override {
    struct flock fl = MakeLock(byte, exclusive ? F_WRLCK : F_RDLCK);
    for (;;) {
      if (fcntl(fd_, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0) return true;
      if (errno == EINTR) continue;
      if (!wait && (errno == EAGAIN || errno == EACCES)) return false;
      return ErrnoStatus(errno, path_, "fcntl(F_OFD_SETLK)");
    }
  }

  absl::Status Unlock(uint64_t byte) override {
    struct flock fl = MakeLock(byte, F_UNLCK);
    if (fcntl(fd_, F_OFD_SETLK, &fl) != 0) return ErrnoStatus(errno, path_, "fcntl(F_UNLCK)");
    return absl::OkStatus();
  }

  absl::StatusOr<bool> StillNamedBy(const std::string& path) override {
    struct stat mine, named;
    if (fstat(fd_, &mine) != 0) return ErrnoStatus(errno, path_, "fstat");
    if (stat(path.c_str(), &named) != 0) {
      if (errno == ENOENT) return false;
      return ErrnoStatus(errno, path, "stat");
    }
    return mine.st_dev == named.st_dev && mine.st_ino == named.st_ino;
  }

  absl::StatusOr<bool> IsLockedByOther(uint64_t byte) override {
    struct flock fl = MakeLock(byte, F_WRLCK);
    if (fcntl(fd_, F_OFD_GETLK, &fl) != 0) return ErrnoStatus(errno, path_, "fcntl(F_GETLK)");
    return fl.l_type != F_UNLCK;
  }

  absl::StatusOr<FileInfo> Stat() override {
    struct stat st;
    if (fstat(fd_, &st) != 0) return ErrnoStatus(errno, path_, "fstat");
    return FileInfoOf(st);
  }

  absl::Status SetMode(uint32_t mode) override {
    if (fchmod(fd_, static_cast<mode_t>(mode & 07777)) != 0) {
      return ErrnoStatus(errno, path_, absl::StrCat("fchmod to 0", Octal(mode & 07777)));
    }
    return absl::OkStatus();
  }

  absl::Status SetOwner(uint32_t uid, uint32_t gid) override {
    if (fchown(fd_, static_cast<uid_t>(uid), static_cast<gid_t>(gid)) != 0) {
      return ErrnoStatus(errno, path_, absl::StrCat("fchown to ", uid, ":", gid));
    }
    return absl::OkStatus();
  }

 private:
  static struct flock MakeLock(uint64_t byte, short type) {
    struct flock fl;
    std::memset(&fl, 0, sizeof(fl));
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(byte);
    fl.l_len = 1;
    fl.l_pid = 0;  // required for OFD locks
    return fl;
  }

  const std::string path_;
  int fd_;  // -1 in a child of fork(), or once retired
  char* const base_;
  uint64_t mapped_;
  bool retired_ = false;  // Retire() was called (and not in a child of fork() since)
};

void OpenFiles::OnChild() {
  for (PosixMappedFile* f : files_) f->CloseInChild();
  mu_.unlock();
}

// Maps the file at an address aligned to 2 MiB, so that file offsets and addresses agree modulo a
// huge page: the kernel can then map a huge page cache folio with one page table entry. Reserves
// 2 MiB more address space than needed, maps the file over its aligned part, and returns the rest.
void* MapAligned(uint64_t size, int prot, int fd) {
  constexpr uint64_t kAlign = 2ull << 20;
  void* reserved =
      mmap(nullptr, size + kAlign, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserved == MAP_FAILED) return MAP_FAILED;
  const uintptr_t start = reinterpret_cast<uintptr_t>(reserved);
  const uintptr_t aligned = (start + kAlign - 1) & ~(kAlign - 1);
  void* base = mmap(reinterpret_cast<void*>(aligned), size, prot,
                    MAP_SHARED | MAP_NORESERVE | MAP_FIXED, fd, 0);
  if (base == MAP_FAILED) {
    const int err = errno;
    munmap(reserved, size + kAlign);
    errno = err;
    return MAP_FAILED;
  }
  if (aligned > start) munmap(reserved, aligned - start);
  const uintptr_t end = aligned + size, reserved_end = start + size + kAlign;
  if (reserved_end > end) munmap(reinterpret_cast<void*>(end), reserved_end - end);
  return base;
}

}  // namespace

namespace {

// Opens `path` as Open() asks. A new file is created with O_EXCL, which never follows a symbolic
// link: a link planted under the name makes the open of an existing file instead, and an existing
// file is made a database only when it is empty and no link led to it (below), or carries
// mapkv's creation marker (open.cc).
absl::StatusOr<int> OpenDescriptor(const std::string& path, const FileOpenOptions& options) {
  const mode_t mode = static_cast<mode_t>(options.mode & 0777);
  if (options.read_only) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, path, "open");
    return fd;
  }
  if (options.exclusive || options.create) {
    const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | O_CREAT | O_EXCL, mode);
    if (fd >= 0 || errno != EEXIST || options.exclusive) {
      if (fd < 0) return ErrnoStatus(errno, path, "open");
      return fd;
    }
  }
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, path, "open");
  if (!options.create) return fd;
  // An existing empty file would be initialised as a new database: only one that nothing else
  // names (no symbolic link led here, no other hard link), so that a link planted in a shared
  // directory cannot make this process overwrite a file of its choosing.
  struct stat st, named;
  if (fstat(fd, &st) == 0 && st.st_size == 0 &&
      (lstat(path.c_str(), &named) != 0 || S_ISLNK(named.st_mode) || st.st_nlink != 1 ||
       named.st_ino != st.st_ino || named.st_dev != st.st_dev)) {
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat(
        path,
        ": an empty file reached through a symbolic link or with other hard links; a "
        "database is created only in a new file or an empty one of its own: remove it, "
        "or open the file it names"));
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path,
                                                             const FileOpenOptions& options) {
  // From before the descriptor exists until its file is registered: see OpenFiles.
  std::unique_lock<std::mutex> registering = OpenFiles::Get().LockForOpen();
  MAPKV_ASSIGN_OR_RETURN(const int fd, OpenDescriptor(path, options));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return ErrnoStatus(err, path, "fstat");
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  uint64_t mapped = std::max<uint64_t>(options.reserve, static_cast<uint64_t>(st.st_size));
  mapped = std::max<uint64_t>(mapped, 1);
  // MAP_NORESERVE: the range is address space, not memory; pages exist only where the file does.
  const int prot = options.read_only ? PROT_READ : PROT_READ | PROT_WRITE;
  void* base = MapAligned(mapped, prot, fd);
  if (base == MAP_FAILED) {
    int err = errno;
    close(fd);
    return ErrnoStatus(err, path, absl::StrCat("mmap of ", mapped, " bytes"));
  }
  // A hint: EINVAL where the kernel has no transparent huge pages, and nothing changes.
  if (options.huge_pages) (void)madvise(base, mapped, MADV_HUGEPAGE);
  if (madvise(base, mapped, MADV_DONTFORK) != 0) {
    int err = errno;
    munmap(base, mapped);
    close(fd);
    return ErrnoStatus(err, path, "madvise(MADV_DONTFORK)");
  }
  auto file = std::make_unique<PosixMappedFile>(path, fd, static_cast<char*>(base), mapped);
  OpenFiles::Get().AddLocked(file.get());
  return std::unique_ptr<MappedFile>(std::move(file));
}

}  // namespace mapkv::internal
