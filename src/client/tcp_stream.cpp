// open_tcp_stream and tcp_stream: a blocking client over plain sockets.
#include "startup_server/client.hpp"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <fmt/core.h>
#include <utility>

#include "core/io.hpp"
#include "core/resolve.hpp"

namespace startup_server {
namespace {

std::error_code last_error() { return {errno, std::system_category()}; }

// connect(2), carried through a signal: an interrupted connect goes on in the background
// (calling connect again fails with EALREADY), so wait for it and read its outcome.
bool connect_fully(int fd, const sockaddr* addr, socklen_t len, std::error_code& ec) {
  if (::connect(fd, addr, len) == 0) {
    ec.clear();
    return true;
  }
  if (errno != EINTR) {
    ec = last_error();
    return false;
  }
  for (;;) {
    pollfd p{fd, POLLOUT, 0};
    const int ready = ::poll(&p, 1, -1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) {
      ec = last_error();
      return false;
    }
    int error = 0;
    socklen_t size = sizeof error;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0) error = errno;
    ec = error ? std::error_code(error, std::system_category()) : std::error_code();
    return error == 0;
  }
}

}  // namespace

tcp_stream::tcp_stream(int fd) noexcept : fd_(fd) {
  try {
    const detail::socket_endpoints e = detail::endpoints_of(fd);
    endpoints_ = {e.local_host, e.local_port, e.peer_host, e.peer_port};
  } catch (...) {
    // Out of memory: the endpoints stay empty; the stream works without them.
  }
}

tcp_stream::tcp_stream(tcp_stream&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), endpoints_(std::move(other.endpoints_)), pending_(std::move(other.pending_)) {}

tcp_stream& tcp_stream::operator=(tcp_stream&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    endpoints_ = std::move(other.endpoints_);
    pending_ = std::move(other.pending_);
  }
  return *this;
}

tcp_stream::~tcp_stream() { close(); }

void tcp_stream::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void tcp_stream::write(std::string_view data, std::error_code& ec) noexcept { detail::write_all(fd_, data, ec); }

void tcp_stream::write(std::string_view data) {
  std::error_code ec;
  write(data, ec);
  if (ec) throw std::system_error(ec, "write");
}

void tcp_stream::write_line(std::string_view line) {
  std::string buf(line);
  buf.push_back('\n');
  write(buf);
}

std::size_t tcp_stream::read_some(char* buffer, std::size_t size, std::error_code& ec) noexcept {
  ec.clear();
  if (!pending_.empty()) {
    std::size_t n = std::min(size, pending_.size());
    pending_.copy(buffer, n);
    pending_.erase(0, n);
    return n;
  }
  for (;;) {
    ssize_t n = ::recv(fd_, buffer, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ec = last_error();
      return 0;
    }
    return static_cast<std::size_t>(n);
  }
}

std::size_t tcp_stream::read_some(char* buffer, std::size_t size) {
  std::error_code ec;
  std::size_t n = read_some(buffer, size, ec);
  if (ec) throw std::system_error(ec, "read");
  return n;
}

std::optional<std::string> tcp_stream::read_line(std::size_t max_length) {
  for (std::size_t searched = 0;;) {
    if (auto nl = pending_.find('\n', searched); nl != std::string::npos) {
      if (nl > max_length) break;
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      return line;
    }
    searched = pending_.size();
    if (pending_.size() > max_length) break;
    char buf[4096];
    std::error_code ec;
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::system_error(last_error(), "read");
    if (n == 0) {
      if (pending_.empty()) return std::nullopt;
      return std::exchange(pending_, {});
    }
    pending_.append(buf, static_cast<std::size_t>(n));
  }
  // What was read stays buffered: the caller may read it with read_some.
  throw std::system_error(std::make_error_code(std::errc::value_too_large),
                          fmt::format("read_line: no end of line within {} bytes", max_length));
}

std::string tcp_stream::read_all() {
  std::string out = std::exchange(pending_, {});
  char buf[65536];
  for (;;) {
    std::size_t n = read_some(buf, sizeof buf);
    if (n == 0) return out;
    out.append(buf, n);
  }
}

void tcp_stream::shutdown_write() {
  if (::shutdown(fd_, SHUT_WR) != 0) throw std::system_error(last_error(), "shutdown");
}

void tcp_stream::set_timeout(std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

tcp_stream open_tcp_stream(const std::string& host, const std::string& service, std::error_code& ec) noexcept {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
    // The resolver's own reason ("Name or service not known"), not a made-up network error.
    ec = rc == EAI_SYSTEM ? last_error() : std::error_code(rc, detail::resolver_category());
    return {};
  }
  ec = std::make_error_code(std::errc::host_unreachable);
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      ec = last_error();
      continue;
    }
    if (connect_fully(fd, ai->ai_addr, ai->ai_addrlen, ec)) {
      ::freeaddrinfo(res);
      return tcp_stream(fd);
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return {};
}

tcp_stream open_tcp_stream(const std::string& host, const std::string& service) {
  std::error_code ec;
  tcp_stream s = open_tcp_stream(host, service, ec);
  if (ec) throw std::system_error(ec, fmt::format("connect to {}:{}", host, service));
  return s;
}

}  // namespace startup_server
