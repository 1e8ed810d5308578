// Command line → server_options: the only code that knows CLI11.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "startup_server/options.hpp"

namespace startup_server::cli {

// A refused command line: message is one line, naming the flag and the problem.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Where and how announcements and connection logs are written.
struct output_spec {
  std::string destination;  // "" (none), "stdout", "stderr" or a file path
  std::string format = "text";  // text, json, or (announce only) a {field} template
};

struct config {
  server_options options;
  output_spec announce;
  output_spec log;           // destination "" = no connection log
  bool background = false;   // --wait: detach once listening, print the PID
  bool help = false;
  bool version = false;
  std::vector<std::string> warnings;  // said on stderr before starting (one line each)
  std::string trace;                  // -x/--trace: "text" or "hex"; empty: no trace
  bool show_sockopts = false;         // --show-sockopts
};

// Parses argv (without the program name). Throws usage_error; never binds or spawns.
// Checks that an --exec program exists and can be run, resolving it on PATH.
config parse_command_line(const std::vector<std::string>& args);

// text with each control character (newline, tab, escape…) written as a C escape
// (\n, \t, \x1b), so a message quoting a typed value stays on one line.
std::string escape_control_characters(const std::string& text);

// The --help text.
std::string help_text();
std::string version_text();

// Looks PROG up as execvp would: a name with '/' is taken as is, others are searched on
// PATH. Returns the path to run, or nullopt with reason set.
std::optional<std::string> find_program(const std::string& prog, std::string& reason);

}  // namespace startup_server::cli
