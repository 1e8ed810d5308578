// Sorting the command line's words, with messages a person can act on.
#include "cli/usage.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <fmt/core.h>
#include <map>

#include "cli/cli.hpp"
#include "core/digits.hpp"

namespace startup_server::cli {
namespace {

// What a missing value should have been, per flag.
const std::map<std::string, std::string>& missing_value_wording() {
  static const std::map<std::string, std::string> wording = {
      {"--service", "needs a port or a service name"},
      {"--local-port", "needs a port or a service name"},
      {"--local-address", "needs an address"},
      {"--address", "needs an address"},
      {"--backlog", "needs a positive number or max"},
      {"--ipv6", "needs any, both, on or off"},
      {"--threads", "needs a number of threads"},
      {"--grace", "needs a number of seconds"},
      {"--process-name", "needs a name"},
      {"--announce-format", "needs text, json or a template such as '{port}'"},
      {"--log", "needs a file name"},
      {"--log-format", "needs text or json"},
      {"--sh-exec", "needs a command"},
      {"--child-stderr", "needs a file name"},
      {"--sockopt", "needs LEVEL:NAME=VALUE"},
      {"--sockopt-listen", "needs LEVEL:NAME=VALUE"},
      {"--congestion", "needs an algorithm name"},
      {"--bind-device", "needs an interface name"},
  };
  return wording;
}

// Habits from nc, ncat, socat and tcpserver, answered.
const std::map<std::string, std::string>& habits() {
  static const std::map<std::string, std::string> answers = {
      {"-l", "startup-server always listens; give the port"},
      {"--listen", "startup-server always listens; give the port"},
      {"-k", "startup-server always keeps listening; --once serves one connection"},
      {"--keep-open", "startup-server always keeps listening; --once serves one connection"},
      {"--port", "did you mean --service?"},
      {"-P", "did you mean --service?"},
      {"-e", "did you mean --exec?"},
      {"-c", "did you mean --sh-exec?"},
      {"--bind", "did you mean --local-address?"},
      {"--host", "did you mean --local-address?"},
      {"-d", "did you mean --wait?"},
      {"--daemon", "did you mean --wait?"},
      {"--background", "did you mean --wait?"},
      {"-u", "startup-server serves TCP only; to run as a user, --user"},
      {"--udp", "startup-server serves TCP only"},
  };
  return answers;
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::vector<std::string> long_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::Option* o : app.get_options())
    for (const auto& n : o->get_lnames()) names.push_back("--" + n);
  names.push_back("--exec");
  return names;
}

// The option a word names ("--service=80" names --service), or null.
const CLI::Option* option_named(const CLI::App& app, const std::string& word) {
  if (word.size() < 2 || word[0] != '-') return nullptr;
  std::string name = word;
  if (word.rfind("--", 0) == 0) name = word.substr(0, word.find('='));
  else name = word.substr(0, 2);  // -s80, -s 80
  return app.get_option_no_throw(name);
}

bool takes_value(const CLI::Option* o) { return o->get_items_expected_max() > 0; }

std::string canonical(const CLI::Option* o) {
  const auto& l = o->get_lnames();
  return l.empty() ? o->get_name() : "--" + l.front();
}

bool is_flag_word(const CLI::App& app, const std::string& word) {
  return word == "--exec" || word.rfind("--exec=", 0) == 0 || word.rfind("--announce", 0) == 0 ||
         word.rfind("--trace", 0) == 0 ||
         option_named(app, word) != nullptr;
}

}  // namespace

std::string suggestion_for(const CLI::App& app, const std::string& unknown) {
  const std::string name = unknown.substr(0, unknown.find('='));
  if (auto h = habits().find(name); h != habits().end()) return h->second;
  if (name.rfind("--", 0) != 0) return {};
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, name.size() / 4) + 1;
  for (const auto& candidate : long_names(app)) {
    const std::size_t d = edit_distance(name, candidate);
    if (d < best_distance) best = candidate, best_distance = d;
  }
  return best.empty() ? std::string() : "did you mean " + best + "?";
}

