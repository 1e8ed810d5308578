// Integration tests: bad input is refused before binding (exit 64); resolve and bind failures.
#include <algorithm>

#include <catch2/catch.hpp>

#include "support/test_support.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

struct usage_case {
  std::vector<std::string> args;
  std::vector<std::string> flags;  // the message names at least one of these
  bool add_port = true;            // prepend -s <a port in use> to prove nothing was bound
};

int count_newlines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

bool names_one_of(const std::string& text, const std::vector<std::string>& flags) {
  for (const auto& f : flags)
    if (text.find(f) != std::string::npos) return true;
  return false;
}

void check_usage_errors(const std::vector<usage_case>& cases) {
  // A port held by the test on every address: a command that got as far as binding it
  // would fail with 69 (in use), so 64 shows the refusal came first.
  occupied_port busy;
  for (const auto& c : cases) {
    std::vector<std::string> args;
    if (c.add_port) args = {"-s", std::to_string(busy.port())};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto r = run_binary(args, 10s);
    std::string shown;
    for (const auto& a : args) shown += "'" + a + "' ";
    INFO("startup-server " << shown << "\nstdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.status == 64);
    CHECK(count_newlines(r.err) == 1);
    CHECK(r.err.back() == '\n');
    CHECK(names_one_of(r.err, c.flags));
    CHECK(r.out.empty());
  }
}

}  // namespace

TEST_CASE("errors: a port in use fails with 69, naming the address, port and reason", "[errors][binding]") {
  occupied_port busy;
  const std::string port = std::to_string(busy.port());
  auto r = run_binary({"-a", "127.0.0.1", "-s", port});
  INFO("stderr: " << r.err);
  CHECK(r.status == 69);
  CHECK(count_newlines(r.err) == 1);
  CHECK(r.err.find("127.0.0.1:" + port) != std::string::npos);
  CHECK(r.err.find("Address already in use") != std::string::npos);
}

TEST_CASE("errors: two handlers are refused with 64 before binding", "[errors][usage]") {
  check_usage_errors({
      {{"--echo", "--talk"}, {"--echo", "--talk"}},
      {{"--discard", "--chargen"}, {"--discard", "--chargen"}},
      {{"--daytime", "--sh-exec", "cat"}, {"--daytime", "--sh-exec"}},
      {{"--talk", "--exec", "/bin/cat"}, {"--talk", "--exec"}},
      {{"--sh-exec", "cat", "--exec", "/bin/cat"}, {"--sh-exec", "--exec"}},
  });
}

TEST_CASE("errors: a bad port is refused with 64 naming the flag", "[errors][usage]") {
  check_usage_errors({
      {{"-s", "70000"}, {"--service", "-s"}, false},
      {{"--service=65536"}, {"--service"}, false},
      {{"--service=-1"}, {"--service"}, false},
      {{"-p", "99999"}, {"--local-port", "-p"}, false},
      {{"--service="}, {"--service"}, false},
      {{"-s", "1", "-p", "2"}, {"--local-port", "--service"}, false},
  });
}

TEST_CASE("errors: a bad --ipv6 value or an address that contradicts it is refused with 64", "[errors][usage]") {
  check_usage_errors({
      {{"--ipv6=maybe"}, {"--ipv6"}},
      {{"--ipv6", "yes"}, {"--ipv6"}},
      {{"-a", "127.0.0.1", "--ipv6=on"}, {"--ipv6", "--local-address"}},
      {{"-a", "2130706433", "--ipv6=on"}, {"--ipv6", "--local-address"}},
      {{"-a", "::1", "--ipv6=off"}, {"--ipv6", "--local-address"}},
      {{"--address", "::", "--ipv6=off"}, {"--ipv6", "--address"}},
  });
}

TEST_CASE("errors: a bad address, backlog or other value is refused with 64 naming the flag", "[errors][usage]") {
  temp_dir dir;
  check_usage_errors({
      {{"-a", "4294967296"}, {"--local-address", "-a"}},
      {{"-a", "127.0.0.1", "--address", "127.0.0.1"}, {"--address", "--local-address"}},
      {{"-b", "abc"}, {"--backlog", "-b"}},
      {{"--backlog=-1"}, {"--backlog"}},
      {{"--backlog", "1x"}, {"--backlog"}},
      {{"--grace=soon"}, {"--grace"}},
      {{"--grace=-1"}, {"--grace"}},
      {{"--threads=many"}, {"--threads"}},
      {{"--announce-format={nope}"}, {"--announce-format"}},
      {{"--announce", "--announce-format={port"}, {"--announce-format"}},
      {{"--log-format=json"}, {"--log-format"}},
      {{"-v", "--log-format=xml"}, {"--log-format"}},
      {{"--nodelay", "--no-nodelay"}, {"--nodelay", "--no-nodelay"}},
      {{"--keepalive", "--no-keepalive"}, {"--keepalive", "--no-keepalive"}},
      {{"--error", "--no-error"}, {"--error", "--no-error"}},
      {{"--process-name="}, {"--process-name"}},
      {{"--announce=" + dir.file("no/such/dir/announce.txt")}, {"--announce"}},
      {{"-v", "--log=" + dir.file("no/such/dir/log.txt")}, {"--log"}},
  });
}

