// Integration tests: running under a service manager. Sockets passed from fd 3 on
// (LISTEN_FDS, as systemd passes them) and readiness datagrams (NOTIFY_SOCKET).
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <cstdlib>
#include <thread>

#include "support/test_support.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

// A listening socket on 127.0.0.1, port of the system's choosing; closed by the destructor.
struct loopback_listener {
  int fd = -1;
  std::uint16_t port = 0;
  loopback_listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("cannot make a loopback listener");
    port = ntohs(a.sin_port);
  }
  ~loopback_listener() { close(); }
  void close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  ino_t inode() const {
    struct stat st {};
    ::fstat(fd, &st);
    return st.st_ino;
  }
};

// A datagram socket at a fresh path that collects what a server sends to NOTIFY_SOCKET.
struct notify_receiver {
  int fd = -1;
  std::string path;
  explicit notify_receiver(bool abstract = false) {
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    static int serial = 0;
    const std::string name = "startup-server-test-notify-" + std::to_string(::getpid()) + "-" + std::to_string(++serial);
    path = abstract ? "@" + name : "/tmp/" + name;
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.data(), path.size());
    if (abstract) a.sun_path[0] = '\0';
    ::unlink(path.c_str());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size())) != 0)
      throw std::runtime_error("cannot bind the notify socket");
    const int on = 1;  // each datagram comes with its sender's pid, as systemd reads it
    ::setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
  }
  ~notify_receiver() {
    ::close(fd);
    if (path[0] == '/') ::unlink(path.c_str());
  }
  // The next datagram, or "" once `timeout` has passed; its sender's pid in *sender.
  std::string next(milliseconds timeout = 10s, pid_t* sender = nullptr) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return {};
    char buf[4096];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd, &m, MSG_DONTWAIT);
    if (n <= 0) return {};
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c && sender; c = CMSG_NXTHDR(&m, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
        *sender = reinterpret_cast<const ucred*>(CMSG_DATA(c))->pid;
    return std::string(buf, static_cast<std::size_t>(n));
  }
};

// Runs the binary as a service manager would: LISTEN_PID is the server's own pid (sh's exec
// keeps it), `fds` become 3, 4, ...
child_process activated(const std::vector<int>& fds, std::vector<std::string> env,
                        const std::vector<std::string>& args) {
  std::vector<std::string> argv{"/bin/sh", "-c", "export LISTEN_PID=$$; exec \"$0\" \"$@\"", binary_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  env.insert(env.begin(), "LISTEN_FDS=" + std::to_string(fds.size()));  // the test's own value wins
  return child_process(argv, spawn_extras{fds, env});
}

std::uint16_t announced_port(child_process& p) {
  auto line = p.stdout_line(10s);
  REQUIRE(line);
  return static_cast<std::uint16_t>(std::stoi(*line));
}

bool echoes(std::uint16_t port, const std::string& text = "through the passed socket\n") {
  auto c = client::connect(port);
  if (!c) return false;
  auto r = c->exchange(text, text.size(), true);
  return r.data == text;
}

// The sockets among p's descriptors, by inode.
std::vector<std::string> socket_targets(pid_t pid) {
  std::vector<std::string> sockets;
  for (const auto& [fd, target] : fd_targets(pid))
    if (target.rfind("socket:", 0) == 0) sockets.push_back(target);
  return sockets;
}

}  // namespace

TEST_CASE("systemd: a listener passed as fd 3 is served and announced, nothing else is bound", "[systemd]") {
  loopback_listener l;
  auto p = activated({l.fd}, {}, {"--echo", "--announce", "--announce-format={port}"});
  CHECK(announced_port(p) == l.port);
  CHECK(echoes(l.port));
  // The server listens on our socket and on no other: once the connection is closed its
  // only socket is that one (the event loop's descriptors are not sockets).
  const std::vector<std::string> ours{"socket:[" + std::to_string(l.inode()) + "]"};
  CHECK(wait_until([&] { return socket_targets(p.pid()) == ours; }, 5s));
  p.send_signal(SIGTERM);
  CHECK(p.wait_exit(10s) == 0);
}

TEST_CASE("systemd: the passed listener keeps serving after the test's own copy is closed", "[systemd]") {
  loopback_listener l;
  auto p = activated({l.fd}, {}, {"--echo", "--announce", "--announce-format={port}"});
  const auto port = announced_port(p);
  l.close();
  for (int i = 0; i < 20; ++i) REQUIRE(echoes(port, "round " + std::to_string(i) + "\n"));
  p.send_signal(SIGTERM);
  CHECK(p.wait_exit(10s) == 0);
}

