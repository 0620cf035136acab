#include "records.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "cache_values.h"
#include "json_read.h"
#include "mapkv/db.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "src/strings.h"

namespace mapkv::tools {
namespace {

using internal::ToAbsl;

constexpr char kHex[] = "0123456789abcdef";

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// JSON strings through RapidJSON's writer: escapes quotes, backslashes and control bytes, and
// passes other bytes (UTF-8, checked by the caller) through.
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void WriteJsonString(JsonWriter* writer, std::string_view s) {
  writer->String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// The whole line is one JSON object (json_read.h), or white space.
absl::StatusOr<LineKind> ParseJsonLine(std::string_view line, const ParseOptions& options,
                                       Record* record) {
  size_t first = 0;
  while (first < line.size() &&
         (line[first] == ' ' || line[first] == '\t' || line[first] == '\r')) {
    ++first;
  }
  if (first == line.size()) return LineKind::kBlank;
  return ParseJsonObject(line, options, record);
}

}  // namespace

std::string JsonString(std::string_view s) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  WriteJsonString(&writer, s);
  return std::string(buffer.GetString(), buffer.GetSize());
}

absl::StatusOr<Format> ParseFormat(std::string_view name) {
  if (name == "tsv") return Format::kTsv;
  if (name == "jsonl") return Format::kJsonl;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown format \"", ToAbsl(name), "\" (tsv or jsonl)"));
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i - 1 < static_cast<size_t>(n)) return false;
    for (int k = 1; k <= n; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return false;
    i += static_cast<size_t>(n) + 1;
  }
  return true;
}

std::string EscapeTsv(std::string_view field, bool is_key) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(field[i]);
    switch (c) {
      case '\\':
        out.append("\\\\");
        break;
      case '\t':
        out.append("\\t");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      default:
        if (c < 0x20 || c == 0x7f || (c == '#' && i == 0 && is_key)) {
          out.append("\\x");
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

absl::StatusOr<std::string> UnescapeTsv(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    const char c = field[i];
    if (c == '\t' || c == '\n') {
      return absl::InvalidArgumentError(
          absl::StrCat("raw ", c == '\t' ? "tab" : "line feed", " at byte ", i + 1));
    }
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (i + 1 >= field.size()) {
      return absl::InvalidArgumentError(absl::StrCat("a lone backslash at byte ", i + 1));
    }
    const char e = field[++i];
    switch (e) {
      case '\\':
        out.push_back('\\');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case '0':
        out.push_back('\0');
        break;
      case 'x': {
        int hi = i + 1 < field.size() ? HexDigit(field[i + 1]) : -1;
        int lo = i + 2 < field.size() ? HexDigit(field[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
          return absl::InvalidArgumentError(absl::StrCat("\\x wants two hex digits, at byte ", i));
        }
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        break;
      }
      default:
        return absl::InvalidArgumentError(absl::StrCat("unknown escape \\", std::string(1, e),
                                                       " at byte ", i,
                                                       " (known: \\\\ \\t \\n \\r \\0 \\xHH)"));
    }
  }
  return out;
}

std::string FormatRecord(Format format, std::string_view key, std::string_view value,
                         int64_t expires_unix_ms) {
  std::string out;
  if (format == Format::kTsv) {
    out = EscapeTsv(key, true);
    out.push_back('\t');
    out.append(EscapeTsv(value, false));
    if (expires_unix_ms >= 0) {
      out.push_back('\t');
      out.append(FormatExpiry(expires_unix_ms));
    }
    out.push_back('\n');
    return out;
  }
  thread_local rapidjson::StringBuffer buffer;
  buffer.Clear();
  JsonWriter writer(buffer);
  auto field = [&writer](std::string_view name, std::string_view data) {
    if (IsValidUtf8(data)) {
      WriteJsonString(&writer, name);
      WriteJsonString(&writer, data);
    } else {
      WriteJsonString(&writer, absl::StrCat(ToAbsl(name), "_base64"));
      WriteJsonString(&writer, absl::Base64Escape(ToAbsl(data)));
    }
  };
  writer.StartObject();
  field("key", key);
  field("value", value);
  if (expires_unix_ms >= 0) {
    WriteJsonString(&writer, "expires");
    WriteJsonString(&writer, FormatExpiry(expires_unix_ms));
  }
  writer.EndObject();
  out.reserve(buffer.GetSize() + 1);
  out.assign(buffer.GetString(), buffer.GetSize());
  out.push_back('\n');
  return out;
}

absl::StatusOr<LineKind> ParseRecord(Format format, std::string_view line,
                                     const ParseOptions& options, Record* record) {
  if (format == Format::kJsonl) return ParseJsonLine(line, options, record);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty()) return LineKind::kBlank;
  if (line[0] == '#' && options.comments) return LineKind::kComment;
  std::vector<std::string_view> fields;
  for (size_t start = 0;;) {
    const size_t tab = line.find('\t', start);
    fields.push_back(line.substr(start, tab == std::string_view::npos ? tab : tab - start));
    if (tab == std::string_view::npos) break;
    start = tab + 1;
  }
  const int needed = std::max(
      {options.key_column, options.value_column, options.columns ? options.expiry_column : 0});
  const bool fits = options.columns
                        ? static_cast<int>(fields.size()) >= needed
                        : fields.size() == 2 || (fields.size() == 3 && options.expiry_column == 3);
  if (!fits) {
    if (fields.size() == 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "expected KEY<TAB>VALUE, found no tab",
          line[0] == '#' ? " (a comment? --comments skips lines that start with '#')" : ""));
    }
    if (options.columns) {
      return absl::InvalidArgumentError(absl::StrCat(
          fields.size(), " tab-separated fields, fewer than the ", needed, " --columns names"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        fields.size(), " tab-separated fields, expected ",
        options.expiry_column == 3 ? "2 or 3 (KEY, VALUE, EXPIRES)" : "2 (KEY<TAB>VALUE)",
        ": escape a tab inside a field as \\t, or choose the columns to load with --columns "
        "(--columns 1,2 loads the first two and ignores the rest)"));
  }
  const std::string_view key_field = fields[options.key_column - 1];
  if (key_field.empty()) {
    return absl::InvalidArgumentError("empty key (keys are 1 to 65535 bytes)");
  }
  absl::StatusOr<std::string> key = UnescapeTsv(key_field);
  if (!key.ok()) return absl::InvalidArgumentError(absl::StrCat("key: ", key.status().message()));
  absl::StatusOr<std::string> value = UnescapeTsv(fields[options.value_column - 1]);
  if (!value.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("value: ", value.status().message()));
  }
  record->expires_unix_ms = -1;
  if (options.expiry_column > 0 && static_cast<int>(fields.size()) >= options.expiry_column) {
    absl::StatusOr<int64_t> expires = ParseExpiry(fields[options.expiry_column - 1]);
    if (!expires.ok()) return expires.status();
    record->expires_unix_ms = *expires;
  }
  record->key = *std::move(key);
  record->value = *std::move(value);
  return LineKind::kRecord;
}

