// Integration test: the benchmark's load generator, run tiny and bounded against the built server.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "support/process.hpp"  // binary_path(): honours STARTUP_SERVER_TEST_BIN

extern char** environ;

namespace {

using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

// A child process with its stdout on a pipe; stopped (SIGTERM, then SIGKILL) and reaped on
// destruction, so a failed assertion never leaves it running.
class child_process {
 public:
  explicit child_process(const std::vector<std::string>& argv) {
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    out_ = out[0];
    if (rc != 0) pid_ = -1;
    REQUIRE(rc == 0);
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process() {
    stop();
    if (out_ >= 0) ::close(out_);
  }

  // One line of stdout (without its newline), or nothing at EOF or the deadline.
  std::optional<std::string> read_line(std::chrono::milliseconds limit) {
    const auto deadline = steady::now() + limit;
    for (;;) {
      if (auto nl = buffered_.find('\n'); nl != std::string::npos) {
        std::string line = buffered_.substr(0, nl);
        buffered_.erase(0, nl + 1);
        return line;
      }
      if (!fill(deadline)) return std::nullopt;
    }
  }

  // Everything on stdout until EOF, bounded by the deadline.
  std::string read_all(std::chrono::milliseconds limit) {
    const auto deadline = steady::now() + limit;
    while (fill(deadline)) {
    }
    std::string all;
    all.swap(buffered_);
    return all;
  }

  // The exit status once the process ends, or nothing if it is still running at the deadline.
  std::optional<int> wait_exit(std::chrono::milliseconds limit) {
    const auto deadline = steady::now() + limit;
    while (pid_ > 0) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (r < 0 || steady::now() >= deadline) return std::nullopt;
      ::usleep(2000);
    }
    return std::nullopt;
  }

  pid_t pid() const { return pid_; }

  // SIGTERM, then SIGKILL if it has not ended within 10 s; the exit status after SIGTERM.
  std::optional<int> stop() {
    if (pid_ <= 0) return std::nullopt;
    ::kill(pid_, SIGTERM);
    if (auto status = wait_exit(10s)) return status;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return std::nullopt;
  }

 private:
  bool fill(steady::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
    if (left <= 0 || out_ < 0) return false;
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char buf[4096];
    const ssize_t n = ::read(out_, buf, sizeof buf);
    if (n <= 0) return false;
    buffered_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int out_ = -1;
  std::string buffered_;
};

struct loadgen_run {
  std::optional<int> status;
  std::string output;
};

loadgen_run run_loadgen(std::vector<std::string> args) {
  args.insert(args.begin(), STARTUP_SERVER_BENCH_BIN);
  child_process loadgen(args);
  loadgen_run run;
  run.output = loadgen.read_all(40s);
  run.status = loadgen.wait_exit(10s);
  return run;
}

}  // namespace

TEST_CASE("bench: the load generator runs short and stream modes against the server", "[bench]") {
  child_process server({test_support::binary_path(), "-a", "127.0.0.1", "-s", "0", "--announce", "--announce-format={port}"});
  const auto port_line = server.read_line(10s);
  REQUIRE(port_line);
  const std::string port = *port_line;
  REQUIRE(!port.empty());
  REQUIRE(port.find_first_not_of("0123456789") == std::string::npos);

  SECTION("short: 4 clients x 50 connections, every echo verified") {
    const auto run = run_loadgen({"short", "--port", port, "--clients", "4", "--count", "200", "--max-seconds", "20",
                                  "--pid", std::to_string(server.pid()), "--label", "test"});
    INFO(run.output);
    REQUIRE(run.status == 0);
    CHECK(run.output.rfind("result mode=short label=test ", 0) == 0);
    CHECK(run.output.find(" conns=200 ") != std::string::npos);
    CHECK(run.output.find(" errors=0 mismatches=0 timeouts=0") != std::string::npos);
  }

  SECTION("stream: 4 MiB each way at once, verified byte by byte, then EOF") {
    const auto run = run_loadgen({"stream", "--port", port, "--bytes", "4M", "--max-seconds", "20", "--label", "test"});
    INFO(run.output);
    REQUIRE(run.status == 0);
    CHECK(run.output.rfind("result mode=stream label=test bytes=4194304 ", 0) == 0);
    CHECK(run.output.find(" verified=yes eof=yes") != std::string::npos);
  }

  SECTION("the load generator refuses an address off the loopback") {
    const auto run = run_loadgen({"short", "--host", "192.0.2.1", "--port", port, "--max-seconds", "5"});
    CHECK(run.status == 2);
    CHECK(run.output.empty());
  }

  CHECK(server.stop() == 0);
}

TEST_CASE("bench: the soak mode verifies mixed traffic to echo, talk and an exec'd cat at once", "[bench][soak]") {
  auto echo = test_support::start_server({});
  auto talk = test_support::start_server({"--talk"});
  auto cat = test_support::start_server({"--create-stream", "--exec", "/bin/cat"});
  const auto run = run_loadgen({"soak", "--echo-port", std::to_string(echo.port), "--talk-port",
                                std::to_string(talk.port), "--cat-port", std::to_string(cat.port), "--clients", "4",
                                "--duration", "2", "--max-seconds", "30"});
  INFO(run.output);
  REQUIRE(run.status == 0);
  for (const char* label : {"echo", "talk", "cat"}) {
    const auto at = run.output.find(std::string("result mode=soak label=") + label + " ");
    REQUIRE(at != std::string::npos);
    const std::string line = run.output.substr(at, run.output.find('\n', at) - at);
    CHECK(line.find(" errors=0") != std::string::npos);
    CHECK(line.find(" conns=0 ") == std::string::npos);
  }
}
