// Unit tests: the PROXY protocol's options (library and command line), its log fields, and a
// user function behind a proxy, in-process over loopback.
#include <catch2/catch.hpp>

#include <future>
#include <mutex>

#include "cli/cli.hpp"
#include "cli/log_format.hpp"
#include "startup_server/startup_server.hpp"
#include "support/loopback.hpp"

using namespace startup_server;
using namespace std::chrono_literals;
using test_support::loopback;

namespace {

std::string refusal(std::vector<std::string> args) {
  try {
    cli::parse_command_line(args);
  } catch (const cli::usage_error& e) {
    return e.what();
  }
  return "(accepted)";
}

startup_condition start_condition(server_options o) {
  startup_condition c;
  auto s = start_up_server(o, c);
  if (s) {
    server_terminate(*s);
    s->join();
  }
  return c;
}

tcp_stream connect(server& s) {
  tcp_stream c = open_tcp_stream("127.0.0.1", std::to_string(s.local_port()));
  c.set_timeout(5s);
  return c;
}

}  // namespace

TEST_CASE("proxy: the flags map onto the options", "[proxy][cli]") {
  auto c = cli::parse_command_line({"--proxy-protocol", "--proxy-from", "10.0.0.0/8", "--proxy-from", "::1",
                                    "--proxy-timeout", "3.5"});
  CHECK(c.options.proxy_protocol);
  CHECK(c.options.proxy_from == std::vector<std::string>{"10.0.0.0/8", "::1"});
  CHECK(c.options.proxy_timeout == 3500ms);
  CHECK(c.warnings.empty());
  auto d = cli::parse_command_line({});
  CHECK_FALSE(d.options.proxy_protocol);
  CHECK(d.options.proxy_timeout == 5000ms);
  // Below the 3 seconds the protocol asks for: taken, with a warning.
  auto quick = cli::parse_command_line({"--proxy-protocol", "--proxy-from", "127.0.0.1", "--proxy-timeout", "1"});
  CHECK(quick.options.proxy_timeout == 1000ms);
  REQUIRE(quick.warnings.size() == 1);
  CHECK(quick.warnings[0].find("--proxy-timeout") != std::string::npos);
}

TEST_CASE("proxy: each bad combination is refused in one line naming its flag", "[proxy][cli][errors]") {
  struct bad {
    std::vector<std::string> args;
    std::string flag;
  };
  const std::vector<bad> cases = {
      {{"--proxy-protocol"}, "--proxy-protocol"},
      {{"--proxy-from", "127.0.0.1"}, "--proxy-from"},
      {{"--proxy-timeout", "5"}, "--proxy-timeout"},
      {{"--proxy-protocol", "--proxy-from", "localhost"}, "--proxy-from"},
      {{"--proxy-protocol", "--proxy-from", "10.0.0.0/33"}, "--proxy-from"},
      {{"--proxy-protocol", "--proxy-from", "10.0.0.1,10.0.0.2"}, "--proxy-from"},
      {{"--proxy-protocol", "--proxy-from", "127.0.0.1", "--proxy-timeout", "0"}, "--proxy-timeout"},
      {{"--proxy-protocol", "--proxy-from", "127.0.0.1", "--proxy-timeout", "soon"}, "--proxy-timeout"},
      {{"--proxy-protocol", "--proxy-from"}, "--proxy-from"},
  };
  for (const auto& b : cases) {
    INFO(b.args.back());
    const std::string msg = refusal(b.args);
    CHECK(msg.find(b.flag) != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
  }
}

TEST_CASE("proxy: the library refuses to start on options that do not go together", "[proxy][library][errors]") {
  auto o = loopback();
  o.proxy_protocol = true;
  auto c = start_condition(o);
  CHECK(c.stage == startup_condition::phase::usage);
  CHECK(c.message().find("proxy_from") != std::string::npos);

  o = loopback();
  o.proxy_from = {"127.0.0.1"};
  c = start_condition(o);
  CHECK(c.stage == startup_condition::phase::usage);
  CHECK(c.message().find("proxy_protocol") != std::string::npos);

  o.proxy_protocol = true;
  o.proxy_from = {"127.0.0.1/40"};
  c = start_condition(o);
  CHECK(c.stage == startup_condition::phase::usage);
  CHECK(c.message().find("proxy_from") != std::string::npos);

  o.proxy_from = {"127.0.0.1"};
  o.proxy_timeout = 0ms;
  c = start_condition(o);
  CHECK(c.stage == startup_condition::phase::usage);
  CHECK(c.message().find("proxy_timeout") != std::string::npos);
}

TEST_CASE("proxy: a user function sees the client the header names, then the client's bytes",
          "[proxy][library][function]") {
  auto o = loopback(handler::user);
  o.proxy_protocol = true;
  o.proxy_from = {"127.0.0.0/8"};
  o.serve = [](server&, tcp_stream& stream) {
    const stream_endpoints& e = stream.endpoints();
    const auto line = stream.read_line();
    stream.write_line(e.remote_address + " " + std::to_string(e.remote_port) + " " + e.local_address + " " +
                      std::to_string(e.local_port) + " " + line.value_or("(none)"));
  };
  std::promise<connection_record> opened;
  std::once_flag once;
  o.connection_log = [&](const connection_record& r) {
    if (r.what == connection_record::kind::open) std::call_once(once, [&] { opened.set_value(r); });
  };
  auto s = start_up_server(o);
  REQUIRE(s);
  tcp_stream c = connect(*s);
  c.write("PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\nfirst line\n");
  CHECK(c.read_line() == "2001:db8::7 40000 2001:db8::1 443 first line");
  auto f = opened.get_future();
  REQUIRE(f.wait_for(5s) == std::future_status::ready);
  const connection_record r = f.get();
  CHECK(r.peer_address == "2001:db8::7");
  CHECK(r.peer_port == 40000);
  CHECK(r.local_address == "2001:db8::1");
  CHECK(r.proxy_address == "127.0.0.1");
  CHECK(r.proxy_port == c.endpoints().local_port);
  server_terminate(*s);
  CHECK_FALSE(s->join());
}

TEST_CASE("proxy: log lines name the proxy after the endpoints", "[proxy][log]") {
  connection_record r;
  r.id = 2;
  r.peer_address = "203.0.113.7";
  r.peer_port = 51234;
  r.local_address = "192.0.2.1";
  r.local_port = 80;
  r.proxy_address = "127.0.0.1";
  r.proxy_port = 40001;
  CHECK(detail::format_connection_record(r, "n", false) ==
        "startup-server: n: #2 open 203.0.113.7:51234 -> 192.0.2.1:80 via 127.0.0.1:40001");
  CHECK(detail::format_connection_record(r, "n", true) ==
        R"({"event":"open","id":2,"name":"n","peer_address":"203.0.113.7","peer_port":51234,)"
        R"("local_address":"192.0.2.1","local_port":80,"proxy_address":"127.0.0.1","proxy_port":40001})");
}
