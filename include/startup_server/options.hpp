// The options of start_up_server, one field per keyword of the seed's comm:start-up-server.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "startup_server/client.hpp"
#include "startup_server/events.hpp"

namespace startup_server {

class server;

// A socket option by level and name numbers (the generic form).
struct raw_socket_option {
  int level = 0;
  int name = 0;
  std::string value;  // the bytes setsockopt is given (an int: 4 bytes, native order)
  std::string label;  // as given, for reports ("tcp:TCP_NOTSENT_LOWAT=16384")
};

// Socket options. Each is set where Linux needs it: on the listener before bind or listen
// when accepted sockets inherit it (buffer sizes, MSS) or it belongs to the listener
// (defer-accept, fast open, device, freebind, transparent), else on every accepted socket.
// Unset options are left to the kernel. The man page's SOCKET OPTIONS lists the option
// behind each field.
struct socket_options {
  std::optional<int> rcvbuf, sndbuf;       // SO_RCVBUF, SO_SNDBUF (bytes; Linux doubles them)
  std::optional<int> linger;               // SO_LINGER seconds; 0: reset on close
  std::optional<int> tos, ttl;             // IP_TOS / IPV6_TCLASS, IP_TTL / IPV6_UNICAST_HOPS
  std::optional<int> keepidle, keepintvl, keepcnt;  // TCP_KEEPIDLE/INTVL/CNT; each implies keepalive
  std::optional<int> mss;                  // TCP_MAXSEG
  std::optional<int> defer_accept;         // TCP_DEFER_ACCEPT seconds
  std::optional<int> fastopen;             // TCP_FASTOPEN queue length
  std::optional<int> user_timeout;         // TCP_USER_TIMEOUT milliseconds
  std::optional<std::string> congestion;   // TCP_CONGESTION ("bbr", "cubic")
  std::optional<std::string> bind_device;  // SO_BINDTODEVICE
  bool freebind = false;                   // IP_FREEBIND (on IPv6 sockets too)
  bool transparent = false;                // IP_TRANSPARENT (needs CAP_NET_ADMIN)
  std::optional<int> priority;             // SO_PRIORITY
  std::optional<int> mark;                 // SO_MARK (needs CAP_NET_ADMIN)
  bool quickack = false;                   // TCP_QUICKACK
  std::optional<int> notsent_lowat;        // TCP_NOTSENT_LOWAT bytes
  std::optional<int> window_clamp;         // TCP_WINDOW_CLAMP bytes
  std::vector<raw_socket_option> accepted; // the generic form, on accepted sockets
  std::vector<raw_socket_option> listener; // the generic form, on the listener (before bind)
};

// TLS on every connection. The server carries the bytes, so it applies to the built-in
// handlers, stdio and exec with create_stream; a user function reads and writes the
// plaintext on its tcp_stream, one end of a socket pair the server relays to the TLS
// connection. Raw-socket exec (the child would see the ciphertext) is refused with a
// usage condition.
struct tls_options {
  // The certificate chain (PEM, the server's certificate first) and its private key (PEM).
  // Both empty: a throw-away self-signed certificate (EC P-256, CN "startup-server", valid
  // for localhost, 127.0.0.1 and ::1 for 30 days) is made at start; its SHA-256 fingerprint
  // is in the listening announce_event. One without the other is a usage condition.
  std::string certificate_file;
  std::string key_file;
  // PEM file of the CAs that sign client certificates: when set, every client must present
  // a certificate one of them signed, or the handshake fails. Empty: none asked for.
  std::string client_ca_file;
  // A client that has not finished its handshake by then (counted from the handshake's
  // start, after any PROXY header) is refused ("tls: handshake timed out"). Positive.
  std::chrono::milliseconds handshake_timeout{10000};
};

// What serves each accepted connection (the seed's `function`).
enum class handler {
  echo,     // every byte back, in order; a client half-close is answered with the server's FIN
  talk,     // per line: "You sent: '<line>'" and a newline (a CR before the LF is dropped)
  discard,  // RFC 863: read and drop
  chargen,  // RFC 864: rotating 72-character lines until the client goes away
  daytime,  // RFC 867: the local date and time, then close
  stdio,    // one connection at a time joined to the process's stdin and stdout (nc -l)
  exec,     // run exec_argv per connection (see create_stream)
  user,     // call server_options::serve per connection (the seed's own `function`)
};

// The seed's `function` as C++ (handler::user): serves one connection. It is called on a
// thread of its own, one per connection, with a blocking stream over the accepted socket
// (the same tcp_stream that open_tcp_stream returns, its endpoints filled in) and the
// server, on which it may call server_terminate. The connection ends when it returns; an
// exception it throws is reported to `diagnostics` and ends only that connection. When the
// server cuts the connection (the grace period is over) the stream is shut down, so a
// blocked read or write fails: the function must then return. It must not join or
// destroy the server.
using user_function = std::function<void(server& s, tcp_stream& stream)>;

// The seed's `ipv6` keyword.
enum class ipv6_mode {
  any,   // try resolver candidates in order, keep the first that binds; no address means IPv4
  both,  // IPv6 socket that also accepts IPv4 (IPV6_V6ONLY=0)
  on,    // IPv6 only (IPV6_V6ONLY=1); the seed's t
  off,   // IPv4 only; the seed's nil
};

struct server_options {
  // The seed's `function`. With handler::exec, exec_argv holds the program and its
  // arguments; exec_argv[0] is run as given (no PATH search here: pass a path).
  handler function = handler::echo;
  std::vector<std::string> exec_argv;
  // With handler::user, what serves each connection (required then, and only then).
  user_function serve;

