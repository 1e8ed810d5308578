// Service and address resolution into bind candidates, per the seed's ipv6 rules.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

#include "startup_server/options.hpp"

namespace startup_server::detail {

// getaddrinfo's EAI_* codes and "unknown service" as std::error_code.
const std::error_category& resolver_category() noexcept;
enum class resolver_errc { unknown_service = 1000, no_address_in_family = 1001, contradicts_mode = 1002 };
std::error_code make_error_code(resolver_errc e) noexcept;

// One address to try binding, in the order to try them.
struct bind_candidate {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
  bool v6only = false;  // meaningful for AF_INET6 only
};

// "", "0" → 0; digits → that port (must be ≤ 65535); a name → the services database (tcp).
std::uint16_t resolve_service(const std::string& service, std::error_code& ec);

// Addresses may be written in brackets, as in URLs: "[::1]" is "::1".

// Checks a local address against the ipv6 mode without resolving names: false with
// problem set when a literal contradicts the mode or an integer is out of range.
bool check_address(const std::string& address, ipv6_mode mode, std::string& problem);

// The candidates for address and port under mode (SPEC §1 / the seed's ipv6 keyword).
std::vector<bind_candidate> bind_candidates(const std::string& address, std::uint16_t port,
                                            ipv6_mode mode, std::error_code& ec);

// Numeric host of a socket address; IPv4-mapped IPv6 shown as plain IPv4.
std::string numeric_host(const sockaddr* sa);
std::uint16_t port_of(const sockaddr* sa);
// "127.0.0.1:80", "[::1]:80".
std::string endpoint_text(const std::string& host, std::uint16_t port);
std::string endpoint_text(const sockaddr* sa);
// Both ends of a connected socket, numeric, IPv4-mapped shown as IPv4; ok false if the
// socket is no longer connected.
struct socket_endpoints {
  bool ok = false;
  std::string local_host;
  std::uint16_t local_port = 0;
  std::string peer_host;
  std::uint16_t peer_port = 0;
};
socket_endpoints endpoints_of(int fd);

// "ipv4" / "ipv6" for the socket's family.
const char* family_name(int family);

}  // namespace startup_server::detail

template <>
struct std::is_error_code_enum<startup_server::detail::resolver_errc> : std::true_type {};
