// Running the parsed command line in the foreground, and exit statuses.
#include "cli/run.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fmt/core.h>
#include <functional>
#include <memory>
#include <optional>

#include "cli/outputs.hpp"
#include "cli/service_manager.hpp"
#include "cli/signals.hpp"
#include "core/process_name.hpp"
#include "core/resolve.hpp"
#include "handlers/table.hpp"

namespace startup_server::cli {

// Serves until the server ends by itself (--once, a fatal error) or by signals: the
// first SIGINT/SIGTERM/SIGHUP stops gracefully, a second at once. The watcher is joined
// before this returns, so no signal can reach the server once it is gone.
int serve_until_stopped(server& s, stop_signal_watcher& watcher, std::function<void()> on_first_stop) {
  watcher.on_signal([&s, on_first_stop = std::move(on_first_stop)](int, unsigned before) {
    if (before == 0 && on_first_stop) on_first_stop();
    s.terminate(before > 0);
  });
  const startup_condition final = s.join();
  return final ? exit_status_for(final) : exit_ok;
}

// "echo", "talk", "exec /usr/bin/cat": what serves, in the words of the command line.
std::string handler_words(const config& c) {
  if (c.options.function != handler::exec) {
    const char* flag = detail::handler_for(c.options.function).flag;
    return flag ? std::string(flag + 2) : "function";
  }
  std::string words = "exec";
  for (const auto& a : c.options.exec_argv) words += " " + a;
  return words;
}

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
  service_manager manager;
  std::vector<std::string> moot;
  std::string problem;
  if (!manager.take(c, moot, problem)) {
    manager.tell_failure("socket activation: " + problem);
    std::fprintf(stderr, "%s\n",
                 escape_control_characters(fmt::format("startup-server: {}: fatal: socket activation: {}", name, problem)).c_str());
    return exit_config;
  }
  outputs out;
  if (!out.wire(c, name)) return exit_usage;
  // Straight to stderr: nothing may write through `out` before --wait forks (its writer
  // threads start with the first line, and a thread does not cross a fork).
  for (const auto& w : moot)
    std::fprintf(stderr, "%s\n", escape_control_characters(fmt::format("startup-server: {}: warning: {}", name, w)).c_str());
  manager.wire(c, out, c.background);
  detail::set_thread_name(name);
  c.options.wait = true;  // the command always learns the startup condition
  if (c.background) {
    c.options.error = false;  // the caller prints the startup condition; later errors are announced
    return run_background(c, out, manager);
  }
  startup_condition condition;
  std::optional<stop_signal_watcher> watcher(std::in_place);
  auto s = start_up_server(c.options, condition);
  if (!s) {
    if (c.options.error.value_or(true))
      out.error_line(escape_control_characters(fmt::format("startup-server: {}: fatal: {}", name, condition.message())));
    return exit_status_for(condition);
  }
  // A person is watching: say what runs where, and what a Ctrl-C is waiting for.
  std::function<void()> on_first_stop;
  if (::isatty(STDERR_FILENO) && c.announce.destination.empty()) {
    out.error_line(fmt::format("startup-server: {} on {}", handler_words(c),
                               detail::endpoint_text(s->local_address(), s->local_port())));
    on_first_stop = [&out, &s = *s, grace = c.options.grace] {
      const std::size_t open = s.active_connections();
      if (open == 0 || grace.count() <= 0) return;
      out.error_line(fmt::format("startup-server: stopping: waiting up to {:g} s for {} connection{} "
                                 "(Ctrl-C again to stop now)",
                                 static_cast<double>(grace.count()) / 1000, open, open == 1 ? "" : "s"));
    };
  }
  const int status = serve_until_stopped(*s, *watcher, std::move(on_first_stop));
  watcher.reset();  // no signal reaches the server once it is gone
  s.reset();        // before the outputs it writes to
  return status;
}

}  // namespace startup_server::cli
