// The fast lane: accept, read, write back (or drop), close, on one epoll loop per thread.
#include "server/fast_lane.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fmt/core.h>
#include <new>

#include "core/errors.hpp"
#include "core/process_name.hpp"
#include "core/sockopts.hpp"

namespace startup_server::detail {
namespace {

constexpr std::size_t chunk_size = 64 * 1024;
// Full buffers read in a row before the connection lets the others run.
constexpr int rounds_per_turn = 4;
// Connections taken from the accept queue per wake-up before the others run.
constexpr int accepts_per_turn = 16;
constexpr int events_per_wait = 64;
constexpr auto shortage_pause = std::chrono::milliseconds(50);

std::error_code last_error() { return {errno, std::system_category()}; }

bool would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

}  // namespace

// One connection: its socket and, when the client reads slower than it writes, the bytes
// it has not taken yet (while there are any, nothing more is read from it).
struct fast_lane::conn {
  explicit conn(int socket) noexcept : fd(socket) {}
  int fd;
  bool registered = false;      // in the epoll set (edge-triggered), from its first wait on
  bool writable_armed = false;  // EPOLLOUT is in its registration
  bool again = false;           // in again_: read on at the next turn
  // The client's FIN (or an error) was reported. A short read then does not mean the
  // socket is drained: the end may be queued behind the bytes, and its edge has passed.
  bool peer_closed = false;
  std::unique_ptr<char[]> pending;
  std::size_t pending_size = 0;
  std::size_t pending_off = 0;
  conn* prev = nullptr;
  conn* next = nullptr;
};

fast_lane::fast_lane(lane_owner& owner, int listen_fd, lane_settings settings)
    : owner_(owner), settings_(settings), listen_fd_(listen_fd) {
  try {
    buffer_.reset(new char[chunk_size]);
    again_.reserve(64);
  } catch (const std::bad_alloc&) {
    ::close(listen_fd_);
    throw;
  }
  const auto give_up = [this](const char* what) {
    const std::error_code ec = last_error();
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    ::close(listen_fd_);
    throw std::system_error(ec, what);
  };
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) give_up("epoll_create1");
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) give_up("eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &wake_fd_;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) give_up("epoll_ctl");
  if (!watch_listener()) give_up("epoll_ctl");
}

// Level-triggered: a queue left non-empty after a turn wakes the loop again.
bool fast_lane::watch_listener() noexcept {
  epoll_event ev{};
  ev.events = EPOLLIN | (settings_.shared_listener ? EPOLLEXCLUSIVE : 0u);
  ev.data.ptr = &listen_fd_;
  return ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) == 0;
}

fast_lane::~fast_lane() {
  send_command(quit);
  join();
  while (conns_) close(*conns_, false);
  close_listener();
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void fast_lane::start(std::string thread_name) {
  thread_ = std::thread([this, name = std::move(thread_name)] {
    set_thread_name(name);
    run();
  });
}

// With take_queued the owner counts the lane as one connection more until it has taken
// the queue: the lane calls lane_closed() for it once it has.
void fast_lane::stop_accepting(bool take_queued) noexcept {
  send_command(take_queued ? command(no_accept | take_queue) : no_accept);
}
void fast_lane::cut() noexcept { send_command(cut_all); }
void fast_lane::stop() noexcept { send_command(quit); }

void fast_lane::join() noexcept {
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void fast_lane::send_command(command c) noexcept {
  commands_.fetch_or(c);
  const std::uint64_t one = 1;
  // Fails only when the counter is full, and then the lane is due to wake anyway.
  [[maybe_unused]] const ssize_t ignored = ::write(wake_fd_, &one, sizeof one);
}

void fast_lane::run() noexcept {
  owner_.adopt_thread();
  epoll_event events[events_per_wait];
  std::vector<conn*> turn;
  turn.reserve(64);
  bool running = true;
  while (running) {
    int timeout = -1;
    if (!again_.empty()) {
      timeout = 0;
    } else if (paused_) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(resume_at_ - std::chrono::steady_clock::now());
      timeout = static_cast<int>(std::max<std::chrono::milliseconds::rep>(0, left.count()));
    }
    const int n = ::epoll_wait(epoll_fd_, events, events_per_wait, timeout);
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &wake_fd_) woken = true;
      else if (tag == &listen_fd_) accept_some();
      else on_event(*static_cast<conn*>(tag), events[i].events);
    }
    if (!again_.empty()) {
      turn.swap(again_);
      for (conn* c : turn) {
        c->again = false;
        serve(*c);
      }
      turn.clear();
    }
    if (woken) take_commands(running);
    if (paused_ && std::chrono::steady_clock::now() >= resume_at_) resume_accepting();
  }
}

