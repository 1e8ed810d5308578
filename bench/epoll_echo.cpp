// The benchmark's physical-limit reference: a minimal single-threaded epoll echo server.
//
// usage: epoll_echo [-p PORT] [-b BACKLOG]   (binds 127.0.0.1 only; with port 0, prints the
// chosen port on stdout). Level-triggered; one 64 KiB buffer for the whole process; a
// connection owns memory only while the client is not reading what it sent (a pending
// tail that did not fit the socket). TCP_NODELAY on accepted sockets, as startup-server.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

constexpr std::size_t buffer_size = 64 * 1024;
char g_buffer[buffer_size];

// Bytes a slow reader has not taken yet. While they wait the connection is not read, so a
// half-close is seen when reading resumes.
struct pending {
  std::vector<char> data;
  std::size_t sent = 0;
};

int g_epoll = -1;
int g_listener = -1;
std::vector<std::unique_ptr<pending>> g_pending;  // indexed by fd, null when nothing waits

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "epoll_echo: fatal: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

void watch(int fd, std::uint32_t events, int op) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(g_epoll, op, fd, &ev) != 0 && op != EPOLL_CTL_DEL) die("epoll_ctl");
}

void drop(int fd) {
  if (static_cast<std::size_t>(fd) < g_pending.size()) g_pending[static_cast<std::size_t>(fd)].reset();
  ::close(fd);  // also leaves the epoll set
}

void finish_sending(int fd) {
  ::shutdown(fd, SHUT_WR);
  drop(fd);
}

enum class sent { all, kept, dropped };

// Writes what the socket takes; keeps the rest and waits for writability instead of reading.
sent send_or_keep(int fd, const char* data, std::size_t size) {
  ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      drop(fd);
      return sent::dropped;
    }
    n = 0;
  }
  if (static_cast<std::size_t>(n) == size) return sent::all;
  if (static_cast<std::size_t>(fd) >= g_pending.size()) g_pending.resize(static_cast<std::size_t>(fd) + 1024);
  auto p = std::make_unique<pending>();
  p->data.assign(data + n, data + size);
  g_pending[static_cast<std::size_t>(fd)] = std::move(p);
  watch(fd, EPOLLOUT, EPOLL_CTL_MOD);
  return sent::kept;
}

void on_writable(int fd) {
  pending& p = *g_pending[static_cast<std::size_t>(fd)];
  while (p.sent < p.data.size()) {
    ssize_t n = ::send(fd, p.data.data() + p.sent, p.data.size() - p.sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      return drop(fd);
    }
    p.sent += static_cast<std::size_t>(n);
  }
  g_pending[static_cast<std::size_t>(fd)].reset();
  watch(fd, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
}

void on_readable(int fd) {
  // A few reads per wake-up: fewer epoll_wait calls on a busy stream, fair to the others.
  for (int round = 0; round < 8; ++round) {
    ssize_t n = ::recv(fd, g_buffer, buffer_size, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      return drop(fd);
    }
    if (n == 0) return finish_sending(fd);
    if (send_or_keep(fd, g_buffer, static_cast<std::size_t>(n)) != sent::all) return;
    if (static_cast<std::size_t>(n) < buffer_size) return;
  }
}

bool g_accept_paused = false;

void accept_all() {
  for (int i = 0; i < 256; ++i) {
    int fd = ::accept4(g_listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: stop watching the listener for a moment instead of spinning.
        watch(g_listener, 0, EPOLL_CTL_MOD);
        g_accept_paused = true;
      }
      return;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    watch(fd, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_ADD);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  int backlog = SOMAXCONN;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "-p") port = std::atoi(argv[i + 1]);
    else if (flag == "-b") backlog = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: epoll_echo [-p PORT] [-b BACKLOG]\n");
      return 64;
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }

  g_listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (g_listener < 0) die("socket");
  const int one = 1;
  ::setsockopt(g_listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::bind(g_listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind 127.0.0.1");
  if (::listen(g_listener, backlog) != 0) die("listen");
  socklen_t len = sizeof addr;
  ::getsockname(g_listener, reinterpret_cast<sockaddr*>(&addr), &len);
  if (port == 0) {
    std::printf("%d\n", ntohs(addr.sin_port));
    std::fflush(stdout);
  }

  g_epoll = ::epoll_create1(EPOLL_CLOEXEC);
  if (g_epoll < 0) die("epoll_create1");
  watch(g_listener, EPOLLIN, EPOLL_CTL_ADD);
  epoll_event events[256];
  for (;;) {
    int n = ::epoll_wait(g_epoll, events, 256, g_accept_paused ? 10 : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    if (g_accept_paused) {
      g_accept_paused = false;
      watch(g_listener, EPOLLIN, EPOLL_CTL_MOD);
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      const std::uint32_t ev = events[i].events;
      if (fd == g_listener) {
        accept_all();
        continue;
      }
      const bool has_pending = static_cast<std::size_t>(fd) < g_pending.size() && g_pending[static_cast<std::size_t>(fd)];
      if (has_pending) {
        if (ev & (EPOLLERR | EPOLLHUP)) drop(fd);
        else if (ev & EPOLLOUT) on_writable(fd);
        continue;
      }
      if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(fd);
    }
  }
}
