// start_up_server: resolve, listen, accept on one loop, serve on the workers, stop gracefully.
#include <signal.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdio>
#include <fmt/core.h>

#include "listener.hpp"
#include "process_name.hpp"
#include "server_impl.hpp"

extern char** environ;

namespace startup_server {
namespace detail {
namespace {

using asio::use_awaitable;
constexpr auto as_tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

// Asio reports system errors in its own category ("asio.system"), which this Asio maps to
// no std::errc condition: accept errors are matched by errno value within a system category.
bool errno_among(const std::error_code& ec, std::initializer_list<int> values) {
  const auto& cat = ec.category();
  if (cat != asio::system_category() && cat != std::system_category() && cat != std::generic_category()) return false;
  for (int v : values)
    if (ec.value() == v) return true;
  return false;
}

// Accept errors that say nothing about the listener: a client gave up, or the network
// hiccupped (accept(2) asks to treat these like EAGAIN).
bool transient_accept_error(const std::error_code& ec) {
  return errno_among(ec, {ECONNABORTED, EPROTO, EPERM, EINTR, EAGAIN, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET,
                          EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH, ETIMEDOUT});
}

// Running out of descriptors or memory: back off and keep serving, never fatal.
bool resource_accept_error(const std::error_code& ec) {
  return errno_among(ec, {EMFILE, ENFILE, ENOBUFS, ENOMEM});
}

std::vector<std::string> environment_without_tcp() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view v(*e);
    if (v.rfind("PROTO=", 0) == 0 || v.rfind("TCPLOCAL", 0) == 0 || v.rfind("TCPREMOTE", 0) == 0) continue;
    env.emplace_back(v);
  }
  return env;
}

unsigned thread_count(unsigned requested) {
  if (requested) return requested;
  unsigned n = std::thread::hardware_concurrency();
  return n ? n : 1;
}

void report_exception(const std::string& name, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "startup-server: %s: warning: %s\n", name.c_str(), ex.what());
  } catch (...) {
  }
}

}  // namespace

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
      workers_([&] {
        std::vector<std::unique_ptr<worker>> w;
        for (unsigned i = 0; i < thread_count(options_.threads); ++i) w.push_back(std::make_unique<worker>());
        return w;
      }()),
      control_(*workers_.front()),
      acceptor_(control_.context),
      grace_timer_(control_.context),
      pause_timer_(control_.context) {
  if (options_.function == handler::exec) {
    exec_.argv = options_.exec_argv;
    exec_.base_env = environment_without_tcp();
    exec_.create_stream = options_.create_stream;
    // Two spawns in flight per core keep the cores busy while each waits for its exec.
    spawner_ = std::make_unique<asio::thread_pool>(std::max(2u, 2 * std::thread::hardware_concurrency()));
    exec_.spawner = spawner_.get();
    // Writes to a pipe whose reader has gone must fail with EPIPE, not kill the server.
    if (options_.create_stream) {
      struct sigaction old{};
      if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
    }
  }
}

server_impl::~server_impl() {
  terminate(true);
  join();
  if (spawner_) spawner_->join();
  // Only after a forced end can connections remain; their pending handlers die with the
  // event loops and are never run.
  for (auto& w : workers_) {
    while (connection* c = w->connections) {
      w->remove(*c);
      delete c;
    }
  }
}

startup_condition server_impl::start() {
  for (auto& w : workers_) w->guard.emplace(w->context.get_executor());
  asio::co_spawn(control_.context, run(), [this](std::exception_ptr e) {
    if (!e) return;
    report_exception(name_, e);
    fail({startup_condition::phase::runtime, std::make_error_code(std::errc::state_not_recoverable),
          "internal error"});
  });
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    worker& w = *workers_[i];
    w.thread = std::thread([&w, this, i] {
      // The system keeps 15 bytes: shorten the name, not the thread number.
      const std::string suffix = i == 0 ? "" : fmt::format(" {}", i);
      set_thread_name(name_.substr(0, 15 - suffix.size()) + suffix);
      w.context.run();
    });
  }
  if (!options_.wait) return {};
  std::unique_lock lock(mutex_);
  started_cv_.wait(lock, [this] { return startup_done_; });
  return startup_;
}

