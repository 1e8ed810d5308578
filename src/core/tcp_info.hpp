// The kernel's TCP_INFO for a connected socket, as the connection record carries it.
#pragma once

#include <optional>

#include "startup_server/events.hpp"

namespace startup_server::detail {

// nullopt if the socket is gone or the kernel will not say.
std::optional<tcp_info_snapshot> read_tcp_info(int fd) noexcept;

}  // namespace startup_server::detail
