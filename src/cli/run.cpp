// Foreground and background (--wait) runs: signals, detaching, and exit statuses.
#include "cli/run.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fmt/core.h>
#include <memory>

#include "cli/outputs.hpp"
#include "cli/signals.hpp"
#include "core/process_name.hpp"

namespace startup_server::cli {
namespace {

// Serves until the server ends by itself (--once, a fatal error) or by signals: the
// first SIGINT/SIGTERM/SIGHUP stops gracefully, a second at once. The watcher is joined
// before this returns, so no signal can reach the server once it is gone.
int serve_until_stopped(server& s) {
  startup_condition final;
  {
    stop_signal_watcher watcher([&s](int, unsigned before) { s.terminate(before > 0); });
    final = s.join();
  }
  return final ? exit_status_for(final) : exit_ok;
}

// Closes every descriptor but 0-2 and keep, so a detached server holds none of the caller's.
void close_other_descriptors(std::vector<int> keep) {
  keep.push_back(2);
  std::sort(keep.begin(), keep.end());
  unsigned from = 3;
  for (int fd : keep) {
    if (fd < static_cast<int>(from)) continue;
    if (static_cast<unsigned>(fd) > from) ::syscall(SYS_close_range, from, static_cast<unsigned>(fd) - 1, 0);
    from = static_cast<unsigned>(fd) + 1;
  }
  ::syscall(SYS_close_range, from, ~0U, 0);
}

void redirect_to_null(int fd) {
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return;
  ::dup2(null, fd);
  ::close(null);
}

void write_all(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

// The detached process: start, report "ok" or "<status> <message>" through the pipe.
[[noreturn]] void background_child(config& c, outputs& out, int report) {
  ::setsid();
  std::vector<int> keep = out.descriptors();
  keep.push_back(report);
  close_other_descriptors(keep);
  int status;
  {
    startup_condition condition;
    auto s = start_up_server(c.options, condition);
    if (!s) {
      write_all(report, fmt::format("{} {}", exit_status_for(condition), condition.message()));
      ::_exit(exit_status_for(condition));
    }
    // Listening, and the listening line is out: let go of the caller's terminal and pipes.
    out.flush_announce(std::chrono::seconds(2));
    redirect_to_null(STDIN_FILENO);
    redirect_to_null(STDOUT_FILENO);
    redirect_to_null(STDERR_FILENO);  // so -v without --log logs nowhere
    write_all(report, "ok");
    ::close(report);
    status = serve_until_stopped(*s);
  }
  out.close();  // writes what is queued (bounded), joins the writers
  std::fflush(nullptr);
  ::_exit(status);
}

int run_background(config& c, outputs& out) {
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    std::perror("startup-server: fatal: pipe");
    return exit_os_error;
  }
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("startup-server: fatal: fork");
    return exit_os_error;
  }
  if (pid == 0) {
    ::close(report[0]);
    background_child(c, out, report[1]);
  }
  ::close(report[1]);
  std::string answer;
  char buf[512];
  for (ssize_t n; (n = ::read(report[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    answer.append(buf, static_cast<std::size_t>(n));
  }
  ::close(report[0]);
  if (answer == "ok") {
    std::printf("%d\n", static_cast<int>(pid));
    return exit_ok;
  }
  ::waitpid(pid, nullptr, 0);  // it has exited, or is about to: leave no zombie
  if (answer.empty()) {
    std::fprintf(stderr, "startup-server: fatal: the server exited while starting\n");
    return exit_os_error;
  }
  auto space = answer.find(' ');
  std::fprintf(stderr, "startup-server: fatal: %s\n", answer.substr(space + 1).c_str());
  return std::atoi(answer.substr(0, space).c_str());
}

}  // namespace

int exit_status_for(const startup_condition& condition) {
  using phase = startup_condition::phase;
  switch (condition.stage) {
    case phase::none: return exit_ok;
    case phase::usage: return exit_usage;
    case phase::resolve: return exit_no_host;
    default: break;
  }
  const auto& category = condition.code.category();
  if (category == std::system_category() || category == std::generic_category()) {
    switch (condition.code.value()) {
      case EADDRINUSE: return exit_unavailable;
      case EACCES: case EPERM: return exit_no_perm;
      case EADDRNOTAVAIL: return exit_no_host;
      default: break;
    }
  }
  return condition.code == std::errc::state_not_recoverable ? exit_software : exit_os_error;
}

int run(config& c) {
  const std::string name = c.options.process_name.empty() ? default_process_name(c.options.service)
                                                          : c.options.process_name;
  // A reader that went away, or a log file over its size limit, is an error to the
  // writer, not the end of the process. Children start with both back at default.
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGXFSZ, SIG_IGN);
  // Blocked before any thread exists, so only the signal watcher receives them.
  block_stop_signals();
  outputs out;
  if (!out.wire(c, name)) return exit_usage;
  detail::set_thread_name(name);
  c.options.wait = true;  // the command always learns the startup condition
  if (c.background) {
    c.options.error = false;  // the caller prints the startup condition; later errors are announced
    return run_background(c, out);
  }
  startup_condition condition;
  auto s = start_up_server(c.options, condition);
  if (!s) {
    if (c.options.error.value_or(true)) out.error_line(fmt::format("startup-server: {}: fatal: {}", name, condition.message()));
    return exit_status_for(condition);
  }
  const int status = serve_until_stopped(*s);
  s.reset();  // before the outputs it writes to
  return status;
}

}  // namespace startup_server::cli
