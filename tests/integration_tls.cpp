// Integration tests: serving over TLS (--tls, --tls-cert/--tls-key, --tls-client-ca, the handshake
// as an admission step with its timeout, close_notify and half-close, children's SSL_* environment).
#include <openssl/ssl.h>
#include <time.h>

#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <regex>
#include <thread>

#include "support/loopback.hpp"
#include "support/test_support.hpp"
#include "support/tls_client.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

// Runs `openssl args…`; throws with its stderr when it fails.
void openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  const run_result r = run_command(argv, 30s);
  if (r.status != 0) throw std::runtime_error("openssl " + args.at(0) + " failed: " + r.err);
}

// EC P-256 keys and certificates made once per run in a directory removed at exit: a server
// certificate, a CA with a client certificate it signed, and another CA with its own client.
struct certificates {
  temp_dir dir;
  std::string server_cert = dir.file("server.crt"), server_key = dir.file("server.key");
  std::string ca_cert = dir.file("ca.crt"), ca_key = dir.file("ca.key");
  std::string client_cert = dir.file("client.crt"), client_key = dir.file("client.key");
  std::string other_ca_cert = dir.file("other-ca.crt"), other_ca_key = dir.file("other-ca.key");
  std::string stranger_cert = dir.file("stranger.crt"), stranger_key = dir.file("stranger.key");
  std::string garbage = dir.file("garbage.pem");
  std::string encrypted_key = dir.file("encrypted.key");

  certificates() {
    self_signed(server_cert, server_key, "/CN=localhost", {"-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"});
    self_signed(ca_cert, ca_key, "/CN=startup-server test CA", {});
    self_signed(other_ca_cert, other_ca_key, "/CN=another test CA", {});
    signed_by(ca_cert, ca_key, client_cert, client_key, "/CN=tls-test-client");
    signed_by(other_ca_cert, other_ca_key, stranger_cert, stranger_key, "/CN=tls-test-stranger");
    std::FILE* f = std::fopen(garbage.c_str(), "w");
    if (!f) throw std::runtime_error("cannot write " + garbage);
    std::fputs("-----BEGIN CERTIFICATE-----\nthis is not base64 DER\n-----END CERTIFICATE-----\n", f);
    std::fclose(f);
    openssl({"pkey", "-in", server_key, "-out", encrypted_key, "-aes256", "-passout", "pass:secret"});
  }

  static void self_signed(const std::string& cert, const std::string& key, const std::string& subject,
                          const std::vector<std::string>& extra) {
    std::vector<std::string> args{"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                                  "-keyout", key, "-out", cert, "-days", "2", "-subj", subject};
    args.insert(args.end(), extra.begin(), extra.end());
    openssl(args);
  }

  void signed_by(const std::string& ca, const std::string& ca_key_file, const std::string& cert,
                 const std::string& key, const std::string& subject) const {
    const std::string request = cert + ".csr";
    openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
             request, "-subj", subject});
    openssl({"x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key_file, "-set_serial", "2", "-days", "2",
             "-out", cert});
  }
};

const certificates& certs() {
  static const certificates made;
  return made;
}

tls_client_options with_cert(const std::string& cert, const std::string& key, int max_version = 0) {
  tls_client_options o;
  o.certificate_file = cert;
  o.key_file = key;
  o.max_version = max_version;
  return o;
}

tls_client_options version(int min, int max) {
  tls_client_options o;
  o.min_version = min;
  o.max_version = max;
  return o;
}

// The JSON connection log (-v --log-format json) on the server's stderr: refused records whose
// reason starts with `reason`.
std::size_t refusals(const child_process& p, const std::string& reason) {
  std::size_t n = 0;
  for (const auto& line : split_lines(p.err())) {
    auto o = parse_json_line(line);
    if (!o || o->string("event") != "refused") continue;
    if (o->string("reason").value_or("").rfind(reason, 0) == 0) ++n;
  }
  return n;
}

