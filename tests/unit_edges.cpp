// Library tests at the edges: callbacks that misbehave, a runtime failure, SIGPIPE, the client, output sinks.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include "cli/run.hpp"
#include "server/fault_hooks.hpp"
#include "cli/line_sink.hpp"
#include "startup_server/startup_server.hpp"
#include "support/loopback.hpp"

using namespace startup_server;
using namespace std::chrono_literals;

namespace {

using test_support::loopback;

// Collects diagnostics from the server threads.
struct diagnostics_seen {
  std::mutex mutex;
  std::vector<diagnostic> lines;

  std::function<void(const diagnostic&)> sink() {
    return [this](const diagnostic& d) {
      std::lock_guard lock(mutex);
      lines.push_back(d);
    };
  }
  bool has(diagnostic::kind k, const std::string& text) {
    std::lock_guard lock(mutex);
    for (const auto& d : lines)
      if (d.what == k && d.message.find(text) != std::string::npos) return true;
    return false;
  }
};

bool echoes(std::uint16_t port, const std::string& text = "ping") {
  std::error_code ec;
  tcp_stream c = open_tcp_stream("127.0.0.1", std::to_string(port), ec);
  if (ec) return false;
  c.set_timeout(5s);
  c.write(text, ec);
  if (ec) return false;
  std::string got(text.size(), '\0');
  std::size_t n = 0;
  while (n < got.size()) {
    std::size_t r = c.read_some(got.data() + n, got.size() - n, ec);
    if (ec || r == 0) return false;
    n += r;
  }
  return got == text;
}

using clear_faults = test_support::clear_hooks_at_end;

}  // namespace

TEST_CASE("library: an announce callback may ask the server for its port", "[library][callbacks]") {
  for (int i = 0; i < 20; ++i) {
    std::promise<server*> ready;
    auto ready_future = ready.get_future().share();
    std::atomic<int> ports_seen{0};
    auto o = loopback();
    o.wait = false;
    o.announce = [&, ready_future](const announce_event& e) {
      // A callback that calls back into the server: no lock of the server's is held.
      server* s = ready_future.get();
      if (e.what == announce_event::kind::listening && s->local_port() == e.port) ++ports_seen;
    };
    auto s = start_up_server(o);
    ready.set_value(s.get());
    auto stopped = std::async(std::launch::async, [&] {
      while (ports_seen.load() == 0) std::this_thread::sleep_for(1ms);
      server_terminate(*s);
      return s->join();
    });
    REQUIRE(stopped.wait_for(5s) == std::future_status::ready);
    CHECK_FALSE(stopped.get());
    CHECK(ports_seen.load() == 1);
  }
}

TEST_CASE("library: callbacks that throw are reported and the server goes on serving", "[library][callbacks]") {
  diagnostics_seen seen;
  auto o = loopback();
  o.announce = [](const announce_event&) { throw std::runtime_error("announce went wrong"); };
  o.connection_log = [](const connection_record&) { throw std::runtime_error("log went wrong"); };
  o.diagnostics = seen.sink();
  auto s = start_up_server(o);
  for (int i = 0; i < 20; ++i) REQUIRE(echoes(s->local_port()));
  CHECK(s->running());
  server_terminate(*s);
  CHECK_FALSE(s->join());
  CHECK(seen.has(diagnostic::kind::warning, "announce went wrong"));
  CHECK(seen.has(diagnostic::kind::warning, "log went wrong"));
}

TEST_CASE("library: a diagnostics callback that throws costs the line, nothing else", "[library][callbacks]") {
  auto o = loopback();
  o.connection_log = [](const connection_record&) { throw 42; };
  o.diagnostics = [](const diagnostic&) { throw std::runtime_error("nowhere to say it"); };
  auto s = start_up_server(o);
  for (int i = 0; i < 5; ++i) REQUIRE(echoes(s->local_port()));
  server_terminate(*s);
  CHECK_FALSE(s->join());
}

