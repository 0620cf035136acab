// The shape every subcommand of the `mapkv` tool shares: a name, a one-line summary for
// `mapkv --help`, and a Setup function that declares the subcommand's arguments on its CLI11 app
// and returns what runs once they are parsed. Adding a subcommand is one new file with its Setup
// function and one row in mapkv.cc's table.
#ifndef MAPKV_TOOLS_COMMAND_H_
#define MAPKV_TOOLS_COMMAND_H_

#include <functional>
#include <string_view>

namespace CLI {
class App;
}  // namespace CLI

namespace mapkv::tools {

// Exit statuses, the same for every subcommand (scripts rely on them).
inline constexpr int kExitOk = 0;
inline constexpr int kExitNotFound = 1;     // get, del: no such key
inline constexpr int kExitUsage = 2;        // bad arguments; nothing was done
inline constexpr int kExitDataProblem = 3;  // check found damage; compact (or backup --force)
                                            // refused (in use); demo saw a wrong value
inline constexpr int kExitError = 4;        // I/O and every other error (a missing file, ...)

// Runs a parsed subcommand; returns its exit status.
using Runner = std::function<int()>;

struct Command {
  std::string_view name;
  std::string_view summary;
  // Declares the subcommand's options, positionals, description and footer on `app` (binding
  // them to state the returned Runner owns).
  Runner (*setup)(CLI::App* app);
};

Runner SetupStat(CLI::App* app);
Runner SetupGet(CLI::App* app);
Runner SetupPut(CLI::App* app);
Runner SetupDel(CLI::App* app);
Runner SetupDump(CLI::App* app);
Runner SetupLoad(CLI::App* app);
Runner SetupCheck(CLI::App* app);
Runner SetupCompact(CLI::App* app);
Runner SetupBackup(CLI::App* app);
Runner SetupSalvage(CLI::App* app);
Runner SetupDemo(CLI::App* app);
Runner SetupBench(CLI::App* app);

}  // namespace mapkv::tools

#endif  // MAPKV_TOOLS_COMMAND_H_
