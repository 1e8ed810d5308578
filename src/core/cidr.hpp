// Address rules as people write them: ADDR or ADDR/PREFIX, IPv4 or IPv6.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace startup_server::detail {

// A network: the address (IPv4 held as IPv4-mapped IPv6) and how many leading bits count.
struct cidr {
  std::array<std::uint8_t, 16> address{};
  unsigned prefix = 128;  // in IPv6 bits: an IPv4 /24 is 96 + 24
  bool v4 = false;

  // Does `peer` (16 bytes, IPv4 as IPv4-mapped) fall in this network?
  bool contains(const std::array<std::uint8_t, 16>& peer) const noexcept;
};

// Parses "10.0.0.0/8", "127.0.0.1", "::1", "fe80::/10", "[::1]/128". nullopt with problem
// set for anything else: a prefix longer than the family has, a host name, junk.
std::optional<cidr> parse_cidr(std::string_view text, std::string& problem);

// A peer's address as 16 bytes, IPv4 (and IPv4-mapped IPv6) as IPv4-mapped, so one rule
// matches both; nullopt if it is not an address.
std::optional<std::array<std::uint8_t, 16>> address_bytes(std::string_view numeric);

}  // namespace startup_server::detail