void fast_lane::take_commands(bool& running) noexcept {
  std::uint64_t count;
  [[maybe_unused]] const ssize_t ignored = ::read(wake_fd_, &count, sizeof count);
  const unsigned c = commands_.exchange(0);
  if ((c & take_queue) && !(c & (cut_all | quit))) take_queued();
  if (c & (no_accept | cut_all | quit)) close_listener();
  if (c & take_queue) owner_.lane_closed();  // the count stop_accepting(true) added for this lane
  if (c & cut_all) {
    for (conn* a : again_) a->again = false;
    again_.clear();
    while (conns_) close(*conns_);
  }
  if (c & quit) running = false;
}

// The clients the kernel has queued already are accepted before the listener closes, so
// a graceful stop serves them instead of resetting them (see server_impl::take_queued).
void fast_lane::take_queued() noexcept {
  for (int turn = 0; turn < 4096 && accepting_ && !paused_ && listen_fd_ >= 0; ++turn) {
    const std::uint64_t before = accepted_;
    accept_some();
    if (accepted_ == before) return;
  }
}

void fast_lane::close_listener() noexcept {
  accepting_ = false;
  paused_ = false;
  if (listen_fd_ < 0) return;
  // Out of the set first: a close leaves it only once every lane's descriptor of a shared
  // listener is closed, and until then the queue would keep waking this lane.
  epoll_event ev{};
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, &ev);
  ::close(listen_fd_);
  listen_fd_ = -1;
}

// Out of the epoll set and back (an EPOLLEXCLUSIVE registration cannot be modified).
void fast_lane::pause_accepting() noexcept {
  if (listen_fd_ < 0) return;
  epoll_event ev{};
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, &ev);
  paused_ = true;
}

void fast_lane::resume_accepting() noexcept {
  paused_ = false;
  if (listen_fd_ < 0) return;
  if (!watch_listener()) {
    owner_.resource_shortage(fmt::format("epoll_ctl: {} (accepting again later)", last_error().message()));
    resume_at_ = std::chrono::steady_clock::now() + shortage_pause;
    paused_ = true;
  }
}

void fast_lane::accept_some() noexcept {
  for (int i = 0; i < accepts_per_turn && accepting_ && !paused_; ++i) {
    // The peer's address is nobody's business here: no log, no rule reads it.
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const std::error_code ec = last_error();
      if (would_block(ec.value())) return;
      if (transient_accept_error(ec)) continue;
      if (resource_accept_error(ec)) {
        // Existing connections keep running; the pending client waits in the backlog.
        owner_.resource_shortage(fmt::format("accept: {} (backing off)", ec.message()));
        resume_at_ = std::chrono::steady_clock::now() + shortage_pause;
      } else {
        owner_.warn(fmt::format("accept: {}", ec.message()));
        if (++failures_ >= settings_.failures_before_giving_up) {
          close_listener();
          owner_.lane_listener_failed(ec);
          return;
        }
        resume_at_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(10) * failures_;
      }
      pause_accepting();
      return;
    }
    failures_ = 0;
    owner_.lane_opened();
    // A look at the accept queue now and then: a burst that overflows a small backlog is
    // refused or delayed by the kernel, and nobody would know why.
    ++accepted_;
    if (!queue_told_ && (accepted_ <= 8 || accepted_ % 64 == 0)) {
      tcp_info info{};
      socklen_t len = sizeof info;
      // On a listener, tcpi_unacked is the accept queue's length and tcpi_sacked its limit.
      if (::getsockopt(listen_fd_, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 && info.tcpi_sacked != 0 &&
          info.tcpi_unacked >= info.tcpi_sacked) {
        queue_told_ = true;
        owner_.lane_queue_full(info.tcpi_sacked);
      }
    }
    if (owner_.phase() >= lifecycle_phase::cutting) {  // accepted just before a cut: cut too
      ::close(fd);
      owner_.lane_closed();
      continue;
    }
    const int one = 1;
    if (settings_.nodelay) ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (settings_.keepalive) ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    if (settings_.accepted) {
      std::string failed;
      std::error_code ec;
      if (!apply_socket_options(fd, settings_.family, *settings_.accepted, sockopt_target::accepted, nullptr, failed,
                                ec))
        owner_.warn(fmt::format("unable to set {} on a connection: {}", failed, ec.message()));
    }
    conn* c = new (std::nothrow) conn(fd);
    if (!c) {
      ::close(fd);
      owner_.resource_shortage("out of memory for a connection");
      owner_.lane_closed();
      continue;
    }
    c->next = conns_;
    if (conns_) conns_->prev = c;
    conns_ = c;
    serve(*c);  // a client often sends with its connect: try before waiting
  }
}

