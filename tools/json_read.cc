#include "json_read.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "cache_values.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "src/strings.h"

namespace mapkv::tools {

using internal::ToAbsl;

JsonFields::JsonFields(const ParseOptions& options, Record* record)
    : options_(options), record_(record) {
  record_->expires_unix_ms = -1;
}

absl::Status JsonFields::Add(std::string_view name, const std::string_view* text) {
  bool* have = nullptr;
  std::string* target = nullptr;
  bool base64 = false;
  if (name == "key" || name == "key_base64") {
    have = &have_key_;
    target = &record_->key;
    base64 = name == "key_base64";
  } else if (name == "value" || name == "value_base64") {
    have = &have_value_;
    target = &record_->value;
    base64 = name == "value_base64";
  } else if (name != "expires") {
    if (!options_.strict_fields) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("unknown field \"", ToAbsl(name),
                     "\" (--strict allows only key or key_base64, value or value_base64, "
                     "expires)"));
  }
  if (text == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("field \"", ToAbsl(name), "\" must be a string"));
  }
  if (target == nullptr) {  // expires
    absl::StatusOr<int64_t> expires = ParseExpiry(*text);
    if (!expires.ok()) return expires.status();
    record_->expires_unix_ms = *expires;
    return absl::OkStatus();
  }
  if (*have) {
    return absl::InvalidArgumentError(
        absl::StrCat("a second ", ToAbsl(name.substr(0, name.find('_')))));
  }
  *have = true;
  if (base64) {
    if (!absl::Base64Unescape(ToAbsl(*text), target)) {
      return absl::InvalidArgumentError(
          absl::StrCat("field \"", ToAbsl(name), "\" is not valid base64"));
    }
    return absl::OkStatus();
  }
  // A lone surrogate escape (\udc00) decodes into bytes that are not UTF-8.
  if (!IsValidUtf8(*text)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "field \"", ToAbsl(name), "\" is not valid UTF-8 (use ", ToAbsl(name), "_base64)"));
  }
  target->assign(*text);
  return absl::OkStatus();
}

absl::StatusOr<LineKind> JsonFields::Finish() const {
  if (!have_key_) return absl::InvalidArgumentError("no key (or key_base64) field");
  if (!have_value_) return absl::InvalidArgumentError("no value (or value_base64) field");
  return LineKind::kRecord;
}

absl::StatusOr<LineKind> ParseJsonObjectRapid(std::string_view line, const ParseOptions& options,
                                              Record* record) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(line.data(), line.size());
  if (doc.HasParseError()) {
    std::string_view what = rapidjson::GetParseError_En(doc.GetParseError());
    if (!what.empty() && what.back() == '.') what.remove_suffix(1);
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(what), " at column ", doc.GetErrorOffset() + 1,
                     doc.GetParseError() == rapidjson::kParseErrorStringInvalidEncoding
                         ? " (bytes that are not UTF-8 go in key_base64 / value_base64)"
                         : ""));
  }
  if (!doc.IsObject()) return absl::InvalidArgumentError("not a JSON object");
  JsonFields fields(options, record);
  for (const auto& member : doc.GetObject()) {
    const std::string_view name(member.name.GetString(), member.name.GetStringLength());
    std::string_view text;
    if (member.value.IsString()) {
      text = std::string_view(member.value.GetString(), member.value.GetStringLength());
    }
    if (absl::Status s = fields.Add(name, member.value.IsString() ? &text : nullptr); !s.ok()) {
      return s;
    }
  }
  return fields.Finish();
}

}  // namespace mapkv::tools
