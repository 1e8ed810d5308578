// In-process library tests: options for a server on 127.0.0.1, and clearing the test hooks.
#pragma once

#include "server/fault_hooks.hpp"
#include "startup_server/startup_server.hpp"
#include "support/test_threads.hpp"

namespace test_support {

// A server on 127.0.0.1, port of the system's choosing, start_up_server returning once listening.
inline startup_server::server_options loopback(startup_server::handler h = startup_server::handler::echo) {
  startup_server::server_options o;
  o.function = h;
  o.local_address = "127.0.0.1";
  o.service = "0";
  o.wait = true;
  o.threads = test_threads();
  return o;
}

// Empties the test hooks when it goes out of scope: declare it before the server.
struct clear_hooks_at_end {
  ~clear_hooks_at_end() { startup_server::detail::faults() = {}; }
};

}  // namespace test_support
