// The server's state: its event loops, listener, connections, children and lifecycle.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/resolve.hpp"
#include "handlers/children.hpp"
#include "handlers/connection.hpp"
#include "server/admission.hpp"
#include "server/fast_lane.hpp"
#include "server/lifecycle.hpp"
#include "startup_server/server.hpp"
#include "tls/tls_context.hpp"

namespace startup_server::detail {

// The serving threads `requested` asks for: 0 is one per core.
inline unsigned thread_count(unsigned requested) {
  if (requested) return requested;
  unsigned n = std::thread::hardware_concurrency();
  return n ? n : 1;
}

// One event loop and its thread; connections stay on the worker that accepted them.
struct worker {
  asio::io_context context{1};
  // A timer makes Asio open the loop's descriptors (epoll, eventfd, timerfd) now, so the
  // server's descriptor count is settled once it listens, not at a thread's first client.
  asio::steady_timer settle{context};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::thread thread;
  connection* connections = nullptr;  // intrusive list, touched on this worker only

  void add(connection& c) noexcept;
  void remove(connection& c) noexcept;
};

class server_impl final : public connection_owner, public lane_owner {
 public:
  explicit server_impl(server_options options);
  ~server_impl();

  // Starts the threads; with options.wait, blocks until listening or failed. `facade` is
  // the server object handed to user functions; it outlives every call of theirs.
  startup_condition start(server& facade);
  void terminate(bool immediate);
  startup_condition join();
  bool running() const { return phase_.load() != lifecycle_phase::finished; }

  std::uint16_t local_port() const;
  std::string local_address() const;
  std::string family() const;
  const std::string& name() const { return name_; }
  std::size_t active_connections() const { return active_.load(); }

 private:
  asio::awaitable<void> run();
  asio::awaitable<void> accept_loop();
  asio::awaitable<bool> recover_from_accept_error(std::error_code ec, unsigned& failures);
  asio::awaitable<bool> reopen_listener();
  void check_accept_queue();
  // Hands an accepted socket to its worker (counted active already).
  void hand_over(worker& w, tcp::socket socket, const tcp::endpoint& peer);
  // Accepts what the listen queue holds, for a graceful stop (see enter_draining).
  void take_queued();
  void start_connection(worker& w, tcp::socket socket, const tcp::endpoint& peer);
  asio::awaitable<void> admit_then_serve(connection& c);
  void begin_serving(connection& c);
  bool listen_on(const std::vector<bind_candidate>& candidates, startup_condition& condition);
  bool adopt_listener(startup_condition& condition);
  bool assign_acceptor(int fd, const bind_candidate& bound, startup_condition& condition);
  void take_listener(const bind_candidate& bound, std::vector<socket_option_report> reports);
  bool on_server_thread() const noexcept;
  bool start_lanes(startup_condition& condition);

  // connection_owner
  void closed(connection& c) noexcept override;
  void warn(const std::string& message) noexcept override;
  void resource_shortage(const std::string& message) noexcept override;
  const exec_plan& exec() const noexcept override { return exec_; }
  const user_function& function() const noexcept override { return options_.serve; }
  server& facade() noexcept override { return *facade_; }
  void adopt_thread() noexcept override;

  // lane_owner (warn, resource_shortage and adopt_thread above serve both)
  lifecycle_phase phase() const noexcept override { return phase_.load(); }
  void lane_opened() noexcept override { active_.fetch_add(1); }
  void lane_closed() noexcept override { connection_done(); }
  void lane_queue_full(unsigned limit) noexcept override;
  void lane_listener_failed(std::error_code ec) noexcept override;

  // The lifecycle: these run on control_'s thread only.
  void request_stop(stop_request r);
  void enter_draining(bool arm_grace);
  void arm_grace();
  void enter_cutting();
  void check_finished();
  void finish();
  void fail(startup_condition condition);
  void connection_done() noexcept;

  // User callbacks, each called from here: outside every lock, exceptions caught.
  void announce(announce_event::kind what, const std::string& message = {});
  void tell_stopping();
  void tell(diagnostic::kind what, const std::string& message) noexcept;
  void tell(const diagnostic& d) noexcept;
  void log_open(connection& c);
  void log_close(connection& c) noexcept;
  void log_refused(connection& c, const std::string& reason) noexcept;
  void decorate(connection& c);
  bool carries_bytes() const noexcept;
  bool set_up_tls(startup_condition& condition);
  bool build_guards(startup_condition& condition);

  server_options options_;
  std::string name_;
  exec_plan exec_;
  admission_chain admission_;
  server* facade_ = nullptr;
  child_registry children_;
  std::unique_ptr<asio::thread_pool> spawner_;
  // With the fast lanes (see fast_lane.hpp), workers_ is control_ alone and the lanes
  // accept and serve; else the workers serve and control_ accepts.
  const bool use_lanes_;
  std::vector<std::unique_ptr<worker>> workers_;
  worker& control_;  // workers_[0]: runs the listener and the lifecycle too
  tcp::acceptor acceptor_;
  asio::steady_timer grace_timer_;
  asio::steady_timer pause_timer_;
  asio::steady_timer idle_timer_;  // one-at-a-time handlers: wakes the accept loop when none is left

  mutable std::mutex mutex_;  // guards what other threads read: bound_, startup_, final_
  bind_candidate bound_;      // the listener's address, with the port the system chose
  std::vector<socket_option_report> listener_reports_;  // its socket options, requested and effective
  // Control state of the accept loop: where the next accepted peer is written, and the
  // listener's endpoint when it is a specific address (then every connection's local end).
  tcp::endpoint accepted_peer_;
  std::uint64_t accepted_ = 0;
  unsigned capacity_ = 0;  // connections at once before accepting pauses; 0: no limit
  bool accepted_options_ = false;  // socket options to set on each accepted socket
  std::unique_ptr<tls_context> tls_;  // with options_.tls: the one context every connection uses
  bool inherited_ = false;  // the listener came from options_.listener_fd: never reopened
  bool listener_taken_ = false;  // run() has taken options_.listener_fd (else the destructor closes it)
  // The first connection's socket options, requested and effective: written and read on
  // its thread, before its open record.
  std::vector<socket_option_report> first_reports_;
  std::atomic<bool> queue_warned_{false};
  std::optional<tcp::endpoint> specific_local_;
  std::condition_variable started_cv_;
  bool startup_done_ = false;
  startup_condition startup_;
  startup_condition final_;

  // Control state: touched on control_'s thread only (phase_ is read anywhere).
  std::atomic<lifecycle_phase> phase_{lifecycle_phase::starting};
  bool grace_armed_ = false;
  bool serve_queued_ = false;  // a graceful stop: clients accepted from the queue are served
  std::atomic<std::size_t> active_{0};
  std::atomic<std::uint64_t> next_id_{0};
  std::atomic<std::int64_t> last_shortage_{0};  // steady clock, ns; 0: none yet
  std::size_t next_worker_ = 0;
  std::vector<std::unique_ptr<fast_lane>> lanes_;  // made on control_'s thread before serving
  std::mutex join_mutex_;
  bool joined_ = false;  // under join_mutex_
};

}  // namespace startup_server::detail
