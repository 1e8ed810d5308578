// Fuzzes the --allow, --deny and --proxy-from rules (ADDR[/PREFIX]) and peer addresses.
//
// Input: a rule, then optionally NUL and a peer address. Asserts: an accepted rule, written
// back as ADDR/PREFIX, parses to the same network; it contains its own address; for any
// 16-byte peer, contains() agrees with a bit-by-bit reference; a refused rule says why.
#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "core/cidr.hpp"
#include "fuzz_support.hpp"

using startup_server::detail::cidr;

namespace {

std::string written(const cidr& rule) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (rule.v4) {
    ::inet_ntop(AF_INET, rule.address.data() + 12, buf, sizeof buf);
    return std::string(buf) + "/" + std::to_string(rule.prefix - 96);
  }
  ::inet_ntop(AF_INET6, rule.address.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(rule.prefix);
}

bool contains_reference(const cidr& rule, const std::array<std::uint8_t, 16>& peer) {
  for (unsigned bit = 0; bit < rule.prefix; ++bit) {
    const unsigned mask = 0x80u >> (bit % 8);
    if ((peer[bit / 8] & mask) != (rule.address[bit / 8] & mask)) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto parts = fuzz::split_on_nul(data, size);
  std::string problem;
  const auto rule = startup_server::detail::parse_cidr(parts[0], problem);
  if (!rule) {
    FUZZ_CHECK(!problem.empty());
    return 0;
  }
  FUZZ_CHECK(rule->prefix <= 128);
  FUZZ_CHECK(!rule->v4 || rule->prefix >= 96);
  // Bits past the prefix are clear.
  for (unsigned bit = rule->prefix; bit < 128; ++bit)
    FUZZ_CHECK((rule->address[bit / 8] & (0x80u >> (bit % 8))) == 0);

  std::string again_problem;
  const auto again = startup_server::detail::parse_cidr(written(*rule), again_problem);
  FUZZ_CHECK(again);
  FUZZ_CHECK(again->address == rule->address && again->prefix == rule->prefix && again->v4 == rule->v4);
  FUZZ_CHECK(rule->contains(rule->address));

  // The peer: parsed from text when the input has one, and the raw bytes of the rule text.
  for (std::size_t i = 1; i < parts.size(); ++i) {
    if (const auto peer = startup_server::detail::address_bytes(parts[i]))
      FUZZ_CHECK(rule->contains(*peer) == contains_reference(*rule, *peer));
  }
  std::array<std::uint8_t, 16> raw{};
  std::memcpy(raw.data(), parts[0].data(), std::min<std::size_t>(16, parts[0].size()));
  FUZZ_CHECK(rule->contains(raw) == contains_reference(*rule, raw));
  return 0;
}
