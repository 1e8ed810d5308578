// Numbers as typed: the one place that decides what counts as digits and what they spell.
#pragma once

#include <charconv>
#include <optional>
#include <string_view>

namespace startup_server::detail {

// True if s is one or more ASCII digits (no sign, no spaces).
inline bool all_digits(std::string_view s) noexcept {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// The number s spells, if s is all digits and the number fits T; else nullopt.
template <class T>
std::optional<T> parse_number(std::string_view s) noexcept {
  if (!all_digits(s)) return std::nullopt;
  T v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace startup_server::detail
