// Plain TCP: the byte stream straight over the accepted socket.
#pragma once

#include "stream/byte_stream.hpp"

namespace startup_server::detail {

// Writes go out at once as far as the socket takes them (no wait when there is room),
// then the rest asynchronously from the caller's buffer: nothing is copied.
class plain_tcp final : public byte_stream {
 public:
  explicit plain_tcp(tcp::socket socket) noexcept : socket_(std::move(socket)) {}

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer into, std::error_code& ec) override;
  asio::awaitable<std::size_t> write(asio::const_buffer data, std::error_code& ec) override;
  void shutdown_send() noexcept override;
  void cancel() noexcept override;
  void close() noexcept override;
  tcp::socket* plain_socket() noexcept override { return &socket_; }
  peer_identity& identity() noexcept override { return identity_; }

 private:
  tcp::socket socket_;
  peer_identity identity_;
};

}  // namespace startup_server::detail
