// Fuzzes the PROXY protocol header parser with a connection's first bytes, whole and as they
// would arrive: in pieces of random sizes, each time on everything received so far.
//
// Input: one byte choosing the length cap, one seeding the piece sizes, then the bytes.
// Asserts, besides ASan's "never reads past what it was given" (each call gets a buffer of
// exactly that size):
// - complete: the length is within the cap (and 107 for v1) and the given bytes; the header
//   names IPv4/IPv6 endpoints or is local; it parses the same from any longer prefix.
// - need_more: want is more than was given and within the cap; the whole input is not a
//   header that ends before want.
// - invalid: has a reason; so has every longer prefix (no bytes make it valid again).
// - fed in pieces, the first prefix that is complete or invalid agrees with the whole, and
//   the complete header's addresses survive being written out again as v1 and v2.
#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>

#include "core/proxy_header.hpp"
#include "fuzz_support.hpp"

using namespace startup_server::detail;

namespace {

constexpr std::size_t caps[] = {0, 16, 28, 52, 107, 232, 536, 4096, 65551};

// Parses a copy of bytes[0, n) in a buffer of exactly n bytes, so a read past it is caught.
proxy_parse_result parse_exactly(std::string_view bytes, std::size_t n, std::size_t cap) {
  auto copy = std::make_unique<unsigned char[]>(n ? n : 1);
  std::memcpy(copy.get(), bytes.data(), n);
  return parse_proxy_header(std::span<const unsigned char>(copy.get(), n), cap);
}

bool same_address(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) return std::memcmp(&a, &b, sizeof(sockaddr_in)) == 0;
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, 16) == 0;
  }
  return a.ss_family == AF_UNSPEC;
}

bool same_header(const proxy_header& a, const proxy_header& b) {
  return a.version == b.version && a.local == b.local && a.local_command == b.local_command &&
         a.length == b.length && same_address(a.source, b.source) && same_address(a.destination, b.destination) &&
         a.alpn == b.alpn && a.authority == b.authority && a.unique_id == b.unique_id &&
         a.ssl.has_value() == b.ssl.has_value() && a.other.size() == b.other.size();
}

std::uint16_t port(const sockaddr_storage& s) {
  return ntohs(s.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in&>(s).sin_port
                                      : reinterpret_cast<const sockaddr_in6&>(s).sin6_port);
}

