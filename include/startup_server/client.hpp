// open_tcp_stream: a small blocking client, the counterpart of the seed's comm:open-tcp-stream.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace startup_server {

// Both ends of a connection, numeric ("127.0.0.1", "::1"; IPv4-mapped shown as IPv4).
struct stream_endpoints {
  std::string local_address;
  std::uint16_t local_port = 0;
  std::string remote_address;
  std::uint16_t remote_port = 0;
};

// A connected, blocking TCP stream. Owns its descriptor (close-on-exec). Not thread-safe.
class tcp_stream {
 public:
  tcp_stream() noexcept = default;
  // Takes fd (a connected socket); its endpoints are read from the socket.
  explicit tcp_stream(int fd) noexcept;
  // Takes fd with endpoints known already (a server that rewrote who the peer is).
  tcp_stream(int fd, stream_endpoints endpoints) noexcept : fd_(fd), endpoints_(std::move(endpoints)) {}
  tcp_stream(tcp_stream&& other) noexcept;
  tcp_stream& operator=(tcp_stream&& other) noexcept;
  ~tcp_stream();

  int native_handle() const noexcept { return fd_; }
  // Who is on each end: for a client the server is remote; in a server's function the client is.
  const stream_endpoints& endpoints() const noexcept { return endpoints_; }
  bool is_open() const noexcept { return fd_ >= 0; }

  // Writes all of data. Throws std::system_error; the overload reports through ec.
  void write(std::string_view data);
  void write(std::string_view data, std::error_code& ec) noexcept;
  void write_line(std::string_view line);  // data and "\n"

  // Reads up to size bytes; 0 means EOF.
  std::size_t read_some(char* buffer, std::size_t size);
  std::size_t read_some(char* buffer, std::size_t size, std::error_code& ec) noexcept;
  // Reads one line without its "\n"; nullopt at EOF with nothing read (the seed's read-line).
  // A line longer than max_length throws std::system_error (std::errc::value_too_large),
  // so a peer that never sends a newline cannot make it buffer without bound.
  static constexpr std::size_t default_max_line = 1 << 20;
  std::optional<std::string> read_line(std::size_t max_length = default_max_line);
  // Reads until EOF.
  std::string read_all();

  void shutdown_write();  // half-close: the peer reads EOF
  void close() noexcept;
  // Applies SO_RCVTIMEO/SO_SNDTIMEO so a stalled peer turns into an error, not a hang.
  void set_timeout(std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
  stream_endpoints endpoints_;
  std::string pending_;  // read ahead by read_line
};

// Connects to host (name or literal) and service (port or name), trying each resolved
// address in turn. Throws std::system_error naming host and service; or reports via ec. A
// name that cannot be resolved gives the resolver's reason ("Servname not supported for
// ai_socktype", "Name or service not known"); a connect interrupted by a signal is
// carried to its end.
tcp_stream open_tcp_stream(const std::string& host, const std::string& service);
tcp_stream open_tcp_stream(const std::string& host, const std::string& service,
                           std::error_code& ec) noexcept;

}  // namespace startup_server
