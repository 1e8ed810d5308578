// The server around its accept loop: threads, the lifecycle, user callbacks, joining, the public face.
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/core.h>

#include "core/errors.hpp"
#include "core/process_name.hpp"
#include "core/tcp_info.hpp"
#include "handlers/table.hpp"
#include "server/fault_hooks.hpp"
#include "server/server_impl.hpp"
#include "tls/tls_stream.hpp"

extern char** environ;

namespace startup_server {
namespace detail {
namespace {

using asio::use_awaitable;
constexpr auto as_tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);
// After the cut, handlers end within moments of their sockets closing; never wait longer.
constexpr auto cut_backstop = std::chrono::seconds(2);
// Shortages less than this apart belong to one episode, warned about once.
constexpr auto shortage_episode_gap = std::chrono::seconds(1);

// The variables a PROXY header sets (see add_proxy_environment): the server's own values
// would pass for the header's when it has none. The SSL_ names only with the PROXY protocol.
// Per-connection variables: a child sees the server's own value of one only when its
// connection sets none (the SSL_* ones only matter when TLS or a PROXY header may set them).
bool per_connection_variable(std::string_view v, bool ssl_per_connection) {
  for (std::string_view name : {"PROXYREMOTEIP=", "PROXYREMOTEPORT=", "PROXY_VERSION=", "PROXY_COMMAND=",
                                "PROXY_ALPN=", "PROXY_AUTHORITY=", "PROXY_UNIQUE_ID="})
    if (v.rfind(name, 0) == 0) return true;
  if (!ssl_per_connection) return false;
  for (std::string_view name : {"SSL_PROTOCOL=", "SSL_CIPHER=", "SSL_PEER_CERT_CN=", "SSL_PEER_CERT_SUBJECT=",
                                "SSL_PEER_CERT_HASH="})
    if (v.rfind(name, 0) == 0) return true;
  return false;
}

bool service_manager_variable(std::string_view v) {
  for (std::string_view name : {"NOTIFY_SOCKET=", "LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=", "LISTEN_PIDFDID="})
    if (v.rfind(name, 0) == 0) return true;
  return false;
}

std::vector<std::string> environment_for_children(bool ssl_per_connection) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view v(*e);
    if (v.rfind("PROTO=", 0) == 0 || v.rfind("TCPLOCAL", 0) == 0 || v.rfind("TCPREMOTE", 0) == 0) continue;
    if (per_connection_variable(v, ssl_per_connection)) continue;
    // The service manager's words to this process: a child that saw them could claim
    // readiness or sockets for the server.
    if (service_manager_variable(v)) continue;
    env.emplace_back(v);
  }
  return env;
}

// The fast lanes serve when the handler is built-in echo or discard and nothing needs more
// than the socket: no decorator (TLS, trace, idle timer), no admission step, no limit, no
// connection record, no --once, no inherited listener, no test hook.
bool lanes_apply(const server_options& o) {
  const fault_hooks& f = faults();
  return (o.function == handler::echo || o.function == handler::discard) && !o.tls && !o.trace &&
         o.idle_timeout <= std::chrono::milliseconds(0) && !o.connection_log && !o.tcp_info && !o.once &&
         !o.max_connections && o.max_per_ip == 0 && o.allow.empty() && o.deny.empty() && !o.proxy_protocol &&
         o.listener_fd < 0 && !f.accept && !f.reopen && !f.decorate && f.admission.empty();
}

// Blocks SIGPIPE in the calling thread for its lifetime, so the threads it creates start
// with it blocked: a write to a pipe whose reader has gone fails with EPIPE in the
// server's threads, without touching the process's disposition.
class sigpipe_blocked_scope {
 public:
  sigpipe_blocked_scope() {
    sigset_t pipe;
    ::sigemptyset(&pipe);
    ::sigaddset(&pipe, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe, &old_);
  }
  ~sigpipe_blocked_scope() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

 private:
  sigset_t old_;
};

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The server whose thread this is (a worker, or a user function's): join cannot wait here.
thread_local const void* current_server = nullptr;

}  // namespace

fault_hooks& faults() {
  static fault_hooks hooks;
  return hooks;
}

