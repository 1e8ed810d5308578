// The client socket and port checks: poll(2) against a deadline around non-blocking calls.
#include "support/net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace test_support {
namespace {

using steady = std::chrono::steady_clock;
constexpr std::size_t chunk = 64 * 1024;

int left_ms(steady::time_point deadline) {
  auto now = steady::now();
  if (now >= deadline) return 0;
  return static_cast<int>(std::chrono::ceil<milliseconds>(deadline - now).count());
}

// Waits for events on fd until the deadline; returns revents, 0 on timeout.
short wait_for(int fd, short events, steady::time_point deadline) {
  for (int round = 0; round < 100000; ++round) {
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, left_ms(deadline));
    if (rc > 0) return p.revents;
    if (rc == 0) return 0;
    if (errno != EINTR) return POLLERR;
  }
  return 0;
}

bool fill_address(const std::string& host, std::uint16_t port, sockaddr_storage& ss, socklen_t& len) {
  std::memset(&ss, 0, sizeof ss);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

}  // namespace

client::client(client&& other) noexcept : fd_(std::exchange(other.fd_, -1)), pending_(std::move(other.pending_)) {}

client& client::operator=(client&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    pending_ = std::move(other.pending_);
  }
  return *this;
}

client::~client() { close(); }

void client::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::optional<client> client::connect(std::uint16_t port, milliseconds timeout, const std::string& host, int* error) {
  return connect_from({}, port, timeout, host, error);
}

std::optional<client> client::connect_from(const std::string& source, std::uint16_t port, milliseconds timeout,
                                           const std::string& host, int* error) {
  int dummy = 0;
  int& err = error ? *error : dummy;
  sockaddr_storage ss, from;
  socklen_t len = 0, from_len = 0;
  if (!fill_address(host, port, ss, len) || (!source.empty() && !fill_address(source, 0, from, from_len))) {
    err = EINVAL;
    return std::nullopt;
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    err = errno;
    return std::nullopt;
  }
  client c(fd);
  if (!source.empty() && ::bind(fd, reinterpret_cast<sockaddr*>(&from), from_len) != 0) {
    err = errno;
    return std::nullopt;
  }
  const auto deadline = steady::now() + timeout;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
    err = 0;
    return c;
  }
  if (errno != EINPROGRESS) {
    err = errno;
    return std::nullopt;
  }
  if (wait_for(fd, POLLOUT, deadline) == 0) {
    err = ETIMEDOUT;
    return std::nullopt;
  }
  int so_error = 0;
  socklen_t sl = sizeof so_error;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &sl);
  if (so_error != 0) {
    err = so_error;
    return std::nullopt;
  }
  err = 0;
  return c;
}

client client::connect_or_throw(std::uint16_t port, milliseconds timeout, const std::string& host) {
  int err = 0;
  auto c = connect(port, timeout, host, &err);
  if (!c) throw std::system_error(err, std::system_category(), "connect " + host + ":" + std::to_string(port));
  return std::move(*c);
}

std::uint16_t client::local_port() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

