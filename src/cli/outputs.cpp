// Opening the output destinations and formatting what the server tells into lines.
#include "cli/outputs.hpp"

#include <unistd.h>

#include <fmt/core.h>
#include <utility>

#include "cli/announce_format.hpp"
#include "cli/json.hpp"
#include "cli/log_format.hpp"
#include "cli/trace_format.hpp"

namespace startup_server::cli {

detail::line_sink* outputs::sink(const std::string& destination, std::string& reason) {
  auto& slot = sinks_[destination];
  if (!slot) {
    auto s = std::make_unique<detail::line_sink>();
    if (!s->open(destination, reason)) {
      sinks_.erase(destination);
      return nullptr;
    }
    slot = std::move(s);
  }
  return slot.get();
}

bool outputs::wire(config& c, const std::string& name) {
  std::string reason;
  auto text_note = [name](std::uint64_t n) {
    return fmt::format("startup-server: {}: warning: {} output lines dropped (the reader is too slow)", name, n);
  };
  detail::line_sink* err = sink("stderr", reason);
  err->set_drop_note(text_note);
  c.options.diagnostics = [err, name](const diagnostic& d) {
    const char* kind = d.what == diagnostic::kind::fatal ? "fatal" : "warning";
    const char* advice = d.about == diagnostic::subject::accept_queue_full ? "; try --backlog max" : "";
    err->write_line(escape_control_characters(fmt::format("startup-server: {}: {}: {}{}", name, kind, d.message, advice)));
  };
  if (!c.announce.destination.empty()) {
    announce_ = sink(c.announce.destination, reason);
    if (!announce_) {
      error_line(fmt::format("startup-server: --announce: cannot open '{}': {}", c.announce.destination, reason));
      return false;
    }
    announce_->set_drop_note(text_note);
    detail::announce_identity who{static_cast<long>(::getpid()), name};
    c.options.announce = [out = announce_, format = c.announce.format, who](const announce_event& e) mutable {
      who.pid = ::getpid();  // a --wait server announces from the detached process
      std::string line = detail::format_announce(e, format, who);
      if (!line.empty()) out->write_line(line);
    };
  }
  if (c.show_sockopts) {
    // Requested and effective values: the listener's with the listening event, the first
    // connection's with its open record.
    auto show = [err, name](const char* what, const std::vector<socket_option_report>& reports) {
      for (const auto& o : reports)
        err->write_line(fmt::format("startup-server: {}: {} {} requested {} effective {}", name, what, o.name,
                                    o.requested, o.effective));
    };
    auto announce = std::move(c.options.announce);
    c.options.announce = [announce, show](const announce_event& e) {
      if (e.what == announce_event::kind::listening) show("listener", e.socket_options);
      if (announce) announce(e);
    };
    c.options.connection_log = [show](const connection_record& r) {
      if (!r.socket_options.empty()) show(fmt::format("connection #{}", r.id).c_str(), r.socket_options);
    };
  }
  if (c.options.tls && c.options.tls->certificate_file.empty()) {
    // A certificate made for this run: what a client pins is only known now (ncat's habit).
    auto announce = std::move(c.options.announce);
    // Told once: a reopened listener keeps the same certificate. Announce runs on one thread.
    c.options.announce = [announce, err, name, told = false](const announce_event& e) mutable {
      if (e.what == announce_event::kind::listening && e.tls_self_signed && !std::exchange(told, true))
        err->write_line(fmt::format("startup-server: {}: TLS with a self-signed certificate made for this run; "
                                    "SHA-256 fingerprint {}", name, e.tls_fingerprint));
      if (announce) announce(e);
    };
  }
  if (!c.log.destination.empty()) {
    detail::line_sink* log = sink(c.log.destination, reason);
    if (!log) {
      error_line(fmt::format("startup-server: --log: cannot open '{}': {}", c.log.destination, reason));
      return false;
    }
    const bool json = c.log.format == "json";
    if (log != err && log != announce_) log->set_drop_note(text_note);
    if (json && log != err && log != announce_) {
      log->set_drop_note([name](std::uint64_t n) {
        return detail::json_object().string("event", "dropped").number("lines", static_cast<std::int64_t>(n)).string("name", name).str();
      });
    }
    c.options.connection_log = [log, json, name, before = std::move(c.options.connection_log)](const connection_record& r) {
      if (before) before(r);
      log->write_line(detail::format_connection_record(r, name, json));
    };
    if (!c.trace.empty()) {
      c.options.trace = [log, hex = c.trace == "hex", json, name](const traffic_record& r) {
        if (json) return log->write_line(detail::format_traffic_json(r, name, hex));
        std::vector<std::string> lines;
        detail::format_traffic(r, name, hex, lines);
        for (const auto& line : lines) log->write_line(line);
      };
    }
  }
  return true;
}

void outputs::error_line(const std::string& line) {
  std::string reason;
  if (detail::line_sink* err = sink("stderr", reason)) err->write_line(line);
}

void outputs::flush_announce(std::chrono::milliseconds timeout) {
  if (announce_) announce_->flush(timeout);
}

void outputs::flush_all(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (auto& [destination, sink] : sinks_) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() > 0) sink->flush(left);
  }
}

void outputs::close() {
  announce_ = nullptr;
  sinks_.clear();
}

std::vector<int> outputs::descriptors() const {
  std::vector<int> fds;
  for (const auto& [destination, s] : sinks_)
    if (destination != "stdout" && destination != "stderr") fds.push_back(s->fd());
  return fds;
}

}  // namespace startup_server::cli
