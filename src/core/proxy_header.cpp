// Strict, incremental parsing of PROXY protocol v1 lines and v2 blocks.
#include "core/proxy_header.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <cstring>
#include <fmt/core.h>
#include <string_view>
#include <utility>

#include "core/resolve.hpp"

namespace startup_server::detail {
namespace {

constexpr std::string_view v1_magic = "PROXY ";
constexpr std::size_t v1_max = 107;  // the spec's longest line, CRLF included
constexpr std::array<unsigned char, 12> v2_magic{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::size_t v2_fixed = 16;
// The shortest complete lines: "PROXY UNKNOWN\r\n", "PROXY TCP6 :: :: 0 0\r\n",
// "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n".
constexpr std::size_t v1_shortest_unknown = 15, v1_shortest_tcp6 = 22, v1_shortest_tcp4 = 32;

proxy_parse_result invalid(std::string why) {
  proxy_parse_result r;
  r.status = proxy_parse_status::invalid;
  r.error = std::move(why);
  return r;
}

proxy_parse_result need_more(std::size_t want) {
  proxy_parse_result r;
  r.status = proxy_parse_status::need_more;
  r.want = want;
  return r;
}

// ---- v1 -------------------------------------------------------------------------------

// How a v1 field stands: ok false if no continuation can make it valid; otherwise the
// fewest bytes still missing before it is valid (0: valid as it is).
struct field_check {
  bool ok = false;
  std::size_t missing = 0;
};
constexpr field_check bad{};

bool is_hex(char c) noexcept { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Four decimal numbers 0..255 joined by dots, no leading zeros (the spec's words; also what
// inet_pton accepts).
field_check check_ipv4(std::string_view s) noexcept {
  unsigned octets = 0, value = 0;
  bool in_octet = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      if (in_octet && value == 0) return bad;  // "01" could be read as octal
      value = value * 10 + static_cast<unsigned>(c - '0');
      if (value > 255) return bad;
      if (!in_octet && ++octets > 4) return bad;
      in_octet = true;
    } else if (c == '.' && in_octet && octets < 4) {
      in_octet = false;
      value = 0;
    } else {
      return bad;
    }
  }
  // Each missing octet needs a digit and a dot before it.
  if (octets == 0) return {true, 7};
  return {true, in_octet ? 2 * (4 - octets) : 2 * (4 - octets) - 1};
}

// The IPv6 text glibc's inet_pton accepts, judged a byte at a time so that a prefix no
// continuation can save is refused at once: 1-4 hex digits per group, eight groups or one
// "::" standing for at least one, and optionally the last two groups as dotted IPv4.
field_check check_ipv6(std::string_view s) noexcept {
  if (s.empty()) return {true, 2};  // "::"
  std::size_t i = 0;
  if (s[0] == ':') {  // a leading colon must start "::"
    if (s.size() == 1) return {true, 1};
    if (s[1] != ':') return bad;
    i = 1;
  }
  unsigned groups = 0, digits = 0;  // groups ended by a colon; hex digits of the current one
  bool gap = false;                 // "::" seen
  bool single_colon = false;        // the last byte is a colon that ended a group
  std::size_t token = i;            // where the current group starts
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (is_hex(c)) {
      if (digits == 4) return bad;
      // A new group must leave room: eight in all, or seven beside the "::".
      if (digits == 0 && groups + 1 > (gap ? 7u : 8u)) return bad;
      ++digits;
      single_colon = false;
    } else if (c == ':') {
      token = i + 1;
      if (digits == 0) {  // the second colon of "::"
        if (gap) return bad;
        gap = true;
        single_colon = false;
        continue;
      }
      ++groups;
      digits = 0;
      single_colon = true;
      // Another group (or "::") must follow this colon.
      if (groups > (gap ? 6u : 7u)) return bad;
    } else if (c == '.') {
      // The rest is dotted IPv4 taking the last two groups.
      if (gap ? groups > 5 : groups != 6) return bad;
      return check_ipv4(s.substr(token));
    } else {
      return bad;
    }
  }
  if (single_colon) return {true, 1};
  if (digits == 0) return {true, 0};  // ends in "::"
  return {true, (gap || groups + 1 == 8) ? 0u : 2u};  // else "::" completes it
}

// 0..65535 in decimal, no leading zeros.
field_check check_port(std::string_view s) noexcept {
  if (s.empty()) return {true, 1};
  if (s.size() > 5 || (s.size() > 1 && s[0] == '0')) return bad;
  unsigned value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return bad;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value <= 65535 ? field_check{true, 0} : bad;
}

// The value of a port that check_port accepted.
std::uint16_t port_number(std::string_view s) noexcept {
  unsigned v = 0;
  for (char c : s) v = v * 10 + static_cast<unsigned>(c - '0');
  return static_cast<std::uint16_t>(v);
}

// One field of the line: its text and the byte that ended it (0: the bytes ran out first).
struct v1_field {
  std::string_view text;
  char end = 0;
  std::size_t end_at = 0;  // index of that byte
};

v1_field next_field(std::string_view line, std::size_t& pos) {
  const auto stop = line.find_first_of(" \r\n", pos);
  v1_field f;
  if (stop == std::string_view::npos) {
    f.text = line.substr(pos);
    pos = f.end_at = line.size();
    return f;
  }
  f.text = line.substr(pos, stop - pos);
  f.end = line[stop];
  f.end_at = stop;
  pos = stop + 1;
  return f;
}

std::string too_long(std::size_t limit) { return fmt::format("PROXY v1: no CRLF within {} bytes", limit); }

// need_more, unless the shortest possible line is already over the limit.
proxy_parse_result v1_need(std::size_t want, std::size_t limit) {
  return want <= limit ? need_more(want) : invalid(too_long(limit));
}

// "PROXY UNKNOWN" then anything up to CRLF, from `from` (the byte after the word).
proxy_parse_result v1_unknown(std::string_view line, std::size_t from, std::size_t limit) {
  for (std::size_t k = from; k < line.size(); ++k) {
    if (line[k] == '\n') return invalid("PROXY v1: LF without CR");
    if (line[k] != '\r') continue;
    if (k + 1 == line.size()) return v1_need(k + 2, limit);
    if (line[k + 1] != '\n') return invalid("PROXY v1: CR without LF");
    proxy_parse_result r;
    r.status = proxy_parse_status::complete;
    r.header.version = 1;
    r.header.local = true;
    r.header.length = k + 2;
    return r;
  }
  return v1_need(line.size() + 2, limit);
}

bool fill_address(int family, std::string_view text, std::uint16_t port, sockaddr_storage& out) {
  const std::string z(text);  // inet_pton wants a terminated string
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&out);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    return ::inet_pton(AF_INET, z.c_str(), &a->sin_addr) == 1;
  }
  auto* a = reinterpret_cast<sockaddr_in6*>(&out);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  return ::inet_pton(AF_INET6, z.c_str(), &a->sin6_addr) == 1;
}

