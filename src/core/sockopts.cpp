// The socket-option table, and setting, reading back and naming options.
#include "core/sockopts.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <fmt/core.h>
#include <functional>
#include <optional>

#include "core/digits.hpp"

namespace startup_server::detail {
namespace {

// What an option is asked to be: a number or a name.
struct wanted {
  bool text = false;
  int number = 0;
  std::string name;
};

// One row: the option on an IPv4 and on an IPv6 socket, where it goes, and its value in
// socket_options (nullopt: not asked for).
struct option_row {
  const char* name4;
  int level4, opt4;
  const char* name6;
  int level6, opt6;
  sockopt_target target;
  std::function<std::optional<wanted>(const socket_options&)> get;
};

std::optional<wanted> number(const std::optional<int>& v) {
  if (!v) return std::nullopt;
  return wanted{false, *v, {}};
}
std::optional<wanted> flag(bool on) {
  if (!on) return std::nullopt;
  return wanted{false, 1, {}};
}
std::optional<wanted> text(const std::optional<std::string>& v) {
  if (!v) return std::nullopt;
  return wanted{true, 0, *v};
}

using t = sockopt_target;
#define SAME(level, opt) #opt, level, opt, #opt, level, opt

const std::vector<option_row>& table() {
  static const std::vector<option_row> rows = {
      {SAME(SOL_SOCKET, SO_BINDTODEVICE), t::listener_before_bind, [](auto& o) { return text(o.bind_device); }},
      {SAME(SOL_IP, IP_FREEBIND), t::listener_before_bind, [](auto& o) { return flag(o.freebind); }},
      {"IP_TRANSPARENT", SOL_IP, IP_TRANSPARENT, "IPV6_TRANSPARENT", SOL_IPV6, IPV6_TRANSPARENT,
       t::listener_before_bind, [](auto& o) { return flag(o.transparent); }},
      {SAME(SOL_SOCKET, SO_RCVBUF), t::listener_before_listen, [](auto& o) { return number(o.rcvbuf); }},
      {SAME(SOL_SOCKET, SO_SNDBUF), t::listener_before_listen, [](auto& o) { return number(o.sndbuf); }},
      {SAME(IPPROTO_TCP, TCP_MAXSEG), t::listener_before_listen, [](auto& o) { return number(o.mss); }},
      {SAME(IPPROTO_TCP, TCP_DEFER_ACCEPT), t::listener_before_listen, [](auto& o) { return number(o.defer_accept); }},
      {SAME(IPPROTO_TCP, TCP_FASTOPEN), t::listener_before_listen, [](auto& o) { return number(o.fastopen); }},
      {SAME(SOL_SOCKET, SO_MARK), t::listener_before_listen, [](auto& o) { return number(o.mark); }},
      {SAME(SOL_SOCKET, SO_LINGER), t::accepted, [](auto& o) { return number(o.linger); }},
      {"IP_TOS", SOL_IP, IP_TOS, "IPV6_TCLASS", SOL_IPV6, IPV6_TCLASS, t::accepted, [](auto& o) { return number(o.tos); }},
      {"IP_TTL", SOL_IP, IP_TTL, "IPV6_UNICAST_HOPS", SOL_IPV6, IPV6_UNICAST_HOPS, t::accepted,
       [](auto& o) { return number(o.ttl); }},
      {SAME(SOL_SOCKET, SO_KEEPALIVE), t::accepted,
       [](auto& o) { return flag(o.keepidle.has_value() || o.keepintvl.has_value() || o.keepcnt.has_value()); }},
      {SAME(IPPROTO_TCP, TCP_KEEPIDLE), t::accepted, [](auto& o) { return number(o.keepidle); }},
      {SAME(IPPROTO_TCP, TCP_KEEPINTVL), t::accepted, [](auto& o) { return number(o.keepintvl); }},
      {SAME(IPPROTO_TCP, TCP_KEEPCNT), t::accepted, [](auto& o) { return number(o.keepcnt); }},
      {SAME(IPPROTO_TCP, TCP_USER_TIMEOUT), t::accepted, [](auto& o) { return number(o.user_timeout); }},
      {SAME(IPPROTO_TCP, TCP_CONGESTION), t::accepted, [](auto& o) { return text(o.congestion); }},
      {SAME(SOL_SOCKET, SO_PRIORITY), t::accepted, [](auto& o) { return number(o.priority); }},
      {SAME(IPPROTO_TCP, TCP_QUICKACK), t::accepted, [](auto& o) { return flag(o.quickack); }},
      {SAME(IPPROTO_TCP, TCP_NOTSENT_LOWAT), t::accepted, [](auto& o) { return number(o.notsent_lowat); }},
      {SAME(IPPROTO_TCP, TCP_WINDOW_CLAMP), t::accepted, [](auto& o) { return number(o.window_clamp); }},
  };
  return rows;
}

#undef SAME

// Reads an option back as text: the number, the name, or "?" if the kernel will not say.
std::string read_back(int fd, int level, int opt, bool as_text) {
  if (level == SOL_SOCKET && opt == SO_LINGER) {
    linger l{};
    socklen_t len = sizeof l;
    if (::getsockopt(fd, level, opt, &l, &len) != 0) return "?";
    return l.l_onoff ? std::to_string(l.l_linger) : "off";
  }
  if (as_text) {
    char buf[64] = {};
    socklen_t len = sizeof buf - 1;
    if (::getsockopt(fd, level, opt, buf, &len) != 0) return "?";
    return std::string(buf, ::strnlen(buf, len));
  }
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(fd, level, opt, &v, &len) != 0) return "?";
  return std::to_string(v);
}

bool set_one(int fd, int level, int opt, const wanted& w) {
  if (level == SOL_SOCKET && opt == SO_LINGER) {
    const linger l{1, w.number};
    return ::setsockopt(fd, level, opt, &l, sizeof l) == 0;
  }
  if (w.text) return ::setsockopt(fd, level, opt, w.name.data(), static_cast<socklen_t>(w.name.size())) == 0;
  return ::setsockopt(fd, level, opt, &w.number, sizeof w.number) == 0;
}

struct named {
  const char* name;
  int value;
};

#define N(x) {#x, x}
const named socket_names[] = {N(SO_RCVBUF), N(SO_SNDBUF), N(SO_KEEPALIVE), N(SO_LINGER), N(SO_PRIORITY), N(SO_MARK),
                              N(SO_RCVLOWAT), N(SO_SNDLOWAT), N(SO_REUSEADDR), N(SO_REUSEPORT), N(SO_BUSY_POLL),
                              N(SO_INCOMING_CPU), N(SO_OOBINLINE), N(SO_DONTROUTE)};
const named ip_names[] = {N(IP_TOS), N(IP_TTL), N(IP_FREEBIND), N(IP_TRANSPARENT), N(IP_BIND_ADDRESS_NO_PORT),
                          N(IP_MINTTL), N(IP_MTU_DISCOVER), N(IP_RECVERR)};
const named ipv6_names[] = {N(IPV6_TCLASS), N(IPV6_UNICAST_HOPS), N(IPV6_V6ONLY), N(IPV6_TRANSPARENT),
                            N(IPV6_MTU_DISCOVER), N(IPV6_RECVERR)};
const named tcp_names[] = {N(TCP_NODELAY), N(TCP_MAXSEG), N(TCP_CORK), N(TCP_KEEPIDLE), N(TCP_KEEPINTVL),
                           N(TCP_KEEPCNT), N(TCP_SYNCNT), N(TCP_LINGER2), N(TCP_DEFER_ACCEPT), N(TCP_WINDOW_CLAMP),
                           N(TCP_QUICKACK), N(TCP_USER_TIMEOUT), N(TCP_NOTSENT_LOWAT), N(TCP_FASTOPEN),
                           N(TCP_THIN_LINEAR_TIMEOUTS)};
#undef N

template <std::size_t n>
std::optional<int> look_up(const named (&names)[n], std::string_view name) {
  for (const auto& entry : names)
    if (name == entry.name) return entry.value;
  return std::nullopt;
}

}  // namespace

