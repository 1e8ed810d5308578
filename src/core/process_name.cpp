// (format nil "~S server" service): integers print bare, strings quoted, nil as NIL.
#include "core/process_name.hpp"

#include "core/digits.hpp"

#include <sys/prctl.h>

#include "startup_server/server.hpp"

namespace startup_server {

std::string default_process_name(const std::string& service) {
  if (service.empty()) return "NIL server";
  if (detail::all_digits(service)) {
    if (service.find_first_not_of('0') == std::string::npos) return "NIL server";
    return service.substr(service.find_first_not_of('0')) + " server";
  }
  std::string quoted = "\"";
  for (char c : service) {
    if (c == '"' || c == '\\') quoted.push_back('\\');
    quoted.push_back(c);
  }
  return quoted + "\" server";
}

namespace detail {

void set_thread_name(const std::string& name) {
  std::string shortened = name.substr(0, 15);
  ::prctl(PR_SET_NAME, shortened.c_str(), 0, 0, 0);
}

}  // namespace detail
}  // namespace startup_server