asio::awaitable<void> server_impl::run() {
  std::error_code ec;
  const std::string where = options_.local_address.empty() ? "*" : options_.local_address;
  const std::uint16_t port = resolve_service(options_.service, ec);
  if (ec) {
    fail({startup_condition::phase::resolve, ec,
          fmt::format("unable to resolve service '{}' for {}", options_.service, where)});
    co_return;
  }
  auto candidates = bind_candidates(options_.local_address, port, options_.ipv6, ec);
  if (ec) {
    auto stage = ec == resolver_errc::contradicts_mode ? startup_condition::phase::usage
                                                      : startup_condition::phase::resolve;
    fail({stage, ec, fmt::format("unable to resolve address '{}' for port {}", where, port)});
    co_return;
  }
  startup_condition condition;
  if (!listen_on(candidates, condition)) {
    fail(condition);
    co_return;
  }
  announce(announce_event::kind::listening);
  {
    std::lock_guard lock(mutex_);
    startup_done_ = true;
  }
  started_cv_.notify_all();
  co_await accept_loop();
}

bool server_impl::listen_on(const std::vector<bind_candidate>& candidates, startup_condition& condition) {
  int fd = open_first_listener(candidates, options_, condition);
  if (fd < 0) return false;
  bind_candidate bound;
  bound.len = sizeof bound.addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound.addr), &bound.len);
  bound.family = bound.addr.ss_family;
  for (const auto& c : candidates)
    if (c.family == bound.family) bound.v6only = c.v6only;
  std::error_code ec;
  acceptor_.assign(bound.family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
  if (ec) {
    ::close(fd);
    condition = {startup_condition::phase::listen, ec, "unable to listen"};
    return false;
  }
  std::lock_guard lock(mutex_);
  bound_ = bound;
  return true;
}

asio::awaitable<void> server_impl::accept_loop() {
  unsigned failures = 0;
  while (!stopping_ && !draining_once_) {
    worker& w = *workers_[next_worker_];
    next_worker_ = (next_worker_ + 1) % workers_.size();
    auto ec_socket_result = co_await acceptor_.async_accept(w.context, as_tuple_awaitable);
    std::error_code ec = std::get<0>(ec_socket_result);
    tcp::socket socket = std::move(std::get<1>(ec_socket_result));
    if (options_.accept_filter) {
      ec = options_.accept_filter(ec);
      if (ec && socket.is_open()) socket.close();
    }
    if (stopping_ || ec == asio::error::operation_aborted) break;
    if (ec) {
      if (!co_await recover_from_accept_error(ec, failures)) break;
      continue;
    }
    failures = 0;
    active_.fetch_add(1);
    if (options_.once) {
      // Closed before the handler runs, so a second client is refused, never half-served.
      draining_once_ = true;
      acceptor_.close();
    }
    if (&w == &control_) {
      start_connection(w, std::move(socket));
    } else {
      asio::post(w.context, [this, &w, s = std::move(socket)]() mutable { start_connection(w, std::move(s)); });
    }
  }
}

// Returns false when the server cannot go on accepting.
asio::awaitable<bool> server_impl::recover_from_accept_error(std::error_code ec, unsigned& failures) {
  using namespace std::chrono_literals;
  if (transient_accept_error(ec)) co_return true;
  if (resource_accept_error(ec)) {
    // Existing connections keep running; the pending client waits in the backlog.
    if (failures == 0) warn(fmt::format("accept: {} (backing off)", ec.message()));
    failures = 1;
    pause_timer_.expires_after(50ms);
    co_await pause_timer_.async_wait(as_tuple_awaitable);
    co_return !stopping_;
  }
  ++failures;
  warn(fmt::format("accept: {}", ec.message()));
  if (failures < options_.reopen_after_failures) {
    pause_timer_.expires_after(10ms * failures);
    co_await pause_timer_.async_wait(as_tuple_awaitable);
    co_return !stopping_;
  }
  failures = 0;
  co_return co_await reopen_listener();
}

