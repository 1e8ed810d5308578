// Unit tests: socket activation and readiness pieces, and the library's inherited listener.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/systemd.hpp"
#include "server/fault_hooks.hpp"
#include "startup_server/startup_server.hpp"
#include "support/loopback.hpp"

using namespace startup_server;
using namespace std::chrono_literals;

namespace {

int loopback_listener(std::uint16_t* port = nullptr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(fd, 8);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  if (port) *port = ntohs(a.sin_port);
  return fd;
}

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

}  // namespace

TEST_CASE("systemd: LISTEN_* meant for another process are unset and ignored", "[systemd]") {
  ::setenv("LISTEN_PID", "1", 1);
  ::setenv("LISTEN_FDS", "1", 1);
  ::setenv("LISTEN_FDNAMES", "web", 1);
  ::setenv("LISTEN_PIDFDID", "42", 1);
  std::string problem;
  const auto s = detail::take_listen_fds(problem);
  CHECK_FALSE(s.present);
  CHECK(problem.empty());
  for (const char* name : {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID"}) CHECK(std::getenv(name) == nullptr);
}

TEST_CASE("systemd: a LISTEN_FDS that is not a count is a problem", "[systemd]") {
  for (const char* count : {"0", "-1", "two", "", "99999"}) {
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    ::setenv("LISTEN_FDS", count, 1);
    std::string problem;
    const auto s = detail::take_listen_fds(problem);
    if (std::string(count).empty()) {
      CHECK_FALSE(s.present);  // unset in effect
    } else {
      CHECK(s.present);
      CHECK(s.fds.empty());
      CHECK_THAT(problem, Catch::Contains("LISTEN_FDS"));
    }
    CHECK(std::getenv("LISTEN_FDS") == nullptr);
  }
}

TEST_CASE("systemd: the socket served is chosen by name, then by port, else the only one", "[systemd]") {
  std::uint16_t pa = 0, pb = 0;
  const int a = loopback_listener(&pa), b = loopback_listener(&pb);
  detail::inherited_sockets s{true, {a, b}, {"first", "second"}};
  std::string warning, problem;
  CHECK(detail::select_inherited(s, "", 0, warning, problem) == a);
  CHECK(detail::select_inherited(s, "0", 0, warning, problem) == a);
  CHECK(detail::select_inherited(s, "second", 0, warning, problem) == b);
  CHECK(detail::select_inherited(s, std::to_string(pb), pb, warning, problem) == b);
  CHECK(warning.empty());
  CHECK(detail::select_inherited(s, "third", 0, warning, problem) == -1);
  CHECK_THAT(problem, Catch::Contains("none of the 2 inherited sockets") && Catch::Contains("'third'"));
  detail::inherited_sockets one{true, {a}, {""}};
  problem.clear();
  CHECK(detail::select_inherited(one, "8080", 8080, warning, problem) == a);
  CHECK_THAT(warning, Catch::Contains("port " + std::to_string(pa)) && Catch::Contains("'8080'"));
  ::close(a), ::close(b);
}

TEST_CASE("systemd: only listening TCP sockets can be served", "[systemd]") {
  std::string problem;
  int p[2];
  REQUIRE(::pipe(p) == 0);
  CHECK_FALSE(detail::is_tcp_listener(p[0], problem));
  CHECK_THAT(problem, Catch::Contains("not a socket"));
  ::close(p[0]), ::close(p[1]);
  const int unix_socket = ::socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK_FALSE(detail::is_tcp_listener(unix_socket, problem));
  CHECK_THAT(problem, Catch::Contains("not a TCP socket"));
  ::close(unix_socket);
  const int unbound = ::socket(AF_INET, SOCK_STREAM, 0);
  CHECK_FALSE(detail::is_tcp_listener(unbound, problem));
  CHECK_THAT(problem, Catch::Contains("a TCP socket that does not listen"));
  ::close(unbound);
  const int l = loopback_listener();
  CHECK(detail::is_tcp_listener(l, problem));
  // A connection (what Accept=yes passes) is told apart from a socket that never listened.
  sockaddr_storage where{};
  socklen_t len = sizeof where;
  REQUIRE(::getsockname(l, reinterpret_cast<sockaddr*>(&where), &len) == 0);
  const int connected = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(::connect(connected, reinterpret_cast<sockaddr*>(&where), len) == 0);
  CHECK_FALSE(detail::is_tcp_listener(connected, problem));
  CHECK_THAT(problem, Catch::Contains("a connection, not a listening socket (use Accept=no)"));
  ::close(connected);
  ::close(l);
}

TEST_CASE("systemd: notify sends one datagram to a path or an abstract name, and refuses others", "[systemd]") {
  for (std::string name : {"/tmp/startup-server-unit-notify-" + std::to_string(::getpid()),
                           "@startup-server-unit-notify-" + std::to_string(::getpid())}) {
    const int r = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, name.data(), name.size());
    if (name[0] == '@') a.sun_path[0] = '\0';
    ::unlink(name.c_str());
    REQUIRE(::bind(r, reinterpret_cast<sockaddr*>(&a), static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size())) == 0);
    std::error_code ec;
    detail::notify(name, "READY=1\nSTATUS=up", ec);
    CHECK_FALSE(ec);
    char buf[64];
    const ssize_t n = ::recv(r, buf, sizeof buf, MSG_DONTWAIT);
    CHECK(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0) == "READY=1\nSTATUS=up");
    ::close(r);
    if (name[0] == '/') ::unlink(name.c_str());
  }
  std::error_code ec;
  detail::notify("relative/path", "READY=1", ec);
  CHECK(ec == std::errc::invalid_argument);
  detail::notify("/tmp/startup-server-no-such-notify-socket", "READY=1", ec);
  CHECK(ec);
}

