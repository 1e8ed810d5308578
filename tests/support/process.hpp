// Runs a program as a child of the test: argument vector in, stdout/stderr captured, always reaped.
// The binary under test is $STARTUP_SERVER_TEST_BIN if set, else the one built alongside (binary_path).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace test_support {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

// The startup-server binary under test: $STARTUP_SERVER_TEST_BIN when it is set and not
// empty (to point the suite at another build, e.g.
// STARTUP_SERVER_TEST_BIN=/path/to/startup-server build/release/tests/integration_tests),
// else the one built with the tests (STARTUP_SERVER_BIN, compiled in).
std::string binary_path();

// What wait_exit reports: the exit code, 128 + the signal number for a signal, and
// timed_out when the child had to be killed because it did not end in time.
inline constexpr int timed_out = -1;

// A child started with posix_spawn. Its stdin is /dev/null; stdout and stderr are pipes
// read without blocking. It starts with default signal dispositions, an empty signal
// mask and only descriptors 0-2. If it is still running, the destructor sends SIGTERM,
// then SIGKILL after a second, and reaps it, so a failing test never leaves it behind.
// Not thread-safe.
// What a child gets beyond 0-2 and the test's environment.
struct spawn_extras {
  std::vector<int> fds;          // become the child's 3, 4, ... (as a service manager passes them)
  std::vector<std::string> env;  // NAME=VALUE, added or replacing; "NAME" alone removes it
};

class child_process {
 public:
  // argv[0] is looked up in PATH when it has no '/'. Throws std::system_error.
  explicit child_process(const std::vector<std::string>& argv, const spawn_extras& extras = {});
  child_process(child_process&& other) noexcept;
  child_process& operator=(child_process&&) = delete;
  child_process(const child_process&) = delete;
  ~child_process();

  pid_t pid() const noexcept { return pid_; }
  bool reaped() const noexcept { return reaped_; }

  // Sends sig to this child (and to nothing else: refused once it has been reaped).
  bool send_signal(int sig) noexcept;

  // Reads what stdout and stderr have, waiting at most `timeout` for something to arrive.
  // Returns true if any bytes or EOF were seen.
  bool pump(milliseconds timeout);

  // The next complete line of stdout (or stderr), without its '\n'; nullopt if none
  // arrived in time or the pipe ended first.
  std::optional<std::string> stdout_line(milliseconds timeout);
  std::optional<std::string> stderr_line(milliseconds timeout);

  // Everything read so far.
  const std::string& out() const noexcept { return out_.text; }
  const std::string& err() const noexcept { return err_.text; }

  // Pumps until `text` appears in stdout (or stderr) or the time is up.
  bool wait_for_stdout(const std::string& text, milliseconds timeout);
  bool wait_for_stderr(const std::string& text, milliseconds timeout);

  // True once both pipes have reached EOF (no process holds their write ends).
  bool wait_for_pipes_closed(milliseconds timeout);

  // Waits for the child to exit, reading its pipes meanwhile, and reaps it. Returns the
  // exit code, 128 + signal, or timed_out (after which it has been killed and reaped).
  int wait_exit(milliseconds timeout);

  // True while the child has not exited; once it has, it is reaped.
  bool running();

 private:
  struct pipe_reader {
    int fd = -1;
    std::string text;
    std::size_t consumed = 0;
    bool eof = false;
  };
  bool read_available(pipe_reader& p);
  std::optional<std::string> next_line(pipe_reader& p, milliseconds timeout);
  bool try_reap();
  void kill_and_reap() noexcept;

  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool reaped_ = true;
  int status_ = 0;
  pipe_reader out_, err_;
};

// A running startup-server on 127.0.0.1 with a port of the system's choosing.
struct server_process {
  child_process proc;
  std::uint16_t port = 0;
  std::string announce_line;  // the first announce line as printed
};

// How start_server learns the port.
enum class announce_style {
  port_template,  // --announce --announce-format={port}
  json,           // --announce --announce-format=json
};

// Runs `startup-server -a 127.0.0.1 -s 0 --announce --announce-format=… args…` (args come
// last so --exec may close the line) and waits up to `timeout` for the listening line.
// Throws std::runtime_error, with the server's stderr, if no port is announced in time.
server_process start_server(const std::vector<std::string>& args,
                            announce_style style = announce_style::port_template,
                            milliseconds timeout = milliseconds(10000));

// As start_server, with the given leading arguments instead of `-a 127.0.0.1 -s 0`
// (prefix precedes the announce flags; args follow them).
server_process start_server_with(const std::vector<std::string>& prefix, const std::vector<std::string>& args,
                                 announce_style style = announce_style::port_template,
                                 milliseconds timeout = milliseconds(10000));

// Runs the binary with args, waiting for it to end; for commands that are meant to exit.
struct run_result {
  int status = timed_out;
  std::string out, err;
  milliseconds elapsed{0};
};
run_result run_binary(const std::vector<std::string>& args, milliseconds timeout = milliseconds(10000));
// Runs any program (argv[0] looked up in PATH) the same way: cmake, pkg-config, a compiler.
run_result run_command(const std::vector<std::string>& argv, milliseconds timeout);

// Lines of text without their '\n' (a last line without one is kept).
std::vector<std::string> split_lines(const std::string& text);

}  // namespace test_support
