// Library tests: start_up_server, server_terminate and open_tcp_stream in-process, over loopback.
#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <thread>

#include "server/fault_hooks.hpp"
#include "startup_server/startup_server.hpp"
#include "support/loopback.hpp"

using namespace startup_server;
using namespace std::chrono_literals;

namespace {

// Collects announce events from the server threads.
struct announcements {
  std::mutex mutex;
  std::vector<announce_event> events;

  std::function<void(const announce_event&)> sink() {
    return [this](const announce_event& e) {
      std::lock_guard lock(mutex);
      events.push_back(e);
    };
  }
  std::size_t count(announce_event::kind k) {
    std::lock_guard lock(mutex);
    std::size_t n = 0;
    for (const auto& e : events) n += e.what == k;
    return n;
  }
};

server_options loopback_echo() { return test_support::loopback(); }

std::string round_trip(std::uint16_t port, const std::string& text) {
  tcp_stream s = open_tcp_stream("127.0.0.1", std::to_string(port));
  s.set_timeout(5s);
  s.write(text);
  s.shutdown_write();
  return s.read_all();
}

}  // namespace

TEST_CASE("library: start_up_server with wait returns a listening server", "[library]") {
  announcements seen;
  auto o = loopback_echo();
  o.announce = seen.sink();
  auto s = start_up_server(o);
  REQUIRE(s);
  CHECK(s->local_port() != 0);
  CHECK(s->local_address() == "127.0.0.1");
  CHECK(s->family() == "ipv4");
  CHECK(s->name() == "NIL server");
  CHECK(seen.count(announce_event::kind::listening) == 1);
  CHECK(round_trip(s->local_port(), "ping") == "ping");
  server_terminate(*s);
  CHECK_FALSE(s->join());
  CHECK(seen.count(announce_event::kind::terminated) == 1);
}

TEST_CASE("library: a failed start returns the startup condition naming address and port", "[library][errors]") {
  auto first = start_up_server(loopback_echo());
  auto o = loopback_echo();
  o.service = std::to_string(first->local_port());
  startup_condition condition;
  auto second = start_up_server(o, condition);
  CHECK_FALSE(second);
  CHECK(condition.stage == startup_condition::phase::bind);
  CHECK(condition.code == std::errc::address_in_use);
  CHECK(condition.message() == "unable to bind to 127.0.0.1:" + o.service + ": Address already in use");
  CHECK_THROWS_AS(start_up_server(o), std::system_error);
}

TEST_CASE("library: without wait, a failure reaches announce and join", "[library][errors]") {
  announcements seen;
  auto o = loopback_echo();
  o.wait = false;
  o.error = false;
  o.service = "no-such-service-name";
  o.announce = seen.sink();
  auto s = start_up_server(o);
  REQUIRE(s);
  startup_condition end = s->join();
  CHECK(end.stage == startup_condition::phase::resolve);
  CHECK(seen.count(announce_event::kind::error) == 1);
  CHECK(seen.count(announce_event::kind::terminated) == 0);
}

TEST_CASE("library: once serves one connection and ends", "[library][lifecycle]") {
  auto o = loopback_echo();
  o.once = true;
  auto s = start_up_server(o);
  CHECK(round_trip(s->local_port(), "one") == "one");
  CHECK_FALSE(s->join());
  std::error_code ec;
  open_tcp_stream("127.0.0.1", std::to_string(s->local_port()), ec);
  CHECK(ec);
}

