// Unit tests: services, addresses and bind candidates per ipv6 mode.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>

#include "core/resolve.hpp"

using namespace startup_server;
using namespace startup_server::detail;

namespace {

std::string host_of(const bind_candidate& c) { return numeric_host(reinterpret_cast<const sockaddr*>(&c.addr)); }

// The raw textual form (IPv4-mapped IPv6 not folded), to see what is really bound.
std::string raw_host(const bind_candidate& c) {
  char buf[INET6_ADDRSTRLEN];
  if (c.family == AF_INET)
    return inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&c.addr)->sin_addr, buf, sizeof buf);
  return inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&c.addr)->sin6_addr, buf, sizeof buf);
}

std::vector<bind_candidate> candidates(const std::string& address, ipv6_mode mode) {
  std::error_code ec;
  auto out = bind_candidates(address, 7000, mode, ec);
  INFO(ec.message());
  REQUIRE_FALSE(ec);
  REQUIRE_FALSE(out.empty());
  for (const auto& c : out) CHECK(port_of(reinterpret_cast<const sockaddr*>(&c.addr)) == 7000);
  return out;
}

}  // namespace

TEST_CASE("resolve: services by number, name and 0", "[resolve]") {
  std::error_code ec;
  CHECK(resolve_service("", ec) == 0);
  CHECK(resolve_service("0", ec) == 0);
  CHECK(resolve_service("8080", ec) == 8080);
  CHECK(resolve_service("65535", ec) == 65535);
  resolve_service("65536", ec);
  CHECK(ec);
  resolve_service("no-such-service-name", ec);
  CHECK(ec == resolver_errc::unknown_service);
}

TEST_CASE("resolve: a service name comes from the services database", "[resolve]") {
  std::error_code ec;
  // /etc/services names "echo" as 7/tcp on every system this runs on.
  std::uint16_t echo = resolve_service("echo", ec);
  if (!ec) CHECK(echo == 7);
}

TEST_CASE("resolve: no address means IPv4 any, except on and both", "[resolve][ipv6]") {
  auto any = candidates("", ipv6_mode::any);
  REQUIRE(any.size() == 1);
  CHECK(any[0].family == AF_INET);
  CHECK(host_of(any[0]) == "0.0.0.0");
  CHECK(candidates("", ipv6_mode::off)[0].family == AF_INET);
  auto on = candidates("", ipv6_mode::on);
  CHECK(on[0].family == AF_INET6);
  CHECK(on[0].v6only);
  CHECK(host_of(on[0]) == "::");
  auto both = candidates("", ipv6_mode::both);
  CHECK(both[0].family == AF_INET6);
  CHECK_FALSE(both[0].v6only);
}

TEST_CASE("resolve: an integer is an IPv4 address as a 32-bit number", "[resolve]") {
  auto c = candidates("2130706433", ipv6_mode::any);
  CHECK(c[0].family == AF_INET);
  CHECK(host_of(c[0]) == "127.0.0.1");
  CHECK(host_of(candidates("0", ipv6_mode::off)[0]) == "0.0.0.0");
  auto both = candidates("2130706433", ipv6_mode::both);
  CHECK(both[0].family == AF_INET6);
  CHECK(raw_host(both[0]) == "::ffff:127.0.0.1");
}

TEST_CASE("resolve: literals keep their family, both maps IPv4", "[resolve][ipv6]") {
  CHECK(candidates("127.0.0.1", ipv6_mode::any)[0].family == AF_INET);
  auto v6 = candidates("::1", ipv6_mode::any);
  CHECK(v6[0].family == AF_INET6);
  CHECK(v6[0].v6only);
  auto both = candidates("127.0.0.1", ipv6_mode::both);
  CHECK(both[0].family == AF_INET6);
  CHECK_FALSE(both[0].v6only);
  CHECK(raw_host(both[0]) == "::ffff:127.0.0.1");
  CHECK(host_of(both[0]) == "127.0.0.1");  // shown as plain IPv4
}

TEST_CASE("resolve: a literal that contradicts the mode is refused", "[resolve][ipv6]") {
  std::string problem;
  CHECK_FALSE(check_address("127.0.0.1", ipv6_mode::on, problem));
  CHECK(problem.find("--ipv6=on") != std::string::npos);
  CHECK_FALSE(check_address("2130706433", ipv6_mode::on, problem));
  CHECK_FALSE(check_address("::1", ipv6_mode::off, problem));
  CHECK_FALSE(check_address("99999999999", ipv6_mode::any, problem));
  CHECK(check_address("localhost", ipv6_mode::on, problem));  // names resolve later
  std::error_code ec;
  CHECK(bind_candidates("::1", 1, ipv6_mode::off, ec).empty());
  CHECK(ec == resolver_errc::contradicts_mode);
}

TEST_CASE("resolve: host names resolve in the mode's family", "[resolve][ipv6]") {
  for (const auto& c : candidates("localhost", ipv6_mode::off)) CHECK(c.family == AF_INET);
  std::error_code ec;
  auto v6 = bind_candidates("localhost", 7000, ipv6_mode::on, ec);
  for (const auto& c : v6) {
    CHECK(c.family == AF_INET6);
    CHECK(c.v6only);
  }
  bind_candidates("no-such-host.invalid", 7000, ipv6_mode::any, ec);
  CHECK(ec);
}

TEST_CASE("resolve: endpoints print as host:port with IPv6 bracketed", "[resolve]") {
  CHECK(endpoint_text("127.0.0.1", 80) == "127.0.0.1:80");
  CHECK(endpoint_text("::1", 80) == "[::1]:80");
  CHECK(std::string(family_name(AF_INET6)) == "ipv6");
}