TEST_CASE("systemd: with several sockets, the one named by LISTEN_FDNAMES or bound to the port is served", "[systemd]") {
  loopback_listener a, b;
  {
    auto p = activated({a.fd, b.fd}, {"LISTEN_FDNAMES=first:second"}, {"--echo", "--announce", "--announce-format={port}", "-s", "second"});
    CHECK(announced_port(p) == b.port);
    CHECK(echoes(b.port));
    CHECK(wait_until([&] { return socket_targets(p.pid()).size() == 1; }, 5s));  // the other one is closed
    p.send_signal(SIGTERM);
    CHECK(p.wait_exit(10s) == 0);
  }
  {
    auto p = activated({a.fd, b.fd}, {}, {"--echo", "--announce", "--announce-format={port}", "-p", std::to_string(b.port)});
    CHECK(announced_port(p) == b.port);
    p.send_signal(SIGTERM);
    CHECK(p.wait_exit(10s) == 0);
  }
  {
    auto p = activated({a.fd, b.fd}, {}, {"--echo", "--announce", "--announce-format={port}"});
    CHECK(announced_port(p) == a.port);  // no service given: the first
    p.send_signal(SIGTERM);
    CHECK(p.wait_exit(10s) == 0);
  }
}

TEST_CASE("systemd: passed sockets that cannot be served end the start with exit 78 and a reason", "[systemd]") {
  loopback_listener a, b;
  {
    auto p = activated({a.fd, b.fd}, {"LISTEN_FDNAMES=first:second"}, {"--echo", "-s", "third"});
    CHECK(p.wait_exit(10s) == 78);
    CHECK_THAT(p.err(), Catch::Contains("socket activation") && Catch::Contains("'third'"));
  }
  {
    // A connection (Accept=yes), not a listener.
    auto c = client::connect_or_throw(a.port);
    auto p = activated({c.fd()}, {}, {"--echo"});
    CHECK(p.wait_exit(10s) == 78);
    CHECK_THAT(p.err(), Catch::Contains("not a listening socket") && Catch::Contains("Accept=no"));
  }
  {
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    auto p = activated({pipe_fds[0]}, {}, {"--echo"});
    ::close(pipe_fds[0]), ::close(pipe_fds[1]);
    CHECK(p.wait_exit(10s) == 78);
    CHECK_THAT(p.err(), Catch::Contains("not a socket"));
  }
  {
    auto p = activated({}, {"LISTEN_FDS=2"}, {"--echo"});  // says 2, passes none
    CHECK(p.wait_exit(10s) == 78);
    CHECK_THAT(p.err(), Catch::Contains("descriptor 3 is not open"));
  }
  {
    // Bound, never listening; the notify socket hears the reason (and nothing else).
    notify_receiver n;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    auto p = activated({fd}, {"NOTIFY_SOCKET=" + n.path}, {"--echo"});
    ::close(fd);
    CHECK(p.wait_exit(10s) == 78);
    CHECK_THAT(p.err(), Catch::Contains("descriptor 3 is a TCP socket that does not listen"));
    CHECK(n.next() == "STATUS=error: socket activation: descriptor 3 is a TCP socket that does not listen");
    CHECK(n.next(300ms).empty());
  }
}

TEST_CASE("systemd: an inherited listener that keeps failing ends the server and is not reopened", "[systemd]") {
  // Shutting down the reading side of a listener makes every accept fail (EINVAL): the
  // server would reopen a listener of its own, but not one the service manager made.
  for (const std::vector<std::string> threads : {std::vector<std::string>{}, {"--threads", "2"}, {"-v"}}) {
    INFO("extra flags: " << threads.size());
    loopback_listener l;
    notify_receiver n;
    std::vector<std::string> args{"--echo", "--announce", "--announce-format={port}"};
    args.insert(args.end(), threads.begin(), threads.end());
    auto p = activated({l.fd}, {"NOTIFY_SOCKET=" + n.path}, args);
    CHECK(announced_port(p) == l.port);
    CHECK(n.next().rfind("READY=1\n", 0) == 0);
    REQUIRE(::shutdown(l.fd, SHUT_RD) == 0);
    CHECK(p.wait_exit(10s) == 71);
    CHECK_THAT(p.err(), Catch::Contains("cannot be reopened"));
    CHECK(split_lines(p.out()).size() == 1);  // announced once: no listener of its own
    CHECK_THAT(n.next(), Catch::StartsWith("STATUS=error: ") && Catch::Contains("cannot be reopened"));
    CHECK(n.next() == "STOPPING=1");
  }
}

