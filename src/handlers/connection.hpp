// One accepted connection as the handlers see it, and what they need from the server.
#pragma once

#include <asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "startup_server/events.hpp"
#include "startup_server/options.hpp"
#include "stream/plain_tcp.hpp"

namespace startup_server::detail {

struct connection;
struct worker;
class child_registry;
class tls_stream;

// What an exec connection runs: the program, its argv, the environment without TCP*.
struct exec_plan {
  std::vector<std::string> argv;  // argv[0] is the path to run
  std::vector<std::string> base_env;
  bool create_stream = false;
  int stderr_fd = -1;  // the children's stderr; -1: the server's own
  // Threads that run posix_spawn: it returns only once the child has exec'd, and that
  // wait must not hold up the event loop. Null: spawn on the loop itself.
  asio::thread_pool* spawner = nullptr;
  // The one owner of every child: signals groups at stop, reaps what handlers did not.
  child_registry* children = nullptr;
};

// What handlers need from the server that owns their connection.
class connection_owner {
 public:
  // The handler is done: the owner logs, unregisters and frees the connection.
  virtual void closed(connection& c) noexcept = 0;
  // A warning for diagnostics (one line, no program name).
  virtual void warn(const std::string& message) noexcept = 0;
  // Out of descriptors or memory: warned once per episode (a burst of shortages with
  // less than a second between them), so a flood does not become a flood of warnings.
  virtual void resource_shortage(const std::string& message) noexcept = 0;
  // The exec handler's plan (empty for other handlers).
  virtual const exec_plan& exec() const noexcept = 0;
  // The library user's function (handler::user), and the server to hand it.
  virtual const user_function& function() const noexcept = 0;
  virtual server& facade() noexcept = 0;
  // Marks the calling thread as one of the server's (join cannot wait on it).
  virtual void adopt_thread() noexcept = 0;

 protected:
  ~connection_owner() = default;
};

// What a v2 PROXY protocol header's TLVs said about the client, for an exec child's
// environment (PROXY_ALPN, SSL_CIPHER, ...). Allocated only when a header carried one worth
// keeping; every value is short and fit for the environment (no control characters).
struct proxy_details {
  std::string alpn;          // PROXY_ALPN
  std::string authority;     // PROXY_AUTHORITY
  std::string unique_id;     // PROXY_UNIQUE_ID
  std::string ssl_protocol;  // SSL_PROTOCOL
  std::string ssl_cipher;    // SSL_CIPHER
  std::string ssl_cn;        // SSL_PEER_CERT_CN
};

// What the connection log needs beyond the counters; allocated only when logging.
struct connection_log_state {
  std::chrono::steady_clock::time_point since;
  connection_record record;
};

// What a handler keeps on its connection beyond the stream (exec: its child; a user
// function: its thread). Freed with the connection, on its thread.
struct handler_state {
  virtual ~handler_state() = default;
  // Adds what the handler knows to the connection's close record (exec: the child).
  virtual void describe(connection_record&) const {}
  // The server is cutting the connection: wake whatever blocks on it.
  virtual void cut() noexcept {}
};

// One accepted connection, heap-allocated and touched only on its worker's thread.
// Kept small: an idle echo connection is this, the socket's reactor state and one wait.
struct connection {
  connection(tcp::socket s, connection_owner& o, worker& w) noexcept : plain(std::move(s)), owner(&o), home(&w) {}
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  plain_tcp plain;                          // the accepted socket
  std::unique_ptr<byte_stream> decorated;   // a decorator over tcp, when one is in use
  tls_stream* tls = nullptr;                // the TLS layer within `decorated`, with TLS
  bool bytes_known = true;  // false once the socket itself went to a child
  bool spawning = false;    // a spawner thread is handing this socket to a child right now
  bool cut = false;         // the server has closed it (stop): no lingering, no new child
  bool admitted = false;    // the admission chain let it in (its steps release it at close)
  std::uint64_t id = 0;     // per-server sequence number, from 1, as in the log and the trace

  // Worker registry links (intrusive, so registering allocates nothing).
  connection* prev = nullptr;
  connection* next = nullptr;

  connection_owner* owner;
  worker* home;
  std::unique_ptr<char[]> pending;  // echo: bytes a slow reader has not taken yet
  std::unique_ptr<connection_log_state> log;
  std::unique_ptr<handler_state> state;
  std::unique_ptr<proxy_details> proxied;  // see proxy_details

  // What handlers read and write: the decorator if there is one, else plain TCP.
  byte_stream& stream() noexcept { return decorated ? *decorated : static_cast<byte_stream&>(plain); }
  // The socket itself, only while no decorator stands in between (else null).
  tcp::socket* plain_socket() noexcept { return decorated ? nullptr : plain.plain_socket(); }
  peer_identity& identity() noexcept { return stream().identity(); }

  // The handler is done: hands the connection back to its owner, which frees it.
  void close() noexcept { owner->closed(*this); }
  // Why the server ended the connection itself, for the log (kept only when logging).
  void set_reason(std::string_view why) noexcept {
    if (!log || !log->record.reason.empty()) return;
    try {
      log->record.reason = why;
    } catch (...) {
      // Out of memory: the log goes without the reason.
    }
  }
};

}  // namespace startup_server::detail
