// child_process: posix_spawn with pipes, non-blocking reads against deadlines, a pidfd for the exit.
#include "support/process.hpp"
#include "support/test_threads.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <stdexcept>
#include <system_error>

#include "support/json_line.hpp"

extern char** environ;

namespace test_support {
namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::system_category(), what);
}

int open_pidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

milliseconds left_until(steady::time_point deadline) {
  auto now = steady::now();
  if (now >= deadline) return milliseconds(0);
  return std::chrono::ceil<milliseconds>(deadline - now);
}

// Owns what posix_spawn needs; released on every path.
struct spawn_setup {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  spawn_setup() {
    ::posix_spawnattr_init(&attr);
    ::posix_spawn_file_actions_init(&actions);
  }
  ~spawn_setup() {
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
  }
};

}  // namespace

std::string binary_path() {
  // Read once: the tests compare paths, so the answer must not change mid-run.
  static const std::string path = [] {
    const char* override_bin = std::getenv("STARTUP_SERVER_TEST_BIN");
    return std::string(override_bin && *override_bin ? override_bin : STARTUP_SERVER_BIN);
  }();
  return path;
}

namespace {

// environ with extras applied.
std::vector<std::string> environment_with(const std::vector<std::string>& changes) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  for (const auto& change : changes) {
    const std::string name = change.substr(0, change.find('='));
    std::erase_if(env, [&](const std::string& v) { return v.compare(0, name.size() + 1, name + "=") == 0; });
    if (change.find('=') != std::string::npos) env.push_back(change);
  }
  return env;
}

}  // namespace

child_process::child_process(const std::vector<std::string>& argv, const spawn_extras& extras) {
  if (argv.empty()) throw std::invalid_argument("child_process: empty argument vector");
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
  if (::pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(out[0]), ::close(out[1]);
    throw_errno(e, "pipe2");
  }
  // Only our read ends are non-blocking: each end of a pipe is its own file description.
  ::fcntl(out[0], F_SETFL, O_NONBLOCK);
  ::fcntl(err[0], F_SETFL, O_NONBLOCK);

  spawn_setup s;
  sigset_t all, none;
  ::sigfillset(&all);
  ::sigemptyset(&none);
  ::posix_spawnattr_setsigdefault(&s.attr, &all);
  ::posix_spawnattr_setsigmask(&s.attr, &none);
  ::posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  ::posix_spawn_file_actions_addopen(&s.actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&s.actions, out[1], 1);
  ::posix_spawn_file_actions_adddup2(&s.actions, err[1], 2);
  // Moved out of the way first, so no passed descriptor is overwritten before it is placed.
  std::vector<int> staged;
  for (int fd : extras.fds) staged.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 100));
  for (std::size_t i = 0; i < staged.size(); ++i)
    ::posix_spawn_file_actions_adddup2(&s.actions, staged[i], 3 + static_cast<int>(i));
  ::posix_spawn_file_actions_addclosefrom_np(&s.actions, 3 + static_cast<int>(staged.size()));

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_text = environment_with(extras.env);
  std::vector<char*> env;
  for (auto& e : env_text) env.push_back(e.data());
  env.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &s.actions, &s.attr, args.data(), env.data());
  for (int fd : staged) ::close(fd);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]), ::close(err[0]);
    throw_errno(rc, "posix_spawn " + argv[0]);
  }
  pid_ = pid;
  reaped_ = false;
  pidfd_ = open_pidfd(pid);
  out_.fd = out[0];
  err_.fd = err[0];
}

child_process::child_process(child_process&& other) noexcept
    : pid_(other.pid_), pidfd_(other.pidfd_), reaped_(other.reaped_), status_(other.status_),
      out_(std::move(other.out_)), err_(std::move(other.err_)) {
  other.pid_ = -1;
  other.pidfd_ = -1;
  other.reaped_ = true;
  other.out_.fd = other.err_.fd = -1;
}

child_process::~child_process() {
  // SIGTERM first, so a server still running at the end of a test ends its own children.
  if (send_signal(SIGTERM)) wait_exit(milliseconds(1000));  // which kills it if it does not end
  kill_and_reap();
  if (pidfd_ >= 0) ::close(pidfd_);
  if (out_.fd >= 0) ::close(out_.fd);
  if (err_.fd >= 0) ::close(err_.fd);
}

bool child_process::send_signal(int sig) noexcept {
  if (reaped_ || pid_ <= 0) return false;
  // Until it is reaped the PID cannot be reused, so this reaches our child only.
  return ::kill(pid_, sig) == 0;
}

bool child_process::read_available(pipe_reader& p) {
  if (p.fd < 0 || p.eof) return false;
  bool any = false;
  char buf[65536];
  for (int i = 0; i < 1024; ++i) {
    ssize_t n = ::read(p.fd, buf, sizeof buf);
    if (n > 0) {
      p.text.append(buf, static_cast<std::size_t>(n));
      any = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      p.eof = true;
      any = true;
    }
    break;  // EAGAIN, EOF or an error
  }
  return any;
}

bool child_process::pump(milliseconds timeout) {
  bool any = read_available(out_) | read_available(err_);
  if (any) return true;
  pollfd fds[2];
  nfds_t n = 0;
  if (out_.fd >= 0 && !out_.eof) fds[n++] = {out_.fd, POLLIN, 0};
  if (err_.fd >= 0 && !err_.eof) fds[n++] = {err_.fd, POLLIN, 0};
  if (n == 0) return false;
  int rc = ::poll(fds, n, static_cast<int>(timeout.count()));
  if (rc <= 0) return false;
  return read_available(out_) | read_available(err_);
}

