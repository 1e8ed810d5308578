// A child for the socket-option tests: prints getsockopt on its fd 0 (the connection) for each
// LEVEL:NAME given as numbers, one "LEVEL:NAME=VALUE" line each; strings for SO_BINDTODEVICE
// and TCP_CONGESTION, "l_onoff,l_linger" for SO_LINGER.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto colon = arg.find(':');
    const int level = std::atoi(arg.substr(0, colon).c_str());
    const int name = std::atoi(arg.substr(colon + 1).c_str());
    if ((level == SOL_SOCKET && name == SO_BINDTODEVICE) || (level == IPPROTO_TCP && name == TCP_CONGESTION)) {
      char buf[64] = {};
      socklen_t len = sizeof buf - 1;
      if (::getsockopt(0, level, name, buf, &len) != 0) std::printf("%s=error\n", arg.c_str());
      else std::printf("%s=%.*s\n", arg.c_str(), static_cast<int>(::strnlen(buf, len)), buf);
    } else if (level == SOL_SOCKET && name == SO_LINGER) {
      linger l{};
      socklen_t len = sizeof l;
      if (::getsockopt(0, level, name, &l, &len) != 0) std::printf("%s=error\n", arg.c_str());
      else std::printf("%s=%d,%d\n", arg.c_str(), l.l_onoff, l.l_linger);
    } else {
      int v = 0;
      socklen_t len = sizeof v;
      if (::getsockopt(0, level, name, &v, &len) != 0) std::printf("%s=error\n", arg.c_str());
      else std::printf("%s=%d\n", arg.c_str(), v);
    }
  }
  return 0;
}
