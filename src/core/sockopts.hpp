// Socket options in one place: a table from each option to its level, name and socket, applied and read back.
#pragma once

#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "startup_server/events.hpp"
#include "startup_server/options.hpp"

namespace startup_server::detail {

// Which socket an option goes on.
enum class sockopt_target {
  listener_before_bind,  // belongs to the listener, or must precede bind (device, freebind, transparent)
  listener_before_listen,  // accepted sockets inherit it from the listener (buffers, MSS)
  accepted,              // set on every accepted socket
};

// Sets every option of `o` meant for `target` on fd (of `family`), then reads each back.
// Appends one report per option set. False at the first option the kernel refuses, with
// `failed` naming it ("TCP_CONGESTION=bbr") and ec the system's reason.
bool apply_socket_options(int fd, int family, const socket_options& o, sockopt_target target,
                          std::vector<socket_option_report>* reports, std::string& failed, std::error_code& ec);

// True if `o` has anything for accepted sockets (so the accept path can skip the work).
bool has_accepted_options(const socket_options& o) noexcept;

// The generic form, "LEVEL:NAME=VALUE": LEVEL socket, ip, ipv6, tcp or a number; NAME a
// symbolic name of that level (SO_…, IP_…, IPV6_…, TCP_…) or a number; VALUE an integer
// (4 bytes, native order) or 0x… bytes. nullopt-like false with problem set.
bool parse_raw_socket_option(std::string_view text, raw_socket_option& out, std::string& problem);

}  // namespace startup_server::detail