TEST_CASE("library: join from a callback returns at once instead of waiting for itself", "[library][callbacks]") {
  std::promise<server*> ready;
  auto ready_future = ready.get_future().share();
  std::promise<startup_condition> joined;
  std::atomic<bool> once{false};
  auto o = loopback();
  o.connection_log = [&, ready_future](const connection_record& r) {
    if (r.what != connection_record::kind::open || once.exchange(true)) return;
    joined.set_value(ready_future.get()->join());
  };
  auto s = start_up_server(o);
  ready.set_value(s.get());
  REQUIRE(echoes(s->local_port()));
  auto from_callback = joined.get_future();
  REQUIRE(from_callback.wait_for(5s) == std::future_status::ready);
  const startup_condition c = from_callback.get();
  CHECK(c.code == std::errc::resource_deadlock_would_occur);
  CHECK(s->running());
  server_terminate(*s);
  CHECK_FALSE(s->join());
}

TEST_CASE("library: a listener that cannot be reopened stops the server through the cut", "[library][lifecycle]") {
  clear_faults cleared;
  diagnostics_seen seen;
  std::mutex mutex;
  std::vector<announce_event::kind> events;
  std::atomic<int> closes{0};
  auto o = loopback();
  o.reopen_after_failures = 1;
  o.error = true;
  o.diagnostics = seen.sink();
  o.announce = [&](const announce_event& e) {
    std::lock_guard lock(mutex);
    events.push_back(e.what);
  };
  o.connection_log = [&](const connection_record& r) {
    if (r.what == connection_record::kind::close) ++closes;
  };
  std::atomic<bool> break_it{false};
  detail::faults().accept = [&](std::error_code ec) {
    return break_it.load() && !ec ? std::make_error_code(std::errc::invalid_argument) : ec;
  };
  detail::faults().reopen = [] { return std::make_error_code(std::errc::address_in_use); };
  auto s = start_up_server(o);
  const std::string port = std::to_string(s->local_port());
  // An open connection, served, that the failure must close before the loops stop.
  tcp_stream held = open_tcp_stream("127.0.0.1", port);
  held.set_timeout(10s);
  held.write("x");
  char b = 0;
  REQUIRE(held.read_some(&b, 1) == 1);
  break_it = true;
  std::error_code ignored;
  open_tcp_stream("127.0.0.1", port, ignored);  // its accept "fails"
  const startup_condition c = s->join();
  CHECK(c.stage == startup_condition::phase::runtime);
  CHECK(c.code == std::errc::address_in_use);
  CHECK(closes.load() == 1);  // the held connection was closed and logged, not abandoned
  CHECK(held.read_all().empty());
  CHECK(seen.has(diagnostic::kind::fatal, "unable to reopen the listener"));
  std::lock_guard lock(mutex);
  REQUIRE(events.size() == 2);
  CHECK(events[0] == announce_event::kind::listening);
  CHECK(events[1] == announce_event::kind::error);
}

TEST_CASE("library: a server leaves SIGPIPE's disposition alone", "[library][signals]") {
  struct sigaction before {};
  REQUIRE(::sigaction(SIGPIPE, nullptr, &before) == 0);
  REQUIRE(before.sa_handler == SIG_DFL);
  auto o = loopback(handler::exec);
  o.exec_argv = {"/bin/sh", "-c", "exec 0<&-; echo done"};
  o.create_stream = true;
  auto s = start_up_server(o);
  for (int i = 0; i < 10; ++i) {
    // The child closes its stdin at once: writing the client's bytes to it fails with EPIPE.
    tcp_stream c = open_tcp_stream("127.0.0.1", std::to_string(s->local_port()));
    c.set_timeout(5s);
    std::error_code ec;
    c.write(std::string(256 * 1024, 'x'), ec);
    (void)c.read_all();
  }
  struct sigaction after {};
  REQUIRE(::sigaction(SIGPIPE, nullptr, &after) == 0);
  CHECK(after.sa_handler == SIG_DFL);
  server_terminate(*s);
  CHECK_FALSE(s->join());
}

TEST_CASE("library: a backlog that is not positive is a usage condition", "[library][errors]") {
  auto o = loopback();
  o.backlog = 0;
  startup_condition c;
  CHECK_FALSE(start_up_server(o, c));
  CHECK(c.stage == startup_condition::phase::usage);
  CHECK(c.message().find("backlog") != std::string::npos);
}

TEST_CASE("client: an unknown service is reported as such, not as an unreachable host", "[library][client]") {
  std::error_code ec;
  open_tcp_stream("127.0.0.1", "no-such-service-for-startup-server", ec);
  REQUIRE(ec);
  CHECK(ec != std::errc::host_unreachable);
  CHECK(ec.message().find("route") == std::string::npos);
  CHECK_FALSE(ec.message().empty());
}

