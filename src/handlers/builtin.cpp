// The built-in handlers: echo, talk, discard, chargen, daytime.
#include <time.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <cstring>
#include <memory>

#include "handlers/connection.hpp"
#include "handlers/talk_transform.hpp"

namespace startup_server::detail {
namespace {

constexpr auto as_tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);
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

// Waits until readable, then reads what is there into the thread buffer without
// blocking. Returns the count (0 at EOF) or nothing when the connection is over.
asio::awaitable<std::optional<std::size_t>> read_ready(connection& c, std::size_t limit = chunk_size) {
  for (;;) {
    auto wait_ec_result = co_await c.socket.async_wait(tcp::socket::wait_read, as_tuple_awaitable);
    const auto wait_ec = std::get<0>(wait_ec_result);
    if (wait_ec) co_return std::nullopt;
    std::error_code ec;
    std::size_t n = c.socket.read_some(asio::buffer(thread_buffer(), limit), ec);
    if (would_block(ec)) continue;
    if (ec == asio::error::eof) co_return 0;
    if (ec) co_return std::nullopt;
    c.bytes_in += n;
    co_return n;
  }
}

// Sends data, writing at once what the socket takes and copying only the rest (what a
// slow reader left) to a buffer owned by this connection while it drains.
asio::awaitable<bool> send(connection& c, const char* data, std::size_t size) {
  std::error_code ec;
  std::size_t sent = c.socket.write_some(asio::buffer(data, size), ec);
  if (would_block(ec)) sent = 0, ec.clear();
  if (ec) co_return false;
  c.bytes_out += sent;
  if (sent == size) co_return true;
  std::unique_ptr<char[]> rest(new char[size - sent]);
  std::memcpy(rest.get(), data + sent, size - sent);
  auto write_ec_n_result = co_await asio::async_write(c.socket, asio::buffer(rest.get(), size - sent), as_tuple_awaitable);
  const auto write_ec = std::get<0>(write_ec_n_result);
  const auto n = std::get<1>(write_ec_n_result);
  c.bytes_out += n;
  co_return !write_ec;
}

void finish_sending(connection& c) {
  std::error_code ignored;
  c.socket.shutdown(tcp::socket::shutdown_send, ignored);
}

// Echo and discard: read what is there into the thread buffer without blocking; when
// nothing is, wait for readability (no buffer is held while waiting). Echo sends each
// read straight back; discard drops it.
template <bool echo>
void on_readable(connection& c);

template <bool echo>
void wait_readable(connection& c) {
  c.socket.async_wait(tcp::socket::wait_read, [&c](std::error_code ec) {
    if (ec) c.close();
    else on_readable<echo>(c);
  });
}

template <bool echo>
void on_readable(connection& c) {
  // A full buffer suggests more is waiting; a few rounds, then let others run.
  for (int round = 0; round < 4; ++round) {
    std::error_code ec;
    const std::size_t n = c.socket.read_some(asio::buffer(thread_buffer(), chunk_size), ec);
    if (would_block(ec)) return wait_readable<echo>(c);
    // EOF included: every byte went back already, and closing sends our FIN.
    if (ec) return c.close();
    c.bytes_in += n;
    if (echo) {
      std::size_t sent = c.socket.write_some(asio::buffer(thread_buffer(), n), ec);
      if (would_block(ec)) sent = 0, ec.clear();
      if (ec) return c.close();
      c.bytes_out += sent;
      if (sent < n) {
        // The client reads slower than it writes: keep only what it has not taken, and
        // read no more from it until that is gone (bounded memory, natural backpressure).
        const std::size_t rest = n - sent;
        c.pending.reset(new char[rest]);
        std::memcpy(c.pending.get(), thread_buffer() + sent, rest);
        asio::async_write(c.socket, asio::buffer(c.pending.get(), rest), [&c](std::error_code wec, std::size_t w) {
          c.bytes_out += w;
          c.pending.reset();
          if (wec) c.close();
          else on_readable<echo>(c);
        });
        return;
      }
    }
    if (n < chunk_size) return wait_readable<echo>(c);
  }
  asio::post(c.socket.get_executor(), [&c] { on_readable<echo>(c); });
}

// RFC 864's 95 printable characters in 72-column lines, each starting one further on.
const std::string& chargen_block() {
  static const std::string block = [] {
    std::string b;
    for (int line = 0; line < 95; ++line) {
      for (int i = 0; i < 72; ++i) b.push_back(static_cast<char>(' ' + (line + i) % 95));
      b += "\r\n";
    }
    return b;
  }();
  return block;
}

}  // namespace

void start_echo(connection& c) {
  c.socket.non_blocking(true);
  on_readable<true>(c);  // a client often sends with its connect: try before waiting
}

void start_discard(connection& c) {
  c.socket.non_blocking(true);
  on_readable<false>(c);
}

asio::awaitable<void> serve_talk(connection& c) {
  c.socket.non_blocking(true);
  talk_transform talk;
  std::string out;
  for (;;) {
    // Small reads bound the reply (at most 13 bytes out per byte in).
    auto n = co_await read_ready(c, 4096);
    if (!n) co_return;
    out.clear();
    if (*n == 0) {
      talk.end(out);
      if (!out.empty() && !co_await send(c, out.data(), out.size())) co_return;
      break;
    }
    talk.feed(thread_buffer(), *n, out);
    if (!out.empty() && !co_await send(c, out.data(), out.size())) co_return;
    if (out.capacity() > 2 * chunk_size) std::string().swap(out);
  }
  finish_sending(c);
}

asio::awaitable<void> serve_chargen(connection& c) {
  // Input is ignored (RFC 864); the stream ends when the client goes away.
  const std::string& block = chargen_block();
  for (;;) {
    auto ec_n_result = co_await asio::async_write(c.socket, asio::buffer(block), as_tuple_awaitable);
    const auto ec = std::get<0>(ec_n_result);
    const auto n = std::get<1>(ec_n_result);
    c.bytes_out += n;
    if (ec) co_return;
  }
}

asio::awaitable<void> serve_daytime(connection& c) {
  // RFC 867's suggested form: "Weekday, Month Day, Year Time-Zone".
  char text[128];
  const time_t now = ::time(nullptr);
  tm local{};
  ::localtime_r(&now, &local);
  std::size_t len = ::strftime(text, sizeof text, "%A, %B %-d, %Y %H:%M:%S-%Z\r\n", &local);
  auto ec_n_result = co_await asio::async_write(c.socket, asio::buffer(text, len), as_tuple_awaitable);
  const auto ec = std::get<0>(ec_n_result);
  const auto n = std::get<1>(ec_n_result);
  c.bytes_out += n;
  if (!ec) finish_sending(c);
}

}  // namespace startup_server::detail
