// The server's lifecycle: the phases it goes through, and the requests that move it on.
#pragma once

namespace startup_server::detail {

// Phases only move forward. Every way of stopping (terminate, a signal in the CLI, --once,
// a runtime failure) goes through the same ones, and only `finished` stops the event loops,
// once no connection is left (or, as a backstop, a moment after the cut).
//
//   starting  resolving and binding; a failure here goes straight to finished
//   serving   accepting and serving
//   draining  no longer accepting; open connections may finish. With a grace period armed
//             (a stop request), exec children have had SIGTERM and the grace timer runs;
//             without one (--once), the one connection is served to its end
//   cutting   every connection is closed and every child group has had SIGKILL; handlers
//             wind down
//   finished  the terminated (or error) announcement is out and the loops are stopped
enum class lifecycle_phase { starting, serving, draining, cutting, finished };

// What asks the server to move on.
enum class stop_request {
  once_served,  // --once: the one connection was accepted; drain without a grace period
  graceful,     // terminate(): drain for the grace period (a second one cuts)
  immediate,    // terminate(true), or a runtime failure: cut now
};

}  // namespace startup_server::detail
