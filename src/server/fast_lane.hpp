// The fast path for built-in echo and discard on plain TCP: one thread per lane, each with
// its own epoll loop, and no more system calls per connection than the work
// needs (accept4 straight into a non-blocking close-on-exec socket, the first read tried
// before any wait, one edge-triggered registration, no removal before close).
//
// The server takes it only when nothing stands between the socket and the handler and
// nothing needs a connection's record: no TLS, trace, idle timer, admission rule, limit,
// connection log, --once or inherited listener (see server_impl::lanes_apply). Everything
// else about the lifecycle is the server's: a lane accepts, serves and closes, and asks
// its owner for the rest.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "server/lifecycle.hpp"
#include "startup_server/options.hpp"

namespace startup_server::detail {

// What a lane needs from the server that owns it; every call may come from a lane thread.
class lane_owner {
 public:
  virtual lifecycle_phase phase() const noexcept = 0;
  // A connection was accepted (counted before anything else happens to it).
  virtual void lane_opened() noexcept = 0;
  // A connection a lane accepted is gone.
  virtual void lane_closed() noexcept = 0;
  virtual void resource_shortage(const std::string& message) noexcept = 0;
  virtual void warn(const std::string& message) noexcept = 0;
  // The listener's accept queue was seen full (limit: the backlog the kernel keeps).
  virtual void lane_queue_full(unsigned limit) noexcept = 0;
  // Accepting keeps failing for a reason that is not the client's nor a shortage.
  virtual void lane_listener_failed(std::error_code ec) noexcept = 0;
  virtual void adopt_thread() noexcept = 0;

 protected:
  ~lane_owner() = default;
};

struct lane_settings {
  bool echo = true;  // false: discard
  bool nodelay = true;
  bool keepalive = false;
  int family = 0;                              // the listener's address family
  const socket_options* accepted = nullptr;   // options for accepted sockets; null: none
  unsigned failures_before_giving_up = 8;     // consecutive accept failures of other kinds
  // The listener is one other lanes wait on too (each with a descriptor of its own): waits
  // are EPOLLEXCLUSIVE, so a connection wakes one lane, not all of them.
  bool shared_listener = false;
};

class fast_lane {
 public:
  // Owns listen_fd (listening, non-blocking, close-on-exec) from here on, even when it
  // throws (std::system_error: no epoll or eventfd could be made).
  fast_lane(lane_owner& owner, int listen_fd, lane_settings settings);
  ~fast_lane();
  fast_lane(const fast_lane&) = delete;
  fast_lane& operator=(const fast_lane&) = delete;

  // Starts the lane's thread (std::system_error if it cannot).
  void start(std::string thread_name);
  // Any thread. Each is idempotent; the lane acts on them at its next turn.
  // Closes the listener (its descriptor of it); with take_queued, once it has accepted
  // what the listen queue holds (a graceful stop serves those clients).
  void stop_accepting(bool take_queued) noexcept;
  void cut() noexcept;             // closes the listener and every connection
  void stop() noexcept;            // ends the thread; connections left are closed unannounced
  void join() noexcept;

 private:
  struct conn;
  enum command : unsigned { no_accept = 1, cut_all = 2, quit = 4, take_queue = 8 };

  void send_command(command c) noexcept;
  void run() noexcept;
  void take_commands(bool& running) noexcept;
  void accept_some() noexcept;
  bool watch_listener() noexcept;
  void pause_accepting() noexcept;
  void resume_accepting() noexcept;
  void close_listener() noexcept;
  void take_queued() noexcept;
  void on_event(conn& c, std::uint32_t events) noexcept;
  void serve(conn& c) noexcept;
  void flush(conn& c) noexcept;
  bool arm(conn& c, bool want_write) noexcept;
  void close(conn& c, bool tell = true) noexcept;

  lane_owner& owner_;
  lane_settings settings_;
  int listen_fd_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<unsigned> commands_{0};
  bool accepting_ = true;
  bool paused_ = false;
  std::chrono::steady_clock::time_point resume_at_{};
  unsigned failures_ = 0;
  std::uint64_t accepted_ = 0;
  bool queue_told_ = false;
  conn* conns_ = nullptr;      // intrusive list, touched on the lane's thread only
  std::vector<conn*> again_;   // read a full buffer several times: served again before sleeping
  std::unique_ptr<char[]> buffer_;
  std::thread thread_;
};

}  // namespace startup_server::detail
