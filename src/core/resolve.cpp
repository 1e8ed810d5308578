// Turns --service and --local-address into socket addresses to bind, honouring --ipv6.
#include "core/resolve.hpp"

#include "core/digits.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>
#include <fmt/core.h>

namespace startup_server::detail {
namespace {

struct resolver_category_impl : std::error_category {
  const char* name() const noexcept override { return "resolver"; }
  std::string message(int ev) const override {
    switch (static_cast<resolver_errc>(ev)) {
      case resolver_errc::unknown_service: return "unknown service";
      case resolver_errc::no_address_in_family: return "no address of the requested family";
      case resolver_errc::contradicts_mode: return "address family contradicts the ipv6 mode";
    }
    return ::gai_strerror(ev);
  }
};

// The family of a numeric literal (AF_INET/AF_INET6), or AF_UNSPEC for a name.
int literal_family(const std::string& address) {
  if (all_digits(address)) return AF_INET;
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(address.c_str(), nullptr, &hints, &res) != 0) return AF_UNSPEC;
  int family = res->ai_family;
  ::freeaddrinfo(res);
  return family;
}

bind_candidate ipv4_candidate(std::uint32_t host_order, std::uint16_t port) {
  bind_candidate c;
  auto* sin = reinterpret_cast<sockaddr_in*>(&c.addr);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  sin->sin_addr.s_addr = htonl(host_order);
  c.len = sizeof(sockaddr_in);
  c.family = AF_INET;
  return c;
}

bind_candidate ipv6_candidate(const in6_addr& a, std::uint16_t port, bool v6only) {
  bind_candidate c;
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&c.addr);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  sin6->sin6_addr = a;
  c.len = sizeof(sockaddr_in6);
  c.family = AF_INET6;
  c.v6only = v6only;
  return c;
}

// IPv4 as ::ffff:a.b.c.d, for a dual-stack (both) socket.
in6_addr mapped(std::uint32_t host_order) {
  in6_addr a{};
  a.s6_addr[10] = a.s6_addr[11] = 0xff;
  std::uint32_t net = htonl(host_order);
  std::memcpy(&a.s6_addr[12], &net, 4);
  return a;
}

std::vector<bind_candidate> from_resolver(const std::string& address, std::uint16_t port,
                                          ipv6_mode mode, std::error_code& ec) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  hints.ai_family = mode == ipv6_mode::off ? AF_INET : mode == ipv6_mode::any ? AF_UNSPEC : AF_INET6;
  if (mode == ipv6_mode::both) hints.ai_flags |= AI_V4MAPPED;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(address.c_str(), nullptr, &hints, &res); rc != 0) {
    ec = rc == EAI_SYSTEM ? std::error_code(errno, std::system_category())
                          : std::error_code(rc, resolver_category());
    return {};
  }
  std::vector<bind_candidate> out;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    bind_candidate c;
    std::memcpy(&c.addr, ai->ai_addr, ai->ai_addrlen);
    c.len = ai->ai_addrlen;
    c.family = ai->ai_family;
    c.v6only = mode != ipv6_mode::both;
    if (c.family == AF_INET) reinterpret_cast<sockaddr_in*>(&c.addr)->sin_port = htons(port);
    else reinterpret_cast<sockaddr_in6*>(&c.addr)->sin6_port = htons(port);
    bool seen = false;
    for (const auto& o : out) seen = seen || (o.len == c.len && std::memcmp(&o.addr, &c.addr, c.len) == 0);
    if (!seen) out.push_back(c);
  }
  ::freeaddrinfo(res);
  if (out.empty()) ec = resolver_errc::no_address_in_family;
  return out;
}

// "[::1]" as in a URL is "::1".
std::string without_brackets(const std::string& address) {
  if (address.size() > 2 && address.front() == '[' && address.back() == ']') return address.substr(1, address.size() - 2);
  return address;
}

}  // namespace

const std::error_category& resolver_category() noexcept {
  static const resolver_category_impl instance;
  return instance;
}

std::error_code make_error_code(resolver_errc e) noexcept {
  return {static_cast<int>(e), resolver_category()};
}

