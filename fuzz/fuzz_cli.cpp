// Fuzzes the command line, argv to options, without starting anything: the input split on
// NUL bytes is argv after the program name.
//
// Asserts: parse_command_line either returns or throws usage_error (no other exception, no
// exit); a refusal's message is non-empty and, escaped as main prints it, one line; parsing
// is deterministic (on one input in eight); an accepted command line holds only values the server can take (a port
// or service, a backlog of at least 1, a known ipv6 mode, an address the mode allows, rules
// that parse, an announce template that checks, an exec program when exec is chosen).
//
// Skipped, since parsing would touch the file system beyond reading: --child-stderr (it
// creates the file, as it must before binding) and any word naming /dev, /proc or /sys (a
// --tls-cert of /dev/zero or a FIFO would read forever).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cli/announce_format.hpp"
#include "cli/cli.hpp"
#include "core/cidr.hpp"
#include "core/resolve.hpp"
#include "fuzz_support.hpp"

using namespace startup_server;

namespace {

bool skipped(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a.find("child-stderr") != std::string::npos || a.find("dev/") != std::string::npos ||
        a.find("proc/") != std::string::npos || a.find("sys/") != std::string::npos)
      return true;
  return false;
}

void check_accepted(const cli::config& c) {
  const auto& o = c.options;
  if (c.help || c.version) return;
  if (!o.service.empty()) {
    for (unsigned char ch : o.service) FUZZ_CHECK(ch > 0x20 && ch != 0x7f);
    std::error_code ec;
    if (o.service.find_first_not_of("0123456789") == std::string::npos) {
      (void)detail::resolve_service(o.service, ec);
      FUZZ_CHECK(!ec);
    }
  }
  FUZZ_CHECK(o.backlog >= 1);
  std::string problem;
  if (!o.local_address.empty()) FUZZ_CHECK(detail::check_address(o.local_address, o.ipv6, problem));
  for (const auto* rules : {&o.allow, &o.deny, &o.proxy_from})
    for (const auto& rule : *rules) FUZZ_CHECK(detail::parse_cidr(rule, problem));
  if (o.proxy_protocol) FUZZ_CHECK(!o.proxy_from.empty());
  if (!c.announce.format.empty() && c.announce.format != "text")
    FUZZ_CHECK(detail::check_announce_format(c.announce.format, problem));
  FUZZ_CHECK(c.log.format == "text" || c.log.format == "json");
  FUZZ_CHECK(c.trace.empty() || c.trace == "text" || c.trace == "hex");
  if (o.function == handler::exec) FUZZ_CHECK(!o.exec_argv.empty() && !o.exec_argv[0].empty());
  else FUZZ_CHECK(!o.create_stream);
  FUZZ_CHECK(o.threads <= 256);
}

bool same(const cli::config& a, const cli::config& b) {
  return a.options.service == b.options.service && a.options.local_address == b.options.local_address &&
         a.options.function == b.options.function && a.options.exec_argv == b.options.exec_argv &&
         a.options.backlog == b.options.backlog && a.options.ipv6 == b.options.ipv6 &&
         a.announce.destination == b.announce.destination && a.announce.format == b.announce.format &&
         a.log.destination == b.log.destination && a.warnings == b.warnings && a.help == b.help &&
         a.version == b.version && a.background == b.background && a.trace == b.trace;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  auto args = fuzz::split_on_nul(data, size);
  if (skipped(args)) return 0;
  std::string refusal;
  cli::config first;
  try {
    first = cli::parse_command_line(args);
  } catch (const cli::usage_error& e) {
    refusal = e.what();
    FUZZ_CHECK(!refusal.empty());
    FUZZ_CHECK(cli::escape_control_characters(refusal).find_first_of("\n\r") == std::string::npos);
  }
  // The same words again: the same answer. Checked on one input in eight, as building the
  // parser is most of a run's time.
  if (size % 8 == 0) try {
    const cli::config second = cli::parse_command_line(args);
    FUZZ_CHECK(refusal.empty());
    FUZZ_CHECK(same(first, second));
  } catch (const cli::usage_error& e) {
    FUZZ_CHECK(refusal == e.what());
  }
  if (refusal.empty()) check_accepted(first);
  return 0;
}
