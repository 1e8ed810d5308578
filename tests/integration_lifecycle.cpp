// Integration tests: signals and grace, --once, --wait in the background, running out of descriptors.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include <catch2/catch.hpp>

#include "support/test_support.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

bool echoes(client& c, const std::string& text) {
  auto r = c.exchange(text, text.size(), false, 5s);
  return r.data == text;
}

bool echoes(std::uint16_t port, milliseconds timeout = 5s) {
  auto c = client::connect(port, timeout);
  return c && echoes(*c, "fresh\n");
}

// Waits until the server has stopped listening (a connect is refused).
bool wait_refused(std::uint16_t port) {
  return wait_until([&] { return connect_status(port, "127.0.0.1", 1s) == ECONNREFUSED; }, 5s, 20ms);
}

bool announced_terminated(const child_process& p) {
  for (const auto& line : split_lines(p.out())) {
    auto o = parse_json_line(line);
    if (o && o->string("event") == "terminated") return true;
  }
  return false;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

pid_t parse_pid(const std::string& text) {
  auto lines = split_lines(text);
  if (lines.size() != 1 || lines[0].empty() || lines[0].find_first_not_of("0123456789") != std::string::npos)
    return -1;
  return static_cast<pid_t>(std::stol(lines[0]));
}

}  // namespace

TEST_CASE("lifecycle: SIGTERM and SIGINT announce terminated and exit 0", "[lifecycle][signals]") {
  for (int sig : {SIGTERM, SIGINT}) {
    INFO("signal " << sig);
    auto s = start_server({}, announce_style::json);
    REQUIRE(echoes(s.port));
    REQUIRE(s.proc.send_signal(sig));
    CHECK(s.proc.wait_exit(10s) == 0);
    CHECK(announced_terminated(s.proc));
    CHECK(port_is_free(s.port));
  }
}

TEST_CASE("lifecycle: --once serves exactly one connection, then exits 0", "[lifecycle][once]") {
  auto s = start_server({"--once"}, announce_style::json);
  auto first = client::connect_or_throw(s.port);
  REQUIRE(echoes(first, "only one\n"));
  // The listener closed before the first connection's handler ran, so once the first
  // echo is back a second client is refused outright, never half-served.
  for (int i = 0; i < 3; ++i) {
    int error = 0;
    CHECK_FALSE(client::connect(s.port, 2s, "127.0.0.1", &error));
    CHECK(error == ECONNREFUSED);
  }
  CHECK(wait_refused(s.port));
  CHECK(echoes(first, "still served\n"));
  CHECK(s.proc.running());
  first.shutdown_write();
  CHECK(first.read_all(5s).eof);
  CHECK(s.proc.wait_exit(5s) == 0);
  CHECK(announced_terminated(s.proc));
}

TEST_CASE("lifecycle: SIGTERM lets an open connection finish within the grace period", "[lifecycle][signals]") {
  auto s = start_server({"--grace", "30"}, announce_style::json);
  auto open = client::connect_or_throw(s.port);
  REQUIRE(echoes(open, "before\n"));
  REQUIRE(s.proc.send_signal(SIGTERM));
  CHECK(wait_refused(s.port));  // no new connections
  CHECK(echoes(open, "after the signal\n"));
  CHECK(s.proc.running());
  open.shutdown_write();
  CHECK(open.read_all(5s).eof);
  // The last connection is gone: the server ends without waiting out the grace.
  CHECK(s.proc.wait_exit(5s) == 0);
  CHECK(announced_terminated(s.proc));
}

TEST_CASE("lifecycle: clients queued when SIGTERM arrives are served, not reset", "[lifecycle][signals]") {
  // The server is stopped (SIGSTOP) while clients connect: the kernel queues them, and
  // their bytes, on the listener. SIGTERM comes before the server runs again; closing the
  // listener would reset every client still queued.
  const std::vector<std::pair<std::string, std::vector<std::string>>> paths{
      {"fast lanes", {"--echo", "--backlog", "64"}},
      {"event loop", {"--echo", "--backlog", "64", "--idle-timeout", "30"}},
      {"two lanes", {"--echo", "--backlog", "64", "--threads", "2"}},
  };
  for (const auto& [what, args] : paths) {
    for (int round = 0; round < 3; ++round) {
      INFO(what << ", round " << round);
      auto s = start_server(args);
      REQUIRE(s.proc.send_signal(SIGSTOP));
      std::vector<client> clients;
      for (int i = 0; i < 24; ++i) {
        auto c = client::connect(s.port);
        REQUIRE(c);
        REQUIRE(c->send_all("queued " + std::to_string(i) + "\n"));
        clients.push_back(std::move(*c));
      }
      REQUIRE(s.proc.send_signal(SIGTERM));
      REQUIRE(s.proc.send_signal(SIGCONT));
      int served = 0;
      for (std::size_t i = 0; i < clients.size(); ++i) {
        const std::string text = "queued " + std::to_string(i) + "\n";
        clients[i].shutdown_write();
        const auto r = clients[i].read_all(5s);
        served += r.data == text && r.eof;
      }
      CHECK(served == static_cast<int>(clients.size()));
      CHECK(s.proc.wait_exit(10s) == 0);
    }
  }
}

