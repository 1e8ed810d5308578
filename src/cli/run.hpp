// Running the server from the command line: foreground, or detached with --wait.
#pragma once

#include <functional>

#include "cli/cli.hpp"
#include "startup_server/server.hpp"

namespace startup_server::cli {

// Exit statuses (documented in startup-server(1), EXIT STATUS).
enum exit_status : int {
  exit_ok = 0,
  exit_usage = 64,        // EX_USAGE: a bad flag, value or combination
  exit_no_host = 68,      // EX_NOHOST: name, service or address cannot be resolved or is not here
  exit_unavailable = 69,  // EX_UNAVAILABLE: the address and port are in use
  exit_software = 70,     // EX_SOFTWARE: internal error
  exit_os_error = 71,     // EX_OSERR: any other system failure
  exit_no_perm = 77,      // EX_NOPERM: permission denied (e.g. a port below 1024)
  exit_config = 78,       // EX_CONFIG: the sockets a service manager passed cannot be served
};

int exit_status_for(const startup_condition& condition);

class outputs;
class service_manager;
class stop_signal_watcher;

// Serves until the server ends by itself (--once, a fatal error) or by a stop signal (the
// first stops gracefully, a second at once); returns the exit status. Destroy the watcher
// before the server.
// on_first_stop, if given, runs when the first stop signal arrives (before the stop).
int serve_until_stopped(server& s, stop_signal_watcher& watcher, std::function<void()> on_first_stop = {});

// --wait: forks; the child detaches and starts the server. Returns, in the caller, once
// the server listens (printing its PID) or has failed (printing why).
int run_background(config& c, outputs& out, const service_manager& manager);

// Runs the parsed command line: returns the process's exit status.
int run(config& c);

}  // namespace startup_server::cli
