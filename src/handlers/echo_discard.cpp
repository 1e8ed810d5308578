// Echo and discard: a readiness fast path on plain TCP, the byte stream otherwise.
#include <asio/post.hpp>
#include <asio/write.hpp>
#include <cstring>
#include <memory>

#include "handlers/coroutine.hpp"
#include "handlers/table.hpp"

namespace startup_server::detail {
namespace {

constexpr std::size_t chunk_size = 64 * 1024;

// One read buffer per thread, shared by every connection on it: a connection borrows it
// only between waking up readable and handing its bytes on, never across a suspension.
char* thread_buffer() {
  static thread_local std::unique_ptr<char[]> buffer(new char[chunk_size]);
  return buffer.get();
}

bool would_block(const std::error_code& ec) {
  return ec == asio::error::would_block || ec == asio::error::try_again;
}

// The fast path, plain TCP only: callback state machines with no coroutine frame and no
// buffer while idle. Read what is there into the thread buffer without blocking; when
// nothing is, wait for readability. Echo sends each read straight back; discard drops it.
template <bool echo>
void on_readable(connection& c);

template <bool echo>
void wait_readable(connection& c) {
  c.plain.plain_socket()->async_wait(tcp::socket::wait_read, [&c](std::error_code ec) {
    if (ec) c.close();
    else on_readable<echo>(c);
  });
}

template <bool echo>
void on_readable(connection& c) {
  tcp::socket& socket = *c.plain.plain_socket();
  // A full buffer suggests more is waiting; a few rounds, then let others run.
  for (int round = 0; round < 4; ++round) {
    std::error_code ec;
    const std::size_t n = socket.read_some(asio::buffer(thread_buffer(), chunk_size), ec);
    if (would_block(ec)) return wait_readable<echo>(c);
    // EOF included: every byte went back already, and closing sends our FIN.
    if (ec) return c.close();
    c.plain.bytes_in += n;
    if (echo) {
      std::size_t sent = socket.write_some(asio::buffer(thread_buffer(), n), ec);
      if (would_block(ec)) sent = 0, ec.clear();
      if (ec) return c.close();
      c.plain.bytes_out += sent;
      if (sent < n) {
        // The client reads slower than it writes: keep only what it has not taken, and
        // read no more from it until that is gone (bounded memory, natural backpressure).
        const std::size_t rest = n - sent;
        c.pending.reset(new char[rest]);
        std::memcpy(c.pending.get(), thread_buffer() + sent, rest);
        asio::async_write(socket, asio::buffer(c.pending.get(), rest), [&c](std::error_code wec, std::size_t w) {
          c.plain.bytes_out += w;
          c.pending.reset();
          if (wec) c.close();
          else on_readable<echo>(c);
        });
        return;
      }
    }
    if (n < chunk_size) return wait_readable<echo>(c);
  }
  asio::post(socket.get_executor(), [&c] { on_readable<echo>(c); });
}

// Any other stream (a decorator in between): the same service through the seam.
asio::awaitable<void> through_stream(connection& c, bool echo) {
  byte_stream& stream = c.stream();
  std::unique_ptr<char[]> buffer(new char[chunk_size]);
  for (;;) {
    std::error_code ec;
    const std::size_t n = co_await stream.read_some(asio::buffer(buffer.get(), chunk_size), ec);
    if (ec) break;
    if (echo) co_await stream.write(asio::buffer(buffer.get(), n), ec);
    if (ec) break;
  }
}

template <bool echo>
void start(connection& c) {
  if (!c.plain_socket()) return spawn_handler(c, through_stream(c, echo));
  on_readable<echo>(c);  // a client often sends with its connect: try before waiting
}

}  // namespace

void start_echo(connection& c) { start<true>(c); }
void start_discard(connection& c) { start<false>(c); }

}  // namespace startup_server::detail
