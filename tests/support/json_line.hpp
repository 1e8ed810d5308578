// A strict parser for the one-line, flat JSON objects the server prints (announce, log).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <variant>

namespace test_support {

// A value of a flat object: null, true/false, a number or a string. Nested objects and
// arrays are not part of the server's output and are rejected.
using json_value = std::variant<std::nullptr_t, bool, double, std::string>;

class json_object {
 public:
  std::map<std::string, json_value> fields;

  bool has(const std::string& key) const { return fields.count(key) > 0; }
  bool is_null(const std::string& key) const;
  // The value if present and of that type.
  std::optional<std::string> string(const std::string& key) const;
  std::optional<double> number(const std::string& key) const;
};

// Parses one line holding exactly one JSON object (RFC 8259 syntax: escapes, \u, numbers
// with fraction and exponent); nullopt if it is not valid JSON or has duplicate keys.
std::optional<json_object> parse_json_line(const std::string& line);

}  // namespace test_support
