// The --help text: 80 columns, the options by group, in the order they were added.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace startup_server::cli {

std::string format_help(const CLI::App& app);

}  // namespace startup_server::cli
