// The accept loop, and what leads to it (resolving, binding) and follows it (admission).
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <cstring>
#include <fmt/core.h>

#include "core/errors.hpp"
#include "core/listener.hpp"
#include "core/privileges.hpp"
#include "core/sockopts.hpp"
#include "core/systemd.hpp"
#include "tls/tls_handshake.hpp"
#include "tls/tls_stream.hpp"
#include "handlers/table.hpp"
#include "server/fault_hooks.hpp"
#include "server/guards.hpp"
#include "server/proxy_step.hpp"
#include "stream/idle_timer.hpp"
#include "stream/trace.hpp"
#include "server/server_impl.hpp"

namespace startup_server::detail {
namespace {

constexpr auto as_tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

}  // namespace

asio::awaitable<void> server_impl::accept_loop() {
  unsigned failures = 0;
  while (phase_.load() == lifecycle_phase::serving) {
    // At the limit (one at a time, for --stdio): the next client waits in the backlog until
    // one has gone.
    while (capacity_ && active_.load() >= capacity_ && phase_.load() == lifecycle_phase::serving) {
      idle_timer_.expires_at(asio::steady_timer::time_point::max());
      co_await idle_timer_.async_wait(as_tuple_awaitable);
    }
    if (phase_.load() != lifecycle_phase::serving) break;
    worker& w = *workers_[next_worker_];
    next_worker_ = (next_worker_ + 1) % workers_.size();
    auto ec_socket_result = co_await acceptor_.async_accept(w.context, accepted_peer_, as_tuple_awaitable);
    std::error_code ec = std::get<0>(ec_socket_result);
    tcp::socket socket = std::move(std::get<1>(ec_socket_result));
    if (faults().accept) {
      ec = faults().accept(ec);
      if (ec && socket.is_open()) socket.close();
    }
    if (ec == asio::error::operation_aborted) break;
    if (phase_.load() != lifecycle_phase::serving) {
      // Accepted as the stop began: served in the grace period, as the queue is.
      if (!ec && serve_queued_) {
        active_.fetch_add(1);
        hand_over(w, std::move(socket), accepted_peer_);
      }
      break;
    }
    if (ec) {
      if (!co_await recover_from_accept_error(ec, failures)) break;
      continue;
    }
    failures = 0;
    active_.fetch_add(1);
    // A look at the accept queue now and then: a burst that overflows a small backlog is
    // refused or delayed by the kernel, and nobody would know why.
    ++accepted_;
    if (!queue_warned_.load() && (accepted_ <= 8 || accepted_ % 8 == 0)) check_accept_queue();
    // Closed before the handler runs, so a second client is refused, never half-served.
    if (options_.once) request_stop(stop_request::once_served);
    hand_over(w, std::move(socket), accepted_peer_);
  }
}

void server_impl::hand_over(worker& w, tcp::socket socket, const tcp::endpoint& peer) {
  if (&w == &control_) return start_connection(w, std::move(socket), peer);
  asio::post(w.context, [this, &w, s = std::move(socket), peer]() mutable { start_connection(w, std::move(s), peer); });
}

// A graceful stop closes the listener, and the kernel resets every client still in its
// queue: those it completed the handshake with already, which a balancer has sent bytes
// to and will not retry. They are accepted first and served in the grace period, as if
// they had come a moment sooner (up to the connection limit; beyond it they are reset).
void server_impl::take_queued() {
  if (!acceptor_.is_open()) return;
  std::error_code ec;
  acceptor_.non_blocking(true, ec);
  for (int n = 0; !ec && n < 65536; ++n) {
    if (capacity_ && active_.load() >= capacity_) return;
    worker& w = *workers_[next_worker_];
    tcp::socket socket(w.context);
    tcp::endpoint peer;
    acceptor_.accept(socket, peer, ec);
    if (ec) {
      if (transient_accept_error(ec)) ec.clear();
      continue;
    }
    next_worker_ = (next_worker_ + 1) % workers_.size();
    active_.fetch_add(1);
    ++accepted_;
    hand_over(w, std::move(socket), peer);
  }
}

void server_impl::check_accept_queue() {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(acceptor_.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return;
  // On a listener, tcpi_unacked is the accept queue's length and tcpi_sacked its limit.
  if (info.tcpi_sacked == 0 || info.tcpi_unacked < info.tcpi_sacked) return;
  if (queue_warned_.exchange(true)) return;
  tell(diagnostic{diagnostic::kind::warning,
                  fmt::format("accept queue full (backlog {}): clients may be refused or delayed", info.tcpi_sacked),
                  diagnostic::subject::accept_queue_full});
}

// Returns false when the server cannot go on accepting.
asio::awaitable<bool> server_impl::recover_from_accept_error(std::error_code ec, unsigned& failures) {
  using namespace std::chrono_literals;
  if (transient_accept_error(ec)) co_return true;
  if (resource_accept_error(ec)) {
    // Existing connections keep running; the pending client waits in the backlog.
    resource_shortage(fmt::format("accept: {} (backing off)", ec.message()));
    pause_timer_.expires_after(50ms);
    co_await pause_timer_.async_wait(as_tuple_awaitable);
    co_return phase_.load() == lifecycle_phase::serving;
  }
  ++failures;
  warn(fmt::format("accept: {}", ec.message()));
  if (failures < options_.reopen_after_failures) {
    pause_timer_.expires_after(10ms * failures);
    co_await pause_timer_.async_wait(as_tuple_awaitable);
    co_return phase_.load() == lifecycle_phase::serving;
  }
  failures = 0;
  co_return co_await reopen_listener();
}

// The seed: repeated failures close the listener and open it again on the same port.
asio::awaitable<bool> server_impl::reopen_listener() {
  using namespace std::chrono_literals;
  startup_condition condition;
  if (inherited_) {
    // Only its maker can make it again: the server ends, and the service manager decides.
    std::error_code ignored;
    acceptor_.close(ignored);
    fail({startup_condition::phase::runtime, std::make_error_code(std::errc::io_error),
          fmt::format("the inherited listener on {} keeps failing and cannot be reopened",
                      endpoint_text(reinterpret_cast<sockaddr*>(&bound_.addr)))});
    co_return false;
  }
  for (int attempt = 0; attempt < 20 && phase_.load() == lifecycle_phase::serving; ++attempt) {
    std::error_code ignored;
    acceptor_.close(ignored);
    bind_candidate again;
    {
      std::lock_guard lock(mutex_);
      again = bound_;
    }
    const std::error_code injected = faults().reopen ? faults().reopen() : std::error_code();
    if (injected) {
      condition = {startup_condition::phase::runtime, injected,
                   fmt::format("unable to reopen the listener on {}", endpoint_text(reinterpret_cast<sockaddr*>(&again.addr)))};
    } else if (listen_on({again}, condition)) {
      warn(fmt::format("listener reopened on {}", endpoint_text(reinterpret_cast<sockaddr*>(&again.addr))));
      announce(announce_event::kind::listening);
      co_return true;
    }
    pause_timer_.expires_after(100ms);
    co_await pause_timer_.async_wait(as_tuple_awaitable);
  }
  if (phase_.load() != lifecycle_phase::serving) co_return false;
  condition.stage = startup_condition::phase::runtime;
  fail(condition);
  co_return false;
}

// On w's thread: set the connection up, admit it, and hand it to its handler.
void server_impl::start_connection(worker& w, tcp::socket socket, const tcp::endpoint& peer) {
  std::unique_ptr<connection> owned;
  try {
    owned = std::make_unique<connection>(std::move(socket), *this, w);
    if (faults().decorate) owned->decorated = faults().decorate(owned->plain);
  } catch (const std::bad_alloc&) {
    resource_shortage("out of memory for a connection");
    connection_done();
    return;
  }
  connection& c = *owned.release();  // from here on, freed by closed()
  w.add(c);
  c.id = next_id_.fetch_add(1) + 1;
  tcp::socket& s = *c.plain.plain_socket();
  std::error_code ignored;
  s.non_blocking(true, ignored);  // writes are tried at once, reads before waiting
  if (options_.nodelay) s.set_option(tcp::no_delay(true), ignored);
  if (options_.keepalive) s.set_option(asio::socket_base::keep_alive(true), ignored);
  if (accepted_options_) {
    std::string failed;
    std::error_code ec;
    const bool first = c.id == 1;
    if (!apply_socket_options(s.native_handle(), peer.protocol().family(), options_.sockets, sockopt_target::accepted,
                              first ? &first_reports_ : nullptr, failed, ec)) {
      warn(fmt::format("unable to set {} on connection #{}: {}", failed, c.id, ec.message()));
    }
  }
  peer_identity& who = c.identity();
  who.remote = peer;
  if (specific_local_) {
    who.local = *specific_local_;
    who.local_known = true;
  }
  try {
    decorate(c);
  } catch (const std::bad_alloc&) {
    resource_shortage("out of memory for a connection");
    c.set_reason("refused: out of memory");
    return c.close();
  }
  if (admission_.empty()) return begin_serving(c);
  asio::co_spawn(w.context, admit_then_serve(c), [this, &c](std::exception_ptr e) {
    if (!e) return;
    warn("admission: " + exception_text(e));
    c.close();
  });
}

asio::awaitable<void> server_impl::admit_then_serve(connection& c) {
  const admission_verdict verdict = co_await run_admission(admission_, c);
  if (verdict.admitted) {
    c.admitted = true;
    co_return begin_serving(c);
  }
  // One line for a refusal; the peer never reaches a handler or a child.
  log_refused(c, verdict.reason);
  c.close();
}

// Handlers whose bytes the server never sees (raw-socket exec, stdio, user functions)
// keep the plain socket: no trace or idle timer can stand in between. TLS can, but for
// stdio and user functions only (their thread is bridged to it, see start_blocking).
bool server_impl::carries_bytes() const noexcept {
  return (options_.function != handler::exec || options_.create_stream) && options_.function != handler::user &&
         options_.function != handler::stdio;
}

// TLS needs a handler whose bytes pass through the server; its handshake is the last
// admission step, after every rule that can refuse a client more cheaply.
bool server_impl::set_up_tls(startup_condition& condition) {
  const auto usage = [&](std::string what) {
    condition = {startup_condition::phase::usage, std::make_error_code(std::errc::invalid_argument), std::move(what)};
    return false;
  };
  if (options_.function == handler::exec && !options_.create_stream)
    return usage("TLS with exec needs create_stream: a child holding the socket would see the ciphertext");
  if (options_.tls->handshake_timeout <= std::chrono::milliseconds(0)) return usage("the TLS handshake timeout must be positive");
  std::string problem;
  tls_ = tls_context::make(*options_.tls, problem);
  if (!tls_) return usage(problem);
  admission_.push_back(std::make_shared<tls_handshake_step>());
  return true;
}

// The decorators the options ask for, over the plain stream: TLS first, so the trace sees
// the bytes as the handler does (plaintext), and the idle timer sees every byte either way.
void server_impl::decorate(connection& c) {
  const bool carried = carries_bytes();
  if (!tls_ && (!carried || (!options_.trace && options_.idle_timeout <= std::chrono::milliseconds(0)))) return;
  std::unique_ptr<byte_stream> stream;
  if (tls_) {
    auto layer = std::make_unique<tls_stream>(c.plain, *tls_);
    c.tls = layer.get();
    stream = std::move(layer);
  }
  if (!carried) {
    c.decorated = std::move(stream);
    return;
  }
  if (options_.trace) {
    auto tell = [this](const traffic_record& r) {
      try {
        options_.trace(r);
      } catch (...) {
        warn("trace callback: " + exception_text(std::current_exception()));
      }
    };
    if (stream) stream = std::make_unique<trace>(std::move(stream), c.id, tell);
    else stream = std::make_unique<trace>(c.plain, c.id, tell);
  }
  if (options_.idle_timeout > std::chrono::milliseconds(0)) {
    auto on_idle = [&c] { c.set_reason("idle"); };
    if (stream) stream = std::make_unique<idle_timer>(std::move(stream), c.home->context.get_executor(), options_.idle_timeout, on_idle);
    else stream = std::make_unique<idle_timer>(c.plain, c.home->context.get_executor(), options_.idle_timeout, on_idle);
  }
  c.decorated = std::move(stream);
}

// The PROXY header step, address rules, the per-peer limit and the connection limit, from
// the options. The header comes first, so that the rules and the limit see the client.
bool server_impl::build_guards(startup_condition& condition) {
  auto usage = [&condition](std::string message) {
    condition = {startup_condition::phase::usage, std::make_error_code(std::errc::invalid_argument),
                 std::move(message)};
    return false;
  };
  std::vector<cidr> allow, deny, proxies;
  for (auto* rules : {&options_.allow, &options_.deny, &options_.proxy_from}) {
    const char* what = rules == &options_.allow ? "allow" : rules == &options_.deny ? "deny" : "proxy_from";
    for (const auto& text : *rules) {
      std::string problem;
      auto rule = parse_cidr(text, problem);
      if (!rule) return usage(fmt::format("{} rule {}", what, problem));
      (rules == &options_.allow ? allow : rules == &options_.deny ? deny : proxies).push_back(*rule);
    }
  }
  if (options_.proxy_protocol && proxies.empty())
    return usage("proxy_protocol needs proxy_from: the proxies trusted to send the header");
  if (!options_.proxy_protocol && !proxies.empty()) return usage("proxy_from is for proxy_protocol, which is off");
  if (options_.proxy_protocol && options_.proxy_timeout <= std::chrono::milliseconds(0))
    return usage("proxy_timeout must be positive");
  admission_chain guards;
  if (options_.proxy_protocol) guards.push_back(std::make_shared<proxy_header_step>(std::move(proxies), options_.proxy_timeout));
  if (!allow.empty() || !deny.empty()) guards.push_back(std::make_shared<address_rules>(std::move(allow), std::move(deny)));
  if (options_.max_per_ip) guards.push_back(std::make_shared<per_peer_limit>(options_.max_per_ip));
  admission_.insert(admission_.begin(), guards.begin(), guards.end());
  const bool costly = options_.function == handler::exec || options_.function == handler::user ||
                      options_.function == handler::stdio;
  capacity_ = options_.max_connections.value_or(costly ? 100 : 0);
  if (handler_for(options_.function).one_at_a_time) capacity_ = 1;
  return true;
}

// Admitted: log the open record (with the identity admission left) and start the handler.
void server_impl::begin_serving(connection& c) {
  if (options_.connection_log) log_open(c);
  // A connection accepted just before a cut is cut too.
  if (phase_.load() >= lifecycle_phase::cutting) {
    c.set_reason("cut: the server stopped");
    return c.close();
  }
  handler_for(options_.function).start(c);
}

asio::awaitable<void> server_impl::run() {
  std::error_code ec;
  const std::string where = options_.local_address.empty() ? "*" : options_.local_address;
  startup_condition condition;
  // An inherited listener is ours from the first moment, so every way out closes it.
  listener_taken_ = options_.listener_fd >= 0;
  if (options_.listener_fd >= 0 && !adopt_listener(condition)) {
    fail(condition);
    co_return;
  }
  if (options_.backlog < 1) {
    fail({startup_condition::phase::usage, std::make_error_code(std::errc::invalid_argument),
          fmt::format("backlog {} is not a positive number", options_.backlog)});
    co_return;
  }
  if (!options_.exec_stderr.empty()) {
    exec_.stderr_fd = ::open(options_.exec_stderr.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (exec_.stderr_fd < 0) {
      fail({startup_condition::phase::usage, std::error_code(errno, std::system_category()),
            fmt::format("unable to open '{}' for the children's stderr", options_.exec_stderr)});
      co_return;
    }
  }
  if ((options_.function == handler::user) != static_cast<bool>(options_.serve)) {
    fail({startup_condition::phase::usage, std::make_error_code(std::errc::invalid_argument),
          "handler::user and a `serve` function go together"});
    co_return;
  }
  if (options_.tls && !set_up_tls(condition)) {
    fail(condition);
    co_return;
  }
  std::vector<bind_candidate> candidates;
  if (!inherited_) {
    const std::uint16_t port = resolve_service(options_.service, ec);
    if (ec) {
      fail({startup_condition::phase::resolve, ec,
            fmt::format("unable to resolve service '{}' for {}", options_.service, where)});
      co_return;
    }
    candidates = bind_candidates(options_.local_address, port, options_.ipv6, ec);
    if (ec) {
      auto stage = ec == resolver_errc::contradicts_mode ? startup_condition::phase::usage
                                                        : startup_condition::phase::resolve;
      fail({stage, ec, fmt::format("unable to resolve address '{}' for port {}", where, port)});
      co_return;
    }
  }
  if (!build_guards(condition)) {
    fail(condition);
    co_return;
  }
  std::optional<run_as> who;
  if (!options_.user.empty()) {
    std::string problem;
    who = look_up_user(options_.user, problem);
    if (!who) {
      fail({startup_condition::phase::usage, std::make_error_code(std::errc::invalid_argument),
            fmt::format("user '{}': {}", options_.user, problem)});
      co_return;
    }
  }
  if ((!inherited_ && !listen_on(candidates, condition)) ||
      !probe_accepted_options(bound_.family, options_, condition)) {
    fail(condition);
    co_return;
  }
  accepted_options_ = has_accepted_options(options_.sockets);
  // Bound (a port below 1024 needs root): now run as the user, before serving anyone.
  if (who && !drop_privileges(*who, ec)) {
    fail({startup_condition::phase::runtime, ec, fmt::format("unable to run as user '{}'", options_.user)});
    co_return;
  }
  if (use_lanes_ && !start_lanes(condition)) {
    fail(condition);
    co_return;
  }
  phase_ = lifecycle_phase::serving;
  announce(announce_event::kind::listening);
  {
    std::lock_guard lock(mutex_);
    startup_done_ = true;
  }
  started_cv_.notify_all();
  if (!use_lanes_) co_await accept_loop();
}

// One lane per thread. They wait on the one listener together (EPOLLEXCLUSIVE: the kernel
// wakes one of them per connection), each through a descriptor of its own. With --reuseport
// the user has agreed to share the port, and each lane gets a listener of its own on it
// instead: the kernel spreads the connections among them.
bool server_impl::start_lanes(startup_condition& condition) {
  lane_settings settings;
  settings.echo = options_.function == handler::echo;
  settings.nodelay = options_.nodelay;
  settings.keepalive = options_.keepalive;
  settings.family = bound_.family;
  settings.accepted = accepted_options_ ? &options_.sockets : nullptr;
  settings.failures_before_giving_up = std::max(1u, options_.reopen_after_failures);
  const unsigned count = thread_count(options_.threads);
  settings.shared_listener = count > 1 && !options_.reuseport;
  std::error_code ec;
  std::vector<int> fds{acceptor_.release(ec)};
  if (ec) {
    condition = {startup_condition::phase::listen, portable(ec),
                 fmt::format("unable to listen on {}", endpoint_text(reinterpret_cast<const sockaddr*>(&bound_.addr)))};
    return false;
  }
  while (fds.size() < count) {
    const int fd = settings.shared_listener ? ::fcntl(fds.front(), F_DUPFD_CLOEXEC, 0)
                                            : open_listener(bound_, options_, condition);
    if (fd < 0) {
      if (settings.shared_listener)
        condition = {startup_condition::phase::listen, std::error_code(errno, std::system_category()),
                     fmt::format("unable to listen on {}", endpoint_text(reinterpret_cast<const sockaddr*>(&bound_.addr)))};
      for (int f : fds) ::close(f);
      return false;
    }
    fds.push_back(fd);
  }
  std::size_t taken = 0;  // fds[0, taken) belong to lanes; a lane's constructor owns its fd even when it throws
  const auto refuse = [&](std::error_code code, std::size_t first_left) {
    for (std::size_t i = first_left; i < fds.size(); ++i) ::close(fds[i]);
    condition = {startup_condition::phase::runtime, portable(code), "unable to start the serving threads"};
    return false;
  };
  try {
    lanes_.reserve(count);
    for (; taken < fds.size(); ++taken) {
      std::unique_ptr<fast_lane> lane(new (std::nothrow) fast_lane(*this, fds[taken], settings));
      if (!lane) return refuse(std::make_error_code(std::errc::not_enough_memory), taken);
      lanes_.push_back(std::move(lane));
    }
    for (std::size_t i = 0; i < lanes_.size(); ++i) {
      // The system keeps 15 bytes of a thread's name: shorten the name, not the number.
      const std::string suffix = fmt::format(" {}", i + 1);
      lanes_[i]->start(name_.substr(0, 15 - suffix.size()) + suffix);
    }
  } catch (const std::system_error& e) {
    return refuse(e.code(), taken + 1);
  } catch (const std::bad_alloc&) {
    return refuse(std::make_error_code(std::errc::not_enough_memory), taken + 1);
  }
  return true;
}

void server_impl::lane_queue_full(unsigned limit) noexcept {
  if (queue_warned_.exchange(true)) return;
  try {
    tell(diagnostic{diagnostic::kind::warning,
                    fmt::format("accept queue full (backlog {}): clients may be refused or delayed", limit),
                    diagnostic::subject::accept_queue_full});
  } catch (...) {
    // Out of memory for the message.
  }
}

// A lane's listener keeps failing: the server ends through the cut, as a runtime failure.
void server_impl::lane_listener_failed(std::error_code ec) noexcept {
  try {
    asio::post(control_.context, [this, ec] {
      fail({startup_condition::phase::runtime, ec,
            fmt::format("accepting on {} keeps failing", endpoint_text(reinterpret_cast<sockaddr*>(&bound_.addr)))});
    });
  } catch (...) {
    // Out of memory: the lane has stopped accepting; a stop request still ends the server.
  }
}

// The listener's address as the kernel has it (with the port it chose, and IPV6_V6ONLY).
static bind_candidate bound_of(int fd) {
  bind_candidate bound;
  bound.len = sizeof bound.addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound.addr), &bound.len);
  bound.family = bound.addr.ss_family;
  if (bound.family == AF_INET6) {
    int v6only = 0;
    socklen_t len = sizeof v6only;
    ::getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len);
    bound.v6only = v6only != 0;
  }
  return bound;
}

