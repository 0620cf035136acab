// What a test commits, as a model to hold a recovered database against: after a power cut the
// database must be at one of the commit boundaries since the last point known durable.
#ifndef MAPKV_TESTS_TESTING_COMMIT_HISTORY_H_
#define MAPKV_TESTS_TESTING_COMMIT_HISTORY_H_

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mapkv::test {

// A database's content: key -> value.
using State = std::map<std::string, std::string>;
// One write of a commit: the key, and its value (nullopt: a delete).
using Write = std::pair<std::string, std::optional<std::string>>;

// `state` after the writes of one commit.
inline void Apply(const std::vector<Write>& writes, State* state) {
  for (const auto& [key, value] : writes) {
    if (value) {
      (*state)[key] = *value;
    } else {
      state->erase(key);
    }
  }
}

// The committed history since the last point known durable: the state there and every commit
// after it, in order. A recovered state must equal one of the states along it.
struct History {
  State floor;
  std::vector<std::vector<Write>> commits;

  void Durable(const State& now) {
    floor = now;
    commits.clear();
  }
  // The index of the commit boundary equal to `state` (0: the floor), or -1.
  int Match(const State& state) const {
    State s = floor;
    if (s == state) return 0;
    for (size_t i = 0; i < commits.size(); ++i) {
      Apply(commits[i], &s);
      if (s == state) return static_cast<int>(i + 1);
    }
    return -1;
  }
};

}  // namespace mapkv::test

#endif  // MAPKV_TESTS_TESTING_COMMIT_HISTORY_H_
