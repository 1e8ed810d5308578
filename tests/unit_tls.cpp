// Unit tests: the TLS context (certificates, keys, the throw-away certificate) and the
// library's TLS conditions.
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>

#include "startup_server/startup_server.hpp"
#include "support/loopback.hpp"
#include "tls/tls_context.hpp"

using namespace startup_server;

namespace {

std::string write_temp(const std::string& text) {
  char path[] = "/tmp/startup-server-unit-tls-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fd);
  return path;
}

}  // namespace

TEST_CASE("tls: without files a self-signed certificate is made, with a SHA-256 fingerprint", "[tls]") {
  std::string problem;
  auto a = detail::tls_context::make({}, problem);
  REQUIRE(a);
  CHECK(a->self_signed());
  CHECK(a->fingerprint().size() == 32 * 3 - 1);  // "AB:" 32 times, less the last colon
  auto b = detail::tls_context::make({}, problem);
  REQUIRE(b);
  CHECK(a->fingerprint() != b->fingerprint());  // a fresh key each time
}

TEST_CASE("tls: bad certificate and key files are named with the reason", "[tls]") {
  std::string problem;
  tls_options o;
  o.certificate_file = "/nonexistent/cert.pem";
  o.key_file = "/nonexistent/key.pem";
  CHECK_FALSE(detail::tls_context::make(o, problem));
  CHECK_THAT(problem, Catch::Contains("'/nonexistent/cert.pem'") && Catch::Contains("No such file"));

  const std::string junk = write_temp("not a certificate\n");
  o.certificate_file = junk;
  o.key_file = junk;
  CHECK_FALSE(detail::tls_context::make(o, problem));
  CHECK_THAT(problem, Catch::StartsWith("unable to load the TLS certificate '" + junk + "'"));

  o.key_file.clear();
  CHECK_FALSE(detail::tls_context::make(o, problem));
  CHECK(problem == "a TLS certificate needs its key");
  o.client_ca_file = junk;
  o.certificate_file.clear();
  CHECK_FALSE(detail::tls_context::make(o, problem));
  CHECK_THAT(problem, Catch::Contains("client CA '" + junk + "'"));
  std::remove(junk.c_str());
}

TEST_CASE("library: TLS is refused for exec without create_stream, and taken by stdio and user functions",
          "[library][tls]") {
  {
    auto o = test_support::loopback(handler::exec);
    o.tls = tls_options{};
    o.exec_argv = {"/bin/cat"};
    startup_condition c;
    auto s = start_up_server(o, c);
    CHECK_FALSE(s);
    CHECK(c.stage == startup_condition::phase::usage);
    CHECK_THAT(c.message(), Catch::Contains("TLS") && Catch::Contains("create_stream"));
  }
  for (handler h : {handler::stdio, handler::user}) {
    auto o = test_support::loopback(h);
    o.tls = tls_options{};
    if (h == handler::user) o.serve = [](server&, tcp_stream&) {};
    startup_condition c;
    auto s = start_up_server(o, c);
    REQUIRE(s);
    server_terminate(*s);
    s->join();
  }
  auto o = test_support::loopback();
  o.tls = tls_options{};
  o.tls->handshake_timeout = std::chrono::milliseconds(0);
  startup_condition c;
  CHECK_FALSE(start_up_server(o, c));
  CHECK_THAT(c.message(), Catch::Contains("handshake timeout"));
}

TEST_CASE("library: a TLS server tells its certificate's fingerprint when it listens", "[library][tls]") {
  auto o = test_support::loopback();
  o.tls = tls_options{};
  std::string fingerprint;
  bool self_signed = false;
  o.announce = [&](const announce_event& e) {
    if (e.what != announce_event::kind::listening) return;
    fingerprint = e.tls_fingerprint;
    self_signed = e.tls_self_signed;
  };
  auto s = start_up_server(o);
  server_terminate(*s);
  s->join();
  CHECK(fingerprint.size() == 95);
  CHECK(self_signed);
}
