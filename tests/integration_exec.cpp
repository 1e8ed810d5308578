// Integration tests: --exec and --sh-exec — arguments, UCSPI environment, descriptors, EOF, reaping.
#include <signal.h>

#include <catch2/catch.hpp>
#include <map>

#include "support/test_support.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t mib = 1024 * 1024;

// The whole answer of one connection that sends nothing.
read_result answer(std::uint16_t port, milliseconds timeout = 5s) {
  auto c = client::connect_or_throw(port);
  return c.read_all(timeout);
}

std::map<std::string, std::string> parse_env(const std::string& text) {
  std::map<std::string, std::string> env;
  for (const auto& line : split_lines(text)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

// The two ways a child is connected: the socket itself, or pipes relayed by the server.
std::vector<std::string> mode_flags(bool create_stream) {
  return create_stream ? std::vector<std::string>{"--create-stream"} : std::vector<std::string>{};
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Waits until the json connection log on the server's stderr has `count` close lines.
std::vector<json_object> close_records(child_process& p, std::size_t count, milliseconds timeout = 10s) {
  std::vector<json_object> closes;
  wait_until(
      [&] {
        p.pump(0ms);
        closes.clear();
        for (const auto& line : split_lines(p.err())) {
          auto o = parse_json_line(line);
          if (o && o->string("event") == "close") closes.push_back(*o);
        }
        return closes.size() >= count;
      },
      timeout);
  return closes;
}

}  // namespace

TEST_CASE("exec: arguments reach the program unchanged, without a shell", "[exec]") {
  auto s = start_server({"--exec", "printf", "%s|", "a b", "it's", "$HOME", "", "*"});
  auto r = answer(s.port);
  CHECK(r.eof);
  CHECK(r.data == "a b|it's|$HOME||*|");
}

TEST_CASE("exec: --sh-exec runs the string with /bin/sh -c", "[exec]") {
  auto s = start_server({"--sh-exec", "echo \"$0\"; echo one two | tr ' ' '\\n'"});
  auto r = answer(s.port);
  CHECK(r.eof);
  CHECK(r.data == "/bin/sh\none\ntwo\n");
}

TEST_CASE("exec: the UCSPI environment describes the client's connection", "[exec][ucspi]") {
  for (bool create_stream : {false, true}) {
    INFO("create-stream: " << create_stream);
    auto s = start_server(concat(mode_flags(create_stream), {"--exec", "/usr/bin/env"}));
    auto c = client::connect_or_throw(s.port);
    auto r = c.read_all(5s);
    REQUIRE(r.eof);
    auto env = parse_env(r.data);
    CHECK(env["PROTO"] == "TCP");
    CHECK(env["TCPLOCALIP"] == "127.0.0.1");
    CHECK(env["TCPLOCALPORT"] == std::to_string(s.port));
    CHECK(env["TCPREMOTEIP"] == "127.0.0.1");
    CHECK(env["TCPREMOTEPORT"] == std::to_string(c.local_port()));
    CHECK(env.count("PATH") == 1);  // the server's own environment is passed on
  }
}

TEST_CASE("exec: stdin and stdout are the socket by default and pipes with --create-stream", "[exec]") {
  const char* probe =
      "for f in /dev/stdin /dev/stdout; do"
      "  if test -S $f; then echo socket; elif test -p $f; then echo pipe; else echo other; fi;"
      " done";
  {
    auto s = start_server({"--sh-exec", probe});
    CHECK(answer(s.port).data == "socket\nsocket\n");
  }
  {
    auto s = start_server({"--create-stream", "--sh-exec", probe});
    CHECK(answer(s.port).data == "pipe\npipe\n");
  }
}

TEST_CASE("exec: the child's stderr is the server's stderr", "[exec]") {
  auto s = start_server({"--sh-exec", "echo child-diagnostic >&2; echo out"});
  CHECK(answer(s.port).data == "out\n");
  CHECK(s.proc.wait_for_stderr("child-diagnostic\n", 5s));
}

TEST_CASE("exec: the child inherits only descriptors 0, 1 and 2", "[exec][fds]") {
  for (bool create_stream : {false, true}) {
    INFO("create-stream: " << create_stream);
    auto s = start_server(concat(mode_flags(create_stream), {"--exec", "/bin/ls", "-l", "/proc/self/fd/"}));
    // Another connection open meanwhile: its socket must not reach the child either.
    auto bystander = client::connect_or_throw(s.port);
    auto r = answer(s.port);
    REQUIRE(r.eof);
    INFO("ls -l /proc/self/fd/ in the child:\n" << r.data);
    std::vector<int> fds;
    int unexpected = 0;
    for (const auto& line : split_lines(r.data)) {
      auto arrow = line.find(" -> ");
      if (arrow == std::string::npos) continue;
      auto space = line.rfind(' ', arrow - 1);
      int fd = std::stoi(line.substr(space + 1, arrow - space - 1));
      const std::string target = line.substr(arrow + 4);
      // ls holds the directory it lists: /proc/<its pid>/fd.
      const bool own_listing = target.rfind("/proc/", 0) == 0 && target.size() > 3 &&
                               target.compare(target.size() - 3, 3, "/fd") == 0;
      if (fd > 2 && !own_listing) ++unexpected;
      if (!own_listing) fds.push_back(fd);
    }
    std::sort(fds.begin(), fds.end());
    CHECK(fds == std::vector<int>{0, 1, 2});
    CHECK(unexpected == 0);
  }
}

TEST_CASE("exec: the child starts with default signal dispositions and an empty mask", "[exec]") {
  for (bool create_stream : {false, true}) {
    INFO("create-stream: " << create_stream);
    auto s = start_server(concat(mode_flags(create_stream), {"--exec", "/bin/grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"}));
    auto r = answer(s.port);
    auto lines = split_lines(r.data);
    REQUIRE(lines.size() == 2);
    REQUIRE(lines[0].rfind("SigBlk:\t", 0) == 0);
    REQUIRE(lines[1].rfind("SigIgn:\t", 0) == 0);
    const auto blocked = std::stoull(lines[0].substr(8), nullptr, 16);
    const auto ignored = std::stoull(lines[1].substr(8), nullptr, 16);
    // Signals 32 and 33 are glibc's own (SIGCANCEL, SIGSETXID): posix_spawn leaves
    // them ignored in every child and no application can name them. Bit n-1 is signal n.
    const unsigned long long glibc_internal = (1ULL << 31) | (1ULL << 32);
    CHECK(blocked == 0);
    CHECK((ignored & ~glibc_internal) == 0);
  }
}

TEST_CASE("exec: a socket given to the child is blocking", "[exec]") {
  auto s = start_server({"--exec", "/bin/grep", "^flags:", "/proc/self/fdinfo/0"});
  auto r = answer(s.port);
  REQUIRE(r.data.rfind("flags:", 0) == 0);
  const unsigned long flags = std::stoul(r.data.substr(6), nullptr, 8);
  CHECK((flags & 04000) == 0);  // O_NONBLOCK
}

TEST_CASE("exec: a client half-close reaches the child as EOF, and its answer comes back before EOF",
          "[exec][half-close]") {
  for (bool create_stream : {false, true}) {
    INFO("create-stream: " << create_stream);
    auto s = start_server(concat(mode_flags(create_stream), {"--sh-exec", "cat; echo done"}));
    auto c = client::connect_or_throw(s.port);
    auto r = c.exchange("hello\nworld\n", std::nullopt, true, 10s);
    CHECK_FALSE(r.timed_out);
    CHECK(r.eof);
    CHECK(r.data == "hello\nworld\ndone\n");
  }
}

TEST_CASE("exec: 1 MiB through cat comes back byte for byte", "[exec]") {
  for (bool create_stream : {false, true}) {
    INFO("create-stream: " << create_stream);
    auto s = start_server(concat(mode_flags(create_stream), {"--exec", "/bin/cat"}));
    const std::string data = random_bytes(mib, create_stream ? 31 : 30);
    {
      auto c = client::connect_or_throw(s.port);
      auto r = c.exchange(data, std::nullopt, true, 20s);
      CHECK_FALSE(r.timed_out);
      CHECK(r.eof);
      CHECK(r.data.size() == data.size());
      CHECK(r.data == data);
    }
    {
      // Without a half-close: the reply arrives while the connection is still open.
      auto c = client::connect_or_throw(s.port);
      auto r = c.exchange(data, data.size(), false, 20s);
      CHECK(r.data == data);
    }
  }
}

TEST_CASE("exec: a child that exits at once gives the client EOF promptly", "[exec]") {
  for (bool create_stream : {false, true}) {
    INFO("create-stream: " << create_stream);
    auto s = start_server(concat(mode_flags(create_stream), {"--exec", "/bin/true"}));
    auto c = client::connect_or_throw(s.port);
    const auto start = steady::now();
    auto r = c.read_all(5s);
    CHECK(r.data.empty());
    CHECK((r.eof || r.error == ECONNRESET));
    CHECK(steady::now() - start < 2s);
  }
}

TEST_CASE("exec: a child killed by a signal ends its connection and the server keeps serving", "[exec]") {
  for (bool create_stream : {false, true}) {
    INFO("create-stream: " << create_stream);
    auto s = start_server(concat(mode_flags(create_stream),
                                 {"-v", "--log-format", "json", "--sh-exec", "echo hi; kill -9 $$"}));
    for (int i = 0; i < 3; ++i) {
      auto r = answer(s.port);
      CHECK(r.data == "hi\n");
      CHECK(r.eof);
    }
    CHECK(s.proc.running());
    auto closes = close_records(s.proc, 3);
    REQUIRE(closes.size() == 3);
    for (const auto& c : closes) {
      CHECK(c.number("signal") == SIGKILL);
      CHECK_FALSE(c.has("exit_status"));
      CHECK(c.number("child_pid").value_or(0) > 0);
    }
    CHECK(wait_until([&] { return count_zombie_children(s.proc.pid()) == 0; }, 5s));
  }
}

TEST_CASE("exec: with -v --log-format json a close line carries the child's exit status", "[exec][log]") {
  for (bool create_stream : {false, true}) {
    INFO("create-stream: " << create_stream);
    auto s = start_server(concat(mode_flags(create_stream), {"-v", "--log-format", "json", "--sh-exec", "exit 3"}));
    auto r = answer(s.port);
    CHECK(r.data.empty());
    auto closes = close_records(s.proc, 1);
    REQUIRE(closes.size() == 1);
    CHECK(closes[0].number("exit_status") == 3);
    CHECK_FALSE(closes[0].has("signal"));
    CHECK(closes[0].number("child_pid").value_or(0) > 0);
    if (create_stream) {
      CHECK(closes[0].number("bytes_in") == 0);
      CHECK(closes[0].number("bytes_out") == 0);
    } else {
      // The socket went to the child: the server cannot count its bytes.
      CHECK(closes[0].is_null("bytes_in"));
      CHECK(closes[0].is_null("bytes_out"));
    }
  }
}

TEST_CASE("exec: 500 short connections leave no zombie and no extra descriptor in the server",
          "[exec][fds][slow]") {
  for (bool create_stream : {false, true}) {
    INFO("create-stream: " << create_stream);
    auto s = start_server(concat(mode_flags(create_stream), {"--exec", "/bin/true"}));
    const pid_t pid = s.proc.pid();
    auto settle = [&] { return count_zombie_children(pid) == 0 && children_of(pid).empty(); };
    for (int i = 0; i < 5; ++i) answer(s.port);  // warm up lazily created descriptors
    REQUIRE(wait_until(settle, 5s));
    const int before = settled_fd_count(pid);
    REQUIRE(before > 0);
    const int rounds = create_stream ? 200 : 500;
    int served = 0;
    for (int i = 0; i < rounds; ++i) {
      auto c = client::connect(s.port, 5s);
      if (!c) continue;
      auto r = c->read_all(5s);
      served += (r.eof || r.error == ECONNRESET) ? 1 : 0;
    }
    CHECK(served == rounds);
    CHECK(wait_until(settle, 5s));
    CHECK(count_zombie_children(pid) == 0);
    CHECK(wait_until([&] { return count_fds(pid) == before; }, 5s));
    INFO("descriptors before " << before << ", after " << count_fds(pid));
    CHECK(count_fds(pid) == before);
  }
}

TEST_CASE("exec: an empty --sh-exec string does not silently become an echo server", "[exec][errors]") {
  child_process p({binary_path(), "-a", "127.0.0.1", "-s", "0", "--announce", "--announce-format={port}",
                   "--sh-exec", ""});
  auto line = p.stdout_line(10s);
  if (!line) {
    // Refused as a usage error: fine, if it is one.
    CHECK(p.wait_exit(10s) == 64);
    CHECK(p.err().find("--sh-exec") != std::string::npos);
    return;
  }
  // Accepted as `sh -c ''`: the child does nothing and the client gets EOF, no echo.
  auto c = client::connect_or_throw(static_cast<std::uint16_t>(std::stoul(*line)));
  auto r = c.exchange("ping\n", std::nullopt, true, 5s);
  CHECK(r.data.empty());
}

TEST_CASE("exec: stopping the server ends running children", "[exec][lifecycle]") {
  auto s = start_server({"--exec", "/bin/sleep", "60"}, announce_style::json);
  const pid_t pid = s.proc.pid();
  auto c = client::connect_or_throw(s.port);
  std::vector<pid_t> children;
  REQUIRE(wait_until(
      [&] {
        children = children_of(pid);
        return !children.empty();
      },
      5s));
  REQUIRE(s.proc.send_signal(SIGTERM));
  CHECK(s.proc.wait_exit(10s) == 0);
  for (pid_t child : children) {
    INFO("child " << child);
    CHECK(wait_until(
        [&] {
          auto state = process_state(child);
          return !state || *state == 'Z';
        },
        5s));
  }
  CHECK(s.proc.out().find("\"event\":\"terminated\"") != std::string::npos);
}

TEST_CASE("exec: a child that ignores SIGTERM is killed when the grace period ends", "[exec][lifecycle]") {
  // exec keeps an ignored signal ignored: the child is sleep itself, deaf to SIGTERM.
  auto s = start_server({"--grace", "0.5", "--sh-exec", "trap '' TERM; exec sleep 60"}, announce_style::json);
  const pid_t pid = s.proc.pid();
  auto c = client::connect_or_throw(s.port);
  std::vector<pid_t> children;
  REQUIRE(wait_until(
      [&] {
        children = children_of(pid);
        return !children.empty();
      },
      5s));
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(s.proc.send_signal(SIGTERM));
  CHECK(s.proc.wait_exit(10s) == 0);
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 400ms);  // SIGTERM alone did not end it...
  // ...SIGKILL at the end of the grace did, well before the server's 2 s last resort
  // after the grace (which would also end it, at 2.5 s).
  CHECK(took < 1500ms);
  for (pid_t child : children) {
    INFO("child " << child);
    CHECK(wait_until(
        [&] {
          auto state = process_state(child);
          return !state || *state == 'Z';
        },
        5s));
  }
}

TEST_CASE("exec: a child waiting on its client blocks neither other connections nor the server", "[exec]") {
  for (bool create_stream : {false, true}) {
    INFO("create-stream: " << create_stream);
    auto s = start_server(concat(mode_flags(create_stream), {"--sh-exec", "read line; echo \"got $line\""}));
    auto waiting = client::connect_or_throw(s.port);  // its child waits for a line
    for (int i = 0; i < 3; ++i) {
      auto c = client::connect_or_throw(s.port);
      const std::string line = "client " + std::to_string(i);
      auto r = c.exchange(line + "\n", std::nullopt, false, 5s);
      CHECK(r.eof);
      CHECK(r.data == "got " + line + "\n");
    }
    auto r = waiting.exchange("first\n", std::nullopt, false, 5s);
    CHECK(r.data == "got first\n");
  }
}

TEST_CASE("exec: with --create-stream the child closing its stdout reaches the client as EOF while it still reads",
          "[exec][half-close]") {
  auto s = start_server({"--create-stream", "--sh-exec", "echo hello; exec 1>&-; read x; echo \"child read $x\" >&2"});
  auto c = client::connect_or_throw(s.port);
  auto r = c.read_all(5s);
  CHECK(r.eof);
  CHECK(r.data == "hello\n");
  // The other direction is still open: the child gets what the client sends now.
  REQUIRE(c.send_all("after-eof\n"));
  CHECK(s.proc.wait_for_stderr("child read after-eof\n", 5s));
}
