// Unit tests: announce lines, connection log lines, and the talk transform.
#include <catch2/catch.hpp>

#include "cli/announce_format.hpp"
#include "cli/json.hpp"
#include "cli/log_format.hpp"
#include "handlers/talk_transform.hpp"

using namespace startup_server;
using namespace startup_server::detail;

namespace {

announce_event listening() {
  announce_event e;
  e.what = announce_event::kind::listening;
  e.address = "127.0.0.1";
  e.port = 41234;
  e.family = "ipv4";
  return e;
}

const announce_identity who{4242, "NIL server"};

std::string talk(std::initializer_list<std::string> chunks, bool eof = true) {
  talk_transform t;
  std::string out;
  for (const auto& c : chunks) t.feed(c.data(), c.size(), out);
  if (eof) t.end(out);
  return out;
}

}  // namespace

TEST_CASE("announce: text format", "[announce]") {
  CHECK(format_announce(listening(), "text", who) == "listening on 127.0.0.1:41234");
  auto v6 = listening();
  v6.address = "::1";
  CHECK(format_announce(v6, "text", who) == "listening on [::1]:41234");
  auto err = listening();
  err.what = announce_event::kind::error;
  err.message = "unable to bind to 127.0.0.1:80: Permission denied";
  CHECK(format_announce(err, "text", who) == "error: unable to bind to 127.0.0.1:80: Permission denied");
  auto end = listening();
  end.what = announce_event::kind::terminated;
  CHECK(format_announce(end, "text", who) == "terminated 127.0.0.1:41234");
}

TEST_CASE("announce: json format carries every field", "[announce]") {
  CHECK(format_announce(listening(), "json", who) ==
        R"({"event":"listening","address":"127.0.0.1","port":41234,"family":"ipv4","pid":4242,"name":"NIL server"})");
  announce_event err;
  err.what = announce_event::kind::error;
  err.message = "unable to resolve service 'x': unknown service";
  CHECK(format_announce(err, "json", who) ==
        R"({"event":"error","pid":4242,"name":"NIL server","message":"unable to resolve service 'x': unknown service"})");
  announce_identity quoted{1, "\"http\" server"};
  auto end = listening();
  end.what = announce_event::kind::terminated;
  CHECK(format_announce(end, "json", quoted).find(R"("name":"\"http\" server")") != std::string::npos);
}

TEST_CASE("announce: templates fill fields for the listening event only", "[announce]") {
  CHECK(format_announce(listening(), "{port}", who) == "41234");
  CHECK(format_announce(listening(), "{address} {port} {family} {pid} {name}", who) ==
        "127.0.0.1 41234 ipv4 4242 NIL server");
  CHECK(format_announce(listening(), "{{{port}}}", who) == "{41234}");
  auto end = listening();
  end.what = announce_event::kind::terminated;
  CHECK(format_announce(end, "{port}", who).empty());
}

TEST_CASE("announce: format checks", "[announce]") {
  std::string problem;
  CHECK(check_announce_format("text", problem));
  CHECK(check_announce_format("json", problem));
  CHECK(check_announce_format("port={port}", problem));
  CHECK_FALSE(check_announce_format("{prot}", problem));
  CHECK(problem.find("{prot}") != std::string::npos);
  CHECK_FALSE(check_announce_format("{port", problem));
  CHECK_FALSE(check_announce_format("port}", problem));
  CHECK_FALSE(check_announce_format("", problem));
}

TEST_CASE("announce: json strings are escaped", "[announce]") {
  CHECK(json_quote("a\"b\\c\n\x01") == R"("a\"b\\c\n\u0001")");
}

TEST_CASE("log: close records in text and json", "[log]") {
  connection_record r;
  r.what = connection_record::kind::close;
  r.id = 3;
  r.peer_address = "127.0.0.1";
  r.peer_port = 5555;
  r.local_address = "127.0.0.1";
  r.local_port = 7000;
  r.bytes_in = 12;
  r.bytes_out = 12;
  r.duration = std::chrono::milliseconds(1500);
  CHECK(format_connection_record(r, "7000 server", false) ==
        "startup-server: 7000 server: #3 close 127.0.0.1:5555 -> 127.0.0.1:7000 in=12 out=12 duration=1.500s");
  CHECK(format_connection_record(r, "7000 server", true) ==
        R"({"event":"close","id":3,"name":"7000 server","peer_address":"127.0.0.1","peer_port":5555,)"
        R"("local_address":"127.0.0.1","local_port":7000,"bytes_in":12,"bytes_out":12,"duration":1.500000})");
  r.bytes_in.reset();
  r.bytes_out.reset();
  r.child_pid = 99;
  r.term_signal = 9;
  std::string json = format_connection_record(r, "x", true);
  CHECK(json.find(R"("bytes_in":null)") != std::string::npos);
  CHECK(json.find(R"("child_pid":99,"signal":9)") != std::string::npos);
  CHECK(format_connection_record(r, "x", false).find("in=- out=- duration=1.500s pid=99 signal=9") != std::string::npos);
}

TEST_CASE("log: open records carry addresses only", "[log]") {
  connection_record r;
  r.id = 1;
  r.peer_address = "::1";
  r.peer_port = 1;
  r.local_address = "::1";
  r.local_port = 2;
  CHECK(format_connection_record(r, "n", false) == "startup-server: n: #1 open [::1]:1 -> [::1]:2");
}

TEST_CASE("talk: each line is answered as the seed's talk-on-stream", "[talk]") {
  CHECK(talk({"Hello self.\n"}) == "You sent: 'Hello self.'\n");
  CHECK(talk({"a\nb\n"}) == "You sent: 'a'\nYou sent: 'b'\n");
  CHECK(talk({"\n"}) == "You sent: ''\n");
}

TEST_CASE("talk: lines split across reads are answered whole", "[talk]") {
  CHECK(talk({"Hel", "lo", "\n"}) == "You sent: 'Hello'\n");
  CHECK(talk({"ab\r", "\ncd\n"}) == "You sent: 'ab'\nYou sent: 'cd'\n");
}

TEST_CASE("talk: a last line without newline is answered at EOF", "[talk]") {
  CHECK(talk({"bye"}) == "You sent: 'bye'\n");
  CHECK(talk({""}).empty());
  CHECK(talk({"x\r"}) == "You sent: 'x\r'\n");
}

TEST_CASE("talk: a CR not before LF is part of the line", "[talk]") {
  CHECK(talk({"a\rb\n"}) == "You sent: 'a\rb'\n");
}
