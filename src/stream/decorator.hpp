// A byte stream that wraps another and forwards to it: the base of TLS, the trace, the idle timer.
#pragma once

#include <memory>

#include "stream/byte_stream.hpp"

namespace startup_server::detail {

// Forwards every operation to the stream it wraps and counts what passes. A decorator over
// another decorator owns it; over the connection's plain stream it only refers to it.
class decorator : public byte_stream {
 public:
  explicit decorator(byte_stream& plain) noexcept : inner_(plain) {}
  explicit decorator(std::unique_ptr<byte_stream> inner) noexcept : inner_(*inner), owned_(std::move(inner)) {}

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer into, std::error_code& ec) override {
    const std::size_t n = co_await inner_.read_some(into, ec);
    bytes_in += n;
    co_return n;
  }
  asio::awaitable<std::size_t> write(asio::const_buffer data, std::error_code& ec) override {
    const std::size_t n = co_await inner_.write(data, ec);
    bytes_out += n;
    co_return n;
  }
  void shutdown_send() noexcept override { inner_.shutdown_send(); }
  void cancel() noexcept override { inner_.cancel(); }
  void close() noexcept override { inner_.close(); }
  // Who is on each end is the innermost stream's to know (admission may rewrite it there).
  peer_identity& identity() noexcept override { return inner_.identity(); }

 protected:
  byte_stream& inner_;

 private:
  std::unique_ptr<byte_stream> owned_;
};

}  // namespace startup_server::detail
