// startup_condition: why a server could not start (the seed's startup-condition) or why it stopped.
#pragma once

#include <string>
#include <system_error>

namespace startup_server {

struct startup_condition {
  // none: no failure; usage: the options contradict each other (e.g. address and ipv6);
  // resolve: service or address unknown; bind/listen: the socket calls; runtime: after
  // start (the listener could not be reopened) or an internal error.
  enum class phase { none, usage, resolve, bind, listen, runtime };
  phase stage = phase::none;
  std::error_code code;
  std::string context;  // e.g. "unable to bind to 127.0.0.1:80"

  explicit operator bool() const noexcept { return stage != phase::none; }
  // "<context>: <system reason>", e.g. "unable to bind to 127.0.0.1:80: Permission denied".
  std::string message() const;
};

}  // namespace startup_server
