// write_all: send(MSG_NOSIGNAL) while the descriptor is a socket, write(2) otherwise.
#include "core/io.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace startup_server::detail {

bool write_all(int fd, std::string_view data, std::error_code& ec) noexcept {
  ec.clear();
  bool socket = true;
  while (!data.empty()) {
    ssize_t n = socket ? ::send(fd, data.data(), data.size(), MSG_NOSIGNAL) : ::write(fd, data.data(), data.size());
    if (n < 0 && errno == ENOTSOCK && socket) {
      socket = false;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ec = std::error_code(errno, std::system_category());
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace startup_server::detail