TEST_CASE("lifecycle: with --grace 1 a connection that stays open is closed after about a second",
          "[lifecycle][signals]") {
  auto s = start_server({"--grace", "1"}, announce_style::json);
  auto open = client::connect_or_throw(s.port);
  REQUIRE(echoes(open, "hello\n"));
  const auto signalled = steady::now();
  REQUIRE(s.proc.send_signal(SIGTERM));
  auto r = open.read_all(10s);
  const auto closed_after = steady::now() - signalled;
  CHECK((r.eof || r.error == ECONNRESET));
  CHECK(r.data.empty());
  CHECK(closed_after >= 800ms);
  CHECK(closed_after < 4s);
  CHECK(s.proc.wait_exit(5s) == 0);
  CHECK(announced_terminated(s.proc));
}

TEST_CASE("lifecycle: a second SIGTERM stops at once", "[lifecycle][signals]") {
  for (int second : {SIGTERM, SIGINT}) {
    INFO("second signal " << second);
    auto s = start_server({"--grace", "60"}, announce_style::json);
    auto open = client::connect_or_throw(s.port);
    REQUIRE(echoes(open, "hello\n"));
    REQUIRE(s.proc.send_signal(SIGTERM));
    REQUIRE(wait_refused(s.port));
    CHECK(echoes(open, "in grace\n"));
    const auto signalled = steady::now();
    REQUIRE(s.proc.send_signal(second));
    CHECK(s.proc.wait_exit(5s) == 0);
    CHECK(steady::now() - signalled < 3s);
    auto r = open.read_all(2s);
    CHECK((r.eof || r.error == ECONNRESET));
    CHECK(announced_terminated(s.proc));
  }
}

TEST_CASE("lifecycle: --wait returns within a second, printing the PID of a server that is listening",
          "[lifecycle][wait]") {
  subreaper_scope reaper;  // the detached server becomes our child, to be reaped
  temp_dir dir;
  const std::string file = dir.file("port");
  child_process waiter({binary_path(), "--wait", "-a", "127.0.0.1", "-s", "0", "--announce=" + file,
                        "--announce-format={port} {pid}"});
  const auto start = steady::now();
  const int status = waiter.wait_exit(5s);
  const auto took = steady::now() - start;
  INFO("stdout: " << waiter.out() << "\nstderr: " << waiter.err());
  REQUIRE(status == 0);
  CHECK(took < 1s);
  const pid_t pid = parse_pid(waiter.out());
  REQUIRE(pid > 0);
  detached_process server(pid);
  CHECK(server.alive());
  CHECK(pid != waiter.pid());
  CHECK(waiter.err().empty());

  // The port was written before --wait returned: read it now, without waiting.
  auto content = read_file(file);
  REQUIRE(content);
  auto space = content->find(' ');
  REQUIRE(space != std::string::npos);
  const auto port = static_cast<std::uint16_t>(std::stoul(content->substr(0, space)));
  CHECK(*content == std::to_string(port) + " " + std::to_string(pid) + "\n");
  CHECK(echoes(port));

  // The background server holds none of the caller's descriptors but 0-2 (on /dev/null)
  // and the announce file.
  for (const auto& [fd, target] : fd_targets(pid)) {
    INFO("fd " << fd << " -> " << target);
    if (fd <= 2) CHECK(target == "/dev/null");
    CHECK(target.find("pipe:") == std::string::npos);
  }

  REQUIRE(server.send_signal(SIGTERM));
  CHECK(server.wait_exit(10s) == 0);
}

