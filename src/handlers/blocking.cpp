// Connections served on threads of their own: the blocking-thread helper and handler::user.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <thread>

#include "core/resolve.hpp"
#include "handlers/blocking.hpp"
#include "handlers/table.hpp"
#include "startup_server/client.hpp"

namespace startup_server::detail {
namespace {

// The connection's thread: owned here, joined when the connection is freed (by then its
// body has returned and the thread's last act, posting the close, is done).
struct connection_thread final : handler_state {
  ~connection_thread() override {
    if (thread.joinable()) thread.join();
  }
  // Wakes a body blocked on the stream: its reads see EOF, its writes fail.
  void cut() noexcept override { ::shutdown(socket_fd, SHUT_RDWR); }

  std::thread thread;
  int socket_fd = -1;
};

stream_endpoints thread_endpoints(connection& c) {
  peer_identity& who = c.identity();
  const tcp::endpoint& local = local_endpoint(who, c.plain.plain_socket());
  return {numeric_host(local.data()), local.port(), numeric_host(who.remote.data()), who.remote.port()};
}

void run_blocking(connection& c, const char* what, const std::function<void(tcp_stream&)>& body, int fd,
                  stream_endpoints ends) {
  c.owner->adopt_thread();
  {
    tcp_stream stream(fd, std::move(ends));
    try {
      body(stream);
    } catch (const std::exception& e) {
      c.owner->warn(std::string(what) + ": " + e.what());
    } catch (...) {
      c.owner->warn(std::string(what) + ": an exception of unknown type");
    }
  }
  asio::post(c.plain.plain_socket()->get_executor(), [&c] { c.close(); });
}

}  // namespace

void start_blocking(connection& c, const char* what, std::function<void(tcp_stream&)> body) {
  tcp::socket* socket = c.plain_socket();
  if (!socket) {
    c.set_reason(std::string("refused: ") + what + " is served over plain TCP only");
    return c.close();
  }
  std::error_code ignored;
  socket->non_blocking(false, ignored);
  socket->native_non_blocking(false, ignored);  // the thread's reads and writes block
  // The thread's own descriptor: what it does with it (even closing it) cannot touch the
  // server's, which stays for the cut and the close.
  const int fd = ::fcntl(socket->native_handle(), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) {
    c.owner->resource_shortage(std::string(what) + ": " + std::strerror(errno));
    c.set_reason(std::string("refused: ") + std::strerror(errno));
    return c.close();
  }
  try {
    auto state = std::make_unique<connection_thread>();
    state->socket_fd = socket->native_handle();
    connection_thread& st = *state;
    c.state = std::move(state);
    st.thread = std::thread(run_blocking, std::ref(c), what, std::move(body), fd, thread_endpoints(c));
  } catch (const std::exception& e) {
    ::close(fd);
    c.owner->resource_shortage(std::string(what) + ": " + e.what());
    c.set_reason(std::string("refused: ") + e.what());
    c.close();
  }
}

void start_user_function(connection& c) {
  start_blocking(c, "connection function",
                 [&c](tcp_stream& stream) { c.owner->function()(c.owner->facade(), stream); });
}

}  // namespace startup_server::detail
