// Creates the listener socket by hand so it is close-on-exec from the first instant.
#include "core/listener.hpp"

#include "core/sockopts.hpp"

#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <fmt/core.h>

namespace startup_server::detail {
namespace {

int fail(int fd, startup_condition& condition, startup_condition::phase stage, const char* verb,
         const bind_candidate& c) {
  condition.stage = stage;
  condition.code = std::error_code(errno, std::system_category());
  condition.context = fmt::format("unable to {} {}", verb, endpoint_text(reinterpret_cast<const sockaddr*>(&c.addr)));
  if (fd >= 0) ::close(fd);
  return -1;
}

// The kernel refused a socket option: the condition names it, the address and the reason.
int option_failed(int fd, startup_condition& condition, const std::string& option, const std::error_code& ec,
                  const bind_candidate& c) {
  condition.stage = startup_condition::phase::bind;
  condition.code = ec;
  condition.context = fmt::format("unable to set {} on {}", option, endpoint_text(reinterpret_cast<const sockaddr*>(&c.addr)));
  if (fd >= 0) ::close(fd);
  return -1;
}

}  // namespace

bool probe_accepted_options(int family, const server_options& o, startup_condition& condition) {
  if (!has_accepted_options(o.sockets)) return true;
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return true;  // nothing to try it on: the connections will tell
  std::string failed;
  std::error_code ec;
  const bool ok = apply_socket_options(fd, family, o.sockets, sockopt_target::accepted, nullptr, failed, ec);
  ::close(fd);
  if (!ok) {
    condition = {startup_condition::phase::bind, ec, fmt::format("unable to set {} on accepted sockets", failed)};
  }
  return ok;
}

int open_listener(const bind_candidate& c, const server_options& o, startup_condition& condition,
                  std::vector<socket_option_report>* reports) {
  int fd = ::socket(c.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
  if (fd < 0) return fail(fd, condition, startup_condition::phase::bind, "open a socket for", c);
  const int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
    return fail(fd, condition, startup_condition::phase::bind, "set SO_REUSEADDR on", c);
  if (o.reuseport && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    return fail(fd, condition, startup_condition::phase::bind, "set SO_REUSEPORT on", c);
  if (c.family == AF_INET6) {
    const int v6only = c.v6only ? 1 : 0;
    if (::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) != 0)
      return fail(fd, condition, startup_condition::phase::bind, "set IPV6_V6ONLY on", c);
  }
  std::string failed;
  std::error_code ec;
  if (!apply_socket_options(fd, c.family, o.sockets, sockopt_target::listener_before_bind, reports, failed, ec))
    return option_failed(fd, condition, failed, ec, c);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&c.addr), c.len) != 0)
    return fail(fd, condition, startup_condition::phase::bind, "bind to", c);
  if (!apply_socket_options(fd, c.family, o.sockets, sockopt_target::listener_before_listen, reports, failed, ec))
    return option_failed(fd, condition, failed, ec, c);
  if (::listen(fd, o.backlog) != 0) return fail(fd, condition, startup_condition::phase::listen, "listen on", c);
  condition = {};
  return fd;
}

int open_first_listener(const std::vector<bind_candidate>& candidates, const server_options& o,
                        startup_condition& condition, std::vector<socket_option_report>* reports) {
  startup_condition first;
  for (const auto& c : candidates) {
    startup_condition attempt;
    if (reports) reports->clear();
    int fd = open_listener(c, o, attempt, reports);
    if (fd >= 0) {
      condition = {};
      return fd;
    }
    if (!first) first = attempt;
  }
  condition = first;
  return -1;
}

}  // namespace startup_server::detail
