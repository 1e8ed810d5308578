// --wait: fork, detach, start, and tell the caller the PID or why the start failed.
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fmt/core.h>
#include <optional>

#include "cli/outputs.hpp"
#include "cli/run.hpp"
#include "cli/service_manager.hpp"
#include "core/resolve.hpp"
#include "cli/signals.hpp"
#include "core/io.hpp"

namespace startup_server::cli {
namespace {

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

// The child's one message to the caller; if the caller has gone, there is no one to tell.
void report_to_caller(int fd, const std::string& message) {
  std::error_code ignored;
  detail::write_all(fd, message, ignored);
}

// The detached process: start, report "ok" or "<status> <message>" through the pipe.
[[noreturn]] void background_child(config& c, outputs& out, int report) {
  ::setsid();
  std::vector<int> keep = out.descriptors();
  keep.push_back(report);
  if (c.options.listener_fd >= 0) keep.push_back(c.options.listener_fd);  // an inherited listener
  close_other_descriptors(keep);
  int status;
  {
    startup_condition condition;
    std::optional<stop_signal_watcher> watcher(std::in_place);
    auto s = start_up_server(c.options, condition);
    if (!s) {
      report_to_caller(report, fmt::format("{} {}", exit_status_for(condition), condition.message()));
      ::_exit(exit_status_for(condition));
    }
    // Listening, and the listening line is out: let go of the caller's terminal and pipes.
    // (stderr too: a self-signed certificate's fingerprint is said there)
    out.flush_all(std::chrono::seconds(2));
    redirect_to_null(STDIN_FILENO);
    redirect_to_null(STDOUT_FILENO);
    redirect_to_null(STDERR_FILENO);  // so -v without --log logs nowhere
    report_to_caller(report, fmt::format("ok listening on {}", detail::endpoint_text(s->local_address(), s->local_port())));
    ::close(report);
    status = serve_until_stopped(*s, *watcher);
    watcher.reset();  // before the server it signals
  }
  out.close();  // writes what is queued (bounded), joins the writers
  std::fflush(nullptr);
  ::_exit(status);
}

}  // namespace

int run_background(config& c, outputs& out, const service_manager& manager) {
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
  if (answer.rfind("ok ", 0) == 0) {
    manager.ready_from_parent(pid, answer.substr(3));
    std::printf("%d\n", static_cast<int>(pid));
    return exit_ok;
  }
  ::waitpid(pid, nullptr, 0);  // it has exited, or is about to: leave no zombie
  if (answer.empty()) {
    manager.tell_failure("the server exited while starting");
    std::fprintf(stderr, "startup-server: fatal: the server exited while starting\n");
    return exit_os_error;
  }
  auto space = answer.find(' ');
  manager.tell_failure(answer.substr(space + 1));
  std::fprintf(stderr, "startup-server: fatal: %s\n", escape_control_characters(answer.substr(space + 1)).c_str());
  return std::atoi(answer.substr(0, space).c_str());
}

}  // namespace startup_server::cli
