// The test TLS client: OpenSSL on a non-blocking socket, with poll(2) against a deadline between calls.
#include "support/tls_client.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace test_support {
namespace {

using steady = std::chrono::steady_clock;
constexpr std::size_t chunk = 64 * 1024;
// No loop runs more often than this, whatever the deadline says.
constexpr int max_rounds = 1000000;

int left_ms(steady::time_point deadline) {
  const auto now = steady::now();
  if (now >= deadline) return 0;
  return static_cast<int>(std::chrono::ceil<milliseconds>(deadline - now).count());
}

// Waits until fd has one of `events` or the deadline passes; false on the deadline.
bool wait_for(int fd, short events, steady::time_point deadline) {
  for (int round = 0; round < 1000; ++round) {
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, left_ms(deadline));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return true;  // the next call reports the socket's error
  }
  return false;
}

// OpenSSL writes with write(2): a peer that has gone would raise SIGPIPE and end the test
// run. The signal is blocked around each call and a pending one taken away afterwards.
class sigpipe_guard {
 public:
  sigpipe_guard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    ::sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    ::pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~sigpipe_guard() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      ::sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{0, 0};
        ::sigtimedwait(&pipe_, nullptr, &zero);
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;

 private:
  sigset_t pipe_, old_;
  bool was_pending_ = false;
};

// OpenSSL's oldest queued error in words (the queue is cleared).
std::string openssl_error(const char* fallback) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return fallback;
  const char* reason = ERR_reason_error_string(e);
  if (reason) return reason;
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  return text;
}

std::string colon_hex(const unsigned char* md, unsigned len, bool colons) {
  static const char upper[] = "0123456789ABCDEF", lower[] = "0123456789abcdef";
  const char* digits = colons ? upper : lower;
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    if (colons && i) out += ':';
    out += digits[md[i] >> 4];
    out += digits[md[i] & 0xf];
  }
  return out;
}

std::string digest_of(X509* cert, bool colons) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (!cert || X509_digest(cert, EVP_sha256(), md, &len) != 1) return {};
  return colon_hex(md, len, colons);
}

std::string file_digest(const std::string& pem_file, bool colons) {
  BIO* in = BIO_new_file(pem_file.c_str(), "r");
  if (!in) return {};
  X509* cert = PEM_read_bio_X509(in, nullptr, nullptr, nullptr);
  BIO_free(in);
  std::string out = digest_of(cert, colons);
  X509_free(cert);
  ERR_clear_error();
  return out;
}

// A context per connection keeps the options simple; the tests make a few hundred
// connections at most.
SSL_CTX* make_context(const tls_client_options& o, std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    error = openssl_error("SSL_CTX_new failed");
    return nullptr;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  // Partial writes: a large write returns record by record, and a retry may come from a
  // moved buffer (the same bytes).
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  bool ok = true;
  if (o.min_version) ok = ok && SSL_CTX_set_min_proto_version(ctx, o.min_version) == 1;
  if (o.max_version) ok = ok && SSL_CTX_set_max_proto_version(ctx, o.max_version) == 1;
  if (ok && !o.certificate_file.empty()) {
    ok = SSL_CTX_use_certificate_chain_file(ctx, o.certificate_file.c_str()) == 1 &&
         SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) == 1;
  }
  if (!ok) {
    error = openssl_error("unable to set up the client context");
    SSL_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

}  // namespace

void tls_client::ssl_deleter::operator()(SSL* s) const noexcept { SSL_free(s); }

tls_client::tls_client(client tcp, SSL* ssl) noexcept : tcp_(std::move(tcp)), ssl_(ssl) {}
tls_client::tls_client(tls_client&&) noexcept = default;
tls_client& tls_client::operator=(tls_client&&) noexcept = default;
tls_client::~tls_client() { close(); }

void tls_client::close() noexcept {
  ssl_.reset();  // no SSL_shutdown: nothing is sent
  tcp_.close();
}