// The acceptor owns fd from here on; on failure fd is closed and condition says why.
bool server_impl::assign_acceptor(int fd, const bind_candidate& bound, startup_condition& condition) {
  std::error_code ec;
  acceptor_.assign(bound.family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
  if (!ec) return true;
  ::close(fd);
  condition = {startup_condition::phase::listen, portable(ec),
               fmt::format("unable to listen on {}", endpoint_text(reinterpret_cast<const sockaddr*>(&bound.addr)))};
  return false;
}

bool server_impl::listen_on(const std::vector<bind_candidate>& candidates, startup_condition& condition) {
  std::vector<socket_option_report> reports;
  int fd = open_first_listener(candidates, options_, condition, &reports);
  if (fd < 0) return false;
  const bind_candidate bound = bound_of(fd);
  if (!assign_acceptor(fd, bound, condition)) return false;
  take_listener(bound, std::move(reports));
  return true;
}

// The caller's listener (socket activation): checked, made non-blocking and close-on-exec,
// given the listener options that still apply after bind, and owned by the acceptor.
bool server_impl::adopt_listener(startup_condition& condition) {
  const int fd = options_.listener_fd;
  std::string problem;
  if (!is_tcp_listener(fd, problem)) {
    ::close(fd);
    condition = {startup_condition::phase::usage, std::make_error_code(std::errc::not_a_socket),
                 "inherited listener: " + problem};
    return false;
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  const bind_candidate bound = bound_of(fd);
  if (!assign_acceptor(fd, bound, condition)) return false;
  inherited_ = true;
  const socket_options& o = options_.sockets;
  if (o.bind_device || o.freebind || o.transparent || !o.listener.empty())
    warn("the listener is inherited: socket options that precede bind (device, freebind, transparent, "
         "listener options) are not set; set them where it is made (the .socket unit)");
  std::vector<socket_option_report> reports;
  std::string failed;
  std::error_code ec;
  if (!apply_socket_options(fd, bound.family, o, sockopt_target::listener_before_listen, &reports, failed, ec)) {
    condition = {startup_condition::phase::bind, ec,
                 fmt::format("unable to set {} on {}", failed, endpoint_text(reinterpret_cast<const sockaddr*>(&bound.addr)))};
    return false;
  }
  take_listener(bound, std::move(reports));
  return true;
}

void server_impl::take_listener(const bind_candidate& bound, std::vector<socket_option_report> reports) {
  if (bound.family == AF_INET6 ? !IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(&bound.addr)->sin6_addr)
                               : reinterpret_cast<const sockaddr_in*>(&bound.addr)->sin_addr.s_addr != htonl(INADDR_ANY)) {
    tcp::endpoint local;
    std::memcpy(local.data(), &bound.addr, bound.len);
    local.resize(bound.len);
    specific_local_ = local;
  }
  std::lock_guard lock(mutex_);
  bound_ = bound;
  listener_reports_ = std::move(reports);
}

}  // namespace startup_server::detail
