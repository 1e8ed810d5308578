// Formats the seed's three announce events and writes them as lines.
#include "cli/announce_format.hpp"

#include "cli/json.hpp"
#include "core/resolve.hpp"

#include <fmt/core.h>

namespace startup_server::detail {
namespace {

const char* event_name(announce_event::kind k) {
  switch (k) {
    case announce_event::kind::listening: return "listening";
    case announce_event::kind::error: return "error";
    case announce_event::kind::terminated: return "terminated";
  }
  return "?";
}

constexpr const char* template_fields[] = {"address", "port", "family", "pid", "name", "tls_sha256"};

bool known_field(std::string_view f) {
  for (const char* k : template_fields)
    if (f == k) return true;
  return false;
}

std::string field_value(std::string_view f, const announce_event& e, const announce_identity& who) {
  if (f == "address") return e.address;
  if (f == "port") return std::to_string(e.port);
  if (f == "family") return e.family;
  if (f == "pid") return std::to_string(who.pid);
  if (f == "tls_sha256") return e.tls_fingerprint;
  return who.name;
}

// Expands {field}, {{ and }}; returns false at the first malformed or unknown piece.
bool expand(const std::string& tpl, std::string* out, std::string& problem,
            const announce_event* e, const announce_identity* who) {
  for (std::size_t i = 0; i < tpl.size(); ++i) {
    char ch = tpl[i];
    if ((ch == '{' || ch == '}') && i + 1 < tpl.size() && tpl[i + 1] == ch) {
      if (out) out->push_back(ch);
      ++i;
    } else if (ch == '{') {
      std::size_t close = tpl.find('}', i);
      if (close == std::string::npos) {
        problem = fmt::format("'{}' has a '{{' without a closing '}}'", tpl);
        return false;
      }
      std::string_view field(tpl.data() + i + 1, close - i - 1);
      if (!known_field(field)) {
        problem = fmt::format("unknown field {{{}}} (use address, port, family, pid, name, tls_sha256)", field);
        return false;
      }
      if (out) *out += field_value(field, *e, *who);
      i = close;
    } else if (ch == '}') {
      problem = fmt::format("'{}' has a '}}' without an opening '{{' (write }}}} for a brace)", tpl);
      return false;
    } else if (out) {
      out->push_back(ch);
    }
  }
  return true;
}

}  // namespace

std::string format_announce(const announce_event& e, const std::string& format,
                            const announce_identity& who) {
  using kind = announce_event::kind;
  const std::string where = endpoint_text(e.address, e.port);
  if (format.empty() || format == "text") {
    switch (e.what) {
      case kind::listening: return fmt::format("listening on {}", where);
      case kind::error: return fmt::format("error: {}", e.message);
      case kind::terminated: return e.port ? fmt::format("terminated {}", where) : "terminated";
    }
  }
  if (format == "json") {
    json_object line;
    line.string("event", event_name(e.what));
    if (!e.address.empty()) line.string("address", e.address).number("port", std::int64_t{e.port}).string("family", e.family);
    line.number("pid", std::int64_t{who.pid}).string("name", who.name);
    if (e.what == kind::error) line.string("message", e.message);
    if (!e.tls_fingerprint.empty()) line.string("tls_sha256", e.tls_fingerprint);
    if (!e.socket_options.empty()) {
      json_object options;
      for (const auto& o : e.socket_options)
        options.raw(o.name, json_object().string("requested", o.requested).string("effective", o.effective).str());
      line.raw("socket_options", options.str());
    }
    return line.str();
  }
  if (e.what != kind::listening) return {};
  std::string out, problem;
  expand(format, &out, problem, &e, &who);
  return out;
}

bool check_announce_format(const std::string& format, std::string& problem) {
  if (format.empty()) {
    problem = "needs text, json or a template such as '{port}'";
    return false;
  }
  if (format == "text" || format == "json") return true;
  return expand(format, nullptr, problem, nullptr, nullptr);
}

}  // namespace startup_server::detail