scanned_words scan_words(const CLI::App& app, const std::vector<std::string>& words) {
  scanned_words out;
  std::vector<std::string> unknown;
  std::vector<std::string> positionals;
  bool after_announce = false;  // the previous word was a bare --announce
  std::optional<std::string> word_after_announce;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    const bool follows_announce = std::exchange(after_announce, false);
    if (w == "--") {
      positionals.insert(positionals.end(), words.begin() + static_cast<std::ptrdiff_t>(i) + 1, words.end());
      break;
    }
    if (w == "--announce" || w.rfind("--announce=", 0) == 0) {
      if (w == "--announce") {
        out.announce = "stdout";
        after_announce = true;
        continue;
      }
      std::string dest = w.substr(11);
      if (dest.empty()) throw usage_error("--announce= needs a destination: stdout, stderr or a file");
      if (dest == "json" || dest == "text")
        throw usage_error(fmt::format("--announce={0}: did you mean --announce-format={0}?", dest));
      out.announce = dest == "-" ? "stdout" : dest;
      continue;
    }
    if (w == "-x" || w == "--trace" || w.rfind("--trace=", 0) == 0) {
      if (w == "--trace=") throw usage_error("--trace= needs text or hex");
      out.trace = w.size() > 8 ? w.substr(8) : std::string("text");
      continue;
    }
    if (w.size() < 2 || w[0] != '-') {
      // After a bare --announce, a word that can only be a destination is taken as one
      // (--announce stderr, --announce ./port.txt); a port or service name is the port.
      if (follows_announce && (w == "stdout" || w == "stderr" || w == "-" ||
                               w.find_first_of("./") != std::string::npos)) {
        out.announce = w == "-" ? "stdout" : w;
        continue;
      }
      if (follows_announce && !detail::all_digits(w)) word_after_announce = w;
      positionals.push_back(w);
      continue;
    }
    const CLI::Option* o = option_named(app, w);
    if (!o) {
      unknown.push_back(w);
      continue;
    }
    out.options.push_back(w);
    const bool value_attached = w.rfind("--", 0) == 0 ? w.find('=') != std::string::npos : w.size() > 2;
    if (!takes_value(o) || value_attached) continue;
    // The next word is the value, whatever it looks like ("--process-name --exec").
    if (i + 1 >= words.size()) {
      auto wording = missing_value_wording().find(canonical(o));
      throw usage_error(fmt::format("{} {}", canonical(o),
                                    wording != missing_value_wording().end() ? wording->second : "needs a value"));
    }
    out.options.push_back(words[++i]);
  }
  if (!unknown.empty()) {
    std::string listed;
    for (const auto& u : unknown) {
      if (!listed.empty()) listed += ", ";
      listed += u;
      if (const std::string hint = suggestion_for(app, u); !hint.empty()) listed += " (" + hint + ")";
    }
    throw usage_error(fmt::format("unknown option{} {}; see startup-server --help", unknown.size() > 1 ? "s" : "",
                                  listed));
  }
  if (word_after_announce && !positionals.empty() && positionals.front() == *word_after_announce)
    throw usage_error(fmt::format("--announce takes its destination after '=': --announce={}", *word_after_announce));
  if (positionals.size() > 1)
    throw usage_error(fmt::format("{}: one port only ({} came first); a program and its arguments go after --exec",
                                  positionals[1], positionals[0]));
  if (!positionals.empty()) out.port = positionals.front();
  return out;
}

std::vector<std::string> own_flags_among(const CLI::App& app, const std::vector<std::string>& program_args) {
  std::vector<std::string> found;
  for (std::size_t i = 1; i < program_args.size(); ++i)
    if (is_flag_word(app, program_args[i])) found.push_back(program_args[i]);
  return found;
}

}  // namespace startup_server::cli
