// Plain TCP reads and writes, speculative first: a write that fits never waits.
#include "stream/plain_tcp.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

namespace startup_server::detail {
namespace {

constexpr auto as_tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

}  // namespace

const tcp::endpoint& local_endpoint(peer_identity& identity, tcp::socket* socket) noexcept {
  if (!identity.local_known && socket) {
    std::error_code ec;
    tcp::endpoint local = socket->local_endpoint(ec);
    if (!ec) {
      identity.local = local;
      identity.local_known = true;
    }
  }
  return identity.local;
}

asio::awaitable<std::size_t> plain_tcp::read_some(asio::mutable_buffer into, std::error_code& ec) {
  // No structured bindings over co_await: g++ 12 does not reliably keep them in the frame.
  auto result = co_await socket_.async_read_some(into, as_tuple_awaitable);
  ec = std::get<0>(result);
  bytes_in += std::get<1>(result);
  co_return std::get<1>(result);
}

asio::awaitable<std::size_t> plain_tcp::write(asio::const_buffer data, std::error_code& ec) {
  ec.clear();
  std::size_t sent = 0;
  if (socket_.non_blocking()) {
    sent = socket_.write_some(data, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) sent = 0, ec.clear();
    bytes_out += sent;
    if (ec || sent == data.size()) co_return sent;
  }
  auto result = co_await asio::async_write(socket_, asio::buffer(data + sent), as_tuple_awaitable);
  ec = std::get<0>(result);
  bytes_out += std::get<1>(result);
  co_return sent + std::get<1>(result);
}

void plain_tcp::shutdown_send() noexcept {
  std::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
}

void plain_tcp::cancel() noexcept {
  std::error_code ignored;
  socket_.cancel(ignored);
}

void plain_tcp::close() noexcept {
  std::error_code ignored;
  socket_.close(ignored);
}

}  // namespace startup_server::detail
