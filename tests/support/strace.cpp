// Running the server under strace.
#include "support/strace.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <sstream>

#include "support/procfs.hpp"

namespace test_support {

using namespace std::chrono_literals;

std::optional<std::string> in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  for (int i = 0; i < 100 && std::getline(dirs, dir, ':'); ++i) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

std::optional<std::string> usable_strace() {
  auto strace = in_path("strace");
  if (!strace) {
    WARN("strace is not installed: skipped");
    return std::nullopt;
  }
  child_process probe({*strace, "-f", "-qq", "-e", "trace=close", "-o", "/dev/null", "/bin/true"});
  if (probe.wait_exit(10s) != 0) {
    WARN("strace cannot trace here: skipped; stderr: " << probe.err());
    return std::nullopt;
  }
  return strace;
}

std::string untraced_leak_check() {
  const char* asan = std::getenv("ASAN_OPTIONS");
  return std::string("ASAN_OPTIONS=") + (asan ? asan : "") + (asan && *asan ? ":" : "") + "detect_leaks=0";
}

pid_t server_under(const child_process& tracer) {
  for (pid_t p : children_of(tracer.pid()))
    if (command_line(p).rfind(binary_path() + " ", 0) == 0) return p;
  return -1;
}

}  // namespace test_support
