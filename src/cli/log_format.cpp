// Connection log lines: who connected, bytes each way, how long, how the child ended.
#include "cli/log_format.hpp"

#include <fmt/core.h>

#include "cli/announce_format.hpp"
#include "core/resolve.hpp"

namespace startup_server::detail {
namespace {

std::string optional_count(const std::optional<std::uint64_t>& v, bool json) {
  return v ? std::to_string(*v) : (json ? "null" : "-");
}

}  // namespace

std::string format_connection_record(const connection_record& r, const std::string& name, bool json) {
  const bool open = r.what == connection_record::kind::open;
  const double seconds = std::chrono::duration<double>(r.duration).count();
  if (json) {
    std::string line = fmt::format(
        "{{\"event\":\"{}\",\"id\":{},\"name\":{},\"peer_address\":{},\"peer_port\":{},"
        "\"local_address\":{},\"local_port\":{}",
        open ? "open" : "close", r.id, json_quote(name), json_quote(r.peer_address), r.peer_port,
        json_quote(r.local_address), r.local_port);
    if (!open) {
      line += fmt::format(",\"bytes_in\":{},\"bytes_out\":{},\"duration\":{:.6f}",
                          optional_count(r.bytes_in, true), optional_count(r.bytes_out, true), seconds);
    }
    if (r.child_pid) line += fmt::format(",\"child_pid\":{}", r.child_pid);
    if (r.exit_status) line += fmt::format(",\"exit_status\":{}", *r.exit_status);
    if (r.term_signal) line += fmt::format(",\"signal\":{}", *r.term_signal);
    if (!r.reason.empty()) line += fmt::format(",\"reason\":{}", json_quote(r.reason));
    return line + "}";
  }
  std::string line = fmt::format("startup-server: {}: #{} {} {} -> {}", name, r.id, open ? "open" : "close",
                                 endpoint_text(r.peer_address, r.peer_port),
                                 endpoint_text(r.local_address, r.local_port));
  if (!open) {
    line += fmt::format(" in={} out={} duration={:.3f}s", optional_count(r.bytes_in, false),
                        optional_count(r.bytes_out, false), seconds);
  }
  if (r.child_pid) line += fmt::format(" pid={}", r.child_pid);
  if (r.exit_status) line += fmt::format(" exit={}", *r.exit_status);
  if (r.term_signal) line += fmt::format(" signal={}", *r.term_signal);
  if (!r.reason.empty()) line += fmt::format(" ({})", r.reason);
  return line;
}

}  // namespace startup_server::detail
