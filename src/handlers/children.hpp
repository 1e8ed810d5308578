// The server's exec children: one owner that signals their process groups and reaps them.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <mutex>
#include <optional>
#include <unordered_set>

namespace startup_server::detail {

// How a child ended.
struct child_status {
  std::optional<int> exit_status;
  std::optional<int> term_signal;
};

// Every child the server started and has not reaped yet. Each child leads a process group
// of its own (its pid is the group id), so signalling the group reaches what it forked.
// A group is signalled only while its leader is unreaped, so its id cannot have been
// reused. Thread-safe.
class child_registry {
 public:
  // Records pid just after it was spawned. If a stop has begun, the child's group gets
  // the stop's signal at once: a spawn that raced the stop leaves nothing behind.
  void adopt(pid_t pid) noexcept;
  // True once stop_signal was called: a spawn that has not started must not start.
  bool stopping() const noexcept;
  // Signals every group (SIGTERM when a stop begins, SIGKILL when it cuts) and remembers
  // the strongest signal for children adopted later.
  void signal_all(int sig) noexcept;
  // Signals one child's group, if the child is still ours.
  void signal(pid_t pid, int sig) noexcept;
  // If pid has exited: signals what is left of its group with leftover_signal (0: none),
  // reaps it, forgets it and returns how it ended. nullopt while it still runs.
  std::optional<child_status> reap_if_exited(pid_t pid, int leftover_signal) noexcept;
  // After the server's threads have ended: kills every group still here and reaps its
  // leader, waiting for each (they were sent SIGKILL, so the wait is short).
  void kill_and_reap_all() noexcept;
  std::size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::unordered_set<pid_t> live_;
  int stop_signal_ = 0;
};

}  // namespace startup_server::detail
