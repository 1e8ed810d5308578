// Handshake failures become refusals with a reason for the connection log.
#include "tls/tls_handshake.hpp"

#include <asio/error.hpp>

#include "tls/tls_stream.hpp"

namespace startup_server::detail {

asio::awaitable<admission_verdict> tls_handshake_step::admit(connection& c) {
  if (!c.tls) co_return admission_verdict{};
  std::error_code ec;
  co_await c.tls->handshake(ec);
  if (!ec) co_return admission_verdict{};
  if (ec == asio::error::timed_out) co_return admission_verdict{false, "tls: handshake timed out"};
  // Ended from outside: the server stopping, or --idle-timeout shorter than the handshake's.
  if (c.cut) co_return admission_verdict{false, "cut: the server stopped"};
  if (!c.plain.plain_socket()->is_open()) co_return admission_verdict{false, "idle"};
  if (ec == asio::error::eof || ec == asio::error::connection_reset)
    co_return admission_verdict{false, "tls: the client closed during the handshake"};
  co_return admission_verdict{false, "tls: handshake failed: " + ec.message()};
}

}  // namespace startup_server::detail
