// Fault injection for tests: process-wide hooks the server consults when they are set.
#pragma once

#include <functional>
#include <system_error>

namespace startup_server::detail {

struct fault_hooks {
  // Sees each accept's result and returns the one the server acts on.
  std::function<std::error_code(std::error_code)> accept;
  // A non-empty code makes reopening the listener fail with it.
  std::function<std::error_code()> reopen;
};

// The hooks; empty in production. Set them before starting a server and clear them after
// it has ended: they are read on the server's threads without a lock.
fault_hooks& faults();

}  // namespace startup_server::detail
