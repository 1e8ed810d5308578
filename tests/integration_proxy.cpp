// Integration tests: the PROXY protocol — v1 and v2 headers made by hand and by HAProxy, the
// real client in the log, the rules and an exec child, and headers that are bad, slow or
// from a peer that is not trusted.
#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <thread>

#include "support/test_support.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

// ---- Headers by hand ----

std::string v1(const std::string& source, const std::string& destination, int source_port, int destination_port) {
  const std::string family = source.find(':') == std::string::npos ? "TCP4" : "TCP6";
  return "PROXY " + family + " " + source + " " + destination + " " + std::to_string(source_port) + " " +
         std::to_string(destination_port) + "\r\n";
}

std::string be16(std::size_t n) { return {static_cast<char>((n >> 8) & 0xff), static_cast<char>(n & 0xff)}; }

std::string tlv(std::uint8_t type, const std::string& value) {
  return std::string(1, static_cast<char>(type)) + be16(value.size()) + value;
}

std::string v2_signature() { return std::string("\r\n\r\n\0\r\nQUIT\n", 12); }

std::string v2(std::uint8_t version_command, std::uint8_t family, const std::string& body) {
  return v2_signature() + static_cast<char>(version_command) + static_cast<char>(family) + be16(body.size()) + body;
}

std::string address_bytes(const std::string& text) {
  unsigned char out[16];
  const bool six = text.find(':') != std::string::npos;
  REQUIRE(::inet_pton(six ? AF_INET6 : AF_INET, text.c_str(), out) == 1);
  return std::string(reinterpret_cast<const char*>(out), six ? 16 : 4);
}

// A v2 PROXY header over TCP (family from the address), TLVs after the addresses.
std::string v2_proxy(const std::string& source, const std::string& destination, int source_port,
                     int destination_port, const std::string& tlvs = {}) {
  const bool six = source.find(':') != std::string::npos;
  return v2(0x21, six ? 0x21 : 0x11,
            address_bytes(source) + address_bytes(destination) + be16(static_cast<std::size_t>(source_port)) +
                be16(static_cast<std::size_t>(destination_port)) + tlvs);
}

// What HAProxy's health checks send: v2 LOCAL, family UNSPEC, no body.
std::string v2_local() { return v2(0x20, 0x00, {}); }

// ---- Servers and clients ----

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A server that trusts `trusted` to send headers, with a json connection log on stderr.
server_process proxied(const std::vector<std::string>& args, const std::string& trusted = "127.0.0.1") {
  return start_server(concat({"--proxy-protocol", "--proxy-from", trusted, "-v", "--log-format", "json"}, args));
}

// Sends everything in one write, half-closes, and returns all that came back.
read_result send_whole(client& c, const std::string& bytes) {
  REQUIRE(c.send_all(bytes));
  c.shutdown_write();
  return c.read_all(5s);
}

// A client with a header naming 198.51.100.1 gets exactly its bytes back: the server still serves.
bool served(std::uint16_t port, const std::string& source = {}) {
  auto c = client::connect_from(source, port);
  if (!c) return false;
  const std::string payload = "fresh\n";
  if (!c->send_all(v1("198.51.100.1", "192.0.2.1", 40000, 80) + payload)) return false;
  c->shutdown_write();
  return c->read_all(5s).data == payload;
}

// The json log records on the server's stderr so far.
std::vector<json_object> records(child_process& p) {
  p.pump(0ms);
  std::vector<json_object> out;
  for (const auto& line : split_lines(p.err()))
    if (auto o = parse_json_line(line)) out.push_back(*o);
  return out;
}

// Waits for a record with every field given (strings and numbers compared as text).
std::optional<json_object> record_with(child_process& p, const std::map<std::string, std::string>& fields,
                                       milliseconds timeout = 5s) {
  std::optional<json_object> found;
  auto matches = [&](const json_object& o) {
    for (const auto& [key, want] : fields) {
      if (auto s = o.string(key)) {
        if (*s != want) return false;
      } else if (auto n = o.number(key)) {
        if (std::to_string(static_cast<long long>(*n)) != want) return false;
      } else {
        return false;
      }
    }
    return true;
  };
  wait_until(
      [&] {
        for (const auto& o : records(p))
          if (matches(o)) found = o;
        return found.has_value();
      },
      timeout);
  return found;
}

