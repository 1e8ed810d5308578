// Integration tests: talk (the seed's dialogue), discard, chargen, daytime, and announce output.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "startup_server/client.hpp"
#include "support/test_support.hpp"

using namespace test_support;
using namespace std::chrono_literals;

TEST_CASE("talk: the seed's talking-to-myself dialogue, verbatim", "[talk]") {
  auto s = start_server({"--talk"});
  // The seed's own client: open-tcp-stream, write-line, force-output, read-line.
  auto talk = startup_server::open_tcp_stream("127.0.0.1", std::to_string(s.port));
  talk.set_timeout(5s);
  for (const char* monolog : {"Hello self.", "Why don't you say something original?", "Talk to you later then. Bye.",
                              "Talk to you later then.  Bye."}) {
    talk.write_line(monolog);
    auto reply = talk.read_line();
    REQUIRE(reply);
    CHECK(*reply == std::string("You sent: '") + monolog + "'");
  }
  talk.shutdown_write();
  CHECK_FALSE(talk.read_line());
}

TEST_CASE("talk: a last line without a newline is answered too", "[talk]") {
  auto s = start_server({"--talk"});
  auto c = client::connect_or_throw(s.port);
  auto r = c.exchange("first\nno newline at the end", std::nullopt, true, 5s);
  CHECK(r.eof);
  CHECK(r.data == "You sent: 'first'\nYou sent: 'no newline at the end'\n");
}

TEST_CASE("talk: replies come line by line, before the client closes", "[talk]") {
  auto s = start_server({"--talk"});
  auto c = client::connect_or_throw(s.port);
  REQUIRE(c.send_all("one\n"));
  CHECK(c.read_line(5s) == std::optional<std::string>("You sent: 'one'\n"));
  REQUIRE(c.send_all("tw"));
  REQUIRE(c.send_all("o\nthree\n"));
  CHECK(c.read_line(5s) == std::optional<std::string>("You sent: 'two'\n"));
  CHECK(c.read_line(5s) == std::optional<std::string>("You sent: 'three'\n"));
  c.shutdown_write();
  auto rest = c.read_all(5s);
  CHECK(rest.eof);
  CHECK(rest.data.empty());
}

TEST_CASE("discard: everything is read and nothing comes back (RFC 863)", "[discard]") {
  auto s = start_server({"--discard"});
  auto c = client::connect_or_throw(s.port);
  auto r = c.exchange(random_bytes(2 * 1024 * 1024, 20), std::nullopt, true, 20s);
  CHECK_FALSE(r.timed_out);
  CHECK(r.eof);
  CHECK(r.error == 0);
  CHECK(r.data.empty());
}

TEST_CASE("chargen: 72 printable characters and CRLF per line, each line starting one further on (RFC 864)",
          "[chargen]") {
  auto s = start_server({"--chargen"});
  auto c = client::connect_or_throw(s.port);
  constexpr std::size_t line_length = 74;
  constexpr std::size_t lines = 200;  // more than the 95-line cycle
  auto r = c.read_exact(line_length * lines, 10s);
  REQUIRE(r.data.size() == line_length * lines);
  int previous_start = -1;
  for (std::size_t l = 0; l < lines; ++l) {
    const std::string line = r.data.substr(l * line_length, line_length);
    INFO("line " << l << ": " << line);
    REQUIRE(line.substr(72) == "\r\n");
    for (std::size_t i = 0; i < 72; ++i) {
      REQUIRE(line[i] >= ' ');
      REQUIRE(line[i] <= '~');
      if (i > 0) REQUIRE((line[i - 1] - ' ' + 1) % 95 == line[i] - ' ');
    }
    const int start = line[0] - ' ';
    if (previous_start >= 0) REQUIRE(start == (previous_start + 1) % 95);
    previous_start = start;
  }
  c.close();
  // The server goes on serving after the client went away mid-stream.
  auto again = client::connect_or_throw(s.port);
  CHECK(again.read_exact(line_length, 5s).data.size() == line_length);
}

