// The byte-stream seam: how handlers read and write a connection, whatever carries its bytes.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <cstdint>
#include <optional>
#include <system_error>

namespace startup_server::detail {

using tcp = asio::ip::tcp;

// Who is on each end of a connection, as the handlers, the log and exec children see it.
// The remote end is filled at accept; the local end too when the listener has a specific
// address, else on first use (one getsockname). Admission may rewrite both (a PROXY
// protocol header names the real client).
struct peer_identity {
  tcp::endpoint remote;
  tcp::endpoint local;
  bool local_known = false;
  // Set once a PROXY protocol header has been read: the TCP peer that sent it (the proxy
  // or load balancer). remote and local then name the client and the address it reached,
  // as the header said; a LOCAL or UNKNOWN header leaves them the real endpoints.
  std::optional<tcp::endpoint> proxy;
  std::uint8_t proxy_version = 0;  // 1 or 2, with proxy
  bool proxy_local = false;        // a v2 LOCAL header (the proxy's own connection, a health check)
};

// One connection's bytes, owned by the connection and used on its thread only. Plain TCP
// is the first implementation; decorators (TLS, a traffic trace, an idle timer) wrap
// another stream and forward to it. Errors are events: EOF is asio::error::eof from
// read_some, a reset or a cancel an error code, never an exception.
class byte_stream {
 public:
  virtual ~byte_stream() = default;

  // Reads at least one byte into `into` (the caller keeps it alive until resumed).
  virtual asio::awaitable<std::size_t> read_some(asio::mutable_buffer into, std::error_code& ec) = 0;
  // Writes all of data (kept alive by the caller until resumed); returns what was written.
  virtual asio::awaitable<std::size_t> write(asio::const_buffer data, std::error_code& ec) = 0;
  // No more bytes will be sent: the peer reads EOF once what was written has arrived.
  virtual void shutdown_send() noexcept = 0;
  // Ends the pending read and write with asio::error::operation_aborted.
  virtual void cancel() noexcept = 0;
  virtual void close() noexcept = 0;

  // Plain TCP only, else null: the socket itself, for the echo/discard readiness fast path
  // and for handing the descriptor to an exec child.
  virtual tcp::socket* plain_socket() noexcept { return nullptr; }
  // Who is on each end (see peer_identity).
  virtual peer_identity& identity() noexcept = 0;

  std::uint64_t bytes_in = 0;   // application bytes from the client
  std::uint64_t bytes_out = 0;  // application bytes to the client
};

// The local endpoint of `identity`, asking the socket the first time if need be.
const tcp::endpoint& local_endpoint(peer_identity& identity, tcp::socket* socket) noexcept;

}  // namespace startup_server::detail
