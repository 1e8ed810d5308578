// The traffic trace: a decorator that tells what passes, both ways, as it passes.
#pragma once

#include <functional>

#include "startup_server/events.hpp"
#include "stream/decorator.hpp"

namespace startup_server::detail {

class trace final : public decorator {
 public:
  // tell sees every read and written chunk; it must not throw (the server wraps it).
  using teller = std::function<void(const traffic_record&)>;
  template <class Inner>
  trace(Inner&& inner, std::uint64_t id, teller tell)
      : decorator(std::forward<Inner>(inner)), id_(id), tell_(std::move(tell)) {}

  asio::awaitable<std::size_t> read_some(asio::mutable_buffer into, std::error_code& ec) override {
    const std::size_t n = co_await decorator::read_some(into, ec);
    if (n) tell_({id_, traffic_record::direction::in, {static_cast<const char*>(into.data()), n}});
    co_return n;
  }
  asio::awaitable<std::size_t> write(asio::const_buffer data, std::error_code& ec) override {
    const std::size_t n = co_await decorator::write(data, ec);
    if (n) tell_({id_, traffic_record::direction::out, {static_cast<const char*>(data.data()), n}});
    co_return n;
  }

 private:
  std::uint64_t id_;
  teller tell_;
};

}  // namespace startup_server::detail