std::map<std::string, std::string> parse_env(const std::string& text) {
  std::map<std::string, std::string> env;
  for (const auto& line : split_lines(text)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

std::uint16_t announced_port(child_process& p) {
  auto line = p.stdout_line(10s);
  if (!line) FAIL("no port announced: " << p.err());
  return static_cast<std::uint16_t>(std::stoul(*line));
}

// A port nothing listens on right now, for a program that takes its port from a file.
std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

TEST_CASE("proxy: a v1 header names the client, and the handler gets exactly the bytes after it", "[proxy]") {
  auto s = proxied({});
  auto c = client::connect_or_throw(s.port);
  const std::string payload = "hello through the balancer\n";
  auto r = send_whole(c, v1("203.0.113.7", "192.0.2.1", 51234, 80) + payload);
  CHECK(r.data == payload);
  CHECK(r.eof);
  const std::string proxy_port = std::to_string(c.local_port());
  auto open = record_with(s.proc, {{"event", "open"}, {"peer_address", "203.0.113.7"}, {"peer_port", "51234"}});
  REQUIRE(open);
  CHECK(open->string("local_address") == "192.0.2.1");
  CHECK(open->number("local_port") == 80);
  CHECK(open->string("proxy_address") == "127.0.0.1");
  CHECK(open->number("proxy_port") == c.local_port());
  // The header is not the client's data: bytes_in counts the payload only.
  auto close = record_with(s.proc, {{"event", "close"}, {"peer_address", "203.0.113.7"}});
  REQUIRE(close);
  CHECK(close->number("bytes_in") == static_cast<double>(payload.size()));
  CHECK(close->number("bytes_out") == static_cast<double>(payload.size()));
}

TEST_CASE("proxy: the text log shows the client, then the proxy after 'via'", "[proxy][log]") {
  auto s = start_server({"--proxy-protocol", "--proxy-from", "127.0.0.1", "-v"});
  auto c = client::connect_or_throw(s.port);
  CHECK(send_whole(c, v1("203.0.113.7", "192.0.2.1", 51234, 80) + "x").data == "x");
  CHECK(s.proc.wait_for_stderr("#1 open 203.0.113.7:51234 -> 192.0.2.1:80 via 127.0.0.1:" +
                                   std::to_string(c.local_port()),
                               5s));
}

TEST_CASE("proxy: v2 headers name the client, over IPv4 and IPv6", "[proxy]") {
  auto s = proxied({});
  {
    auto c = client::connect_or_throw(s.port);
    CHECK(send_whole(c, v2_proxy("203.0.113.8", "192.0.2.1", 40001, 443) + "four").data == "four");
    auto open = record_with(s.proc, {{"event", "open"}, {"peer_address", "203.0.113.8"}, {"peer_port", "40001"}});
    REQUIRE(open);
    CHECK(open->string("local_address") == "192.0.2.1");
    CHECK(open->number("local_port") == 443);
  }
  {
    auto c = client::connect_or_throw(s.port);
    CHECK(send_whole(c, v2_proxy("2001:db8::8", "2001:db8::1", 40002, 443) + "six").data == "six");
    auto open = record_with(s.proc, {{"event", "open"}, {"peer_address", "2001:db8::8"}, {"peer_port", "40002"}});
    REQUIRE(open);
    CHECK(open->string("local_address") == "2001:db8::1");
  }
}

TEST_CASE("proxy: a v2 header of up to 4096 bytes is read whole, also when it comes in pieces", "[proxy]") {
  auto s = proxied({});
  // NOOP padding makes the whole header exactly the 4096-byte cap: 16 + 12 + 3 + 4065.
  const std::string header = v2_proxy("203.0.113.9", "192.0.2.1", 40009, 80, tlv(0x04, std::string(4065, 'p')));
  REQUIRE(header.size() == 4096);
  {
    auto c = client::connect_or_throw(s.port);
    CHECK(send_whole(c, header + "whole").data == "whole");
  }
  {
    auto c = client::connect_or_throw(s.port);
    REQUIRE(c.send_all(header.substr(0, 100)));
    std::this_thread::sleep_for(100ms);
    REQUIRE(c.send_all(header.substr(100, 2000)));
    std::this_thread::sleep_for(100ms);
    CHECK(send_whole(c, header.substr(2100) + "pieces").data == "pieces");
  }
  CHECK(record_with(s.proc, {{"event", "close"}, {"peer_address", "203.0.113.9"}, {"bytes_in", "6"}}));
}

TEST_CASE("proxy: a v2 LOCAL header (a health check) and v1 UNKNOWN are served as the balancer itself",
          "[proxy]") {
  auto s = proxied({});
  for (const std::string& header : {v2_local(), std::string("PROXY UNKNOWN ignored to the end\r\n")}) {
    auto c = client::connect_or_throw(s.port);
    CHECK(send_whole(c, header + "ping").data == "ping");
    const std::string port = std::to_string(c.local_port());
    auto open = record_with(s.proc, {{"event", "open"}, {"peer_address", "127.0.0.1"}, {"peer_port", port}});
    REQUIRE(open);
    CHECK(open->number("local_port") == s.port);
    CHECK(open->number("proxy_port") == c.local_port());
  }
}

TEST_CASE("proxy: an exec child sees the client, then exactly the bytes after the header", "[proxy][exec]") {
  const std::string script =
      R"(printf "%s %s %s %s %s %s %s|" "$TCPREMOTEIP" "$TCPREMOTEPORT" "$TCPLOCALIP" "$TCPLOCALPORT" )"
      R"("$PROXYREMOTEIP" "$PROXYREMOTEPORT" "$PROXY_VERSION"; cat)";
  for (bool create_stream : {false, true}) {
    INFO("create-stream: " << create_stream);
    auto args = create_stream ? std::vector<std::string>{"--create-stream"} : std::vector<std::string>{};
    auto s = proxied(concat(args, {"--sh-exec", script}));
    for (const std::string& header : {v1("203.0.113.7", "192.0.2.1", 51234, 80),
                                      v2_proxy("203.0.113.7", "192.0.2.1", 51234, 80)}) {
      const int version = header[0] == 'P' ? 1 : 2;
      INFO("v" << version);
      auto c = client::connect_or_throw(s.port);
      // Header and payload in one write: the child must get the payload, and only it.
      const std::string payload = "first bytes\r\nPROXY is just a word here\n";
      auto r = send_whole(c, header + payload);
      CHECK(r.data == "203.0.113.7 51234 192.0.2.1 80 127.0.0.1 " + std::to_string(c.local_port()) + " " +
                          std::to_string(version) + "|" + payload);
    }
  }
}

TEST_CASE("proxy: v2 TLVs reach an exec child, but never the server's own values or unfit ones",
          "[proxy][exec][tlv]") {
  child_process p({binary_path(), "-a", "127.0.0.1", "-s", "0", "--announce", "--announce-format={port}",
                   "--proxy-protocol", "--proxy-from", "127.0.0.1", "--sh-exec", "env"},
                  {{}, {"PROXY_ALPN=from-the-server", "SSL_CIPHER=from-the-server", "PROXYREMOTEIP=192.0.2.99"}});
  const std::uint16_t port = announced_port(p);
  auto env_for = [&](const std::string& header) {
    auto c = client::connect_or_throw(port);
    return parse_env(send_whole(c, header).data);
  };
  auto ssl = [](std::uint8_t client, std::uint32_t verify, const std::string& subs) {
    std::string value(1, static_cast<char>(client));
    for (int shift = 24; shift >= 0; shift -= 8) value.push_back(static_cast<char>((verify >> shift) & 0xff));
    return tlv(0x20, value + subs);
  };
  {
    const std::string tlvs = tlv(0x01, "h2") + tlv(0x02, "example.test") + tlv(0x05, std::string("\x01\x02" "ab", 4)) +
                             tlv(0x04, "noop") +
                             ssl(0x07, 0, tlv(0x21, "TLSv1.3") + tlv(0x22, "testclient") +
                                              tlv(0x23, "TLS_AES_256_GCM_SHA384"));
    auto env = env_for(v2_proxy("203.0.113.7", "192.0.2.1", 51234, 443, tlvs));
    CHECK(env["TCPREMOTEIP"] == "203.0.113.7");
    CHECK(env["PROXYREMOTEIP"] == "127.0.0.1");
    CHECK(env["PROXY_VERSION"] == "2");
    CHECK(env["PROXY_COMMAND"] == "PROXY");
    CHECK(env["PROXY_ALPN"] == "h2");
    CHECK(env["PROXY_AUTHORITY"] == "example.test");
    CHECK(env["PROXY_UNIQUE_ID"] == "01026162");  // opaque bytes with control characters: hex
    CHECK(env["SSL_PROTOCOL"] == "TLSv1.3");
    CHECK(env["SSL_CIPHER"] == "TLS_AES_256_GCM_SHA384");
    CHECK(env["SSL_PEER_CERT_CN"] == "testclient");
  }
  {
    // A certificate the proxy did not verify names nobody; a value with a newline is left out.
    const std::string tlvs = tlv(0x02, "bad\nname") + tlv(0x05, "req-42") +
                             ssl(0x03, 1, tlv(0x21, "TLSv1.2") + tlv(0x22, "someone"));
    auto env = env_for(v2_proxy("203.0.113.7", "192.0.2.1", 51234, 443, tlvs));
    CHECK(env.count("PROXY_AUTHORITY") == 0);
    CHECK(env["PROXY_UNIQUE_ID"] == "req-42");
    CHECK(env["SSL_PROTOCOL"] == "TLSv1.2");
    CHECK(env.count("SSL_PEER_CERT_CN") == 0);
    CHECK(env.count("PROXY_ALPN") == 0);
    CHECK(env.count("SSL_CIPHER") == 0);
  }
  {
    auto env = env_for(v1("203.0.113.7", "192.0.2.1", 51234, 80));
    CHECK(env["PROXY_VERSION"] == "1");
    CHECK(env["PROXY_COMMAND"] == "PROXY");
    CHECK(env["PROXYREMOTEIP"] == "127.0.0.1");
    for (const char* name : {"PROXY_ALPN", "PROXY_AUTHORITY", "PROXY_UNIQUE_ID", "SSL_PROTOCOL", "SSL_CIPHER"}) {
      INFO(name);
      CHECK(env.count(name) == 0);
    }
  }
  {
    auto c = client::connect_or_throw(port);
    auto env = parse_env(send_whole(c, v2_local()).data);
    CHECK(env["PROXY_COMMAND"] == "LOCAL");
    CHECK(env["TCPREMOTEIP"] == "127.0.0.1");
    CHECK(env["TCPREMOTEPORT"] == std::to_string(c.local_port()));
    CHECK(env["PROXYREMOTEPORT"] == std::to_string(c.local_port()));
  }
}

TEST_CASE("proxy: --deny and --allow judge the client the header names", "[proxy][access]") {
  auto s = proxied({"--deny", "203.0.113.0/24"});
  {
    auto c = client::connect_or_throw(s.port);
    auto r = send_whole(c, v1("203.0.113.9", "192.0.2.1", 1234, 80) + "let me in\n");
    CHECK(r.data.empty());
    auto refused = record_with(s.proc, {{"event", "refused"}, {"peer_address", "203.0.113.9"}});
    REQUIRE(refused);
    CHECK(refused->string("reason") == "denied");
    CHECK(refused->string("proxy_address") == "127.0.0.1");
  }
  CHECK(served(s.port));  // 198.51.100.1, over the same TCP peer 127.0.0.1
  auto allowed = proxied({"--allow", "198.51.100.0/24"});
  CHECK(served(allowed.port));
  auto c = client::connect_or_throw(allowed.port);
  CHECK(send_whole(c, v1("192.0.2.50", "192.0.2.1", 1, 80) + "x").data.empty());
  CHECK(record_with(allowed.proc, {{"event", "refused"}, {"peer_address", "192.0.2.50"}, {"reason", "denied"}}));
}

TEST_CASE("proxy: --max-per-ip counts the clients the headers name, not the balancer", "[proxy][limits]") {
  auto s = proxied({"--max-per-ip", "1"});
  auto held = client::connect_or_throw(s.port);
  REQUIRE(held.send_all(v1("198.51.100.7", "192.0.2.1", 1000, 80)));
  REQUIRE(held.exchange("held\n", 5, false).data == "held\n");
  {
    auto extra = client::connect_or_throw(s.port);
    CHECK(send_whole(extra, v1("198.51.100.7", "192.0.2.1", 1001, 80) + "extra\n").data.empty());
    CHECK(record_with(s.proc,
                      {{"event", "refused"}, {"peer_address", "198.51.100.7"}, {"reason", "refused: max-per-ip"}}));
  }
  // Another client behind the same balancer is not counted with the first.
  auto other = client::connect_or_throw(s.port);
  CHECK(send_whole(other, v1("198.51.100.8", "192.0.2.1", 1002, 80) + "other\n").data == "other\n");
  held.close();
  CHECK(wait_until(
      [&] {
        auto again = client::connect_or_throw(s.port);
        return send_whole(again, v1("198.51.100.7", "192.0.2.1", 1003, 80) + "back\n").data == "back\n";
      },
      5s, 50ms));
}

TEST_CASE("proxy: a peer outside --proxy-from is refused and logged, and a trusted one is served",
          "[proxy][access]") {
  auto s = proxied({}, "127.0.0.2");
  auto c = client::connect_or_throw(s.port);  // from 127.0.0.1
  CHECK(send_whole(c, v1("203.0.113.7", "192.0.2.1", 51234, 80) + "spoofed\n").data.empty());
  auto refused = record_with(s.proc, {{"event", "refused"}, {"reason", "refused: not a trusted proxy"}});
  REQUIRE(refused);
  CHECK(refused->string("peer_address") == "127.0.0.1");  // who connected, not what it claimed
  CHECK_FALSE(refused->has("proxy_address"));
  CHECK(served(s.port, "127.0.0.2"));
}

TEST_CASE("proxy: an IPv4 proxy on a dual-stack socket matches an IPv4 --proxy-from", "[proxy][access][ipv6]") {
  child_process p({binary_path(), "-a", "::ffff:127.0.0.1", "--ipv6", "both", "-s", "0", "--announce",
                   "--announce-format={port}", "--proxy-protocol", "--proxy-from", "127.0.0.1/32"});
  auto line = p.stdout_line(5s);
  if (!line) {
    WARN("cannot bind ::ffff:127.0.0.1 here: " << p.err());
    return;
  }
  CHECK(served(static_cast<std::uint16_t>(std::stoul(*line))));
}

TEST_CASE("proxy: malformed headers are refused and logged, and the server goes on serving", "[proxy][errors]") {
  auto s = proxied({});
  struct bad {
    std::string bytes;
    std::string reason;  // how the refused record's reason starts
  };
  const std::vector<bad> cases = {
      {"GET / HTTP/1.0\r\n\r\n", "refused: not a PROXY header"},
      {"PROXY TCP4 203.0.113.256 192.0.2.1 1 80\r\nx", "refused: PROXY v1: bad"},
      {"PROXY TCP4 203.0.113.7 192.0.2.1 51234 80\nx", "refused: PROXY v1: LF without CR"},
      {"PROXY TCP6 203.0.113.7 192.0.2.1 51234 80\r\nx", "refused: PROXY v1: bad"},
      {"PROXY UNKNOWN " + std::string(120, 'a') + "\r\n", "refused: PROXY v1: no CRLF within 107 bytes"},
      {v2(0x31, 0x11, std::string(12, '\0')), "refused: PROXY v2: version 3, not 2"},
      {v2(0x22, 0x11, std::string(12, '\0')), "refused: PROXY v2: unknown command"},
      {v2_signature() + "\x21\x11" + be16(5000) + std::string(100, '\0'), "refused: PROXY v2: header of 5016 bytes"},
      {std::string("\r\n\r\n\0\r\nQUIZ\n\x21\x11", 14), "refused: PROXY v2: bad signature"},
  };
  for (const auto& b : cases) {
    INFO(b.reason);
    const std::size_t before = records(s.proc).size();
    auto c = client::connect_or_throw(s.port);
    CHECK(send_whole(c, b.bytes).data.empty());
    bool logged = wait_until(
        [&] {
          const auto all = records(s.proc);
          for (std::size_t i = before; i < all.size(); ++i)
            if (all[i].string("event") == "refused" && all[i].string("reason").value_or("").rfind(b.reason, 0) == 0)
              return true;
          return false;
        },
        5s);
    CHECK(logged);
    CHECK(served(s.port));
  }
  CHECK(s.proc.running());
}

TEST_CASE("proxy: a header that arrives slowly is served, and nobody waits for it", "[proxy][timing]") {
  auto s = proxied({});
  // One byte every 100 ms: 1.6 s for HAProxy's health check header.
  auto slow = client::connect_or_throw(s.port);
  const std::string header = v2_local();
  for (std::size_t i = 0; i < header.size(); ++i) {
    REQUIRE(slow.send_all(header.substr(i, 1)));
    if (i == header.size() / 2) CHECK(served(s.port));  // meanwhile, others are served at once
    std::this_thread::sleep_for(100ms);
  }
  CHECK(slow.exchange("slow\n", 5, false).data == "slow\n");
  // A v1 line in four pieces.
  auto pieces = client::connect_or_throw(s.port);
  const std::string line = v1("203.0.113.7", "192.0.2.1", 51234, 80);
  for (std::size_t at = 0; at < line.size(); at += 12) {
    REQUIRE(pieces.send_all(line.substr(at, 12)));
    std::this_thread::sleep_for(100ms);
  }
  CHECK(pieces.exchange("pieces\n", 7, false).data == "pieces\n");
  CHECK(record_with(s.proc, {{"event", "open"}, {"peer_address", "203.0.113.7"}}));
}

TEST_CASE("proxy: a header not whole by --proxy-timeout is refused then, not before", "[proxy][timing]") {
  auto s = proxied({"--proxy-timeout", "1"});
  const auto start = steady::now();
  auto partial = client::connect_or_throw(s.port);
  REQUIRE(partial.send_all("PROXY TCP4 203.0."));
  auto silent = client::connect_or_throw(s.port);  // connects and sends nothing
  CHECK(served(s.port));                           // served while those two wait
  auto r = partial.read_all(5s);
  const auto waited = steady::now() - start;
  CHECK(r.data.empty());
  CHECK_FALSE(r.timed_out);
  CHECK(waited >= 900ms);
  CHECK(waited < 3s);
  CHECK_FALSE(silent.read_all(5s).timed_out);
  CHECK(wait_until(
      [&] {
        std::size_t n = 0;
        for (const auto& o : records(s.proc)) n += o.string("reason") == "refused: PROXY header: timed out";
        return n == 2;
      },
      5s));
  CHECK(served(s.port));
}

TEST_CASE("proxy: a client that closes in the middle of its header is refused at once", "[proxy][timing]") {
  auto s = proxied({});
  const auto start = steady::now();
  auto c = client::connect_or_throw(s.port);
  auto r = send_whole(c, "PROXY TCP4 203.0.113.7 192.0.2.1 51234");
  CHECK(r.data.empty());
  CHECK(steady::now() - start < 2s);  // well before the 5-second deadline
  CHECK(record_with(s.proc, {{"event", "refused"}, {"reason", "refused: PROXY header: the client closed first"}}));
  CHECK(served(s.port));
}

TEST_CASE("proxy: --stdio behind a proxy gets the bytes after the header", "[proxy][stdio]") {
  child_process p({binary_path(), "-a", "127.0.0.1", "-s", "0", "--announce", "--announce-format={port}", "--stdio",
                   "--once", "--proxy-protocol", "--proxy-from", "127.0.0.1"});
  const std::uint16_t port = announced_port(p);
  auto c = client::connect_or_throw(port);
  REQUIRE(c.send_all(v1("203.0.113.7", "192.0.2.1", 51234, 80) + "to the terminal\n"));
  CHECK(p.wait_for_stdout("to the terminal\n", 5s));
  c.close();
  CHECK(p.wait_exit(5s) == 0);
  CHECK(p.out().find("PROXY") == std::string::npos);
}

// ---- A real sender: HAProxy from Debian, when it is installed ----

namespace {

const char* const haproxy_binary = "/usr/sbin/haproxy";

// The example configuration shipped in docs/haproxy, pointed at the test's ports, and run.
struct haproxy_run {
  temp_dir dir;
  std::uint16_t front = free_port();
  std::optional<child_process> proc;

  haproxy_run(std::uint16_t s1, std::uint16_t s2, const std::string& send_proxy) {
    auto cfg = read_file(std::string(STARTUP_SERVER_SOURCE_DIR) + "/docs/haproxy/haproxy.cfg");
    REQUIRE(cfg);
    auto replace = [&](const std::string& from, const std::string& to) {
      const auto at = cfg->find(from);
      REQUIRE(at != std::string::npos);
      cfg->replace(at, from.size(), to);
    };
    replace("bind 127.0.0.1:8000", "bind 127.0.0.1:" + std::to_string(front));
    replace("127.0.0.1:7001 send-proxy-v2", "127.0.0.1:" + std::to_string(s1) + " " + send_proxy);
    replace("127.0.0.1:7002 send-proxy-v2", "127.0.0.1:" + std::to_string(s2) + " " + send_proxy);
    for (int i = 0; i < 2; ++i) replace("inter 1s", "inter 200ms");
    std::ofstream(dir.file("haproxy.cfg")) << *cfg;
    proc.emplace(std::vector<std::string>{haproxy_binary, "-f", dir.file("haproxy.cfg"), "-db"});
    const bool listening = wait_until([&] { return connect_status(front) == 0; }, 10s, 50ms);
    if (!listening) proc->pump(100ms);
    INFO("haproxy: " << proc->err());
    REQUIRE(listening);
  }
};

// Connects through HAProxy and checks the echo; returns the client's own port (or 0).
std::uint16_t through(std::uint16_t front, const std::string& text) {
  auto c = client::connect(front);
  if (!c) return 0;
  const auto r = c->exchange(text, text.size(), true, 5s);
  return r.data == text ? c->local_port() : 0;
}

}  // namespace

TEST_CASE("proxy: behind HAProxy (send-proxy, send-proxy-v2) the log shows the client HAProxy saw",
          "[proxy][haproxy]") {
  if (::access(haproxy_binary, X_OK) != 0) {
    WARN("HAProxy is not installed (apt-get install haproxy): the tests with a real sender are skipped");
    return;
  }
  for (const std::string mode : {"send-proxy", "send-proxy-v2"}) {
    INFO(mode);
    auto s1 = proxied({});
    auto s2 = proxied({});
    haproxy_run h(s1.port, s2.port, mode);
    for (int i = 0; i < 4; ++i) {
      const std::uint16_t client_port = through(h.front, "through haproxy " + std::to_string(i) + "\n");
      REQUIRE(client_port != 0);
      // One of the two logged it, with the client's own port and HAProxy's connection as the proxy.
      const std::map<std::string, std::string> want = {
          {"event", "open"}, {"peer_address", "127.0.0.1"}, {"peer_port", std::to_string(client_port)}};
      auto open = record_with(s1.proc, want, 200ms);
      if (!open) open = record_with(s2.proc, want, 5s);
      REQUIRE(open);
      CHECK(open->string("local_address") == "127.0.0.1");
      CHECK(open->number("local_port") == h.front);
      CHECK(open->string("proxy_address") == "127.0.0.1");
      CHECK(open->number("proxy_port") != client_port);
    }
  }
}

TEST_CASE("proxy: HAProxy's health checks are served, and when SIGTERM drains one server the other takes all",
          "[proxy][haproxy]") {
  if (::access(haproxy_binary, X_OK) != 0) {
    WARN("HAProxy is not installed (apt-get install haproxy): the tests with a real sender are skipped");
    return;
  }
  auto s1 = proxied({});
  auto s2 = proxied({});
  haproxy_run h(s1.port, s2.port, "send-proxy-v2");
  // The checks' v2 LOCAL headers: served as HAProxy itself, peer and proxy the same.
  const bool checked = wait_until(
      [&] {
        for (const auto& o : records(s1.proc))
          if (o.string("event") == "open" && o.has("proxy_port") && o.number("peer_port") == o.number("proxy_port") &&
              o.number("local_port") == s1.port)
            return true;
        return false;
      },
      5s);
  INFO(s1.proc.err());
  CHECK(checked);
  for (int i = 0; i < 4; ++i) CHECK(through(h.front, "before\n") != 0);
  // A client that HAProxy sent to s1, open when the drain begins.
  std::optional<client> held;
  for (int i = 0; i < 4 && !held; ++i) {
    auto c = client::connect(h.front);
    REQUIRE(c);
    REQUIRE(c->send_all("held\n"));
    REQUIRE(c->read_exact(5).data == "held\n");
    if (record_with(s1.proc, {{"event", "open"}, {"peer_port", std::to_string(c->local_port())}}, 1s)) held = std::move(c);
  }
  REQUIRE(held);
  REQUIRE(s1.proc.send_signal(SIGTERM));
  for (int i = 0; i < 6; ++i) {
    INFO("during and after the drain, client " << i);
    CHECK(through(h.front, "after\n") != 0);
  }
  // The held client goes on within the grace period; its close ends s1.
  CHECK(held->exchange("still served\n", 13, true, 5s).data == "still served\n");
  held->close();
  CHECK(s1.proc.wait_exit(10s) == 0);
  for (const auto& o : records(s1.proc)) CHECK(o.string("reason").value_or("").find("cut") == std::string::npos);
  // Nothing reached the servers but whole headers: no refusal on either side.
  for (auto* p : {&s1.proc, &s2.proc})
    for (const auto& o : records(*p)) CHECK(o.string("event") != "refused");
}