// "TCP4|TCP6 src dst sport dport\r\n" from pos (the byte after "TCP4 "/"TCP6 ").
proxy_parse_result v1_tcp(std::string_view line, std::size_t pos, int family, std::size_t limit) {
  struct step {
    bool address;
    char end;
    const char* what;
  };
  static constexpr std::array<step, 4> steps{{{true, ' ', "source address"},
                                              {true, ' ', "destination address"},
                                              {false, ' ', "source port"},
                                              {false, '\r', "destination port"}}};
  const std::size_t shortest_address = family == AF_INET ? 7 : 2;
  std::array<std::string_view, 4> text;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const auto f = next_field(line, pos);
    const auto check = steps[i].address ? (family == AF_INET ? check_ipv4(f.text) : check_ipv6(f.text))
                                        : check_port(f.text);
    if (f.text.empty() && f.end == ' ') return invalid("PROXY v1: fields must be separated by one space");
    if (!check.ok || (f.end != 0 && check.missing != 0))
      return invalid(fmt::format("PROXY v1: bad {}", steps[i].what));
    if (f.end == 0) {
      // The fewest bytes left: this field's rest and its end, each later field at its
      // shortest with its end, and the LF.
      std::size_t want = line.size() + check.missing + 1 + 1;
      for (std::size_t j = i + 1; j < steps.size(); ++j) want += (steps[j].address ? shortest_address : 1) + 1;
      return v1_need(want, limit);
    }
    if (f.end == '\n') return invalid("PROXY v1: LF without CR");
    if (f.end != steps[i].end) return invalid(fmt::format("PROXY v1: malformed line after the {}", steps[i].what));
    text[i] = f.text;
  }
  if (pos == line.size()) return v1_need(pos + 1, limit);
  if (line[pos] != '\n') return invalid("PROXY v1: CR without LF");

  proxy_parse_result r;
  r.header.version = 1;
  r.header.length = pos + 1;
  // The byte checks mirror inet_pton; if the two ever disagree, refuse rather than guess.
  if (!fill_address(family, text[0], port_number(text[2]), r.header.source) ||
      !fill_address(family, text[1], port_number(text[3]), r.header.destination))
    return invalid("PROXY v1: bad address");
  r.status = proxy_parse_status::complete;
  return r;
}