// The longest line of `format` that holds a key of kMaxKeySize bytes and a value of `max_value`:
// every byte in its longest escape (TSV: `\xHH`, 4 bytes; JSON: `\u00HH`, 6, more than base64's 4
// per 3), and room for the JSON field names and some white space around them.
uint64_t MaxLineBytes(Format format, uint64_t max_value) {
  const uint64_t per_byte = format == Format::kTsv ? 4 : 6;
  return per_byte * (kMaxKeySize + max_value) + 4096;
}

RecordReader::RecordReader(std::FILE* in, Format format, std::string name, uint64_t max_value,
                           ParseOptions options)
    : in_(in),
      format_(format),
      name_(std::move(name)),
      max_value_(max_value),
      max_line_(MaxLineBytes(format, max_value)),
      options_(options) {}

absl::StatusOr<bool> RecordReader::ReadLine(std::string* line) {
  line->clear();
  for (;;) {
    const size_t nl = buffer_.find('\n', pos_);
    const size_t end = nl == std::string::npos ? buffer_.size() : nl;
    if (line->size() + (end - pos_) > max_line_) {
      return absl::InvalidArgumentError(absl::StrCat(
          name_, ":", line_ + 1, ": a line longer than ", max_line_,
          " bytes, longer than any record with a key of up to ", kMaxKeySize,
          " bytes and a value of up to ", max_value_, " bytes can be, escaped (not read further)"));
    }
    line->append(buffer_, pos_, end - pos_);
    if (nl != std::string::npos) {
      pos_ = nl + 1;
      return true;
    }
    buffer_.clear();
    pos_ = 0;
    if (eof_) return !line->empty();
    buffer_.resize(1 << 16);
    const size_t n = std::fread(buffer_.data(), 1, buffer_.size(), in_);
    buffer_.resize(n);
    bytes_read_ += n;
    if (n == 0) {
      if (std::ferror(in_)) {
        return absl::DataLossError(absl::StrCat(name_, ": read error: ", std::strerror(errno)));
      }
      eof_ = true;
    }
  }
}

absl::StatusOr<bool> RecordReader::Next(Record* record) {
  std::string line;
  for (;;) {
    absl::StatusOr<bool> more = ReadLine(&line);
    if (!more.ok() || !*more) return more;
    ++line_;
    absl::StatusOr<LineKind> parsed = ParseRecord(format_, line, options_, record);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name_, ":", line_, ": ", parsed.status().message()));
    }
    if (*parsed == LineKind::kBlank) {
      ++blank_lines_;
      continue;
    }
    if (*parsed == LineKind::kComment) {
      ++comment_lines_;
      continue;
    }
    if (record->value.size() > max_value_) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ":", line_, ": a value of ",
                                                     record->value.size(),
                                                     " bytes, over the limit of ", max_value_));
    }
    return true;
  }
}

absl::StatusOr<std::vector<Record>> ReadRecordsFile(const std::string& path, Format format,
                                                    const ParseOptions& options) {
  std::FILE* in = std::fopen(path.c_str(), "rb");
  if (in == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  RecordReader reader(in, format, path, kMaxValueSize, options);
  std::vector<Record> records;
  Record record;
  for (;;) {
    absl::StatusOr<bool> more = reader.Next(&record);
    if (!more.ok()) {
      std::fclose(in);
      return more.status();
    }
    if (!*more) break;
    records.push_back(std::move(record));
  }
  std::fclose(in);
  return records;
}

}  // namespace mapkv::tools