void fast_lane::on_event(conn& c, std::uint32_t events) noexcept {
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c.peer_closed = true;
  if (c.again) return;  // served at the end of this turn anyway
  if (c.pending) {
    // Reading waits until the client has taken what it was sent.
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) flush(c);
    return;
  }
  serve(c);
}

void fast_lane::serve(conn& c) noexcept {
  for (int round = 0; round < rounds_per_turn; ++round) {
    const ssize_t n = ::recv(c.fd, buffer_.get(), chunk_size, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (would_block(errno) && arm(c, false)) return;
      return close(c);
    }
    // EOF included: every byte went back already, and closing sends our FIN.
    if (n == 0) return close(c);
    const auto got = static_cast<std::size_t>(n);
    if (settings_.echo) {
      ssize_t sent = ::send(c.fd, buffer_.get(), got, MSG_NOSIGNAL);
      if (sent < 0) {
        if (!would_block(errno) && errno != EINTR) return close(c);
        sent = 0;
      }
      if (static_cast<std::size_t>(sent) < got) {
        // The client reads slower than it writes: keep only what it has not taken, and
        // read no more from it until that is gone (bounded memory, natural backpressure).
        const std::size_t rest = got - static_cast<std::size_t>(sent);
        c.pending.reset(new (std::nothrow) char[rest]);
        if (!c.pending) {
          owner_.resource_shortage("out of memory for a connection");
          return close(c);
        }
        std::memcpy(c.pending.get(), buffer_.get() + sent, rest);
        c.pending_size = rest;
        c.pending_off = 0;
        if (!arm(c, true)) close(c);
        return;
      }
    }
    // A short read took all there was; the edge of the next arrival wakes the loop.
    if (got < chunk_size && !c.peer_closed) {
      if (!arm(c, false)) close(c);
      return;
    }
  }
  if (again_.size() == again_.capacity()) {
    try {
      again_.reserve(again_.size() * 2);
    } catch (const std::bad_alloc&) {
      owner_.resource_shortage("out of memory for a connection");
      return close(c);
    }
  }
  c.again = true;
  again_.push_back(&c);
}

void fast_lane::flush(conn& c) noexcept {
  while (c.pending_off < c.pending_size) {
    const ssize_t sent = ::send(c.fd, c.pending.get() + c.pending_off, c.pending_size - c.pending_off, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (would_block(errno)) return;  // EPOLLOUT is armed
      return close(c);
    }
    c.pending_off += static_cast<std::size_t>(sent);
  }
  c.pending.reset();
  c.pending_size = c.pending_off = 0;
  serve(c);  // what arrived meanwhile raised no new edge
}

bool fast_lane::arm(conn& c, bool want_write) noexcept {
  if (c.registered && (!want_write || c.writable_armed)) return true;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (want_write ? EPOLLOUT : 0u);
  ev.data.ptr = &c;
  if (::epoll_ctl(epoll_fd_, c.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.fd, &ev) != 0) {
    owner_.resource_shortage(fmt::format("epoll_ctl: {}", last_error().message()));
    return false;
  }
  c.registered = true;
  c.writable_armed = want_write;
  return true;
}

void fast_lane::close(conn& c, bool tell) noexcept {
  if (c.again) again_.erase(std::find(again_.begin(), again_.end(), &c));
  ::close(c.fd);  // leaves the epoll set with it: the descriptor is never shared
  if (c.prev) c.prev->next = c.next;
  else conns_ = c.next;
  if (c.next) c.next->prev = c.prev;
  delete &c;
  if (tell) owner_.lane_closed();
}

}  // namespace startup_server::detail