TEST_CASE("errors: an unknown option is refused with 64 naming it", "[errors][usage]") {
  check_usage_errors({
      {{"--bogus"}, {"--bogus"}},
      {{"--echo", "--no-such-flag=1"}, {"--no-such-flag"}},
      {{"-Z"}, {"-Z"}},
  });
}

TEST_CASE("errors: --create-stream without a program is refused with 64", "[errors][usage]") {
  check_usage_errors({
      {{"--create-stream"}, {"--create-stream"}},
      {{"--echo", "--create-stream"}, {"--create-stream"}},
  });
}

TEST_CASE("errors: a missing or unrunnable --exec program is refused with 64", "[errors][usage][exec]") {
  temp_dir dir;
  check_usage_errors({
      {{"--exec"}, {"--exec"}},
      {{"--exec", "/nonexistent/program"}, {"--exec"}},
      {{"--exec", "no-such-program-for-startup-server-tests"}, {"--exec"}},
      {{"--exec", dir.path()}, {"--exec"}},
      {{"--create-stream", "--exec", "/nonexistent/program", "arg"}, {"--exec"}},
  });
}

TEST_CASE("errors: an unknown service name exits 68 naming it", "[errors][binding]") {
  auto r = run_binary({"-a", "127.0.0.1", "-s", "no-such-service-for-startup-server"});
  INFO("stderr: " << r.err);
  CHECK(r.status == 68);
  CHECK(count_newlines(r.err) == 1);
  CHECK(r.err.find("no-such-service-for-startup-server") != std::string::npos);
  CHECK(r.out.empty());
}

TEST_CASE("errors: a host name that does not resolve exits 68 naming it", "[errors][binding]") {
  auto r = run_binary({"-a", "no-such-host.invalid", "-s", "0"});
  INFO("stderr: " << r.err);
  CHECK(r.status == 68);
  CHECK(count_newlines(r.err) == 1);
  CHECK(r.err.find("no-such-host.invalid") != std::string::npos);
}

TEST_CASE("errors: an address not on this machine exits 68 naming the address, port and reason",
          "[errors][binding]") {
  // TEST-NET-1: nothing is sent, the bind alone fails.
  auto r = run_binary({"-a", "192.0.2.1", "-s", "0"});
  INFO("stderr: " << r.err);
  CHECK(r.status == 68);
  CHECK(count_newlines(r.err) == 1);
  CHECK(r.err.find("192.0.2.1:0") != std::string::npos);
  CHECK(r.err.find("Cannot assign requested address") != std::string::npos);
}

TEST_CASE("errors: with --no-error a fatal error is only announced, the exit quiet but non-zero", "[errors]") {
  auto r = run_binary({"-a", "192.0.2.1", "-s", "0", "--no-error", "--announce", "--announce-format=json"});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.status == 68);
  CHECK(r.err.empty());
  auto lines = split_lines(r.out);
  REQUIRE_FALSE(lines.empty());
  auto event = parse_json_line(lines[0]);
  REQUIRE(event);
  CHECK(event->string("event") == "error");
  CHECK(event->string("message").value_or("").find("192.0.2.1") != std::string::npos);

  occupied_port busy;
  auto in_use = run_binary({"-s", std::to_string(busy.port()), "--no-error", "--announce"});
  INFO("stdout: " << in_use.out << "\nstderr: " << in_use.err);
  CHECK(in_use.status == 69);
  CHECK(in_use.err.empty());
  CHECK(in_use.out.find("error") != std::string::npos);
  CHECK(in_use.out.find("Address already in use") != std::string::npos);
}

TEST_CASE("errors: --help and --version exit 0 on stdout", "[errors]") {
  auto help = run_binary({"--help"});
  CHECK(help.status == 0);
  CHECK(help.out.find("--exec") != std::string::npos);
  CHECK(help.err.empty());
  auto version = run_binary({"--version"});
  CHECK(version.status == 0);
  CHECK(version.out.rfind("startup-server ", 0) == 0);
}