std::size_t events(const child_process& p, const std::string& event) {
  std::size_t n = 0;
  for (const auto& line : split_lines(p.err())) {
    auto o = parse_json_line(line);
    if (o && o->string("event") == event) ++n;
  }
  return n;
}

// Waits until the log shows at least n such refusals.
bool wait_for_refusals(child_process& p, const std::string& reason, std::size_t n, milliseconds timeout) {
  return wait_until([&] {
    p.pump(0ms);
    return refusals(p, reason) >= n;
  }, timeout, 20ms);
}

// Every reason of a refused record, for messages.
std::string refusal_reasons(const child_process& p) {
  std::string out;
  for (const auto& line : split_lines(p.err())) {
    auto o = parse_json_line(line);
    if (o && o->string("event") == "refused") out += o->string("reason").value_or("?") + "\n";
  }
  return out;
}

// An echo round through a new TLS client: the text comes back exactly after the client's
// close_notify, and the server ends the connection (whether it says close_notify first is
// the business of its own test).
bool tls_echoes(std::uint16_t port, const std::string& text, const tls_client_options& o = {}) {
  auto c = tls_client::connect(port, o);
  if (!c) return false;
  auto r = c->exchange(text, std::nullopt, true, 10s);
  return r.data == text && r.ended() && !r.failed;
}

// The descriptor count once it has stopped changing: a finished connection's socket is
// closed just after its last record is logged.
int settled_fds(pid_t pid) {
  int last = count_fds(pid);
  for (int round = 0; round < 40; ++round) {
    std::this_thread::sleep_for(50ms);
    const int now = count_fds(pid);
    if (now == last) return now;
    last = now;
  }
  return last;
}

const std::regex fingerprint_form("([0-9A-F]{2}:){31}[0-9A-F]{2}");

const char* const env_probe = R"(printf "%s|%s|%s|%s\n" "$SSL_PROTOCOL" "$SSL_CIPHER" "$SSL_PEER_CERT_SUBJECT" "$SSL_PEER_CERT_HASH"; )";

}  // namespace

TEST_CASE("tls: two interleaved clients each get their own bytes back exactly", "[tls]") {
  auto s = start_server({"--tls"});
  auto a = tls_client::connect_or_throw(s.port);
  auto b = tls_client::connect_or_throw(s.port);
  CHECK(a.protocol() == "TLSv1.3");
  const std::string sent_a = random_bytes(384 * 1024, 101), sent_b = random_bytes(384 * 1024, 202);
  std::string got_a, got_b;
  constexpr std::size_t step = 24 * 1024;
  for (std::size_t at = 0; at < sent_a.size(); at += step) {
    const std::string part_a = sent_a.substr(at, step), part_b = sent_b.substr(at, step);
    REQUIRE(a.write_all(part_a));
    REQUIRE(b.write_all(part_b));
    auto ra = a.read_exact(part_a.size());
    auto rb = b.read_exact(part_b.size());
    REQUIRE(ra.data.size() == part_a.size());
    REQUIRE(rb.data.size() == part_b.size());
    got_a += ra.data;
    got_b += rb.data;
  }
  CHECK(got_a == sent_a);
  CHECK(got_b == sent_b);
  // The client's close_notify is the end of its input, and the server's end follows.
  for (auto* c : {&a, &b}) {
    REQUIRE(c->shutdown_send());
    auto end = c->read_to_end(5s);
    CHECK(end.data.empty());
    CHECK(end.ended());
    CHECK_FALSE(end.failed);
  }
}

