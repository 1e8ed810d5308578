// Laying out --help by hand: CLI11's own layout is wider than a terminal and cannot say
// that --announce takes its value after '='.
#include "cli/help.hpp"

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <sstream>

namespace startup_server::cli {
namespace {

constexpr std::size_t width = 80;
constexpr std::size_t description_column = 30;

// Words of text, wrapped to fit between column `indent` and `width`.
std::string wrap(const std::string& text, std::size_t first_column, std::size_t indent) {
  std::istringstream words(text);
  std::string out, word;
  std::size_t column = first_column;
  bool line_empty = true;
  while (words >> word) {
    if (!line_empty && column + 1 + word.size() > width) {
      out += "\n" + std::string(indent, ' ');
      column = indent;
      line_empty = true;
    }
    if (!line_empty) {
      out.push_back(' ');
      ++column;
    }
    out += word;
    column += word.size();
    line_empty = false;
  }
  return out;
}

// "  -s,--service PORT|NAME", "  --announce[=DEST]", "  --exec PROG [ARG...]".
std::string left_column(const CLI::Option& o) {
  std::string names;
  for (const auto& s : o.get_snames()) names += "-" + s + ",";
  for (const auto& l : o.get_lnames()) names += "--" + l;
  if (names == "--announce") return "  --announce[=DEST]";
  if (names == "-x,--trace") return "  -x,--trace[=text|hex]";
  if (o.get_items_expected_max() > 0) names += " " + o.get_type_name();
  return "  " + names;
}

}  // namespace

std::string format_help(const CLI::App& app) {
  std::string out =
      "Usage: startup-server [OPTIONS] [PORT] [--exec PROG [ARG...] | --sh-exec STRING]\n\n" +
      wrap("Launch an ad-hoc TCP server: built-in echo, talk, discard, chargen, daytime and stdio handlers, or a "
           "program per connection. Every option of LispWorks comm:start-up-server.",
           0, 0) +
      "\n";
  std::vector<std::string> groups;
  for (const CLI::Option* o : app.get_options()) {
    if (std::find(groups.begin(), groups.end(), o->get_group()) == groups.end()) groups.push_back(o->get_group());
  }
  for (const auto& group : groups) {
    out += "\n" + group + ":\n";
    for (const CLI::Option* o : app.get_options()) {
      if (o->get_group() != group) continue;
      std::string line = left_column(*o);
      if (line.size() + 2 > description_column) {
        out += line + "\n";
        line = std::string(description_column, ' ');
      } else {
        line.resize(description_column, ' ');
      }
      out += line + wrap(o->get_description(), description_column, description_column) + "\n";
    }
  }
  out += "\nExamples:\n"
         "  startup-server 7000                           echo server on port 7000\n"
         "  startup-server --talk -a 127.0.0.1 --announce talk server on a free port\n"
         "  pid=$(startup-server --wait --announce=port.txt --announce-format='{port}')\n"
         "  startup-server 8080 --exec cat                one cat per connection\n"
         "  startup-server 7000 --stdio --once            nc -l 7000, as a handler\n"
         "\nUnder systemd:\n  " +
         wrap("With LISTEN_PID and LISTEN_FDS (socket activation) the server serves on a passed socket instead of "
              "binding: the first, or the one named by LISTEN_FDNAMES or bound to the port of -s. With "
              "NOTIFY_SOCKET it sends READY=1 once listening and STOPPING=1 when it stops (Type=notify). "
              "Children see none of these variables.",
              2, 2) +
         "\n\nSee startup-server(1) for the exit statuses and details (SYSTEMD for units).\n";
  return out;
}

}  // namespace startup_server::cli