TEST_CASE("daytime: one line with the date and time, then the server closes (RFC 867)", "[daytime]") {
  auto s = start_server({"--daytime"});
  auto c = client::connect_or_throw(s.port);
  auto r = c.read_all(5s);
  CHECK(r.eof);
  REQUIRE(r.data.size() > 2);
  CHECK(r.data.substr(r.data.size() - 2) == "\r\n");
  CHECK(r.data.find('\n') == r.data.size() - 1);
  time_t now = ::time(nullptr);
  tm local{};
  ::localtime_r(&now, &local);
  CHECK(r.data.find(std::to_string(1900 + local.tm_year)) != std::string::npos);
}

TEST_CASE("announce: text says 'listening on ADDRESS:PORT' and the port is the one listening", "[announce]") {
  child_process p({binary_path(), "-a", "127.0.0.1", "-s", "0", "--announce"});
  auto line = p.stdout_line(10s);
  REQUIRE(line);
  const std::string prefix = "listening on 127.0.0.1:";
  REQUIRE(line->rfind(prefix, 0) == 0);
  const auto port = static_cast<std::uint16_t>(std::stoul(line->substr(prefix.size())));
  CHECK(client::connect(port).has_value());
  REQUIRE(p.send_signal(SIGTERM));
  CHECK(p.wait_exit(10s) == 0);
  CHECK(p.out() == *line + "\nterminated 127.0.0.1:" + std::to_string(port) + "\n");
}

TEST_CASE("announce: json lines for listening and terminated carry address, port, family, pid and name",
          "[announce]") {
  auto s = start_server({}, announce_style::json);
  auto listening = parse_json_line(s.announce_line);
  REQUIRE(listening);
  CHECK(listening->string("event") == "listening");
  CHECK(listening->string("address") == "127.0.0.1");
  CHECK(listening->number("port") == s.port);
  CHECK(listening->string("family") == "ipv4");
  CHECK(listening->number("pid") == s.proc.pid());
  CHECK(listening->string("name") == "NIL server");
  REQUIRE(s.proc.send_signal(SIGTERM));
  CHECK(s.proc.wait_exit(10s) == 0);
  auto lines = split_lines(s.proc.out());
  REQUIRE(lines.size() == 2);
  auto terminated = parse_json_line(lines[1]);
  REQUIRE(terminated);
  CHECK(terminated->string("event") == "terminated");
  CHECK(terminated->number("pid") == s.proc.pid());
  CHECK(terminated->string("name") == "NIL server");
}

TEST_CASE("announce: a template fills {address} {port} {family} {pid} {name} for the listening event",
          "[announce]") {
  child_process p({binary_path(), "-a", "127.0.0.1", "-s", "0", "--process-name", "tpl test", "--announce",
                   "--announce-format={address}|{port}|{family}|{pid}|{name}|{{x}}"});
  auto line = p.stdout_line(10s);
  REQUIRE(line);
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t bar; (bar = line->find('|', start)) != std::string::npos; start = bar + 1)
    parts.push_back(line->substr(start, bar - start));
  parts.push_back(line->substr(start));
  REQUIRE(parts.size() == 6);
  CHECK(parts[0] == "127.0.0.1");
  CHECK(client::connect(static_cast<std::uint16_t>(std::stoul(parts[1]))).has_value());
  CHECK(parts[2] == "ipv4");
  CHECK(parts[3] == std::to_string(p.pid()));
  CHECK(parts[4] == "tpl test");
  CHECK(parts[5] == "{x}");
  REQUIRE(p.send_signal(SIGTERM));
  CHECK(p.wait_exit(10s) == 0);
  CHECK(p.out() == *line + "\n");  // a template announces the listening event only
}

TEST_CASE("announce: --announce=FILE writes the lines to that file, not to stdout", "[announce]") {
  temp_dir dir;
  const std::string file = dir.file("announce.txt");
  child_process p({binary_path(), "-a", "127.0.0.1", "-s", "0", "--announce=" + file, "--announce-format={port}"});
  std::optional<std::string> content;
  REQUIRE(wait_until(
      [&] {
        content = read_file(file);
        return content && content->find('\n') != std::string::npos;
      },
      10s));
  const auto port = static_cast<std::uint16_t>(std::stoul(*content));
  CHECK(*content == std::to_string(port) + "\n");
  auto c = client::connect_or_throw(port);
  CHECK(c.exchange("ping", 4, false, 5s).data == "ping");
  c.close();
  REQUIRE(p.send_signal(SIGTERM));
  CHECK(p.wait_exit(10s) == 0);
  CHECK(p.out().empty());
}

