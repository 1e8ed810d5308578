// The TLS stream: each OpenSSL call is tried at once, and only "want read/write" waits.
#include "tls/tls_stream.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <cerrno>
#include <fmt/core.h>

#include "tls/tls_context.hpp"

namespace startup_server::detail {
namespace {

constexpr auto as_tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

class tls_error_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "tls"; }
  std::string message(int value) const override {
    const char* reason = ERR_reason_error_string(static_cast<unsigned long>(value));
    return reason ? reason : "TLS error";
  }
};

std::string lower_hex(const unsigned char* p, unsigned n) {
  std::string out;
  for (unsigned i = 0; i < n; ++i) out += fmt::format("{:02x}", p[i]);
  return out;
}

tls_session_info describe(SSL* ssl) {
  tls_session_info info;
  info.protocol = SSL_get_version(ssl);
  if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl)) info.cipher = SSL_CIPHER_get_name(cipher);
  if (X509* peer = SSL_get1_peer_certificate(ssl)) {
    char subject[1024];
    X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof subject);
    info.peer_subject = subject;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (X509_digest(peer, EVP_sha256(), md, &len) == 1) info.peer_hash = "SHA256:" + lower_hex(md, len);
    X509_free(peer);
  }
  return info;
}

}  // namespace

const std::error_category& tls_category() noexcept {
  static const tls_error_category category;
  return category;
}

tls_stream::tls_stream(plain_tcp& plain, const tls_context& context)
    : decorator(static_cast<byte_stream&>(plain)),
      socket_(*plain.plain_socket()),
      ssl_(SSL_new(context.native())),
      handshake_timeout_(context.handshake_timeout()) {
  if (!ssl_) throw std::bad_alloc();
  SSL_set_fd(ssl_, socket_.native_handle());
}

tls_stream::~tls_stream() { SSL_free(ssl_); }

// OpenSSL holds the descriptor's number, not the socket: once the socket is closed (idle,
// a cut) that number may already be another connection's, so no SSL call may follow.
bool tls_stream::usable(std::error_code& ec) const noexcept {
  if (socket_.is_open()) return true;
  ec = asio::error::bad_descriptor;
  return false;
}

asio::awaitable<bool> tls_stream::wait_for(int result, std::error_code& ec) {
  const int saved_errno = errno;
  switch (SSL_get_error(ssl_, result)) {
    case SSL_ERROR_WANT_READ: {
      auto waited = co_await socket_.async_wait(tcp::socket::wait_read, as_tuple_awaitable);
      ec = std::get<0>(waited);
      co_return !ec;
    }
    case SSL_ERROR_WANT_WRITE: {
      auto waited = co_await socket_.async_wait(tcp::socket::wait_write, as_tuple_awaitable);
      ec = std::get<0>(waited);
      co_return !ec;
    }
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
      ec = asio::error::eof;
      break;
    case SSL_ERROR_SYSCALL:
      if (saved_errno) failed_ = true;
      ec = saved_errno ? std::error_code(saved_errno, std::system_category()) : asio::error::eof;
      break;
    default: {
      const unsigned long e = ERR_get_error();
      if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        truncated_ = true;  // TCP closed without close_notify: EOF to the handler
        ec = asio::error::eof;
      } else {
        failed_ = true;  // OpenSSL forbids SSL_shutdown after a fatal error
        ec = e ? std::error_code(static_cast<int>(e & 0x7fffffff), tls_category())
               : std::make_error_code(std::errc::protocol_error);
      }
    }
  }
  ERR_clear_error();
  co_return false;
}

asio::awaitable<void> tls_stream::handshake(std::error_code& ec) {
  ec.clear();
  // The deadline's handler may run after this frame is gone: it shares only this state.
  struct deadline {
    bool done = false, expired = false;
  };
  auto state = std::make_shared<deadline>();
  asio::steady_timer timer(socket_.get_executor());
  timer.expires_after(handshake_timeout_);
  timer.async_wait([state, socket = &socket_](std::error_code timer_ec) {
    if (timer_ec || state->done) return;
    state->expired = true;
    std::error_code ignored;
    socket->cancel(ignored);
  });
  for (;;) {
    if (!usable(ec)) break;
    ERR_clear_error();
    errno = 0;
    const int r = SSL_accept(ssl_);
    if (r == 1) break;
    if (!co_await wait_for(r, ec)) break;
  }
  state->done = true;
  timer.cancel();
  if (state->expired) ec = asio::error::timed_out;
  if (ec) co_return;
  established_ = true;
  info_ = describe(ssl_);
}

asio::awaitable<std::size_t> tls_stream::read_some(asio::mutable_buffer into, std::error_code& ec) {
  ec.clear();
  if (into.size() == 0) co_return 0;
  for (;;) {
    if (!usable(ec)) co_return 0;
    ERR_clear_error();
    errno = 0;
    std::size_t n = 0;
    const int r = SSL_read_ex(ssl_, into.data(), into.size(), &n);
    if (r == 1) {
      bytes_in += n;
      co_return n;
    }
    if (!co_await wait_for(r, ec)) co_return 0;
  }
}

asio::awaitable<std::size_t> tls_stream::write(asio::const_buffer data, std::error_code& ec) {
  ec.clear();
  const char* p = static_cast<const char*>(data.data());
  std::size_t done = 0;
  while (done < data.size()) {
    if (!usable(ec)) break;
    ERR_clear_error();
    errno = 0;
    std::size_t n = 0;
    const int r = SSL_write_ex(ssl_, p + done, data.size() - done, &n);
    if (r == 1) {
      done += n;
      continue;
    }
    if (!co_await wait_for(r, ec)) break;
  }
  bytes_out += done;
  co_return done;
}

// One close_notify, never a wait for the answer: OpenSSL writes it straight to the socket.
void tls_stream::send_close_notify() noexcept {
  if (!established_ || close_notify_sent_ || failed_ || !socket_.is_open()) return;
  close_notify_sent_ = true;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

void tls_stream::shutdown_send() noexcept {
  send_close_notify();
  inner_.shutdown_send();
}

void tls_stream::cancel() noexcept { inner_.cancel(); }

void tls_stream::close() noexcept {
  send_close_notify();
  inner_.close();
}

void append_tls_environment(const tls_session_info& info, std::vector<std::string>& env) {
  env.push_back("SSL_PROTOCOL=" + info.protocol);
  env.push_back("SSL_CIPHER=" + info.cipher);
  if (!info.peer_subject.empty()) env.push_back("SSL_PEER_CERT_SUBJECT=" + info.peer_subject);
  if (!info.peer_hash.empty()) env.push_back("SSL_PEER_CERT_HASH=" + info.peer_hash);
}

}  // namespace startup_server::detail
