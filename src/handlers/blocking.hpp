// Serving a connection on a thread of its own, with blocking I/O: the user's function, --stdio.
#pragma once

#include <functional>

#include "handlers/connection.hpp"
#include "startup_server/client.hpp"

namespace startup_server::detail {

// Starts body on a new thread with a blocking tcp_stream over its own copy of c's socket
// (its endpoints from c's identity). The thread is owned by the connection and joined
// when the connection is freed; when body returns, the connection closes. An exception
// from body is a warning (`what` names it). At a cut the socket is shut down, so blocked
// reads and writes return. A decorated connection (TLS) gives the thread one end of a
// socket pair instead, relayed to the stream on c's thread with EOF carried across as a
// half-close each way; the connection closes once the body has returned and the relay is over.
void start_blocking(connection& c, const char* what, std::function<void(tcp_stream&)> body);

}  // namespace startup_server::detail