  // Exec only: a file the children's stderr is appended to (created if need be). Empty:
  // the server's own stderr.
  std::string exec_stderr;

  // The seed's `create-stream`, exec only: the child's stdin/stdout are pipes the server
  // relays to the socket (EOF carried as a half-close each way) instead of the socket.
  bool create_stream = false;

  // The seed's `service` / `local-port`: a port number, a name from the services
  // database, or "0"/empty for a port the system picks.
  std::string service;

  // The seed's `local-address` / `address`: an IPv4 or IPv6 literal, a host name, or an
  // integer (an IPv4 address as a 32-bit number). Empty: every address of the machine.
  std::string local_address;

  // A listening TCP socket (IPv4 or IPv6) to serve on instead of resolving and binding one:
  // a socket a service manager passed (systemd's LISTEN_FDS) or one the caller opened. The
  // server owns it from start_up_server on and closes it, also when the start fails. It
  // is never reopened: a listener failure ends the server. service, local_address, ipv6,
  // reuseport and backlog are then not used (the socket has them already), nor are the
  // socket options that must precede bind (bind_device, freebind, transparent, listener);
  // the other listener options are set on it. Not a listening TCP socket: a usage
  // condition. -1: bind as usual.
  int listener_fd = -1;

  int backlog = 5;                     // listen(2) backlog, positive (the seed: nil or a positive integer)
  ipv6_mode ipv6 = ipv6_mode::any;
  bool nodelay = true;                 // TCP_NODELAY on accepted sockets
  bool keepalive = false;              // SO_KEEPALIVE on accepted sockets
  bool reuseport = false;              // SO_REUSEPORT on the listener (SO_REUSEADDR is always set)
  socket_options sockets;              // every other socket option (see socket_options)
  // TLS (see tls_options); unset: plain TCP.
  std::optional<tls_options> tls;
  // Adds the kernel's TCP_INFO, taken just before close, to each close record. Off: nothing
  // is collected.
  bool tcp_info = false;

  // Name for messages and the server threads. Empty: the seed's (format nil "~S server"
  // service): "7000 server", "\"http\" server", "NIL server".
  std::string process_name;

  // Told of every listening (also after a listener reopen), error and termination.
  // Threads: always called on the server's first thread (the one that accepts), so never
  // twice at once, whatever `threads` is; no lock of the server's is held, so it may call
  // any member of the server (except join, which cannot wait on its own thread). It holds
  // up accepting while it runs: it must not block for long. An exception it throws is
  // caught and reported to `diagnostics` as a warning. Default: none.
  std::function<void(const announce_event&)> announce;

  // Told once, when a stop begins after the server was listening (terminate, --once
  // served, a runtime failure): no new connection is accepted from then on, and open ones
  // finish or are cut. Same threads and rules as announce. A service manager's readiness
  // protocol uses it (systemd's STOPPING=1). Default: none.
  std::function<void()> stopping;

  // The seed's `wait`: start_up_server returns only once listening, or with the
  // startup condition. Without it, it returns at once and failures reach announce.
  bool wait = false;

  // The seed's `error`: true also tells a fatal server error to `diagnostics` as
  // kind::fatal (the seed enters the debugger); false only announces it. A failure that
  // start_up_server returns to its caller (with wait) is never told twice. Unset:
  // (not wait), as in the seed.
  std::optional<bool> error;

  bool once = false;  // serve one connection, then terminate (server-terminate from the handler)

  // On a graceful stop, how long open connections may go on before they are closed.
  // Exec children (their whole process groups) get SIGTERM when the stop begins and
  // SIGKILL when the grace ends.
  std::chrono::milliseconds grace{3000};

