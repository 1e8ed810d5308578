// The handler table: every handler in one place, for the server and the command line alike.
#pragma once

#include <span>

#include "handlers/connection.hpp"

namespace startup_server::detail {

// One row per handler. Adding a handler is adding its row (and its enum value).
struct handler_entry {
  handler id;
  const char* flag;  // the command line's flag ("--echo"), or null for library-only handlers
  const char* help;  // the flag's line in --help
  // Starts serving c on c's thread. The handler calls c.close() when it is done; until then
  // it owns the connection's stream.
  void (*start)(connection& c);
  // The accept loop takes the next connection only once this one has closed (--stdio:
  // there is one terminal).
  bool one_at_a_time = false;
};

std::span<const handler_entry> handler_table() noexcept;
const handler_entry& handler_for(handler id) noexcept;

// The rows' start functions, one per handler file.
void start_echo(connection& c);
void start_discard(connection& c);
void start_talk(connection& c);
void start_chargen(connection& c);
void start_daytime(connection& c);
void start_exec(connection& c);
void start_user_function(connection& c);
void start_stdio(connection& c);

}  // namespace startup_server::detail