TEST_CASE("tls: the announced tls_sha256 is the fingerprint of the certificate the client sees", "[tls]") {
  const std::string self_signed_note = "TLS with a self-signed certificate made for this run; SHA-256 fingerprint ";
  SECTION("a certificate made for the run is announced and told on stderr") {
    auto s = start_server({"--tls"}, announce_style::json);
    auto listening = parse_json_line(s.announce_line);
    REQUIRE(listening);
    const std::string announced = listening->string("tls_sha256").value_or("");
    CHECK(std::regex_match(announced, fingerprint_form));
    auto c = tls_client::connect_or_throw(s.port);
    CHECK(c.peer_fingerprint() == announced);
    CHECK(s.proc.wait_for_stderr("startup-server: NIL server: " + self_signed_note + announced + "\n", 5s));
  }
  SECTION("--tls-cert: the file's fingerprint, in the JSON announce and the template, and no stderr note") {
    const auto& f = certs();
    const std::string expected = certificate_fingerprint(f.server_cert);
    REQUIRE(std::regex_match(expected, fingerprint_form));
    const run_result cli = run_command({"openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", f.server_cert}, 10s);
    CHECK(cli.out == "sha256 Fingerprint=" + expected + "\n");
    {
      auto s = start_server({"--tls-cert", f.server_cert, "--tls-key", f.server_key}, announce_style::json);
      auto listening = parse_json_line(s.announce_line);
      REQUIRE(listening);
      CHECK(listening->string("tls_sha256") == expected);
      CHECK(tls_echoes(s.port, "pinned\n"));
      auto c = tls_client::connect_or_throw(s.port);
      CHECK(c.peer_fingerprint() == expected);
      s.proc.pump(100ms);
      CHECK(s.proc.err().find(self_signed_note) == std::string::npos);
    }
    child_process p({binary_path(), "-a", "127.0.0.1", "-s", "0", "--tls-cert", f.server_cert, "--tls-key",
                     f.server_key, "--announce", "--announce-format={port} {tls_sha256}"});
    auto line = p.stdout_line(10s);
    REQUIRE(line);
    const auto space = line->find(' ');
    REQUIRE(space != std::string::npos);
    CHECK(line->substr(space + 1) == expected);
    auto c = tls_client::connect_or_throw(static_cast<std::uint16_t>(std::stoul(line->substr(0, space))));
    CHECK(c.peer_fingerprint() == expected);
  }
}

TEST_CASE("tls: --tls-client-ca serves only clients with a certificate from that CA and tells the child who they are",
          "[tls]") {
  const auto& f = certs();
  auto s = start_server({"--tls-cert", f.server_cert, "--tls-key", f.server_key, "--tls-client-ca", f.ca_cert, "-v",
                         "--log-format", "json", "--create-stream", "--exec", "/bin/sh", "-c",
                         std::string(env_probe) + "cat"});
  // Refused: TLS 1.3 lets the client finish its side first, so the refusal may show only
  // on its first read; no byte of the child's ever arrives.
  const auto refused = [&](const tls_client_options& o) {
    std::string error;
    auto c = tls_client::connect(s.port, o, &error);
    if (!c) return true;
    if (!c->write_all("anyone there?\n", 2s)) return true;
    auto r = c->read_to_end(5s);
    INFO("read: " << r.data.size() << " bytes, " << c->error());
    return r.data.empty() && r.ended();
  };
  CHECK(refused({}));
  CHECK(wait_for_refusals(s.proc, "tls: handshake failed", 1, 5s));
  CHECK(refused(with_cert(f.stranger_cert, f.stranger_key)));
  CHECK(wait_for_refusals(s.proc, "tls: handshake failed", 2, 5s));
  CHECK(refused(version(TLS1_2_VERSION, TLS1_2_VERSION)));
  CHECK(wait_for_refusals(s.proc, "tls: handshake failed", 3, 5s));
  INFO(refusal_reasons(s.proc));
  CHECK(children_of(s.proc.pid()).empty());
  CHECK(events(s.proc, "open") == 0);

  auto c = tls_client::connect_or_throw(s.port, with_cert(f.client_cert, f.client_key));
  const std::string expected = c.protocol() + "|" + c.cipher() + "|/CN=tls-test-client|SHA256:" +
                               certificate_sha256_hex(f.client_cert) + "\n";
  CHECK(c.protocol() == "TLSv1.3");
  const std::string payload = random_bytes(64 * 1024, 303);
  auto r = c.exchange(payload, std::nullopt, true, 10s);
  CHECK(r.data == expected + payload);
  CHECK(r.close_notify);
  // TLS 1.2 with the certificate is served as well.
  auto old = tls_client::connect_or_throw(s.port, with_cert(f.client_cert, f.client_key, TLS1_2_VERSION));
  CHECK(old.protocol() == "TLSv1.2");
  const std::string expected_old =
      "TLSv1.2|" + old.cipher() + "|/CN=tls-test-client|SHA256:" + certificate_sha256_hex(f.client_cert) + "\n";
  CHECK(old.exchange("ping\n", expected_old.size() + 5, false, 5s).data == expected_old + "ping\n");
}