  // Threads serving connections (each with its own event loop). 0 means one per core.
  unsigned threads = 1;

  // ---- Guarding: limits, access control, timeouts, privileges ----

  // Connections served at once (for exec, children running). At the limit the server stops
  // accepting until one closes: clients wait in the listen backlog, none is dropped.
  // Unset: 100 for exec, stdio and user functions (a process or a thread each), no limit
  // but the descriptors for the other handlers; 0: no limit.
  std::optional<unsigned> max_connections;
  // Connections at once from one peer address; a new one over it is closed at once and
  // logged as refused ("max-per-ip"). 0: no limit.
  unsigned max_per_ip = 0;
  // Address rules, "ADDR" or "ADDR/PREFIX", IPv4 or IPv6; an IPv4-mapped peer matches IPv4
  // rules. A peer that matches a deny rule is refused ("denied"); with any allow rule, so is
  // a peer that matches none. Deny wins. A refused peer never reaches a handler or a child.
  std::vector<std::string> allow;
  std::vector<std::string> deny;
  // The PROXY protocol, for serving behind a load balancer: a header (HAProxy's v1 text
  // line or v2 binary block, whichever comes) is read at the start of every connection,
  // before anything else sees it, and the client it names is taken as the peer. The
  // connection log, allow and deny, max_per_ip, an exec child's TCPREMOTEIP/TCPREMOTEPORT
  // (and TCPLOCALIP/TCPLOCALPORT: the address the client reached) and a user function's
  // endpoints show that client; the proxy's own address is in the child's
  // PROXYREMOTEIP/PROXYREMOTEPORT and the log record's proxy fields. A v2 LOCAL header (a
  // balancer's health check) or a v1 UNKNOWN one is served as the proxy itself. Exactly
  // the header's bytes are taken from the socket (a raw-socket exec child reads the
  // client's first byte first); they are not counted in bytes_in. Refused before any
  // handler, and logged with the reason: a peer outside proxy_from ("refused: not a
  // trusted proxy"), an invalid header ("refused: PROXY v1: bad address"; a v2 header
  // over 4096 bytes or a v1 line over 107 is invalid), a client that closes before its
  // header is whole ("refused: PROXY header: the client closed first"), a header not whole
  // within proxy_timeout ("refused: PROXY header: timed out"). Needs proxy_from (a usage
  // condition without it).
  bool proxy_protocol = false;
  // The trusted proxies: "ADDR" or "ADDR/PREFIX", IPv4 or IPv6, as for allow and deny (an
  // IPv4-mapped peer matches IPv4 rules). Only these may connect when proxy_protocol is
  // on; given without it, a usage condition.
  std::vector<std::string> proxy_from;
  // How long a trusted proxy has to deliver its whole header, from accept; positive. The
  // protocol asks receivers to wait at least 3 seconds (a lost packet's retransmission).
  std::chrono::milliseconds proxy_timeout{5000};
  // A connection with no traffic either way for this long is closed ("idle"). 0: never.
  // The server sees the traffic of the built-in handlers and --create-stream relays only:
  // raw-socket exec, stdio and user functions are not timed.
  std::chrono::milliseconds idle_timeout{0};
  // When started as root: the user, or "user:group", to run as once the listener is
  // bound and before any connection is served (group: the user's, or the one given;
  // supplementary groups: the user's). A drop that fails is a startup failure. Empty: stay.
  std::string user;
  // Told of each connection's bytes as they pass, both ways (what the handler reads and
  // writes; raw-socket exec, stdio and user functions are not traced). Threads: the
  // connection's thread, several at once with threads > 1; no lock of the server's is
  // held; must not block for long. An exception it throws is reported to diagnostics.
  // Default: none.
  std::function<void(const traffic_record&)> trace;

  // Told when each connection opens and closes. Threads: called on the thread that serves
  // the connection, so with threads > 1 calls for different connections run at once; no
  // lock of the server's is held. It holds up every connection on that thread while it
  // runs: it must not block for long. An exception it throws is caught and reported to
  // `diagnostics` as a warning. Default: none.
  std::function<void(const connection_record&)> connection_log;

  // Told of warnings and (with `error`) the fatal error. Threads: any of the server's
  // threads, several at once when threads > 1; no lock of the server's is held; must not
  // block for long. An exception it throws is dropped. Default: none (nothing is said).
  std::function<void(const diagnostic&)> diagnostics;

  // After this many consecutive unexplained accept failures the listener is closed and
  // opened again on the same port.
  unsigned reopen_after_failures = 8;
};

}  // namespace startup_server
