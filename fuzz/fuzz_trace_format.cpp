// Fuzzes the traffic trace (-x/--trace) with client bytes: what a client sends is shown on
// the server's stderr or log, so it must never break a line or the JSON around it.
//
// Asserts: text is one line of printable ASCII, and unescaping it gives the bytes back; hex is
// one line per 16 bytes, each byte's two digits in order; the JSON line, text or hex, is one
// valid JSON object.
#include <cstdint>
#include <string>
#include <vector>

#include "cli/trace_format.hpp"
#include "fuzz_support.hpp"

using namespace startup_server;

namespace {

std::string unescaped(std::string_view shown) {
  std::string out;
  for (std::size_t i = 0; i < shown.size(); ++i) {
    if (shown[i] != '\\') {
      out.push_back(shown[i]);
      continue;
    }
    const char e = shown[++i];
    if (e == 'n') out.push_back('\n');
    else if (e == 'r') out.push_back('\r');
    else if (e == 't') out.push_back('\t');
    else if (e == '\\') out.push_back('\\');
    else out.push_back(static_cast<char>(std::stoi(std::string(shown.substr(i + 1, 2)), nullptr, 16))), i += 2;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  traffic_record r;
  r.id = size;
  r.way = size % 2 ? traffic_record::direction::in : traffic_record::direction::out;
  r.bytes = bytes;
  const std::string name = "7000 server";

  std::vector<std::string> text;
  detail::format_traffic(r, name, false, text);
  FUZZ_CHECK(text.size() == 1);
  for (unsigned char ch : text[0]) FUZZ_CHECK(ch >= 0x20 && ch < 0x7f);
  const std::string head = "startup-server: " + name + ": #" + std::to_string(r.id) + (size % 2 ? " < " : " > ") +
                           std::to_string(size) + (size == 1 ? " byte: " : " bytes: ");
  FUZZ_CHECK(text[0].compare(0, head.size(), head) == 0);
  FUZZ_CHECK(unescaped(std::string_view(text[0]).substr(head.size())) == bytes);

  std::vector<std::string> hex;
  detail::format_traffic(r, name, true, hex);
  FUZZ_CHECK(hex.size() == (size + 15) / 16);
  static const char digits[] = "0123456789abcdef";
  for (std::size_t line = 0; line < hex.size(); ++line) {
    FUZZ_CHECK(hex[line].find('\n') == std::string::npos);
    std::string expected;
    for (std::size_t i = line * 16; i < std::min(size, line * 16 + 16); ++i)
      expected += std::string{' ', digits[data[i] >> 4], digits[data[i] & 15]};
    FUZZ_CHECK(hex[line].find(expected) != std::string::npos);
  }

  for (bool as_hex : {false, true}) FUZZ_CHECK(fuzz::json_checker(detail::format_traffic_json(r, name, as_hex)).one_object());
  return 0;
}
