// spawn_handler: co_spawn with a completion that closes the connection.
#include "handlers/coroutine.hpp"

#include <asio/co_spawn.hpp>

namespace startup_server::detail {

void spawn_handler(connection& c, asio::awaitable<void> body) {
  asio::co_spawn(c.plain.plain_socket()->get_executor(), std::move(body), [&c](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        c.owner->warn(std::string("connection handler: ") + ex.what());
      } catch (...) {
        c.owner->warn("connection handler: an exception of unknown type");
      }
    }
    c.close();
  });
}

}  // namespace startup_server::detail
