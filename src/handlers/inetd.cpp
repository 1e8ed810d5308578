// The classic inetd built-ins that only send: chargen (RFC 864) and daytime (RFC 867).
#include <time.h>

#include <string>

#include "handlers/coroutine.hpp"
#include "handlers/table.hpp"

namespace startup_server::detail {
namespace {

// RFC 864's 95 printable characters in 72-column lines, each starting one further on.
const std::string& chargen_block() {
  static const std::string block = [] {
    std::string b;
    for (int line = 0; line < 95; ++line) {
      for (int i = 0; i < 72; ++i) b.push_back(static_cast<char>(' ' + (line + i) % 95));
      b += "\r\n";
    }
    return b;
  }();
  return block;
}

asio::awaitable<void> serve_chargen(connection& c) {
  // Input is ignored (RFC 864); the stream ends when the client goes away.
  const std::string& block = chargen_block();
  for (std::error_code ec; !ec;) co_await c.stream().write(asio::buffer(block), ec);
}

asio::awaitable<void> serve_daytime(connection& c) {
  // RFC 867's suggested form: "Weekday, Month Day, Year Time-Zone".
  char text[128];
  const time_t now = ::time(nullptr);
  tm local{};
  ::localtime_r(&now, &local);
  const std::size_t len = ::strftime(text, sizeof text, "%A, %B %-d, %Y %H:%M:%S-%Z\r\n", &local);
  std::error_code ec;
  co_await c.stream().write(asio::buffer(text, len), ec);
  if (!ec) c.stream().shutdown_send();
}

}  // namespace

void start_chargen(connection& c) { spawn_handler(c, serve_chargen(c)); }
void start_daytime(connection& c) { spawn_handler(c, serve_daytime(c)); }

}  // namespace startup_server::detail