std::optional<tls_client> tls_client::connect(std::uint16_t port, const tls_client_options& o, std::string* error) {
  std::string dummy;
  std::string& err = error ? *error : dummy;
  const auto deadline = steady::now() + o.timeout;
  int connect_error = 0;
  auto tcp = client::connect(port, o.timeout, "127.0.0.1", &connect_error);
  if (!tcp) {
    err = std::string("connect: ") + std::strerror(connect_error);
    return std::nullopt;
  }
  if (!o.preface.empty() && !tcp->send_all(o.preface, o.timeout)) {
    err = "sending the preface failed";
    return std::nullopt;
  }
  SSL_CTX* ctx = make_context(o, err);
  if (!ctx) return std::nullopt;
  SSL* ssl = SSL_new(ctx);
  SSL_CTX_free(ctx);  // the connection holds its own reference
  if (!ssl) {
    err = openssl_error("SSL_new failed");
    return std::nullopt;
  }
  tls_client c(std::move(*tcp), ssl);
  SSL_set_fd(ssl, c.fd());
  SSL_set_tlsext_host_name(ssl, "localhost");
  for (int round = 0; round < max_rounds; ++round) {
    int rc;
    {
      sigpipe_guard guard;
      ERR_clear_error();
      errno = 0;
      rc = SSL_connect(ssl);
    }
    if (rc == 1) return c;
    const step s = c.classify(rc, nullptr);
    if (s == step::ended) break;
    if (!wait_for(c.fd(), s == step::want_write ? POLLOUT : POLLIN, deadline)) {
      c.error_ = "handshake timed out";
      break;
    }
  }
  err = c.error_.empty() ? "handshake failed" : c.error_;
  return std::nullopt;
}

tls_client tls_client::connect_or_throw(std::uint16_t port, const tls_client_options& options) {
  std::string error;
  auto c = connect(port, options, &error);
  if (!c) throw std::runtime_error("TLS connect to 127.0.0.1:" + std::to_string(port) + ": " + error);
  return std::move(*c);
}

tls_client::step tls_client::classify(int rc, tls_read_result* r) {
  const int saved_errno = errno;
  switch (SSL_get_error(ssl_.get(), rc)) {
    case SSL_ERROR_WANT_READ:
      return step::want_read;
    case SSL_ERROR_WANT_WRITE:
      return step::want_write;
    case SSL_ERROR_ZERO_RETURN:
      if (r) r->close_notify = true;
      error_ = "close_notify received";
      break;
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      if (saved_errno) {
        if (r) r->failed = true;
        error_ = std::strerror(saved_errno);
      } else {
        if (r) r->eof = true;
        error_ = "EOF without close_notify";
      }
      break;
    default: {
      const unsigned long e = ERR_peek_error();
      if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        if (r) r->eof = true;
        error_ = "EOF without close_notify";
        ERR_clear_error();
      } else {
        if (r) r->failed = true;
        error_ = openssl_error("TLS error");
      }
    }
  }
  return step::ended;
}

tls_client::step tls_client::read_step(tls_read_result& r, std::size_t limit) {
  if (!ssl_) {
    r.failed = true;
    return step::ended;
  }
  char buf[chunk];
  std::size_t n = 0;
  int rc;
  {
    sigpipe_guard guard;
    ERR_clear_error();
    errno = 0;
    rc = SSL_read_ex(ssl_.get(), buf, std::min(limit, sizeof buf), &n);
  }
  if (rc == 1) {
    r.data.append(buf, n);
    return step::progress;
  }
  return classify(rc, &r);
}

tls_client::step tls_client::write_step(std::string_view data, std::size_t& written) {
  written = 0;
  if (!ssl_) return step::ended;
  int rc;
  {
    sigpipe_guard guard;
    ERR_clear_error();
    errno = 0;
    rc = SSL_write_ex(ssl_.get(), data.data(), data.size(), &written);
  }
  if (rc == 1) return step::progress;
  return classify(rc, nullptr);
}

bool tls_client::write_all(std::string_view data, milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  for (int round = 0; round < max_rounds && !data.empty(); ++round) {
    std::size_t n = 0;
    const step s = write_step(data, n);
    if (s == step::progress) {
      data.remove_prefix(n);
      continue;
    }
    if (s == step::ended) return false;
    if (!wait_for(fd(), s == step::want_write ? POLLOUT : POLLIN, deadline)) {
      error_ = "write timed out";
      return false;
    }
  }
  return data.empty();
}

