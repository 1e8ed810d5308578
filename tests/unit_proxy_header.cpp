// Unit tests: the PROXY protocol header parser, v1 and v2, whole and a byte at a time.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <fmt/core.h>

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "core/proxy_header.hpp"
#include "core/resolve.hpp"

using namespace startup_server::detail;

namespace {

using bytes = std::vector<unsigned char>;

bytes ascii(std::string_view s) { return bytes(s.begin(), s.end()); }

bytes unhex(std::string_view hex) {
  bytes out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<unsigned char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

bytes operator+(bytes a, const bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

proxy_parse_result parse(const bytes& b, std::size_t max_length = 4096) { return parse_proxy_header(b, max_length); }

std::string host(const sockaddr_storage& a) { return proxy_address_text(a); }
std::uint16_t port(const sockaddr_storage& a) { return port_of(reinterpret_cast<const sockaddr*>(&a)); }

const bytes v2_signature = unhex("0d0a0d0a000d0a515549540a");

// A v2 header: signature, version/command, family, then body with its length.
bytes v2(std::uint8_t ver_cmd, std::uint8_t family, const bytes& body) {
  bytes out = v2_signature;
  out.push_back(ver_cmd);
  out.push_back(family);
  out.push_back(static_cast<unsigned char>(body.size() >> 8));
  out.push_back(static_cast<unsigned char>(body.size() & 0xff));
  return out + body;
}

bytes tlv(std::uint8_t type, const bytes& value) {
  bytes out{type, static_cast<unsigned char>(value.size() >> 8), static_cast<unsigned char>(value.size() & 0xff)};
  return out + value;
}
bytes tlv(std::uint8_t type, std::string_view value) { return tlv(type, ascii(value)); }

// Appends a CRC32C TLV to a built header (fixing its length) and fills in the checksum.
bytes with_crc(bytes h) {
  const std::size_t len = (std::size_t{h[14]} << 8 | h[15]) + 7;
  h[14] = static_cast<unsigned char>(len >> 8);
  h[15] = static_cast<unsigned char>(len & 0xff);
  h = h + tlv(0x03, bytes(4, 0));
  const std::uint32_t crc = crc32c(h);
  for (int i = 0; i < 4; ++i) h[h.size() - 4 + i] = static_cast<unsigned char>(crc >> (24 - 8 * i));
  return h;
}

// 203.0.113.7:51234 -> 192.0.2.1:80 as a v2 TCP4 address block.
const bytes tcp4_block = unhex("cb007107c0000201c822" "0050");

// haproxy 2.6's send-proxy-v2 with unique-id and crc32c, as captured on loopback.
bytes haproxy_capture() {
  return unhex("0d0a0d0a000d0a515549540a2111003f7f0000017f000001ccc6b7fe030004ea7d99b2050029") +
         ascii("7F000001:CCC6_7F000001:B7FE_6B0CCBC9_0004");
}

bytes ssl_header() {
  const bytes ssl = bytes{0x07, 0, 0, 0, 0} + tlv(0x21, "TLSv1.3") + tlv(0x22, "testclient") +
                    tlv(0x23, "TLS_AES_256_GCM_SHA384") + tlv(0x24, "RSA-SHA256") + tlv(0x25, "RSA2048");
  return with_crc(v2(0x21, 0x11, tcp4_block + tlv(0x01, "echo/1") + tlv(0x02, "example.test") + tlv(0x04, "") +
                                     tlv(0x20, ssl) + tlv(0xe0, bytes{1, 2, 3})));
}

// The first k bytes in a buffer of exactly that size, so that AddressSanitizer sees any
// read past them.
proxy_parse_result parse_prefix(const bytes& b, std::size_t k, std::size_t cap = 4096) {
  const bytes exact(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(k));
  return parse_proxy_header(exact, cap);
}

// The statuses as bytes arrive one at a time must make sense to a caller that waits for
// `want`: need_more (want past what it has, within the cap, never past the header's real
// length) until one decision, which then stands however many more bytes come. "" if so.
std::string prefix_story(const bytes& b, std::size_t cap = 4096) {
  std::optional<proxy_parse_result> decided;
  for (std::size_t k = 0; k <= b.size(); ++k) {
    const auto r = parse_prefix(b, k, cap);
    if (decided) {
      if (r.status != decided->status) return fmt::format("decision changed at {} bytes", k);
      if (r.status == proxy_parse_status::complete && r.header.length != decided->header.length)
        return fmt::format("length changed at {} bytes", k);
      continue;
    }
    switch (r.status) {
      case proxy_parse_status::need_more:
        if (r.want <= k || r.want > cap) return fmt::format("want {} with {} bytes", r.want, k);
        break;
      case proxy_parse_status::complete:
        if (r.header.length != k) return fmt::format("complete at {} bytes, length {}", k, r.header.length);
        decided = r;
        break;
      case proxy_parse_status::invalid:
        if (r.error.empty()) return fmt::format("invalid with no reason at {} bytes", k);
        decided = r;
        break;
    }
  }
  // A caller that trusted `want` must not have waited past a header that was there.
  if (decided && decided->status == proxy_parse_status::complete)
    for (std::size_t k = 0; k < decided->header.length; ++k)
      if (auto r = parse_prefix(b, k, cap); r.want > decided->header.length)
        return fmt::format("want {} past the length at {} bytes", r.want, k);
  return {};
}

// The fewest bytes after which the input is refused (0: never).
std::size_t refused_after(const bytes& b) {
  for (std::size_t k = 1; k <= b.size(); ++k)
    if (parse_prefix(b, k).status == proxy_parse_status::invalid) return k;
  return 0;
}

// Holds a v1 address field's verdicts against inet_pton: the whole line is accepted exactly
// when inet_pton accepts the address; each prefix (or only s itself) is waited for exactly
// when some continuation makes an address, with `want` counting the shortest one, and is
// refused otherwise. "" if all agree.
class address_oracle {
 public:
  explicit address_oracle(int family)
      : family_(family),
        head_(family == AF_INET ? "PROXY TCP4 " : "PROXY TCP6 "),
        rest_(family == AF_INET ? " 0.0.0.0 0 0\r\n" : " :: 0 0\r\n"),
        completions_(family == AF_INET ? "0." : "0:."),
        depth_(family == AF_INET ? 7 : 5) {}

  bool valid(const std::string& s) const {
    unsigned char buf[16];
    return ::inet_pton(family_, s.c_str(), buf) == 1;
  }

  std::string disagreement(const std::string& s, bool every_prefix) {
    const bool whole = parse(ascii(head_ + s + rest_)).status == proxy_parse_status::complete;
    if (whole != valid(s)) return fmt::format("'{}': whole line {}", s, whole ? "accepted" : "refused");
    for (std::size_t n = every_prefix ? 0 : s.size(); n <= s.size(); ++n) {
      const std::string p = s.substr(0, n);
      const auto r = parse(ascii(head_ + p));
      const int shortest = shortest_completion(p);
      if (shortest < 0 && r.status != proxy_parse_status::invalid)
        return fmt::format("'{}': waited for, but nothing completes it", p);
      if (shortest >= 0 && r.status != proxy_parse_status::need_more)
        return fmt::format("'{}': refused ({}), but {} more bytes complete it", p, r.error, shortest);
      if (shortest >= 0 && r.want != head_.size() + p.size() + static_cast<std::size_t>(shortest) + rest_.size())
        return fmt::format("'{}': want {} for a shortest completion of {}", p, r.want, shortest);
    }
    return {};
  }

 private:
  // The fewest bytes that make p an address (-1: none), breadth first. "0", dots and colons
  // are all a shortest completion needs, and none is longer than "0.0.0.0" (IPv4) or
  // "0.0.0" (after "::1." in IPv6).
  int shortest_completion(const std::string& p) {
    if (auto it = memo_.find(p); it != memo_.end()) return it->second;
    // Nothing saves a string whose prefix nothing saves.
    if (!p.empty() && shortest_completion(p.substr(0, p.size() - 1)) < 0) return memo_[p] = -1;
    int found = -1;
    std::vector<std::string> level{""};
    for (int n = 0; n <= depth_ && found < 0; ++n) {
      std::vector<std::string> next;
      for (const auto& t : level) {
        if (valid(p + t)) {
          found = n;
          break;
        }
        for (char c : completions_) next.push_back(t + c);
      }
      level.swap(next);
    }
    return memo_[p] = found;
  }

  int family_;
  std::string head_, rest_, completions_;
  int depth_;
  std::map<std::string, int> memo_;
};

}  // namespace

// ---- v1 ---------------------------------------------------------------------------------

TEST_CASE("proxy: haproxy's v1 TCP4 line, followed by the client's bytes", "[proxy]") {
  const std::string line = "PROXY TCP4 127.0.0.1 127.0.0.1 33302 47101\r\n";
  auto r = parse(ascii(line + "GET / HTTP/1.0\r\n\r\n"));
  REQUIRE(r.status == proxy_parse_status::complete);
  CHECK(r.header.version == 1);
  CHECK_FALSE(r.header.local);
  CHECK_FALSE(r.header.local_command);
  CHECK(r.header.length == line.size());
  CHECK(r.header.source.ss_family == AF_INET);
  CHECK(host(r.header.source) == "127.0.0.1");
  CHECK(port(r.header.source) == 33302);
  CHECK(r.header.destination.ss_family == AF_INET);
  CHECK(host(r.header.destination) == "127.0.0.1");
  CHECK(port(r.header.destination) == 47101);
  CHECK(r.error.empty());
}

TEST_CASE("proxy: v1 TCP6 line, and the extremes of addresses and ports", "[proxy]") {
  const std::string line = "PROXY TCP6 2001:db8::7 2001:DB8:0:0:0:0:0:1 0 65535\r\n";
  auto r = parse(ascii(line + "x"));
  REQUIRE(r.status == proxy_parse_status::complete);
  CHECK(r.header.length == line.size());
  CHECK(r.header.source.ss_family == AF_INET6);
  CHECK(host(r.header.source) == "2001:db8::7");
  CHECK(port(r.header.source) == 0);
  CHECK(host(r.header.destination) == "2001:db8::1");
  CHECK(port(r.header.destination) == 65535);

  r = parse(ascii("PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n"));
  REQUIRE(r.status == proxy_parse_status::complete);
  CHECK(host(r.header.source) == "255.255.255.255");
  CHECK(host(r.header.destination) == "0.0.0.0");

  // What haproxy prints for an IPv4 client reaching an IPv6 listener; the environment shows
  // it as IPv4, as for a real peer on a dual-stack socket.
  r = parse(ascii("PROXY TCP6 ::ffff:203.0.113.7 ::1 51234 80\r\n"));
  REQUIRE(r.status == proxy_parse_status::complete);
  CHECK(r.header.source.ss_family == AF_INET6);
  CHECK(host(r.header.source) == "203.0.113.7");
  CHECK(host(r.header.destination) == "::1");
}

TEST_CASE("proxy: v1 UNKNOWN uses the real endpoints and ignores the rest of the line", "[proxy]") {
  auto r = parse(ascii("PROXY UNKNOWN\r\nhello"));
  REQUIRE(r.status == proxy_parse_status::complete);
  CHECK(r.header.version == 1);
  CHECK(r.header.local);
  CHECK_FALSE(r.header.local_command);
  CHECK(r.header.length == 15);
  CHECK(r.header.source.ss_family == AF_UNSPEC);
  CHECK(host(r.header.source).empty());

  const std::string worst =
      "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  REQUIRE(worst.size() == 107);
  r = parse(ascii(worst + "data"));
  REQUIRE(r.status == proxy_parse_status::complete);
  CHECK(r.header.local);
  CHECK(r.header.length == 107);

  r = parse(ascii("PROXY UNKNOWN whatever 1.2.3.4\r\n"));
  REQUIRE(r.status == proxy_parse_status::complete);
  CHECK(r.header.length == 32);
}

TEST_CASE("proxy: a v1 line fed a byte at a time waits until its last byte", "[proxy]") {
  for (std::string line : {"PROXY TCP4 127.0.0.1 127.0.0.1 33302 47101\r\n", "PROXY TCP6 ::1 2001:db8::1 1 2\r\n",
                           "PROXY TCP6 ::ffff:10.0.0.1 1:2:3:4:5:6:7:8 1 2\r\n", "PROXY UNKNOWN\r\n",
                           "PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"}) {
    INFO(line);
    const bytes b = ascii(line);
    for (std::size_t k = 0; k < b.size(); ++k) {
      auto r = parse(bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(k)));
      INFO(k << " bytes");
      REQUIRE(r.status == proxy_parse_status::need_more);
      CHECK(r.want > k);
      CHECK(r.want <= b.size());  // a caller waiting for `want` bytes is never stuck
    }
    auto r = parse(b);
    REQUIRE(r.status == proxy_parse_status::complete);
    CHECK(r.header.length == b.size());
    CHECK(prefix_story(b + ascii("SSH-2.0-x\r\n")).empty());
  }
  // The shortest line the bytes so far can still become.
  CHECK(parse(bytes{}).want == 15);
  CHECK(parse(ascii("PROXY ")).want == 15);
  CHECK(parse(ascii("PROXY T")).want == 22);
  CHECK(parse(ascii("PROXY TCP4")).want == 32);
  CHECK(parse(ascii("PROXY TCP4 1.2.")).want == 32);  // "1.2.0.0"
  CHECK(parse(ascii("PROXY TCP6 ::1 ::1 1 2\r")).want == 24);
}

TEST_CASE("proxy: v1 lines that break the spec are refused, with a reason", "[proxy]") {
  struct bad_line {
    std::string line;
    std::string error;
  };
  for (const auto& [line, error] : std::vector<bad_line>{
           {"PROXY TCP4 127.0.0.01 127.0.0.1 1 2\r\n", "PROXY v1: bad source address"},
           {"PROXY TCP4 127.0.0.1 127.0.0.1 01 2\r\n", "PROXY v1: bad source port"},
           {"PROXY TCP4 127.0.0.1 127.0.0.1 1 00\r\n", "PROXY v1: bad destination port"},
           {"PROXY TCP4 127.0.0.1 127.0.0.1 1 65536\r\n", "PROXY v1: bad destination port"},
           {"PROXY TCP4 127.0.0.1 127.0.0.1 1 +2\r\n", "PROXY v1: bad destination port"},
           {"PROXY TCP4 256.0.0.1 127.0.0.1 1 2\r\n", "PROXY v1: bad source address"},
           {"PROXY TCP4 1.2.3 127.0.0.1 1 2\r\n", "PROXY v1: bad source address"},
           {"PROXY TCP4 1.2.3.4.5 127.0.0.1 1 2\r\n", "PROXY v1: bad source address"},
           {"PROXY TCP4 127.0.0.1  127.0.0.1 1 2\r\n", "PROXY v1: fields must be separated by one space"},
           {"PROXY  TCP4 127.0.0.1 127.0.0.1 1 2\r\n", "PROXY v1: unknown protocol (not TCP4, TCP6 or UNKNOWN)"},
           {"proxy TCP4 127.0.0.1 127.0.0.1 1 2\r\n", "not a PROXY header"},
           {"PROXY tcp4 127.0.0.1 127.0.0.1 1 2\r\n", "PROXY v1: unknown protocol (not TCP4, TCP6 or UNKNOWN)"},
           {"PROXY TCP5 127.0.0.1 127.0.0.1 1 2\r\n", "PROXY v1: unknown protocol (not TCP4, TCP6 or UNKNOWN)"},
           {"PROXY TCP4 ::1 ::1 1 2\r\n", "PROXY v1: bad source address"},
           {"PROXY TCP4 ::ffff:1.2.3.4 1.2.3.4 1 2\r\n", "PROXY v1: bad source address"},
           {"PROXY TCP6 127.0.0.1 ::1 1 2\r\n", "PROXY v1: bad source address"},
           {"PROXY TCP6 ::1 fe80::1%eth0 1 2\r\n", "PROXY v1: bad destination address"},
           {"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", "PROXY v1: bad source address"},
           {"PROXY TCP4 127.0.0.1 127.0.0.1 1 2\n", "PROXY v1: LF without CR"},
           {"PROXY TCP4 127.0.0.1 127.0.0.1 1 2\rX", "PROXY v1: CR without LF"},
           {"PROXY UNKNOWN\n", "PROXY v1: LF without CR"},
           {"PROXY UNKNOWN 1.2.3.4\rx\r\n", "PROXY v1: CR without LF"},
           {"PROXY TCP4 127.0.0.1 127.0.0.1 1 2 \r\n", "PROXY v1: malformed line after the destination port"},
           {"PROXY TCP4 127.0.0.1 127.0.0.1 1\r\n", "PROXY v1: malformed line after the source port"},
           {"PROXY TCP4\r\n", "PROXY v1: no addresses after the protocol"},
           {"PROXY\r\n", "not a PROXY header"},
           {"GET / HTTP/1.0\r\n", "not a PROXY header"},
       }) {
    INFO(line);
    auto r = parse(ascii(line));
    CHECK(r.status == proxy_parse_status::invalid);
    CHECK(r.error == error);
    CHECK(prefix_story(ascii(line)).empty());
  }
}

TEST_CASE("proxy: v1 is refused at the first byte no valid line could have", "[proxy]") {
  CHECK(refused_after(ascii("proxy")) == 1);
  CHECK(refused_after(ascii("PROXY TCP5")) == 10);
  CHECK(refused_after(ascii("PROXY TCP4 127.0.0.01")) == 21);  // the "1" after a lone "0"
  CHECK(refused_after(ascii("PROXY TCP4 1.2.3.4 5.6.7.8 0")) == 0);
  CHECK(refused_after(ascii("PROXY TCP4 1.2.3.4 5.6.7.8 01")) == 29);
  CHECK(refused_after(ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536")) == 34);
  CHECK(refused_after(ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 655350")) == 35);
  CHECK(refused_after(ascii("PROXY TCP4 1.2.3.4  ")) == 20);
  CHECK(refused_after(ascii("PROXY TCP6 1.")) == 13);
  CHECK(refused_after(ascii("PROXY TCP6 1:2:3:4:5:6:7::8")) == 27);
  CHECK(refused_after(ascii("PROXY TCP6 ::1:2:3:4:5:6:7")) == 0);  // "::" may stand for one group
  CHECK(refused_after(ascii("PROXY TCP6 ::1:2:3:4:5:6:7:")) == 27);
  CHECK(refused_after(ascii("PROXY TCP6 1:2:3:4:5:6::1.")) == 26);  // "::" would stand for none
  CHECK(refused_after(ascii("PROXY UNKNOWN\r\r")) == 15);

  // The longest IPv6 text (45 bytes, dotted tail) twice leaves no room for the ports and
  // CRLF within 107 bytes: refused at the second address's last byte, since " 0 0\r\n"
  // no longer fits.
  const std::string longest = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
  REQUIRE(longest.size() == 45);
  const std::string line = "PROXY TCP6 " + longest + " " + longest + " 1 2\r\n";
  CHECK(parse(ascii(line)).error == "PROXY v1: no CRLF within 107 bytes");
  CHECK(refused_after(ascii(line)) == 102);
  // 39-byte addresses fit (the spec's own TCP6 worst case: 104 bytes).
  const std::string widest = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                             "65535 65535\r\n";
  REQUIRE(widest.size() == 104);
  CHECK(parse(ascii(widest)).status == proxy_parse_status::complete);
}

TEST_CASE("proxy: no CRLF within 107 bytes is refused", "[proxy]") {
  const std::string junk = "PROXY UNKNOWN " + std::string(94, 'x');  // 108 bytes, no CRLF
  REQUIRE(junk.size() == 108);
  auto r = parse(ascii(junk));
  REQUIRE(r.status == proxy_parse_status::invalid);
  CHECK(r.error == "PROXY v1: no CRLF within 107 bytes");
  // 106 bytes without a CR can no longer end by 107.
  r = parse(ascii(junk.substr(0, 106)));
  CHECK(r.status == proxy_parse_status::invalid);
  r = parse(ascii(junk.substr(0, 105)));
  REQUIRE(r.status == proxy_parse_status::need_more);
  CHECK(r.want == 107);
  r = parse(ascii(junk.substr(0, 105) + "\r\n"));
  CHECK(r.status == proxy_parse_status::complete);
  CHECK(r.header.length == 107);
  // A CRLF at 107-108 is one byte too late.
  CHECK(parse(ascii(junk.substr(0, 106) + "\r\n")).error == "PROXY v1: no CRLF within 107 bytes");
  // A smaller cap shortens the line too.
  CHECK(parse(ascii("PROXY UNKNOWN 1234567890\r\n"), 20).error == "PROXY v1: no CRLF within 20 bytes");
}

TEST_CASE("proxy: v1 address checks agree with inet_pton, byte by byte", "[proxy]") {
  // Every short string over a small alphabet.
  for (const auto& [family, alphabet, longest] :
       {std::tuple<int, std::string, std::size_t>{AF_INET, "01256.", 5}, {AF_INET6, "01f:.", 6}}) {
    address_oracle oracle(family);
    std::vector<std::string> strings{""};
    for (std::size_t i = 0; i < strings.size(); ++i)
      if (strings[i].size() < longest)
        for (char c : alphabet) strings.push_back(strings[i] + c);
    std::size_t disagreements = 0;
    for (const auto& s : strings) {
      const auto d = oracle.disagreement(s, false);
      if (!d.empty() && ++disagreements <= 5) FAIL_CHECK(d);
    }
    CHECK(disagreements == 0);
  }

  // Full-length addresses in the forms senders print (and "::" for a single group), every
  // prefix, and each with a colon appended, one byte dropped, turned into a colon or a dot,
  // or a zero inserted.
  std::mt19937 random(7);  // fixed: the same addresses every run
  const auto pick = [&](unsigned n) { return static_cast<unsigned>(random() % n); };
  std::vector<std::string> v4, v6;
  for (int i = 0; i < 25; ++i) {
    v4.push_back(fmt::format("{}.{}.{}.{}", pick(256), pick(256), pick(3) ? pick(256) : 0, pick(10)));
    in6_addr a{};
    for (auto& byte : a.s6_addr) byte = pick(3) ? 0 : static_cast<std::uint8_t>(pick(256));
    char text[INET6_ADDRSTRLEN];
    v6.push_back(::inet_ntop(AF_INET6, &a, text, sizeof text));
    std::vector<std::string> groups;  // eight groups, mixed case and padding
    for (int g = 0; g < 8; ++g) {
      const unsigned value = a.s6_addr[2 * g] << 8 | a.s6_addr[2 * g + 1];
      groups.push_back(pick(2) ? fmt::format("{:x}", value) : fmt::format("{:04X}", value));
    }
    const auto join = [&](std::size_t from, std::size_t to) {
      std::string out;
      for (std::size_t g = from; g < to; ++g) out += (g > from ? ":" : "") + groups[g];
      return out;
    };
    v6.push_back(join(0, 8));
    const std::size_t gap = pick(8);  // "::" for just one group, anywhere: seven written
    v6.push_back(join(0, gap) + "::" + join(gap + 1, 8));
    v6.push_back(fmt::format("{:x}:{:x}::{}.{}.{}.{}", pick(65536), pick(16), pick(256), pick(256), pick(256),
                             pick(256)));
    v6.push_back(fmt::format("::ffff:{}.{}.{}.{}", pick(256), pick(100), pick(10), pick(256)));
  }
  for (auto [family, list] : {std::pair{AF_INET, &v4}, std::pair{AF_INET6, &v6}}) {
    address_oracle oracle(family);
    std::size_t disagreements = 0;
    for (const auto& s : *list) {
      REQUIRE(oracle.valid(s));
      auto d = oracle.disagreement(s, true);
      if (d.empty()) d = oracle.disagreement(s + ':', false);
      for (std::size_t at = 0; d.empty() && at < s.size(); ++at)
        for (const auto& m : {s.substr(0, at) + s.substr(at + 1), s.substr(0, at) + ':' + s.substr(at + 1),
                              s.substr(0, at) + '.' + s.substr(at + 1), s.substr(0, at) + '0' + s.substr(at)})
          if (d = oracle.disagreement(m, false); !d.empty()) break;
      if (!d.empty() && ++disagreements <= 5) FAIL_CHECK(d);
    }
    CHECK(disagreements == 0);
  }
}

// ---- v2 ---------------------------------------------------------------------------------

TEST_CASE("proxy: haproxy's v2 LOCAL health check", "[proxy]") {
  const bytes check = unhex("0d0a0d0a000d0a515549540a20000000");
  auto r = parse(check + ascii("after"));
  REQUIRE(r.status == proxy_parse_status::complete);
  CHECK(r.header.version == 2);
  CHECK(r.header.local);
  CHECK(r.header.local_command);
  CHECK(r.header.length == 16);
  CHECK(r.header.source.ss_family == AF_UNSPEC);
  CHECK(prefix_story(check).empty());

  // LOCAL skips whatever it declares, whatever the family, TLVs unread.
  r = parse(v2(0x20, 0x11, tcp4_block + bytes{0xff, 0xff}));
  REQUIRE(r.status == proxy_parse_status::complete);
  CHECK(r.header.local);
  CHECK(r.header.length == 16 + 14);
  CHECK(r.header.source.ss_family == AF_UNSPEC);
  r = parse(v2(0x20, 0x31, bytes(3, 'x')));
  CHECK(r.status == proxy_parse_status::complete);
}

TEST_CASE("proxy: v2 PROXY over TCP4 and TCP6", "[proxy]") {
  auto r = parse(v2(0x21, 0x11, tcp4_block) + ascii("payload"));
  REQUIRE(r.status == proxy_parse_status::complete);
  CHECK(r.header.version == 2);
  CHECK_FALSE(r.header.local);
  CHECK(r.header.length == 28);
  CHECK(r.header.source.ss_family == AF_INET);
  CHECK(host(r.header.source) == "203.0.113.7");
  CHECK(port(r.header.source) == 51234);
  CHECK(host(r.header.destination) == "192.0.2.1");
  CHECK(port(r.header.destination) == 80);
  CHECK(r.header.other.empty());
  CHECK_FALSE(r.header.ssl);

  const bytes block6 = unhex("20010db8000000000000000000000007"
                             "20010db8000000000000000000000001"
                             "0001" "01bb");
  r = parse(v2(0x21, 0x21, block6));
  REQUIRE(r.status == proxy_parse_status::complete);
  CHECK(r.header.length == 52);
  CHECK(r.header.source.ss_family == AF_INET6);
  CHECK(host(r.header.source) == "2001:db8::7");
  CHECK(port(r.header.source) == 1);
  CHECK(host(r.header.destination) == "2001:db8::1");
  CHECK(port(r.header.destination) == 443);

  // PROXY with UNSPEC: the sender could not say, so the real endpoints stand.
  r = parse(v2(0x21, 0x00, tlv(0x05, "id-1")));
  REQUIRE(r.status == proxy_parse_status::complete);
  CHECK(r.header.local);
  CHECK_FALSE(r.header.local_command);
  CHECK(r.header.unique_id == "id-1");
}

TEST_CASE("proxy: haproxy's v2 capture with CRC32C and UNIQUE_ID", "[proxy]") {
  const bytes h = haproxy_capture();
  // 12 address bytes + 7 for the CRC32C TLV + 3 + 41 for UNIQUE_ID = 63 = 0x3f.
  REQUIRE(h.size() == 16 + 0x3f);
  REQUIRE(0x3f == 12 + 7 + 3 + 41);
  bytes zeroed = h;
  std::fill(zeroed.begin() + 31, zeroed.begin() + 35, 0);
  CHECK(crc32c(zeroed) == 0xea7d99b2);
  CHECK(crc32c(ascii("123456789")) == 0xe3069283);

  auto r = parse(h + ascii("client data"));
  REQUIRE(r.status == proxy_parse_status::complete);
  CHECK(r.header.length == 79);
  CHECK(host(r.header.source) == "127.0.0.1");
  CHECK(port(r.header.source) == 0xccc6);
  CHECK(host(r.header.destination) == "127.0.0.1");
  CHECK(port(r.header.destination) == 0xb7fe);
  CHECK(r.header.unique_id == "7F000001:CCC6_7F000001:B7FE_6B0CCBC9_0004");
  CHECK(r.header.other.empty());
  CHECK(prefix_story(h).empty());

  // A byte changed in an address, a port, the checksum or the unique ID: the framing
  // survives, the checksum does not.
  for (std::size_t at : {std::size_t{17}, std::size_t{26}, std::size_t{33}, std::size_t{40}, h.size() - 1}) {
    bytes flipped = h;
    flipped[at] ^= 0x01;
    r = parse(flipped);
    INFO("byte " << at);
    CHECK(r.status == proxy_parse_status::invalid);
    CHECK(r.error == "PROXY v2: CRC32C mismatch");
  }
}

TEST_CASE("proxy: v2 TLVs ALPN, AUTHORITY and SSL decoded field by field", "[proxy]") {
  const bytes h = ssl_header();
  auto r = parse(h);
  REQUIRE(r.status == proxy_parse_status::complete);
  CHECK(r.header.length == h.size());
  CHECK(host(r.header.source) == "203.0.113.7");
  CHECK(r.header.alpn == "echo/1");
  CHECK(r.header.authority == "example.test");
  CHECK(r.header.unique_id.empty());
  REQUIRE(r.header.ssl);
  const auto& ssl = *r.header.ssl;
  CHECK(ssl.client == (proxy_ssl_info::client_ssl | proxy_ssl_info::client_cert_conn | proxy_ssl_info::client_cert_sess));
  CHECK(ssl.verify == 0);
  CHECK(ssl.version == "TLSv1.3");
  CHECK(ssl.cn == "testclient");
  CHECK(ssl.cipher == "TLS_AES_256_GCM_SHA384");
  CHECK(ssl.sig_alg == "RSA-SHA256");
  CHECK(ssl.key_alg == "RSA2048");
  CHECK(ssl.other.empty());
  // NOOP is dropped; an application's own type is kept as it came.
  REQUIRE(r.header.other.size() == 1);
  CHECK(r.header.other[0].type == 0xe0);
  CHECK(r.header.other[0].value == std::string("\x01\x02\x03", 3));
  CHECK(prefix_story(h).empty());

  // hitch's shape: no certificate (verify non-zero), only VERSION and CIPHER, an unknown sub-TLV.
  const bytes hitch_ssl = bytes{0x01, 0, 0, 0, 1} + tlv(0x21, "TLSv1.2") + tlv(0x23, "ECDHE-RSA-AES128-GCM-SHA256") +
                          tlv(0x2f, "z");
  r = parse(v2(0x21, 0x11, tcp4_block + tlv(0x02, "hitch.test") + tlv(0x20, hitch_ssl)));
  REQUIRE(r.status == proxy_parse_status::complete);
  REQUIRE(r.header.ssl);
  CHECK(r.header.ssl->client == proxy_ssl_info::client_ssl);
  CHECK(r.header.ssl->verify == 1);
  CHECK(r.header.ssl->version == "TLSv1.2");
  CHECK(r.header.ssl->cipher == "ECDHE-RSA-AES128-GCM-SHA256");
  CHECK(r.header.ssl->cn.empty());
  REQUIRE(r.header.ssl->other.size() == 1);
  CHECK(r.header.ssl->other[0].type == 0x2f);
}

TEST_CASE("proxy: v2 headers that break the spec are refused, with a reason", "[proxy]") {
  struct bad_header {
    bytes header;
    std::string error;
  };
  bytes wrong_signature = v2(0x21, 0x11, tcp4_block);
  wrong_signature[6] = 'X';
  for (const auto& [header, error] : std::vector<bad_header>{
           {wrong_signature, "PROXY v2: bad signature"},
           {v2(0x11, 0x11, tcp4_block), "PROXY v2: version 1, not 2"},
           {v2(0x22, 0x11, tcp4_block), "PROXY v2: unknown command 2"},
           {v2(0x21, 0x41, tcp4_block), "PROXY v2: unknown address family/transport 0x41"},
           {v2(0x21, 0x13, tcp4_block), "PROXY v2: unknown address family/transport 0x13"},
           {v2(0x21, 0x12, tcp4_block), "PROXY v2: unsupported transport (UDP or UNIX; only TCP is served)"},
           {v2(0x21, 0x22, bytes(36, 0)), "PROXY v2: unsupported transport (UDP or UNIX; only TCP is served)"},
           {v2(0x21, 0x31, bytes(216, 0)), "PROXY v2: unsupported transport (UDP or UNIX; only TCP is served)"},
           {v2(0x21, 0x11, bytes(11, 0)), "PROXY v2: length too short for the addresses"},
           {v2(0x21, 0x21, tcp4_block), "PROXY v2: length too short for the addresses"},
           {v2(0x21, 0x11, tcp4_block + bytes{0x01, 0x00}), "PROXY v2: TLV header runs past the end"},
           {v2(0x21, 0x11, tcp4_block + bytes{0x01, 0x00, 0x05, 'a'}), "PROXY v2: TLV 0x01 runs past the end"},
           {v2(0x21, 0x11, tcp4_block + tlv(0x20, bytes{1, 0, 0, 0, 0, 0x22, 0, 9, 'a'})),
            "PROXY v2: SSL sub-TLV 0x22 runs past the end"},
           {v2(0x21, 0x11, tcp4_block + tlv(0x20, bytes{1, 0, 0, 0})), "PROXY v2: SSL TLV shorter than 5 bytes"},
           {v2(0x21, 0x11, tcp4_block + tlv(0x03, bytes{1, 2, 3})), "PROXY v2: CRC32C TLV is not 4 bytes"},
           {v2(0x21, 0x11, tcp4_block + tlv(0x05, std::string(129, 'u'))), "PROXY v2: UNIQUE_ID longer than 128 bytes"},
           {v2(0x21, 0x11, tcp4_block + tlv(0x01, "h2") + tlv(0x01, "h2")), "PROXY v2: more than one TLV 0x01"},
           {v2(0x21, 0x11, tcp4_block + tlv(0x20, bytes{1, 0, 0, 0, 0} + tlv(0x22, "a") + tlv(0x22, "b"))),
            "PROXY v2: more than one SSL sub-TLV 0x22"},
           {v2(0x21, 0x11, tcp4_block + tlv(0x03, bytes{0, 0, 0, 0})), "PROXY v2: CRC32C mismatch"},
       }) {
    INFO(error);
    auto r = parse(header);
    CHECK(r.status == proxy_parse_status::invalid);
    CHECK(r.error == error);
    CHECK(prefix_story(header).empty());
  }
  // Over the cap: refused from the 16 fixed bytes alone.
  const bytes big = v2(0x21, 0x11, tcp4_block + tlv(0x04, bytes(100, 0)));
  auto r = parse(bytes(big.begin(), big.begin() + 16), 100);
  REQUIRE(r.status == proxy_parse_status::invalid);
  CHECK(r.error == "PROXY v2: header of 131 bytes, over the 100-byte limit");
  CHECK(parse(big, 131).status == proxy_parse_status::complete);
  // Repeated NOOPs and unknown types are fine.
  CHECK(parse(v2(0x21, 0x11, tcp4_block + tlv(0x04, "") + tlv(0x04, "") + tlv(0xf0, "") + tlv(0xf0, ""))).status ==
        proxy_parse_status::complete);
}

TEST_CASE("proxy: v2 is refused as soon as the bytes show it, and waited for whole otherwise", "[proxy]") {
  CHECK(refused_after(v2(0x21, 0x11, tcp4_block) + bytes{}) == 0);
  CHECK(refused_after(unhex("0d0a0d0a0a")) == 5);
  CHECK(refused_after(v2(0x11, 0x11, tcp4_block)) == 13);
  CHECK(refused_after(v2(0x21, 0x41, tcp4_block)) == 14);
  CHECK(refused_after(v2(0x21, 0x12, tcp4_block)) == 14);
  // A TLV running past the end is refused once its own 3-byte header is in, the bad SSL
  // sub-TLV likewise, before the rest of the header arrives.
  const bytes overrun = v2(0x21, 0x11, tcp4_block + bytes{0x01, 0x00, 0x40} + bytes(10, 'a'));
  CHECK(refused_after(overrun) == 28 + 3);
  const bytes sub_overrun = v2(0x21, 0x11, tcp4_block + tlv(0x20, bytes{1, 0, 0, 0, 0, 0x21, 0, 99} + bytes(20, 'v')));
  CHECK(refused_after(sub_overrun) == 28 + 3 + 5 + 3);
  // Before 16 bytes, 16; after, 16 + the declared length.
  const bytes h = ssl_header();
  CHECK(parse(bytes(h.begin(), h.begin() + 1)).want == 16);
  CHECK(parse(bytes(h.begin(), h.begin() + 15)).want == 16);
  CHECK(parse(bytes(h.begin(), h.begin() + 16)).want == h.size());
  CHECK(parse(bytes(h.begin(), h.end() - 1)).want == h.size());
}

// ---- robustness -------------------------------------------------------------------------

TEST_CASE("proxy: every prefix and every one-byte change of valid headers parses sanely", "[proxy]") {
  const std::vector<bytes> valid{
      ascii("PROXY TCP4 127.0.0.1 127.0.0.1 33302 47101\r\n"),
      ascii("PROXY TCP6 2001:db8::7 ::ffff:192.0.2.1 1 65535\r\n"),
      ascii("PROXY UNKNOWN ::1 ::1 1 2\r\n"),
      unhex("0d0a0d0a000d0a515549540a20000000"),
      haproxy_capture(),
      ssl_header(),
  };
  const unsigned char interesting[] = {0x00, 0x01, 0xff, 0x7f, 0x80, ' ', '\r', '\n', '0', '9', ':', '.', 'f', 0x20, 0x21};
  std::size_t parsed = 0, expected = 0;
  for (const auto& original : valid) {
    expected += 256 * original.size();
    const bytes b = original + ascii("trailing client bytes");
    REQUIRE(parse(b).status == proxy_parse_status::complete);
    CHECK(prefix_story(b).empty());
    for (std::size_t at = 0; at < original.size(); ++at) {
      // Every value in every position, whole: the parser's answer must be well formed.
      for (unsigned v = 0; v < 256; ++v) {
        bytes m = b;
        m[at] = static_cast<unsigned char>(v);
        const auto r = parse(m);
        ++parsed;
        bool ok = true;
        if (r.status == proxy_parse_status::complete) ok = r.header.length >= 15 && r.header.length <= m.size();
        if (r.status == proxy_parse_status::need_more) ok = r.want > m.size() && r.want <= 4096;
        if (r.status == proxy_parse_status::invalid) ok = !r.error.empty();
        if (!ok) {
          INFO("byte " << at << " set to " << v);
          REQUIRE(ok);
        }
      }
      // Some values in every position, a byte at a time: one decision that then stands.
      for (unsigned char v : interesting) {
        bytes m = b;
        m[at] = v;
        const auto story = prefix_story(m);
        if (!story.empty()) {
          INFO("byte " << at << " set to " << unsigned{v} << ": " << story);
          REQUIRE(story.empty());
        }
      }
    }
  }
  CHECK(parsed == expected);
}
