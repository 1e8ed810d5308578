// Announcement lines: text, json, or a {field} template.
#pragma once

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


}  // namespace startup_server::detail
