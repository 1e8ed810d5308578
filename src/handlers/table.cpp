// The rows of the handler table.
#include "handlers/table.hpp"

namespace startup_server::detail {
namespace {

constexpr handler_entry rows[] = {
    {handler::echo, "--echo", "Send every byte back until the client closes", start_echo},
    {handler::talk, "--talk", "Answer each line with: You sent: '<line>'", start_talk},
    {handler::discard, "--discard", "Read and drop everything (RFC 863)", start_discard},
    {handler::chargen, "--chargen", "Send rotating character lines (RFC 864)", start_chargen},
    {handler::daytime, "--daytime", "Send the date and time, then close (RFC 867)", start_daytime},
    {handler::stdio, "--stdio",
     "Join one connection at a time to this terminal: what the client sends to stdout, stdin to the client",
     start_stdio, true},
    // --exec and --sh-exec take the rest of the line or a string: the command line parses them itself.
    {handler::exec, nullptr, "Run a program per connection", start_exec},
    {handler::user, nullptr, "Call the library user's function per connection", start_user_function},
};

}  // namespace

std::span<const handler_entry> handler_table() noexcept { return rows; }

const handler_entry& handler_for(handler id) noexcept {
  for (const auto& row : rows)
    if (row.id == id) return row;
  return rows[0];
}

}  // namespace startup_server::detail
