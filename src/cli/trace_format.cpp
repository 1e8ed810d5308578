// Formatting traffic for a person: escaped text, or hexdump -C's layout.
#include "cli/trace_format.hpp"

#include <fmt/core.h>

#include "cli/json.hpp"

namespace startup_server::detail {

void format_traffic(const traffic_record& r, const std::string& name, bool hex, std::vector<std::string>& out) {
  const std::string head =
      fmt::format("startup-server: {}: #{} {}", name, r.id, r.way == traffic_record::direction::in ? "<" : ">");
  if (!hex) {
    std::string line = fmt::format("{} {} byte{}: ", head, r.bytes.size(), r.bytes.size() == 1 ? "" : "s");
    for (unsigned char ch : r.bytes) {
      switch (ch) {
        case '\n': line += "\\n"; break;
        case '\r': line += "\\r"; break;
        case '\t': line += "\\t"; break;
        case '\\': line += "\\\\"; break;
        default:
          if (ch < 0x20 || ch >= 0x7f) line += fmt::format("\\x{:02x}", ch);
          else line.push_back(static_cast<char>(ch));
      }
    }
    out.push_back(std::move(line));
    return;
  }
  for (std::size_t at = 0; at < r.bytes.size(); at += 16) {
    std::string line = fmt::format("{} {:04x} ", head, at);
    std::string shown;
    for (std::size_t i = at; i < at + 16; ++i) {
      if (i < r.bytes.size()) {
        const auto ch = static_cast<unsigned char>(r.bytes[i]);
        line += fmt::format(" {:02x}", ch);
        shown.push_back(ch >= 0x20 && ch < 0x7f ? static_cast<char>(ch) : '.');
      } else {
        line += "   ";
      }
    }
    out.push_back(line + "  |" + shown + "|");
  }
}

std::string format_traffic_json(const traffic_record& r, const std::string& name, bool hex) {
  json_object line;
  line.string("event", "traffic")
      .number("id", static_cast<std::int64_t>(r.id))
      .string("name", name)
      .string("direction", r.way == traffic_record::direction::in ? "in" : "out")
      .number("bytes", static_cast<std::int64_t>(r.bytes.size()));
  if (hex) {
    std::string digits;
    digits.reserve(r.bytes.size() * 2);
    for (unsigned char ch : r.bytes) digits += fmt::format("{:02x}", ch);
    line.string("hex", digits);
  } else {
    line.raw("data", json_quote_bytes(r.bytes));
  }
  return line.str();
}

}  // namespace startup_server::detail