tls_read_result tls_client::read_exact(std::size_t n, milliseconds timeout) { return read_up_to(n, timeout); }

tls_read_result tls_client::read_to_end(milliseconds timeout) { return read_up_to(std::nullopt, timeout); }

tls_read_result tls_client::read_up_to(std::optional<std::size_t> n, milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  tls_read_result r;
  for (int round = 0; round < max_rounds && (!n || r.data.size() < *n); ++round) {
    const step s = read_step(r, n ? *n - r.data.size() : chunk);
    if (s == step::progress) continue;
    if (s == step::ended) break;
    if (!wait_for(fd(), s == step::want_write ? POLLOUT : POLLIN, deadline)) {
      r.timed_out = true;
      break;
    }
  }
  return r;
}

tls_read_result tls_client::exchange(std::string_view data, std::optional<std::size_t> expect, bool close_after,
                                     milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  tls_read_result r;
  bool closed = false;
  for (int round = 0; round < max_rounds; ++round) {
    bool moved = false;
    short events = POLLIN;
    if (!data.empty()) {
      std::size_t n = 0;
      const step s = write_step(data, n);
      if (s == step::progress) {
        data.remove_prefix(n);
        moved = true;
      } else if (s == step::ended) {
        r.failed = true;
        break;
      } else if (s == step::want_write) {
        events |= POLLOUT;
      }
    }
    if (data.empty() && close_after && !closed) {
      closed = true;
      if (!shutdown_send()) {
        r.failed = true;
        break;
      }
    }
    const std::size_t limit = expect ? *expect - std::min(*expect, r.data.size()) : chunk;
    if (limit > 0) {
      const step s = read_step(r, limit);
      if (s == step::progress) moved = true;
      else if (s == step::ended) break;
    }
    if (expect && r.data.size() >= *expect) break;
    if (moved) continue;
    if (!wait_for(fd(), events, deadline)) {
      r.timed_out = true;
      break;
    }
  }
  return r;
}

bool tls_client::shutdown_send() {
  if (!ssl_) return false;
  const auto deadline = steady::now() + milliseconds(5000);
  for (int round = 0; round < 1000; ++round) {
    int rc;
    {
      sigpipe_guard guard;
      ERR_clear_error();
      errno = 0;
      rc = SSL_shutdown(ssl_.get());
    }
    // 0: sent, the peer's not seen yet; 1: both sent. Either way ours is out.
    if (rc >= 0) return true;
    const step s = classify(rc, nullptr);
    if (s == step::ended) return false;
    if (!wait_for(fd(), s == step::want_write ? POLLOUT : POLLIN, deadline)) {
      error_ = "close_notify could not be sent in time";
      return false;
    }
  }
  return false;
}

std::string tls_client::protocol() const { return ssl_ ? SSL_get_version(ssl_.get()) : ""; }

std::string tls_client::cipher() const {
  const SSL_CIPHER* c = ssl_ ? SSL_get_current_cipher(ssl_.get()) : nullptr;
  return c ? SSL_CIPHER_get_name(c) : "";
}

std::string tls_client::peer_fingerprint() const {
  if (!ssl_) return {};
  X509* cert = SSL_get1_peer_certificate(ssl_.get());
  std::string out = digest_of(cert, true);
  X509_free(cert);
  return out;
}

std::string client_hello() {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = ctx ? SSL_new(ctx) : nullptr;
  std::string out;
  if (ssl) {
    BIO* from_server = BIO_new(BIO_s_mem());
    BIO* to_server = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, from_server, to_server);  // the connection owns both
    SSL_connect(ssl);                          // writes the ClientHello, then wants the answer
    char* bytes = nullptr;
    const long n = BIO_get_mem_data(to_server, &bytes);
    if (n > 0) out.assign(bytes, static_cast<std::size_t>(n));
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return out;
}

std::string certificate_fingerprint(const std::string& pem_file) { return file_digest(pem_file, true); }
std::string certificate_sha256_hex(const std::string& pem_file) { return file_digest(pem_file, false); }

}  // namespace test_support
