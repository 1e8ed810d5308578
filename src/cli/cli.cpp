// Maps the command line onto server_options and validates every value before anything binds.
#include "cli/cli.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string_view>
#include <fmt/core.h>

#include "cli/announce_format.hpp"
#include "cli/log_format.hpp"
#include "core/cidr.hpp"
#include "core/digits.hpp"
#include "core/privileges.hpp"
#include "core/sockopts.hpp"
#include "tls/tls_context.hpp"
#include "core/resolve.hpp"
#include "cli/help.hpp"
#include "cli/usage.hpp"
#include "handlers/table.hpp"

namespace startup_server::cli {
namespace {

// Raw values as typed; validated after CLI11 has split them.
struct raw_args {
  std::map<handler, bool> builtin;  // the handler table's flags, as given
  std::string sh_exec;
  std::string service, local_port;
  std::string local_address, address;
  std::string backlog;
  std::string ipv6 = "any";
  bool nodelay = false, no_nodelay = false, keepalive = false, no_keepalive = false, reuseport = false;
  std::string process_name;
  bool announce_listed = false;  // --announce is taken off by the scan; listed for --help only
  bool trace_listed = false;     // so is -x/--trace
  std::string max_connections, max_per_ip, idle_timeout, user;
  std::map<std::string, std::string> int_sockopts;  // --rcvbuf 65536 …, by flag
  std::string congestion, bind_device;
  bool freebind = false, transparent = false, quickack = false, show_sockopts = false, tcp_info = false;
  std::vector<std::string> sockopt, sockopt_listen;
  std::vector<std::string> allow, deny;
  bool tls = false;
  std::string tls_cert, tls_key, tls_client_ca, tls_handshake_timeout;
  bool proxy_protocol = false;
  std::vector<std::string> proxy_from;
  std::string proxy_timeout;
  std::string announce_format;
  std::string child_stderr;
  bool wait = false, create_stream = false;
  bool error = false, no_error = false;
  bool once = false;
  std::string grace;
  std::string threads;
  bool verbose = false;
  std::string log_file;
  std::string log_format;
  bool help = false, version = false;
};

// The socket options that take a number: flag, help, field, and the range checked before binding.
struct int_socket_option {
  const char* flag;
  const char* type;
  const char* help;
  std::optional<int> socket_options::*field;
  long long least, most;
};

const std::vector<int_socket_option>& int_socket_options() {
  static const std::vector<int_socket_option> rows = {
      {"--rcvbuf", "BYTES", "SO_RCVBUF on the listener (accepted sockets inherit it; Linux doubles it)",
       &socket_options::rcvbuf, 1, 2147483647},
      {"--sndbuf", "BYTES", "SO_SNDBUF on the listener (inherited; doubled)", &socket_options::sndbuf, 1, 2147483647},
      {"--linger", "SECONDS", "SO_LINGER on accepted sockets; 0 resets the connection on close",
       &socket_options::linger, 0, 65535},
      {"--tos", "N", "IP_TOS (IPV6_TCLASS on IPv6) on accepted sockets", &socket_options::tos, 0, 255},
      {"--ttl", "N", "IP_TTL (IPV6_UNICAST_HOPS on IPv6) on accepted sockets", &socket_options::ttl, 1, 255},
      {"--keepidle", "SECONDS", "TCP_KEEPIDLE (implies keepalive)", &socket_options::keepidle, 1, 32767},
      {"--keepintvl", "SECONDS", "TCP_KEEPINTVL (implies keepalive)", &socket_options::keepintvl, 1, 32767},
      {"--keepcnt", "N", "TCP_KEEPCNT (implies keepalive)", &socket_options::keepcnt, 1, 127},
      {"--mss", "BYTES", "TCP_MAXSEG on the listener (inherited)", &socket_options::mss, 88, 32767},
      {"--defer-accept", "SECONDS", "TCP_DEFER_ACCEPT: accept only once data has arrived",
       &socket_options::defer_accept, 0, 2147483647},
      {"--fastopen", "QLEN", "TCP_FASTOPEN on the listener, with this queue length", &socket_options::fastopen, 0,
       2147483647},
      {"--user-timeout", "MS", "TCP_USER_TIMEOUT on accepted sockets", &socket_options::user_timeout, 0, 2147483647},
      {"--priority", "N", "SO_PRIORITY on accepted sockets", &socket_options::priority, 0, 6},
      {"--mark", "N", "SO_MARK on the listener and accepted sockets (needs CAP_NET_ADMIN)", &socket_options::mark, 0,
       2147483647},
      {"--notsent-lowat", "BYTES", "TCP_NOTSENT_LOWAT on accepted sockets", &socket_options::notsent_lowat, 1,
       2147483647},
      {"--window-clamp", "BYTES", "TCP_WINDOW_CLAMP on accepted sockets", &socket_options::window_clamp, 1,
       2147483647},
  };
  return rows;
}

void build_app(CLI::App& app, raw_args& r) {
  app.set_help_flag();  // handled by hand so --help never exits from inside the parser
  const char* g = "General";
  app.add_flag("-h,--help", r.help, "Print this help and exit")->group(g);
  app.add_flag("-V,--version", r.version, "Print the version and exit")->group(g);

  const char* h = "Handler (exactly one; default --echo)";
  for (const auto& row : detail::handler_table())
    if (row.flag) app.add_flag(row.flag, r.builtin[row.id], row.help)->group(h);
  app.add_option("--exec", "Run PROG with ARGs per connection, without a shell; takes the rest of the line")
      ->type_name("PROG [ARG...]")->group(h);
  app.add_option("--sh-exec", r.sh_exec, "Run /bin/sh -c STRING per connection")
      ->type_name("STRING")->group(h);

  const char* b = "Binding";
  app.add_option("-s,--service", r.service,
                 "Port number, service name, or 0 for a free port (default 0); the first word that is "
                 "not a flag is taken as the port too")
      ->type_name("PORT|NAME")->group(b);
  app.add_option("-p,--local-port", r.local_port, "Synonym of --service")->type_name("PORT|NAME")->group(b);
  app.add_option("-a,--local-address", r.local_address,
                 "IPv4 or IPv6 literal (brackets allowed), host name or 32-bit integer (default: every "
                 "address)")
      ->type_name("ADDR")->group(b);
  app.add_option("--address", r.address, "Synonym of --local-address")->type_name("ADDR")->group(b);
  app.add_option("--ipv6", r.ipv6, "any (default), both, on or off")
      ->type_name("any|both|on|off")->group(b);
  app.add_option("-b,--backlog", r.backlog, "listen(2) backlog, or max for SOMAXCONN (default 5)")
      ->type_name("N|max")->group(b);
  app.add_flag("--reuseport", r.reuseport, "Set SO_REUSEPORT so servers can share the port")
      ->group(b);

  const char* k = "Connections";
  app.add_flag("--nodelay", r.nodelay, "Set TCP_NODELAY on accepted sockets (the default)")->group(k);
  app.add_flag("--no-nodelay", r.no_nodelay, "Leave Nagle's algorithm on")->group(k);
  app.add_flag("--keepalive", r.keepalive, "Set SO_KEEPALIVE on accepted sockets")->group(k);
  app.add_flag("--no-keepalive", r.no_keepalive, "Leave SO_KEEPALIVE off (the default)")->group(k);
  app.add_flag("--create-stream", r.create_stream,
               "With --exec or --sh-exec: relay the child's stdin and stdout through pipes")
      ->group(k);
  app.add_option("--child-stderr", r.child_stderr,
                 "Append exec children's stderr to FILE (default: the server's stderr, /dev/null with --wait)")
      ->type_name("FILE")->group(k);
  app.add_option("--threads", r.threads, "Threads serving connections (plain echo and discard: each accepts for itself); 0 = one per core (default 1)")
      ->type_name("N")->group(k);

  const char* gd = "Guarding";
  app.add_option("--max-connections", r.max_connections,
                 "Connections at once; at the limit the next clients wait in the backlog (default 100 for "
                 "--exec and --sh-exec, else none; 0: none)")
      ->type_name("N")->group(gd);
  app.add_option("--max-per-ip", r.max_per_ip, "Connections at once from one address; more are refused (default: none)")
      ->type_name("N")->group(gd);
  app.add_option("--allow", r.allow, "Serve only peers in ADDR[/PREFIX] (repeatable; IPv4 or IPv6)")
      ->type_name("CIDR")->group(gd);
  app.add_option("--deny", r.deny, "Refuse peers in ADDR[/PREFIX] (repeatable; deny wins over allow)")
      ->type_name("CIDR")->group(gd);
  app.add_option("--idle-timeout", r.idle_timeout, "Close a connection with no traffic either way for SECONDS")
      ->type_name("SECONDS")->group(gd);
  app.add_option("--user", r.user, "As root: run as USER (and GROUP) once the port is bound")
      ->type_name("USER[:GROUP]")->group(gd);

  const char* t = "TLS (see TLS in startup-server(1))";
  app.add_flag("--tls", r.tls, "Serve over TLS; alone, with a self-signed certificate made for this run")->group(t);
  app.add_option("--tls-cert", r.tls_cert, "Certificate chain, PEM (implies --tls; needs --tls-key)")
      ->type_name("FILE")->group(t);
  app.add_option("--tls-key", r.tls_key, "Private key of --tls-cert, PEM")->type_name("FILE")->group(t);
  app.add_option("--tls-client-ca", r.tls_client_ca,
                 "Require client certificates signed by a CA in FILE, PEM (implies --tls)")
      ->type_name("FILE")->group(t);
  app.add_option("--tls-handshake-timeout", r.tls_handshake_timeout,
                 "Refuse a client whose handshake takes longer (default 10)")
      ->type_name("SECONDS")->group(t);
  const char* pp = "Behind a load balancer (see PROXY PROTOCOL in startup-server(1))";
  app.add_flag("--proxy-protocol", r.proxy_protocol,
               "Read a PROXY protocol header (v1 or v2) before anything else; the client it names is the peer")
      ->group(pp);
  app.add_option("--proxy-from", r.proxy_from,
                 "Trust peers in ADDR[/PREFIX] to send the header (repeatable; required); refuse all others")
      ->type_name("CIDR")->group(pp);
  app.add_option("--proxy-timeout", r.proxy_timeout, "Refuse a connection whose header is not whole in SECONDS (default 5)")
      ->type_name("SECONDS")->group(pp);

  const char* so = "Socket options (see SOCKET OPTIONS in startup-server(1))";
  for (const auto& row : int_socket_options())
    app.add_option(row.flag, r.int_sockopts[row.flag], row.help)->type_name(row.type)->group(so);
  app.add_option("--congestion", r.congestion, "TCP_CONGESTION: the congestion control algorithm (cubic, bbr, ...)")
      ->type_name("NAME")->group(so);
  app.add_option("--bind-device", r.bind_device, "SO_BINDTODEVICE: accept only through this interface")
      ->type_name("IFACE")->group(so);
  app.add_flag("--freebind", r.freebind, "IP_FREEBIND: bind an address that is not (yet) on this machine")->group(so);
  app.add_flag("--transparent", r.transparent, "IP_TRANSPARENT: transparent proxying (needs CAP_NET_ADMIN)")
      ->group(so);
  app.add_flag("--quickack", r.quickack, "TCP_QUICKACK on accepted sockets")->group(so);
  app.add_option("--sockopt", r.sockopt, "Any option on accepted sockets; LEVEL is socket, ip, ipv6, tcp or a number")
      ->type_name("LEVEL:NAME=VALUE")->group(so);
  app.add_option("--sockopt-listen", r.sockopt_listen, "Any option on the listener, before bind")
      ->type_name("LEVEL:NAME=VALUE")->group(so);
  app.add_flag("--show-sockopts", r.show_sockopts,
               "Print each option given, requested and as the kernel set it, for the listener and the first "
               "connection")
      ->group(so);
  app.add_flag("--tcp-info", r.tcp_info, "Add the kernel's TCP_INFO to each connection's close line in the log")
      ->group(so);

  const char* l = "Lifecycle";
  app.add_flag("--wait", r.wait, "Return once listening, leaving the server in the background; print its PID")
      ->group(l);
  app.add_flag("--once", r.once, "Serve one connection, then stop")->group(l);
  app.add_option("--grace", r.grace, "On SIGINT, SIGTERM or SIGHUP, seconds open connections may go on (default 3)")
      ->type_name("SECONDS")->group(l);
  app.add_flag("--error", r.error, "Report fatal errors on stderr (the default without --wait)")->group(l);
  app.add_flag("--no-error", r.no_error, "Only announce fatal errors; exit quietly, non-zero")->group(l);
  app.add_option("--process-name", r.process_name,
                 "Name in messages and of the process (default: the seed's, \"7000 server\" for port 7000, "
                 "\"NIL server\" for port 0)")
      ->type_name("NAME")->group(l);

  const char* o = "Announce and log";
  // Its value comes only after '=' (--announce=FILE): the scan takes it off before parsing.
  app.add_flag("--announce", r.announce_listed,
               "Announce listening, error and terminated to DEST: stdout (the default, also -), stderr or a file")
      ->group(o);
  app.add_option("--announce-format", r.announce_format,
                 "text (default), json, or a template with {address} {port} {family} {pid} {name} {tls_sha256}")
      ->type_name("FMT")->group(o);
  app.add_flag("-v,--verbose", r.verbose, "Log each connection opened and closed to stderr")->group(o);
  app.add_option("--log", r.log_file, "Write the connection log to FILE instead of stderr")
      ->type_name("FILE")->group(o);
  app.add_option("--log-format", r.log_format, "Connection log format: text (default) or json")
      ->type_name("text|json")->group(o);
  // Its format comes only after '=' (--trace=hex): the scan takes it off before parsing.
  app.add_flag("-x,--trace", r.trace_listed,
               "Show each connection's traffic, both ways, on stderr or the --log file: text (the default) "
               "or hex")
      ->group(o);
}

// Splits off "--exec PROG ARG..." (everything after it belongs to the child). A word that
// is the value of the flag before it ("--process-name --exec") is not --exec.
std::vector<std::string> split_exec(const CLI::App& app, const std::vector<std::string>& args,
                                    std::vector<std::string>& exec_argv, bool& has_exec) {
  std::vector<std::string> mine;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& t = args[i];
    if (t == "--exec" || t.rfind("--exec=", 0) == 0) {
      has_exec = true;
      if (t != "--exec") exec_argv.push_back(t.substr(7));
      exec_argv.insert(exec_argv.end(), args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      return mine;
    }
    mine.push_back(t);
    if (t == "--") {
      mine.insert(mine.end(), args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      return mine;
    }
    const bool separate_value = (t.rfind("--", 0) == 0 && t.find('=') == std::string::npos) || t.size() == 2;
    const CLI::Option* o = t.size() > 1 && t[0] == '-' ? app.get_option_no_throw(t) : nullptr;
    if (o && o->get_items_expected_max() > 0 && separate_value && i + 1 < args.size()) mine.push_back(args[++i]);
  }
  return mine;
}

[[noreturn]] void refuse(const std::string& flag, const std::string& problem) {
  throw usage_error(fmt::format("{}: {}", flag, problem));
}

handler pick_handler(const raw_args& r, const CLI::App& app, bool has_exec) {
  std::vector<std::pair<const char*, handler>> chosen;
  for (const auto& row : detail::handler_table()) {
    auto given = r.builtin.find(row.id);
    if (row.flag && given != r.builtin.end() && given->second) chosen.emplace_back(row.flag, row.id);
  }
  if (app.count("--sh-exec")) chosen.emplace_back("--sh-exec", handler::exec);
  if (has_exec) chosen.emplace_back("--exec", handler::exec);
  if (chosen.size() > 1)
    refuse(chosen[1].first, fmt::format("conflicts with {}: choose one handler", chosen[0].first));
  return chosen.empty() ? handler::echo : chosen[0].second;
}

// Both halves of a --x/--no-x pair given: refuse rather than guess which was meant.
bool pick(bool yes, bool no, bool fallback, const char* yes_flag, const char* no_flag) {
  if (yes && no) refuse(no_flag, fmt::format("conflicts with {}", yes_flag));
  return yes ? true : no ? false : fallback;
}

// Printable, no blanks: what a name can be, so a stray newline or tab is caught here.
bool printable_word(const std::string& v) {
  for (unsigned char ch : v)
    if (ch <= 0x20 || ch == 0x7f) return false;
  return true;
}

void check_service(const std::string& flag, const std::string& v) {
  if (v.empty()) refuse(flag, "needs a port number or service name");
  if (!printable_word(v)) refuse(flag, fmt::format("'{}' is not a port number or service name", v));
  if (detail::all_digits(v)) {
    auto n = detail::parse_number<unsigned long>(v);
    if (!n || *n > 65535) refuse(flag, fmt::format("'{}' is not a port number (0-65535)", v));
  } else if (v[0] == '-') {
    refuse(flag, fmt::format("'{}' is not a port number (0-65535)", v));
  }
}

void map_exec(config& c, const raw_args& r, const CLI::App& app, std::vector<std::string> exec_argv,
              bool has_exec) {
  auto& o = c.options;
  const bool sh = app.count("--sh-exec") > 0;
  if (sh && r.sh_exec.find_first_not_of(" \t\n") == std::string::npos) refuse("--sh-exec", "needs a command");
  if (sh) exec_argv = {"/bin/sh", "-c", r.sh_exec};
  if (has_exec && exec_argv.empty()) refuse("--exec", "needs a program to run");
  if (o.function == handler::exec) {
    std::string reason;
    auto path = find_program(exec_argv[0], reason);
    if (!path) refuse(sh ? "--sh-exec" : "--exec", fmt::format("'{}': {}", exec_argv[0], reason));
    exec_argv[0] = *path;
    o.exec_argv = std::move(exec_argv);
  } else if (r.create_stream) {
    refuse("--create-stream", "needs --exec or --sh-exec");
  }
  o.create_stream = r.create_stream;
}

void map_binding(config& c, const raw_args& r, const CLI::App& app, const scanned_words& words) {
  auto& o = c.options;
  if (app.count("--service") && app.count("--local-port"))
    refuse("--local-port", "is a synonym of --service: give one of them");
  if (app.count("--local-address") && app.count("--address"))
    refuse("--address", "is a synonym of --local-address: give one of them");
  const bool by_port = app.count("--local-port") > 0;
  o.service = by_port ? r.local_port : r.service;
  if (app.count("--service") || by_port) check_service(by_port ? "--local-port" : "--service", o.service);
  if (words.port) {
    // `startup-server 7000`, as nc -l 7000 users type.
    if (app.count("--service") || by_port)
      throw usage_error(fmt::format("{}: the port is given twice, here and by {}", *words.port,
                                    by_port ? "--local-port" : "--service"));
    check_service(*words.port, *words.port);
    o.service = *words.port;
  }
  const bool by_address = app.count("--address") > 0;
  o.local_address = by_address ? r.address : r.local_address;
  const char* aflag = by_address ? "--address" : "--local-address";

  if (r.ipv6 == "any") o.ipv6 = ipv6_mode::any;
  else if (r.ipv6 == "both") o.ipv6 = ipv6_mode::both;
  else if (r.ipv6 == "on") o.ipv6 = ipv6_mode::on;
  else if (r.ipv6 == "off") o.ipv6 = ipv6_mode::off;
  else refuse("--ipv6", fmt::format("'{}' is not one of any, both, on, off", r.ipv6));

  if (by_address || app.count("--local-address")) {
    // As people write them in URLs: [::1] is ::1.
    if (o.local_address.size() > 2 && o.local_address.front() == '[' && o.local_address.back() == ']')
      o.local_address = o.local_address.substr(1, o.local_address.size() - 2);
    if (o.local_address.empty()) refuse(aflag, "needs an address");
    std::string problem;
    if (!detail::check_address(o.local_address, o.ipv6, problem)) refuse(aflag, problem);
  }

  if (app.count("--backlog")) {
    if (r.backlog == "max") {
      o.backlog = SOMAXCONN;
    } else {
      auto n = detail::parse_number<int>(r.backlog);
      if (!n || *n < 1) refuse("--backlog", fmt::format("'{}' is not a positive number or max", r.backlog));
      o.backlog = *n;
    }
  }
  o.nodelay = pick(r.nodelay, r.no_nodelay, true, "--nodelay", "--no-nodelay");
  o.keepalive = pick(r.keepalive, r.no_keepalive, false, "--keepalive", "--no-keepalive");
  o.reuseport = r.reuseport;
}

// A duration as --idle-timeout and --proxy-timeout take it: positive seconds, fractions
// allowed, at most a year; at least a millisecond.
std::chrono::milliseconds positive_seconds(const char* flag, const std::string& text) {
  char* end = nullptr;
  const double s = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(s) || s <= 0 || s > 86400 * 365)
    refuse(flag, fmt::format("'{}' is not a positive number of seconds", text));
  return std::chrono::milliseconds(std::max<long long>(1, std::llround(s * 1000)));
}

void map_proxy(config& c, const raw_args& r, const CLI::App& app) {
  auto& o = c.options;
  if (r.proxy_protocol && r.proxy_from.empty())
    refuse("--proxy-protocol", "needs --proxy-from CIDR: the proxies trusted to send the header");
  if (!r.proxy_protocol && !r.proxy_from.empty()) refuse("--proxy-from", "needs --proxy-protocol");
  if (!r.proxy_protocol && app.count("--proxy-timeout")) refuse("--proxy-timeout", "needs --proxy-protocol");
  for (const auto& text : r.proxy_from) {
    std::string problem;
    if (!detail::parse_cidr(text, problem)) refuse("--proxy-from", problem);
  }
  o.proxy_protocol = r.proxy_protocol;
  o.proxy_from = r.proxy_from;
  if (app.count("--proxy-timeout")) {
    o.proxy_timeout = positive_seconds("--proxy-timeout", r.proxy_timeout);
    if (o.proxy_timeout < std::chrono::seconds(3))
      c.warnings.push_back("--proxy-timeout below 3 seconds: the PROXY protocol asks for at least 3, so that a "
                           "lost packet's retransmission still makes it");
  }
}

void map_guarding(config& c, const raw_args& r, const CLI::App& app) {
  auto& o = c.options;
  if (app.count("--max-connections")) {
    auto n = detail::parse_number<unsigned>(r.max_connections);
    if (!n) refuse("--max-connections", fmt::format("'{}' is not a number (0 for no limit)", r.max_connections));
    o.max_connections = *n;
  }
  if (app.count("--max-per-ip")) {
    auto n = detail::parse_number<unsigned>(r.max_per_ip);
    if (!n || *n == 0) refuse("--max-per-ip", fmt::format("'{}' is not a positive number", r.max_per_ip));
    o.max_per_ip = *n;
  }
  for (const auto* rules : {&r.allow, &r.deny}) {
    for (const auto& text : *rules) {
      std::string problem;
      if (!detail::parse_cidr(text, problem)) refuse(rules == &r.allow ? "--allow" : "--deny", problem);
    }
  }
  o.allow = r.allow;
  o.deny = r.deny;
  if (app.count("--idle-timeout")) o.idle_timeout = positive_seconds("--idle-timeout", r.idle_timeout);
  if (app.count("--user")) {
    std::string problem;
    if (!detail::look_up_user(r.user, problem)) refuse("--user", problem);
    o.user = r.user;
  }
}

// TLS flags; the files are loaded here once, so a bad one is refused naming its flag before
// anything is bound.
void map_tls(config& c, const raw_args& r, const CLI::App& app) {
  const bool any = r.tls || app.count("--tls-cert") || app.count("--tls-key") || app.count("--tls-client-ca") ||
                   app.count("--tls-handshake-timeout");
  if (!any) return;
  auto& o = c.options;
  if (app.count("--tls-cert") && r.tls_cert.empty()) refuse("--tls-cert", "needs a file name");
  if (app.count("--tls-key") && r.tls_key.empty()) refuse("--tls-key", "needs a file name");
  if (app.count("--tls-client-ca") && r.tls_client_ca.empty()) refuse("--tls-client-ca", "needs a file name");
  if (!r.tls_cert.empty() && r.tls_key.empty()) refuse("--tls-cert", "needs --tls-key");
  if (!r.tls_key.empty() && r.tls_cert.empty()) refuse("--tls-key", "needs --tls-cert");
  const char* flag = r.tls ? "--tls" : !r.tls_cert.empty() ? "--tls-cert" : !r.tls_client_ca.empty() ? "--tls-client-ca"
                                                                                                      : "--tls-handshake-timeout";
  if (o.function == handler::exec && !o.create_stream)
    refuse(flag, "needs --create-stream with --exec or --sh-exec: a child holding the socket would see the ciphertext");
  tls_options t;
  t.certificate_file = r.tls_cert;
  t.key_file = r.tls_key;
  t.client_ca_file = r.tls_client_ca;
  if (app.count("--tls-handshake-timeout")) t.handshake_timeout = positive_seconds("--tls-handshake-timeout", r.tls_handshake_timeout);
  if (!t.certificate_file.empty() || !t.client_ca_file.empty()) {
    std::string problem;
    if (!detail::tls_context::make(t, problem)) {
      const char* culprit = problem.find("client CA") != std::string::npos ? "--tls-client-ca"
                            : problem.find("TLS key") != std::string::npos ? "--tls-key"
                                                                           : "--tls-cert";
      refuse(culprit, problem);
    }
  }
  o.tls = std::move(t);
}

void map_socket_options(config& c, const raw_args& r, const CLI::App& app) {
  auto& so = c.options.sockets;
  for (const auto& row : int_socket_options()) {
    if (!app.count(row.flag)) continue;
    const std::string& text = r.int_sockopts.at(row.flag);
    const auto n = detail::parse_number<long long>(text);
    if (!n || *n < row.least || *n > row.most)
      refuse(row.flag, fmt::format("'{}' is not a number from {} to {}", text, row.least, row.most));
    so.*(row.field) = static_cast<int>(*n);
  }
  auto name_like = [](const std::string& v, std::size_t most) {
    if (v.empty() || v.size() > most) return false;
    for (unsigned char ch : v)
      if (!(std::isalnum(ch) || ch == '_' || ch == '-' || ch == '.' || ch == ':' || ch == '@')) return false;
    return true;
  };
  if (app.count("--congestion")) {
    if (!name_like(r.congestion, 15)) refuse("--congestion", fmt::format("'{}' is not an algorithm name", r.congestion));
    so.congestion = r.congestion;
  }
  if (app.count("--bind-device")) {
    if (!name_like(r.bind_device, 15)) refuse("--bind-device", fmt::format("'{}' is not an interface name", r.bind_device));
    so.bind_device = r.bind_device;
  }
  if ((so.keepidle || so.keepintvl || so.keepcnt) && r.no_keepalive)
    refuse("--no-keepalive", "conflicts with --keepidle, --keepintvl and --keepcnt, which turn keepalive on");
  so.freebind = r.freebind;
  so.transparent = r.transparent;
  so.quickack = r.quickack;
  for (const auto* list : {&r.sockopt, &r.sockopt_listen}) {
    for (const auto& text : *list) {
      raw_socket_option raw;
      std::string problem;
      if (!detail::parse_raw_socket_option(text, raw, problem))
        refuse(list == &r.sockopt ? "--sockopt" : "--sockopt-listen", problem);
      (list == &r.sockopt ? so.accepted : so.listener).push_back(raw);
    }
  }
  c.show_sockopts = r.show_sockopts;
  c.options.tcp_info = r.tcp_info;
}

void map_lifecycle(config& c, const raw_args& r) {
  auto& o = c.options;
  c.background = r.wait;
  o.wait = r.wait;
  o.error = pick(r.error, r.no_error, !r.wait, "--error", "--no-error");
  o.once = r.once;
  if (!r.grace.empty()) {
    char* end = nullptr;
    double g = std::strtod(r.grace.c_str(), &end);
    if (end != r.grace.c_str() + r.grace.size() || !std::isfinite(g) || g < 0 || g > 86400)
      refuse("--grace", fmt::format("'{}' is not a number of seconds (0-86400)", r.grace));
    o.grace = std::chrono::milliseconds(static_cast<long long>(std::llround(g * 1000)));
  }
  if (!r.threads.empty()) {
    auto n = detail::parse_number<unsigned>(r.threads);
    if (!n || *n > 256) refuse("--threads", fmt::format("'{}' is not a number of threads (0-256)", r.threads));
    o.threads = *n;
  }
}

void map_output(config& c, const raw_args& r, const CLI::App& app, const scanned_words& words) {
  auto& o = c.options;
  if (app.count("--process-name")) {
    if (r.process_name.empty()) refuse("--process-name", "must not be empty");
    o.process_name = r.process_name;
  }
  if (words.announce) c.announce.destination = *words.announce;
  if (app.count("--announce-format")) {
    if (c.announce.destination.empty()) c.announce.destination = "stdout";
    std::string problem;
    if (!detail::check_announce_format(r.announce_format, problem)) refuse("--announce-format", problem);
    for (unsigned char ch : r.announce_format)
      if (ch < 0x20 || ch == 0x7f) refuse("--announce-format", "a template is one line: it has a control character");
    c.announce.format = r.announce_format;
  }
  if (app.count("--log")) {
    if (r.log_file.empty()) refuse("--log", "needs a file name");
    c.log.destination = r.log_file;
  } else if (r.verbose || words.trace || r.trace_listed || r.tcp_info) {
    c.log.destination = "stderr";  // -x and --tcp-info imply the connection log
  }
  if (app.count("--log-format")) {
    if (r.log_format != "text" && r.log_format != "json")
      refuse("--log-format", fmt::format("'{}' is not one of text, json", r.log_format));
    if (c.log.destination.empty()) refuse("--log-format", "needs --verbose, --log, --trace or --tcp-info");
    c.log.format = r.log_format;
  }
  if (r.wait && o.function == handler::stdio)
    refuse("--stdio", "with --wait stdin and stdout are /dev/null: there is no terminal to join");
  // With --wait the server's stderr is /dev/null: a log there would go nowhere.
  if (r.wait && r.verbose && !app.count("--log"))
    refuse("--verbose", "with --wait the server's stderr is /dev/null; add --log FILE");
  // -x inside a group of short flags (-vx) reaches the parser, not the scan.
  const std::string trace = words.trace ? *words.trace : r.trace_listed ? "text" : "";
  if (!trace.empty()) {
    if (trace != "text" && trace != "hex") refuse("--trace", fmt::format("'{}' is not one of text, hex", trace));
    if (r.wait && !app.count("--log")) refuse("--trace", "with --wait the server's stderr is /dev/null; add --log FILE");
    c.trace = trace;
    if (c.log.destination.empty()) c.log.destination = "stderr";
  }
  if (r.tcp_info) {
    if (r.wait && !app.count("--log")) refuse("--tcp-info", "with --wait the server's stderr is /dev/null; add --log FILE");
    if (c.log.destination.empty()) c.log.destination = "stderr";
  }
  if (app.count("--child-stderr")) {
    if (r.child_stderr.empty()) refuse("--child-stderr", "needs a file name");
    if (o.function != handler::exec) refuse("--child-stderr", "needs --exec or --sh-exec");
    const int fd = ::open(r.child_stderr.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd < 0) refuse("--child-stderr", fmt::format("cannot open '{}': {}", r.child_stderr, std::strerror(errno)));
    ::close(fd);
    o.exec_stderr = r.child_stderr;
  }
}

}  // namespace

std::optional<std::string> find_program(const std::string& prog, std::string& reason) {
  auto runnable = [&](const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      reason = S_ISDIR(st.st_mode) ? "is a directory" : "is not a regular file";
      return false;
    }
    if (::access(path.c_str(), X_OK) == 0) return true;
    reason = std::system_category().message(errno);
    return false;
  };
  if (prog.empty()) {
    reason = "empty program name";
    return std::nullopt;
  }
  if (prog.find('/') != std::string::npos) {
    if (runnable(prog)) return prog;
    return std::nullopt;
  }
  const char* env = std::getenv("PATH");
  std::string path = env ? env : "/usr/local/bin:/usr/bin:/bin";
  reason = "command not found";
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + prog;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    start = end + 1;
  }
  return std::nullopt;
}

