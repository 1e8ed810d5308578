// TCP_INFO through the kernel's own struct (glibc's copy stops before delivery rate and busy times).
#include "core/tcp_info.hpp"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace startup_server::detail {

std::optional<tcp_info_snapshot> read_tcp_info(int fd) noexcept {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (fd < 0 || ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::nullopt;
  try {
    tcp_info_snapshot s;
    s.rtt_us = info.tcpi_rtt;
    s.rttvar_us = info.tcpi_rttvar;
    s.retransmits = info.tcpi_total_retrans;
    s.lost = info.tcpi_lost;
    s.snd_cwnd = info.tcpi_snd_cwnd;
    s.snd_ssthresh = info.tcpi_snd_ssthresh;
    s.snd_mss = info.tcpi_snd_mss;
    s.rcv_mss = info.tcpi_rcv_mss;
    // Fields the kernel added later are zero when it is older than them (len says so).
    s.delivery_rate = info.tcpi_delivery_rate;
    s.bytes_acked = info.tcpi_bytes_acked;
    s.bytes_received = info.tcpi_bytes_received;
    s.busy_us = info.tcpi_busy_time;
    s.rwnd_limited_us = info.tcpi_rwnd_limited;
    s.sndbuf_limited_us = info.tcpi_sndbuf_limited;
    char name[16] = {};
    socklen_t name_len = sizeof name;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &name_len) == 0) s.congestion.assign(name, ::strnlen(name, name_len));
    return s;
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace startup_server::detail