TEST_CASE("tls: plaintext clients on a TLS port are refused and logged, and TLS clients go on undisturbed", "[tls]") {
  auto s = start_server({"--tls", "-v", "--log-format", "json"});
  auto busy = tls_client::connect_or_throw(s.port);
  const std::string sent = random_bytes(20 * 16 * 1024, 404);
  std::string got;
  constexpr int probes = 20;
  for (int i = 0; i < probes; ++i) {
    // The TLS client has a piece in flight while the plaintext one comes and goes.
    const std::string part = sent.substr(static_cast<std::size_t>(i) * 16 * 1024, 16 * 1024);
    REQUIRE(busy.write_all(part));
    const std::string plain = i % 2 ? "GET / HTTP/1.0\r\n\r\n" : "hello\n";
    auto p = client::connect_or_throw(s.port);
    REQUIRE(p.send_all(plain));
    auto answer = p.read_all(5s);
    INFO("probe " << i);
    CHECK_FALSE(answer.timed_out);
    CHECK(answer.data.find(plain.substr(0, 5)) == std::string::npos);
    got += busy.read_exact(part.size()).data;
  }
  CHECK(got == sent);
  CHECK(wait_for_refusals(s.proc, "tls: handshake failed", probes, 5s));
  CHECK(refusals(s.proc, "") == probes);
  REQUIRE(busy.shutdown_send());
  auto end = busy.read_to_end();
  CHECK(end.data.empty());
  CHECK(end.ended());
  CHECK(tls_echoes(s.port, random_bytes(100 * 1024, 405)));
}

TEST_CASE("tls: a client that never starts the handshake is refused after --tls-handshake-timeout, others are served meanwhile",
          "[tls]") {
  auto s = start_server({"--tls", "--tls-handshake-timeout", "1", "-v", "--log-format", "json"});
  auto silent = client::connect_or_throw(s.port);
  const auto start = steady::now();
  CHECK(tls_echoes(s.port, "not held up\n"));
  CHECK(steady::now() - start < 800ms);  // served while the silent one still waits
  auto r = silent.read_all(5s);
  const auto waited = steady::now() - start;
  CHECK((r.eof || r.error != 0));
  CHECK(r.data.empty());
  CHECK(waited >= 800ms);
  CHECK(waited < 3s);
  CHECK(wait_for_refusals(s.proc, "tls: handshake timed out", 1, 5s));
  CHECK(refusals(s.proc, "") == 1);
}

TEST_CASE("tls: behind a balancer the PROXY header comes in clear first, then the handshake, and the child sees both", "[tls][proxy]") {
  auto s = start_server({"--tls", "--proxy-protocol", "--proxy-from", "127.0.0.1", "--create-stream", "--exec", "/bin/sh",
                         "-c", "printf '%s|%s|%s\\n' \"$TCPREMOTEIP\" \"$PROXYREMOTEIP\" \"$SSL_PROTOCOL\"; cat"});
  tls_client_options o;
  o.preface = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n";
  auto c = tls_client::connect_or_throw(s.port, o);
  auto r = c.exchange("through both\n", std::nullopt, true, 10s);
  CHECK(r.data == "203.0.113.7|127.0.0.1|TLSv1.3\nthrough both\n");
  CHECK(r.close_notify);
  // Without the header, the trusted peer's ClientHello is not a PROXY header: refused.
  auto bare = tls_client::connect(s.port);
  CHECK_FALSE(bare);
}

