// Fuzzes --service and --local-address as resolution sees them, without the network: port
// numbers and service names (the services database, a local file), the ipv6-mode check, and
// bind candidates for numeric addresses only (a name would be a DNS query, so names stop at
// check_address, which resolves nothing).
//
// Input: a mode byte, then the service, NUL, the address. Asserts: digits resolve to their
// number when it is a port and are refused otherwise, and a port written back resolves to
// itself; check_address and bind_candidates agree; every candidate has the family the mode
// asks for, the port, and an address that reads back (numeric_host) to the same bytes.
#include <netdb.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "core/cidr.hpp"
#include "core/digits.hpp"
#include "core/resolve.hpp"
#include "fuzz_support.hpp"

using namespace startup_server;

namespace {

// True if getaddrinfo reads address as a numeric literal (so no lookup would be made).
bool numeric(const std::string& address) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(address.c_str(), nullptr, &hints, &res) != 0) return false;
  ::freeaddrinfo(res);
  return true;
}

void check_service(const std::string& service) {
  std::error_code ec;
  const std::uint16_t port = detail::resolve_service(service, ec);
  if (service.empty()) {
    FUZZ_CHECK(!ec && port == 0);
    return;
  }
  if (detail::all_digits(service)) {
    const auto n = detail::parse_number<unsigned long long>(service);
    const bool fits = n && *n <= 65535;
    FUZZ_CHECK(fits == !ec);
    if (fits) FUZZ_CHECK(port == *n);
  }
  if (!ec) {
    std::error_code again;
    FUZZ_CHECK(detail::resolve_service(std::to_string(port), again) == port && !again);
  }
}

void check_address(const std::string& address, ipv6_mode mode, std::uint16_t port) {
  std::string problem;
  const bool fits = detail::check_address(address, mode, problem);
  FUZZ_CHECK(fits == problem.empty());
  std::string bare = address;
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') bare = bare.substr(1, bare.size() - 2);
  if (!bare.empty() && !detail::all_digits(bare) && !numeric(bare)) return;  // a name: not resolved here

  std::error_code ec;
  const auto candidates = detail::bind_candidates(address, port, mode, ec);
  if (!fits) {
    FUZZ_CHECK(ec == detail::resolver_errc::contradicts_mode && candidates.empty());
    return;
  }
  FUZZ_CHECK(!ec == !candidates.empty());
  for (const auto& c : candidates) {
    const auto* sa = reinterpret_cast<const sockaddr*>(&c.addr);
    FUZZ_CHECK(sa->sa_family == c.family);
    FUZZ_CHECK(c.len == (c.family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6)));
    if (mode == ipv6_mode::off) FUZZ_CHECK(c.family == AF_INET);
    if (mode == ipv6_mode::on) FUZZ_CHECK(c.family == AF_INET6 && c.v6only);
    if (mode == ipv6_mode::both) FUZZ_CHECK(c.family == AF_INET6 && !c.v6only);
    FUZZ_CHECK(detail::port_of(sa) == port);
    const std::string host = detail::numeric_host(sa);
    const auto bytes = detail::address_bytes(host);
    FUZZ_CHECK(bytes);
    std::array<std::uint8_t, 16> expected{};
    if (c.family == AF_INET) {
      expected[10] = expected[11] = 0xff;
      std::memcpy(expected.data() + 12, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
    } else {
      std::memcpy(expected.data(), &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
    }
    FUZZ_CHECK(*bytes == expected);
    const std::string endpoint = detail::endpoint_text(sa);
    FUZZ_CHECK(endpoint.size() > host.size() && endpoint.find(host) != std::string::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::reader r(data, size);
  const std::uint8_t mode_byte = r.byte();
  const ipv6_mode modes[] = {ipv6_mode::any, ipv6_mode::both, ipv6_mode::on, ipv6_mode::off};
  const ipv6_mode mode = modes[mode_byte % 4];
  const std::string_view rest = r.rest();
  const auto parts = fuzz::split_on_nul(reinterpret_cast<const std::uint8_t*>(rest.data()), rest.size());
  check_service(parts[0]);
  if (parts.size() > 1) check_address(parts[1], mode, static_cast<std::uint16_t>(mode_byte * 251));
  else check_address(parts[0], mode, static_cast<std::uint16_t>(mode_byte * 251));
  return 0;
}