TEST_CASE("announce: --announce=stderr writes the lines to stderr", "[announce]") {
  child_process p({binary_path(), "-a", "127.0.0.1", "-s", "0", "--announce=stderr"});
  auto line = p.stderr_line(10s);
  REQUIRE(line);
  CHECK(line->rfind("listening on 127.0.0.1:", 0) == 0);
  REQUIRE(p.send_signal(SIGTERM));
  CHECK(p.wait_exit(10s) == 0);
  CHECK(p.out().empty());
}

TEST_CASE("announce: the default process name is 'NIL server' for port 0 and --process-name replaces it",
          "[announce][process-name]") {
  {
    auto s = start_server_with({"-a", "127.0.0.1"}, {}, announce_style::json);
    CHECK(parse_json_line(s.announce_line)->string("name") == "NIL server");
    CHECK(read_file("/proc/" + std::to_string(s.proc.pid()) + "/comm") == "NIL server\n");
  }
  {
    auto s = start_server({"--process-name", "my \"quoted\" server"}, announce_style::json);
    CHECK(parse_json_line(s.announce_line)->string("name") == "my \"quoted\" server");
    // The process name too, as far as the kernel keeps it (15 bytes).
    CHECK(read_file("/proc/" + std::to_string(s.proc.pid()) + "/comm") == "my \"quoted\" ser\n");
  }
}

TEST_CASE("announce: a service name gives the quoted default name, a port number the bare one",
          "[announce][process-name]") {
  // 192.0.2.1 (TEST-NET-1) is on no interface: the bind fails, so no port is ever taken,
  // and the error announce still names the server.
  for (auto [service, name] : {std::pair{"echo", "\"echo\" server"}, std::pair{"7000", "7000 server"}}) {
    auto r = run_binary({"-a", "192.0.2.1", "-s", service, "--announce", "--announce-format=json"});
    INFO("service " << service << "; stdout: " << r.out << "; stderr: " << r.err);
    CHECK(r.status == 68);
    auto lines = split_lines(r.out);
    REQUIRE(lines.size() >= 1);
    auto error = parse_json_line(lines[0]);
    REQUIRE(error);
    CHECK(error->string("event") == "error");
    CHECK(error->string("name") == name);
    CHECK(error->string("message").value_or("").find("192.0.2.1") != std::string::npos);
    CHECK(r.err.find(name) != std::string::npos);
  }
}

TEST_CASE("talk: a 4 MiB line without a newline streams back without the server holding it", "[talk]") {
  auto s = start_server({"--talk"});
  const long rss_before = rss_kib(s.proc.pid());
  auto c = client::connect_or_throw(s.port);
  const std::string line(4 * 1024 * 1024, 'a');
  const std::string prefix = "You sent: '";
  // The reply to the unfinished line arrives while it is still being sent.
  auto r = c.exchange(line, prefix.size() + line.size(), false, 20s);
  REQUIRE(r.data.size() == prefix.size() + line.size());
  CHECK(r.data == prefix + line);
  const long rss_after = rss_kib(s.proc.pid());
  INFO("server RSS before " << rss_before << " KiB, after " << rss_after << " KiB");
  CHECK(rss_after - rss_before < 16 * 1024);
  auto end = c.exchange("", std::nullopt, true, 5s);
  CHECK(end.eof);
  CHECK(end.data == "'\n");
}

TEST_CASE("talk: any bytes, NUL and high bytes included, are answered unchanged", "[talk]") {
  auto s = start_server({"--talk"});
  auto c = client::connect_or_throw(s.port);
  std::string line = random_bytes(10000, 50);
  for (char& ch : line)
    if (ch == '\n' || ch == '\r') ch = 'x';
  auto r = c.exchange(line + "\n", std::nullopt, true, 10s);
  CHECK(r.eof);
  CHECK(r.data == "You sent: '" + line + "'\n");
}
