// Unit tests: command line → server_options, and every refusal naming its flag.
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include <regex>
#include <sstream>

#include "cli/cli.hpp"

using namespace startup_server;
using cli::parse_command_line;
using cli::usage_error;

namespace {

cli::config parse(std::vector<std::string> args) { return parse_command_line(args); }

// The one-line message a refused command line gives.
std::string refusal(std::vector<std::string> args) {
  try {
    parse_command_line(args);
  } catch (const usage_error& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

TEST_CASE("cli: defaults mirror the seed", "[cli]") {
  auto c = parse({});
  CHECK(c.options.function == handler::echo);
  CHECK(c.options.service.empty());
  CHECK(c.options.local_address.empty());
  CHECK(c.options.backlog == 5);
  CHECK(c.options.ipv6 == ipv6_mode::any);
  CHECK(c.options.nodelay);
  CHECK_FALSE(c.options.keepalive);
  CHECK_FALSE(c.options.reuseport);
  CHECK(c.options.error == true);
  CHECK_FALSE(c.background);
  CHECK(c.announce.destination.empty());
  CHECK(c.log.destination.empty());
}

TEST_CASE("cli: synonyms map to the same option", "[cli]") {
  CHECK(parse({"-s", "7000"}).options.service == "7000");
  CHECK(parse({"--local-port", "http"}).options.service == "http");
  CHECK(parse({"-p", "7001"}).options.service == "7001");
  CHECK(parse({"--address", "127.0.0.1"}).options.local_address == "127.0.0.1");
  CHECK(parse({"-a", "::1"}).options.local_address == "::1");
}

TEST_CASE("cli: each handler flag selects its handler", "[cli]") {
  CHECK(parse({"--talk"}).options.function == handler::talk);
  CHECK(parse({"--discard"}).options.function == handler::discard);
  CHECK(parse({"--chargen"}).options.function == handler::chargen);
  CHECK(parse({"--daytime"}).options.function == handler::daytime);
  auto sh = parse({"--sh-exec", "echo hi"});
  CHECK(sh.options.function == handler::exec);
  CHECK(sh.options.exec_argv == std::vector<std::string>{"/bin/sh", "-c", "echo hi"});
}

TEST_CASE("cli: --exec takes the rest of the line verbatim", "[cli][exec]") {
  auto c = parse({"-s", "0", "--exec", "printf", "--echo", "-s", "$HOME", "a b"});
  REQUIRE(c.options.function == handler::exec);
  REQUIRE(c.options.exec_argv.size() == 5);
  CHECK(c.options.exec_argv[0].find("/printf") != std::string::npos);  // found on PATH
  CHECK(c.options.exec_argv[1] == "--echo");
  CHECK(c.options.exec_argv[3] == "$HOME");
  CHECK(c.options.exec_argv[4] == "a b");
  CHECK(c.options.service == "0");
}

TEST_CASE("cli: an option value spelled --exec is not the start of a command", "[cli][exec]") {
  auto c = parse({"--process-name", "--exec", "--talk"});
  CHECK(c.options.process_name == "--exec");
  CHECK(c.options.function == handler::talk);
}

TEST_CASE("cli: socket flags and their negations", "[cli]") {
  auto c = parse({"--no-nodelay", "--keepalive", "--reuseport", "-b", "max", "--ipv6", "both"});
  CHECK_FALSE(c.options.nodelay);
  CHECK(c.options.keepalive);
  CHECK(c.options.reuseport);
  CHECK(c.options.backlog == SOMAXCONN);
  CHECK(c.options.ipv6 == ipv6_mode::both);
  CHECK(parse({"--ipv6=off"}).options.ipv6 == ipv6_mode::off);
  CHECK(parse({"--ipv6=on"}).options.ipv6 == ipv6_mode::on);
  CHECK(parse({"-b", "1"}).options.backlog == 1);
}

TEST_CASE("cli: --wait makes --no-error the default, as the seed's (not wait)", "[cli][lifecycle]") {
  auto c = parse({"--wait"});
  CHECK(c.background);
  CHECK(c.options.error == false);
  CHECK(parse({"--wait", "--error"}).options.error == true);
  CHECK(parse({"--no-error"}).options.error == false);
}

TEST_CASE("cli: announce destinations and formats", "[cli][announce]") {
  CHECK(parse({"--announce"}).announce.destination == "stdout");
  CHECK(parse({"--announce=stderr"}).announce.destination == "stderr");
  CHECK(parse({"--announce=/tmp/x"}).announce.destination == "/tmp/x");
  CHECK(parse({"--announce=-"}).announce.destination == "stdout");
  auto c = parse({"--announce-format", "{port}"});
  CHECK(c.announce.destination == "stdout");  // a format alone announces to stdout
  CHECK(c.announce.format == "{port}");
  CHECK(parse({"--announce", "--announce-format=json"}).announce.format == "json");
}

TEST_CASE("cli: connection log destinations and formats", "[cli][log]") {
  CHECK(parse({"-v"}).log.destination == "stderr");
  CHECK(parse({"--log", "/tmp/l"}).log.destination == "/tmp/l");
  CHECK(parse({"-v", "--log-format", "json"}).log.format == "json");
}

TEST_CASE("cli: lifecycle values", "[cli][lifecycle]") {
  auto c = parse({"--once", "--grace", "0.25", "--threads", "2", "--process-name", "mine"});
  CHECK(c.options.once);
  CHECK(c.options.grace == std::chrono::milliseconds(250));
  CHECK(c.options.threads == 2);
  CHECK(c.options.process_name == "mine");
}

TEST_CASE("cli: every bad flag is refused in one line naming it", "[cli][errors]") {
  struct bad {
    std::vector<std::string> args;
    std::string flag;
  };
  const std::vector<bad> cases = {
      {{"--echo", "--talk"}, "--talk"},
      {{"--talk", "--exec", "cat"}, "--exec"},
      {{"-s", "65536"}, "--service"},
      {{"-s", "-1"}, "--service"},
      {{"-p", "x1"}, "(accepted)"},  // a name: resolved later, against the services database
      {{"-s", "1", "-p", "2"}, "--local-port"},
      {{"-a", "1", "--address", "2"}, "--address"},
      {{"--ipv6", "yes"}, "--ipv6"},
      {{"--ipv6=on", "-a", "127.0.0.1"}, "--local-address"},
      {{"--ipv6=on", "--address", "2130706433"}, "--address"},
      {{"--ipv6=off", "-a", "::1"}, "--local-address"},
      {{"-a", "4294967296"}, "--local-address"},
      {{"-a", ""}, "--local-address"},
      {{"-b", "-3"}, "--backlog"},
      {{"-b", "0"}, "--backlog"},
      {{"-b", "lots"}, "--backlog"},
      {{"--nodelay", "--no-nodelay"}, "--no-nodelay"},
      {{"--keepalive", "--no-keepalive"}, "--no-keepalive"},
      {{"--error", "--no-error"}, "--no-error"},
      {{"--create-stream"}, "--create-stream"},
      {{"--exec"}, "--exec"},
      {{"--sh-exec", ""}, "--sh-exec"},
      {{"--sh-exec", " "}, "--sh-exec"},
      {{"--exec", "/nonexistent/program"}, "--exec"},
      {{"--exec", "no-such-program-anywhere"}, "--exec"},
      {{"--grace", "soon"}, "--grace"},
      {{"--grace", "-1"}, "--grace"},
      {{"--threads", "many"}, "--threads"},
      {{"--announce-format", "{nope}"}, "--announce-format"},
      {{"--announce-format", "{port"}, "--announce-format"},
      {{"--announce-format", ""}, "--announce-format"},
      {{"--log-format", "xml", "-v"}, "--log-format"},
      {{"--log-format", "json"}, "--log-format"},
      {{"--process-name", ""}, "--process-name"},
      {{"--bogus"}, "--bogus"},
      {{"--backlog"}, "--backlog"},
  };
  for (const auto& b : cases) {
    INFO("args: " << b.args.front() << " ...");
    std::string msg = refusal(b.args);
    CHECK(msg.find(b.flag) != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
  }
}

TEST_CASE("cli: find_program searches PATH like execvp", "[cli][exec]") {
  std::string reason;
  auto sh = cli::find_program("sh", reason);
  REQUIRE(sh);
  CHECK(sh->back() == 'h');
  CHECK_FALSE(cli::find_program("/etc/passwd", reason));  // not executable
  CHECK(reason == "Permission denied");
  CHECK_FALSE(cli::find_program("/tmp", reason));
  CHECK(reason == "is a directory");
}

TEST_CASE("cli: --help lists every flag and the usage line", "[cli]") {
  std::string help = cli::help_text();
  for (const char* flag : {"--echo", "--talk", "--discard", "--chargen", "--daytime", "--exec", "--sh-exec",
                           "--service", "--local-port", "--local-address", "--address", "--backlog", "--ipv6",
                           "--nodelay", "--no-nodelay", "--keepalive", "--no-keepalive", "--reuseport",
                           "--process-name", "--announce", "--announce-format", "--wait", "--create-stream",
                           "--error", "--no-error", "--once", "--grace", "--verbose", "--log", "--log-format",
                           "--threads", "--version", "--help"}) {
    INFO(flag);
    CHECK(help.find(flag) != std::string::npos);
  }
  CHECK(help.find("Usage: startup-server") != std::string::npos);
}

TEST_CASE("cli: --version starts with the project's version, then the commit when there is one", "[cli]") {
  const std::string text = cli::version_text();
  INFO(text);
  // STARTUP_SERVER_PROJECT_VERSION is project(VERSION) in CMakeLists.txt.
  CHECK(text.rfind("startup-server " STARTUP_SERVER_PROJECT_VERSION, 0) == 0);
  // "(git 1a2b3c4)" or "(git 1a2b3c4-dirty)" from a git checkout; nothing more from a tarball.
  static const std::regex shape(R"(startup-server [0-9]+\.[0-9]+\.[0-9]+( \(git [0-9a-f]{7,}(-dirty)?\))?\n)");
  CHECK(std::regex_match(text, shape));
}

TEST_CASE("cli: a port as the first word, as nc -l users type it", "[cli][shell]") {
  CHECK(parse({"7000"}).options.service == "7000");
  CHECK(parse({"--talk", "7001", "-a", "127.0.0.1"}).options.service == "7001");
  CHECK(parse({"http"}).options.service == "http");
  const std::string two = refusal({"7000", "8000"});
  CHECK(two.find("8000") != std::string::npos);
  CHECK(two.find("one port") != std::string::npos);
  CHECK(refusal({"7000", "--service", "8000"}).find("--service") != std::string::npos);
  CHECK(refusal({"7000", "-p", "8000"}).find("--local-port") != std::string::npos);
  CHECK(refusal({"99999"}).find("99999") != std::string::npos);
}

TEST_CASE("cli: an unknown flag names itself, suggests the nearest, and points at --help", "[cli][shell]") {
  const std::string port = refusal({"--port", "7000"});
  CHECK(port == "unknown option --port (did you mean --service?); see startup-server --help");
  const std::string listen = refusal({"-l", "7000"});
  CHECK(listen.find("-l (startup-server always listens; give the port)") != std::string::npos);
  CHECK(refusal({"--servcie", "7000"}).find("did you mean --service?") != std::string::npos);
  CHECK(refusal({"--grase", "1"}).find("did you mean --grace?") != std::string::npos);
  // Several, in the order typed, in one line.
  const std::string several = refusal({"--frobnicate", "-l", "--port", "7000"});
  CHECK(several.rfind("unknown options --frobnicate, -l (", 0) == 0);
  CHECK(several.find("--port (did you mean --service?); see startup-server --help") != std::string::npos);
  CHECK(several.find('\n') == std::string::npos);
}

TEST_CASE("cli: a flag without its value reads like the other messages", "[cli][shell]") {
  CHECK(refusal({"--service"}) == "--service needs a port or a service name");
  CHECK(refusal({"-s"}) == "--service needs a port or a service name");
  CHECK(refusal({"-a"}) == "--local-address needs an address");
  CHECK(refusal({"--log"}) == "--log needs a file name");
  CHECK(refusal({"--backlog"}) == "--backlog needs a positive number or max");
}

TEST_CASE("cli: --announce takes its destination after '=' only", "[cli][shell]") {
  CHECK(parse({"--announce"}).announce.destination == "stdout");
  CHECK(parse({"--announce=-"}).announce.destination == "stdout");
  CHECK(parse({"--announce", "7000"}).options.service == "7000");  // the word after is the port
  CHECK(refusal({"--announce=json"}) == "--announce=json: did you mean --announce-format=json?");
  CHECK(refusal({"--announce=text"}).find("--announce-format=text") != std::string::npos);
  // A word that can only be a destination is taken as one; one that could be a service is refused.
  CHECK(parse({"--announce", "out.txt"}).announce.destination == "out.txt");
  CHECK(parse({"--announce", "stderr"}).announce.destination == "stderr");
  CHECK(parse({"--announce", "/tmp/port"}).announce.destination == "/tmp/port");
  CHECK(refusal({"--announce", "portfile"}).find("--announce=portfile") != std::string::npos);
}

TEST_CASE("cli: startup-server's own flags after --exec PROG are the program's, with a warning", "[cli][shell]") {
  auto c = parse({"--exec", "cat", "-s", "7700"});
  CHECK(c.options.exec_argv.size() == 3);
  CHECK(c.options.exec_argv[1] == "-s");
  REQUIRE(c.warnings.size() == 1);
  CHECK(c.warnings[0].find("-s after --exec") != std::string::npos);
  CHECK(c.warnings[0].find("go before --exec") != std::string::npos);
  CHECK(parse({"--exec", "cat", "-u"}).warnings.empty());
}

TEST_CASE("cli: --wait with -v but no --log is refused: the log would go nowhere", "[cli][shell]") {
  const std::string msg = refusal({"--wait", "-v"});
  CHECK(msg.find("--verbose") != std::string::npos);
  CHECK(msg.find("--log FILE") != std::string::npos);
  CHECK(parse({"--wait", "-v", "--log", "/dev/null"}).log.destination == "/dev/null");
}

TEST_CASE("cli: --child-stderr needs an exec handler and a file it can open", "[cli][shell]") {
  CHECK(refusal({"--child-stderr", "/dev/null"}).find("--child-stderr") != std::string::npos);
  CHECK(refusal({"--child-stderr", "/nonexistent/dir/file", "--exec", "cat"}).find("--child-stderr") !=
        std::string::npos);
  CHECK(parse({"--child-stderr", "/dev/null", "--exec", "cat"}).options.exec_stderr == "/dev/null");
}

TEST_CASE("cli: addresses may be written in brackets", "[cli][shell]") {
  CHECK(parse({"-a", "[::1]"}).options.local_address == "::1");
  CHECK(parse({"--address", "[127.0.0.1]"}).options.local_address == "127.0.0.1");
}

TEST_CASE("cli: --stdio is a handler, one of a kind", "[cli][shell]") {
  CHECK(parse({"--stdio"}).options.function == handler::stdio);
  CHECK(refusal({"--stdio", "--echo"}).find("--stdio") != std::string::npos);
  CHECK(refusal({"--stdio", "--wait"}).find("--stdio") != std::string::npos);
}

TEST_CASE("cli: --help fits 80 columns, has no doubled blank lines and shows the seed's default name",
          "[cli][shell]") {
  const std::string help = cli::help_text();
  std::istringstream lines(help);
  std::string line, previous = "x";
  while (std::getline(lines, line)) {
    INFO(line);
    CHECK(line.size() <= 80);
    CHECK_FALSE((line.empty() && previous.empty()));
    previous = line;
  }
  CHECK(help.find("--announce[=DEST]") != std::string::npos);
  CHECK(help.find("NIL server") != std::string::npos);
  CHECK(help.find("[PORT]") != std::string::npos);
}

TEST_CASE("cli: --idle-timeout and --trace say so where the server does not see the traffic", "[cli][guard]") {
  auto raw = parse({"--idle-timeout", "5", "-x", "--exec", "cat"});
  REQUIRE(raw.warnings.size() == 2);
  CHECK(raw.warnings[0].find("--idle-timeout does not apply to --exec without --create-stream") != std::string::npos);
  CHECK(raw.warnings[1].find("--trace does not apply") != std::string::npos);
  CHECK(parse({"--idle-timeout", "5", "--stdio"}).warnings.size() == 1);
  CHECK(parse({"--idle-timeout", "5", "-x", "--create-stream", "--exec", "cat"}).warnings.empty());
  CHECK(parse({"--idle-timeout", "5", "-x"}).warnings.empty());
}