std::size_t client::send_some(std::string_view data) {
  ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

bool client::send_all(std::string_view data, milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  for (int round = 0; round < 10000000 && !data.empty(); ++round) {
    ssize_t n = ::send(fd_, data.data(), std::min(data.size(), chunk), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return false;
    short ev = wait_for(fd_, POLLOUT, deadline);
    if (ev == 0 || (ev & (POLLERR | POLLNVAL))) return false;
  }
  return data.empty();
}

bool client::read_into(read_result& r, std::size_t limit) {
  if (!pending_.empty()) {
    std::size_t n = std::min(limit, pending_.size());
    r.data.append(pending_, 0, n);
    pending_.erase(0, n);
    return true;
  }
  char buf[chunk];
  for (;;) {
    ssize_t n = ::recv(fd_, buf, std::min(limit, sizeof buf), 0);
    if (n > 0) {
      r.data.append(buf, static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0) {
      r.eof = true;
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return true;
    r.error = errno;
    return false;
  }
}

read_result client::read_all(milliseconds timeout) {
  read_result r;
  const auto deadline = steady::now() + timeout;
  for (int round = 0; round < 10000000; ++round) {
    const std::size_t before = r.data.size();
    if (!read_into(r, chunk)) return r;
    if (r.data.size() != before) continue;
    if (wait_for(fd_, POLLIN, deadline) == 0) {
      r.timed_out = true;
      return r;
    }
  }
  r.timed_out = true;
  return r;
}

read_result client::read_exact(std::size_t n, milliseconds timeout) {
  read_result r;
  const auto deadline = steady::now() + timeout;
  for (int round = 0; round < 10000000 && r.data.size() < n; ++round) {
    const std::size_t before = r.data.size();
    if (!read_into(r, n - r.data.size())) return r;
    if (r.data.size() != before) continue;
    if (wait_for(fd_, POLLIN, deadline) == 0) {
      r.timed_out = true;
      return r;
    }
  }
  return r;
}

std::optional<std::string> client::read_line(milliseconds timeout) {
  read_result r;
  r.data = std::move(pending_);
  pending_.clear();
  const auto deadline = steady::now() + timeout;
  for (int round = 0; round < 10000000; ++round) {
    auto nl = r.data.find('\n');
    if (nl != std::string::npos) {
      pending_ = r.data.substr(nl + 1);
      r.data.resize(nl + 1);
      return r.data;
    }
    const std::size_t before = r.data.size();
    if (!read_into(r, chunk)) break;
    if (r.data.size() != before) continue;
    if (wait_for(fd_, POLLIN, deadline) == 0) break;
  }
  pending_ = std::move(r.data);
  return std::nullopt;
}

read_result client::exchange(std::string_view data, std::optional<std::size_t> expect, bool half_close,
                             milliseconds timeout) {
  read_result r;
  const auto deadline = steady::now() + timeout;
  bool shut = false;
  auto done_reading = [&] { return r.eof || r.error || (expect && r.data.size() >= *expect); };
  for (int round = 0; round < 10000000; ++round) {
    if (data.empty() && half_close && !shut) {
      ::shutdown(fd_, SHUT_WR);
      shut = true;
    }
    if (done_reading() && data.empty()) return r;
    short events = done_reading() ? 0 : POLLIN;
    if (!data.empty()) events |= POLLOUT;
    short ev = wait_for(fd_, events, deadline);
    if (ev == 0) {
      r.timed_out = true;
      return r;
    }
    if (ev & (POLLIN | POLLHUP | POLLERR)) {
      if (!done_reading()) read_into(r, chunk);
    }
    if ((ev & (POLLOUT | POLLERR)) && !data.empty()) {
      ssize_t n = ::send(fd_, data.data(), std::min(data.size(), chunk), MSG_NOSIGNAL);
      if (n > 0) data.remove_prefix(static_cast<std::size_t>(n));
      else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        r.error = errno;
        return r;
      }
    }
    if (r.error) return r;
  }
  r.timed_out = true;
  return r;
}

void client::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

int connect_status(std::uint16_t port, const std::string& host, milliseconds timeout) {
  int err = 0;
  auto c = client::connect(port, timeout, host, &err);
  return c ? 0 : err;
}

occupied_port::occupied_port() {
  fd_ = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::system_error(errno, std::system_category(), "socket");
  const int zero = 0;
  ::setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_any;
  socklen_t len = sizeof a;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd_, 1) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    int e = errno;
    ::close(fd_);
    throw std::system_error(e, std::system_category(), "occupy a port");
  }
  port_ = ntohs(a.sin6_port);
}

occupied_port::~occupied_port() {
  if (fd_ >= 0) ::close(fd_);
}

bool port_is_free(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return free;
}

}  // namespace test_support
