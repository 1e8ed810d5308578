// Connections served on threads of their own: the blocking-thread helper and handler::user.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>

#include "core/resolve.hpp"
#include "handlers/blocking.hpp"
#include "handlers/coroutine.hpp"
#include "handlers/table.hpp"
#include "startup_server/client.hpp"

namespace startup_server::detail {
namespace {

constexpr std::size_t bridge_chunk = 64 * 1024;

// The connection's thread: owned here, joined when the connection is freed (by then its
// body has returned and the thread's last act, posting that it is done, is over).
struct connection_thread final : handler_state {
  ~connection_thread() override {
    if (thread.joinable()) thread.join();
  }
  // Wakes a body blocked on the stream: its reads see EOF, its writes fail.
  void cut() noexcept override { ::shutdown(socket_fd, SHUT_RDWR); }

  std::thread thread;
  int socket_fd = -1;  // the socket the thread's descriptor refers to (or its bridge's end)

  // With a decorated stream (TLS) the thread reads and writes one end of a socket pair,
  // and the server's end is relayed to the stream on the connection's thread.
  struct bridge_state {
    asio::posix::stream_descriptor end;  // the server's end of the pair
    asio::steady_timer wake;             // cancelled when the thread or the inward relay is done
    bool thread_done = false;
    bool inward_done = false;
    bool failed = false;
  };
  std::optional<bridge_state> bridge;
};

stream_endpoints thread_endpoints(connection& c) {
  peer_identity& who = c.identity();
  const tcp::endpoint& local = local_endpoint(who, c.plain.plain_socket());
  return {numeric_host(local.data()), local.port(), numeric_host(who.remote.data()), who.remote.port()};
}

void run_blocking(connection& c, connection_thread& st, const char* what,
                  const std::function<void(tcp_stream&)>& body, int fd, stream_endpoints ends) {
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
  if (!st.bridge) return asio::post(c.plain.plain_socket()->get_executor(), [&c] { c.close(); });
  asio::post(c.plain.plain_socket()->get_executor(), [&st] {
    st.bridge->thread_done = true;
    st.bridge->wake.cancel();
  });
}

// Ends both directions of a bridge: the thread sees EOF or a failed write, the stream's
// pending read or write is cancelled.
void fail_bridge(connection& c, connection_thread::bridge_state& b) {
  b.failed = true;
  ::shutdown(b.end.native_handle(), SHUT_RDWR);
  c.stream().cancel();
}

// Client → thread. The client's EOF becomes the thread's (a half-close of the pair).
asio::awaitable<void> bridge_in(connection& c, connection_thread::bridge_state& b) {
  std::unique_ptr<char[]> buf(new char[bridge_chunk]);
  for (;;) {
    std::error_code ec;
    const std::size_t n = co_await c.stream().read_some(asio::buffer(buf.get(), bridge_chunk), ec);
    if (ec) {
      if (ec != asio::error::eof && ec != asio::error::operation_aborted) fail_bridge(c, b);
      break;
    }
    auto written = co_await asio::async_write(b.end, asio::buffer(buf.get(), n), as_tuple_awaitable);
    if (std::get<0>(written)) break;  // the thread no longer reads
  }
  ::shutdown(b.end.native_handle(), SHUT_WR);
}

// Thread → client. The thread's half-close or close becomes the stream's (close_notify on
// TLS); a client that no longer takes bytes ends the bridge.
asio::awaitable<void> bridge_out(connection& c, connection_thread::bridge_state& b) {
  std::unique_ptr<char[]> buf(new char[bridge_chunk]);
  for (;;) {
    auto read = co_await b.end.async_read_some(asio::buffer(buf.get(), bridge_chunk), as_tuple_awaitable);
    if (std::get<0>(read)) break;
    std::error_code ec;
    co_await c.stream().write(asio::buffer(buf.get(), std::get<1>(read)), ec);
    if (ec) {
      fail_bridge(c, b);
      co_return;
    }
  }
  if (!b.failed) c.stream().shutdown_send();
}

// Runs until the thread is done and both directions are over; the connection closes then.
asio::awaitable<void> run_bridge(connection& c, connection_thread::bridge_state& b) {
  auto executor = co_await asio::this_coro::executor;
  asio::co_spawn(executor, bridge_in(c, b), [&b](std::exception_ptr) {
    b.inward_done = true;
    b.wake.cancel();
  });
  co_await bridge_out(c, b);
  // The thread closed its end (or half-closed it and still reads): wait for its body.
  while (!b.thread_done) {
    b.wake.expires_at(asio::steady_timer::time_point::max());
    co_await b.wake.async_wait(as_tuple_awaitable);
  }
  if (!b.inward_done) c.stream().cancel();  // a client that keeps the connection open
  while (!b.inward_done) {
    b.wake.expires_at(asio::steady_timer::time_point::max());
    co_await b.wake.async_wait(as_tuple_awaitable);
  }
}

void refuse_for_shortage(connection& c, const char* what, const std::string& why) {
  c.owner->resource_shortage(std::string(what) + ": " + why);
  c.set_reason("refused: " + why);
  c.close();
}

// A decorated connection: the thread gets one end of a socket pair, bridged to the stream.
void start_bridged(connection& c, const char* what, std::function<void(tcp_stream&)> body) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    return refuse_for_shortage(c, what, std::strerror(errno));
  connection_thread::bridge_state* bridge = nullptr;
  try {
    auto executor = c.plain.plain_socket()->get_executor();
    auto state = std::make_unique<connection_thread>();
    connection_thread& st = *state;
    st.bridge.emplace(connection_thread::bridge_state{asio::posix::stream_descriptor(executor),
                                                     asio::steady_timer(executor)});
    st.bridge->end.assign(pair[1]);
    pair[1] = -1;  // the bridge owns it now
    st.socket_fd = st.bridge->end.native_handle();
    c.state = std::move(state);
    st.thread = std::thread(run_blocking, std::ref(c), std::ref(st), what, std::move(body), pair[0], thread_endpoints(c));
    bridge = &*st.bridge;
  } catch (const std::exception& e) {
    ::close(pair[0]);
    if (pair[1] >= 0) ::close(pair[1]);
    return refuse_for_shortage(c, what, e.what());
  }
  spawn_handler(c, run_bridge(c, *bridge));
}

}  // namespace

void start_blocking(connection& c, const char* what, std::function<void(tcp_stream&)> body) {
  tcp::socket* socket = c.plain_socket();
  if (!socket) return start_bridged(c, what, std::move(body));
  std::error_code ignored;
  socket->non_blocking(false, ignored);
  socket->native_non_blocking(false, ignored);  // the thread's reads and writes block
  // The thread's own descriptor: what it does with it (even closing it) cannot touch the
  // server's, which stays for the cut and the close.
  const int fd = ::fcntl(socket->native_handle(), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return refuse_for_shortage(c, what, std::strerror(errno));
  try {
    auto state = std::make_unique<connection_thread>();
    state->socket_fd = socket->native_handle();
    connection_thread& st = *state;
    c.state = std::move(state);
    st.thread = std::thread(run_blocking, std::ref(c), std::ref(st), what, std::move(body), fd, thread_endpoints(c));
  } catch (const std::exception& e) {
    ::close(fd);
    refuse_for_shortage(c, what, e.what());
  }
}

void start_user_function(connection& c) {
  start_blocking(c, "connection function",
                 [&c](tcp_stream& stream) { c.owner->function()(c.owner->facade(), stream); });
}

}  // namespace startup_server::detail
