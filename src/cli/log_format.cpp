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
    if (!r.proxy_address.empty())
      line.string("proxy_address", r.proxy_address).number("proxy_port", std::int64_t{r.proxy_port});
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
    if (r.tcp) {
      const tcp_info_snapshot& t = *r.tcp;
      line.raw("tcp_info", json_object()
                               .number("rtt_us", std::int64_t{t.rtt_us})
                               .number("rttvar_us", std::int64_t{t.rttvar_us})
                               .number("retransmits", std::int64_t{t.retransmits})
                               .number("lost", std::int64_t{t.lost})
                               .number("snd_cwnd", std::int64_t{t.snd_cwnd})
                               .number("snd_ssthresh", std::int64_t{t.snd_ssthresh})
                               .number("snd_mss", std::int64_t{t.snd_mss})
                               .number("rcv_mss", std::int64_t{t.rcv_mss})
                               .number("delivery_rate", static_cast<std::int64_t>(t.delivery_rate))
                               .number("bytes_acked", static_cast<std::int64_t>(t.bytes_acked))
                               .number("bytes_received", static_cast<std::int64_t>(t.bytes_received))
                               .number("busy_us", static_cast<std::int64_t>(t.busy_us))
                               .number("rwnd_limited_us", static_cast<std::int64_t>(t.rwnd_limited_us))
                               .number("sndbuf_limited_us", static_cast<std::int64_t>(t.sndbuf_limited_us))
                               .string("congestion", t.congestion)
                               .str());
    }
    return line.str();
  }
  std::string line = fmt::format("startup-server: {}: #{} {} {} -> {}", name, r.id, event,
                                 endpoint_text(r.peer_address, r.peer_port),
                                 endpoint_text(r.local_address, r.local_port));
  if (!r.proxy_address.empty()) line += " via " + endpoint_text(r.proxy_address, r.proxy_port);
  if (!open && !refused) {
    line += fmt::format(" in={} out={} duration={:.3f}s", optional_count(r.bytes_in),
                        optional_count(r.bytes_out), seconds);
  }
  if (r.child_pid) line += fmt::format(" pid={}", r.child_pid);
  if (r.exit_status) line += fmt::format(" exit={}", *r.exit_status);
  if (r.term_signal) line += fmt::format(" signal={}", *r.term_signal);
  if (r.tcp) {
    const tcp_info_snapshot& t = *r.tcp;
    line += fmt::format(
        " rtt={}us rttvar={}us retrans={} lost={} cwnd={} ssthresh={} mss={}/{} rate={}B/s acked={} received={} "
        "busy={}us rwnd_limited={}us sndbuf_limited={}us cc={}",
        t.rtt_us, t.rttvar_us, t.retransmits, t.lost, t.snd_cwnd, t.snd_ssthresh, t.snd_mss, t.rcv_mss,
        t.delivery_rate, t.bytes_acked, t.bytes_received, t.busy_us, t.rwnd_limited_us, t.sndbuf_limited_us,
        t.congestion);
  }
  if (!r.reason.empty()) line += fmt::format(" ({})", r.reason);
  return line;
}

}  // namespace startup_server::detail