TEST_CASE("tls: an --idle-timeout shorter than the handshake's refuses a silent client as idle", "[tls]") {
  auto s = start_server({"--tls", "--idle-timeout", "0.5", "--tls-handshake-timeout", "10", "-v", "--log-format", "json"});
  auto silent = client::connect_or_throw(s.port);
  const auto start = steady::now();
  auto r = silent.read_all(5s);
  CHECK((r.eof || r.error != 0));
  CHECK(steady::now() - start < 3s);
  CHECK(wait_for_refusals(s.proc, "idle", 1, 5s));
  CHECK(refusals(s.proc, "tls:") == 0);
  CHECK(tls_echoes(s.port, "still served\n"));
}

TEST_CASE("tls: a --create-stream child sees SSL_PROTOCOL and SSL_CIPHER, and its end reaches the client as close_notify",
          "[tls]") {
  // The child echoes exactly 100000 bytes and exits: the client has not closed anything.
  auto s = start_server({"--tls", "--create-stream", "--exec", "/bin/sh", "-c", std::string(env_probe) + "head -c 100000"});
  auto c = tls_client::connect_or_throw(s.port);
  const std::string payload = random_bytes(100000, 606);
  auto r = c.exchange(payload, std::nullopt, false, 10s);
  const auto newline = r.data.find('\n');
  REQUIRE(newline != std::string::npos);
  const std::string env = r.data.substr(0, newline);
  CHECK(env == "TLSv1.3|" + c.cipher() + "||");
  CHECK_FALSE(c.cipher().empty());
  CHECK(r.data.substr(newline + 1) == payload);
  CHECK(r.close_notify);
  CHECK_FALSE(r.timed_out);
}

TEST_CASE("tls: on TLS 1.3 a client's close_notify half-closes, the child sees EOF and its whole answer arrives",
          "[tls]") {
  const std::string payload = random_bytes(1024 * 1024, 707);
  {
    auto s = start_server({"--tls", "--create-stream", "--exec", "/bin/cat"});
    auto c = tls_client::connect_or_throw(s.port, version(TLS1_3_VERSION, TLS1_3_VERSION));
    auto r = c.exchange(payload, std::nullopt, true, 15s);
    CHECK(r.data.size() == payload.size());
    CHECK(r.data == payload);
    CHECK(r.close_notify);
  }
  {
    // The answer is written only after the child's EOF, i.e. after the client's close_notify.
    auto s = start_server({"--tls", "--create-stream", "--exec", "/bin/sh", "-c", "wc -c | tr -d ' '; echo done"});
    auto c = tls_client::connect_or_throw(s.port, version(TLS1_3_VERSION, TLS1_3_VERSION));
    auto r = c.exchange(payload, std::nullopt, true, 15s);
    CHECK(r.data == std::to_string(payload.size()) + "\ndone\n");
    CHECK(r.close_notify);
  }
}

TEST_CASE("tls: on TLS 1.2 a client's close_notify ends the connection promptly and the server keeps serving", "[tls]") {
  auto s = start_server({"--tls", "--create-stream", "--exec", "/bin/sh", "-c", "wc -c | tr -d ' '; echo done"});
  const std::string payload = random_bytes(1024 * 1024, 808);
  for (int round = 0; round < 2; ++round) {
    auto c = tls_client::connect_or_throw(s.port, version(TLS1_2_VERSION, TLS1_2_VERSION));
    REQUIRE(c.protocol() == "TLSv1.2");
    const auto start = steady::now();
    auto r = c.exchange(payload, std::nullopt, true, 10s);
    INFO("round " << round << ": " << r.data.size() << " bytes, " << c.error());
    CHECK_FALSE(r.timed_out);
    CHECK(r.ended());
    CHECK_FALSE(r.failed);  // close_notify or FIN, never an alert or a reset
    CHECK(steady::now() - start < 5s);
  }
  auto next = tls_client::connect_or_throw(s.port);
  auto r = next.exchange("four", std::nullopt, true, 10s);
  CHECK(r.data == "4\ndone\n");
  CHECK(r.close_notify);
}

