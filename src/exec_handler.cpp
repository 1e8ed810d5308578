// --exec: a child per connection, on the socket itself or (create-stream) through pipes.
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/co_spawn.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <cstdio>
#include <memory>

#include "connection.hpp"
#include "resolve.hpp"
#include "spawn.hpp"

namespace startup_server::detail {
namespace {

// glibc 2.36's <sys/pidfd.h> lacks C linkage for C++; the system calls are direct.
int open_pidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int send_pidfd_signal(int pidfd, int sig) { return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0)); }

constexpr auto as_tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);
constexpr std::size_t relay_chunk = 64 * 1024;

// The UCSPI variables for c on top of the server's environment.
std::vector<std::string> ucspi_environment(connection& c, const exec_plan& plan) {
  std::vector<std::string> env;
  env.reserve(plan.base_env.size() + 5);
  env.assign(plan.base_env.begin(), plan.base_env.end());
  env.emplace_back("PROTO=TCP");
  const socket_endpoints e = endpoints_of(c.socket.native_handle());
  if (e.ok) {
    env.push_back("TCPLOCALIP=" + e.local_host);
    env.push_back("TCPLOCALPORT=" + std::to_string(e.local_port));
    env.push_back("TCPREMOTEIP=" + e.peer_host);
    env.push_back("TCPREMOTEPORT=" + std::to_string(e.peer_port));
  }
  return env;
}

void record_status(connection& c, const siginfo_t& info) {
  if (info.si_code == CLD_EXITED) c.exit_status = info.si_status;
  else c.term_signal = info.si_status;
}

// Waits for the child without blocking the loop: the pidfd turns readable when it
// exits; then it is reaped. Without a pidfd (descriptors exhausted) it polls.
asio::awaitable<void> wait_child(connection& c) {
  using namespace std::chrono_literals;
  auto executor = co_await asio::this_coro::executor;
  siginfo_t info{};
  if (c.child_pidfd >= 0) {
    asio::posix::stream_descriptor watch(executor, c.child_pidfd);
    co_await watch.async_wait(asio::posix::stream_descriptor::wait_read, as_tuple_awaitable);
    watch.release();  // c.child_pidfd stays ours to close below
  }
  asio::steady_timer poll(executor);
  for (;;) {
    info = {};
    int rc = ::waitid(P_PID, static_cast<id_t>(c.child_pid), &info, WEXITED | WNOHANG);
    if (rc == 0 && info.si_pid != 0) break;
    if (rc != 0 && errno != EINTR) break;  // ECHILD: reaped elsewhere
    poll.expires_after(20ms);
    co_await poll.async_wait(as_tuple_awaitable);
  }
  if (info.si_pid) record_status(c, info);
  if (c.child_pidfd >= 0) ::close(c.child_pidfd);
  c.child_pidfd = -1;
  c.child_running = false;
}

bool make_blocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0;
}

void warn_spawn(const exec_plan& plan, const std::error_code& ec) {
  std::fprintf(stderr, "startup-server: warning: unable to run %s: %s\n", plan.argv[0].c_str(), ec.message().c_str());
}

bool started(connection& c, pid_t pid) {
  if (pid < 0) return false;
  c.child_pid = pid;
  c.child_running = true;
  c.child_pidfd = open_pidfd(pid);
  if (c.cut) signal_child(c, SIGKILL);  // the server stopped while it was being spawned
  return true;
}

asio::awaitable<pid_t> spawn_task(const exec_plan& plan, const std::vector<std::string>& env, int in_fd,
                                  int out_fd, std::error_code& ec) {
  co_return spawn_child(plan.argv, env, in_fd, out_fd, ec);
}

// Spawns on the spawner threads and resumes on the connection's own loop.
asio::awaitable<pid_t> spawn_off_loop(connection& c, const exec_plan& plan, int in_fd, int out_fd,
                                      std::error_code& ec) {
  const std::vector<std::string> env = ucspi_environment(c, plan);
  if (!plan.spawner) co_return spawn_child(plan.argv, env, in_fd, out_fd, ec);
  c.spawning = true;
  auto spawned = asio::co_spawn(*plan.spawner, spawn_task(plan, env, in_fd, out_fd, ec), asio::use_awaitable);
  const pid_t pid = co_await std::move(spawned);
  c.spawning = false;
  co_return pid;
}

