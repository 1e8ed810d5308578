// Allow/deny rules and the per-peer limit, as admission steps.
#include "server/guards.hpp"

#include <cstring>

namespace startup_server::detail {

std::array<std::uint8_t, 16> peer_bytes(const tcp::endpoint& peer) noexcept {
  std::array<std::uint8_t, 16> out{};
  const auto address = peer.address();
  if (address.is_v4()) {
    out[10] = out[11] = 0xff;
    const auto v4 = address.to_v4().to_bytes();
    std::memcpy(out.data() + 12, v4.data(), 4);
  } else {
    const auto v6 = address.to_v6().to_bytes();
    std::memcpy(out.data(), v6.data(), 16);
  }
  return out;
}

bool address_rules::admits(const std::array<std::uint8_t, 16>& peer) const noexcept {
  for (const auto& rule : deny_)
    if (rule.contains(peer)) return false;
  if (allow_.empty()) return true;
  for (const auto& rule : allow_)
    if (rule.contains(peer)) return true;
  return false;
}

asio::awaitable<admission_verdict> address_rules::admit(connection& c) {
  if (admits(peer_bytes(c.identity().remote))) co_return admission_verdict{};
  co_return admission_verdict{false, "denied"};
}

asio::awaitable<admission_verdict> per_peer_limit::admit(connection& c) {
  const auto peer = peer_bytes(c.identity().remote);
  std::lock_guard lock(mutex_);
  unsigned& open = open_[peer];
  if (open >= limit_) {
    if (open == 0) open_.erase(peer);
    co_return admission_verdict{false, "refused: max-per-ip"};
  }
  ++open;
  co_return admission_verdict{};
}

void per_peer_limit::release(connection& c) noexcept {
  const auto peer = peer_bytes(c.identity().remote);
  std::lock_guard lock(mutex_);
  auto it = open_.find(peer);
  if (it == open_.end()) return;
  if (--it->second == 0) open_.erase(it);
}

}  // namespace startup_server::detail
