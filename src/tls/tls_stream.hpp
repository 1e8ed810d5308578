// TLS on the byte-stream seam: OpenSSL driven straight on the accepted socket's descriptor.
#pragma once

#include <asio/steady_timer.hpp>
#include <memory>
#include <string>
#include <vector>

#include "stream/decorator.hpp"
#include "stream/plain_tcp.hpp"

typedef struct ssl_st SSL;

namespace startup_server::detail {

class tls_context;

// What the handshake settled, for exec children (s6-networking's names) and the log.
struct tls_session_info {
  std::string protocol;      // SSL_PROTOCOL: "TLSv1.3"
  std::string cipher;        // SSL_CIPHER: "TLS_AES_256_GCM_SHA384"
  std::string peer_subject;  // SSL_PEER_CERT_SUBJECT: "/CN=client" (with a client certificate)
  std::string peer_hash;     // SSL_PEER_CERT_HASH: "SHA256:<hex of the DER>"
};

// OpenSSL reads and writes the non-blocking socket itself (no copy through a memory BIO);
// Asio only says when the socket is ready. Records are not shared between threads: the
// stream lives on its connection's thread like the plain one.
//
// Closing: shutdown_send sends one close_notify and then the TCP FIN, and reading goes on
// (TLS 1.3 half-close; a TLS 1.2 peer answers with its own close_notify and stops sending).
// close() sends close_notify if it was not sent yet and never waits for the peer's. A
// peer that closes TCP without close_notify reads as EOF (truncated() tells it apart).
class tls_stream final : public decorator {
 public:
  tls_stream(plain_tcp& plain, const tls_context& context);
  ~tls_stream() override;

  // Runs the server side of the handshake, bounded by the context's timeout. On failure ec
  // says why (asio::error::timed_out for the timeout, eof when the client left first).
  asio::awaitable<void> handshake(std::error_code& ec);
  const tls_session_info& session() const noexcept { return info_; }
  // The connection is over: close_notify, if not sent yet (the socket stays open).
  void end_session() noexcept { send_close_notify(); }
  bool truncated() const noexcept { return truncated_; }

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer into, std::error_code& ec) override;
  asio::awaitable<std::size_t> write(asio::const_buffer data, std::error_code& ec) override;
  void shutdown_send() noexcept override;
  void cancel() noexcept override;
  void close() noexcept override;

 private:
  // Waits for what OpenSSL wants after a call returned `result`; false with ec set when
  // the call failed for good.
  asio::awaitable<bool> wait_for(int result, std::error_code& ec);
  void send_close_notify() noexcept;
  bool usable(std::error_code& ec) const noexcept;

  tcp::socket& socket_;
  SSL* ssl_ = nullptr;
  std::chrono::milliseconds handshake_timeout_;
  tls_session_info info_;
  bool established_ = false;
  bool close_notify_sent_ = false;
  bool truncated_ = false;
  bool failed_ = false;  // a fatal TLS or socket error: no close_notify after it
};

// The TLS error category: values are OpenSSL's packed error codes.
const std::error_category& tls_category() noexcept;

// SSL_PROTOCOL, SSL_CIPHER and, with a client certificate, SSL_PEER_CERT_SUBJECT and
// SSL_PEER_CERT_HASH, appended to env.
void append_tls_environment(const tls_session_info& info, std::vector<std::string>& env);

}  // namespace startup_server::detail
