// Integration tests: guarding a server (connection limits, per-peer limits, allow/deny, idle
// timeout, running as another user) and watching it (the traffic trace).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <thread>

#include "support/test_support.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

// A client from a given loopback source address (127.0.0.2 is a peer distinct from 127.0.0.1).
int connect_from(const std::string& source, std::uint16_t port, const std::string& to = "127.0.0.1") {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &from.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
    ::close(fd);
    return -1;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, to.c_str(), &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends text and reads until it comes back, EOF, an error or 2 s: what came back.
std::string echo_through(int fd, const std::string& text) {
  if (::send(fd, text.data(), text.size(), MSG_NOSIGNAL) < 0) return "(send failed)";
  std::string got;
  char buf[256];
  while (got.size() < text.size()) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

bool served_from(const std::string& source, std::uint16_t port) {
  const int fd = connect_from(source, port);
  if (fd < 0) return false;
  const bool ok = echo_through(fd, "are you there?\n") == "are you there?\n";
  ::close(fd);
  return ok;
}

std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("guard: at --max-connections the next client waits in the backlog and is served when one leaves",
          "[guard][limits]") {
  auto s = start_server({"--max-connections", "2"});
  auto first = client::connect_or_throw(s.port);
  auto second = client::connect_or_throw(s.port);
  REQUIRE(first.exchange("1\n", 2, false).data == "1\n");
  REQUIRE(second.exchange("2\n", 2, false).data == "2\n");
  auto third = client::connect_or_throw(s.port);  // connected by the kernel, not yet accepted
  REQUIRE(third.send_all("3\n"));
  CHECK(third.read_exact(2, 500ms).data.empty());
  first.close();
  CHECK(third.read_exact(2, 5s).data == "3\n");
}

TEST_CASE("guard: with --max-connections 1 an exec server runs one child at a time", "[guard][limits]") {
  auto s = start_server({"--max-connections", "1", "--exec", "/bin/cat"});
  auto first = client::connect_or_throw(s.port);
  REQUIRE(first.exchange("a\n", 2, false).data == "a\n");
  auto second = client::connect_or_throw(s.port);
  REQUIRE(second.send_all("b\n"));
  CHECK(second.read_exact(2, 500ms).data.empty());  // no second child while the first runs
  CHECK(children_of(s.proc.pid()).size() == 1);
  first.close();
  CHECK(second.read_exact(2, 5s).data == "b\n");
}

TEST_CASE("guard: --max-per-ip refuses one peer's extra connection at once and logs it", "[guard][limits]") {
  auto s = start_server({"--max-per-ip", "1", "-v"});
  const int held = connect_from("127.0.0.1", s.port);
  REQUIRE(held >= 0);
  REQUIRE(echo_through(held, "held\n") == "held\n");
  const int extra = connect_from("127.0.0.1", s.port);
  REQUIRE(extra >= 0);
  CHECK(echo_through(extra, "extra\n").empty());  // closed at once, never echoed
  ::close(extra);
  CHECK(s.proc.wait_for_stderr("refused 127.0.0.1:", 5s));
  CHECK(s.proc.wait_for_stderr("(refused: max-per-ip)", 5s));
  // Another peer is not counted with it, and the first peer may come back once it left.
  CHECK(served_from("127.0.0.2", s.port));
  ::close(held);
  CHECK(wait_until([&] { return served_from("127.0.0.1", s.port); }, 5s, 50ms));
}

TEST_CASE("guard: --allow serves only the peers it names, and --deny wins", "[guard][access]") {
  {
    auto s = start_server({"--allow", "127.0.0.2", "-v"});
    CHECK_FALSE(served_from("127.0.0.1", s.port));
    CHECK(served_from("127.0.0.2", s.port));
    CHECK(s.proc.wait_for_stderr("(denied)", 5s));
  }
  {
    auto s = start_server({"--allow", "127.0.0.0/8", "--deny", "127.0.0.3/32", "-v", "--log-format", "json"});
    CHECK(served_from("127.0.0.2", s.port));
    CHECK_FALSE(served_from("127.0.0.3", s.port));
    CHECK(s.proc.wait_for_stderr(R"("event":"refused")", 5s));
    CHECK(s.proc.wait_for_stderr(R"("reason":"denied")", 5s));
  }
  {
    // A denied peer never reaches a child.
    auto s = start_server({"--deny", "127.0.0.1", "--exec", "/bin/echo", "child ran"});
    CHECK_FALSE(served_from("127.0.0.1", s.port));
    std::this_thread::sleep_for(200ms);
    CHECK(children_of(s.proc.pid()).empty());
  }
}

TEST_CASE("guard: IPv4-mapped peers match IPv4 rules, IPv6 rules match IPv6 peers", "[guard][access][ipv6]") {
  {
    child_process p({binary_path(), "-a", "::ffff:127.0.0.1", "--ipv6", "both", "-s", "0", "--announce",
                     "--announce-format={port}", "--allow", "127.0.0.2"});
    auto line = p.stdout_line(5s);
    if (!line) {
      WARN("cannot bind ::ffff:127.0.0.1 here: " << p.err());
    } else {
      const auto port = static_cast<std::uint16_t>(std::stoul(*line));
      CHECK(served_from("127.0.0.2", port));
      CHECK_FALSE(served_from("127.0.0.1", port));
    }
  }
  child_process p({binary_path(), "-a", "::1", "-s", "0", "--announce", "--announce-format={port}", "--deny",
                   "::1/128"});
  auto line = p.stdout_line(5s);
  if (!line) {
    WARN("no IPv6 loopback here: " << p.err());
    return;
  }
  const auto port = static_cast<std::uint16_t>(std::stoul(*line));
  auto c = client::connect(port, 2s, "::1");
  REQUIRE(c);
  CHECK(c->exchange("six\n", 4, false, 2s).data.empty());
}

TEST_CASE("guard: --idle-timeout closes only the connections that are idle", "[guard][idle]") {
  auto s = start_server({"--idle-timeout", "0.4", "-v"});
  auto idle = client::connect_or_throw(s.port);
  auto busy = client::connect_or_throw(s.port);
  const auto start = steady::now();
  for (int i = 0; i < 10; ++i) {  // a second and a half of traffic, a little at a time
    REQUIRE(busy.exchange("tick\n", 5, false).data == "tick\n");
    std::this_thread::sleep_for(150ms);
  }
  auto r = idle.read_all(3s);
  CHECK(r.eof);
  CHECK(r.data.empty());
  CHECK(steady::now() - start >= 400ms);
  CHECK(busy.exchange("still here\n", 11, false).data == "still here\n");
  CHECK(s.proc.wait_for_stderr("(idle)", 5s));
}

TEST_CASE("guard: --idle-timeout also ends an idle --create-stream relay and its child", "[guard][idle]") {
  auto s = start_server({"--idle-timeout", "0.3", "--create-stream", "--exec", "/bin/cat"});
  auto c = client::connect_or_throw(s.port);
  REQUIRE(c.exchange("x\n", 2, false).data == "x\n");
  CHECK(c.read_all(5s).eof);
  CHECK(wait_until([&] { return children_of(s.proc.pid()).empty(); }, 5s));
}

TEST_CASE("guard: the trace shows both directions exactly, as text and as hex", "[guard][trace]") {
  {
    auto s = start_server({"-x"});
    auto c = client::connect_or_throw(s.port);
    REQUIRE(c.exchange("hello\r\n", 7, false).data == "hello\r\n");
    CHECK(s.proc.wait_for_stderr("#1 < 7 bytes: hello\\r\\n", 5s));
    CHECK(s.proc.wait_for_stderr("#1 > 7 bytes: hello\\r\\n", 5s));
  }
  {
    auto s = start_server({"--trace=hex", "--talk"});
    auto c = client::connect_or_throw(s.port);
    const std::string reply = "You sent: 'hi'\n";
    REQUIRE(c.exchange("hi\n", reply.size(), false).data == reply);
    CHECK(s.proc.wait_for_stderr("#1 < 0000  68 69 0a", 5s));
    CHECK(s.proc.wait_for_stderr("|hi.|", 5s));
    CHECK(s.proc.wait_for_stderr("#1 > 0000  59 6f 75 20 73 65 6e 74", 5s));
  }
}

TEST_CASE("guard: trace lines keep interleaved connections apart by id", "[guard][trace]") {
  auto s = start_server({"-x"});
  auto a = client::connect_or_throw(s.port);
  auto b = client::connect_or_throw(s.port);
  REQUIRE(a.exchange("from a\n", 7, false).data == "from a\n");
  REQUIRE(b.exchange("from b\n", 7, false).data == "from b\n");
  CHECK(s.proc.wait_for_stderr("#1 < 7 bytes: from a\\n", 5s));
  CHECK(s.proc.wait_for_stderr("#2 < 7 bytes: from b\\n", 5s));
  CHECK(count_of(s.proc.err(), "#1 > ") == 1);
}

TEST_CASE("guard: --user binds a port below 1024 as root, then serves as the user", "[guard][user]") {
  if (::geteuid() != 0) {
    WARN("not root: --user cannot be tried here");
    return;
  }
  for (std::uint16_t port = 950; port < 1000; ++port) {
    if (!port_is_free(port)) continue;
    child_process p({binary_path(), "-a", "127.0.0.1", "-s", std::to_string(port), "--announce",
                     "--announce-format={port}", "--user", "nobody", "--sh-exec", "id -un; id -u"});
    auto line = p.stdout_line(5s);
    if (!line) continue;  // taken meanwhile
    auto c = client::connect_or_throw(port);
    const std::string answer = c.read_all(5s).data;
    CHECK(answer.rfind("nobody\n", 0) == 0);
    CHECK(answer.find("\n0\n") == std::string::npos);
    return;
  }
  FAIL("no free port below 1024 on 127.0.0.1");
}

TEST_CASE("guard: an unknown --user is refused before anything binds", "[guard][user][errors]") {
  auto r = run_binary({"-a", "127.0.0.1", "-s", "0", "--user", "no-such-user-for-startup-server"});
  CHECK(r.status == 64);
  CHECK(r.err.find("--user") != std::string::npos);
}