TEST_CASE("client: read_line refuses a line longer than its bound", "[library][client]") {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  tcp_stream reader(pair[0]);
  std::thread writer([fd = pair[1]] {
    const std::string chunk(4096, 'a');
    for (int i = 0; i < 64; ++i)
      if (::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) break;
    ::close(fd);
  });
  try {
    reader.read_line(16 * 1024);
    FAIL("no exception");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::value_too_large);
  }
  reader.close();
  writer.join();
}

TEST_CASE("cli: exit statuses follow the errno whatever the error category", "[cli][errors]") {
  startup_condition c{startup_condition::phase::bind, std::make_error_code(std::errc::address_in_use), "x"};
  CHECK(cli::exit_status_for(c) == cli::exit_unavailable);
  c.code = std::error_code(EADDRINUSE, std::system_category());
  CHECK(cli::exit_status_for(c) == cli::exit_unavailable);
}

TEST_CASE("line_sink: a reader that never reads costs dropped lines, never a blocked writer", "[output]") {
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  const auto start = std::chrono::steady_clock::now();
  {
    detail::line_sink sink;
    sink.attach(p[1]);
    sink.limit = 64 * 1024;
    sink.close_deadline = 200ms;
    sink.set_drop_note([](std::uint64_t n) { return std::to_string(n) + " lines dropped"; });
    for (int i = 0; i < 100000; ++i) sink.write_line("a line of connection log, about this long, as -v writes it");
  }
  CHECK(std::chrono::steady_clock::now() - start < 3s);
  // The reader wakes up: it finds whole lines.
  std::string got;
  char buf[65536];
  ::fcntl(p[0], F_SETFL, O_NONBLOCK);
  for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
  ::close(p[0]);
  ::close(p[1]);
  REQUIRE_FALSE(got.empty());
  CHECK(got.back() == '\n');
}

TEST_CASE("line_sink: lines dropped while the reader lagged are counted once it catches up", "[output]") {
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  std::string got;
  std::thread reader;
  {
    detail::line_sink sink;
    sink.attach(p[1]);
    sink.limit = 4096;
    sink.set_drop_note([](std::uint64_t n) { return "NOTE " + std::to_string(n) + " lines dropped"; });
    for (int i = 0; i < 5000; ++i) sink.write_line("0123456789012345678901234567890123456789");
    // Now read everything: the queue drains and the note follows.
    reader = std::thread([&] {
      char buf[65536];
      for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
    });
    CHECK(sink.flush(5s));
    sink.write_line("last");
    CHECK(sink.flush(5s));
  }
  ::close(p[1]);  // the sink is gone: the reader sees EOF
  reader.join();
  ::close(p[0]);
  CHECK(got.find(" lines dropped") != std::string::npos);
  CHECK(got.find("NOTE ") != std::string::npos);
  CHECK(got.size() >= 5);
  CHECK(got.substr(got.size() - 5) == "last\n");
}

TEST_CASE("line_sink: a file that cannot grow keeps whole lines only", "[output]") {
  char path[] = "/tmp/startup-server-sink-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  struct sigaction old_xfsz {};
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGXFSZ, &ignore, &old_xfsz);
  rlimit old_limit{};
  ::getrlimit(RLIMIT_FSIZE, &old_limit);
  rlimit small = old_limit;
  small.rlim_cur = 1000;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  {
    detail::line_sink sink;
    std::string reason;
    REQUIRE(sink.open(path, reason));
    for (int i = 0; i < 200; ++i) sink.write_line("line " + std::to_string(i) + " of the log, thirty-odd bytes");
    sink.flush(5s);
  }
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::sigaction(SIGXFSZ, &old_xfsz, nullptr);
  std::string content;
  const int in = ::open(path, O_RDONLY | O_CLOEXEC);
  char buf[4096];
  for (ssize_t n; (n = ::read(in, buf, sizeof buf)) > 0;) content.append(buf, static_cast<std::size_t>(n));
  ::close(in);
  ::unlink(path);
  REQUIRE_FALSE(content.empty());
  CHECK(content.size() <= 1000);
  CHECK(content.back() == '\n');
  CHECK(content.rfind("line 0 of", 0) == 0);
}