TEST_CASE("library: a graceful stop lets an open connection finish", "[library][lifecycle]") {
  auto o = loopback_echo();
  o.grace = 5s;
  auto s = start_up_server(o);
  const std::string port = std::to_string(s->local_port());
  tcp_stream open = open_tcp_stream("127.0.0.1", port);
  open.set_timeout(5s);
  open.write("before ");
  char buf[16];
  CHECK(open.read_some(buf, sizeof buf) == 7);
  while (s->active_connections() == 0) std::this_thread::sleep_for(1ms);
  server_terminate(*s);
  // New connections are refused once the listener is closed...
  std::error_code ec;
  for (int i = 0; i < 500 && !ec; ++i) {
    open_tcp_stream("127.0.0.1", port, ec);
    if (!ec) std::this_thread::sleep_for(2ms);
  }
  CHECK(ec);
  // ...while the open one is still served.
  open.write("after");
  open.shutdown_write();
  CHECK(open.read_all() == "after");
  const auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(s->join());
  CHECK(std::chrono::steady_clock::now() - start < 2s);
}

TEST_CASE("library: the grace period ends a connection that does not finish", "[library][lifecycle]") {
  auto o = loopback_echo();
  o.grace = 200ms;
  auto s = start_up_server(o);
  tcp_stream idle = open_tcp_stream("127.0.0.1", std::to_string(s->local_port()));
  idle.set_timeout(5s);
  while (s->active_connections() == 0) std::this_thread::sleep_for(1ms);
  const auto start = std::chrono::steady_clock::now();
  server_terminate(*s);
  CHECK_FALSE(s->join());
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 150ms);
  CHECK(took < 3s);
  CHECK(idle.read_all().empty());  // closed by the server
}

TEST_CASE("library: repeated accept failures reopen the listener on the same port", "[library][lifecycle]") {
  announcements seen;
  std::atomic<int> injected{0};
  auto o = loopback_echo();
  o.announce = seen.sink();
  o.reopen_after_failures = 3;
  // The first three accepts "fail" with an error that says nothing about the client.
  detail::faults().accept = [&](std::error_code ec) {
    if (!ec && injected.load() < 3) {
      ++injected;
      return std::make_error_code(std::errc::io_error);
    }
    return ec;
  };
  test_support::clear_hooks_at_end cleared_at_end;
  auto s = start_up_server(o);
  const std::uint16_t port = s->local_port();
  const std::string port_text = std::to_string(port);
  bool echoed_after_reopen = false;
  for (int attempt = 0; attempt < 200 && !echoed_after_reopen; ++attempt) {
    std::error_code ec;
    tcp_stream c = open_tcp_stream("127.0.0.1", port_text, ec);
    if (ec) {
      std::this_thread::sleep_for(5ms);  // the listener is between close and reopen
      continue;
    }
    c.set_timeout(2s);
    c.write("x", ec);
    char b = 0;
    std::size_t n = ec ? 0 : c.read_some(&b, 1, ec);
    echoed_after_reopen = n == 1 && b == 'x' && seen.count(announce_event::kind::listening) == 2;
  }
  CHECK(injected.load() == 3);
  CHECK(echoed_after_reopen);
  CHECK(seen.count(announce_event::kind::listening) == 2);
  CHECK(s->local_port() == port);
  std::lock_guard lock(seen.mutex);
  for (const auto& e : seen.events)
    if (e.what == announce_event::kind::listening) CHECK(e.port == port);
}

TEST_CASE("library: open_tcp_stream reports what it could not reach", "[library][client]") {
  auto s = start_up_server(loopback_echo());
  const std::string port = std::to_string(s->local_port());
  server_terminate(*s, true);
  s->join();
  std::error_code ec;
  open_tcp_stream("127.0.0.1", port, ec);
  CHECK(ec == std::errc::connection_refused);
  try {
    open_tcp_stream("127.0.0.1", port);
    FAIL("no exception");
  } catch (const std::system_error& e) {
    CHECK(std::string(e.what()).find("127.0.0.1:" + port) != std::string::npos);
  }
}

TEST_CASE("library: several threads serve connections", "[library]") {
  auto o = loopback_echo();
  o.threads = 2;
  auto s = start_up_server(o);
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&, i] {
      if (round_trip(s->local_port(), "client " + std::to_string(i)) == "client " + std::to_string(i)) ++ok;
    });
  }
  for (auto& t : clients) t.join();
  CHECK(ok.load() == 8);
}
