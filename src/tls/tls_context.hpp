// The server's TLS configuration: one OpenSSL context, made once at start and shared by every connection.
#pragma once

#include <memory>
#include <string>

#include "startup_server/options.hpp"

typedef struct ssl_ctx_st SSL_CTX;

namespace startup_server::detail {

class tls_context {
 public:
  // Loads the certificate chain and key (or makes a throw-away self-signed certificate when
  // neither file is given) and the client CA. nullptr with problem set, naming the file and
  // OpenSSL's reason, when something cannot be loaded.
  static std::unique_ptr<tls_context> make(const tls_options& o, std::string& problem);
  ~tls_context();
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;

  SSL_CTX* native() const noexcept { return ctx_; }
  // SHA-256 of the server's certificate, "AB:CD:…" as `openssl x509 -fingerprint -sha256` prints it.
  const std::string& fingerprint() const noexcept { return fingerprint_; }
  bool self_signed() const noexcept { return self_signed_; }
  std::chrono::milliseconds handshake_timeout() const noexcept { return handshake_timeout_; }

 private:
  tls_context() = default;
  SSL_CTX* ctx_ = nullptr;
  std::string fingerprint_;
  bool self_signed_ = false;
  std::chrono::milliseconds handshake_timeout_{10000};
};

// The text of OpenSSL's oldest queued error (and clears the queue); `fallback` if none.
std::string openssl_reason(const char* fallback = "unknown TLS error");

}  // namespace startup_server::detail
