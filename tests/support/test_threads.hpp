// How many server threads the tests ask for: STARTUP_SERVER_TEST_THREADS (the tsan preset sets 2), else 1.
#pragma once

#include <cstdlib>
#include <string>

namespace test_support {

inline unsigned test_threads() {
  const char* v = std::getenv("STARTUP_SERVER_TEST_THREADS");
  return v && *v ? static_cast<unsigned>(std::strtoul(v, nullptr, 10)) : 1;
}

}  // namespace test_support