// The seed: repeated failures close the listener and open it again on the same port.
asio::awaitable<bool> server_impl::reopen_listener() {
  using namespace std::chrono_literals;
  startup_condition condition;
  for (int attempt = 0; attempt < 20 && !stopping_; ++attempt) {
    std::error_code ignored;
    acceptor_.close(ignored);
    bind_candidate again;
    {
      std::lock_guard lock(mutex_);
      again = bound_;
    }
    if (listen_on({again}, condition)) {
      warn(fmt::format("listener reopened on {}", endpoint_text(reinterpret_cast<sockaddr*>(&again.addr))));
      announce(announce_event::kind::listening);
      co_return true;
    }
    pause_timer_.expires_after(100ms);
    co_await pause_timer_.async_wait(as_tuple_awaitable);
  }
  if (stopping_) co_return false;
  condition.stage = startup_condition::phase::runtime;
  fail(condition);
  co_return false;
}

// On w's thread: set the socket up, register it, and hand it to its handler.
void server_impl::start_connection(worker& w, tcp::socket socket) {
  std::unique_ptr<connection> owned;
  try {
    owned = std::make_unique<connection>(std::move(socket), *this, w);
  } catch (const std::bad_alloc&) {
    connection_done();
    return;
  }
  connection& c = *owned.release();  // from here on, freed by closed()
  w.add(c);
  std::error_code ignored;
  if (options_.nodelay) c.socket.set_option(tcp::no_delay(true), ignored);
  if (options_.keepalive) c.socket.set_option(asio::socket_base::keep_alive(true), ignored);
  if (options_.connection_log) log_open(c);
  switch (options_.function) {
    case handler::echo: return start_echo(c);
    case handler::discard: return start_discard(c);
    default:
      asio::co_spawn(w.context, dispatch(c), [this, &c](std::exception_ptr e) {
        report_exception(name_, e);
        c.close();
      });
  }
}

void server_impl::closed(connection& c) noexcept {
  if (c.log) log_close(c);
  c.home->remove(c);
  delete &c;  // closes the socket
  connection_done();
}

asio::awaitable<void> server_impl::dispatch(connection& c) {
  switch (options_.function) {
    case handler::talk: co_await serve_talk(c); break;
    case handler::chargen: co_await serve_chargen(c); break;
    case handler::daytime: co_await serve_daytime(c); break;
    case handler::exec: co_await serve_exec(c, exec_); break;
    default: break;
  }
}

void server_impl::log_open(connection& c) {
  c.log = std::make_unique<connection_log_state>();
  c.log->since = std::chrono::steady_clock::now();
  connection_record& r = c.log->record;
  r.what = connection_record::kind::open;
  r.id = next_id_.fetch_add(1) + 1;
  // Addresses are taken now: an exec handler hands the socket to its child.
  const socket_endpoints e = endpoints_of(c.socket.native_handle());
  r.peer_address = e.peer_host;
  r.peer_port = e.peer_port;
  r.local_address = e.local_host;
  r.local_port = e.local_port;
  options_.connection_log(r);
}

void server_impl::log_close(connection& c) {
  connection_record& r = c.log->record;
  r.what = connection_record::kind::close;
  if (c.bytes_known) {
    r.bytes_in = c.bytes_in;
    r.bytes_out = c.bytes_out;
  }
  r.duration = std::chrono::steady_clock::now() - c.log->since;
  r.child_pid = c.child_pid;
  r.exit_status = c.exit_status;
  r.term_signal = c.term_signal;
  try {
    options_.connection_log(r);
  } catch (...) {
  }
}

void server_impl::connection_done() {
  if (active_.fetch_sub(1) == 1) asio::post(control_.context, [this] { check_finished(); });
}

