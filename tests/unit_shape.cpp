// Library tests of the seams: a stream decorator, admission steps, and the user's own function.
#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include "server/fault_hooks.hpp"
#include "stream/decorator.hpp"
#include "startup_server/startup_server.hpp"
#include "support/loopback.hpp"

using namespace startup_server;
using namespace std::chrono_literals;

namespace {

using test_support::loopback;
using clear_hooks = test_support::clear_hooks_at_end;

tcp_stream connect(server& s) {
  tcp_stream c = open_tcp_stream("127.0.0.1", std::to_string(s.local_port()));
  c.set_timeout(5s);
  return c;
}

// A decorator that forwards, counting the reads it passes on: what TLS or a trace look like.
struct counting_stream final : detail::decorator {
  counting_stream(detail::byte_stream& inner, std::atomic<int>& reads) : detail::decorator(inner), reads_(reads) {}
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer into, std::error_code& ec) override {
    ++reads_;
    co_return co_await detail::decorator::read_some(into, ec);
  }

 private:
  std::atomic<int>& reads_;
};

struct refuse_all final : detail::admission_step {
  asio::awaitable<detail::admission_verdict> admit(detail::connection&) override {
    co_return detail::admission_verdict{false, "refused: not on the list"};
  }
};

struct pretend_peer final : detail::admission_step {
  asio::awaitable<detail::admission_verdict> admit(detail::connection& c) override {
    // As a PROXY protocol header would: the real client is someone else.
    c.identity().remote = detail::tcp::endpoint(asio::ip::make_address("192.0.2.7"), 4242);
    co_return detail::admission_verdict{};
  }
};

}  // namespace

TEST_CASE("seams: echo and talk serve through a stream decorator", "[library][seams]") {
  clear_hooks cleared;
  std::atomic<int> reads{0};
  detail::faults().decorate = [&](detail::byte_stream& inner) {
    return std::unique_ptr<detail::byte_stream>(new counting_stream(inner, reads));
  };
  std::mutex mutex;
  std::vector<connection_record> closes;
  for (handler h : {handler::echo, handler::talk}) {
    auto o = loopback(h);
    o.connection_log = [&](const connection_record& r) {
      std::lock_guard lock(mutex);
      if (r.what == connection_record::kind::close) closes.push_back(r);
    };
    auto s = start_up_server(o);
    tcp_stream c = connect(*s);
    c.write_line("through the seam");
    c.shutdown_write();
    const std::string got = c.read_all();
    CHECK(got == (h == handler::echo ? "through the seam\n" : "You sent: 'through the seam'\n"));
    c.close();
    server_terminate(*s);
    CHECK_FALSE(s->join());
  }
  CHECK(reads.load() >= 4);
  std::lock_guard lock(mutex);
  REQUIRE(closes.size() == 2);
  CHECK(closes[0].bytes_in == 17u);  // counted by the decorator, the topmost stream
  CHECK(closes[0].bytes_out == 17u);
}

TEST_CASE("seams: an exec child cannot be handed a decorated socket", "[library][seams]") {
  clear_hooks cleared;
  std::atomic<int> reads{0};
  detail::faults().decorate = [&](detail::byte_stream& inner) {
    return std::unique_ptr<detail::byte_stream>(new counting_stream(inner, reads));
  };
  auto o = loopback(handler::exec);
  o.exec_argv = {"/bin/echo", "plaintext"};
  std::promise<std::string> reason;
  std::atomic<bool> once{false};
  o.connection_log = [&](const connection_record& r) {
    if (r.what == connection_record::kind::close && !once.exchange(true)) reason.set_value(r.reason);
  };
  auto s = start_up_server(o);
  tcp_stream c = connect(*s);
  CHECK(c.read_all().empty());
  auto f = reason.get_future();
  REQUIRE(f.wait_for(5s) == std::future_status::ready);
  CHECK(f.get().rfind("refused: ", 0) == 0);
  server_terminate(*s);
  CHECK_FALSE(s->join());
}

TEST_CASE("seams: an admission step that refuses keeps the handler from running, and says why",
          "[library][seams][admission]") {
  clear_hooks cleared;
  detail::faults().admission.push_back(std::make_shared<refuse_all>());
  std::promise<connection_record> closed;
  std::atomic<int> opens{0};
  auto o = loopback(handler::daytime);
  o.connection_log = [&](const connection_record& r) {
    if (r.what == connection_record::kind::open) ++opens;
    else closed.set_value(r);
  };
  auto s = start_up_server(o);
  tcp_stream c = connect(*s);
  CHECK(c.read_all().empty());  // daytime never ran
  auto f = closed.get_future();
  REQUIRE(f.wait_for(5s) == std::future_status::ready);
  const connection_record r = f.get();
  CHECK(r.what == connection_record::kind::refused);
  CHECK(r.reason == "refused: not on the list");
  CHECK(opens.load() == 0);  // one line for a refusal
  server_terminate(*s);
  CHECK_FALSE(s->join());
}