// Every handler ends a TLS connection with close_notify before the FIN, so the client can
// tell the end from a truncation; echo and discard end by handing the connection back,
// which must send it too.
TEST_CASE("tls: echo and discard answer the client's close_notify with their own", "[tls]") {
  const std::string payload = random_bytes(1024 * 1024, 505);
  for (const char* handler : {"--echo", "--discard"}) {
    auto s = start_server({"--tls", handler});
    for (int max : {TLS1_3_VERSION, TLS1_2_VERSION}) {
      auto c = tls_client::connect_or_throw(s.port, version(0, max));
      auto r = c.exchange(payload, std::nullopt, true, 15s);
      INFO(handler << " over " << c.protocol() << ": " << r.data.size() << " bytes back, then " << c.error());
      CHECK(r.data == (handler == std::string("--echo") ? payload : std::string()));
      CHECK(r.close_notify);
    }
  }
}

TEST_CASE("tls: bad TLS flags are usage errors naming the flag, before anything is bound", "[tls]") {
  const auto& f = certs();
  const std::string missing = f.dir.file("no-such-cert.pem");
  struct bad_case {
    std::vector<std::string> args;
    std::string flag, also;
  };
  const std::vector<bad_case> cases{
      {{"--tls-cert", f.server_cert}, "--tls-cert", "--tls-key"},
      {{"--tls-key", f.server_key}, "--tls-key", "--tls-cert"},
      {{"--tls-cert", missing, "--tls-key", f.server_key}, "--tls-cert", missing + "': No such file or directory"},
      {{"--tls-cert", f.garbage, "--tls-key", f.server_key}, "--tls-cert", f.garbage + "': bad base64 decode"},
      {{"--tls-cert", f.server_cert, "--tls-key", f.client_key}, "--tls-key", f.client_key + "': key values mismatch"},
      {{"--tls-cert", f.server_cert, "--tls-key", f.encrypted_key}, "--tls-key", f.encrypted_key + "': it is encrypted"},
      {{"--tls-cert", f.server_cert, "--tls-key", f.server_key, "--tls-client-ca", f.garbage}, "--tls-client-ca",
       f.garbage + "': bad base64 decode"},
      {{"--tls", "--tls-client-ca", missing}, "--tls-client-ca", missing},
      {{"--tls", "--tls-handshake-timeout", "0"}, "--tls-handshake-timeout", "'0'"},
      {{"--tls", "--tls-handshake-timeout", "abc"}, "--tls-handshake-timeout", "'abc'"},
      {{"--tls", "--exec", "/bin/cat"}, "--tls", "--create-stream"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"-a", "127.0.0.1", "-s", "0", "--announce", "--announce-format={port}"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto r = run_binary(args);
    std::string shown;
    for (const auto& a : c.args) shown += a + " ";
    INFO(shown << "→ exit " << r.status << ", stderr: " << r.err);
    CHECK(r.status == 64);
    CHECK(r.out.empty());  // no listening line: nothing was bound
    CHECK(split_lines(r.err).size() == 1);
    CHECK_THAT(r.err, Catch::Contains(c.flag + ":") && Catch::Contains(c.also));
  }
}

TEST_CASE("tls: --stdio joins the terminal to a TLS client and ends its input with close_notify", "[tls][stdio]") {
  // The terminal's input is one line, then EOF: the client gets the line and close_notify
  // (a half-close on TLS 1.3), and what it sends after that still reaches stdout.
  child_process p({"/bin/sh", "-c",
                   "printf 'to the client\\n' | exec \"$0\" -a 127.0.0.1 -s 0 --announce --announce-format={port} "
                   "--tls --stdio --once",
                   binary_path()});
  const auto line = p.stdout_line(10s);
  REQUIRE(line);
  auto c = tls_client::connect_or_throw(static_cast<std::uint16_t>(std::stoi(*line)));
  const tls_read_result r = c.read_to_end(5s);
  CHECK(r.data == "to the client\n");
  CHECK(r.close_notify);
  REQUIRE(c.write_all("to the terminal\n"));
  CHECK(p.wait_for_stdout("to the terminal\n", 5s));
  CHECK(c.shutdown_send());
  CHECK(p.wait_exit(5s) == 0);
  CHECK(p.err().find("warning") == std::string::npos);
}

TEST_CASE("tls: a library function serves TLS clients on its blocking stream, and a stop wakes it", "[tls][library]") {
  auto o = loopback(startup_server::handler::user);
  o.tls = startup_server::tls_options{};
  o.grace = std::chrono::milliseconds(300);
  o.serve = [](startup_server::server&, startup_server::tcp_stream& stream) {
    char buffer[4096];
    for (std::size_t n; (n = stream.read_some(buffer, sizeof buffer)) > 0;) stream.write(std::string_view(buffer, n));
  };
  auto s = startup_server::start_up_server(o);
  REQUIRE(s);
  const std::uint16_t port = s->local_port();
  {
    // Two clients interleaved, then a megabyte each way with the client's close_notify
    // at the end: the function sees EOF, returns, and the client gets close_notify.
    auto a = tls_client::connect_or_throw(port);
    auto b = tls_client::connect_or_throw(port);
    REQUIRE(a.write_all("first\n"));
    REQUIRE(b.write_all("second\n"));
    CHECK(b.read_exact(7).data == "second\n");
    CHECK(a.read_exact(6).data == "first\n");
    std::string big(1 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) >> 3);
    const tls_read_result r = a.exchange(big, std::nullopt, true, 20s);
    CHECK(r.data.size() == big.size());
    CHECK(r.data == big);
    CHECK(r.close_notify);
  }
  // A client that stays connected, its function blocked in a read: the cut at the end of
  // the grace period wakes it.
  auto idle = tls_client::connect_or_throw(port);
  REQUIRE(idle.write_all("x"));
  CHECK(idle.read_exact(1).data == "x");
  const auto before = steady::now();
  startup_server::server_terminate(*s);
  s->join();
  CHECK(steady::now() - before < 2s);
  CHECK(idle.read_to_end(2s).ended());
}