TEST_CASE("lifecycle: pid=$(startup-server --wait ...) returns at once", "[lifecycle][wait]") {
  subreaper_scope reaper;
  temp_dir dir;
  const std::string file = dir.file("port");
  const std::string script = "pid=$(" + shell_quote(binary_path()) + " --wait -a 127.0.0.1 -s 0 --announce=" +
                             shell_quote(file) + " --announce-format='{port}') && echo \"$pid\"";
  child_process sh({"/bin/sh", "-c", script});
  const auto start = steady::now();
  const int status = sh.wait_exit(5s);
  INFO("stdout: " << sh.out() << "\nstderr: " << sh.err());
  REQUIRE(status == 0);
  CHECK(steady::now() - start < 2s);
  // No one holds the captured output open: both pipes end with the shell.
  CHECK(sh.wait_for_pipes_closed(2s));
  const pid_t pid = parse_pid(sh.out());
  REQUIRE(pid > 0);
  detached_process server(pid);
  CHECK(server.alive());
  auto content = read_file(file);
  REQUIRE(content);
  CHECK(echoes(static_cast<std::uint16_t>(std::stoul(*content))));
  REQUIRE(server.send_signal(SIGTERM));
  CHECK(server.wait_exit(10s) == 0);
}

TEST_CASE("lifecycle: --wait on a port in use fails with the reason on stderr and leaves no process",
          "[lifecycle][wait]") {
  subreaper_scope reaper;
  occupied_port busy;
  const std::string port = std::to_string(busy.port());
  auto r = run_binary({"--wait", "-a", "127.0.0.1", "-s", port});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.status == 69);
  CHECK(r.out.empty());
  CHECK(r.err.find("127.0.0.1:" + port) != std::string::npos);
  CHECK(r.err.find("Address already in use") != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  // Nothing was left behind: no process runs that command, and none was orphaned to us.
  CHECK(wait_until([&] { return find_processes({binary_path(), "--wait", port}).empty(); }, 2s));
  CHECK(children_of(::getpid()).empty());
}

TEST_CASE("lifecycle: --wait with an unknown service fails non-zero and leaves no process", "[lifecycle][wait]") {
  subreaper_scope reaper;
  auto r = run_binary({"--wait", "-a", "127.0.0.1", "-s", "no-such-service-for-startup-server"});
  INFO("stderr: " << r.err);
  CHECK(r.status == 68);
  CHECK(r.out.empty());
  CHECK(r.err.find("no-such-service-for-startup-server") != std::string::npos);
  CHECK(wait_until([&] { return find_processes({binary_path(), "no-such-service-for-startup-server"}).empty(); }, 2s));
  CHECK(children_of(::getpid()).empty());
}

TEST_CASE("lifecycle: running out of descriptors is not fatal and the server serves once clients leave",
          "[lifecycle][fds][slow]") {
  // A backlog above the flood, so every client is connected at once: the server takes
  // what its descriptors allow and the rest wait in the backlog.
  child_process p({"prlimit", "--nofile=32:32", "--", binary_path(), "-a", "127.0.0.1", "-s", "0", "--backlog", "64",
                   "--announce", "--announce-format={port}"});
  auto line = p.stdout_line(10s);
  INFO("stderr: " << p.err());
  REQUIRE(line);
  const auto port = static_cast<std::uint16_t>(std::stoul(*line));
  const pid_t pid = p.pid();  // prlimit executes the server in its own process
  auto keeper = client::connect_or_throw(port);
  REQUIRE(echoes(keeper, "keeper\n"));

  // More clients than the server has descriptors.
  std::vector<int> flood;
  for (int i = 0; i < 40; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    flood.push_back(fd);
  }
  CHECK(wait_until([&] { return count_fds(pid) >= 31; }, 5s));
  INFO("server descriptors at the limit: " << count_fds(pid));
  // At the limit, established connections go on being served.
  CHECK(echoes(keeper, "at the limit\n"));
  for (int fd : flood) ::close(fd);

  for (int i = 0; i < 5; ++i) {
    INFO("fresh client " << i);
    CHECK(echoes(port, 10s));
  }
  CHECK(echoes(keeper, "keeper again\n"));
  // Running out of descriptors is a resource event: the server backs off and says so
  // once; it is not an unexplained failure that would reopen the listener.
  CHECK(p.wait_for_stderr("backing off", 5s));
  CHECK(p.err().find("listener reopened") == std::string::npos);
  keeper.close();  // else the stop below waits out the grace period for it
  CHECK(p.running());
  REQUIRE(p.send_signal(SIGTERM));
  CHECK(p.wait_exit(10s) == 0);
}
