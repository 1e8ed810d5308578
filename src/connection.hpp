// One accepted connection as the handlers see it, and the handlers themselves.
#pragma once

#include <sys/types.h>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace startup_server::detail {

using tcp = asio::ip::tcp;

// Owned by the coroutine serving it, touched only on its worker's thread. Registered
// with the worker so a stop can close it.
struct connection {
  explicit connection(tcp::socket s) : socket(std::move(s)) {}
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  tcp::socket socket;
  std::uint64_t bytes_in = 0;   // from the client
  std::uint64_t bytes_out = 0;  // to the client
  bool bytes_known = true;      // false once the socket itself went to a child

  // Exec: the child's pid (kept for the log), whether it still runs, its pidfd (-1: none).
  pid_t child_pid = 0;
  bool child_running = false;
  int child_pidfd = -1;
  std::optional<int> exit_status;
  std::optional<int> term_signal;

  // Worker registry links (intrusive, so registering allocates nothing).
  connection* prev = nullptr;
  connection* next = nullptr;
};

// Sends sig to c's child, if it still has one. Race-free: it goes through the pidfd.
void signal_child(connection& c, int sig) noexcept;

// What an exec connection runs: the program, its argv, the environment without TCP*.
struct exec_plan {
  std::vector<std::string> argv;  // argv[0] is the path to run
  std::vector<std::string> base_env;
  bool create_stream = false;
};

// Every handler serves c until the client or the child is done; I/O errors end the
// handler quietly (they are events, not failures of the server).
asio::awaitable<void> serve_echo(connection& c);
asio::awaitable<void> serve_talk(connection& c);
asio::awaitable<void> serve_discard(connection& c);
asio::awaitable<void> serve_chargen(connection& c);
asio::awaitable<void> serve_daytime(connection& c);
asio::awaitable<void> serve_exec(connection& c, const exec_plan& plan);

}  // namespace startup_server::detail
