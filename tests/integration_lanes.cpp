// Integration tests: the fast lanes of built-in echo and discard (an epoll loop per thread,
// on the one listener or, with --reuseport, one each) and what a short connection costs.
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "support/test_support.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

// Socket inodes of pid's descriptors.
std::set<std::string> socket_inodes(pid_t pid) {
  std::set<std::string> inodes;
  for (const auto& [fd, target] : fd_targets(pid))
    if (target.rfind("socket:[", 0) == 0) inodes.insert(target.substr(8, target.size() - 9));
  return inodes;
}

// Listening TCP sockets of pid on `port`, from /proc/net/tcp and tcp6.
int listeners_on(pid_t pid, std::uint16_t port) {
  const auto mine = socket_inodes(pid);
  int count = 0;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    for (int i = 0; i < 100000 && std::getline(in, line); ++i) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
      const auto colon = local.rfind(':');
      if (state != "0A" || colon == std::string::npos) continue;
      if (std::stoul(local.substr(colon + 1), nullptr, 16) == port && mine.count(inode)) ++count;
    }
  }
  return count;
}

bool echoes(std::uint16_t port, const std::string& data) {
  auto c = client::connect(port, 5s);
  if (!c) return false;
  auto r = c->exchange(data, std::nullopt, true, 5s);
  return r.data == data && r.eof;
}

// The calls strace -c counted, by name, from its summary table.
std::map<std::string, long> strace_counts(const std::string& summary) {
  std::map<std::string, long> calls;
  for (const auto& line : split_lines(summary)) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string w; f.size() < 8 && fields >> w;) f.push_back(w);
    // "% time  seconds  usecs/call  calls  [errors]  syscall"
    if (f.size() < 5 || f[0].find_first_not_of("0123456789.") != std::string::npos || f.back() == "total") continue;
    calls[f.back()] = std::stol(f[3]);
  }
  return calls;
}

// Runs the server under strace -f -c, makes `connections` short echo connections with the
// load generator, stops it, and returns strace's counts.
std::map<std::string, long> counted_calls(const std::string& strace, int connections) {
  temp_dir dir;
  const std::string out = dir.file("counts");
  child_process tracer({strace, "-E", untraced_leak_check(), "-f", "-c", "-o", out, binary_path(), "-a",
                        "127.0.0.1", "-s", "0", "--announce", "--announce-format={port}", "--backlog", "1024"});
  auto line = tracer.stdout_line(20s);
  INFO("stderr: " << tracer.err());
  REQUIRE(line);
  const pid_t server = server_under(tracer);
  REQUIRE(server > 0);
  child_process load({STARTUP_SERVER_BENCH_BIN, "short", "--port", *line, "--clients", "4", "--count",
                      std::to_string(connections), "--duration", "60", "--max-seconds", "60", "--payload", "64"});
  const int status = load.wait_exit(70s);
  INFO("load generator: " << load.out() << load.err());
  REQUIRE(status == 0);
  REQUIRE(load.out().find("errors=0") != std::string::npos);
  REQUIRE(command_line(server).rfind(binary_path() + " ", 0) == 0);
  REQUIRE(::kill(server, SIGTERM) == 0);
  REQUIRE(tracer.wait_exit(20s) == 0);
  auto text = read_file(out);
  REQUIRE(text);
  return strace_counts(*text);
}

// CPU time (user + system, clock ticks) of each of pid's threads named `name N`.
std::map<std::string, long> numbered_thread_ticks(pid_t pid, const std::string& name) {
  std::map<std::string, long> ticks;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& entry : std::filesystem::directory_iterator(tasks)) {
    auto comm = read_file(entry.path().string() + "/comm");
    auto stat = read_file(entry.path().string() + "/stat");
    if (!comm || !stat || comm->rfind(name + " ", 0) != 0) continue;
    // After the ")" that ends the name: state is field 3, utime and stime fields 14 and 15.
    std::istringstream fields(stat->substr(stat->rfind(')') + 2));
    std::vector<std::string> f;
    for (std::string w; f.size() < 13 && fields >> w;) f.push_back(w);
    if (f.size() == 13) ticks[comm->substr(0, comm->size() - 1)] = std::stol(f[11]) + std::stol(f[12]);
  }
  return ticks;
}

}  // namespace