// The header's endpoints written out again, as a v1 line and as a bare v2 block; both must
// give the same endpoints back.
void check_written_again(const proxy_header& h) {
  if (h.local) return;
  const bool v4 = h.source.ss_family == AF_INET;
  FUZZ_CHECK(h.destination.ss_family == h.source.ss_family);
  const std::string line = std::string("PROXY ") + (v4 ? "TCP4 " : "TCP6 ") + proxy_address_text(h.source) + " " +
                           proxy_address_text(h.destination) + " " + std::to_string(port(h.source)) + " " +
                           std::to_string(port(h.destination)) + "\r\n";
  // A v6 header naming an IPv4-mapped address prints as plain IPv4: TCP6 with a dotted
  // address, which is not what a v1 TCP6 line may hold. Only the v2 form applies then.
  const bool mapped = !v4 && (proxy_address_text(h.source).find(':') == std::string::npos ||
                              proxy_address_text(h.destination).find(':') == std::string::npos);
  if (!mapped) {
    const auto again = parse_exactly(line, line.size(), 4096);
    FUZZ_CHECK(again.status == proxy_parse_status::complete);
    FUZZ_CHECK(same_address(again.header.source, h.source) && same_address(again.header.destination, h.destination));
  }
  std::string block("\r\n\r\n\0\r\nQUIT\n\x21", 13);
  const std::size_t body = v4 ? 12 : 36;
  block += static_cast<char>(v4 ? 0x11 : 0x21);
  block += static_cast<char>(0);
  block += static_cast<char>(body);
  auto put = [&block](const void* p, std::size_t n) { block.append(static_cast<const char*>(p), n); };
  if (v4) {
    put(&reinterpret_cast<const sockaddr_in&>(h.source).sin_addr, 4);
    put(&reinterpret_cast<const sockaddr_in&>(h.destination).sin_addr, 4);
    put(&reinterpret_cast<const sockaddr_in&>(h.source).sin_port, 2);
    put(&reinterpret_cast<const sockaddr_in&>(h.destination).sin_port, 2);
  } else {
    put(&reinterpret_cast<const sockaddr_in6&>(h.source).sin6_addr, 16);
    put(&reinterpret_cast<const sockaddr_in6&>(h.destination).sin6_addr, 16);
    put(&reinterpret_cast<const sockaddr_in6&>(h.source).sin6_port, 2);
    put(&reinterpret_cast<const sockaddr_in6&>(h.destination).sin6_port, 2);
  }
  const auto again = parse_exactly(block, block.size(), 4096);
  FUZZ_CHECK(again.status == proxy_parse_status::complete && again.header.length == block.size());
  FUZZ_CHECK(same_address(again.header.source, h.source) && same_address(again.header.destination, h.destination));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::reader r(data, size);
  const std::size_t cap = caps[r.byte() % std::size(caps)];
  const std::uint8_t seed = r.byte();
  const std::string_view in = r.rest();
  const std::size_t limit = std::max<std::size_t>(cap, 16);

  const auto whole = parse_exactly(in, in.size(), cap);
  switch (whole.status) {
    case proxy_parse_status::complete:
      FUZZ_CHECK(whole.header.length > 0 && whole.header.length <= in.size() && whole.header.length <= limit);
      FUZZ_CHECK(whole.header.version == 1 || whole.header.version == 2);
      if (whole.header.version == 1) FUZZ_CHECK(whole.header.length <= 107);
      if (!whole.header.local) {
        FUZZ_CHECK(whole.header.source.ss_family == AF_INET || whole.header.source.ss_family == AF_INET6);
        FUZZ_CHECK(!proxy_address_text(whole.header.source).empty());
      }
      check_written_again(whole.header);
      break;
    case proxy_parse_status::need_more:
      FUZZ_CHECK(whole.want > in.size() && whole.want <= limit);
      break;
    case proxy_parse_status::invalid:
      FUZZ_CHECK(!whole.error.empty());
      break;
  }

  // As the bytes arrive: pieces of 1 to 64 bytes, each time parsing all received so far.
  std::uint32_t state = seed * 2654435761u + 7;
  std::size_t have = 0;
  bool decided = false;
  while (!decided && have < in.size()) {
    state = state * 1103515245u + 12345u;
    have = std::min(in.size(), have + 1 + (state >> 16) % 64);
    const auto now = parse_exactly(in, have, cap);
    switch (now.status) {
      case proxy_parse_status::need_more:
        FUZZ_CHECK(now.want > have && now.want <= limit);
        if (whole.status == proxy_parse_status::complete) FUZZ_CHECK(now.want <= whole.header.length);
        break;
      case proxy_parse_status::complete:
        FUZZ_CHECK(whole.status == proxy_parse_status::complete && same_header(now.header, whole.header));
        decided = true;
        break;
      case proxy_parse_status::invalid:
        FUZZ_CHECK(whole.status == proxy_parse_status::invalid);
        decided = true;
        break;
    }
  }
  // Every prefix from the header's end on says the same.
  if (whole.status == proxy_parse_status::complete) {
    const auto shortest = parse_exactly(in, whole.header.length, cap);
    FUZZ_CHECK(shortest.status == proxy_parse_status::complete && same_header(shortest.header, whole.header));
    if (whole.header.length > 0) {
      const auto one_short = parse_exactly(in, whole.header.length - 1, cap);
      FUZZ_CHECK(one_short.status == proxy_parse_status::need_more);
    }
  }
  return 0;
}