TEST_CASE("seams: an admission step that rewrites the peer is what the log and an exec child see",
          "[library][seams][admission]") {
  clear_hooks cleared;
  detail::faults().admission.push_back(std::make_shared<pretend_peer>());
  std::promise<connection_record> opened;
  std::atomic<bool> once{false};
  auto o = loopback(handler::exec);
  o.exec_argv = {"/bin/sh", "-c", "echo \"$TCPREMOTEIP $TCPREMOTEPORT $TCPLOCALIP\""};
  o.connection_log = [&](const connection_record& r) {
    if (r.what == connection_record::kind::open && !once.exchange(true)) opened.set_value(r);
  };
  auto s = start_up_server(o);
  tcp_stream c = connect(*s);
  CHECK(c.read_all() == "192.0.2.7 4242 127.0.0.1\n");
  auto f = opened.get_future();
  REQUIRE(f.wait_for(5s) == std::future_status::ready);
  const connection_record r = f.get();
  CHECK(r.peer_address == "192.0.2.7");
  CHECK(r.peer_port == 4242);
  CHECK(r.local_address == "127.0.0.1");
  CHECK(r.local_port == s->local_port());
  server_terminate(*s);
  CHECK_FALSE(s->join());
}

TEST_CASE("function: the user's function serves each connection on its own thread with a blocking stream",
          "[library][function]") {
  auto o = loopback(handler::user);
  std::mutex mutex;
  std::vector<std::thread::id> threads;
  o.serve = [&](server&, tcp_stream& stream) {
    {
      std::lock_guard lock(mutex);
      threads.push_back(std::this_thread::get_id());
    }
    while (auto line = stream.read_line()) stream.write_line("You sent: '" + *line + "'");
  };
  auto s = start_up_server(o);
  // Two clients at once: each has its own thread, so one waiting does not hold up the other.
  tcp_stream a = connect(*s);
  tcp_stream b = connect(*s);
  a.write_line("Hello self.");
  b.write_line("Why don't you say something original?");
  CHECK(b.read_line() == "You sent: 'Why don't you say something original?'");
  CHECK(a.read_line() == "You sent: 'Hello self.'");
  a.close();
  b.close();
  server_terminate(*s);
  CHECK_FALSE(s->join());
  std::lock_guard lock(mutex);
  REQUIRE(threads.size() == 2);
  CHECK(threads[0] != threads[1]);
}

TEST_CASE("function: the stream knows both ends", "[library][function]") {
  auto o = loopback(handler::user);
  o.serve = [](server&, tcp_stream& stream) {
    const stream_endpoints& e = stream.endpoints();
    stream.write_line(e.remote_address + " " + std::to_string(e.remote_port) + " " + e.local_address + " " +
                      std::to_string(e.local_port));
  };
  auto s = start_up_server(o);
  tcp_stream c = connect(*s);
  const std::string expected = "127.0.0.1 " + std::to_string(c.endpoints().local_port) + " 127.0.0.1 " +
                               std::to_string(s->local_port());
  CHECK(c.read_line() == expected);
  CHECK(c.endpoints().remote_port == s->local_port());
  server_terminate(*s);
  CHECK_FALSE(s->join());
}

TEST_CASE("function: it may call server_terminate on its server, and join there returns at once",
          "[library][function]") {
  auto o = loopback(handler::user);
  std::promise<std::error_code> join_code;
  o.serve = [&](server& s, tcp_stream& stream) {
    stream.write_line("bye");
    join_code.set_value(s.join().code);
    server_terminate(s);
  };
  auto s = start_up_server(o);
  tcp_stream c = connect(*s);
  CHECK(c.read_line() == "bye");
  CHECK_FALSE(s->join());
  CHECK_FALSE(s->running());
  CHECK(join_code.get_future().get() == std::errc::resource_deadlock_would_occur);
}

TEST_CASE("function: an exception ends its connection only, and is reported", "[library][function]") {
  auto o = loopback(handler::user);
  std::mutex mutex;
  std::vector<std::string> warnings;
  o.diagnostics = [&](const diagnostic& d) {
    std::lock_guard lock(mutex);
    warnings.push_back(d.message);
  };
  std::atomic<int> calls{0};
  o.serve = [&](server&, tcp_stream& stream) {
    if (++calls == 1) throw std::runtime_error("the first one fails");
    stream.write_line("the second one works");
  };
  auto s = start_up_server(o);
  {
    tcp_stream first = connect(*s);
    CHECK(first.read_all().empty());
  }
  tcp_stream second = connect(*s);
  CHECK(second.read_line() == "the second one works");
  server_terminate(*s);
  CHECK_FALSE(s->join());
  std::lock_guard lock(mutex);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("the first one fails") != std::string::npos);
}

TEST_CASE("function: a function blocked reading is woken when the grace period ends", "[library][function]") {
  auto o = loopback(handler::user);
  o.grace = 200ms;
  std::atomic<bool> returned{false};
  o.serve = [&](server&, tcp_stream& stream) {
    char b;
    std::error_code ec;
    stream.read_some(&b, 1, ec);  // the client never sends
    returned = true;
  };
  auto s = start_up_server(o);
  tcp_stream c = connect(*s);
  while (s->active_connections() == 0) std::this_thread::sleep_for(1ms);
  const auto start = std::chrono::steady_clock::now();
  server_terminate(*s);
  CHECK_FALSE(s->join());
  CHECK(std::chrono::steady_clock::now() - start < 3s);
  CHECK(returned.load());
}

TEST_CASE("function: handler::user and serve go together", "[library][function][errors]") {
  startup_condition c;
  CHECK_FALSE(start_up_server(loopback(handler::user), c));
  CHECK(c.stage == startup_condition::phase::usage);
  auto o = loopback(handler::echo);
  o.serve = [](server&, tcp_stream&) {};
  CHECK_FALSE(start_up_server(o, c));
  CHECK(c.stage == startup_condition::phase::usage);
}