void worker::add(connection& c) noexcept {
  c.next = connections;
  if (connections) connections->prev = &c;
  connections = &c;
}

void worker::remove(connection& c) noexcept {
  if (c.prev) c.prev->next = c.next;
  else connections = c.next;
  if (c.next) c.next->prev = c.prev;
  c.prev = c.next = nullptr;
}

server_impl::server_impl(server_options options)
    : options_(std::move(options)),
      name_(options_.process_name.empty() ? default_process_name(options_.service) : options_.process_name),
      use_lanes_(lanes_apply(options_)),
      workers_([&] {
        std::vector<std::unique_ptr<worker>> w;
        const unsigned n = use_lanes_ ? 1 : thread_count(options_.threads);
        for (unsigned i = 0; i < n; ++i) w.push_back(std::make_unique<worker>());
        return w;
      }()),
      control_(*workers_.front()),
      acceptor_(control_.context),
      grace_timer_(control_.context),
      pause_timer_(control_.context),
      idle_timer_(control_.context) {
  if (options_.function == handler::exec) {
    exec_.argv = options_.exec_argv;
    exec_.base_env = environment_for_children(options_.proxy_protocol || options_.tls.has_value());
    exec_.create_stream = options_.create_stream;
    exec_.children = &children_;
  }
  admission_.insert(admission_.end(), faults().admission.begin(), faults().admission.end());
}

server_impl::~server_impl() {
  terminate(true);
  join();
  if (options_.listener_fd >= 0 && !listener_taken_) ::close(options_.listener_fd);  // run() never began
  if (exec_.stderr_fd >= 0) ::close(exec_.stderr_fd);
  // Only after the backstop can connections remain; their pending handlers die with the
  // event loops and are never run, and their children were reaped by join().
  for (auto& w : workers_) {
    while (connection* c = w->connections) {
      w->remove(*c);
      delete c;
    }
  }
}

startup_condition server_impl::start(server& facade) {
  facade_ = &facade;
  {
    sigpipe_blocked_scope quiet;  // inherited by every thread created here
    if (options_.function == handler::exec) {
      // Two spawns in flight per core keep the cores busy while each waits for its exec.
      spawner_ = std::make_unique<asio::thread_pool>(std::max(2u, 2 * std::thread::hardware_concurrency()));
      exec_.spawner = spawner_.get();
    }
    for (auto& w : workers_) w->guard.emplace(w->context.get_executor());
    asio::co_spawn(control_.context, run(), [this](std::exception_ptr e) {
      if (!e) return;
      fail({startup_condition::phase::runtime, std::make_error_code(std::errc::state_not_recoverable),
            "internal error: " + exception_text(e)});
    });
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      worker& w = *workers_[i];
      w.thread = std::thread([&w, this, i] {
        // The system keeps 15 bytes: shorten the name, not the thread number.
        const std::string suffix = i == 0 ? "" : fmt::format(" {}", i);
        set_thread_name(name_.substr(0, 15 - suffix.size()) + suffix);
        adopt_thread();
        w.context.run();
      });
    }
  }
  if (!options_.wait) return {};
  std::unique_lock lock(mutex_);
  started_cv_.wait(lock, [this] { return startup_done_; });
  return startup_;
}

void server_impl::closed(connection& c) noexcept {
  // However the handler ended, a TLS client learns it was the end, not a cut.
  if (c.tls) c.tls->end_session();
  if (c.admitted) release_admission(admission_, c);
  // How the connection went, in the kernel's words, while the socket is still there.
  if (options_.tcp_info && c.log) c.log->record.tcp = read_tcp_info(c.plain.plain_socket()->native_handle());
  if (c.log) log_close(c);
  c.home->remove(c);
  delete &c;  // closes the socket
  connection_done();
}

void server_impl::connection_done() noexcept {
  const std::size_t before = active_.fetch_sub(1);
  // The last one matters only to a stop under way: the lifecycle reads active_ after it
  // moves on from serving, and here phase_ is read after active_ fell, so one side sees the
  // other (both sequentially consistent). A server that keeps serving is not woken.
  if ((before == 1 && phase_.load() != lifecycle_phase::serving) || (capacity_ && before == capacity_)) {
    asio::post(control_.context, [this] {
      idle_timer_.cancel();
      check_finished();
    });
  }
}

