// Announcement lines (text, json, template) and the sink that writes whole lines.
#pragma once

#include <mutex>
#include <string>
#include <string_view>

#include "startup_server/options.hpp"

namespace startup_server::detail {

// Who is announcing: the fields {pid} and {name}.
struct announce_identity {
  long pid = 0;
  std::string name;
};

// One line (no newline) for event in format: "text", "json" or a {field} template.
// Templates describe the listening event only: other events give "" (nothing to write).
std::string format_announce(const announce_event& event, const std::string& format,
                            const announce_identity& who);

// True if format is text, json or a template whose {fields} all exist ("{{" and "}}"
// stand for literal braces); otherwise false with problem set.
bool check_announce_format(const std::string& format, std::string& problem);

// A JSON string literal for s (quotes included); bytes ≥ 0x80 pass through unchanged.
std::string json_quote(std::string_view s);

// Writes whole lines to a descriptor, each with one write(2) so lines never interleave.
class line_sink {
 public:
  line_sink() = default;
  // Opens "stdout", "stderr" or a file (created or truncated, close-on-exec).
  // Returns false with reason set if the file cannot be opened.
  bool open(const std::string& destination, std::string& reason);
  // Points at an already open descriptor without owning it.
  void attach(int fd) { fd_ = fd; owned_ = false; }
  ~line_sink();
  line_sink(const line_sink&) = delete;
  line_sink& operator=(const line_sink&) = delete;

  void write_line(std::string_view line);  // adds "\n"; errors are dropped
  int fd() const { return fd_; }

 private:
  std::mutex mutex_;
  int fd_ = -1;
  bool owned_ = false;
};

}  // namespace startup_server::detail
