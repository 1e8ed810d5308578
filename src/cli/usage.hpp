// The words of the command line before the parser sees them: the port as a positional,
// --announce[=DEST], unknown flags with a suggestion, and missing values worded like the rest.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace startup_server::cli {

struct scanned_words {
  std::vector<std::string> options;     // what the parser is to parse, in the order typed
  std::optional<std::string> port;      // `startup-server 7000`: the first positional word
  std::optional<std::string> announce;  // "stdout" for --announce, DEST for --announce=DEST
  std::optional<std::string> trace;     // "text" for -x/--trace, FMT for --trace=FMT
};

// Sorts the words (without --exec and what follows it). Throws usage_error, one line:
// every unknown flag in the order typed, each with the nearest flag or what to do
// instead, then "see startup-server --help"; a flag without its value; a second port.
scanned_words scan_words(const CLI::App& app, const std::vector<std::string>& words);

// The words after --exec PROG that startup-server also knows as its own flags.
std::vector<std::string> own_flags_among(const CLI::App& app, const std::vector<std::string>& program_args);

// The nearest flag for an unknown one, or what to do instead; empty if nothing is near.
std::string suggestion_for(const CLI::App& app, const std::string& unknown);

}  // namespace startup_server::cli