// ---- The lifecycle (control_'s thread) ----

void server_impl::terminate(bool immediate) {
  if (phase_.load() == lifecycle_phase::finished) return;
  asio::post(control_.context, [this, immediate] {
    request_stop(immediate ? stop_request::immediate : stop_request::graceful);
  });
}

void server_impl::request_stop(stop_request r) {
  const lifecycle_phase now = phase_.load();
  if (now == lifecycle_phase::finished) return;
  switch (r) {
    case stop_request::once_served:
      if (now == lifecycle_phase::serving) enter_draining(false);
      break;
    case stop_request::graceful:
      if (now == lifecycle_phase::starting || now == lifecycle_phase::serving) enter_draining(true);
      else if (now == lifecycle_phase::draining && !grace_armed_) arm_grace();
      else enter_cutting();  // a second request does not wait
      break;
    case stop_request::immediate:
      enter_cutting();
      break;
  }
  check_finished();
}

void server_impl::enter_draining(bool arm) {
  const lifecycle_phase before = phase_.exchange(lifecycle_phase::draining);
  if (before == lifecycle_phase::serving) tell_stopping();
  // A graceful stop serves the clients already queued; --once (arm false) serves no more.
  serve_queued_ = arm && before == lifecycle_phase::serving;
  if (serve_queued_) take_queued();
  std::error_code ignored;
  acceptor_.close(ignored);
  // Each lane takes its share of the queue on its own thread: until it has, it counts as
  // a connection, so the stop cannot finish before the clients it takes are counted.
  if (serve_queued_) active_.fetch_add(lanes_.size());
  for (auto& lane : lanes_) lane->stop_accepting(serve_queued_);
  pause_timer_.cancel();
  idle_timer_.cancel();
  if (arm) arm_grace();
}

void server_impl::arm_grace() {
  using namespace std::chrono_literals;
  grace_armed_ = true;
  children_.signal_all(SIGTERM);  // and no child starts from now on
  if (options_.grace <= 0ms) return enter_cutting();
  grace_timer_.expires_after(options_.grace);
  grace_timer_.async_wait([this](std::error_code ec) {
    if (!ec) enter_cutting();
  });
}

// Close every connection and kill every child group; handlers wind down from there.
void server_impl::enter_cutting() {
  const lifecycle_phase before = phase_.load();
  if (before >= lifecycle_phase::cutting) return;
  phase_ = lifecycle_phase::cutting;
  if (before == lifecycle_phase::serving) tell_stopping();
  std::error_code ignored;
  acceptor_.close(ignored);
  pause_timer_.cancel();
  children_.signal_all(SIGKILL);
  for (auto& lane : lanes_) lane->cut();
  for (auto& w : workers_) {
    asio::post(w->context, [&w = *w] {
      for (connection* c = w.connections; c; c = c->next) {
        c->cut = true;
        c->set_reason("cut: the server stopped");
        if (c->state) c->state->cut();
        if (!c->spawning) c->stream().close();  // a spawner is reading its descriptor
      }
    });
  }
  grace_timer_.cancel();
  grace_timer_.expires_after(cut_backstop);
  grace_timer_.async_wait([this](std::error_code ec) {
    if (!ec) finish();
  });
}

void server_impl::check_finished() {
  const lifecycle_phase now = phase_.load();
  if ((now == lifecycle_phase::draining || now == lifecycle_phase::cutting) && active_.load() == 0) finish();
}

// The only place that stops the event loops.
void server_impl::finish() {
  if (phase_.exchange(lifecycle_phase::finished) == lifecycle_phase::finished) return;
  std::error_code ignored;
  acceptor_.close(ignored);
  grace_timer_.cancel();
  pause_timer_.cancel();
  idle_timer_.cancel();
  children_.signal_all(SIGKILL);
  bool failed;
  {
    std::lock_guard lock(mutex_);
    failed = static_cast<bool>(final_);
  }
  if (!failed) announce(announce_event::kind::terminated);
  for (auto& lane : lanes_) lane->stop();
  for (auto& w : workers_) {
    w->guard.reset();
    w->context.stop();
  }
}

