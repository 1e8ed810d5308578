// Connection log lines: who connected, bytes each way, how long, how the child ended.
#include "cli/log_format.hpp"

#include <fmt/core.h>

#include "cli/json.hpp"
#include "core/resolve.hpp"

namespace startup_server::detail {
namespace {

std::string optional_count(const std::optional<std::uint64_t>& v) { return v ? std::to_string(*v) : "-"; }

}  // namespace

std::string format_connection_record(const connection_record& r, const std::string& name, bool json) {
  const bool open = r.what == connection_record::kind::open;
  const bool refused = r.what == connection_record::kind::refused;
  const char* event = open ? "open" : refused ? "refused" : "close";
  const double seconds = std::chrono::duration<double>(r.duration).count();
  if (json) {
    json_object line;
    line.string("event", event)
        .number("id", static_cast<std::int64_t>(r.id))
        .string("name", name)
        .string("peer_address", r.peer_address)
        .number("peer_port", std::int64_t{r.peer_port})
        .string("local_address", r.local_address)
        .number("local_port", std::int64_t{r.local_port});
    if (!open && !refused) {
      if (r.bytes_in) line.number("bytes_in", static_cast<std::int64_t>(*r.bytes_in));
      else line.null("bytes_in");
      if (r.bytes_out) line.number("bytes_out", static_cast<std::int64_t>(*r.bytes_out));
      else line.null("bytes_out");
      line.number("duration", seconds);
    }
    if (r.child_pid) line.number("child_pid", std::int64_t{r.child_pid});
    if (r.exit_status) line.number("exit_status", std::int64_t{*r.exit_status});
    if (r.term_signal) line.number("signal", std::int64_t{*r.term_signal});
    if (!r.reason.empty()) line.string("reason", r.reason);
    return line.str();
  }
  std::string line = fmt::format("startup-server: {}: #{} {} {} -> {}", name, r.id, event,
                                 endpoint_text(r.peer_address, r.peer_port),
                                 endpoint_text(r.local_address, r.local_port));
  if (!open && !refused) {
    line += fmt::format(" in={} out={} duration={:.3f}s", optional_count(r.bytes_in),
                        optional_count(r.bytes_out), seconds);
  }
  if (r.child_pid) line += fmt::format(" pid={}", r.child_pid);
  if (r.exit_status) line += fmt::format(" exit={}", *r.exit_status);
  if (r.term_signal) line += fmt::format(" signal={}", *r.term_signal);
  if (!r.reason.empty()) line += fmt::format(" ({})", r.reason);
  return line;
}

}  // namespace startup_server::detail