// line starts with "PROXY " and is at most the v1 limit long.
proxy_parse_result parse_v1(std::string_view line, std::size_t limit) {
  std::size_t pos = v1_magic.size();
  const auto word = next_field(line, pos);
  if (word.end == 0) {
    // The shortest line the protocol word can still make, shortest first.
    constexpr std::array<std::pair<std::string_view, std::size_t>, 3> words{
        {{"UNKNOWN", v1_shortest_unknown}, {"TCP6", v1_shortest_tcp6}, {"TCP4", v1_shortest_tcp4}}};
    for (const auto& [name, shortest] : words)
      if (name.starts_with(word.text)) return v1_need(shortest, limit);
    return invalid("PROXY v1: unknown protocol (not TCP4, TCP6 or UNKNOWN)");
  }
  if (word.text == "UNKNOWN") return v1_unknown(line, word.end_at, limit);
  if (word.text != "TCP4" && word.text != "TCP6")
    return invalid("PROXY v1: unknown protocol (not TCP4, TCP6 or UNKNOWN)");
  if (word.end != ' ') return invalid("PROXY v1: no addresses after the protocol");
  return v1_tcp(line, pos, word.text == "TCP4" ? AF_INET : AF_INET6, limit);
}

// ---- v2 -------------------------------------------------------------------------------

constexpr std::array<std::uint32_t, 256> crc32c_table = [] {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}();

// Raw register update (no pre/post inversion), so a buffer can be fed in pieces.
std::uint32_t crc32c_update(std::uint32_t crc, std::span<const unsigned char> bytes) noexcept {
  for (unsigned char b : bytes) crc = crc32c_table[(crc ^ b) & 0xFF] ^ (crc >> 8);
  return crc;
}