TEST_CASE("systemd: LISTEN_PID of another process is not ours: the server binds, and children see none of it", "[systemd]") {
  notify_receiver n;
  auto p = child_process({binary_path(), "-a", "127.0.0.1", "--announce", "--announce-format={port}", "--create-stream",
                          "--exec", "/usr/bin/env"},
                         spawn_extras{{}, {"LISTEN_PID=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=x", "NOTIFY_SOCKET=" + n.path}});
  const auto port = announced_port(p);
  CHECK(n.next().rfind("READY=1\n", 0) == 0);
  auto c = client::connect_or_throw(port);
  c.shutdown_write();
  const auto r = c.read_all();
  CHECK_THAT(r.data, Catch::Contains("TCPREMOTEIP=127.0.0.1"));
  CHECK_THAT(r.data, !Catch::Contains("LISTEN_") && !Catch::Contains("NOTIFY_SOCKET"));
  p.send_signal(SIGTERM);
  CHECK(p.wait_exit(10s) == 0);
}

TEST_CASE("systemd: children of an activated server see no LISTEN_* or NOTIFY_SOCKET", "[systemd]") {
  loopback_listener l;
  notify_receiver n;
  auto p = activated({l.fd}, {"LISTEN_FDNAMES=web", "NOTIFY_SOCKET=" + n.path},
                     {"--announce", "--announce-format={port}", "--exec", "/usr/bin/env"});
  announced_port(p);
  auto c = client::connect_or_throw(l.port);
  const auto r = c.read_all();
  CHECK_THAT(r.data, Catch::Contains("TCPLOCALPORT=" + std::to_string(l.port)));
  CHECK_THAT(r.data, !Catch::Contains("LISTEN_") && !Catch::Contains("NOTIFY_SOCKET"));
  p.send_signal(SIGTERM);
  CHECK(p.wait_exit(10s) == 0);
}

TEST_CASE("systemd: NOTIFY_SOCKET hears READY=1 with the address once listening, then STOPPING=1", "[systemd]") {
  for (bool abstract : {false, true}) {
    notify_receiver n(abstract);
    auto q = child_process({binary_path(), "-a", "127.0.0.1", "--echo", "--announce", "--announce-format={port}"},
                           spawn_extras{{}, {"NOTIFY_SOCKET=" + n.path}});
    const auto port = announced_port(q);
    const std::string ready = n.next();
    CHECK(ready == "READY=1\nSTATUS=listening on 127.0.0.1:" + std::to_string(port));
    CHECK(echoes(port));
    q.send_signal(SIGTERM);
    CHECK(n.next() == "STOPPING=1\nSTATUS=stopping");
    CHECK(q.wait_exit(10s) == 0);
  }
}

TEST_CASE("systemd: --once and a refused start tell the notify socket too", "[systemd]") {
  notify_receiver n;
  {
    auto p = child_process({binary_path(), "-a", "127.0.0.1", "--once", "--echo", "--announce", "--announce-format={port}"},
                           spawn_extras{{}, {"NOTIFY_SOCKET=" + n.path}});
    const auto port = announced_port(p);
    CHECK(n.next().rfind("READY=1\n", 0) == 0);
    CHECK(echoes(port));
    CHECK(n.next() == "STOPPING=1\nSTATUS=stopping");
    CHECK(p.wait_exit(10s) == 0);
  }
  {
    loopback_listener taken;
    auto p = child_process({binary_path(), "-a", "127.0.0.1", "-s", std::to_string(taken.port), "--echo"},
                           spawn_extras{{}, {"NOTIFY_SOCKET=" + n.path}});
    CHECK(p.wait_exit(10s) == 69);
    const std::string status = n.next();
    CHECK_THAT(status, Catch::StartsWith("STATUS=error: ") && Catch::Contains("in use"));
  }
}