void server_impl::terminate(bool immediate) {
  if (finished_.load()) return;
  asio::post(control_.context, [this, immediate] { begin_stop(immediate); });
}

void server_impl::begin_stop(bool immediate) {
  using namespace std::chrono_literals;
  if (finished_.load()) return;
  if (stopping_) immediate = true;  // a second request does not wait
  const bool first = !stopping_;
  stopping_ = true;
  std::error_code ignored;
  acceptor_.close(ignored);
  pause_timer_.cancel();
  if (first) {
    for (auto& w : workers_) {
      asio::post(w->context, [&w = *w] {
        for (connection* c = w.connections; c; c = c->next) signal_child(*c, SIGTERM);
      });
    }
  }
  if (immediate || options_.grace <= 0ms) {
    close_all();
  } else if (first) {
    grace_timer_.expires_after(options_.grace);
    grace_timer_.async_wait([this](std::error_code ec) {
      if (!ec) close_all();
    });
  }
  check_finished();
}

// The grace is over: close every connection and kill every child.
void server_impl::close_all() {
  using namespace std::chrono_literals;
  if (closed_all_) return;
  closed_all_ = true;
  grace_timer_.cancel();
  for (auto& w : workers_) {
    asio::post(w->context, [&w = *w] {
      for (connection* c = w.connections; c; c = c->next) {
        std::error_code ignored;
        c->cut = true;
        if (!c->spawning) c->socket.close(ignored);  // a spawner is reading its descriptor
        signal_child(*c, SIGKILL);
      }
    });
  }
  // Handlers end within moments of their sockets closing; never wait longer than this.
  grace_timer_.expires_after(2s);
  grace_timer_.async_wait([this](std::error_code ec) {
    if (!ec) finish();
  });
}

void server_impl::check_finished() {
  if ((stopping_ || draining_once_) && active_.load() == 0) finish();
}

void server_impl::finish() {
  if (finished_.exchange(true)) return;
  std::error_code ignored;
  acceptor_.close(ignored);
  grace_timer_.cancel();
  pause_timer_.cancel();
  if (!final_) announce(announce_event::kind::terminated);
  for (auto& w : workers_) {
    w->guard.reset();
    w->context.stop();
  }
}

void server_impl::fail(startup_condition condition) {
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
  if (options_.error.value_or(!options_.wait) && !returned_to_caller)
    std::fprintf(stderr, "startup-server: %s: fatal: %s\n", name_.c_str(), condition.message().c_str());
  stopping_ = true;
  close_all();
  finish();
}

void server_impl::announce(announce_event::kind what, const std::string& message) {
  if (!options_.announce) return;
  announce_event e;
  e.what = what;
  e.message = message;
  std::lock_guard lock(mutex_);
  if (bound_.len) {
    e.address = numeric_host(reinterpret_cast<const sockaddr*>(&bound_.addr));
    e.port = port_of(reinterpret_cast<const sockaddr*>(&bound_.addr));
    e.family = family_name(bound_.family);
  }
  options_.announce(e);
}

void server_impl::warn(const std::string& what) {
  std::fprintf(stderr, "startup-server: %s: warning: %s\n", name_.c_str(), what.c_str());
}

startup_condition server_impl::join() {
  std::lock_guard join_lock(join_mutex_);
  if (!joined_.load()) {
    for (auto& w : workers_) {
      if (w->thread.joinable() && w->thread.get_id() != std::this_thread::get_id()) w->thread.join();
    }
    joined_.store(true);
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
  try {
    auto impl = std::make_shared<detail::server_impl>(options);
    condition = impl->start();
    if (condition) {
      impl->join();
      return nullptr;
    }
    return std::make_unique<server>(std::move(impl));
  } catch (const std::system_error& e) {
    condition = {startup_condition::phase::runtime, e.code(), "unable to start"};
  } catch (const std::exception&) {
    condition = {startup_condition::phase::runtime, std::make_error_code(std::errc::not_enough_memory),
                 "unable to start"};
  }
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
