// The seed's default process name and naming threads and the process after it.
#pragma once

#include <string>

namespace startup_server::detail {

// Sets the calling thread's name (what ps -L and /proc/PID/task/*/comm show); the
// system keeps the first 15 bytes. On the main thread this renames the process.
void set_thread_name(const std::string& name);

}  // namespace startup_server::detail