TEST_CASE("systemd: --wait sends MAINPID of the server with READY=1 from the process that was started", "[systemd]") {
  notify_receiver n;
  auto r = child_process({binary_path(), "-a", "127.0.0.1", "--wait", "--echo"}, spawn_extras{{}, {"NOTIFY_SOCKET=" + n.path}});
  REQUIRE(r.wait_exit(10s) == 0);
  const pid_t server = static_cast<pid_t>(std::stol(r.out()));
  const std::string ready = n.next();
  CHECK_THAT(ready, Catch::StartsWith("MAINPID=" + std::to_string(server) + "\nREADY=1\nSTATUS=listening on 127.0.0.1:"));
  REQUIRE(::kill(server, SIGTERM) == 0);
  CHECK(n.next() == "STOPPING=1\nSTATUS=stopping");
  CHECK(wait_until([&] { return ::kill(server, 0) != 0; }, 10s));
}

TEST_CASE("systemd: with --wait a start that fails is told by the process that was started", "[systemd]") {
  notify_receiver n;
  loopback_listener taken;
  auto r = child_process({binary_path(), "-a", "127.0.0.1", "-s", std::to_string(taken.port), "--wait", "--echo"},
                         spawn_extras{{}, {"NOTIFY_SOCKET=" + n.path}});
  CHECK(r.wait_exit(10s) == 69);
  pid_t sender = 0;
  CHECK_THAT(n.next(10s, &sender), Catch::StartsWith("STATUS=error: ") && Catch::Contains("in use"));
  CHECK(sender == r.pid());  // the main process: NotifyAccess=main takes it
  CHECK(n.next(300ms).empty());
}

TEST_CASE("systemd: a notify socket nobody reads never holds up serving", "[systemd]") {
  notify_receiver n;
  // Fill the receiver's queue so every send would block.
  const int filler = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, n.path.data(), n.path.size());
  const std::string junk(512, 'x');
  while (::sendto(filler, junk.data(), junk.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a) > 0) {
  }
  ::close(filler);
  for (int round = 0; round < 5; ++round) {
    auto p = child_process({binary_path(), "-a", "127.0.0.1", "--echo", "--announce", "--announce-format={port}"},
                           spawn_extras{{}, {"NOTIFY_SOCKET=" + n.path}});
    const auto port = announced_port(p);
    CHECK(echoes(port));
    p.send_signal(SIGTERM);
    CHECK(p.wait_exit(10s) == 0);
    CHECK_THAT(p.err(), Catch::Contains("warning: NOTIFY_SOCKET"));
  }
}

TEST_CASE("systemd: systemd-socket-activate starts the server on the first connection and it serves", "[systemd]") {
  if (::access("/usr/bin/systemd-socket-activate", X_OK) != 0) {
    WARN("systemd-socket-activate is not installed (package systemd): skipped");
    return;
  }
  // It refuses port 0: find a free port, then let it bind.
  std::uint16_t port;
  {
    loopback_listener probe;
    port = probe.port;
  }
  child_process p({"/usr/bin/systemd-socket-activate", "-l", "127.0.0.1:" + std::to_string(port), "--fdname=web",
                   binary_path(), "-s", "web", "--echo", "--announce", "--announce-format={port}"});
  REQUIRE(wait_until([&] { return !port_is_free(port); }, 10s));
  // The first connection is what makes it exec the server; it then waits in the backlog.
  auto c = client::connect_or_throw(port);
  CHECK(announced_port(p) == port);
  const std::string text = "hello through systemd-socket-activate\n";
  CHECK(c.exchange(text, text.size(), true).data == text);
  CHECK(echoes(port));
  p.send_signal(SIGTERM);
  CHECK(p.wait_exit(10s) == 0);
}

TEST_CASE("systemd: --wait with a passed socket warns before it detaches, and the server it leaves stops cleanly", "[systemd]") {
  for (int round = 0; round < 5; ++round) {
    loopback_listener l;
    const std::uint16_t port = l.port;
    auto p = activated({l.fd}, {}, {"--wait", "--echo", "--reuseport"});
    REQUIRE(p.wait_exit(10s) == 0);
    CHECK_THAT(p.err(), Catch::Contains("warning: --reuseport is not used"));
    const pid_t server = static_cast<pid_t>(std::stol(p.out()));
    l.close();
    CHECK(echoes(port));
    REQUIRE(::kill(server, SIGTERM) == 0);
    CHECK(wait_until([&] { return ::kill(server, 0) != 0; }, 10s));
  }
}
