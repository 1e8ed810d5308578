// systemd's two stable protocols, done in-tree: socket activation (LISTEN_FDS) and
// readiness notification (NOTIFY_SOCKET).
#pragma once

#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace startup_server::detail {

// The sockets a service manager passed, from fd 3 on.
struct inherited_sockets {
  bool present = false;            // LISTEN_FDS was set for this process
  std::vector<int> fds;            // 3, 4, ...
  std::vector<std::string> names;  // LISTEN_FDNAMES, one per fd ("" when not given)
};

// Reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, and unsets them (and LISTEN_PIDFDID)
// whatever they say, so no child sees them. The fds count only when LISTEN_PID is this
// process; they are made close-on-exec. An unusable LISTEN_FDS is a problem: present is
// true, fds empty, problem set.
inherited_sockets take_listen_fds(std::string& problem);

// Picks the socket to serve on: with `service` empty or "0", the first; else the one whose
// LISTEN_FDNAMES name is `service`, or failing that the one bound to that port (`port`, 0
// if the service is not a number). With one socket and no match it is served anyway and
// `warning` says so; with several, no match is an error (-1, problem set). Each candidate
// must be a listening TCP socket (IPv4 or IPv6).
int select_inherited(const inherited_sockets& s, std::string_view service, unsigned port,
                     std::string& warning, std::string& problem);

// Checks that fd is a listening TCP socket of IPv4 or IPv6; false with problem set.
bool is_tcp_listener(int fd, std::string& problem);

// Reads NOTIFY_SOCKET and unsets it. Empty when not set.
std::string take_notify_socket();

// Sends one datagram of KEY=VALUE lines to a notify socket ("/path" or "@abstract").
// Each call opens and closes its own socket, so no descriptor outlives it; it never
// waits (a full receive queue is an error, EAGAIN).
void notify(const std::string& socket, std::string_view message, std::error_code& ec) noexcept;

}  // namespace startup_server::detail
