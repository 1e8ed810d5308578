// The admission step: between accept and handler, a chain that may refuse, delay or rewrite.
#pragma once

#include <asio/awaitable.hpp>
#include <memory>
#include <string>
#include <vector>

#include "handlers/connection.hpp"

namespace startup_server::detail {

// What a step decided.
struct admission_verdict {
  bool admitted = true;
  std::string reason;  // why not, for the connection log ("refused: <reason>")
};

// One step: connection limits, allow/deny rules and the PROXY protocol are steps. It runs on
// the connection's thread before the connection log's open record and before the handler.
// It may read from c.stream() (a header that precedes the client's bytes), take its time,
// and rewrite c.identity(), which everything after it (the log, per-peer rules, an exec
// child's TCPREMOTEIP) then sees.
class admission_step {
 public:
  virtual ~admission_step() = default;
  virtual asio::awaitable<admission_verdict> admit(connection& c) = 0;
};

using admission_chain = std::vector<std::shared_ptr<admission_step>>;

// Runs the steps in order; the first refusal ends it.
asio::awaitable<admission_verdict> run_admission(const admission_chain& chain, connection& c);

}  // namespace startup_server::detail
