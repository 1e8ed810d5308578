// Integration tests: the first ten minutes at a shell (a terminal, a port as a word, --stdio,
// --child-stderr, a full accept queue, bracketed addresses).
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <thread>

#include "support/test_support.hpp"

extern char** environ;

using namespace test_support;
using namespace std::chrono_literals;

namespace {

// The server with its stderr on a pseudo-terminal (a person watching) and stdout a pipe.
class on_terminal {
 public:
  explicit on_terminal(const std::vector<std::string>& args) {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    REQUIRE(master_ >= 0);
    REQUIRE(::grantpt(master_) == 0);
    REQUIRE(::unlockpt(master_) == 0);
    const int slave = ::open(::ptsname(master_), O_RDWR | O_NOCTTY | O_CLOEXEC);
    REQUIRE(slave >= 0);
    const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, null, 0);
    ::posix_spawn_file_actions_adddup2(&actions, null, 1);
    ::posix_spawn_file_actions_adddup2(&actions, slave, 2);
    std::vector<std::string> argv{binary_path()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, raw[0], &actions, nullptr, raw.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(slave);
    ::close(null);
    REQUIRE(rc == 0);
  }
  ~on_terminal() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(master_);
  }

  // Reads what the terminal shows until `text` appears or the time is up.
  bool wait_for(const std::string& text, milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    while (shown_.find(text) == std::string::npos && steady::now() < deadline) {
      pollfd p{master_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[1024];
      const ssize_t n = ::read(master_, buf, sizeof buf);
      if (n > 0) shown_.append(buf, static_cast<std::size_t>(n));
    }
    return shown_.find(text) != std::string::npos;
  }
  const std::string& shown() const { return shown_; }
  void signal(int sig) { ::kill(pid_, sig); }
  int wait_exit(milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    while (steady::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      wait_for("\x01never", 20ms);  // keep the terminal drained meanwhile
    }
    return timed_out;
  }

 private:
  int master_ = -1;
  pid_t pid_ = -1;
  std::string shown_;
};

// Stops the server, lets n clients connect at once (more than the queue holds), resumes it.
std::vector<int> burst_while_stopped(server_process& s, int n) {
  REQUIRE(s.proc.send_signal(SIGSTOP));
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(s.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    fds.push_back(fd);
  }
  std::this_thread::sleep_for(100ms);
  REQUIRE(s.proc.send_signal(SIGCONT));
  return fds;
}

std::uint16_t port_after(const std::string& text, const std::string& marker) {
  const auto at = text.find(marker);
  if (at == std::string::npos) return 0;
  return static_cast<std::uint16_t>(std::stoul(text.substr(at + marker.size())));
}

}  // namespace

TEST_CASE("shell: on a terminal the server says where it listens, and what a Ctrl-C waits for",
          "[shell][tty]") {
  on_terminal t({"-a", "127.0.0.1", "0"});
  REQUIRE(t.wait_for("startup-server: echo on 127.0.0.1:", 5s));
  REQUIRE(t.wait_for("\n", 2s));
  const std::uint16_t port = port_after(t.shown(), "echo on 127.0.0.1:");
  REQUIRE(port != 0);
  auto held = client::connect_or_throw(port);
  REQUIRE(held.exchange("hi\n", 3, false).data == "hi\n");
  t.signal(SIGINT);
  CHECK(t.wait_for("startup-server: stopping: waiting up to 3 s for 1 connection (Ctrl-C again to stop now)", 5s));
  t.signal(SIGINT);
  CHECK(t.wait_exit(5s) == 0);
}

TEST_CASE("shell: without a terminal the output stays exactly as scripts expect", "[shell][tty]") {
  auto s = start_server({});
  REQUIRE(s.proc.send_signal(SIGTERM));
  CHECK(s.proc.wait_exit(5s) == 0);
  CHECK(s.proc.err().empty());
}

TEST_CASE("shell: a port as the first word", "[shell]") {
  child_process p({binary_path(), "-a", "127.0.0.1", "--announce=stdout", "--announce-format={port}", "0"});
  auto line = p.stdout_line(5s);
  REQUIRE(line);
  const auto port = static_cast<std::uint16_t>(std::stoul(*line));
  auto c = client::connect_or_throw(port);
  CHECK(c.exchange("word\n", 5, false).data == "word\n");
}

TEST_CASE("shell: --stdio joins one client at a time to stdin and stdout", "[shell][stdio]") {
  // stdin: a line to type, then EOF (which half-closes the connection).
  temp_dir dir;
  const std::string port_file = dir.file("port");
  const std::string script = "printf 'typed at the terminal\\n' | exec '" + binary_path() +
                             "' -a 127.0.0.1 -s 0 --stdio --once --announce=" + port_file +
                             " --announce-format='{port}'";
  child_process p({"/bin/sh", "-c", script});
  REQUIRE(wait_until([&] { return read_file(port_file).value_or("").find('\n') != std::string::npos; }, 5s));
  const auto port = static_cast<std::uint16_t>(std::stoul(*read_file(port_file)));
  auto c = client::connect_or_throw(port);
  // What was typed arrives, then EOF: stdin ended.
  auto r = c.read_all(5s);
  CHECK(r.data == "typed at the terminal\n");
  CHECK(r.eof);
  // The client can still send after the half-close: it goes to stdout.
  CHECK(c.send_all("from the client\n"));
  CHECK(p.wait_for_stdout("from the client\n", 5s));
  c.close();  // its close ends the connection, and with --once the server
  CHECK(p.wait_exit(5s) == 0);
}

