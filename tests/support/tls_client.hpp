// A small blocking TLS client for the tests (OpenSSL over a loopback socket), every step bounded by a deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "support/net.hpp"

typedef struct ssl_st SSL;

namespace test_support {

using std::chrono::milliseconds;

// How a client connects. The server's certificate is not verified (the tests pin it by
// fingerprint instead).
struct tls_client_options {
  std::string certificate_file;  // the client's certificate, PEM (with key_file), or none
  std::string key_file;
  int min_version = 0;  // TLS1_2_VERSION, TLS1_3_VERSION…; 0 leaves OpenSSL's default
  int max_version = 0;
  milliseconds timeout{5000};  // for the TCP connect and the handshake together
  std::string preface;          // sent in clear before the handshake (a PROXY protocol header)
};

// What a read brought, and how it ended.
struct tls_read_result {
  std::string data;
  bool close_notify = false;  // the peer's close_notify arrived (SSL_ERROR_ZERO_RETURN)
  bool eof = false;           // the TCP connection ended without close_notify
  bool failed = false;        // a TLS alert or a socket error (the client's error() says which)
  bool timed_out = false;     // the deadline passed first
  // The peer has finished, cleanly or not.
  bool ended() const noexcept { return close_notify || eof || failed; }
};

// A TLS connection to 127.0.0.1. Not thread-safe. The destructor frees the connection and
// closes the socket without sending close_notify (as a client that just goes away). A
// write to a peer that has gone raises no SIGPIPE.
class tls_client {
 public:
  tls_client(tls_client&&) noexcept;
  tls_client& operator=(tls_client&&) noexcept;
  tls_client(const tls_client&) = delete;
  ~tls_client();

  // Connects and runs the handshake. With TLS 1.3 a server that refuses the client's
  // certificate may still let the handshake complete on the client's side: the refusal
  // then shows on the first read. nullopt with *error set (OpenSSL's reason, or the
  // connect's errno text) when either step fails.
  static std::optional<tls_client> connect(std::uint16_t port, const tls_client_options& options = {},
                                           std::string* error = nullptr);
  // As connect, throwing std::runtime_error with the reason.
  static tls_client connect_or_throw(std::uint16_t port, const tls_client_options& options = {});

  int fd() const noexcept { return tcp_.fd(); }

  // Writes all of data; false on error or when the deadline passes first.
  bool write_all(std::string_view data, milliseconds timeout = milliseconds(5000));
  // Reads until n bytes arrived, or the peer's close_notify / EOF, an error, or the deadline.
  tls_read_result read_exact(std::size_t n, milliseconds timeout = milliseconds(5000));
  // Reads until the peer's close_notify / EOF, an error, or the deadline.
  tls_read_result read_to_end(milliseconds timeout = milliseconds(5000));
  // Sends data while reading, so neither side's buffers can deadlock a large transfer.
  // Stops when `expect` bytes have been read, or at the end if expect is nullopt. With
  // close_after, sends one close_notify once everything is sent (and goes on reading).
  tls_read_result exchange(std::string_view data, std::optional<std::size_t> expect, bool close_after,
                           milliseconds timeout = milliseconds(10000));

  // One SSL_shutdown call: sends close_notify and does not wait for the peer's. Reading
  // may go on. False if it could not be sent.
  bool shutdown_send();
  // Closes the socket at once, without close_notify.
  void close() noexcept;

  // The negotiated protocol ("TLSv1.3") and cipher.
  std::string protocol() const;
  std::string cipher() const;
  // SHA-256 of the server's certificate, "AB:CD:…" (as `openssl x509 -fingerprint -sha256`).
  std::string peer_fingerprint() const;
  // The last failure in words: OpenSSL's reason (an alert the server sent) or errno's text.
  const std::string& error() const noexcept { return error_; }

 private:
  struct ssl_deleter {
    void operator()(SSL* s) const noexcept;
  };
  enum class step { progress, want_read, want_write, ended };
  tls_client(client tcp, SSL* ssl) noexcept;
  // One SSL_read of at most `limit` bytes into r.
  step read_step(tls_read_result& r, std::size_t limit);
  // Reads until n bytes (or, without n, the end), the end, or the timeout.
  tls_read_result read_up_to(std::optional<std::size_t> n, milliseconds timeout);
  // One SSL_write of data's start; the bytes taken go to `written`.
  step write_step(std::string_view data, std::size_t& written);
  // What SSL_get_error says of result `rc`; sets error_ (and r's end) when it is final.
  step classify(int rc, tls_read_result* r);

  client tcp_;
  std::unique_ptr<SSL, ssl_deleter> ssl_;
  std::string error_;
};

// The first flight of a TLS client (a ClientHello record), as a client would send it: for
// clients that stop halfway through.
std::string client_hello();

// SHA-256 of the certificate in a PEM file: "AB:CD:…" (uppercase, colons), and the lower
// case hex without colons (as SSL_PEER_CERT_HASH carries it). Empty if it cannot be read.
std::string certificate_fingerprint(const std::string& pem_file);
std::string certificate_sha256_hex(const std::string& pem_file);

}  // namespace test_support