std::uint16_t resolve_service(const std::string& service, std::error_code& ec) {
  ec.clear();
  if (service.empty()) return 0;
  if (all_digits(service)) {
    const auto v = parse_number<unsigned long>(service);
    if (!v || *v > 65535) {
      ec = resolver_errc::unknown_service;
      return 0;
    }
    return static_cast<std::uint16_t>(*v);
  }
  servent result{};
  servent* found = nullptr;
  char buffer[1024];
  if (::getservbyname_r(service.c_str(), "tcp", &result, buffer, sizeof buffer, &found) != 0 || !found) {
    ec = resolver_errc::unknown_service;
    return 0;
  }
  return ntohs(static_cast<std::uint16_t>(found->s_port));
}

bool check_address(const std::string& bracketed, ipv6_mode mode, std::string& problem) {
  const std::string address = without_brackets(bracketed);
  if (address.empty()) return true;
  if (all_digits(address)) {
    const auto v = parse_number<unsigned long long>(address);
    if (!v || *v > 0xffffffffULL) {
      problem = fmt::format("'{}' is out of range for an IPv4 address as a 32-bit number", address);
      return false;
    }
  }
  int family = literal_family(address);
  if (family == AF_INET && mode == ipv6_mode::on) {
    problem = fmt::format("'{}' is an IPv4 address, but --ipv6=on allows only IPv6", address);
    return false;
  }
  if (family == AF_INET6 && mode == ipv6_mode::off) {
    problem = fmt::format("'{}' is an IPv6 address, but --ipv6=off allows only IPv4", address);
    return false;
  }
  return true;
}

std::vector<bind_candidate> bind_candidates(const std::string& bracketed, std::uint16_t port,
                                            ipv6_mode mode, std::error_code& ec) {
  const std::string address = without_brackets(bracketed);
  ec.clear();
  std::string problem;
  if (!check_address(address, mode, problem)) {
    ec = resolver_errc::contradicts_mode;
    return {};
  }
  if (address.empty()) {
    switch (mode) {
      case ipv6_mode::on: return {ipv6_candidate(in6addr_any, port, true)};
      case ipv6_mode::both: return {ipv6_candidate(in6addr_any, port, false)};
      default: return {ipv4_candidate(INADDR_ANY, port)};
    }
  }
  if (all_digits(address)) {
    auto v = static_cast<std::uint32_t>(parse_number<unsigned long long>(address).value_or(0));
    if (mode == ipv6_mode::both) return {ipv6_candidate(mapped(v), port, false)};
    return {ipv4_candidate(v, port)};
  }
  return from_resolver(address, port, mode, ec);
}

std::string numeric_host(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (sa->sa_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  } else if (sa->sa_family == AF_INET6) {
    const auto* a = &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a)) ::inet_ntop(AF_INET, &a->s6_addr[12], buf, sizeof buf);
    else ::inet_ntop(AF_INET6, a, buf, sizeof buf);
  }
  return buf;
}

std::uint16_t port_of(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port);
  if (sa->sa_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port);
  return 0;
}

std::string endpoint_text(const std::string& host, std::uint16_t port) {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

std::string endpoint_text(const sockaddr* sa) { return endpoint_text(numeric_host(sa), port_of(sa)); }

socket_endpoints endpoints_of(int fd) {
  socket_endpoints e;
  sockaddr_storage local{}, peer{};
  socklen_t llen = sizeof local, plen = sizeof peer;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen) != 0 ||
      ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0)
    return e;
  e.ok = true;
  e.local_host = numeric_host(reinterpret_cast<sockaddr*>(&local));
  e.local_port = port_of(reinterpret_cast<sockaddr*>(&local));
  e.peer_host = numeric_host(reinterpret_cast<sockaddr*>(&peer));
  e.peer_port = port_of(reinterpret_cast<sockaddr*>(&peer));
  return e;
}

const char* family_name(int family) { return family == AF_INET6 ? "ipv6" : "ipv4"; }

}  // namespace startup_server::detail
