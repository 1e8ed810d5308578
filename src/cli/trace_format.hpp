// Traffic trace lines: what passed, which way, on which connection, as text or a hex dump.
#pragma once

#include <string>
#include <vector>

#include "startup_server/events.hpp"

namespace startup_server::detail {

// Appends the lines for r to out. Text: one line, the bytes escaped (\r, \n, \t, \\, \xNN)
// so a line stays one line: "startup-server: NAME: #3 < 6 bytes: hello\n". Hex: a line per
// 16 bytes, offset, bytes and their printable form: "... #3 < 0000  68 65 6c 6c 6f 0a  |hello.|".
// "<" is from the client, ">" to it.
void format_traffic(const traffic_record& r, const std::string& name, bool hex, std::vector<std::string>& out);

// One JSON line for r, for a JSON connection log: {"event":"traffic","id":3,"name":…,
// "direction":"in","bytes":6,"data":"hello\n"} (or "hex":"68656c6c6f0a" with hex).
std::string format_traffic_json(const traffic_record& r, const std::string& name, bool hex);

}  // namespace startup_server::detail
