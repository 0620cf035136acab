// mapkv: the command-line tool of the mapkv key-value store.
//
//   mapkv <command> [flags]       run a command
//   mapkv help [command]          explain the tool or a command
//
// Each command is a row of kCommands below and lives in its own file.
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_format.h"
#include "command.h"
#include "demo.h"

namespace mapkv::tools {
namespace {

constexpr Command kCommands[] = {
    {"demo", "several processes share one database, every value checked; prints ops/s", RunDemo},
};

const Command* FindCommand(std::string_view name) {
  for (const Command& command : kCommands) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

std::string Usage() {
  std::string out =
      "usage: mapkv <command> [flags]\n"
      "       mapkv help [<command>]\n"
      "\n"
      "mapkv is a persistent key-value store in one memory-mapped file, shared by any number of\n"
      "processes: readers never wait for a long write transaction, and a commit is visible to\n"
      "every process as soon as it returns.\n"
      "\n"
      "commands:\n";
  for (const Command& command : kCommands) {
    absl::StrAppendFormat(&out, "  %-10s %s\n", command.name, command.summary);
  }
  out +=
      "\n"
      "Run 'mapkv <command> --help' for a command's flags.\n"
      "Exit status: 0 success, 1 failure, 2 bad usage.\n";
  return out;
}

int Main(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::fprintf(stderr, "%s", Usage().c_str());
    return kExitUsage;
  }
  std::string_view name = args[0];
  if (name == "help" || name == "--help" || name == "-h" || name == "-help") {
    if (args.size() == 1 || name != "help") {
      std::printf("%s", Usage().c_str());
      return kExitOk;
    }
    const Command* command = FindCommand(args[1]);
    if (command == nullptr) {
      std::fprintf(stderr, "mapkv: no command \"%s\"\n\n%s", args[1].c_str(), Usage().c_str());
      return kExitUsage;
    }
    return command->run({"--help"});
  }
  const Command* command = FindCommand(name);
  if (command == nullptr) {
    std::fprintf(stderr, "mapkv: unknown command \"%s\"\n\n%s", args[0].c_str(), Usage().c_str());
    return kExitUsage;
  }
  return command->run(std::vector<std::string>(args.begin() + 1, args.end()));
}

}  // namespace
}  // namespace mapkv::tools

int main(int argc, char** argv) {
  return mapkv::tools::Main(std::vector<std::string>(argv + 1, argv + argc));
}
