#include "records.h"

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "mapkv/db.h"

namespace mapkv::tools {
namespace {

absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr char kHex[] = "0123456789abcdef";

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void AppendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// A minimal parser for one flat JSON object whose values are all strings.
class JsonLine {
 public:
  explicit JsonLine(std::string_view text) : s_(text) {}

  absl::StatusOr<bool> Parse(Record* record) {
    SkipSpace();
    if (pos_ == s_.size()) return false;  // a blank line
    if (!Consume('{')) return Error("expected '{'");
    bool have_key = false, have_value = false;
    SkipSpace();
    if (!Consume('}')) {
      for (;;) {
        SkipSpace();
        std::string name;
        if (absl::Status s = String(&name); !s.ok()) return s;
        SkipSpace();
        if (!Consume(':')) return Error("expected ':' after a field name");
        SkipSpace();
        std::string text;
        if (pos_ < s_.size() && s_[pos_] != '"') {
          return Error(absl::StrCat("field \"", name, "\" must be a string"));
        }
        if (absl::Status s = String(&text); !s.ok()) return s;
        bool* have = nullptr;
        std::string* target = nullptr;
        bool base64 = false;
        if (name == "key" || name == "key_base64") {
          have = &have_key;
          target = &record->key;
          base64 = name == "key_base64";
        } else if (name == "value" || name == "value_base64") {
          have = &have_value;
          target = &record->value;
          base64 = name == "value_base64";
        } else {
          return Error(absl::StrCat("unknown field \"", name,
                                    "\" (expected key or key_base64, value or value_base64)"));
        }
        if (*have) return Error(absl::StrCat("a second ", name.substr(0, name.find('_'))));
        *have = true;
        if (base64) {
          if (!absl::Base64Unescape(text, target)) {
            return Error(absl::StrCat("field \"", name, "\" is not valid base64"));
          }
        } else {
          *target = std::move(text);
        }
        SkipSpace();
        if (Consume('}')) break;
        if (!Consume(',')) return Error("expected ',' or '}'");
      }
    }
    SkipSpace();
    if (pos_ != s_.size()) return Error("text after the closing '}'");
    if (!have_key) return Error("no key (or key_base64) field");
    if (!have_value) return Error("no value (or value_base64) field");
    return true;
  }

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(what), " at column ", std::min(pos_, s_.size()) + 1));
  }
  void SkipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\r' || s_[pos_] == '\n')) {
      ++pos_;
    }
  }
  bool Consume(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  absl::StatusOr<uint32_t> Hex4() {
    if (s_.size() - pos_ < 4) return Error("short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      int d = HexDigit(s_[pos_ + i]);
      if (d < 0) return Error("bad \\u escape");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    pos_ += 4;
    return v;
  }
  absl::Status String(std::string* out) {
    if (!Consume('"')) return Error("expected a string");
    out->clear();
    for (;;) {
      if (pos_ >= s_.size()) return Error("unterminated string");
      char c = s_[pos_++];
      if (c == '"') break;
      if (static_cast<unsigned char>(c) < 0x20) return Error("raw control byte in a string");
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return Error("unterminated string");
      char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          absl::StatusOr<uint32_t> cp = Hex4();
          if (!cp.ok()) return cp.status();
          if (*cp >= 0xDC00 && *cp < 0xE000) return Error("lone low surrogate");
          if (*cp >= 0xD800 && *cp < 0xDC00) {
            if (!Consume('\\') || !Consume('u')) return Error("high surrogate without its pair");
            absl::StatusOr<uint32_t> low = Hex4();
            if (!low.ok()) return low.status();
            if (*low < 0xDC00 || *low >= 0xE000) return Error("bad low surrogate");
            *cp = 0x10000 + ((*cp - 0xD800) << 10) + (*low - 0xDC00);
          }
          AppendUtf8(out, *cp);
          break;
        }
        default:
          return Error(absl::StrCat("bad escape \\", std::string(1, e)));
      }
    }
    if (!IsValidUtf8(*out)) return Error("a string that is not valid UTF-8 (use *_base64)");
    return absl::OkStatus();
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

std::string JsonString(std::string_view s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
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

std::string FormatRecord(Format format, std::string_view key, std::string_view value) {
  std::string out;
  if (format == Format::kTsv) {
    out = EscapeTsv(key, true);
    out.push_back('\t');
    out.append(EscapeTsv(value, false));
    out.push_back('\n');
    return out;
  }
  out.reserve(key.size() + value.size() + 32);
  auto field = [&out](std::string_view name, std::string_view data) {
    if (IsValidUtf8(data)) {
      AppendJsonString(&out, name);
      out.push_back(':');
      AppendJsonString(&out, data);
    } else {
      AppendJsonString(&out, absl::StrCat(ToAbsl(name), "_base64"));
      out.push_back(':');
      out.push_back('"');
      out.append(absl::Base64Escape(ToAbsl(data)));
      out.push_back('"');
    }
  };
  out.push_back('{');
  field("key", key);
  out.push_back(',');
  field("value", value);
  out.append("}\n");
  return out;
}

absl::StatusOr<bool> ParseRecord(Format format, std::string_view line, Record* record) {
  if (format == Format::kJsonl) return JsonLine(line).Parse(record);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty() || line[0] == '#') return false;
  const size_t tab = line.find('\t');
  if (tab == std::string_view::npos) {
    return absl::InvalidArgumentError("expected KEY<TAB>VALUE, found no tab");
  }
  if (tab == 0) return absl::InvalidArgumentError("empty key (keys are 1 to 65535 bytes)");
  absl::StatusOr<std::string> key = UnescapeTsv(line.substr(0, tab));
  if (!key.ok()) return absl::InvalidArgumentError(absl::StrCat("key: ", key.status().message()));
  absl::StatusOr<std::string> value = UnescapeTsv(line.substr(tab + 1));
  if (!value.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "value: ", value.status().message(),
        value.status().message().find("raw tab") == 0 ? " (escape tabs in values as \\t)" : ""));
  }
  record->key = *std::move(key);
  record->value = *std::move(value);
  return true;
}

// The longest line of `format` that holds a key of kMaxKeySize bytes and a value of `max_value`:
// every byte in its longest escape (TSV: `\xHH`, 4 bytes; JSON: `\u00HH`, 6, more than base64's 4
// per 3), and room for the JSON field names and some white space around them.
uint64_t MaxLineBytes(Format format, uint64_t max_value) {
  const uint64_t per_byte = format == Format::kTsv ? 4 : 6;
  return per_byte * (kMaxKeySize + max_value) + 4096;
}

RecordReader::RecordReader(std::FILE* in, Format format, std::string name, uint64_t max_value)
    : in_(in),
      format_(format),
      name_(std::move(name)),
      max_value_(max_value),
      max_line_(MaxLineBytes(format, max_value)) {}

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
    absl::StatusOr<bool> parsed = ParseRecord(format_, line, record);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name_, ":", line_, ": ", parsed.status().message()));
    }
    if (*parsed && record->value.size() > max_value_) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ":", line_, ": a value of ",
                                                     record->value.size(),
                                                     " bytes, over the limit of ", max_value_));
    }
    if (*parsed) return true;
  }
}

absl::StatusOr<std::vector<Record>> ReadRecordsFile(const std::string& path, Format format) {
  std::FILE* in = std::fopen(path.c_str(), "rb");
  if (in == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  RecordReader reader(in, format, path, kMaxValueSize);
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
