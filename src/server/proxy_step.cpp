// Reading a PROXY header: peek until the parser has it whole, then take exactly its bytes.
#include "server/proxy_step.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

#include "server/guards.hpp"

namespace startup_server::detail {
namespace {

constexpr auto as_tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

// The first look takes in any v1 line (107 bytes) and a v2 header's fixed part; a longer
// v2 header grows the buffer to its length.
constexpr std::size_t first_peek = 108;
constexpr std::size_t env_value_max = 255;

admission_verdict refused(std::string why) { return {false, "refused: " + why}; }

tcp::endpoint endpoint_of(const sockaddr_storage& address) {
  const std::size_t size = address.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  tcp::endpoint e;
  std::memcpy(e.data(), &address, size);
  e.resize(size);
  return e;
}

bool has_control_character(const std::string& value) {
  for (unsigned char ch : value)
    if (ch < 0x20 || ch == 0x7f) return true;
  return false;
}

// A TLV value as an environment variable may carry it, or "" to leave it out.
std::string env_text(const std::string& value) {
  if (value.size() > env_value_max || has_control_character(value)) return {};
  return value;
}

std::string hex(const std::string& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (unsigned char ch : bytes) {
    out.push_back(digits[ch >> 4]);
    out.push_back(digits[ch & 0x0f]);
  }
  return out;
}

// The client has shut down its sending side, or the connection is gone: the bytes it sent
// are all there will be. (Peeking cannot tell: it returns them again and again.)
bool peer_finished(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// Takes the header's `length` bytes, which a peek has just shown to be there, off the socket.
bool consume(int fd, std::size_t length, unsigned char* scratch) {
  std::size_t taken = 0;
  while (taken < length) {
    const ssize_t n = ::recv(fd, scratch, length - taken, MSG_DONTWAIT);
    if (n > 0) taken += static_cast<std::size_t>(n);
    else if (n < 0 && errno == EINTR) continue;
    else return false;
  }
  return true;
}

// The wait's end that the deadline brings about; shared with the timer's handler, which
// may run after the step has finished.
struct header_wait {
  bool waiting = true;
  bool expired = false;
};

// Why the wait for the header cannot go on, or nullopt if it can. Checked before every
// look at the socket: the deadline, a cut or an idle close may have come in between.
std::optional<admission_verdict> interrupted(connection& c, const header_wait& wait) {
  if (wait.expired) return refused("PROXY header: timed out");
  if (c.cut) return admission_verdict{false, "cut: the server stopped"};
  if (!c.plain.plain_socket()->is_open()) return admission_verdict{false, "idle"};  // --idle-timeout was shorter
  return std::nullopt;
}

constexpr const char* closed_first = "PROXY header: the client closed first";

// Looks at what the client has sent so far, without waiting: the verdict once the header
// is settled (whole and taken off the socket, with c's identity rewritten; or refused),
// nullopt while more has to come.
std::optional<admission_verdict> look(connection& c, int fd, std::vector<unsigned char>& bytes) {
  bool finished = false;  // the client has sent all it will
  for (int round = 0; round < 4; ++round) {  // a grown buffer and a last look, at most
    const ssize_t n = ::recv(fd, bytes.data(), bytes.size(), MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::nullopt;
    if (n <= 0) return refused(closed_first);  // EOF, or a reset
    const auto got = static_cast<std::size_t>(n);
    const proxy_parse_result r = parse_proxy_header({bytes.data(), got}, proxy_header_cap);
    if (r.status == proxy_parse_status::invalid) return refused(r.error);
    if (r.status == proxy_parse_status::complete) {
      if (!consume(fd, r.header.length, bytes.data())) return refused(closed_first);
      apply_proxy_header(c, r.header);
      return admission_verdict{};
    }
    if (r.want > bytes.size()) {
      const bool full = got == bytes.size();
      bytes.resize(r.want);
      if (full) continue;  // the rest may be there already
    }
    // The end may have come with bytes that arrived after the peek: look once more
    // before deciding, as nothing can follow it.
    if (finished) return refused(closed_first);
    if (!peer_finished(fd)) return std::nullopt;
    finished = true;
  }
  return std::nullopt;
}

}  // namespace

bool proxy_header_step::trusts(const tcp::endpoint& peer) const noexcept {
  const auto bytes = peer_bytes(peer);
  for (const auto& rule : trusted_)
    if (rule.contains(bytes)) return true;
  return false;
}

asio::awaitable<admission_verdict> proxy_header_step::admit(connection& c) {
  if (!trusts(c.identity().remote)) co_return refused("not a trusted proxy");
  tcp::socket& socket = *c.plain.plain_socket();
  auto wait = std::make_shared<header_wait>();
  asio::steady_timer deadline(co_await asio::this_coro::executor);
  deadline.expires_after(timeout_);
  deadline.async_wait([&socket, wait](std::error_code ec) {
    if (ec || !wait->waiting) return;
    wait->expired = true;
    std::error_code ignored;
    socket.cancel(ignored);
  });
  std::vector<unsigned char> bytes(first_peek);
  std::optional<admission_verdict> verdict;
  for (;;) {
    // Look first, wait after: the bytes often come with the connection, and the event
    // loop reports only new arrivals, not bytes that were there before the wait.
    if ((verdict = interrupted(c, *wait)) || (verdict = look(c, socket.native_handle(), bytes))) break;
    // Wakes when more bytes arrive (each arrival once: no spinning on the ones looked at),
    // or aborted by the deadline, a cut or an idle close, which interrupted() tells apart.
    auto waited = co_await socket.async_wait(tcp::socket::wait_read, as_tuple_awaitable);
    const std::error_code ec = std::get<0>(waited);
    if (ec && ec != asio::error::operation_aborted && ec != asio::error::bad_descriptor) {
      verdict = refused("PROXY header: " + ec.message());
      break;
    }
  }
  wait->waiting = false;
  deadline.cancel();
  co_return std::move(*verdict);
}

void apply_proxy_header(connection& c, const proxy_header& header) {
  peer_identity& who = c.identity();
  who.proxy = who.remote;
  who.proxy_version = static_cast<std::uint8_t>(header.version);
  who.proxy_local = header.local_command;
  if (!header.local) {
    who.remote = endpoint_of(header.source);
    who.local = endpoint_of(header.destination);
    who.local_known = true;
  }
  proxy_details d;
  d.alpn = env_text(header.alpn);
  d.authority = env_text(header.authority);
  d.unique_id = has_control_character(header.unique_id) ? hex(header.unique_id) : header.unique_id;
  if (header.ssl) {
    const proxy_ssl_info& ssl = *header.ssl;
    d.ssl_protocol = env_text(ssl.version);
    d.ssl_cipher = env_text(ssl.cipher);
    // A name from a certificate the proxy did not verify proves nothing: left out.
    const bool verified = ssl.verify == 0 &&
                          (ssl.client & (proxy_ssl_info::client_cert_conn | proxy_ssl_info::client_cert_sess)) != 0;
    if (verified) d.ssl_cn = env_text(ssl.cn);
  }
  const bool any = !d.alpn.empty() || !d.authority.empty() || !d.unique_id.empty() || !d.ssl_protocol.empty() ||
                   !d.ssl_cipher.empty() || !d.ssl_cn.empty();
  if (any) c.proxied = std::make_unique<proxy_details>(std::move(d));
}

}  // namespace startup_server::detail
