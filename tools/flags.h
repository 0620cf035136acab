// Command-line flags for one subcommand of the `mapkv` tool.
//
// abseil's flags are global to a binary, so every subcommand would see (and `--help` would list)
// every other subcommand's flags. A FlagSet belongs to one subcommand instead: it binds each flag
// to a variable of the caller, parses `--name=value`, `--name value`, `--bool`, `--nobool` and
// `--` (the end of flags), and formats the flag list for the subcommand's usage text.
#ifndef MAPKV_TOOLS_FLAGS_H_
#define MAPKV_TOOLS_FLAGS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace mapkv::tools {

class FlagSet {
 public:
  FlagSet() = default;
  FlagSet(const FlagSet&) = delete;
  FlagSet& operator=(const FlagSet&) = delete;

  // Each call binds `--name` to *value, which keeps its current contents as the default. The
  // pointers must outlive Parse(). `value_name` is the placeholder shown in the usage (PATH, N).
  // `default_text` replaces the shown default when the variable's value would mislead (empty:
  // show the value; "-": show none).
  void String(std::string_view name, std::string_view value_name, std::string* value,
              std::string_view help, std::string_view default_text = "");
  void Int(std::string_view name, std::string_view value_name, int64_t* value, int64_t min,
           int64_t max, std::string_view help);
  void Double(std::string_view name, std::string_view value_name, double* value, double min,
              double max, std::string_view help);
  void Bool(std::string_view name, bool* value, std::string_view help);

  // Parses `args` (the words after the subcommand). InvalidArgument, naming the word, for an
  // unknown flag, a missing or malformed value, or one out of range. `-h` and `--help` set
  // help_requested() and are not an error. Words that are not flags, and every word after `--`,
  // go to positional().
  absl::Status Parse(const std::vector<std::string>& args);

  bool help_requested() const { return help_requested_; }
  const std::vector<std::string>& positional() const { return positional_; }

  // One line or more per flag, aligned, for a usage text.
  std::string Describe() const;

 private:
  struct Flag {
    std::string name;
    std::string value_name;  // empty for a bool
    std::string help;
    std::string default_text;
    std::function<absl::Status(std::string_view)> set;  // parses and stores a value
  };

  void Add(Flag flag);
  const Flag* Find(std::string_view name) const;

  std::vector<Flag> flags_;
  std::vector<std::string> positional_;
  bool help_requested_ = false;
};

}  // namespace mapkv::tools

#endif  // MAPKV_TOOLS_FLAGS_H_