std::uint16_t be16(const unsigned char* p) noexcept { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }
std::uint32_t be32(const unsigned char* p) noexcept {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

constexpr std::uint8_t tlv_alpn = 0x01, tlv_authority = 0x02, tlv_crc32c = 0x03, tlv_noop = 0x04,
                       tlv_unique_id = 0x05, tlv_ssl = 0x20;
constexpr std::size_t unique_id_max = 128, ssl_fixed = 5;  // SSL: client u8, verify u32

// A pass over TLVs of which only data[0, data.size()) has arrived. Framing and per-type
// rules are checked on whatever has arrived, so a bad header is refused before it is
// whole; values are kept only once they are all there. Errors come back as text, "" if
// the TLVs are fine so far.
struct tlv_walk {
  std::span<const unsigned char> data;
  proxy_header* out = nullptr;  // null inside SSL: sub-TLVs go to ssl
  proxy_ssl_info* ssl = nullptr;
  std::bitset<256> seen{};
  std::size_t crc_at = 0;  // offset of the CRC32C value, 0 if none
};

std::string walk_tlvs(tlv_walk& w, std::size_t begin, std::size_t end);

// Rules for one TLV whose 3-byte header has arrived, its value at data[value, value + len).
std::string check_tlv(tlv_walk& w, std::uint8_t type, std::size_t value, std::size_t len) {
  const bool top = w.out != nullptr;
  const bool known = top ? (type == tlv_alpn || type == tlv_authority || type == tlv_crc32c ||
                            type == tlv_unique_id || type == tlv_ssl)
                         : (type >= 0x21 && type <= 0x25);
  // Two of a kind leave no right answer to which one counts.
  if (known && w.seen.test(type))
    return fmt::format("PROXY v2: more than one {} 0x{:02x}", top ? "TLV" : "SSL sub-TLV", type);
  w.seen.set(type);
  if (!top) return {};
  if (type == tlv_crc32c) {
    if (len != 4) return "PROXY v2: CRC32C TLV is not 4 bytes";
    w.crc_at = value;
  }
  if (type == tlv_unique_id && len > unique_id_max) return "PROXY v2: UNIQUE_ID longer than 128 bytes";
  if (type == tlv_ssl) {
    if (len < ssl_fixed) return "PROXY v2: SSL TLV shorter than 5 bytes";
    if (w.data.size() < value + ssl_fixed) return {};
    proxy_ssl_info info;
    info.client = w.data[value];
    info.verify = be32(&w.data[value + 1]);
    tlv_walk inner{w.data};
    inner.ssl = &info;
    if (auto e = walk_tlvs(inner, value + ssl_fixed, value + len); !e.empty()) return e;
    if (w.data.size() >= value + len) w.out->ssl = std::move(info);
  }
  return {};
}

// Keeps a TLV whose value has all arrived.
void store_tlv(tlv_walk& w, std::uint8_t type, std::string v) {
  if (w.out) {
    switch (type) {
      case tlv_alpn: w.out->alpn = std::move(v); break;
      case tlv_authority: w.out->authority = std::move(v); break;
      case tlv_unique_id: w.out->unique_id = std::move(v); break;
      case tlv_crc32c: case tlv_noop: case tlv_ssl: break;  // checked, skipped, decoded above
      default: w.out->other.push_back({type, std::move(v)});
    }
    return;
  }
  switch (type) {
    case 0x21: w.ssl->version = std::move(v); break;
    case 0x22: w.ssl->cn = std::move(v); break;
    case 0x23: w.ssl->cipher = std::move(v); break;
    case 0x24: w.ssl->sig_alg = std::move(v); break;
    case 0x25: w.ssl->key_alg = std::move(v); break;
    default: w.ssl->other.push_back({type, std::move(v)});
  }
}

// The TLVs must tile [begin, end) exactly: each 3-byte header and its value inside it.
std::string walk_tlvs(tlv_walk& w, std::size_t begin, std::size_t end) {
  const std::size_t have = w.data.size();
  const char* what = w.out ? "TLV" : "SSL sub-TLV";
  for (std::size_t at = begin; at < end;) {
    if (end - at < 3) return fmt::format("PROXY v2: {} header runs past the end", what);
    if (have < at + 3) return {};
    const std::uint8_t type = w.data[at];
    const std::size_t len = be16(&w.data[at + 1]), value = at + 3;
    if (len > end - value) return fmt::format("PROXY v2: {} 0x{:02x} runs past the end", what, type);
    if (auto e = check_tlv(w, type, value, len); !e.empty()) return e;
    if (have >= value + len) store_tlv(w, type, std::string(reinterpret_cast<const char*>(&w.data[value]), len));
    at = value + len;
  }
  return {};
}

void fill_v2_addresses(std::span<const unsigned char> h, std::uint8_t family, proxy_header& out) {
  const unsigned char* a = h.data() + v2_fixed;
  if (family == 0x11) {
    auto* s = reinterpret_cast<sockaddr_in*>(&out.source);
    auto* d = reinterpret_cast<sockaddr_in*>(&out.destination);
    s->sin_family = d->sin_family = AF_INET;
    std::memcpy(&s->sin_addr, a, 4);
    std::memcpy(&d->sin_addr, a + 4, 4);
    std::memcpy(&s->sin_port, a + 8, 2);  // both network order already
    std::memcpy(&d->sin_port, a + 10, 2);
  } else {
    auto* s = reinterpret_cast<sockaddr_in6*>(&out.source);
    auto* d = reinterpret_cast<sockaddr_in6*>(&out.destination);
    s->sin6_family = d->sin6_family = AF_INET6;
    std::memcpy(&s->sin6_addr, a, 16);
    std::memcpy(&d->sin6_addr, a + 16, 16);
    std::memcpy(&s->sin6_port, a + 32, 2);
    std::memcpy(&d->sin6_port, a + 34, 2);
  }
}

// The 13th and 14th bytes, judged as soon as each arrives.
std::string check_v2_kind(std::span<const unsigned char> bytes) {
  if (bytes.size() > 12) {
    const unsigned version = bytes[12] >> 4, command = bytes[12] & 0x0F;
    if (version != 2) return fmt::format("PROXY v2: version {}, not 2", version);
    if (command > 1) return fmt::format("PROXY v2: unknown command {}", command);
  }
  if (bytes.size() > 13) {
    const std::uint8_t family = bytes[13];
    switch (family) {
      case 0x00: case 0x11: case 0x21: break;
      case 0x12: case 0x22: case 0x31: case 0x32:
        // Valid, but only a LOCAL header may carry them here: PROXY would hand a TCP
        // handler a UDP or UNIX peer.
        if ((bytes[12] & 0x0F) == 1) return "PROXY v2: unsupported transport (UDP or UNIX; only TCP is served)";
        break;
      default: return fmt::format("PROXY v2: unknown address family/transport 0x{:02x}", family);
    }
  }
  return {};
}

proxy_parse_result parse_v2(std::span<const unsigned char> bytes, std::size_t limit) {
  if (!std::equal(bytes.begin(), bytes.begin() + std::min(bytes.size(), v2_magic.size()), v2_magic.begin()))
    return invalid("PROXY v2: bad signature");
  if (auto e = check_v2_kind(bytes); !e.empty()) return invalid(std::move(e));
  if (bytes.size() < v2_fixed) return need_more(v2_fixed);

  const bool proxy = (bytes[12] & 0x0F) == 1;
  const std::uint8_t family = bytes[13];
  const std::size_t total = v2_fixed + be16(&bytes[14]);
  if (total > limit) return invalid(fmt::format("PROXY v2: header of {} bytes, over the {}-byte limit", total, limit));
  const std::size_t addresses = !proxy ? 0 : family == 0x11 ? 12 : family == 0x21 ? 36 : 0;
  if (total < v2_fixed + addresses) return invalid("PROXY v2: length too short for the addresses");

  proxy_parse_result r;
  r.header.version = 2;
  r.header.length = total;
  if (!proxy) {  // LOCAL: the spec says to discard the whole block, family included
    if (bytes.size() < total) return need_more(total);
    r.header.local = r.header.local_command = true;
    r.status = proxy_parse_status::complete;
    return r;
  }

  tlv_walk walk{bytes.first(std::min(bytes.size(), total)), &r.header};
  if (auto e = walk_tlvs(walk, v2_fixed + addresses, total); !e.empty()) return invalid(std::move(e));
  if (bytes.size() < total) return need_more(total);

  if (walk.crc_at != 0) {
    const auto h = bytes.first(total);
    constexpr std::array<unsigned char, 4> zero{};
    std::uint32_t crc = crc32c_update(0xFFFFFFFFu, h.first(walk.crc_at));
    crc = crc32c_update(crc, zero);
    crc = ~crc32c_update(crc, h.subspan(walk.crc_at + 4));
    if (crc != be32(&h[walk.crc_at])) return invalid("PROXY v2: CRC32C mismatch");
  }
  if (addresses == 0) r.header.local = true;  // UNSPEC: the spec says use the real endpoints
  else fill_v2_addresses(bytes, family, r.header);
  r.status = proxy_parse_status::complete;
  return r;
}

}  // namespace

proxy_parse_result parse_proxy_header(std::span<const unsigned char> bytes, std::size_t max_length) {
  const std::size_t limit = std::max(max_length, v2_fixed);
  if (bytes.empty()) return need_more(v1_shortest_unknown);
  if (bytes[0] == v2_magic[0]) return parse_v2(bytes, limit);

  const std::size_t v1_limit = std::min(limit, v1_max);
  const std::string_view line(reinterpret_cast<const char*>(bytes.data()), std::min(bytes.size(), v1_limit));
  if (!v1_magic.starts_with(line.substr(0, v1_magic.size()))) return invalid("not a PROXY header");
  if (line.size() < v1_magic.size()) return v1_need(v1_shortest_unknown, v1_limit);
  return parse_v1(line, v1_limit);
}

std::uint32_t crc32c(std::span<const unsigned char> bytes) noexcept {
  return ~crc32c_update(0xFFFFFFFFu, bytes);
}

std::string proxy_address_text(const sockaddr_storage& address) {
  if (address.ss_family != AF_INET && address.ss_family != AF_INET6) return {};
  return numeric_host(reinterpret_cast<const sockaddr*>(&address));
}

}  // namespace startup_server::detail
