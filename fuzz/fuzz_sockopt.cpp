// Fuzzes the generic socket-option values of --sockopt and --sockopt-listen (LEVEL:NAME=VALUE).
//
// Asserts: an accepted option has a non-negative level and name, a value of 4 bytes (an
// integer) or the bytes its 0x… spelled, and a label equal to the text; written back with
// numeric level and name and the value as 0x… bytes, it parses to the same option; a refused
// one says why.
#include <cstdint>
#include <string>

#include "core/sockopts.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  startup_server::raw_socket_option out;
  std::string problem;
  if (!startup_server::detail::parse_raw_socket_option(text, out, problem)) {
    FUZZ_CHECK(!problem.empty());
    return 0;
  }
  FUZZ_CHECK(problem.empty());
  FUZZ_CHECK(out.level >= 0 && out.name >= 0);
  FUZZ_CHECK(out.label == text);
  const std::string_view value = text.substr(text.find('=') + 1);
  if (value.size() > 2 && value.substr(0, 2) == "0x") FUZZ_CHECK(out.value.size() * 2 == value.size() - 2);
  else FUZZ_CHECK(out.value.size() == sizeof(int));

  std::string hex = std::to_string(out.level) + ":" + std::to_string(out.name) + "=";
  if (out.value.empty()) {
    hex += "0";  // "0x" alone is not bytes; an empty value cannot be spelled, so compare a number
  } else {
    hex += "0x";
    static const char digits[] = "0123456789abcdef";
    for (unsigned char b : out.value) hex += {digits[b >> 4], digits[b & 15]};
  }
  startup_server::raw_socket_option again;
  std::string again_problem;
  FUZZ_CHECK(startup_server::detail::parse_raw_socket_option(hex, again, again_problem));
  FUZZ_CHECK(again.level == out.level && again.name == out.name);
  if (!out.value.empty()) FUZZ_CHECK(again.value == out.value);
  return 0;
}
