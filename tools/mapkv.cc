// mapkv: the command-line tool of the mapkv key-value store.
//
//   mapkv <command> [options] [arguments]   run a command
//   mapkv help [command]                     explain the tool or a command
//   mapkv <command> --help                   the same
//
// Each command is a row of kCommands below and lives in its own file.
//
// Arguments are parsed by CLI11 (Debian's libcli11-dev, header-only), not abseil flags: abseil's
// flags are process-global definitions, so every subcommand would accept and list every other
// subcommand's flags, and abseil 20220623 has no notion of subcommands, positional arguments or
// per-command help. CLI11 gives each subcommand its own options, positionals, validation and
// --help, and `--` to end options (for keys that start with '-').
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "command.h"
#include "common.h"
#include "testing/terminal.h"

namespace mapkv::tools {
namespace {

constexpr Command kCommands[] = {
    {"stat", "show keys, sizes, garbage, index load, checkpoint, who has it open", SetupStat},
    {"get", "print the value of a key (exit 1 when absent)", SetupGet},
    {"put", "set a key to a value (or to stdin with -)", SetupPut},
    {"del", "delete a key", SetupDel},
    {"dump", "write every record to stdout (escaped TSV or JSON Lines)", SetupDump},
    {"load", "read records from a file or stdin into the database", SetupLoad},
    {"check", "verify the whole file; exit 3 when damaged", SetupCheck},
    {"compact", "rewrite the database without garbage, in place (offline) or into NEW (atomic)",
     SetupCompact},
    {"backup", "write a consistent, compact copy of a database in use (atomic)", SetupBackup},
    {"salvage", "copy every intact record of a damaged file into a new one", SetupSalvage},
    {"demo", "worker processes share one cache file with a capacity, every value checked",
     SetupDemo},
    {"bench", "a quick benchmark of the basic operations and a compaction", SetupBench},
};

constexpr char kDescription[] =
    "mapkv is a persistent key-value store in one memory-mapped file, shared by any number of "
    "processes. This tool looks at and maintains such a file. Keys and values are bytes.";

constexpr char kFooter[] = R"(
Run 'mapkv help COMMAND' or 'mapkv COMMAND --help' for a command's options and examples.

Exit status (every command):
  0  success
  1  not found: get (or del) of a key that is not there
  2  usage error: bad arguments; nothing was done
  3  a data problem found (check; salvage past damage), a file that needs recovery left as it is
     by a command that only reads, or refused (compact in place while others have the database
     open; backup --force of a COPY open elsewhere)
  4  I/O or any other error (no such file, not a mapkv file, permission, disk full, ...)
Errors go to stderr as "mapkv COMMAND: FILE: reason". Output meant for programs goes to stdout:
values, dumps, `stat --json`. Progress bars appear on stderr only when it is a terminal.

Examples:
  mapkv stat /var/lib/app/cache.mapkv
  mapkv put cache.mapkv user/42 Ada && mapkv get cache.mapkv user/42
  mapkv dump cache.mapkv | grep '^user/' | wc -l
  mapkv dump old.mapkv | mapkv load new.mapkv
  mapkv check cache.mapkv && mapkv compact cache.mapkv
  mapkv backup /var/lib/app/app.mapkv /backup/app.mapkv
  mapkv check app.mapkv || mapkv salvage app.mapkv app.salvaged.mapkv)";

constexpr size_t kWidth = 100;
constexpr size_t kColumn = 24;

// Breaks each line of `text` longer than `width` at spaces; shorter lines (preformatted lists)
// stay as they are.
std::string Wrap(std::string_view text, size_t width) {
  std::string out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    while (line.size() > width) {
      size_t cut = line.rfind(' ', width);
      if (cut == std::string_view::npos || cut == 0) cut = line.find(' ', width);
      if (cut == std::string_view::npos) break;
      out.append(line.substr(0, cut));
      out.push_back('\n');
      line.remove_prefix(cut + 1);
    }
    out.append(line);
    if (end == text.size()) break;
    out.push_back('\n');
    start = end + 1;
  }
  return out;
}

// CLI11's formatter, with the one-line summaries in the command list, the long descriptions in
// a command's own help, and text wrapped to kWidth columns.
class Formatter : public CLI::Formatter {
 public:
  Formatter() { column_width(kColumn); }
  void SetSummary(const CLI::App* app, std::string summary) {
    summaries_[app] = std::move(summary);
  }