// A failure at start or at run time: it is told, then the server stops through the cut.
void server_impl::fail(startup_condition condition) {
  condition.code = portable(condition.code);
  bool during_startup;
  {
    std::lock_guard lock(mutex_);
    during_startup = !startup_done_;
    final_ = condition;
    if (during_startup) {
      startup_ = condition;
      startup_done_ = true;
    }
  }
  started_cv_.notify_all();
  announce(announce_event::kind::error, condition.message());
  const bool returned_to_caller = during_startup && options_.wait;
  if (options_.error.value_or(!options_.wait) && !returned_to_caller) tell(diagnostic::kind::fatal, condition.message());
  if (phase_.load() == lifecycle_phase::starting) return finish();
  request_stop(stop_request::immediate);
}

// ---- User callbacks: called from here only, outside every lock, exceptions caught ----

void server_impl::tell(const diagnostic& d) noexcept {
  if (!options_.diagnostics) return;
  try {
    options_.diagnostics(d);
  } catch (...) {
    // Nowhere left to report it.
  }
}

void server_impl::tell(diagnostic::kind what, const std::string& message) noexcept {
  try {
    tell(diagnostic{what, message});
  } catch (...) {
    // Out of memory for the message.
  }
}

void server_impl::warn(const std::string& message) noexcept { tell(diagnostic::kind::warning, message); }

void server_impl::resource_shortage(const std::string& message) noexcept {
  const std::int64_t now = steady_ns();
  const std::int64_t before = last_shortage_.exchange(now);
  const auto gap = std::chrono::nanoseconds(now - before);
  if (before == 0 || gap >= shortage_episode_gap) warn(message);
}

void server_impl::tell_stopping() {
  if (!options_.stopping) return;
  try {
    options_.stopping();
  } catch (...) {
    warn("stopping callback: " + exception_text(std::current_exception()));
  }
}

void server_impl::announce(announce_event::kind what, const std::string& message) {
  if (!options_.announce) return;
  announce_event e;
  e.what = what;
  e.message = message;
  {
    std::lock_guard lock(mutex_);
    if (bound_.len) {
      e.address = numeric_host(reinterpret_cast<const sockaddr*>(&bound_.addr));
      e.port = port_of(reinterpret_cast<const sockaddr*>(&bound_.addr));
      e.family = family_name(bound_.family);
    }
    if (what == announce_event::kind::listening) {
      e.socket_options = listener_reports_;
      if (tls_) {
        e.tls_fingerprint = tls_->fingerprint();
        e.tls_self_signed = tls_->self_signed();
      }
    }
  }
  try {
    options_.announce(e);
  } catch (...) {
    warn("announce callback: " + exception_text(std::current_exception()));
  }
}

// The record's who and where: the connection's id and identity, as admission left it.
static void describe_peer(connection& c, connection_record& r) {
  r.id = c.id;
  peer_identity& who = c.identity();
  const tcp::endpoint& local = local_endpoint(who, c.plain.plain_socket());
  r.peer_address = numeric_host(who.remote.data());
  r.peer_port = who.remote.port();
  r.local_address = numeric_host(local.data());
  r.local_port = local.port();
  if (who.proxy) {
    r.proxy_address = numeric_host(who.proxy->data());
    r.proxy_port = who.proxy->port();
  }
}

void server_impl::log_open(connection& c) {
  c.log = std::make_unique<connection_log_state>();
  c.log->since = std::chrono::steady_clock::now();
  connection_record& r = c.log->record;
  r.what = connection_record::kind::open;
  describe_peer(c, r);
  if (c.id == 1) r.socket_options = std::move(first_reports_);
  try {
    options_.connection_log(r);
  } catch (...) {
    warn("connection_log callback: " + exception_text(std::current_exception()));
  }
}

void server_impl::log_close(connection& c) noexcept {
  connection_record& r = c.log->record;
  r.what = connection_record::kind::close;
  r.socket_options.clear();  // told with the open record
  if (c.bytes_known) {
    r.bytes_in = c.stream().bytes_in;
    r.bytes_out = c.stream().bytes_out;
  }
  r.duration = std::chrono::steady_clock::now() - c.log->since;
  if (c.state) c.state->describe(r);
  try {
    options_.connection_log(r);
  } catch (...) {
    warn("connection_log callback: " + exception_text(std::current_exception()));
  }
}

