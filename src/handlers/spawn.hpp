// Starting a child with posix_spawn: given stdin/stdout, nothing else inherited.
#pragma once

#include <sys/types.h>

#include <string>
#include <system_error>
#include <vector>

namespace startup_server::detail {

// Runs argv[0] (a path) with argv and env. The child's fd 0 is in_fd, fd 1 is out_fd,
// fd 2 is err_fd (-1: the server's stderr), and no other descriptor is inherited. It starts with
// default signal dispositions and an empty signal mask, leading a new process group
// (its pid is the group id). Blocks until the child has
// exec'd (glibc's posix_spawn is vfork-like), so servers call it off their event loop. Returns the pid, or -1 with ec.
pid_t spawn_child(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                  int in_fd, int out_fd, int err_fd, std::error_code& ec) noexcept;

}  // namespace startup_server::detail
