// The shape every subcommand of the `mapkv` tool shares: a name, a one-line summary for
// `mapkv help`, and an entry point that gets the arguments after the name and returns the exit
// status. Adding a subcommand (stat, get, put, del, dump, load, check, compact) is one new file
// with its Run function and one row in mapkv.cc's table.
#ifndef MAPKV_TOOLS_COMMAND_H_
#define MAPKV_TOOLS_COMMAND_H_

#include <string>
#include <string_view>
#include <vector>

namespace mapkv::tools {

// Exit statuses of every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the command ran and something failed
inline constexpr int kExitUsage = 2;    // bad arguments; nothing was done

struct Command {
  std::string_view name;
  std::string_view summary;
  // Gets the arguments after the subcommand's name. Must answer "--help" by printing its usage to
  // stdout and returning kExitOk.
  int (*run)(const std::vector<std::string>& args);
};

}  // namespace mapkv::tools

#endif  // MAPKV_TOOLS_COMMAND_H_