TEST_CASE("lanes: serving threads share the one listener, or with --reuseport have one each, and all of them serve",
          "[lanes][echo]") {
  for (bool reuseport : {false, true}) {
    for (const char* threads : {"1", "2", "3"}) {
      INFO("--threads " << threads << (reuseport ? " --reuseport" : ""));
      std::vector<std::string> args{"--threads", threads, "--backlog", "1024"};
      if (reuseport) args.push_back("--reuseport");
      auto s = start_server(args);
      CHECK(listeners_on(s.proc.pid(), s.port) == (reuseport ? std::stoi(threads) : 1));
      int exact = 0;
      for (int i = 0; i < 30; ++i) exact += echoes(s.port, random_bytes(1000 + i, static_cast<std::uint32_t>(i))) ? 1 : 0;
      CHECK(exact == 30);
      // A second of short connections from 8 clients: each thread takes its share, no thread
      // hands connections to another.
      child_process load({STARTUP_SERVER_BENCH_BIN, "short", "--port", std::to_string(s.port), "--clients", "8",
                          "--count", "1000000", "--duration", "1", "--max-seconds", "30", "--payload", "64"});
      REQUIRE(load.wait_exit(40s) == 0);
      CHECK(load.out().find("errors=0") != std::string::npos);
      const auto ticks = numbered_thread_ticks(s.proc.pid(), "NIL server");
      CHECK(ticks.size() == static_cast<std::size_t>(std::stoi(threads)));
      for (const auto& [name, t] : ticks) {
        INFO(name << ": " << t << " ticks");
        CHECK(t > 0);
      }
    }
  }
}

TEST_CASE("lanes: discard on several threads reads everything and closes on the client's close", "[lanes][discard]") {
  auto s = start_server({"--discard", "--threads", "2"});
  for (int i = 0; i < 20; ++i) {
    auto c = client::connect_or_throw(s.port);
    c.send_all(random_bytes(300 * 1024, static_cast<std::uint32_t>(i)));
    c.shutdown_write();
    auto r = c.read_all(5s);
    CHECK(r.data.empty());
    CHECK(r.eof);
  }
}

TEST_CASE("lanes: a handler or option that needs more than the socket keeps a single listener", "[lanes]") {
  for (const auto& args : std::vector<std::vector<std::string>>{{"--threads", "2", "-v"},
                                                                {"--threads", "2", "--max-connections", "5"},
                                                                {"--threads", "2", "--talk"}}) {
    auto s = start_server(args);
    CHECK(listeners_on(s.proc.pid(), s.port) == 1);
    CHECK(echoes(s.port, "x") == (args.back() != "--talk"));
  }
}

TEST_CASE("lanes: a short echo connection costs the server at most 9 system calls", "[lanes][echo][slow]") {
  auto strace = usable_strace();
  if (!strace) return;
  // Two runs: what they differ by is the cost of the extra connections alone, without
  // starting and stopping.
  const auto few = counted_calls(*strace, 200);
  const auto many = counted_calls(*strace, 1200);
  std::ostringstream by_name;
  long total = 0;
  for (const auto& [name, calls] : many) {
    const long extra = calls - (few.count(name) ? few.at(name) : 0);
    total += extra;
    if (extra != 0) by_name << name << " " << static_cast<double>(extra) / 1000 << "\n";
  }
  const double per_connection = static_cast<double>(total) / 1000;
  INFO("system calls per connection: " << per_connection << "\n" << by_name.str());
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  WARN("a sanitizer's runtime makes calls of its own: the figure is shown, not checked");
  CHECK(per_connection > 0);
#else
  CHECK(per_connection > 5);  // accept, read, write, read (EOF), close at least
  CHECK(per_connection <= 9);
#endif
}

TEST_CASE("lanes: a port a several-thread server listens on is refused to a second server, as any port in use",
          "[lanes][errors]") {
  for (const char* first_threads : {"1", "2"}) {
    for (const char* second_threads : {"1", "2"}) {
      INFO("first --threads " << first_threads << ", second --threads " << second_threads);
      auto s = start_server({"--threads", first_threads});
      auto r = run_binary({"-a", "127.0.0.1", "-s", std::to_string(s.port), "--threads", second_threads});
      CHECK(r.status == 69);
      CHECK(r.err.find("Address already in use") != std::string::npos);
      CHECK(echoes(s.port, "still mine"));
    }
  }
  // Sharing is what --reuseport is for: both servers ask, and both serve.
  auto a = start_server({"--threads", "2", "--reuseport"});
  auto b = start_server_with({"-a", "127.0.0.1", "-s", std::to_string(a.port)}, {"--threads", "2", "--reuseport"});
  CHECK(listeners_on(b.proc.pid(), a.port) == 2);
  CHECK(echoes(a.port, "shared"));
}
