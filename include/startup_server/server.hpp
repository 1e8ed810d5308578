// start_up_server and server_terminate: run a TCP server on its own threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include "startup_server/options.hpp"

namespace startup_server {

// Why a server could not start (the seed's startup-condition) or why it stopped.
struct startup_condition {
  // none: no failure; usage: the options contradict each other (e.g. address and ipv6);
  // resolve: service or address unknown; bind/listen: the socket calls; runtime: after
  // start (the listener could not be reopened) or an internal error.
  enum class phase { none, usage, resolve, bind, listen, runtime };
  phase stage = phase::none;
  std::error_code code;
  std::string context;  // e.g. "unable to bind to 127.0.0.1:80"

  explicit operator bool() const noexcept { return stage != phase::none; }
  // "<context>: <system reason>", e.g. "unable to bind to 127.0.0.1:80: Permission denied".
  std::string message() const;
};

namespace detail { class server_impl; }

// A running (or finished) server. Thread-safe: every member may be called from any thread.
class server {
 public:
  explicit server(std::shared_ptr<detail::server_impl> impl) noexcept;
  // Terminates at once and joins, if still running. Not from one of the server's own
  // callbacks: a server cannot wait for its own threads.
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // The bound listener, once listening (after a reopen, the new one). Port 0 before.
  std::uint16_t local_port() const;
  std::string local_address() const;
  std::string family() const;  // "ipv4" or "ipv6"
  const std::string& name() const;

  // Stop accepting; open connections get options.grace to finish. A second call, or
  // immediate=true, closes everything at once.
  void terminate(bool immediate = false);

  // Blocks until the server has ended, its threads are joined and every child it started
  // has been reaped; returns why it ended (no stage for a clean stop). Called on one of
  // the server's own threads (from a callback) it cannot wait for itself: it returns at
  // once with phase::runtime and std::errc::resource_deadlock_would_occur.
  startup_condition join();
  bool running() const;

  // Connections being served right now (accepted and not yet closed).
  std::size_t active_connections() const;

 private:
  std::shared_ptr<detail::server_impl> impl_;
};

// Starts a server. With options.wait, returns once listening or throws std::system_error
// whose what() names the address, port and reason. Without wait, returns at once; a
// failure is announced and reported by join().
std::unique_ptr<server> start_up_server(const server_options& options);

// As above, reporting through `condition` instead of throwing; returns null on failure.
std::unique_ptr<server> start_up_server(const server_options& options,
                                        startup_condition& condition) noexcept;

// The seed's server-terminate: graceful stop (see server::terminate).
void server_terminate(server& s, bool immediate = false);

}  // namespace startup_server
