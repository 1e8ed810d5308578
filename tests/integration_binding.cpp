// Integration tests: addresses, IPv4/IPv6 modes, SO_REUSEPORT and the listen backlog.
#include <catch2/catch.hpp>

#include "support/test_support.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

// Echoes one line over a fresh connection to host:port.
bool echoes(std::uint16_t port, const std::string& host = "127.0.0.1") {
  auto c = client::connect(port, 5s, host);
  if (!c) return false;
  const std::string line = "via " + host + "\n";
  auto r = c->exchange(line, line.size(), false, 5s);
  return r.data == line;
}

}  // namespace

TEST_CASE("binding: an IPv4 client reaches an --ipv6=both listener", "[binding][ipv6]") {
  SECTION("no address") {
    auto s = start_server_with({"-s", "0", "--ipv6=both"}, {}, announce_style::json);
    auto a = parse_json_line(s.announce_line);
    CHECK(a->string("family") == "ipv6");
    CHECK(a->string("address") == "::");
    CHECK(echoes(s.port, "127.0.0.1"));
    CHECK(echoes(s.port, "::1"));
  }
  SECTION("-a ::") {
    auto s = start_server_with({"-a", "::", "-s", "0", "--ipv6=both"}, {}, announce_style::json);
    CHECK(parse_json_line(s.announce_line)->string("family") == "ipv6");
    CHECK(echoes(s.port, "127.0.0.1"));
    CHECK(echoes(s.port, "::1"));
  }
}

TEST_CASE("binding: an --ipv6=on listener refuses IPv4 clients and serves IPv6 ones", "[binding][ipv6]") {
  SECTION("no address") {
    auto s = start_server_with({"-s", "0", "--ipv6=on"}, {}, announce_style::json);
    CHECK(parse_json_line(s.announce_line)->string("family") == "ipv6");
    CHECK(connect_status(s.port, "127.0.0.1") == ECONNREFUSED);
    CHECK(echoes(s.port, "::1"));
  }
  SECTION("-a ::") {
    auto s = start_server_with({"-a", "::", "-s", "0", "--ipv6=on"}, {}, announce_style::json);
    CHECK(connect_status(s.port, "127.0.0.1") == ECONNREFUSED);
    CHECK(echoes(s.port, "::1"));
  }
}

TEST_CASE("binding: an IPv6 literal binds IPv6 and the text announce brackets it", "[binding][ipv6][announce]") {
  child_process p({binary_path(), "-a", "::1", "-s", "0", "--announce"});
  auto line = p.stdout_line(10s);
  REQUIRE(line);
  const std::string prefix = "listening on [::1]:";
  REQUIRE(line->rfind(prefix, 0) == 0);
  const auto port = static_cast<std::uint16_t>(std::stoul(line->substr(prefix.size())));
  CHECK(echoes(port, "::1"));
  CHECK(connect_status(port, "127.0.0.1") == ECONNREFUSED);
}

TEST_CASE("binding: with no address and no --ipv6 the server listens on every IPv4 address", "[binding]") {
  auto s = start_server_with({"-s", "0"}, {}, announce_style::json);
  auto a = parse_json_line(s.announce_line);
  CHECK(a->string("address") == "0.0.0.0");
  CHECK(a->string("family") == "ipv4");
  CHECK(echoes(s.port, "127.0.0.1"));
}

TEST_CASE("binding: --ipv6=off with no address listens on IPv4 only", "[binding][ipv6]") {
  auto s = start_server_with({"-s", "0", "--ipv6=off"}, {}, announce_style::json);
  CHECK(parse_json_line(s.announce_line)->string("family") == "ipv4");
  CHECK(echoes(s.port, "127.0.0.1"));
}

TEST_CASE("binding: an address given as a 32-bit integer is IPv4 (the seed's integer address)", "[binding]") {
  auto s = start_server_with({"-a", "2130706433", "-s", "0"}, {}, announce_style::json);  // 127.0.0.1
  CHECK(parse_json_line(s.announce_line)->string("address") == "127.0.0.1");
  CHECK(echoes(s.port));
}

TEST_CASE("binding: a host name binds one of its addresses", "[binding]") {
  auto s = start_server_with({"-a", "localhost", "-s", "0"}, {}, announce_style::json);
  auto address = parse_json_line(s.announce_line)->string("address").value_or("");
  CHECK((address == "127.0.0.1" || address == "::1"));
  CHECK(echoes(s.port, address));
}

TEST_CASE("binding: two --reuseport servers share a port", "[binding][reuseport]") {
  auto first = start_server({"--reuseport"});
  auto second = start_server_with({"-a", "127.0.0.1", "-s", std::to_string(first.port)}, {"--reuseport"});
  CHECK(second.port == first.port);
  CHECK(first.proc.running());
  CHECK(second.proc.running());
  // The kernel spreads connections over both; every one is served.
  for (int i = 0; i < 10; ++i) CHECK(echoes(first.port));
}

TEST_CASE("binding: without --reuseport a second server on the port fails with 69", "[binding][reuseport]") {
  auto first = start_server({});
  const std::string port = std::to_string(first.port);
  auto r = run_binary({"-a", "127.0.0.1", "-s", port});
  INFO("stderr: " << r.err);
  CHECK(r.status == 69);
  CHECK(r.err.find("127.0.0.1:" + port) != std::string::npos);
  CHECK(r.err.find("Address already in use") != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(echoes(first.port));
}

TEST_CASE("binding: a --reuseport server cannot join a port held without it", "[binding][reuseport]") {
  auto first = start_server({});
  auto r = run_binary({"-a", "127.0.0.1", "-s", std::to_string(first.port), "--reuseport"});
  CHECK(r.status == 69);
}

TEST_CASE("binding: --backlog N and max are accepted", "[binding]") {
  for (const char* backlog : {"1", "128", "max"}) {
    INFO("--backlog " << backlog);
    auto s = start_server({"--backlog", backlog});
    CHECK(echoes(s.port));
  }
}

TEST_CASE("binding: -p and --address are synonyms of -s and -a", "[binding]") {
  auto s = start_server_with({"--address", "127.0.0.1", "-p", "0"}, {}, announce_style::json);
  CHECK(parse_json_line(s.announce_line)->string("address") == "127.0.0.1");
  CHECK(echoes(s.port));
}

TEST_CASE("binding: --keepalive sets SO_KEEPALIVE on accepted sockets, off by default", "[binding][keepalive]") {
  for (bool keepalive : {true, false}) {
    INFO("--keepalive: " << keepalive);
    auto s = start_server(keepalive ? std::vector<std::string>{"--keepalive"} : std::vector<std::string>{});
    auto c = client::connect_or_throw(s.port);
    REQUIRE(c.exchange("x", 1, false, 5s).data == "x");
    // ss shows the keepalive timer of the server's end of the connection.
    child_process ss({"ss", "-tnoH", "state", "established", "( sport = :" + std::to_string(s.port) + " )"});
    REQUIRE(ss.wait_exit(5s) == 0);
    INFO("ss: " << ss.out());
    CHECK(ss.out().find("127.0.0.1:" + std::to_string(s.port)) != std::string::npos);
    CHECK((ss.out().find("timer:(keepalive") != std::string::npos) == keepalive);
  }
}
