// --stdio: one connection at a time joined to the process's own stdin and stdout (nc -l's habit).
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "core/io.hpp"
#include "handlers/blocking.hpp"
#include "handlers/table.hpp"

namespace startup_server::detail {
namespace {

constexpr std::size_t chunk = 16 * 1024;

// Reads up to size bytes; 0 at EOF; -1 when nothing was there (a non-blocking stdin).
ssize_t read_some(int fd, char* buffer, std::size_t size) {
  for (;;) {
    const ssize_t n = ::read(fd, buffer, size);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
    return 0;  // an error ends that direction like EOF
  }
}

// What the client sends goes to stdout; what is typed goes to the client. EOF on stdin
// half-closes the connection; the client's close (or a cut) ends it.
void join_to_terminal(tcp_stream& stream) {
  const int socket = stream.native_handle();
  bool stdin_open = true;
  char buffer[chunk];
  for (;;) {
    pollfd fds[2] = {{socket, POLLIN, 0}, {stdin_open ? STDIN_FILENO : -1, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    std::error_code ec;
    if (fds[0].revents) {
      const ssize_t n = read_some(socket, buffer, sizeof buffer);
      if (n == 0) return;
      if (n > 0 && !write_all(STDOUT_FILENO, std::string_view(buffer, static_cast<std::size_t>(n)), ec)) return;
    }
    if (fds[1].revents) {
      const ssize_t n = read_some(STDIN_FILENO, buffer, sizeof buffer);
      if (n == 0) {
        stdin_open = false;
        ::shutdown(socket, SHUT_WR);
      } else if (n > 0 && !write_all(socket, std::string_view(buffer, static_cast<std::size_t>(n)), ec)) {
        return;
      }
    }
  }
}

}  // namespace

void start_stdio(connection& c) { start_blocking(c, "stdio", join_to_terminal); }

}  // namespace startup_server::detail