TEST_CASE("shell: --stdio keeps a second client waiting until the first has gone", "[shell][stdio]") {
  temp_dir dir;
  const std::string port_file = dir.file("port");
  // stdin is a FIFO the test holds open, so the first connection lasts until its client closes.
  const std::string fifo = dir.file("stdin");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const int held_stdin = ::open(fifo.c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(held_stdin >= 0);
  const std::string script = "exec '" + binary_path() + "' -a 127.0.0.1 -s 0 --stdio --announce=" + port_file +
                             " --announce-format='{port}' < " + fifo;
  child_process p({"/bin/sh", "-c", script});
  REQUIRE(wait_until([&] { return read_file(port_file).value_or("").find('\n') != std::string::npos; }, 5s));
  const auto port = static_cast<std::uint16_t>(std::stoul(*read_file(port_file)));
  auto first = client::connect_or_throw(port);
  REQUIRE(first.send_all("one\n"));
  REQUIRE(p.wait_for_stdout("one\n", 5s));
  auto second = client::connect_or_throw(port);  // waits in the backlog
  REQUIRE(second.send_all("two\n"));
  CHECK_FALSE(p.wait_for_stdout("two\n", 500ms));
  first.close();
  CHECK(p.wait_for_stdout("two\n", 5s));
  second.close();
  REQUIRE(p.send_signal(SIGTERM));
  CHECK(p.wait_exit(10s) == 0);
  ::close(held_stdin);
}

TEST_CASE("shell: --child-stderr collects what exec children say on stderr, also with --wait",
          "[shell][exec]") {
  subreaper_scope reaper;
  temp_dir dir;
  const std::string errors = dir.file("errors");
  const std::string port_file = dir.file("port");
  auto r = run_binary({"--wait", "-a", "127.0.0.1", "-s", "0", "--announce=" + port_file, "--announce-format={port}",
                       "--child-stderr", errors, "--sh-exec", "echo complaint >&2; echo answer"});
  REQUIRE(r.status == 0);
  detached_process server(static_cast<pid_t>(std::stol(r.out)));
  const auto port = static_cast<std::uint16_t>(std::stoul(*read_file(port_file)));
  for (int i = 0; i < 3; ++i) {
    auto c = client::connect_or_throw(port);
    CHECK(c.read_all(5s).data == "answer\n");
  }
  CHECK(wait_until([&] { return read_file(errors).value_or("") == "complaint\ncomplaint\ncomplaint\n"; }, 5s));
  REQUIRE(server.send_signal(SIGTERM));
  CHECK(server.wait_exit(10s) == 0);
}

TEST_CASE("shell: a full accept queue is warned about once, with the flag that helps", "[shell][backlog]") {
  auto s = start_server({"-v", "--log", "/dev/null"});  // the default backlog of 5
  const pid_t pid = s.proc.pid();
  // While the server is stopped, clients fill the accept queue past its limit.
  const std::vector<int> fds = burst_while_stopped(s, 20);
  CHECK(s.proc.wait_for_stderr("accept queue full (backlog 5): clients may be refused or delayed; try --backlog max",
                               5s));
  for (int fd : fds) ::close(fd);
  CHECK(wait_until([&] { return count_fds(pid) > 0; }, 1s));
  std::this_thread::sleep_for(200ms);
  s.proc.pump(100ms);
  const std::string& err = s.proc.err();
  std::size_t count = 0;
  for (std::size_t at = err.find("accept queue full"); at != std::string::npos; at = err.find("accept queue full", at + 1))
    ++count;
  CHECK(count == 1);
}

TEST_CASE("shell: with -b max the same burst is no warning", "[shell][backlog]") {
  auto s = start_server({"-b", "max"});
  const std::vector<int> fds = burst_while_stopped(s, 20);
  std::this_thread::sleep_for(300ms);
  for (int fd : fds) ::close(fd);
  REQUIRE(s.proc.send_signal(SIGTERM));
  CHECK(s.proc.wait_exit(10s) == 0);
  CHECK(s.proc.err().find("accept queue full") == std::string::npos);
}

TEST_CASE("shell: an address in brackets binds like the bare one", "[shell][binding]") {
  child_process p({binary_path(), "-a", "[127.0.0.1]", "-s", "0", "--announce", "--announce-format={address} {port}"});
  auto line = p.stdout_line(5s);
  INFO("stderr: " << p.err());
  REQUIRE(line);
  CHECK(line->rfind("127.0.0.1 ", 0) == 0);
}
