// start_up_server and server_terminate: run a TCP server on its own threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include "startup_server/condition.hpp"
#include "startup_server/options.hpp"

namespace startup_server {

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

// The seed's default process name for a service: "7000 server", "\"http\" server", "NIL server".
std::string default_process_name(const std::string& service);

}  // namespace startup_server
