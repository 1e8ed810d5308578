// Error codes as errno values, whichever category carries them.
#pragma once

#include <asio/error.hpp>
#include <cerrno>
#include <exception>
#include <initializer_list>
#include <string>
#include <system_error>

namespace startup_server::detail {

// Asio reports system errors in its own category ("asio.system"), which this Asio maps to
// no std::errc condition: errors are matched, and handed on, as errno values.
inline bool is_system(const std::error_code& ec) {
  const auto& cat = ec.category();
  return cat == asio::system_category() || cat == std::system_category() || cat == std::generic_category();
}

// ec in std::system_category() if Asio's carried it: what the public API hands out.
inline std::error_code portable(const std::error_code& ec) {
  return ec.category() == asio::system_category() ? std::error_code(ec.value(), std::system_category()) : ec;
}

inline bool errno_among(const std::error_code& ec, std::initializer_list<int> values) {
  if (!is_system(ec)) return false;
  for (int v : values)
    if (ec.value() == v) return true;
  return false;
}

// Accept errors that say nothing about the listener: a client gave up, or the network
// hiccupped (accept(2) asks to treat these like EAGAIN).
inline bool transient_accept_error(const std::error_code& ec) {
  return errno_among(ec, {ECONNABORTED, EPROTO, EPERM, EINTR, EAGAIN, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET,
                          EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH, ETIMEDOUT});
}

// Running out of descriptors or memory: back off and keep serving, never fatal.
inline bool resource_accept_error(const std::error_code& ec) {
  return errno_among(ec, {EMFILE, ENFILE, ENOBUFS, ENOMEM});
}

// What an exception says, for a warning.
inline std::string exception_text(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "an exception of unknown type";
  }
}

}  // namespace startup_server::detail
