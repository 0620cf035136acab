// The parts of subprocess.h that are the same on every platform, written once.
#include "testing/subprocess.h"

namespace mapkv::tools {

StartGate::StartGate(StartGate&& other) noexcept
    : read_fd_(other.read_fd_), write_fd_(other.write_fd_) {
  other.read_fd_ = -1;
  other.write_fd_ = -1;
}

StartGate::~StartGate() {
  CloseFd(read_fd_);
  CloseFd(write_fd_);
}

absl::StatusOr<int> SpawnProcess(const std::vector<std::string>& argv,
                                 const std::string& log_path) {
  StartOptions options;
  options.stdin_path = NullDevicePath();
  options.stdout_path = log_path;
  options.stderr_path = log_path;
  options.append_output = true;
  options.search_path = true;
  options.end_with_starting_thread = true;
  return StartProcess(argv, options);
}

}  // namespace mapkv::tools
