// getpwnam_r/getgrnam_r, then initgroups, setgid and setuid (glibc applies them to every thread).
#include "core/privileges.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <fmt/core.h>
#include <vector>

#include "core/digits.hpp"

namespace startup_server::detail {

std::optional<run_as> look_up_user(const std::string& spec, std::string& problem) {
  const auto colon = spec.find(':');
  const std::string user = spec.substr(0, colon);
  std::vector<char> buffer(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (user.empty()) {
    problem = "needs a user name";
    return std::nullopt;
  }
  if (auto uid = parse_number<uid_t>(user)) ::getpwuid_r(*uid, &pw, buffer.data(), buffer.size(), &found);
  else ::getpwnam_r(user.c_str(), &pw, buffer.data(), buffer.size(), &found);
  if (!found) {
    problem = fmt::format("no user '{}'", user);
    return std::nullopt;
  }
  run_as who{pw.pw_name, pw.pw_uid, pw.pw_gid};
  if (colon != std::string::npos) {
    const std::string group = spec.substr(colon + 1);
    std::vector<char> gbuffer(16384);
    ::group gr{};
    ::group* gfound = nullptr;
    if (auto gid = parse_number<gid_t>(group)) ::getgrgid_r(*gid, &gr, gbuffer.data(), gbuffer.size(), &gfound);
    else if (!group.empty()) ::getgrnam_r(group.c_str(), &gr, gbuffer.data(), gbuffer.size(), &gfound);
    if (!gfound) {
      problem = fmt::format("no group '{}'", group);
      return std::nullopt;
    }
    who.gid = gr.gr_gid;
  }
  return who;
}

bool drop_privileges(const run_as& who, std::error_code& ec) noexcept {
  auto failed = [&ec] {
    ec = std::error_code(errno, std::system_category());
    return false;
  };
  if (::getuid() == who.uid && ::geteuid() == who.uid && ::getgid() == who.gid) return true;  // already
  if (::initgroups(who.user.c_str(), who.gid) != 0) return failed();
  if (::setgid(who.gid) != 0) return failed();
  if (::setuid(who.uid) != 0) return failed();
  // Dropped for good: the old identity cannot be taken back.
  if (who.uid != 0 && ::setuid(0) == 0) {
    ec = std::make_error_code(std::errc::operation_not_permitted);
    return false;
  }
  ec.clear();
  return true;
}

}  // namespace startup_server::detail
