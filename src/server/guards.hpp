// The admission steps that guard a server: address rules (allow/deny) and a per-peer limit.
#pragma once

#include <array>
#include <map>
#include <mutex>
#include <vector>

#include "core/cidr.hpp"
#include "server/admission.hpp"

namespace startup_server::detail {

// The peer's address as 16 bytes, IPv4 as IPv4-mapped (so one rule or one count covers both).
std::array<std::uint8_t, 16> peer_bytes(const tcp::endpoint& peer) noexcept;

// Deny wins; with any allow rule, a peer that matches none is denied too.
class address_rules final : public admission_step {
 public:
  address_rules(std::vector<cidr> allow, std::vector<cidr> deny) : allow_(std::move(allow)), deny_(std::move(deny)) {}
  asio::awaitable<admission_verdict> admit(connection& c) override;
  bool admits(const std::array<std::uint8_t, 16>& peer) const noexcept;

 private:
  std::vector<cidr> allow_, deny_;
};

// At most `limit` connections at once from one peer address. Thread-safe: connections
// from one peer may be served on several threads.
class per_peer_limit final : public admission_step {
 public:
  explicit per_peer_limit(unsigned limit) : limit_(limit) {}
  asio::awaitable<admission_verdict> admit(connection& c) override;
  void release(connection& c) noexcept override;

 private:
  unsigned limit_;
  std::mutex mutex_;
  std::map<std::array<std::uint8_t, 16>, unsigned> open_;
};

}  // namespace startup_server::detail
