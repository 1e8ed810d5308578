// Integration tests: the socket-option lab. Each option is read back from the connection itself
// by a child (getsockopt on its fd 0), and the server's own report of requested and effective
// values and the TCP_INFO in close records are checked.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>
#include <thread>

#include "support/test_support.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

std::string probe_arg(int level, int name) { return std::to_string(level) + ":" + std::to_string(name); }

// Starts the server with `flags`, the probe as its --exec child reporting `wanted`, and
// returns what the child read from its connection: "LEVEL:NAME" → value.
std::map<std::string, std::string> options_seen_by_child(const std::vector<std::string>& flags,
                                                         const std::vector<std::string>& wanted) {
  std::vector<std::string> args = flags;
  args.push_back("--exec");
  args.push_back(STARTUP_SERVER_SOCKOPT_PROBE);
  args.insert(args.end(), wanted.begin(), wanted.end());
  auto s = start_server(args);
  auto c = client::connect_or_throw(s.port);
  const std::string out = c.read_all(5s).data;
  std::map<std::string, std::string> seen;
  for (const auto& line : split_lines(out)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) seen[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return seen;
}

}  // namespace

TEST_CASE("sockopts: the named options on accepted sockets are what the kernel holds", "[sockopts]") {
  const auto seen = options_seen_by_child(
      {"--linger", "0", "--tos", "16", "--ttl", "33", "--keepidle", "41", "--keepintvl", "7", "--keepcnt", "4",
       "--user-timeout", "5000", "--priority", "3", "--notsent-lowat", "16384", "--window-clamp", "40000",
       "--congestion", "cubic", "--quickack"},
      {probe_arg(SOL_SOCKET, SO_LINGER), probe_arg(SOL_IP, IP_TOS), probe_arg(SOL_IP, IP_TTL),
       probe_arg(SOL_SOCKET, SO_KEEPALIVE), probe_arg(IPPROTO_TCP, TCP_KEEPIDLE), probe_arg(IPPROTO_TCP, TCP_KEEPINTVL),
       probe_arg(IPPROTO_TCP, TCP_KEEPCNT), probe_arg(IPPROTO_TCP, TCP_USER_TIMEOUT),
       probe_arg(SOL_SOCKET, SO_PRIORITY), probe_arg(IPPROTO_TCP, TCP_NOTSENT_LOWAT),
       probe_arg(IPPROTO_TCP, TCP_WINDOW_CLAMP), probe_arg(IPPROTO_TCP, TCP_CONGESTION)});
  CHECK(seen.at(probe_arg(SOL_SOCKET, SO_LINGER)) == "1,0");
  CHECK(seen.at(probe_arg(SOL_IP, IP_TOS)) == "16");
  CHECK(seen.at(probe_arg(SOL_IP, IP_TTL)) == "33");
  CHECK(seen.at(probe_arg(SOL_SOCKET, SO_KEEPALIVE)) == "1");  // implied by the keepalive times
  CHECK(seen.at(probe_arg(IPPROTO_TCP, TCP_KEEPIDLE)) == "41");
  CHECK(seen.at(probe_arg(IPPROTO_TCP, TCP_KEEPINTVL)) == "7");
  CHECK(seen.at(probe_arg(IPPROTO_TCP, TCP_KEEPCNT)) == "4");
  CHECK(seen.at(probe_arg(IPPROTO_TCP, TCP_USER_TIMEOUT)) == "5000");
  CHECK(seen.at(probe_arg(SOL_SOCKET, SO_PRIORITY)) == "3");
  CHECK(seen.at(probe_arg(IPPROTO_TCP, TCP_NOTSENT_LOWAT)) == "16384");
  CHECK(seen.at(probe_arg(IPPROTO_TCP, TCP_WINDOW_CLAMP)) == "40000");
  CHECK(seen.at(probe_arg(IPPROTO_TCP, TCP_CONGESTION)) == "cubic");
}

TEST_CASE("sockopts: listener options reach accepted sockets, and the kernel doubles SO_RCVBUF", "[sockopts]") {
  const auto seen = options_seen_by_child({"--rcvbuf", "65536", "--sndbuf", "32768", "--mss", "1000"},
                                          {probe_arg(SOL_SOCKET, SO_RCVBUF), probe_arg(SOL_SOCKET, SO_SNDBUF),
                                           probe_arg(IPPROTO_TCP, TCP_MAXSEG)});
  CHECK(seen.at(probe_arg(SOL_SOCKET, SO_RCVBUF)) == "131072");
  CHECK(seen.at(probe_arg(SOL_SOCKET, SO_SNDBUF)) == "65536");
  const int mss = std::stoi(seen.at(probe_arg(IPPROTO_TCP, TCP_MAXSEG)));
  CHECK(mss <= 1000);  // the kernel takes off what timestamps use
  CHECK(mss > 900);
}

TEST_CASE("sockopts: privileged and listener-only options are set where they belong", "[sockopts]") {
  if (::geteuid() != 0) {
    WARN("not root: SO_MARK, IP_TRANSPARENT and SO_BINDTODEVICE need CAP_NET_ADMIN or CAP_NET_RAW");
    return;
  }
  const auto seen = options_seen_by_child({"--mark", "77", "--bind-device", "lo", "--freebind", "--transparent"},
                                          {probe_arg(SOL_SOCKET, SO_MARK), probe_arg(SOL_SOCKET, SO_BINDTODEVICE)});
  CHECK(seen.at(probe_arg(SOL_SOCKET, SO_MARK)) == "77");
  CHECK(seen.at(probe_arg(SOL_SOCKET, SO_BINDTODEVICE)) == "lo");
}

