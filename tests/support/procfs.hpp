// What /proc says about a process (descriptors, zombie children, memory), and bounded polling.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace test_support {

using std::chrono::milliseconds;

// Calls done() every `step` until it returns true or `timeout` has passed; returns its
// last answer. At most timeout/step + 1 calls.
bool wait_until(const std::function<bool()>& done, milliseconds timeout, milliseconds step = milliseconds(10));

// Open descriptors of pid (entries of /proc/PID/fd); -1 if it cannot be read.
int count_fds(pid_t pid);
// count_fds once it has stayed the same for `quiet` (a descriptor that is about to be
// closed, such as a reaped child's pidfd, is not counted as part of a baseline); the
// last count if it never settles within `timeout`.
int settled_fd_count(pid_t pid, milliseconds quiet = milliseconds(200), milliseconds timeout = milliseconds(5000));
// fd number → link target ("socket:[123]", "pipe:[45]", "/dev/null"…) of pid.
std::vector<std::pair<int, std::string>> fd_targets(pid_t pid);

struct proc_entry {
  pid_t pid = 0;
  pid_t ppid = 0;
  char state = '?';
};
// Every process in /proc (a snapshot; processes come and go while it is read).
std::vector<proc_entry> all_processes();
std::vector<pid_t> children_of(pid_t pid);
// Children of pid in state Z (exited, not reaped).
int count_zombie_children(pid_t pid);
// The one-letter state of pid ('R', 'S', 'Z'…), nullopt if there is no such process.
std::optional<char> process_state(pid_t pid);
// The command line of pid, arguments joined by ' '; empty if gone.
std::string command_line(pid_t pid);
// PIDs whose command line contains every one of `parts` (never the calling process).
std::vector<pid_t> find_processes(const std::vector<std::string>& parts);

// Resident set (VmRSS) and proportional set (Pss of smaps_rollup) in KiB; -1 if unknown.
long rss_kib(pid_t pid);
long pss_kib(pid_t pid);

// n pseudo-random bytes from a fixed seed, so a failure can be reproduced.
std::string random_bytes(std::size_t n, std::uint32_t seed);

// A directory under $TMPDIR (or /tmp), removed with its files by the destructor.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const noexcept { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The whole content of a file; nullopt if it cannot be opened.
std::optional<std::string> read_file(const std::string& path);

// A process the test caused to exist without being its parent (a --wait server). The
// destructor stops it if it still runs: SIGTERM, then SIGKILL after a bound, and only
// while /proc shows it is the startup-server binary (so a reused PID is never hit).
// It becomes the test's child when the test is a subreaper (see subreaper_scope) and
// is reaped then.
class detached_process {
 public:
  explicit detached_process(pid_t pid) noexcept : pid_(pid) {}
  ~detached_process();
  detached_process(const detached_process&) = delete;
  detached_process& operator=(const detached_process&) = delete;
  pid_t pid() const noexcept { return pid_; }
  // True while the process exists and is not a zombie.
  bool alive() const;
  // Sends sig if the PID is still the binary under test.
  bool send_signal(int sig) const;
  // Waits until it has exited; reaps it if it is our child. Returns the exit status if
  // we reaped it, timed_out (-1) if it still runs, or -2 if someone else reaped it.
  int wait_exit(milliseconds timeout);

 private:
  pid_t pid_;
};

// Makes the test process a child subreaper while it lives, so orphans of the processes
// it starts (a --wait server) become its children and can be reaped and waited for.
class subreaper_scope {
 public:
  subreaper_scope();
  // Kills (SIGKILL) and reaps any startup-server orphaned to the test, reaps other
  // exited orphans, and ends subreaping. Declare it before the processes it concerns.
  ~subreaper_scope();
  subreaper_scope(const subreaper_scope&) = delete;
  subreaper_scope& operator=(const subreaper_scope&) = delete;
};

}  // namespace test_support