// Socket → child's stdin. Ends at client EOF (closing the pipe: the child sees EOF).
asio::awaitable<void> relay_in(connection& c, asio::posix::stream_descriptor& to_child) {
  std::unique_ptr<char[]> buf(new char[relay_chunk]);
  for (;;) {
    auto ec_n_result = co_await c.socket.async_read_some(asio::buffer(buf.get(), relay_chunk), as_tuple_awaitable);
    const auto ec = std::get<0>(ec_n_result);
    const auto n = std::get<1>(ec_n_result);
    if (ec) break;
    c.bytes_in += n;
    auto written = co_await asio::async_write(to_child, asio::buffer(buf.get(), n), as_tuple_awaitable);
    if (std::get<0>(written)) break;
  }
  std::error_code ignored;
  to_child.close(ignored);
}

// Child's stdout → socket. Ends at the child's EOF with the server's FIN to the client.
asio::awaitable<void> relay_out(connection& c, asio::posix::stream_descriptor& from_child) {
  std::unique_ptr<char[]> buf(new char[relay_chunk]);
  for (;;) {
    auto ec_n_result = co_await from_child.async_read_some(asio::buffer(buf.get(), relay_chunk), as_tuple_awaitable);
    const auto ec = std::get<0>(ec_n_result);
    const auto n = std::get<1>(ec_n_result);
    if (ec) break;
    auto wec_w_result = co_await asio::async_write(c.socket, asio::buffer(buf.get(), n), as_tuple_awaitable);
    const auto wec = std::get<0>(wec_w_result);
    const auto w = std::get<1>(wec_w_result);
    c.bytes_out += w;
    if (wec) break;
  }
  std::error_code ignored;
  c.socket.shutdown(tcp::socket::shutdown_send, ignored);
}

// Reads and drops what the client still sent, so closing does not reset the connection
// before it has read our last bytes.
void drain(connection& c) {
  char sink[4096];
  std::error_code ec;
  c.socket.non_blocking(true, ec);
  for (int i = 0; i < 16 && !ec; ++i) c.socket.read_some(asio::buffer(sink), ec);
}

asio::awaitable<void> serve_socket_child(connection& c, const exec_plan& plan) {
  const int fd = c.socket.native_handle();
  make_blocking(fd);  // O_NONBLOCK lives on the shared file description
  std::error_code ec;
  const pid_t pid = co_await spawn_off_loop(c, plan, fd, fd, ec);
  if (!started(c, pid)) {
    warn_spawn(plan, ec);
    co_return;
  }
  // The child owns the connection now; our copy would keep it open after the child ends.
  c.bytes_known = false;
  c.socket.close(ec);
  co_await wait_child(c);
}

asio::awaitable<void> serve_piped_child(connection& c, const exec_plan& plan) {
  auto executor = co_await asio::this_coro::executor;
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) co_return;
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]), ::close(in[1]);
    co_return;
  }
  std::error_code ec;
  const pid_t pid = co_await spawn_off_loop(c, plan, in[0], out[1], ec);
  ::close(in[0]);
  ::close(out[1]);
  asio::posix::stream_descriptor to_child(executor, in[1]), from_child(executor, out[0]);
  if (!started(c, pid)) {
    warn_spawn(plan, ec);
    co_return;
  }
  // relay_in runs on its own: it may outlive the child (a client that never closes) and
  // is cut short once the child is gone and its output delivered.
  asio::steady_timer in_done(executor, asio::steady_timer::time_point::max());
  bool in_finished = false;
  asio::co_spawn(executor, relay_in(c, to_child), [&](std::exception_ptr) {
    in_finished = true;
    in_done.cancel();
  });
  co_await relay_out(c, from_child);
  co_await wait_child(c);
  if (!in_finished) {
    c.socket.cancel(ec);
    co_await in_done.async_wait(as_tuple_awaitable);
  }
  drain(c);
}

}  // namespace

connection::~connection() {
  if (child_running) {
    signal_child(*this, SIGKILL);
    ::waitpid(child_pid, nullptr, 0);
  }
  if (child_pidfd >= 0) ::close(child_pidfd);
}

void signal_child(connection& c, int sig) noexcept {
  if (!c.child_running) return;
  if (c.child_pidfd >= 0) send_pidfd_signal(c.child_pidfd, sig);
  else ::kill(c.child_pid, sig);
}

asio::awaitable<void> serve_exec(connection& c, const exec_plan& plan) {
  if (plan.create_stream) co_await serve_piped_child(c, plan);
  else co_await serve_socket_child(c, plan);
}

}  // namespace startup_server::detail
