// The seed's talk server over the byte stream.
#include <memory>

#include "handlers/coroutine.hpp"
#include "handlers/table.hpp"
#include "handlers/talk_transform.hpp"

namespace startup_server::detail {
namespace {

// Small reads bound the reply (at most 13 bytes out per byte in).
constexpr std::size_t talk_chunk = 4096;

asio::awaitable<void> serve_talk(connection& c) {
  byte_stream& stream = c.stream();
  std::unique_ptr<char[]> buffer(new char[talk_chunk]);
  talk_transform talk;
  std::string out;
  for (;;) {
    std::error_code ec;
    const std::size_t n = co_await stream.read_some(asio::buffer(buffer.get(), talk_chunk), ec);
    out.clear();
    if (ec == asio::error::eof) {
      talk.end(out);
      if (!out.empty()) co_await stream.write(asio::buffer(out), ec);
      if (!ec) stream.shutdown_send();
      co_return;
    }
    if (ec) co_return;
    talk.feed(buffer.get(), n, out);
    if (!out.empty()) co_await stream.write(asio::buffer(out), ec);
    if (ec) co_return;
    if (out.capacity() > 16 * talk_chunk) std::string().swap(out);
  }
}

}  // namespace

void start_talk(connection& c) { spawn_handler(c, serve_talk(c)); }

}  // namespace startup_server::detail
