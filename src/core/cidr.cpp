// Parsing and matching address rules, with IPv4 folded into IPv6's mapped range.
#include "core/cidr.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <fmt/core.h>

#include "core/digits.hpp"

namespace startup_server::detail {
namespace {

constexpr std::array<std::uint8_t, 12> mapped_prefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

std::optional<std::array<std::uint8_t, 16>> address_bytes(std::string_view numeric) {
  std::string text(numeric);
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  std::array<std::uint8_t, 16> out{};
  in_addr v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    std::memcpy(out.data(), mapped_prefix.data(), mapped_prefix.size());
    std::memcpy(out.data() + 12, &v4, 4);
    return out;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    std::memcpy(out.data(), &v6, 16);
    return out;
  }
  return std::nullopt;
}

std::optional<cidr> parse_cidr(std::string_view text, std::string& problem) {
  const auto slash = text.find('/');
  const std::string_view host = text.substr(0, slash);
  auto bytes = address_bytes(host);
  if (!bytes) {
    problem = fmt::format("'{}' is not an IPv4 or IPv6 address (with an optional /prefix)", text);
    return std::nullopt;
  }
  cidr rule;
  rule.address = *bytes;
  rule.v4 = std::memcmp(bytes->data(), mapped_prefix.data(), mapped_prefix.size()) == 0 &&
            host.find(':') == std::string_view::npos;
  const unsigned most = rule.v4 ? 32 : 128;
  unsigned prefix = most;
  if (slash != std::string_view::npos) {
    const auto n = parse_number<unsigned>(text.substr(slash + 1));
    if (!n || *n > most) {
      problem = fmt::format("'{}': the prefix must be a number from 0 to {}", text, most);
      return std::nullopt;
    }
    prefix = *n;
  }
  rule.prefix = rule.v4 ? 96 + prefix : prefix;
  // Bits past the prefix do not matter: clear them so "10.1.2.3/8" means 10.0.0.0/8.
  for (unsigned bit = rule.prefix; bit < 128; ++bit) rule.address[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  return rule;
}

bool cidr::contains(const std::array<std::uint8_t, 16>& peer) const noexcept {
  const unsigned whole = prefix / 8, rest = prefix % 8;
  if (std::memcmp(peer.data(), address.data(), whole) != 0) return false;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff00u >> rest);
  return (peer[whole] & mask) == (address[whole] & mask);
}

}  // namespace startup_server::detail