  std::string make_subcommand(const CLI::App* sub) const override {
    auto it = summaries_.find(sub);
    std::stringstream out;
    CLI::detail::format_help(out, sub->get_display_name(true),
                             it != summaries_.end() ? it->second : sub->get_description(), kColumn);
    return out.str();
  }
  std::string make_description(const CLI::App* app) const override {
    std::string text = app->get_description();
    return text.empty() ? text : Wrap(text, kWidth) + "\n\n";
  }
  std::string make_option_desc(const CLI::Option* option) const override {
    return Wrap(option->get_description(), kWidth - kColumn);
  }

 private:
  std::map<const CLI::App*, std::string> summaries_;
};

std::string Topics(const CLI::App& app) {
  std::string out;
  for (const CLI::App* sub : app.get_subcommands({})) absl::StrAppend(&out, " ", sub->get_name());
  return out;
}

int Main(int argc, char** argv) {
  CLI::App app(kDescription, "mapkv");
  // CLI11 takes "/x" for an option on Windows, which would make an absolute path written with
  // slashes an unknown option; options are "-x" and "--name" on every platform.
  app.allow_windows_style_options(false);
  // Bytes in and out as they are on every platform: values and dumps are binary, and text output
  // ends lines with "\n" on Windows too, so scripts and dump files work across platforms.
  internal::SetBinaryMode(internal::StdStream::kIn);
  internal::SetBinaryMode(internal::StdStream::kOut);
  app.require_subcommand(1);
  app.set_version_flag("-V,--version", "mapkv " MAPKV_VERSION, "print the version and exit");
  app.footer(kFooter);
  auto formatter = std::make_shared<Formatter>();
  app.formatter(formatter);
  std::vector<std::pair<CLI::App*, Runner>> commands;
  for (const Command& command : kCommands) {
    CLI::App* sub = app.add_subcommand(std::string(command.name), std::string(command.summary));
    formatter->SetSummary(sub, std::string(command.summary));
    commands.emplace_back(sub, command.setup(sub));
  }
  CLI::App* help = app.add_subcommand("help", "explain the tool, or a command: mapkv help compact");
  std::string topic;
  help->add_option("COMMAND", topic, "the command to explain")->type_name("");

  if (argc <= 1) {
    std::fprintf(stderr, "%s", app.help().c_str());
    return kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    return kExitOk;
  } catch (const CLI::CallForVersion& version) {
    std::printf("%s\n", version.what());
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    std::printf("%s", app.help("", CLI::AppFormatMode::All).c_str());
    return kExitOk;
  } catch (const CLI::ParseError& error) {
    for (const auto& [sub, run] : commands) {
      if (sub->parsed()) return ReportUsageError(sub->get_name(), error.what());
    }
    if (help->parsed()) return ReportUsageError("help", error.what());
    std::string_view first = argv[1];
    std::fprintf(stderr, "mapkv: %s\ncommands:%s\nRun 'mapkv --help' for usage.\n",
                 first.empty() || first[0] == '-'
                     ? error.what()
                     : absl::StrCat("unknown command \"", argv[1], "\"").c_str(),
                 Topics(app).c_str());
    return kExitUsage;
  }
  if (help->parsed()) {
    if (topic.empty()) {
      // app.help() would show the help of the subcommand parsed, `help` itself.
      std::printf("%s", formatter->make_help(&app, "mapkv", CLI::AppFormatMode::Normal).c_str());
      return kExitOk;
    }
    for (const auto& [sub, run] : commands) {
      if (sub->get_name() == topic) {
        std::printf("%s", sub->help("mapkv").c_str());
        return kExitOk;
      }
    }
    std::fprintf(stderr, "mapkv help: no command \"%s\"; commands:%s\n", topic.c_str(),
                 Topics(app).c_str());
    return kExitUsage;
  }
  for (const auto& [sub, run] : commands) {
    if (sub->parsed()) return run();
  }
  return kExitUsage;  // require_subcommand(1) makes this unreachable
}

}  // namespace
}  // namespace mapkv::tools

int main(int argc, char** argv) { return mapkv::tools::Main(argc, argv); }
