#include "flags.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace mapkv::tools {
namespace {

absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr size_t kLineWidth = 100;

std::string Quote(std::string_view s) { return absl::StrCat("\"", ToAbsl(s), "\""); }

}  // namespace

void FlagSet::Add(Flag flag) {
  assert(Find(flag.name) == nullptr);
  flags_.push_back(std::move(flag));
}

const FlagSet::Flag* FlagSet::Find(std::string_view name) const {
  for (const Flag& flag : flags_) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

void FlagSet::String(std::string_view name, std::string_view value_name, std::string* value,
                     std::string_view help, std::string_view default_text) {
  std::string shown =
      default_text.empty() ? (value->empty() ? "-" : *value) : std::string(default_text);
  Add({std::string(name), std::string(value_name), std::string(help), std::move(shown),
       [value](std::string_view text) {
         *value = std::string(text);
         return absl::OkStatus();
       }});
}

void FlagSet::Int(std::string_view name, std::string_view value_name, int64_t* value, int64_t min,
                  int64_t max, std::string_view help) {
  std::string flag_name(name);
  Add({flag_name, std::string(value_name), std::string(help), absl::StrCat(*value),
       [value, min, max, flag_name](std::string_view text) {
         int64_t parsed = 0;
         if (!absl::SimpleAtoi(ToAbsl(text), &parsed) || parsed < min || parsed > max) {
           return absl::InvalidArgumentError(absl::StrCat("--", flag_name,
                                                          " wants a whole number from ", min,
                                                          " to ", max, ", not ", Quote(text)));
         }
         *value = parsed;
         return absl::OkStatus();
       }});
}

void FlagSet::Double(std::string_view name, std::string_view value_name, double* value, double min,
                     double max, std::string_view help) {
  std::string flag_name(name);
  Add({flag_name, std::string(value_name), std::string(help), absl::StrCat(*value),
       [value, min, max, flag_name](std::string_view text) {
         double parsed = 0;
         if (!absl::SimpleAtod(ToAbsl(text), &parsed) || !std::isfinite(parsed) || parsed < min ||
             parsed > max) {
           return absl::InvalidArgumentError(absl::StrCat("--", flag_name, " wants a number from ",
                                                          min, " to ", max, ", not ", Quote(text)));
         }
         *value = parsed;
         return absl::OkStatus();
       }});
}

void FlagSet::Bool(std::string_view name, bool* value, std::string_view help) {
  std::string flag_name(name);
  Add({flag_name, "", std::string(help), *value ? "true" : "false",
       [value, flag_name](std::string_view text) {
         if (!absl::SimpleAtob(ToAbsl(text), value)) {
           return absl::InvalidArgumentError(
               absl::StrCat("--", flag_name, " wants true or false, not ", Quote(text)));
         }
         return absl::OkStatus();
       }});
}

absl::Status FlagSet::Parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view word = args[i];
    if (word == "--") {
      positional_.insert(positional_.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (word == "-h" || word == "--help" || word == "-help") {
      help_requested_ = true;
      continue;
    }
    if (word.size() < 2 || word[0] != '-') {
      positional_.push_back(std::string(word));
      continue;
    }
    // Accept -name as well as --name, as abseil and gflags do.
    std::string_view body = word.substr(word[1] == '-' ? 2 : 1);
    std::string_view name = body;
    std::string_view value;
    bool has_value = false;
    if (size_t eq = body.find('='); eq != std::string_view::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    }
    const Flag* flag = Find(name);
    if (flag == nullptr && !has_value && name.substr(0, 2) == "no") {
      const Flag* negated = Find(name.substr(2));
      if (negated != nullptr && negated->value_name.empty()) {
        absl::Status status = negated->set("false");
        if (!status.ok()) return status;
        continue;
      }
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", Quote(word)));
    }
    if (!has_value) {
      if (flag->value_name.empty()) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag->name, " needs a value (", flag->value_name, ")"));
      }
    }
    absl::Status status = flag->set(value);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

std::string FlagSet::Describe() const {
  std::vector<std::string> heads;
  size_t width = 0;
  for (const Flag& flag : flags_) {
    heads.push_back(flag.value_name.empty() ? absl::StrCat("--", flag.name)
                                            : absl::StrCat("--", flag.name, " ", flag.value_name));
    width = std::max(width, heads.back().size());
  }
  std::string out;
  for (size_t i = 0; i < flags_.size(); ++i) {
    const Flag& flag = flags_[i];
    std::string line = absl::StrFormat("  %-*s  %s", static_cast<int>(width), heads[i], flag.help);
    if (flag.default_text != "-") {
      std::string shown = absl::StrCat("(default: ", flag.default_text, ")");
      if (line.size() + 1 + shown.size() <= kLineWidth) {
        absl::StrAppend(&line, " ", shown);
      } else {
        absl::StrAppend(&line, "\n", std::string(width + 4, ' '), shown);
      }
    }
    absl::StrAppend(&out, line, "\n");
  }
  absl::StrAppendFormat(&out, "  %-*s  %s\n", static_cast<int>(width), "--help",
                        "show this help and exit");
  return out;
}

}  // namespace mapkv::tools
