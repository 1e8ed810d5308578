// Running as another user: looked up before anything binds, dropped once the listener is bound.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <system_error>

namespace startup_server::detail {

struct run_as {
  std::string user;
  uid_t uid = 0;
  gid_t gid = 0;
};

// "user" (its primary group) or "user:group"; names or numbers. nullopt with problem set
// if the user or group does not exist.
std::optional<run_as> look_up_user(const std::string& spec, std::string& problem);

// Supplementary groups (the user's), group, then user, for every thread of the process;
// then checks that the old identity cannot be taken back. False with ec on any failure
// (the process may then be half-changed: the caller must not serve).
bool drop_privileges(const run_as& who, std::error_code& ec) noexcept;

}  // namespace startup_server::detail
