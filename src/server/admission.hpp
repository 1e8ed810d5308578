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
  std::string reason;  // why not, as the connection log says it ("denied", "refused: max-per-ip")
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
  // c, which this step admitted, has closed (or a later step refused it): undo what
  // admitting it counted. On c's thread.
  virtual void release(connection&) noexcept {}
};

using admission_chain = std::vector<std::shared_ptr<admission_step>>;

// Runs the steps in order; the first refusal ends it, and the steps that had admitted c
// release it.
asio::awaitable<admission_verdict> run_admission(const admission_chain& chain, connection& c);
// c has closed after being admitted: every step releases it.
void release_admission(const admission_chain& chain, connection& c) noexcept;

}  // namespace startup_server::detail
