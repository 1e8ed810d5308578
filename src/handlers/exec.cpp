// --exec: a child per connection, on the socket itself or (create-stream) through pipes.
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <fmt/core.h>
#include <memory>

#include "core/resolve.hpp"
#include "handlers/children.hpp"
#include "handlers/coroutine.hpp"
#include "handlers/spawn.hpp"
#include "handlers/table.hpp"
#include "tls/tls_stream.hpp"

namespace startup_server::detail {
namespace {

// glibc 2.36's <sys/pidfd.h> lacks C linkage for C++; the system call is direct.
int open_pidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

constexpr std::size_t relay_chunk = 64 * 1024;
// After its child has ended, how long a connection reads and drops what the client still
// sends, so that closing does not reset the connection before the client has read the
// answer (a lingering close).
constexpr auto linger_time = std::chrono::seconds(2);
// When a relay fails, how long the child has to go after SIGTERM before SIGKILL.
constexpr auto relay_kill_after = std::chrono::seconds(1);

// The connection's child. The registry owns the process (it reaps it whatever happens to
// the connection); this owns the pidfd, through `watch`, and nothing else.
struct exec_child final : handler_state {
  exec_child(const asio::any_io_executor& ex, child_registry& r) : watch(ex), registry(&r) {}
  ~exec_child() override {
    // A connection freed while its child runs (a forced end): kill it; the registry reaps.
    if (running) registry->signal(pid, SIGKILL);
  }
  void describe(connection_record& r) const override {
    r.child_pid = pid;
    r.exit_status = status.exit_status;
    r.term_signal = status.term_signal;
  }