bool has_accepted_options(const socket_options& o) noexcept {
  if (!o.accepted.empty()) return true;
  for (const auto& row : table())
    if (row.target == sockopt_target::accepted && row.get(o)) return true;
  return false;
}

bool apply_socket_options(int fd, int family, const socket_options& o, sockopt_target target,
                          std::vector<socket_option_report>* reports, std::string& failed, std::error_code& ec) {
  const bool v6 = family == AF_INET6;
  for (const auto& row : table()) {
    if (row.target != target) continue;
    const auto w = row.get(o);
    if (!w) continue;
    const int level = v6 ? row.level6 : row.level4;
    const int opt = v6 ? row.opt6 : row.opt4;
    const char* name = v6 ? row.name6 : row.name4;
    const std::string requested = w->text ? w->name : std::to_string(w->number);
    if (!set_one(fd, level, opt, *w)) {
      ec = std::error_code(errno, std::system_category());
      failed = fmt::format("{}={}", name, requested);
      return false;
    }
    if (reports) reports->push_back({name, requested, read_back(fd, level, opt, w->text)});
  }
  const bool generic_here = target == sockopt_target::accepted ? !o.accepted.empty()
                                                               : target == sockopt_target::listener_before_bind;
  if (!generic_here) return true;
  for (const auto& raw : target == sockopt_target::accepted ? o.accepted : o.listener) {
    if (::setsockopt(fd, raw.level, raw.name, raw.value.data(), static_cast<socklen_t>(raw.value.size())) != 0) {
      ec = std::error_code(errno, std::system_category());
      failed = raw.label;
      return false;
    }
    if (reports) {
      std::string back = "?";
      if (raw.value.size() == sizeof(int)) back = read_back(fd, raw.level, raw.name, false);
      reports->push_back({raw.label, raw.label.substr(raw.label.find('=') + 1), back});
    }
  }
  return true;
}

