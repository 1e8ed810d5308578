// One timer per connection, re-armed for the time left rather than reset on every byte.
#include "stream/idle_timer.hpp"

namespace startup_server::detail {

asio::awaitable<std::size_t> idle_timer::read_some(asio::mutable_buffer into, std::error_code& ec) {
  const std::size_t n = co_await decorator::read_some(into, ec);
  if (n) last_ = std::chrono::steady_clock::now();
  co_return n;
}

asio::awaitable<std::size_t> idle_timer::write(asio::const_buffer data, std::error_code& ec) {
  const std::size_t n = co_await decorator::write(data, ec);
  if (n) last_ = std::chrono::steady_clock::now();
  co_return n;
}

void idle_timer::arm(std::chrono::steady_clock::duration after) {
  timer_.expires_after(after);
  timer_.async_wait([this, alive = alive_](std::error_code ec) {
    if (!ec && *alive) expired();
  });
}

void idle_timer::expired() {
  const auto quiet = std::chrono::steady_clock::now() - last_;
  if (quiet < timeout_) return arm(timeout_ - quiet);
  if (on_idle_) on_idle_();
  close();
}

}  // namespace startup_server::detail
