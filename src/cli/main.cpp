// startup-server: parse the command line and run the server.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "cli/daemon.hpp"

int main(int argc, char** argv) {
  using namespace startup_server::cli;
  config c;
  try {
    c = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const usage_error& e) {
    std::fprintf(stderr, "startup-server: %s\n", e.what());
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
  return run(c);
}
