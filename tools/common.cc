#include "common.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "command.h"
#include "records.h"
#include "src/strings.h"
#include "testing/terminal.h"

namespace mapkv::tools {
using internal::ToAbsl;

int ReportError(std::string_view command, const absl::Status& status, int exit_code) {
  const std::string line = absl::StrCat("mapkv ", ToAbsl(command), ": ", status.message());
  std::fflush(stdout);
  std::fprintf(stderr, "%s\n", line.c_str());
  return exit_code;
}

absl::Status About(std::string_view what, absl::StatusCode code, absl::string_view message) {
  return absl::Status(code, absl::StrCat(ToAbsl(what), ": ", message));
}

int ReportUsageError(std::string_view command, absl::string_view message) {
  std::fflush(stdout);
  std::fprintf(stderr, "mapkv %.*s: %.*s\nRun 'mapkv %.*s --help' for usage.\n",
               static_cast<int>(command.size()), command.data(), static_cast<int>(message.size()),
               message.data(), static_cast<int>(command.size()), command.data());
  return kExitUsage;
}

absl::StatusOr<std::unique_ptr<DB>> OpenDatabase(const std::string& path, OpenMode mode,
                                                 FileKind kind) {
  Options options;
  options.kind = kind;
  options.create_if_missing = mode == OpenMode::kCreate;
  options.read_only = mode == OpenMode::kRead;
  return DB::Open(path, options);
}

absl::StatusOr<std::unique_ptr<DB>> OpenValues(const std::string& path, OpenMode mode,
                                               bool* is_cache) {
  absl::StatusOr<std::unique_ptr<DB>> db = OpenDatabase(path, mode, FileKind::kAny);
  if (db.ok()) *is_cache = (*db)->GetStats().is_cache;
  return db;
}

int ReportReadOpenError(std::string_view command, const std::string& path,
                        const absl::Status& status) {
  if (!IsNeedsRecovery(status)) return ReportError(command, status, kExitError);
  ReportError(command, status, kExitDataProblem);
  std::fprintf(stderr,
               "mapkv %.*s: %s is unchanged: this command only reads. Any command that writes "
               "(put, del, load, compact) recovers it first; `mapkv salvage %s OUT` copies what is "
               "intact without changing it.\n",
               static_cast<int>(command.size()), command.data(), path.c_str(), path.c_str());
  return kExitDataProblem;
}

std::string Plural(uint64_t n, std::string_view one, std::string_view many) {
  return absl::StrCat(Commas(n), " ", ToAbsl(n == 1 ? one : many));
}

absl::StatusOr<std::string> DecodeArgument(std::string_view text, bool escaped,
                                           std::string_view what) {
  if (!escaped) return std::string(text);
  absl::StatusOr<std::string> decoded = UnescapeTsv(text);
  if (!decoded.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(what), " (--escaped): ", decoded.status().message()));
  }
  return decoded;
}

std::string Commas(uint64_t n) {
  std::string digits = absl::StrCat(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string Bytes(uint64_t n) {
  constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrCat(n, " B") : absl::StrFormat("%.1f %s", v, kUnits[unit]);
}

std::string Seconds(double s) {
  if (s < 1) return absl::StrFormat("%.1f ms", s * 1000);
  return absl::StrFormat("%.2f s", s);
}

absl::StatusOr<std::string> ReadAllStdin() {
  std::string out;
  char buf[1 << 16];
  for (;;) {
    size_t n = std::fread(buf, 1, sizeof(buf), stdin);
    out.append(buf, n);
    if (n < sizeof(buf)) {
      if (std::ferror(stdin)) {
        return absl::DataLossError(absl::StrCat("stdin: read error: ", std::strerror(errno)));
      }
      if (std::feof(stdin)) return out;
    }
  }
}

CLI::Option* AddQuietFlag(CLI::App* app, bool* quiet) {
  return app->add_flag("-q,--quiet", *quiet,
                       "no progress bar (there is one on stderr only when it is a terminal)");
}

Progress::Progress(std::string label, uint64_t total, bool quiet)
    : enabled_(!quiet && internal::IsTerminal(internal::StdStream::kErr)),
      label_(std::move(label)),
      total_(total),
      start_(std::chrono::steady_clock::now()) {}

void Progress::set_label(std::string label) {
  label_ = std::move(label);
  Update(done_, true);
}

void Progress::Update(uint64_t done, bool force) {
  done_ = done;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  drawn_ = true;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  int columns = internal::TerminalColumns(internal::StdStream::kErr);
  if (columns <= 0) columns = 80;
  std::string right;
  std::string line = absl::StrCat(label_, " ");
  if (total_ > 0) {
    const double fraction = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
    right = absl::StrFormat(" %3.0f%% %s/%s %s", 100 * fraction, Commas(done), Commas(total_),
                            Seconds(elapsed));
    // A steady 30 columns, narrower only when the terminal is.
    const int width = std::clamp(columns - static_cast<int>(line.size()) - 45, 0, 30);
    const int filled = static_cast<int>(fraction * width);
    absl::StrAppend(&line, "[", std::string(filled, '#'), std::string(width - filled, ' '), "]");
  } else if (elapsed_only_) {
    right = absl::StrFormat("(%s so far)", Seconds(elapsed));
  } else {
    right = absl::StrFormat("%s %s", Commas(done), Seconds(elapsed));
  }
  line += right;
  if (static_cast<int>(line.size()) >= columns) line.resize(std::max(columns - 1, 0));
  std::fprintf(stderr, "\r%s\033[K", line.c_str());
  std::fflush(stderr);
}

void Progress::Elapsed() {
  elapsed_only_ = true;
  Update(0);
}

void Progress::Done() {
  if (!enabled_ || !drawn_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace mapkv::tools