bool parse_raw_socket_option(std::string_view text, raw_socket_option& out, std::string& problem) {
  const auto colon = text.find(':');
  const auto equals = text.find('=');
  if (colon == std::string_view::npos || equals == std::string_view::npos || equals < colon) {
    problem = fmt::format("'{}' is not LEVEL:NAME=VALUE", text);
    return false;
  }
  const std::string_view level = text.substr(0, colon), name = text.substr(colon + 1, equals - colon - 1),
                         value = text.substr(equals + 1);
  std::optional<int> lv, nv;
  if (level == "socket") lv = SOL_SOCKET, nv = look_up(socket_names, name);
  else if (level == "ip") lv = SOL_IP, nv = look_up(ip_names, name);
  else if (level == "ipv6") lv = SOL_IPV6, nv = look_up(ipv6_names, name);
  else if (level == "tcp") lv = IPPROTO_TCP, nv = look_up(tcp_names, name);
  else lv = parse_number<int>(level);
  if (!lv) {
    problem = fmt::format("'{}': the level is socket, ip, ipv6, tcp or a number", text);
    return false;
  }
  if (!nv) nv = parse_number<int>(name);
  if (!nv) {
    problem = fmt::format("'{}': unknown option name '{}' (a symbolic name of that level, or a number)", text, name);
    return false;
  }
  out.level = *lv;
  out.name = *nv;
  out.label = std::string(text);
  if (value.size() > 2 && value.substr(0, 2) == "0x") {
    const std::string_view hex = value.substr(2);
    if (hex.size() % 2 != 0 || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos) {
      problem = fmt::format("'{}': 0x… bytes need an even number of hex digits", text);
      return false;
    }
    out.value.clear();
    for (std::size_t i = 0; i < hex.size(); i += 2)
      out.value.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
    return true;
  }
  const bool negative = !value.empty() && value[0] == '-';
  const auto magnitude = parse_number<long long>(negative ? value.substr(1) : value);
  if (!magnitude || *magnitude > 2147483648LL || (!negative && *magnitude > 2147483647LL)) {
    problem = fmt::format("'{}': the value is an integer or 0x… bytes", text);
    return false;
  }
  const int v = static_cast<int>(negative ? -*magnitude : *magnitude);
  out.value.assign(reinterpret_cast<const char*>(&v), sizeof v);
  return true;
}

}  // namespace startup_server::detail
