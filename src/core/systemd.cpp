// Socket activation and readiness as sd_listen_fds(3) and sd_notify(3) describe them.
#include "core/systemd.hpp"

#include "core/digits.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fmt/core.h>

namespace startup_server::detail {
namespace {

constexpr int first_listen_fd = 3;  // SD_LISTEN_FDS_START

std::string take_env(const char* name) {
  const char* v = std::getenv(name);
  std::string value = v ? v : "";
  ::unsetenv(name);
  return value;
}

std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> names;
  std::size_t from = 0;
  for (;;) {
    const std::size_t colon = text.find(':', from);
    names.push_back(text.substr(from, colon == std::string::npos ? std::string::npos : colon - from));
    if (colon == std::string::npos) return names;
    from = colon + 1;
  }
}

unsigned bound_port(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
  return 0;
}

}  // namespace

inherited_sockets take_listen_fds(std::string& problem) {
  const std::string pid = take_env("LISTEN_PID");
  const std::string count = take_env("LISTEN_FDS");
  const std::string names = take_env("LISTEN_FDNAMES");
  take_env("LISTEN_PIDFDID");
  inherited_sockets s;
  if (pid.empty() || count.empty()) return s;
  // Meant for another process (a parent that was activated and ran us): not ours.
  const auto owner = parse_number<long>(pid);
  if (!owner || *owner != static_cast<long>(::getpid())) return s;
  s.present = true;
  const auto n = parse_number<unsigned>(count).value_or(0);
  if (n == 0 || n > 4096) {
    problem = fmt::format("LISTEN_FDS='{}' is not a positive count of descriptors", count);
    return s;
  }
  std::vector<std::string> given = names.empty() ? std::vector<std::string>{} : split_names(names);
  for (unsigned i = 0; i < n; ++i) {
    const int fd = first_listen_fd + static_cast<int>(i);
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0) {
      problem = fmt::format("LISTEN_FDS={} but descriptor {} is not open", n, fd);
      s.fds.clear();
      return s;
    }
    ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    s.fds.push_back(fd);
    s.names.push_back(i < given.size() ? given[i] : "");
  }
  return s;
}

bool is_tcp_listener(int fd, std::string& problem) {
  int type = 0, listening = 0;
  socklen_t len = sizeof type;
  sockaddr_storage a{};
  socklen_t alen = sizeof a;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &alen) != 0) {
    problem = fmt::format("descriptor {} is not a socket", fd);
    return false;
  }
  if (type != SOCK_STREAM || (a.ss_family != AF_INET && a.ss_family != AF_INET6)) {
    problem = fmt::format("descriptor {} is not a TCP socket (ListenStream= takes a port or an address and port)", fd);
    return false;
  }
  len = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) {
    sockaddr_storage peer{};
    socklen_t plen = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) == 0)
      problem = fmt::format("descriptor {} is a connection, not a listening socket (use Accept=no)", fd);
    else
      problem = fmt::format("descriptor {} is a TCP socket that does not listen", fd);
    return false;
  }
  return true;
}

int select_inherited(const inherited_sockets& s, std::string_view service, unsigned port,
                     std::string& warning, std::string& problem) {
  if (s.fds.empty()) {
    problem = "no inherited socket";
    return -1;
  }
  int chosen = -1;
  if (service.empty() || service == "0") {
    chosen = s.fds.front();
  } else {
    for (std::size_t i = 0; i < s.fds.size() && chosen < 0; ++i)
      if (s.names[i] == service) chosen = s.fds[i];
    for (std::size_t i = 0; i < s.fds.size() && chosen < 0 && port; ++i)
      if (bound_port(s.fds[i]) == port) chosen = s.fds[i];
  }
  if (chosen < 0 && s.fds.size() == 1) {
    chosen = s.fds.front();
    warning = fmt::format("serving on the inherited socket (port {}), not on service '{}'", bound_port(chosen), service);
  }
  if (chosen < 0) {
    problem = fmt::format("none of the {} inherited sockets is named '{}' or bound to that port", s.fds.size(), service);
    return -1;
  }
  return is_tcp_listener(chosen, problem) ? chosen : -1;
}

std::string take_notify_socket() { return take_env("NOTIFY_SOCKET"); }

void notify(const std::string& socket, std::string_view message, std::error_code& ec) noexcept {
  ec.clear();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket.size() < 2 || (socket[0] != '/' && socket[0] != '@') || socket.size() >= sizeof addr.sun_path) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return;
  }
  std::memcpy(addr.sun_path, socket.data(), socket.size());
  if (socket[0] == '@') addr.sun_path[0] = '\0';  // an abstract socket
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket.size());
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ec = std::error_code(errno, std::system_category());
    return;
  }
  // Never waits: a manager that does not read costs the message, not the server's time.
  if (::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&addr), len) < 0)
    ec = std::error_code(errno, std::system_category());
  ::close(fd);
}

}  // namespace startup_server::detail
