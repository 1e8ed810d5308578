// The idle timer: a decorator that closes a connection with no traffic either way for too long.
#pragma once

#include <asio/steady_timer.hpp>
#include <functional>

#include "stream/decorator.hpp"

namespace startup_server::detail {

class idle_timer final : public decorator {
 public:
  // on_idle runs (on the connection's thread) just before the stream is closed for idleness.
  template <class Inner>
  idle_timer(Inner&& inner, const asio::any_io_executor& ex, std::chrono::milliseconds timeout,
             std::function<void()> on_idle)
      : decorator(std::forward<Inner>(inner)), timer_(ex), timeout_(timeout), on_idle_(std::move(on_idle)) {
    arm(timeout_);
  }
  ~idle_timer() override { *alive_ = false; }

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer into, std::error_code& ec) override;
  asio::awaitable<std::size_t> write(asio::const_buffer data, std::error_code& ec) override;

 private:
  void arm(std::chrono::steady_clock::duration after);
  void expired();

  asio::steady_timer timer_;
  std::chrono::milliseconds timeout_;
  std::function<void()> on_idle_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  // An expiry may already be queued when the stream goes: it must find it gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace startup_server::detail