config parse_command_line(const std::vector<std::string>& args) {
  raw_args r;
  CLI::App app{"Launch an ad-hoc TCP server", "startup-server"};
  build_app(app, r);
  std::vector<std::string> exec_argv;
  bool has_exec = false;
  const std::vector<std::string> mine = split_exec(app, args, exec_argv, has_exec);
  const scanned_words words = scan_words(app, mine);
  std::vector<std::string> reversed(words.options.rbegin(), words.options.rend());  // CLI11 parses a reversed vector
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    std::string msg = e.what();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    throw usage_error(msg + "; see startup-server --help");
  }
  config c;
  c.help = r.help;
  c.version = r.version;
  if (c.help || c.version) return c;

  c.options.function = pick_handler(r, app, has_exec);
  if (has_exec) {
    const auto ours = own_flags_among(app, exec_argv);
    if (!ours.empty())
      c.warnings.push_back(fmt::format("{} after --exec {} goes to the program; startup-server's own flags go before --exec",
                                       ours.front(), exec_argv.empty() ? "" : exec_argv.front()));
  }
  map_exec(c, r, app, std::move(exec_argv), has_exec);
  map_binding(c, r, app, words);
  map_lifecycle(c, r);
  map_guarding(c, r, app);
  map_proxy(c, r, app);
  map_socket_options(c, r, app);
  map_tls(c, r, app);
  map_output(c, r, app, words);
  // The server never sees the bytes of a raw-socket child or of --stdio: say so rather
  // than take the flag and do nothing.
  const bool unseen = (c.options.function == handler::exec && !c.options.create_stream) ||
                      c.options.function == handler::stdio;
  const char* whose = c.options.function == handler::stdio ? "--stdio" : "--exec without --create-stream";
  if (unseen && app.count("--idle-timeout"))
    c.warnings.push_back(fmt::format("--idle-timeout does not apply to {}: the server does not see that traffic", whose));
  if (unseen && !c.trace.empty())
    c.warnings.push_back(fmt::format("--trace does not apply to {}: the server does not see that traffic", whose));
  return c;
}

std::string escape_control_characters(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char ch : text) {
    switch (ch) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (ch < 0x20 || ch == 0x7f) out += fmt::format("\\x{:02x}", ch);
        else out.push_back(static_cast<char>(ch));
    }
  }
  return out;
}

std::string help_text() {
  raw_args r;
  CLI::App app{"", "startup-server"};
  build_app(app, r);
  return format_help(app);
}

// "1a2b3c4", "1a2b3c4-dirty", or empty for a build outside a git checkout. Defined in a source
// generated at build time (cmake/git_revision.cmake), so the commit is never stale.
const char* git_revision() noexcept;

std::string version_text() {
  const std::string_view revision = git_revision();
  if (revision.empty()) return fmt::format("startup-server {}\n", STARTUP_SERVER_VERSION);
  return fmt::format("startup-server {} (git {})\n", STARTUP_SERVER_VERSION, revision);
}

}  // namespace startup_server::cli
