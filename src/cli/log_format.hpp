// Formatting of connection log lines (text and json).
#pragma once

#include <string>

#include "startup_server/options.hpp"

namespace startup_server::detail {

// One line, without newline. name is the server's process name; json selects the format.
std::string format_connection_record(const connection_record& r, const std::string& name, bool json);

}  // namespace startup_server::detail