  pid_t pid = 0;
  bool running = false;
  asio::posix::stream_descriptor watch;  // the pidfd, readable once the child has exited
  child_registry* registry;
  child_status status;
};

bool is_shortage(const std::error_code& ec) {
  return ec == std::errc::too_many_files_open || ec == std::errc::too_many_files_open_in_system ||
         ec == std::errc::not_enough_memory || ec == std::errc::resource_unavailable_try_again;
}

// What a PROXY header said beyond the endpoints: the proxy's address, the header's
// version and command, and the TLVs kept on the connection.
void add_proxy_environment(connection& c, const peer_identity& who, std::vector<std::string>& env) {
  if (!who.proxy) return;
  env.push_back("PROXYREMOTEIP=" + numeric_host(who.proxy->data()));
  env.push_back("PROXYREMOTEPORT=" + std::to_string(who.proxy->port()));
  env.push_back("PROXY_VERSION=" + std::to_string(who.proxy_version));
  env.push_back(std::string("PROXY_COMMAND=") + (who.proxy_local ? "LOCAL" : "PROXY"));
  if (!c.proxied) return;
  const proxy_details& d = *c.proxied;
  const std::pair<const char*, const std::string*> named[] = {
      {"PROXY_ALPN=", &d.alpn},          {"PROXY_AUTHORITY=", &d.authority}, {"PROXY_UNIQUE_ID=", &d.unique_id},
      {"SSL_PROTOCOL=", &d.ssl_protocol}, {"SSL_CIPHER=", &d.ssl_cipher},     {"SSL_PEER_CERT_CN=", &d.ssl_cn},
  };
  // The server's own TLS, if any, is the client's: the balancer's TLS facts then stay out.
  for (const auto& [name, value] : named)
    if (!value->empty() && !(c.tls && std::string_view(name).rfind("SSL_", 0) == 0)) env.push_back(name + *value);
}

// The UCSPI variables for c (from its identity, as admission left it) on top of the
// server's environment.
std::vector<std::string> ucspi_environment(connection& c, const exec_plan& plan) {
  std::vector<std::string> env;
  env.reserve(plan.base_env.size() + 5);
  env.assign(plan.base_env.begin(), plan.base_env.end());
  env.emplace_back("PROTO=TCP");
  peer_identity& who = c.identity();
  const tcp::endpoint& local = local_endpoint(who, c.plain.plain_socket());
  env.push_back("TCPLOCALIP=" + numeric_host(local.data()));
  env.push_back("TCPLOCALPORT=" + std::to_string(local.port()));
  env.push_back("TCPREMOTEIP=" + numeric_host(who.remote.data()));
  env.push_back("TCPREMOTEPORT=" + std::to_string(who.remote.port()));
  add_proxy_environment(c, who, env);
  if (c.tls) append_tls_environment(c.tls->session(), env);
  return env;
}

// Waits for the child to exit without blocking the loop (its pidfd turns readable; without
// one, descriptors being short, it polls), then lets the registry signal what is left of
// its process group and reap it. With kill_after, SIGKILL follows if it is not gone by then.
asio::awaitable<void> wait_child(exec_child& child, std::chrono::milliseconds kill_after = {}) {
  using namespace std::chrono_literals;
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer killer(executor);
  if (kill_after > 0ms) {
    killer.expires_after(kill_after);
    // Touches only the registry, which outlives every connection.
    killer.async_wait([registry = child.registry, pid = child.pid](std::error_code ec) {
      if (!ec) registry->signal(pid, SIGKILL);
    });
  }
  asio::steady_timer poll(executor);
  for (;;) {
    bool polled = true;
    if (child.watch.is_open()) {
      auto waited = co_await child.watch.async_wait(asio::posix::stream_descriptor::wait_read, as_tuple_awaitable);
      polled = static_cast<bool>(std::get<0>(waited));
    }
    if (auto status = child.registry->reap_if_exited(child.pid, SIGTERM)) {
      child.status = *status;
      break;
    }
    if (polled) {
      poll.expires_after(20ms);
      co_await poll.async_wait(as_tuple_awaitable);
    }
  }
  child.running = false;
  killer.cancel();
  std::error_code ignored;
  child.watch.close(ignored);
}

bool make_blocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0;
}

// The child could not be started: say so (once per episode for a shortage) and log why.
void spawn_failed(connection& c, const exec_plan& plan, const std::error_code& ec) {
  if (ec == std::errc::operation_canceled) {
    c.set_reason("cut: the server stopped before the child started");
    return;
  }
  const std::string what = fmt::format("unable to run {}: {}", plan.argv[0], ec.message());
  if (is_shortage(ec)) c.owner->resource_shortage(what);
  else c.owner->warn(what);
  c.set_reason("refused: " + what);
}

exec_child& attach_child(connection& c, const exec_plan& plan, const asio::any_io_executor& ex) {
  auto child = std::make_unique<exec_child>(ex, *plan.children);
  exec_child& ref = *child;
  c.state = std::move(child);
  return ref;
}

void started(exec_child& child, pid_t pid) {
  child.pid = pid;
  child.running = true;
  const int pidfd = open_pidfd(pid);
  std::error_code ignored;
  if (pidfd >= 0) child.watch.assign(pidfd, ignored);
}

// Runs on a spawner thread: the stop check and the adoption happen there, so a child
// spawned as the server stops is signalled at once and reaped even if the loop is gone.
pid_t spawn_adopted(const exec_plan& plan, const std::vector<std::string>& env, int in_fd, int out_fd,
                    std::error_code& ec) {
  if (plan.children->stopping()) {
    ec = std::make_error_code(std::errc::operation_canceled);
    return -1;
  }
  const pid_t pid = spawn_child(plan.argv, env, in_fd, out_fd, plan.stderr_fd, ec);
  if (pid > 0) plan.children->adopt(pid);
  return pid;
}

asio::awaitable<pid_t> spawn_task(const exec_plan& plan, const std::vector<std::string>& env, int in_fd,
                                  int out_fd, std::error_code& ec) {
  co_return spawn_adopted(plan, env, in_fd, out_fd, ec);
}

// Spawns on the spawner threads and resumes on the connection's own loop.
asio::awaitable<pid_t> spawn_off_loop(connection& c, const exec_plan& plan, int in_fd, int out_fd,
                                      std::error_code& ec) {
  const std::vector<std::string> env = ucspi_environment(c, plan);
  if (!plan.spawner) co_return spawn_adopted(plan, env, in_fd, out_fd, ec);
  c.spawning = true;
  auto spawned = asio::co_spawn(*plan.spawner, spawn_task(plan, env, in_fd, out_fd, ec), asio::use_awaitable);
  const pid_t pid = co_await std::move(spawned);
  c.spawning = false;
  co_return pid;
}

// The child has ended: send our FIN, then read and drop what the client still sends
// (until its EOF, for at most linger_time) before closing, so an answer written without
// reading the request reaches the client instead of a reset.
asio::awaitable<void> linger(connection& c) {
  if (c.cut) co_return;
  byte_stream& stream = c.stream();
  if (tcp::socket* socket = c.plain_socket()) {
    std::error_code ignored;
    socket->non_blocking(true, ignored);  // the child made the shared description blocking
  }
  stream.shutdown_send();
  asio::steady_timer deadline(co_await asio::this_coro::executor);
  deadline.expires_after(linger_time);
  // The expiry may already be queued when the reading ends: `lingering` tells it whether
  // the stream is still there to cancel.
  auto lingering = std::make_shared<bool>(true);
  deadline.async_wait([&stream, lingering](std::error_code timer_ec) {
    if (!timer_ec && *lingering) stream.cancel();
  });
  std::unique_ptr<char[]> sink(new char[relay_chunk]);
  for (std::error_code ec; !ec;) co_await stream.read_some(asio::buffer(sink.get(), relay_chunk), ec);
  *lingering = false;
  deadline.cancel();
}

asio::awaitable<void> serve_socket_child(connection& c, const exec_plan& plan) {
  exec_child& child = attach_child(c, plan, co_await asio::this_coro::executor);
  tcp::socket* socket = c.plain_socket();
  if (!socket) {
    // A decorator (TLS) stands between: the child would see its bytes, not the client's.
    spawn_failed(c, plan, std::make_error_code(std::errc::operation_not_supported));
    co_return;
  }
  const int fd = socket->native_handle();
  make_blocking(fd);  // O_NONBLOCK lives on the shared file description
  std::error_code ec;
  const pid_t pid = co_await spawn_off_loop(c, plan, fd, fd, ec);
  if (pid < 0) co_return spawn_failed(c, plan, ec);
  started(child, pid);
  // The child owns the conversation. The server keeps its copy of the socket, untouched,
  // for the lingering close once the child has ended.
  c.bytes_known = false;
  co_await wait_child(child);
  co_await linger(c);
}

// The relay between the client and a --create-stream child. When either side fails, the
// whole connection ends: both pipes closed, the child signalled, reaped and logged.
struct relay {
  connection& c;
  exec_child& child;
  asio::posix::stream_descriptor to_child, from_child;
  bool failed = false;

