// posix_spawn (vfork-fast in glibc) with closefrom so no server descriptor leaks.
#include "handlers/spawn.hpp"

#include <signal.h>
#include <spawn.h>

namespace startup_server::detail {
namespace {

// exec(2) resets caught signals to their defaults but keeps ignored ones ignored, so
// only those need resetting; each costs the child one sigaction(2). SIGPIPE is always
// included (servers ignore it); the rest are read once, when the first child starts.
const sigset_t& ignored_signals() {
  static const sigset_t set = [] {
    sigset_t s;
    ::sigemptyset(&s);
    ::sigaddset(&s, SIGPIPE);
    for (int sig = 1; sig < SIGRTMIN; ++sig) {
      struct sigaction sa {};
      if (::sigaction(sig, nullptr, &sa) == 0 && sa.sa_handler == SIG_IGN) ::sigaddset(&s, sig);
    }
    return s;
  }();
  return set;
}

// Owns the spawn attributes: all signals default, empty mask, as a fresh process expects,
// in a process group of its own so a stop reaches everything it forks.
struct spawn_setup {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  bool ok = true;

  spawn_setup(int in_fd, int out_fd, int err_fd) {
    ::posix_spawnattr_init(&attr);
    ::posix_spawn_file_actions_init(&actions);
    sigset_t none;
    ::sigemptyset(&none);
    ok = ::posix_spawnattr_setsigdefault(&attr, &ignored_signals()) == 0 &&
         ::posix_spawnattr_setsigmask(&attr, &none) == 0 &&
         ::posix_spawnattr_setpgroup(&attr, 0) == 0 &&
         ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP) == 0 &&
         ::posix_spawn_file_actions_adddup2(&actions, in_fd, 0) == 0 &&
         ::posix_spawn_file_actions_adddup2(&actions, out_fd, 1) == 0 &&
         (err_fd < 0 || ::posix_spawn_file_actions_adddup2(&actions, err_fd, 2) == 0) &&
         ::posix_spawn_file_actions_addclosefrom_np(&actions, 3) == 0;
  }
  ~spawn_setup() {
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
  }
};

std::vector<char*> pointers(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

pid_t spawn_child(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                  int in_fd, int out_fd, int err_fd, std::error_code& ec) noexcept {
  try {
    spawn_setup setup(in_fd, out_fd, err_fd);
    if (!setup.ok) {
      ec = std::make_error_code(std::errc::invalid_argument);
      return -1;
    }
    auto args = pointers(argv);
    auto envp = pointers(env);
    pid_t pid = -1;
    if (int rc = ::posix_spawn(&pid, args[0], &setup.actions, &setup.attr, args.data(), envp.data()); rc != 0) {
      ec = std::error_code(rc, std::system_category());
      return -1;
    }
    ec.clear();
    return pid;
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return -1;
  }
}

}  // namespace startup_server::detail
