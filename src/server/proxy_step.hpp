// The PROXY protocol as an admission step: trusted senders only, the header read whole and
// taken off the socket exactly, and the client it names put in the connection's identity.
#pragma once

#include <chrono>
#include <cstddef>
#include <vector>

#include "core/cidr.hpp"
#include "core/proxy_header.hpp"
#include "server/admission.hpp"

namespace startup_server::detail {

// The most bytes a header may take (nginx's cap); a v1 line stops at the spec's 107.
inline constexpr std::size_t proxy_header_cap = 4096;

// Refuses every connection whose TCP peer is not in `trusted` ("refused: not a trusted
// proxy"), and reads a v1 or v2 header from the others: peeked at on the plain socket
// until it is whole, then exactly its bytes are taken, so whatever reads next (a handler,
// a raw-socket exec child, a later step) starts at the client's first byte. Those bytes
// pass no decorator and are not counted in bytes_in. Refused, with the reason for the
// log: an invalid header ("refused: " and the parser's reason), a client that closes or
// resets first ("refused: PROXY header: the client closed first"), no whole header within
// `timeout` of the step's start ("refused: PROXY header: timed out"); a connection the
// server cuts meanwhile ends as "cut: the server stopped". Admitted: see
// apply_proxy_header. Holds no state of its connections: one step serves every thread.
class proxy_header_step final : public admission_step {
 public:
  proxy_header_step(std::vector<cidr> trusted, std::chrono::milliseconds timeout)
      : trusted_(std::move(trusted)), timeout_(timeout) {}
  asio::awaitable<admission_verdict> admit(connection& c) override;
  bool trusts(const tcp::endpoint& peer) const noexcept;

 private:
  std::vector<cidr> trusted_;
  std::chrono::milliseconds timeout_;
};

// What a complete header says, put into c: the sender becomes identity().proxy (with the
// version and whether it was LOCAL); unless the header is LOCAL or UNKNOWN, remote and
// local become its source and destination. Its v2 TLVs that an exec child is told of go to
// c.proxied, only if there is one: each value at most 255 bytes and free of control
// characters, or left out (UNIQUE_ID, opaque bytes, is given in hex then); the client
// certificate's CN only when the proxy verified it. Throws std::bad_alloc only.
void apply_proxy_header(connection& c, const proxy_header& header);

}  // namespace startup_server::detail
