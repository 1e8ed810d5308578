// Loopback TCP clients for the tests: non-blocking sockets, every operation bounded by a deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace test_support {

using std::chrono::milliseconds;

// What a read up to EOF brought: the bytes, and how it ended.
struct read_result {
  std::string data;
  bool eof = false;        // the peer's FIN arrived
  int error = 0;           // errno of a failed read (ECONNRESET…), 0 if none
  bool timed_out = false;  // the deadline passed first
};

// A connected TCP client socket (close-on-exec, non-blocking, closed by the destructor).
class client {
 public:
  client() = default;
  client(client&& other) noexcept;
  client& operator=(client&& other) noexcept;
  client(const client&) = delete;
  ~client();

  // Connects to host:port (host a numeric 127.0.0.1 or ::1). Returns the client, or
  // nullopt with *error set to errno (ECONNREFUSED, ETIMEDOUT for the deadline…).
  static std::optional<client> connect(std::uint16_t port, milliseconds timeout = milliseconds(5000),
                                       const std::string& host = "127.0.0.1", int* error = nullptr);
  // As connect, from the local address `source` (127.0.0.2 is a peer other than 127.0.0.1;
  // empty: the system's choice).
  static std::optional<client> connect_from(const std::string& source, std::uint16_t port,
                                            milliseconds timeout = milliseconds(5000),
                                            const std::string& host = "127.0.0.1", int* error = nullptr);
  // As connect, throwing std::runtime_error on failure.
  static client connect_or_throw(std::uint16_t port, milliseconds timeout = milliseconds(5000),
                                 const std::string& host = "127.0.0.1");

  int fd() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  std::uint16_t local_port() const;

  // Writes all of data; false on error or when the deadline passes first.
  bool send_all(std::string_view data, milliseconds timeout = milliseconds(5000));
  // Writes what the socket takes right now, without waiting; returns the count (0 if full).
  std::size_t send_some(std::string_view data);
  // Reads until EOF, error, or the deadline.
  read_result read_all(milliseconds timeout = milliseconds(5000));
  // Reads until n bytes arrived (or EOF/error/deadline); data holds what came.
  read_result read_exact(std::size_t n, milliseconds timeout = milliseconds(5000));
  // Reads one line including its '\n' (kept aside: bytes after it stay for the next read).
  std::optional<std::string> read_line(milliseconds timeout = milliseconds(5000));
  // Sends data while reading, so neither side's buffers can deadlock a large transfer.
  // Stops when `expect` bytes have been read, or at EOF if expect is nullopt. With
  // half_close, shuts down the write side once everything is sent.
  read_result exchange(std::string_view data, std::optional<std::size_t> expect, bool half_close,
                       milliseconds timeout = milliseconds(10000));

  void shutdown_write();
  void close() noexcept;

 private:
  explicit client(int fd) noexcept : fd_(fd) {}
  // Reads what is there into out; returns false at EOF or error (recorded in r).
  bool read_into(read_result& r, std::size_t limit);

  int fd_ = -1;
  std::string pending_;  // bytes read past a line
};

// Connects and returns at once: 0 if connected, else errno (ECONNREFUSED…).
int connect_status(std::uint16_t port, const std::string& host = "127.0.0.1",
                   milliseconds timeout = milliseconds(2000));

// A listening TCP socket of the test's own, dual-stack on [::] (so the port is taken on
// every address, IPv4 and IPv6), port chosen by the system. Closed by the destructor.
class occupied_port {
 public:
  occupied_port();
  ~occupied_port();
  occupied_port(const occupied_port&) = delete;
  occupied_port& operator=(const occupied_port&) = delete;
  std::uint16_t port() const noexcept { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// True if nothing listens on 127.0.0.1:port (a SO_REUSEADDR bind succeeds).
bool port_is_free(std::uint16_t port);

}  // namespace test_support
