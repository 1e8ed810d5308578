// What the server tells its caller: announcements, connection log records and diagnostics.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace startup_server {

// One socket option as the kernel took it: what was asked and what getsockopt reads back
// (Linux doubles SO_RCVBUF, clamps the MSS, ...).
struct socket_option_report {
  std::string name;       // "SO_RCVBUF", "TCP_MAXSEG", or the generic form as given
  std::string requested;  // as given ("65536", "bbr", "0x0100")
  std::string effective;  // as read back; "?" when it cannot be read back
};

// The kernel's TCP_INFO for one connection, taken just before it closed.
struct tcp_info_snapshot {
  std::uint32_t rtt_us = 0, rttvar_us = 0;
  std::uint32_t retransmits = 0, lost = 0;  // segments retransmitted in all, and now lost
  std::uint32_t snd_cwnd = 0, snd_ssthresh = 0, snd_mss = 0, rcv_mss = 0;
  std::uint64_t delivery_rate = 0;  // bytes per second
  std::uint64_t bytes_acked = 0, bytes_received = 0;
  std::uint64_t busy_us = 0, rwnd_limited_us = 0, sndbuf_limited_us = 0;
  std::string congestion;  // the algorithm in use ("cubic")
};

// One event told to `announce`: the seed calls its announce function with (socket, condition).
struct announce_event {
  enum class kind { listening, error, terminated };
  kind what = kind::listening;
  std::string address;     // numeric host of the listener ("127.0.0.1", "::1"); empty if none yet
  std::uint16_t port = 0;  // the bound port; 0 if none yet
  std::string family;      // "ipv4" or "ipv6"; empty if none yet
  std::string message;     // kind::error only: what failed, with the system's reason
  // kind::listening only: the listener's socket options, requested and effective (empty
  // when none was given).
  std::vector<socket_option_report> socket_options;
  // kind::listening with TLS: the SHA-256 fingerprint of the server's certificate
  // ("AB:CD:…", what a client pins), and whether it was made for this run.
  std::string tls_fingerprint;
  bool tls_self_signed = false;
};

// One line of the connection log: emitted when a connection opens and when it closes, or
// once, when it is refused before it was served (denied, over a limit).
struct connection_record {
  enum class kind { open, close, refused };
  kind what = kind::open;
  std::uint64_t id = 0;  // per-server sequence number, from 1
  std::string peer_address;
  std::uint16_t peer_port = 0;
  std::string local_address;
  std::uint16_t local_port = 0;
  // With the PROXY protocol: the proxy that sent the header (peer and local are then what
  // the header said); empty and 0 otherwise.
  std::string proxy_address;
  std::uint16_t proxy_port = 0;
  // kind::close only. Bytes are unknown (nullopt) when the socket was handed to a child.
  std::optional<std::uint64_t> bytes_in;   // from the client
  std::optional<std::uint64_t> bytes_out;  // to the client
  std::chrono::nanoseconds duration{0};
  // Exec handler only: the child's pid, and how it ended (exit status or signal number).
  int child_pid = 0;
  std::optional<int> exit_status;
  std::optional<int> term_signal;
  // kind::open, first connection only: its socket options, requested and effective.
  std::vector<socket_option_report> socket_options;
  // kind::close only, with server_options::tcp_info: the kernel's view of the connection.
  std::optional<tcp_info_snapshot> tcp;
  // kind::close only: why the server ended the connection itself, empty when it ran its
  // course ("refused: pipe2: Too many open files", "cut: the server stopped").
  std::string reason;
};

// Bytes of one connection as they pass (the traffic trace).
struct traffic_record {
  enum class direction { in, out };  // in: from the client; out: to the client
  std::uint64_t id = 0;               // the connection's id, as in the connection log
  direction way = direction::in;
  std::string_view bytes;             // valid during the call only
};

// Something the server has to say that is not an event of its own: a warning (an accept
// error, a listener reopened, a child that could not be started, a callback that threw)
// or, with `error` set, the fatal error that ended it. The library writes nothing to
// stderr itself: it tells `diagnostics`, and the caller words and places the line.
struct diagnostic {
  enum class kind { warning, fatal };
  // What it is about, for a caller that has more to say on some: accept_queue_full is a
  // listen backlog too small for the clients' bursts.
  enum class subject { other, accept_queue_full };
  kind what = kind::warning;
  std::string message;  // one line, no program name ("accept: Too many open files (backing off)")
  subject about = subject::other;
};

}  // namespace startup_server