std::optional<std::string> child_process::next_line(pipe_reader& p, milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  for (int round = 0; round < 100000; ++round) {
    auto nl = p.text.find('\n', p.consumed);
    if (nl != std::string::npos) {
      std::string line = p.text.substr(p.consumed, nl - p.consumed);
      p.consumed = nl + 1;
      return line;
    }
    if (p.eof || steady::now() >= deadline) return std::nullopt;
    pump(std::min(left_until(deadline), milliseconds(50)));
  }
  return std::nullopt;
}

std::optional<std::string> child_process::stdout_line(milliseconds timeout) { return next_line(out_, timeout); }
std::optional<std::string> child_process::stderr_line(milliseconds timeout) { return next_line(err_, timeout); }

bool child_process::wait_for_stdout(const std::string& text, milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  for (int round = 0; round < 100000; ++round) {
    if (out_.text.find(text) != std::string::npos) return true;
    if (out_.eof || steady::now() >= deadline) return false;
    pump(std::min(left_until(deadline), milliseconds(50)));
  }
  return false;
}

bool child_process::wait_for_stderr(const std::string& text, milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  for (int round = 0; round < 100000; ++round) {
    if (err_.text.find(text) != std::string::npos) return true;
    if (err_.eof || steady::now() >= deadline) return false;
    pump(std::min(left_until(deadline), milliseconds(50)));
  }
  return false;
}

bool child_process::wait_for_pipes_closed(milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  for (int round = 0; round < 100000; ++round) {
    if (out_.eof && err_.eof) return true;
    if (steady::now() >= deadline) return false;
    pump(std::min(left_until(deadline), milliseconds(50)));
  }
  return false;
}

bool child_process::try_reap() {
  if (reaped_) return true;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : timed_out;
    return true;
  }
  if (r < 0 && errno == ECHILD) {  // reaped elsewhere: nothing left to wait for
    reaped_ = true;
    status_ = timed_out;
    return true;
  }
  return false;
}

bool child_process::running() { return !try_reap(); }

int child_process::wait_exit(milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  for (int round = 0; round < 1000000 && !try_reap(); ++round) {
    if (steady::now() >= deadline) {
      kill_and_reap();
      read_available(out_), read_available(err_);
      return timed_out;
    }
    // Wake on output (so a chatty child never blocks on a full pipe) or on the exit.
    pollfd fds[3];
    nfds_t n = 0;
    if (pidfd_ >= 0) fds[n++] = {pidfd_, POLLIN, 0};
    if (out_.fd >= 0 && !out_.eof) fds[n++] = {out_.fd, POLLIN, 0};
    if (err_.fd >= 0 && !err_.eof) fds[n++] = {err_.fd, POLLIN, 0};
    int wait_ms = static_cast<int>(std::min(left_until(deadline), pidfd_ >= 0 ? milliseconds(200) : milliseconds(10)).count());
    ::poll(fds, n, wait_ms);
    read_available(out_), read_available(err_);
  }
  // What the child wrote before it ended; a grandchild may hold the pipes, so only what is there.
  read_available(out_), read_available(err_);
  return status_;
}

void child_process::kill_and_reap() noexcept {
  if (reaped_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid_, &status, 0);
    if (r < 0 && errno == EINTR) continue;
    break;
  }
  reaped_ = true;
  status_ = timed_out;
}

server_process start_server_with(const std::vector<std::string>& prefix, const std::vector<std::string>& args,
                                 announce_style style, milliseconds timeout) {
  std::vector<std::string> argv{binary_path()};
  argv.insert(argv.end(), prefix.begin(), prefix.end());
  if (test_threads() > 1 && std::find(args.begin(), args.end(), "--threads") == args.end()) {
    argv.push_back("--threads");
    argv.push_back(std::to_string(test_threads()));
  }
  argv.push_back("--announce");
  argv.push_back(style == announce_style::json ? "--announce-format=json" : "--announce-format={port}");
  argv.insert(argv.end(), args.begin(), args.end());
  server_process s{child_process(argv), 0, {}};
  auto line = s.proc.stdout_line(timeout);
  if (!line) {
    s.proc.pump(milliseconds(100));
    throw std::runtime_error("no listening announce within " + std::to_string(timeout.count()) +
                             " ms; stderr: " + s.proc.err());
  }
  s.announce_line = *line;
  unsigned long port = 0;
  if (style == announce_style::json) {
    auto object = parse_json_line(*line);
    if (!object || object->string("event") != "listening" || !object->number("port"))
      throw std::runtime_error("not a listening announce: " + *line);
    port = static_cast<unsigned long>(*object->number("port"));
  } else {
    auto [end, ec] = std::from_chars(line->data(), line->data() + line->size(), port);
    if (ec != std::errc{} || end != line->data() + line->size())
      throw std::runtime_error("not a port: '" + *line + "'; stderr: " + s.proc.err());
  }
  if (port == 0 || port > 65535) throw std::runtime_error("bad announced port: " + *line);
  s.port = static_cast<std::uint16_t>(port);
  return s;
}

server_process start_server(const std::vector<std::string>& args, announce_style style, milliseconds timeout) {
  return start_server_with({"-a", "127.0.0.1", "-s", "0"}, args, style, timeout);
}

run_result run_binary(const std::vector<std::string>& args, milliseconds timeout) {
  std::vector<std::string> argv{binary_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, timeout);
}

run_result run_command(const std::vector<std::string>& argv, milliseconds timeout) {
  const auto start = steady::now();
  child_process p(argv);
  run_result r;
  r.status = p.wait_exit(timeout);
  r.elapsed = std::chrono::duration_cast<milliseconds>(steady::now() - start);
  p.wait_for_pipes_closed(milliseconds(1000));
  r.out = p.out();
  r.err = p.err();
  return r;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    auto nl = text.find('\n', start);
    if (nl == std::string::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

}  // namespace test_support
