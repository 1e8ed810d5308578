// Running the server under strace: finding a strace that can trace here, and the server it runs.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "support/process.hpp"

namespace test_support {

// The path of the executable `name` found in $PATH, or nullopt.
std::optional<std::string> in_path(const std::string& name);

// strace, if installed and able to trace here; nullopt (after a WARN) otherwise.
std::optional<std::string> usable_strace();

// An environment assignment for `strace -E`: LeakSanitizer cannot run in a traced process
// (it aborts at exit), so an AddressSanitizer build of the server keeps its other checks
// and skips the leak check.
std::string untraced_leak_check();

// The server strace runs as its child (the one whose command line is the binary's); -1 if none.
pid_t server_under(const child_process& tracer);

}  // namespace test_support
