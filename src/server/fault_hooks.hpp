// Hooks for tests: fault injection, and extra admission steps and stream decorators.
#pragma once

#include <functional>
#include <memory>
#include <system_error>

#include "server/admission.hpp"

namespace startup_server::detail {

struct fault_hooks {
  // Sees each accept's result and returns the one the server acts on.
  std::function<std::error_code(std::error_code)> accept;
  // A non-empty code makes reopening the listener fail with it.
  std::function<std::error_code()> reopen;
  // Steps run after the server's own admission steps.
  admission_chain admission;
  // Wraps each accepted connection's plain stream in a decorator.
  std::function<std::unique_ptr<byte_stream>(byte_stream& inner)> decorate;
};

// The hooks; empty in production. Set them before starting a server and clear them after
// it has ended: they are read on the server's threads without a lock.
fault_hooks& faults();

}  // namespace startup_server::detail
