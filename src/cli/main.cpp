// startup-server: parse the command line and run the server.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "cli/run.hpp"

namespace {

// A closed 0, 1 or 2 would be taken by the next descriptor opened (a pipe, a socket, the
// event loop's own) and then written to or replaced as if it were stdin/stdout/stderr.
void open_missing_standard_descriptors() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int null = ::open("/dev/null", O_RDWR);
    if (null >= 0 && null != fd) {
      ::dup2(null, fd);
      ::close(null);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace startup_server::cli;
  open_missing_standard_descriptors();
  config c;
  try {
    c = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const usage_error& e) {
    // One line, whatever the values typed: control characters are shown escaped.
    std::fprintf(stderr, "startup-server: %s\n", escape_control_characters(e.what()).c_str());
    return exit_usage;
  }
  if (c.help) {
    std::fputs(help_text().c_str(), stdout);
    return exit_ok;
  }
  if (c.version) {
    std::fputs(version_text().c_str(), stdout);
    return exit_ok;
  }
  for (const auto& w : c.warnings) std::fprintf(stderr, "startup-server: warning: %s\n", escape_control_characters(w).c_str());
  return run(c);
}
