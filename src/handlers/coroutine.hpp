// Running a coroutine handler on its connection's thread.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

#include "handlers/connection.hpp"

namespace startup_server::detail {

inline constexpr auto as_tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

// Runs body on c's thread; c is closed when it ends, however it ends (an exception is
// reported as a warning and ends only this connection).
void spawn_handler(connection& c, asio::awaitable<void> body);

}  // namespace startup_server::detail
