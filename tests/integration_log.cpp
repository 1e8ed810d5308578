// Integration tests: the connection log (-v, --log FILE, --log-format json) and its byte counts.
#include <signal.h>

#include <catch2/catch.hpp>

#include "support/test_support.hpp"

using namespace test_support;
using namespace std::chrono_literals;

namespace {

// Every line of text parsed as JSON; a line that is not JSON fails the test.
std::vector<json_object> json_lines(const std::string& text) {
  std::vector<json_object> out;
  for (const auto& line : split_lines(text)) {
    auto o = parse_json_line(line);
    INFO("log line: " << line);
    CHECK(o);
    if (o) out.push_back(*o);
  }
  return out;
}

std::vector<json_object> with_event(const std::vector<json_object>& lines, const std::string& event) {
  std::vector<json_object> out;
  for (const auto& o : lines)
    if (o.string("event") == event) out.push_back(o);
  return out;
}

// Each log line is one write(2) of less than PIPE_BUF: seeing part of it means seeing all.

// Counts the lines of `text` that hold `what`.
int lines_with(const std::string& text, const std::string& what) {
  int n = 0;
  for (const auto& line : split_lines(text)) n += line.find(what) != std::string::npos ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("log: -v --log-format json writes an open and a close line per connection with byte counts",
          "[log]") {
  auto s = start_server({"-v", "--log-format", "json"});
  const std::string data = random_bytes(12345, 40);
  std::uint16_t client_port = 0;
  {
    auto c = client::connect_or_throw(s.port);
    client_port = c.local_port();
    auto r = c.exchange(data, std::nullopt, true, 10s);
    REQUIRE(r.eof);
    REQUIRE(r.data == data);
  }
  REQUIRE(s.proc.wait_for_stderr("\"event\":\"close\"", 10s));
  REQUIRE(s.proc.send_signal(SIGTERM));
  REQUIRE(s.proc.wait_exit(10s) == 0);
  auto lines = json_lines(s.proc.err());
  auto opens = with_event(lines, "open");
  auto closes = with_event(lines, "close");
  REQUIRE(opens.size() == 1);
  REQUIRE(closes.size() == 1);
  CHECK(lines.size() == 2);
  for (const auto& o : {opens[0], closes[0]}) {
    CHECK(o.number("id") == 1);
    CHECK(o.string("name") == "NIL server");
    CHECK(o.string("peer_address") == "127.0.0.1");
    CHECK(o.number("peer_port") == client_port);
    CHECK(o.string("local_address") == "127.0.0.1");
    CHECK(o.number("local_port") == s.port);
  }
  CHECK(closes[0].number("bytes_in") == data.size());
  CHECK(closes[0].number("bytes_out") == data.size());
  CHECK(closes[0].number("duration").value_or(-1) >= 0);
  CHECK_FALSE(closes[0].has("child_pid"));
}

TEST_CASE("log: byte counts follow each handler", "[log]") {
  SECTION("talk") {
    auto s = start_server({"--talk", "-v", "--log-format", "json"});
    auto c = client::connect_or_throw(s.port);
    auto r = c.exchange("ab\ncd", std::nullopt, true, 5s);
    REQUIRE(r.data == "You sent: 'ab'\nYou sent: 'cd'\n");
    REQUIRE(s.proc.wait_for_stderr("\"event\":\"close\"", 10s));
    auto closes = with_event(json_lines(s.proc.err()), "close");
    REQUIRE(closes.size() == 1);
    CHECK(closes[0].number("bytes_in") == 5);
    CHECK(closes[0].number("bytes_out") == r.data.size());
  }
  SECTION("discard") {
    auto s = start_server({"--discard", "-v", "--log-format", "json"});
    auto c = client::connect_or_throw(s.port);
    auto r = c.exchange(random_bytes(100000, 41), std::nullopt, true, 10s);
    REQUIRE(r.eof);
    REQUIRE(s.proc.wait_for_stderr("\"event\":\"close\"", 10s));
    auto closes = with_event(json_lines(s.proc.err()), "close");
    REQUIRE(closes.size() == 1);
    CHECK(closes[0].number("bytes_in") == 100000);
    CHECK(closes[0].number("bytes_out") == 0);
  }
}

TEST_CASE("log: -v writes a text line per open and close with the byte counts", "[log]") {
  auto s = start_server({"-v"});
  {
    auto c = client::connect_or_throw(s.port);
    auto r = c.exchange("hello", std::nullopt, true, 5s);
    REQUIRE(r.data == "hello");
  }
  REQUIRE(s.proc.wait_for_stderr(" close ", 10s));
  INFO("stderr: " << s.proc.err());
  CHECK(lines_with(s.proc.err(), " open ") == 1);
  CHECK(lines_with(s.proc.err(), " close ") == 1);
  CHECK(lines_with(s.proc.err(), "in=5 out=5") == 1);
  CHECK(lines_with(s.proc.err(), "127.0.0.1:" + std::to_string(s.port)) == 2);
}

TEST_CASE("log: --log FILE writes the connection log there and not to stderr", "[log]") {
  temp_dir dir;
  const std::string file = dir.file("connections.log");
  auto s = start_server({"--log", file, "--log-format", "json"});
  for (int i = 0; i < 3; ++i) {
    auto c = client::connect_or_throw(s.port);
    REQUIRE(c.exchange("x", std::nullopt, true, 5s).data == "x");
  }
  std::optional<std::string> content;
  CHECK(wait_until(
      [&] {
        content = read_file(file);
        return content && lines_with(*content, "\"event\":\"close\"") == 3 && content->back() == '\n';
      },
      10s));
  REQUIRE(content);
  auto lines = json_lines(*content);
  CHECK(with_event(lines, "open").size() == 3);
  CHECK(with_event(lines, "close").size() == 3);
  REQUIRE(s.proc.send_signal(SIGTERM));
  CHECK(s.proc.wait_exit(10s) == 0);
  CHECK(s.proc.err().empty());
}

TEST_CASE("log: without -v or --log nothing is logged", "[log]") {
  auto s = start_server({});
  {
    auto c = client::connect_or_throw(s.port);
    REQUIRE(c.exchange("x", std::nullopt, true, 5s).data == "x");
  }
  REQUIRE(s.proc.send_signal(SIGTERM));
  CHECK(s.proc.wait_exit(10s) == 0);
  CHECK(s.proc.err().empty());
}