TEST_CASE("tls: talk, discard, chargen and daytime work over TLS", "[tls]") {
  {
    auto s = start_server({"--tls", "--talk"});
    auto c = tls_client::connect_or_throw(s.port);
    const std::string reply = "You sent: 'hi'\n";
    REQUIRE(c.write_all("hi\n"));
    CHECK(c.read_exact(reply.size()).data == reply);
    auto r = c.exchange("bye", std::nullopt, true, 5s);
    CHECK(r.data == "You sent: 'bye'\n");
    CHECK(r.close_notify);
  }
  {
    auto s = start_server({"--tls", "--discard"});
    auto c = tls_client::connect_or_throw(s.port);
    auto r = c.exchange(random_bytes(512 * 1024, 909), std::nullopt, true, 10s);
    CHECK(r.data.empty());
    CHECK(r.ended());
    CHECK_FALSE(r.failed);
  }
  {
    auto s = start_server({"--tls", "--chargen"});
    constexpr std::size_t line_length = 74;
    for (int round = 0; round < 2; ++round) {
      auto c = tls_client::connect_or_throw(s.port);
      auto r = c.read_exact(line_length * 60, 5s);
      REQUIRE(r.data.size() == line_length * 60);
      for (std::size_t l = 0; l < 60; ++l) {
        const std::string line = r.data.substr(l * line_length, line_length);
        INFO("line " << l << ": " << line);
        REQUIRE(line.substr(72) == "\r\n");
        REQUIRE(line[0] == static_cast<char>(' ' + l % 95));
        for (std::size_t i = 1; i < 72; ++i) REQUIRE((line[i - 1] - ' ' + 1) % 95 == line[i] - ' ');
      }
      if (round == 0) CHECK(c.shutdown_send());  // the first one says goodbye, the second just goes
    }
    auto last = tls_client::connect_or_throw(s.port);
    CHECK(last.read_exact(line_length, 5s).data.size() == line_length);
  }
  {
    auto s = start_server({"--tls", "--daytime"});
    auto c = tls_client::connect_or_throw(s.port);
    auto r = c.read_to_end(5s);
    CHECK(r.close_notify);
    REQUIRE(r.data.size() > 2);
    CHECK(r.data.substr(r.data.size() - 2) == "\r\n");
    CHECK(r.data.find('\n') == r.data.size() - 1);
    const time_t now = ::time(nullptr);
    tm local{};
    ::localtime_r(&now, &local);
    CHECK(r.data.find(std::to_string(1900 + local.tm_year)) != std::string::npos);
  }
}

