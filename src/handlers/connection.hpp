// One accepted connection as the handlers see it, and the handlers themselves.
#pragma once

#include <sys/types.h>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/thread_pool.hpp>

#include "startup_server/options.hpp"
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace startup_server::detail {

using tcp = asio::ip::tcp;

struct connection;
struct worker;

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

 protected:
  ~connection_owner() = default;
};

// What the connection log needs beyond the counters; allocated only when logging.
struct connection_log_state {
  std::chrono::steady_clock::time_point since;
  connection_record record;
};

// What a handler keeps on its connection beyond the socket (exec: its child). Freed with
// the connection, on its thread.
struct handler_state {
  virtual ~handler_state() = default;
  // Adds what the handler knows to the connection's close record (exec: the child).
  virtual void describe(connection_record&) const {}
};

// One accepted connection, heap-allocated and touched only on its worker's thread.
// Kept small: an idle echo connection is this, the socket's reactor state and one wait.
struct connection {
  connection(tcp::socket s, connection_owner& o, worker& w) : socket(std::move(s)), owner(&o), home(&w) {}
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  tcp::socket socket;
  std::uint64_t bytes_in = 0;   // from the client
  std::uint64_t bytes_out = 0;  // to the client
  bool bytes_known = true;      // false once the socket itself went to a child
  bool spawning = false;        // a spawner thread is handing this socket to a child right now
  bool cut = false;             // the server has closed it (stop): no lingering, no new child

  // Worker registry links (intrusive, so registering allocates nothing).
  connection* prev = nullptr;
  connection* next = nullptr;

  connection_owner* owner;
  worker* home;
  std::unique_ptr<char[]> pending;  // bytes a slow reader has not taken yet
  std::unique_ptr<connection_log_state> log;
  std::unique_ptr<handler_state> state;

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

class child_registry;

// What an exec connection runs: the program, its argv, the environment without TCP*.
struct exec_plan {
  std::vector<std::string> argv;  // argv[0] is the path to run
  std::vector<std::string> base_env;
  bool create_stream = false;
  // Threads that run posix_spawn: it returns only once the child has exec'd, and that
  // wait must not hold up the event loop. Null: spawn on the loop itself.
  asio::thread_pool* spawner = nullptr;
  // The one owner of every child: signals groups at stop, reaps what handlers did not.
  child_registry* children = nullptr;
};

// Echo and discard are callback state machines (no coroutine frame while idle): they
// start at once on the connection's thread and call c.close() when done.
void start_echo(connection& c);
void start_discard(connection& c);

// The coroutine handlers serve c until the client or the child is done; I/O errors
// end the handler quietly (they are events, not failures of the server).
asio::awaitable<void> serve_talk(connection& c);
asio::awaitable<void> serve_chargen(connection& c);
asio::awaitable<void> serve_daytime(connection& c);
asio::awaitable<void> serve_exec(connection& c, const exec_plan& plan);

}  // namespace startup_server::detail
