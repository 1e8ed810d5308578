// Running the server from the command line: foreground, or detached with --wait.
#pragma once

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
};

int exit_status_for(const startup_condition& condition);

// Runs the parsed command line: returns the process's exit status.
int run(config& c);

}  // namespace startup_server::cli