TEST_CASE("library: listener_fd is served as given, never reopened, and closed at the end", "[library][systemd]") {
  std::uint16_t port = 0;
  const int fd = loopback_listener(&port);
  auto o = test_support::loopback();
  o.listener_fd = fd;
  o.service = "9";  // not used: the listener is given
  auto s = start_up_server(o);
  CHECK(s->local_port() == port);
  tcp_stream c = open_tcp_stream("127.0.0.1", std::to_string(port));
  c.set_timeout(5s);
  c.write("hi");
  char b[2];
  CHECK(c.read_some(b, 2) >= 1);
  server_terminate(*s);
  CHECK_FALSE(s->join());
  s.reset();
  CHECK_FALSE(is_open(fd));
}

TEST_CASE("library: a listener_fd that is not a listener is a usage condition, and is closed", "[library][systemd]") {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  auto o = test_support::loopback();
  o.listener_fd = p[0];
  startup_condition c;
  auto s = start_up_server(o, c);
  CHECK_FALSE(s);
  CHECK(c.stage == startup_condition::phase::usage);
  CHECK_THAT(c.message(), Catch::Contains("inherited listener") && Catch::Contains("not a socket"));
  CHECK_FALSE(is_open(p[0]));
  ::close(p[1]);
}

TEST_CASE("library: a failing inherited listener ends the server instead of being reopened", "[library][systemd]") {
  struct clear {
    ~clear() { detail::faults() = {}; }
  } cleared;
  std::uint16_t port = 0;
  const int fd = loopback_listener(&port);
  auto o = test_support::loopback();
  o.listener_fd = fd;
  o.reopen_after_failures = 1;
  std::atomic<int> stopping{0};
  o.stopping = [&] { ++stopping; };
  std::atomic<bool> break_it{false};
  std::atomic<int> reopens{0};
  detail::faults().accept = [&](std::error_code ec) {
    return break_it.load() && !ec ? std::make_error_code(std::errc::invalid_argument) : ec;
  };
  detail::faults().reopen = [&] {
    ++reopens;
    return std::error_code();
  };
  auto s = start_up_server(o);
  break_it = true;
  std::error_code ignored;
  open_tcp_stream("127.0.0.1", std::to_string(port), ignored);
  const startup_condition c = s->join();
  CHECK(c.stage == startup_condition::phase::runtime);
  CHECK_THAT(c.message(), Catch::Contains("inherited listener") && Catch::Contains("cannot be reopened"));
  CHECK(reopens.load() == 0);
  CHECK(stopping.load() == 1);
  s.reset();
  CHECK_FALSE(is_open(fd));
}

TEST_CASE("library: `stopping` is told once per stop, however many stop requests arrive", "[library][systemd]") {
  for (int round = 0; round < 20; ++round) {
    auto o = test_support::loopback();
    std::atomic<int> stopping{0};
    o.stopping = [&] { ++stopping; };
    o.grace = 50ms;
    auto s = start_up_server(o);
    tcp_stream held = open_tcp_stream("127.0.0.1", std::to_string(s->local_port()));
    server_terminate(*s);
    server_terminate(*s);
    server_terminate(*s, true);
    s->join();
    CHECK(stopping.load() == 1);
  }
}
