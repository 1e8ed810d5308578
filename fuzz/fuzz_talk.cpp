// Fuzzes the talk handler's line splitter with client bytes, fed whole and in pieces.
//
// Asserts: the reply equals a plain reference (split on LF, one CR before the LF dropped,
// each line "You sent: '<line>'\n", a last unterminated line answered too); feeding the
// same bytes in pieces of any sizes gives the same reply; the transform is ready for the
// next connection's bytes after end().
#include <cstdint>
#include <string>

#include "fuzz_support.hpp"
#include "handlers/talk_transform.hpp"

namespace {

std::string reference(std::string_view in) {
  std::string out;
  std::size_t start = 0;
  while (start < in.size()) {
    const std::size_t lf = in.find('\n', start);
    std::string_view line = in.substr(start, lf == std::string_view::npos ? std::string_view::npos : lf - start);
    if (lf != std::string_view::npos && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    out += "You sent: '";
    out += line;
    out += "'\n";
    if (lf == std::string_view::npos) break;
    start = lf + 1;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::reader r(data, size);
  const std::uint8_t seed = r.byte();  // how to cut the rest into pieces
  const std::string_view in = r.rest();
  const std::string expected = reference(in);

  startup_server::detail::talk_transform whole;
  std::string out;
  whole.feed(in.data(), in.size(), out);
  whole.end(out);
  FUZZ_CHECK(out == expected);

  // Pieces of 1 to 16 bytes, the sizes drawn from the seed byte, and empty feeds between.
  startup_server::detail::talk_transform pieces;
  std::string piecewise;
  std::uint32_t state = seed * 2654435761u + 1;
  for (std::size_t at = 0; at < in.size();) {
    state = state * 1103515245u + 12345u;
    const std::size_t n = std::min<std::size_t>(in.size() - at, 1 + (state >> 16) % 16);
    pieces.feed(in.data() + at, n, piecewise);
    pieces.feed(in.data() + at + n, 0, piecewise);
    at += n;
  }
  pieces.end(piecewise);
  FUZZ_CHECK(piecewise == expected);

  // After end() the same object answers the next bytes from a fresh line.
  std::string again;
  pieces.feed(in.data(), in.size(), again);
  pieces.end(again);
  FUZZ_CHECK(again == expected);
  return 0;
}
