// The command line under a service manager: socket activation and readiness (systemd).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "cli/cli.hpp"

namespace startup_server::cli {

class outputs;

class service_manager {
 public:
  // Takes LISTEN_* and NOTIFY_SOCKET from the environment (unsetting them, so no child
  // sees them) and, when sockets were passed to this process, picks the one to serve on
  // (c.options.listener_fd) and closes the others. False with problem set when the passed
  // sockets cannot be used. warnings: flags that an inherited listener makes moot.
  bool take(config& c, std::vector<std::string>& warnings, std::string& problem);

  // Tells the notify socket of the server's life through c.options.announce: READY=1 and
  // STATUS= once listening (unless `background`: the caller then calls ready_from_parent,
  // or tell_failure for a start that fails), STOPPING=1 when a stop begins, STATUS= on a
  // fatal error. Nothing without NOTIFY_SOCKET.
  void wire(config& c, outputs& out, bool background) const;

  // The start failed before the server existed: the notify socket hears why.
  void tell_failure(const std::string& problem) const;

  // --wait: the process the service manager started is about to exit; `child` serves.
  void ready_from_parent(pid_t child, const std::string& status) const;

  bool activated() const noexcept { return activated_; }
  int listener() const noexcept { return listener_; }

 private:
  std::string notify_socket_;
  bool activated_ = false;
  int listener_ = -1;
};

}  // namespace startup_server::cli
