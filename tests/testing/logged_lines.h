// The lines a handle logs (Options::info_log), collected from any thread for a test to read.
#ifndef MAPKV_TESTS_TESTING_LOGGED_LINES_H_
#define MAPKV_TESTS_TESTING_LOGGED_LINES_H_

#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace mapkv::test {

class Logged {
 public:
  // For Options::info_log; `this` must outlive every handle given it.
  std::function<void(std::string_view)> Sink() {
    return [this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(line);
    };
  }
  std::vector<std::string> Lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  // The lines that contain `text`.
  std::vector<std::string> LinesWith(std::string_view text) {
    std::vector<std::string> out;
    for (std::string& line : Lines()) {
      if (line.find(text) != std::string::npos) out.push_back(std::move(line));
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

}  // namespace mapkv::test

#endif  // MAPKV_TESTS_TESTING_LOGGED_LINES_H_
