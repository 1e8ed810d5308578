// One JSON object on one line, built field by field: the announce, log and note lines share it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace startup_server::detail {

// A JSON string literal for s (quotes included); bytes ≥ 0x80 pass through unchanged.
std::string json_quote(std::string_view s);
// As json_quote, but bytes ≥ 0x80 become \u0080…\u00ff (Latin-1): any bytes, valid JSON.
std::string json_quote_bytes(std::string_view s);

// Builds {"key":value,...} in the order the fields are added.
class json_object {
 public:
  json_object& string(std::string_view key, std::string_view value);
  json_object& number(std::string_view key, std::int64_t value);
  json_object& number(std::string_view key, double value);  // six decimals
  json_object& null(std::string_view key);
  json_object& raw(std::string_view key, std::string_view literal);  // a value already in JSON
  std::string str() const { return text_ + "}"; }

 private:
  json_object& key(std::string_view k);
  std::string text_ = "{";
};

}  // namespace startup_server::detail