TEST_CASE("tls: after 200 good, plaintext and abandoned connections the server holds no more descriptors than after the first",
          "[tls]") {
  auto s = start_server({"--tls", "-v", "--log-format", "json"});
  REQUIRE(tls_echoes(s.port, "first\n"));
  const int baseline = settled_fds(s.proc.pid());
  REQUIRE(baseline > 0);
  const std::string hello = client_hello();
  REQUIRE(hello.size() > 10);
  int served = 0;
  for (int i = 0; i < 200; ++i) {
    s.proc.pump(0ms);  // the log keeps flowing
    switch (i % 5) {
      case 0:  // a whole conversation
        served += tls_echoes(s.port, random_bytes(4096, static_cast<std::uint32_t>(i)));
        break;
      case 1: {  // plaintext
        auto p = client::connect_or_throw(s.port);
        p.send_all("GET / HTTP/1.0\r\n\r\n");
        p.read_all(5s);
        break;
      }
      case 2: {  // a few bytes, then gone
        auto p = client::connect_or_throw(s.port);
        p.send_all(random_bytes(5, static_cast<std::uint32_t>(i)));
        break;
      }
      case 3: {  // half a ClientHello, then gone
        auto p = client::connect_or_throw(s.port);
        p.send_all(hello.substr(0, hello.size() / 2));
        break;
      }
      case 4: {  // a finished handshake, then gone without close_notify
        auto c = tls_client::connect_or_throw(s.port);
        c.write_all("partial");
        break;
      }
    }
  }
  CHECK(served == 40);
  CHECK(wait_for_refusals(s.proc, "", 120, 5s));
  CHECK(refusals(s.proc, "tls: handshake failed") >= 40);                   // plaintext (and some random bytes)
  CHECK(refusals(s.proc, "tls: the client closed during the handshake") >= 40);  // half a ClientHello
  CHECK(refusals(s.proc, "") == 120);
  CHECK(wait_until([&] { return count_fds(s.proc.pid()) == baseline; }, 10s, 20ms));
  CHECK(count_fds(s.proc.pid()) == baseline);
  CHECK(tls_echoes(s.port, random_bytes(256 * 1024, 1000)));
}

TEST_CASE("tls: --wait tells the self-signed certificate's fingerprint before it returns", "[tls]") {
  const auto r = run_binary({"-a", "127.0.0.1", "--wait", "--tls"});
  REQUIRE(r.status == 0);
  CHECK_THAT(r.err, Catch::Contains("SHA-256 fingerprint "));
  const pid_t server = static_cast<pid_t>(std::stol(r.out));
  REQUIRE(::kill(server, SIGTERM) == 0);
  CHECK(wait_until([&] { return ::kill(server, 0) != 0; }, 10s));
}
