// Blocking writes of a whole buffer: the one loop for sockets and pipes alike.
#pragma once

#include <string_view>
#include <system_error>

namespace startup_server::detail {

// Writes all of data to fd, going on after EINTR and short writes. A socket is written
// with MSG_NOSIGNAL, so a peer that has gone is EPIPE, never SIGPIPE. False with ec set on
// failure (what was written before stays written).
bool write_all(int fd, std::string_view data, std::error_code& ec) noexcept;

}  // namespace startup_server::detail
