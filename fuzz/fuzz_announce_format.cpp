// Fuzzes --announce-format templates, and the announce and connection-log lines built from
// values that come from outside (a process name, an error message, addresses).
//
// Input: the template, then NUL-separated values for the name, the address and the error
// message. Asserts: check_announce_format accepts exactly what expands; a template made by
// doubling every brace of any text expands to that text; each known field expands to its
// value; a template says nothing for events other than listening; json lines are one valid
// JSON object whatever the values; text and json connection-log lines are one line.
#include <cstdint>
#include <string>

#include "cli/announce_format.hpp"
#include "cli/log_format.hpp"
#include "fuzz_support.hpp"

using namespace startup_server;

namespace {

std::string part(const std::vector<std::string>& parts, std::size_t i) { return i < parts.size() ? parts[i] : ""; }

std::string doubled_braces(const std::string& text) {
  std::string out;
  for (char ch : text) {
    out.push_back(ch);
    if (ch == '{' || ch == '}') out.push_back(ch);
  }
  return out;
}

bool one_line(const std::string& s) { return s.find('\n') == std::string::npos; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto parts = fuzz::split_on_nul(data, size);
  const std::string& format = parts[0];
  announce_event e;
  e.what = announce_event::kind::listening;
  e.address = part(parts, 2).empty() ? "127.0.0.1" : part(parts, 2);
  e.port = static_cast<std::uint16_t>(size * 257);
  e.family = "ipv4";
  e.message = part(parts, 3);
  detail::announce_identity who{static_cast<long>(size), part(parts, 1)};

  std::string problem;
  const bool ok = detail::check_announce_format(format, problem);
  FUZZ_CHECK(ok == problem.empty());
  if (ok && format != "text" && format != "json") {
    const std::string line = detail::format_announce(e, format, who);
    // No field value holds a brace here, so the line has one only where "{{" or "}}" was.
    std::size_t braces = 0;
    for (char ch : format) braces += ch == '{' || ch == '}';
    if (who.name.find_first_of("{}") == std::string::npos && e.address.find_first_of("{}") == std::string::npos) {
      std::size_t out_braces = 0;
      for (char ch : line) out_braces += ch == '{' || ch == '}';
      FUZZ_CHECK(out_braces * 2 <= braces);
    }
    for (auto k : {announce_event::kind::error, announce_event::kind::terminated}) {
      announce_event other = e;
      other.what = k;
      FUZZ_CHECK(detail::format_announce(other, format, who).empty());
    }
  }

  // Literal text, braces doubled, is a template that expands to the text itself.
  const std::string literal = doubled_braces(format);
  FUZZ_CHECK(literal.empty() || literal == "text" || literal == "json" ||
             (detail::check_announce_format(literal, problem) && detail::format_announce(e, literal, who) == format));
  // Each field alone expands to its value.
  FUZZ_CHECK(detail::format_announce(e, "{name}", who) == who.name);
  FUZZ_CHECK(detail::format_announce(e, "{address}", who) == e.address);
  FUZZ_CHECK(detail::format_announce(e, "{port}", who) == std::to_string(e.port));

  for (auto k : {announce_event::kind::listening, announce_event::kind::error, announce_event::kind::terminated}) {
    announce_event any = e;
    any.what = k;
    any.socket_options.push_back({part(parts, 1), part(parts, 3), format});
    const std::string json = detail::format_announce(any, "json", who);
    FUZZ_CHECK(fuzz::json_checker(json).one_object());
    (void)detail::format_announce(any, "text", who);
  }

  connection_record c;
  c.peer_address = e.address;
  c.local_address = part(parts, 3);
  c.proxy_address = format;
  c.reason = e.message;
  c.what = size % 3 == 0 ? connection_record::kind::open : size % 3 == 1 ? connection_record::kind::close
                                                                         : connection_record::kind::refused;
  const std::string json = detail::format_connection_record(c, who.name, true);
  FUZZ_CHECK(fuzz::json_checker(json).one_object());
  (void)detail::format_connection_record(c, who.name, false);
  FUZZ_CHECK(one_line(json));
  return 0;
}
