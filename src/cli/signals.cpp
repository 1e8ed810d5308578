// A signalfd and an eventfd polled by one owned thread: signals in, a stop request out.
#include "cli/signals.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace startup_server::cli {
namespace {

sigset_t stop_signals() {
  sigset_t set;
  ::sigemptyset(&set);
  ::sigaddset(&set, SIGINT);
  ::sigaddset(&set, SIGTERM);
  ::sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void block_stop_signals() {
  sigset_t set = stop_signals();
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

stop_signal_watcher::stop_signal_watcher() {
  sigset_t set = stop_signals();
  signals_ = ::signalfd(-1, &set, SFD_CLOEXEC);
  wake_ = ::eventfd(0, EFD_CLOEXEC);
  if (signals_ < 0 || wake_ < 0) {
    const int saved = errno;
    if (signals_ >= 0) ::close(signals_);
    if (wake_ >= 0) ::close(wake_);
    throw std::system_error(saved, std::system_category(), "watching stop signals");
  }
  thread_ = std::thread([this] { run(); });
}

stop_signal_watcher::~stop_signal_watcher() {
  const std::uint64_t one = 1;
  while (::write(wake_, &one, sizeof one) < 0 && errno == EINTR) {
  }
  thread_.join();
  ::close(signals_);
  ::close(wake_);
}

void stop_signal_watcher::on_signal(std::function<void(int, unsigned)> handler) {
  std::lock_guard lock(mutex_);
  handler_ = std::move(handler);
  for (int sig : held_) handler_(sig, count_++);
  held_.clear();
}

// Calls the handler under the watcher's own lock, which orders it with on_signal; the
// handler only asks the server to stop, which never waits.
void stop_signal_watcher::deliver(int sig) {
  std::lock_guard lock(mutex_);
  if (handler_) handler_(sig, count_++);
  else held_.push_back(sig);
}

void stop_signal_watcher::run() {
  for (;;) {
    pollfd fds[2] = {{signals_, POLLIN, 0}, {wake_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    signalfd_siginfo info{};
    if (::read(signals_, &info, sizeof info) != static_cast<ssize_t>(sizeof info)) continue;
    deliver(static_cast<int>(info.ssi_signo));
  }
}

}  // namespace startup_server::cli