  void fail() {
    if (failed) return;
    failed = true;
    std::error_code ignored;
    to_child.close(ignored);
    from_child.close(ignored);
    c.stream().cancel();
    child.registry->signal(child.pid, SIGTERM);
  }
};

// Socket → child's stdin. Ends at client EOF, closing the pipe (the child sees EOF). The
// child closing its stdin stops the reading; a client that resets fails the relay.
asio::awaitable<void> relay_in(relay& r) {
  std::unique_ptr<char[]> buf(new char[relay_chunk]);
  for (;;) {
    std::error_code ec;
    const std::size_t n = co_await r.c.stream().read_some(asio::buffer(buf.get(), relay_chunk), ec);
    if (ec) {
      if (ec != asio::error::eof && ec != asio::error::operation_aborted) r.fail();
      break;
    }
    auto written = co_await asio::async_write(r.to_child, asio::buffer(buf.get(), n), as_tuple_awaitable);
    if (std::get<0>(written)) break;
  }
  std::error_code ignored;
  r.to_child.close(ignored);
}

// Child's stdout → socket. Ends at the child's EOF with the server's FIN to the client;
// a client that no longer takes output fails the relay.
asio::awaitable<void> relay_out(relay& r) {
  std::unique_ptr<char[]> buf(new char[relay_chunk]);
  for (;;) {
    auto read = co_await r.from_child.async_read_some(asio::buffer(buf.get(), relay_chunk), as_tuple_awaitable);
    if (std::get<0>(read)) break;
    std::error_code ec;
    co_await r.c.stream().write(asio::buffer(buf.get(), std::get<1>(read)), ec);
    if (ec) {
      r.fail();
      co_return;
    }
  }
  if (!r.failed) r.c.stream().shutdown_send();
}

asio::awaitable<void> serve_piped_child(connection& c, const exec_plan& plan) {
  auto executor = co_await asio::this_coro::executor;
  exec_child& child = attach_child(c, plan, executor);
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) co_return spawn_failed(c, plan, {errno, std::system_category()});
  if (::pipe2(out, O_CLOEXEC) != 0) {
    const std::error_code ec(errno, std::system_category());
    ::close(in[0]), ::close(in[1]);
    co_return spawn_failed(c, plan, ec);
  }
  relay r{c, child, asio::posix::stream_descriptor(executor, in[1]), asio::posix::stream_descriptor(executor, out[0])};
  std::error_code ec;
  const pid_t pid = co_await spawn_off_loop(c, plan, in[0], out[1], ec);
  ::close(in[0]);
  ::close(out[1]);
  if (pid < 0) co_return spawn_failed(c, plan, ec);
  started(child, pid);
  // relay_in runs on its own: it may outlive the child (a client that never closes) and
  // is cut short once the child is gone and its output delivered.
  asio::steady_timer in_done(executor, asio::steady_timer::time_point::max());
  bool in_finished = false;
  asio::co_spawn(executor, relay_in(r), [&](std::exception_ptr) {
    in_finished = true;
    in_done.cancel();
  });
  co_await relay_out(r);
  if (r.failed) {
    c.set_reason("failed: the client stopped taking output or reset");
    co_await wait_child(child, relay_kill_after);
  } else {
    co_await wait_child(child);
  }
  // Nothing more goes to the child: a write it never took is cancelled with the pipe.
  r.to_child.close(ec);
  if (!in_finished) {
    c.stream().cancel();
    co_await in_done.async_wait(as_tuple_awaitable);
  }
  if (!r.failed) co_await linger(c);
}

asio::awaitable<void> serve_exec(connection& c, const exec_plan& plan) {
  if (plan.create_stream) co_await serve_piped_child(c, plan);
  else co_await serve_socket_child(c, plan);
}

}  // namespace

void start_exec(connection& c) { spawn_handler(c, serve_exec(c, c.owner->exec())); }

}  // namespace startup_server::detail
