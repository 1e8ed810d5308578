// JSON quoting and the one-line object builder.
#include "cli/json.hpp"

#include <fmt/core.h>

namespace startup_server::detail {

std::string json_quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
  return out;
}

std::string json_quote_bytes(std::string_view s) {
  std::string out = json_quote(s);
  std::string escaped;
  escaped.reserve(out.size());
  for (unsigned char c : out) {
    if (c >= 0x80) escaped += fmt::format("\\u{:04x}", c);
    else escaped.push_back(static_cast<char>(c));
  }
  return escaped;
}

json_object& json_object::raw(std::string_view k, std::string_view literal) {
  key(k).text_ += literal;
  return *this;
}

json_object& json_object::key(std::string_view k) {
  if (text_.size() > 1) text_.push_back(',');
  text_ += json_quote(k);
  text_.push_back(':');
  return *this;
}

json_object& json_object::string(std::string_view k, std::string_view value) {
  key(k).text_ += json_quote(value);
  return *this;
}

json_object& json_object::number(std::string_view k, std::int64_t value) {
  key(k).text_ += std::to_string(value);
  return *this;
}

json_object& json_object::number(std::string_view k, double value) {
  key(k).text_ += fmt::format("{:.6f}", value);
  return *this;
}

json_object& json_object::null(std::string_view k) {
  key(k).text_ += "null";
  return *this;
}

}  // namespace startup_server::detail