TEST_CASE("sockopts: the generic form sets an option that has no flag of its own", "[sockopts]") {
  const auto seen = options_seen_by_child({"--sockopt", "socket:SO_RCVLOWAT=10", "--sockopt", "6:3=1"},
                                          {probe_arg(SOL_SOCKET, SO_RCVLOWAT), probe_arg(IPPROTO_TCP, TCP_CORK)});
  CHECK(seen.at(probe_arg(SOL_SOCKET, SO_RCVLOWAT)) == "10");
  CHECK(seen.at(probe_arg(IPPROTO_TCP, TCP_CORK)) == "1");
}

TEST_CASE("sockopts: --show-sockopts prints requested and effective values, and json announce carries them",
          "[sockopts]") {
  {
    child_process json({binary_path(), "-a", "127.0.0.1", "-s", "0", "--announce", "--announce-format=json",
                        "--rcvbuf", "65536", "--fastopen", "16"});
    auto line = json.stdout_line(5s);
    REQUIRE(line);
    CHECK(line->find(R"("SO_RCVBUF":{"requested":"65536","effective":"131072"})") != std::string::npos);
    CHECK(line->find(R"("TCP_FASTOPEN":{"requested":"16","effective":"16"})") != std::string::npos);
  }
  auto s = start_server({"--rcvbuf", "65536", "--defer-accept", "5", "--fastopen", "16", "--tos", "8",
                         "--show-sockopts", "--sockopt-listen", "tcp:TCP_SYNCNT=3"});
  CHECK(s.proc.wait_for_stderr("listener SO_RCVBUF requested 65536 effective 131072", 5s));
  CHECK(s.proc.wait_for_stderr("listener TCP_DEFER_ACCEPT requested 5 effective ", 5s));
  CHECK(s.proc.wait_for_stderr("listener tcp:TCP_SYNCNT=3 requested 3 effective 3", 5s));
  auto c = client::connect_or_throw(s.port);
  REQUIRE(c.exchange("x", 1, false).data == "x");
  CHECK(s.proc.wait_for_stderr("connection #1 IP_TOS requested 8 effective 8", 5s));
  auto d = client::connect_or_throw(s.port);
  REQUIRE(d.exchange("y", 1, false).data == "y");
  std::this_thread::sleep_for(200ms);
  s.proc.pump(100ms);
  CHECK(s.proc.err().find("connection #2") == std::string::npos);  // the first connection only
}

TEST_CASE("sockopts: --tcp-info adds the kernel's view to each close line, text and json", "[sockopts][tcp-info]") {
  {
    auto s = start_server({"--tcp-info", "--log-format", "json"});
    auto c = client::connect_or_throw(s.port);
    const std::string payload(10000, 'z');
    REQUIRE(c.exchange(payload, payload.size(), false).data == payload);
    c.close();
    REQUIRE(s.proc.wait_for_stderr(R"("tcp_info":)", 5s));
    std::string line;
    for (const auto& l : split_lines(s.proc.err()))
      if (l.find(R"("event":"close")") != std::string::npos) line = l;
    REQUIRE_FALSE(line.empty());
    INFO(line);
    const auto number_after = [&](const std::string& key) {
      const auto at = line.find("\"" + key + "\":");
      REQUIRE(at != std::string::npos);
      return std::stoull(line.substr(at + key.size() + 3));
    };
    CHECK(number_after("rtt_us") > 0);
    CHECK(number_after("bytes_acked") == payload.size());  // all the echo was acknowledged
    CHECK(number_after("snd_mss") > 0);
    CHECK(line.find(R"("congestion":")") != std::string::npos);
  }
  {
    auto s = start_server({"--tcp-info"});
    auto c = client::connect_or_throw(s.port);
    REQUIRE(c.exchange("abc", 3, false).data == "abc");
    c.close();
    CHECK(s.proc.wait_for_stderr(" rtt=", 5s));
    CHECK(s.proc.wait_for_stderr(" acked=3 ", 5s));
  }
}

TEST_CASE("sockopts: without --tcp-info nothing is collected", "[sockopts][tcp-info]") {
  auto s = start_server({"-v"});
  auto c = client::connect_or_throw(s.port);
  REQUIRE(c.exchange("abc", 3, false).data == "abc");
  c.close();
  REQUIRE(s.proc.wait_for_stderr(" close ", 5s));
  CHECK(s.proc.err().find("rtt=") == std::string::npos);
}

TEST_CASE("sockopts: an option the kernel refuses at start names itself and the reason", "[sockopts][errors]") {
  auto r = run_binary({"-a", "127.0.0.1", "-s", "0", "--congestion", "nosuchalgo"});
  CHECK(r.status != 0);
  CHECK(r.err.find("TCP_CONGESTION=nosuchalgo") != std::string::npos);
  CHECK(r.err.find("No such file or directory") != std::string::npos);
  auto bad = run_binary({"-a", "127.0.0.1", "-s", "0", "--bind-device", "no-such-if0"});
  CHECK(bad.status != 0);
  CHECK(bad.err.find("SO_BINDTODEVICE=no-such-if0") != std::string::npos);
}

TEST_CASE("sockopts: values are checked before binding", "[sockopts][errors]") {
  for (const auto& args : std::vector<std::vector<std::string>>{{"--rcvbuf", "lots"},
                                                                {"--tos", "256"},
                                                                {"--mss", "10"},
                                                                {"--congestion", "a b"},
                                                                {"--sockopt", "tcp:NO_SUCH=1"},
                                                                {"--sockopt", "tcp:TCP_CORK"},
                                                                {"--sockopt-listen", "socket:SO_RCVBUF=0x123"}}) {
    auto r = run_binary(args, 3s);
    INFO(args[0] << " " << args[1] << ": " << r.err);
    CHECK(r.status == 64);
    CHECK(r.err.find(args[0]) != std::string::npos);
  }
}
