// Socket activation picks the listener; readiness follows the announce events.
#include "cli/service_manager.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fmt/core.h>
#include <memory>

#include "cli/outputs.hpp"
#include "core/digits.hpp"
#include "core/resolve.hpp"
#include "core/systemd.hpp"

namespace startup_server::cli {

bool service_manager::take(config& c, std::vector<std::string>& warnings, std::string& problem) {
  notify_socket_ = detail::take_notify_socket();
  detail::inherited_sockets passed = detail::take_listen_fds(problem);
  if (!passed.present) return true;
  if (!problem.empty()) return false;
  const std::string& service = c.options.service;
  const unsigned port = detail::parse_number<std::uint16_t>(service).value_or(0);
  std::string warning;
  listener_ = detail::select_inherited(passed, service, port, warning, problem);
  if (listener_ < 0) return false;
  for (int fd : passed.fds)
    if (fd != listener_) ::close(fd);  // one listener is served; the manager keeps its copies
  activated_ = true;
  c.options.listener_fd = listener_;
  if (!warning.empty()) warnings.push_back(warning);
  if (!c.options.local_address.empty()) warnings.push_back("--address is not used: the listener is inherited");
  if (c.options.reuseport) warnings.push_back("--reuseport is not used: the listener is inherited (ReusePort= in the .socket unit)");
  if (c.options.ipv6 != ipv6_mode::any) warnings.push_back("--ipv6 is not used: the listener is inherited (BindIPv6Only= in the .socket unit)");
  return true;
}

void service_manager::wire(config& c, outputs& out, bool background) const {
  if (notify_socket_.empty()) return;
  struct state {
    std::string socket;
    bool background;
    outputs* out;
    bool ready = false;
    bool failed = false;  // the error's STATUS stays the last word
    std::atomic<bool> warned{false};
    void send(const std::string& message) {
      std::error_code ec;
      detail::notify(socket, message, ec);
      if (ec && !warned.exchange(true))
        out->error_line(fmt::format("startup-server: warning: NOTIFY_SOCKET {}: {}", socket, ec.message()));
    }
  };
  auto s = std::make_shared<state>();
  s->socket = notify_socket_;
  s->background = background;
  s->out = &out;
  auto announce = std::move(c.options.announce);
  // Called on the server's first thread only, so `ready` needs no lock.
  c.options.announce = [s, announce](const announce_event& e) {
    if (announce) announce(e);
    const std::string where = detail::endpoint_text(e.address, e.port);
    if (e.what == announce_event::kind::listening) {
      if (!s->ready && !s->background) s->send(fmt::format("READY=1\nSTATUS=listening on {}", where));
      else if (s->ready) s->send(fmt::format("STATUS=listening on {} (the listener was reopened)", where));
      s->ready = true;
    } else if (e.what == announce_event::kind::error) {
      s->failed = true;
      // In the background a start that fails is told by the process the manager started
      // (the main process, whose messages NotifyAccess=main takes).
      if (s->background && !s->ready) return;
      s->send("STATUS=error: " + e.message);
    }
  };
  c.options.stopping = [s] { s->send(s->failed ? "STOPPING=1" : "STOPPING=1\nSTATUS=stopping"); };
}

void service_manager::tell_failure(const std::string& problem) const {
  std::error_code ignored;
  if (!notify_socket_.empty()) detail::notify(notify_socket_, "STATUS=error: " + problem, ignored);
}

void service_manager::ready_from_parent(pid_t child, const std::string& status) const {
  if (notify_socket_.empty()) return;
  std::error_code ec;
  // One datagram, sent by the process the manager started, so NotifyAccess=main accepts
  // it; from here on the child is the main process and its own messages count.
  detail::notify(notify_socket_, fmt::format("MAINPID={}\nREADY=1\nSTATUS={}", static_cast<long>(child), status), ec);
  if (ec) std::fprintf(stderr, "startup-server: warning: NOTIFY_SOCKET %s: %s\n", notify_socket_.c_str(), ec.message().c_str());
}

}  // namespace startup_server::cli