void server_impl::log_refused(connection& c, const std::string& reason) noexcept {
  if (!options_.connection_log) return;
  try {
    connection_record r;
    r.what = connection_record::kind::refused;
    describe_peer(c, r);
    r.reason = reason;
    options_.connection_log(r);
  } catch (...) {
    warn("connection_log callback: " + exception_text(std::current_exception()));
  }
}

// ---- Joining ----

bool server_impl::on_server_thread() const noexcept { return current_server == this; }

void server_impl::adopt_thread() noexcept { current_server = this; }

startup_condition server_impl::join() {
  if (on_server_thread()) {
    // Waiting here would wait for this very thread.
    return {startup_condition::phase::runtime, std::make_error_code(std::errc::resource_deadlock_would_occur),
            "join called on one of the server's own threads"};
  }
  std::lock_guard join_lock(join_mutex_);
  if (!joined_) {
    for (auto& w : workers_)
      if (w->thread.joinable()) w->thread.join();
    // Made by control_'s thread, which has ended: nothing adds to lanes_ any more.
    for (auto& lane : lanes_) lane->join();
    // Queued spawns see the stop and start nothing; one under way adopts its child, which
    // the registry, the one owner of children, then kills and reaps with the rest.
    if (spawner_) spawner_->join();
    children_.kill_and_reap_all();
    joined_ = true;
  }
  std::lock_guard lock(mutex_);
  return final_;
}

std::uint16_t server_impl::local_port() const {
  std::lock_guard lock(mutex_);
  return bound_.len ? port_of(reinterpret_cast<const sockaddr*>(&bound_.addr)) : 0;
}

std::string server_impl::local_address() const {
  std::lock_guard lock(mutex_);
  return bound_.len ? numeric_host(reinterpret_cast<const sockaddr*>(&bound_.addr)) : std::string();
}

std::string server_impl::family() const {
  std::lock_guard lock(mutex_);
  return bound_.len ? family_name(bound_.family) : "";
}

}  // namespace detail

std::string startup_condition::message() const {
  if (!code) return context;
  return fmt::format("{}: {}", context, code.message());
}

server::server(std::shared_ptr<detail::server_impl> impl) noexcept : impl_(std::move(impl)) {}
server::~server() = default;
std::uint16_t server::local_port() const { return impl_->local_port(); }
std::string server::local_address() const { return impl_->local_address(); }
std::string server::family() const { return impl_->family(); }
const std::string& server::name() const { return impl_->name(); }
void server::terminate(bool immediate) { impl_->terminate(immediate); }
startup_condition server::join() { return impl_->join(); }
bool server::running() const { return impl_->running(); }
std::size_t server::active_connections() const { return impl_->active_connections(); }

std::unique_ptr<server> start_up_server(const server_options& options, startup_condition& condition) noexcept {
  std::shared_ptr<detail::server_impl> impl;
  try {
    impl = std::make_shared<detail::server_impl>(options);
    auto facade = std::make_unique<server>(impl);
    condition = impl->start(*facade);
    if (condition) {
      impl->join();
      return nullptr;
    }
    return facade;
  } catch (const std::system_error& e) {
    condition = {startup_condition::phase::runtime, detail::portable(e.code()), "unable to start"};
  } catch (const std::exception&) {
    condition = {startup_condition::phase::runtime, std::make_error_code(std::errc::not_enough_memory),
                 "unable to start"};
  }
  // The caller's listener is ours even when no server came to be (a server closes it itself).
  if (!impl && options.listener_fd >= 0) ::close(options.listener_fd);
  return nullptr;
}

std::unique_ptr<server> start_up_server(const server_options& options) {
  startup_condition condition;
  auto s = start_up_server(options, condition);
  if (!s) throw std::system_error(condition.code, condition.context);
  return s;
}

void server_terminate(server& s, bool immediate) { s.terminate(immediate); }

}  // namespace startup_server
