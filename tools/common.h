// What the subcommands of the `mapkv` tool share: opening a database, reporting an error with the
// file it concerns and the matching exit status, number formatting, key arguments, and the
// progress bar.
#ifndef MAPKV_TOOLS_COMMON_H_
#define MAPKV_TOOLS_COMMON_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mapkv/db.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace mapkv::tools {

// Prints "mapkv <command>: <message>" to stderr and returns `exit_code`. The message names what it
// is about: the library's do (their file, and key), and the tool makes its own with About().
int ReportError(std::string_view command, const absl::Status& status, int exit_code);
// A status about `what` (a file, "stdin", "stdout"): its message is "<what>: <message>".
absl::Status About(std::string_view what, absl::StatusCode code, absl::string_view message);
// Prints "mapkv <command>: <message>" and a pointer to --help to stderr; returns kExitUsage.
int ReportUsageError(std::string_view command, absl::string_view message);

enum class OpenMode {
  kRead,    // an existing database, read_only
  kWrite,   // an existing database
  kCreate,  // created when missing
};
// `kind`: FileKind::kAny for the commands that work on a cache's file too.
absl::StatusOr<std::unique_ptr<DB>> OpenDatabase(const std::string& path, OpenMode mode,
                                                 FileKind kind = FileKind::kDatabase);

// Opens a database or a cache's file (FileKind::kAny) for the commands that read and write values;
// *is_cache says which it is (a cache's values carry an envelope: cache_values.h).
absl::StatusOr<std::unique_ptr<DB>> OpenValues(const std::string& path, OpenMode mode,
                                               bool* is_cache);

// Reports a failed open of `path` by a command that only reads. A file that needs recovery is
// left as it is (a command that looks never changes a file): the message says so and what to do,
// and the exit status is kExitDataProblem. Anything else: kExitError.
int ReportReadOpenError(std::string_view command, const std::string& path,
                        const absl::Status& status);

// "1 record", "2 records", "1,024 records".
std::string Plural(uint64_t n, std::string_view one, std::string_view many);

// A key or value given on the command line: as is, or TSV-escaped (`--escaped`, records.h) for
// bytes a shell argument cannot hold.
absl::StatusOr<std::string> DecodeArgument(std::string_view text, bool escaped,
                                           std::string_view what);

std::string Commas(uint64_t n);
std::string Bytes(uint64_t n);  // "1.5 MiB"
std::string Seconds(double s);  // "1.23 s" / "45.6 ms"

// Reads all of a stdio stream.
absl::StatusOr<std::string> ReadAllStdin();

// Adds the standard `-q,--quiet` flag to a subcommand that shows progress.
CLI::Option* AddQuietFlag(CLI::App* app, bool* quiet);

// A one-line progress bar on stderr, redrawn at most ten times a second, only when stderr is a
// terminal and --quiet was not given; erased by Done() or the destructor.
class Progress {
 public:
  Progress(std::string label, uint64_t total, bool quiet);
  ~Progress() { Done(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  bool enabled() const { return enabled_; }
  void set_total(uint64_t total) { total_ = total; }
  void set_label(std::string label);
  // `done` units of `total` (a total of 0: unknown, a count and the time so far only).
  void Update(uint64_t done, bool force = false);
  // For work that reports no progress: the label and the time it has taken so far.
  void Elapsed();
  void Done();

 private:
  bool enabled_;
  std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  bool drawn_ = false;
  bool elapsed_only_ = false;
};

}  // namespace mapkv::tools

#endif  // MAPKV_TOOLS_COMMON_H_
