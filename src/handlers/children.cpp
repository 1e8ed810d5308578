// Child bookkeeping: signalling process groups and reaping, all under one lock.
#include "handlers/children.hpp"

#include <sys/wait.h>

#include <cerrno>

namespace startup_server::detail {
namespace {

child_status status_of(const siginfo_t& info) {
  child_status s;
  if (info.si_code == CLD_EXITED) s.exit_status = info.si_status;
  else s.term_signal = info.si_status;
  return s;
}

}  // namespace

void child_registry::adopt(pid_t pid) noexcept {
  std::lock_guard lock(mutex_);
  try {
    live_.insert(pid);
  } catch (...) {
    // Not recorded: it cannot be tracked, so it must not run untracked.
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return;
  }
  if (stop_signal_) ::kill(-pid, stop_signal_);
}

bool child_registry::stopping() const noexcept {
  std::lock_guard lock(mutex_);
  return stop_signal_ != 0;
}

void child_registry::signal_all(int sig) noexcept {
  std::lock_guard lock(mutex_);
  if (stop_signal_ != SIGKILL) stop_signal_ = sig;
  for (pid_t pid : live_) ::kill(-pid, sig);
}

void child_registry::signal(pid_t pid, int sig) noexcept {
  std::lock_guard lock(mutex_);
  if (live_.count(pid)) ::kill(-pid, sig);
}

std::optional<child_status> child_registry::reap_if_exited(pid_t pid, int leftover_signal) noexcept {
  std::lock_guard lock(mutex_);
  if (!live_.count(pid)) return child_status{};
  siginfo_t info{};
  // Look without reaping: while the leader is a zombie its group id cannot be reused.
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno == EINTR) return std::nullopt;
    live_.erase(pid);  // ECHILD: not ours to reap after all
    return child_status{};
  }
  if (info.si_pid == 0) return std::nullopt;
  if (leftover_signal) ::kill(-pid, leftover_signal);
  siginfo_t reaped{};
  while (::waitid(P_PID, static_cast<id_t>(pid), &reaped, WEXITED) != 0 && errno == EINTR) {
  }
  live_.erase(pid);
  return status_of(info);
}

void child_registry::kill_and_reap_all() noexcept {
  std::lock_guard lock(mutex_);
  stop_signal_ = SIGKILL;
  for (pid_t pid : live_) {
    ::kill(-pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  live_.clear();
}

std::size_t child_registry::size() const {
  std::lock_guard lock(mutex_);
  return live_.size();
}

}  // namespace startup_server::detail
