// Opening the listening socket with the requested socket options.
#pragma once

#include "core/resolve.hpp"
#include "startup_server/server.hpp"

namespace startup_server::detail {

// Creates a close-on-exec, non-blocking socket for c with SO_REUSEADDR (always),
// SO_REUSEPORT and IPV6_V6ONLY as asked and the listener's socket options (reported,
// requested and effective, into reports if given), binds and listens. Returns the
// descriptor, or -1 with condition set (stage bind or listen, context naming the address
// and port, and the socket option the kernel refused).
int open_listener(const bind_candidate& c, const server_options& o, startup_condition& condition,
                  std::vector<socket_option_report>* reports = nullptr);

// Tries the options meant for accepted sockets on a throw-away socket of `family`, so one
// the kernel refuses (a congestion algorithm that is not loaded) stops the start, not
// every connection. False with condition set.
bool probe_accepted_options(int family, const server_options& o, startup_condition& condition);

// Tries each candidate in order and keeps the first that binds; on failure the
// condition is the first candidate's (the one the user most likely meant).
int open_first_listener(const std::vector<bind_candidate>& candidates, const server_options& o,
                        startup_condition& condition, std::vector<socket_option_report>* reports = nullptr);

}  // namespace startup_server::detail
