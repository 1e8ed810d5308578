// The talk handler's line transform, separate from I/O so it can be tested alone.
#pragma once

#include <cstddef>
#include <string>

namespace startup_server::detail {

// The seed's talk: each line becomes "You sent: '<line>'" and a newline. A CR just before
// the LF is part of the line ending (telnet, nc -C), not of the line. Lines stream through
// as they arrive, so a line of any length needs no more than one chunk.
class talk_transform {
 public:
  // Appends the reply to what p[0..n) completes or continues.
  void feed(const char* p, std::size_t n, std::string& out) {
    for (std::size_t i = 0; i < n; ++i) {
      const char ch = p[i];
      if (pending_cr_) {
        pending_cr_ = false;
        if (ch == '\n') {
          out += "'\n";
          at_line_start_ = true;
          continue;
        }
        out.push_back('\r');
      }
      if (at_line_start_) {
        out += prefix;
        at_line_start_ = false;
      }
      if (ch == '\r') pending_cr_ = true;
      else if (ch == '\n') out += "'\n", at_line_start_ = true;
      else out.push_back(ch);
    }
  }
  // A last line without a newline is answered too, as read-line returns it.
  void end(std::string& out) {
    if (pending_cr_) out.push_back('\r');
    if (!at_line_start_) out += "'\n";
    at_line_start_ = true;
    pending_cr_ = false;
  }

 private:
  static constexpr const char* prefix = "You sent: '";
  bool at_line_start_ = true;
  bool pending_cr_ = false;
};

}  // namespace startup_server::detail
