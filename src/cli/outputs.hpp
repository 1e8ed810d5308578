// Where the command's lines go: announce, the connection log and diagnostics, none of them able to stall the server.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "cli/line_sink.hpp"

namespace startup_server::cli {

// One line_sink per destination ("stdout", "stderr" or a file path), shared by everything
// that writes there, so lines to one place keep their order. Destroy it after the server:
// the sinks then write what is queued, for a bounded time, and stop.
class outputs {
 public:
  // Opens the destinations of c and wires c.options' announce, connection_log and
  // diagnostics to them (diagnostics go to stderr, as "startup-server: NAME: warning: …").
  // Returns false, having said why on stderr, if a file cannot be opened.
  bool wire(config& c, const std::string& name);

  // A line on stderr, in the order of everything else written there.
  void error_line(const std::string& line);
  // Waits until the announcements so far are written (at most timeout).
  void flush_announce(std::chrono::milliseconds timeout);
  // Waits until every line so far is written (at most timeout in all).
  void flush_all(std::chrono::milliseconds timeout);
  // The descriptors of opened files, to keep when everything else is closed.
  std::vector<int> descriptors() const;
  // Writes what is queued, for a bounded time, and closes every destination.
  void close();

 private:
  detail::line_sink* sink(const std::string& destination, std::string& reason);

  std::map<std::string, std::unique_ptr<detail::line_sink>> sinks_;
  detail::line_sink* announce_ = nullptr;
};

}  // namespace startup_server::cli
