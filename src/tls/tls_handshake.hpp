// The TLS handshake as the last admission step: a client that cannot finish it never reaches a handler.
#pragma once

#include "server/admission.hpp"

namespace startup_server::detail {

// Runs the handshake of c's TLS stream (none: admitted as is). Refusals name the cause:
// "tls: handshake timed out", "tls: the client closed during the handshake",
// "tls: handshake failed: <OpenSSL's reason>"; ended from outside: "cut: the server
// stopped", "idle" (an idle timeout shorter than the handshake's).
class tls_handshake_step final : public admission_step {
 public:
  asio::awaitable<admission_verdict> admit(connection& c) override;
};

}  // namespace startup_server::detail
