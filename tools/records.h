// The text formats of `mapkv dump` and `mapkv load` (and of the demo's data file): one record a
// line, binary-safe.
//
// TSV: `KEY<TAB>VALUE<LF>`, each field escaped: `\\`, `\t`, `\n`, `\r`, and `\xHH` for the other
// control bytes (0x00-0x1F, 0x7F) and for a `#` that starts a key. Bytes 0x80-0xFF pass through,
// so UTF-8 text stays readable. Reading also accepts `\0`, skips blank lines and lines that start
// with `#` (comments) when asked to (ParseOptions::comments; otherwise such a line is a record or
// an error, never dropped), and drops a `\r` before the line feed (files edited on Windows).
// data/iso_codes.tsv is such a file, with two comment lines. A cache's dump has a third column,
// the expiry (cache_values.h: RFC 3339 or "never").
//
// JSON Lines: `{"key":"...","value":"..."}` when a field is valid UTF-8 (JSON string escapes),
// `"key_base64"` / `"value_base64"` (RFC 4648 with padding) when it is not; a cache's dump adds
// `"expires"`. Reading accepts the fields in any order, any JSON string escape (including \u
// surrogate pairs), other fields (ignored, or refused with ParseOptions::strict_fields), and
// blank lines. JSON is read and written with RapidJSON (Debian: rapidjson-dev).
#ifndef MAPKV_TOOLS_RECORDS_H_
#define MAPKV_TOOLS_RECORDS_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mapkv::tools {

struct Record {
  std::string key;
  std::string value;
  int64_t expires_unix_ms = -1;  // -1: the line gives none; 0: never; else when it expires
};

// How load reads its input.
struct ParseOptions {
  bool comments = false;  // TSV: skip lines that start with '#'
  // TSV: the 1-based columns of the key and value (and of the expiry, 0: none). With `columns`
  // set, a line has at least that many columns and the others are ignored; without it, a line is
  // KEY<TAB>VALUE, or KEY<TAB>VALUE<TAB>EXPIRY when expiry_column is 3.
  bool columns = false;
  int key_column = 1;
  int value_column = 2;
  int expiry_column = 0;
  bool strict_fields = false;  // JSONL: refuse fields other than key, value and expires
};

// What a line held.
enum class LineKind { kRecord, kBlank, kComment };

enum class Format { kTsv, kJsonl };

// "tsv" or "jsonl".
absl::StatusOr<Format> ParseFormat(std::string_view name);

// One field of a TSV line. `is_key` also escapes a leading '#', which would read as a comment.
std::string EscapeTsv(std::string_view field, bool is_key);
// The inverse; InvalidArgument for a bad escape or a raw tab or line feed.
absl::StatusOr<std::string> UnescapeTsv(std::string_view field);

// One line, with its line feed. `expires_unix_ms` >= 0 adds the expiry (a cache's entry).
std::string FormatRecord(Format format, std::string_view key, std::string_view value,
                         int64_t expires_unix_ms = -1);

// Parses one line (without its line feed) of `format`. InvalidArgument saying what is wrong,
// and what to do about it; the caller adds the file and line number.
absl::StatusOr<LineKind> ParseRecord(Format format, std::string_view line,
                                     const ParseOptions& options, Record* record);

// `s` as a JSON string, quotes included (for valid UTF-8; other bytes pass through unchanged).
std::string JsonString(std::string_view s);

// True when `s` is valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Reads records one at a time from a stdio stream (a file or stdin).
class RecordReader {
 public:
  // `name` is what error messages call the input ("-" reads as "stdin"). A value longer than
  // `max_value` bytes is refused, and so is a line longer than the longest that can hold one
  // (a key of kMaxKeySize bytes and a value of `max_value`, every byte in its longest escape),
  // as soon as that much of it is read: an input without line feeds never takes more memory
  // than one record could.
  RecordReader(std::FILE* in, Format format, std::string name, uint64_t max_value,
               ParseOptions options = {});

  // The next record: true, or false at the end of the input. InvalidArgument naming the input
  // and line for a malformed line, or one or a value too long; an I/O error naming the input.
  absl::StatusOr<bool> Next(Record* record);

  uint64_t bytes_read() const { return bytes_read_; }
  uint64_t line() const { return line_; }
  uint64_t blank_lines() const { return blank_lines_; }
  uint64_t comment_lines() const { return comment_lines_; }

 private:
  // The next line without its line feed; false at the end.
  absl::StatusOr<bool> ReadLine(std::string* line);

  std::FILE* in_;
  Format format_;
  std::string name_;
  uint64_t max_value_;
  uint64_t max_line_;
  ParseOptions options_;
  std::string buffer_;
  size_t pos_ = 0;
  bool eof_ = false;
  uint64_t bytes_read_ = 0;
  uint64_t line_ = 0;
  uint64_t blank_lines_ = 0;
  uint64_t comment_lines_ = 0;
};

// Every record of the file at `path`, in order (values up to kMaxValueSize). NotFound when it
// cannot be opened.
absl::StatusOr<std::vector<Record>> ReadRecordsFile(const std::string& path, Format format,
                                                    const ParseOptions& options);

}  // namespace mapkv::tools

#endif  // MAPKV_TOOLS_RECORDS_H_
