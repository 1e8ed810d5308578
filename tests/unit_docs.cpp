// Unit tests: the man page, the shell completions and the README keep up with --help.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.hpp"

namespace {

const std::string source_dir = STARTUP_SERVER_SOURCE_DIR;
const std::string man_page = source_dir + "/man/startup-server.1";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  INFO("reading " << path);
  REQUIRE(in.good());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct help_options {
  std::set<std::string> long_options;   // "--echo"
  std::set<std::string> short_options;  // "-s"
};

// The options --help lists: the first column of its option lines ("  -s,--service PORT").
help_options options_in_help() {
  static const std::regex option_line(R"(^  (-[A-Za-z],)?(--[a-z][a-z0-9-]*))");
  help_options found;
  std::istringstream help(startup_server::cli::help_text());
  for (std::string line; std::getline(help, line);) {
    std::smatch m;
    if (!std::regex_search(line, m, option_line)) continue;
    if (m[1].matched) found.short_options.insert(m[1].str().substr(0, 2));
    found.long_options.insert(m[2].str());
  }
  return found;
}

// Roff source as plain text: \- is a dash; font changes and zero-width escapes vanish.
std::string roff_to_text(const std::string& roff) {
  std::string out;
  out.reserve(roff.size());
  for (std::size_t i = 0; i < roff.size(); ++i) {
    if (roff[i] != '\\' || i + 1 >= roff.size()) {
      out.push_back(roff[i]);
      continue;
    }
    const char next = roff[i + 1];
    if (next == '-') {
      out.push_back('-');
      ++i;
    } else if (next == 'f') {  // \fB, \fI, \fR, \fP, \f(CW, \f[B]
      if (i + 2 < roff.size() && roff[i + 2] == '(') i += 4;
      else if (i + 2 < roff.size() && roff[i + 2] == '[') i = roff.find(']', i);
      else i += 2;
    } else if (next == '&' || next == '%') {
      ++i;
    } else if (next == 'e') {
      out.push_back('\\');
      ++i;
    } else {
      out.push_back(roff[i]);
    }
  }
  return out;
}

bool option_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// True if word occurs in text as a whole option: not inside a longer option or word.
bool mentions(const std::string& text, const std::string& word) {
  for (std::size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    const bool starts = at == 0 || !option_char(text[at - 1]);
    const std::size_t end = at + word.size();
    const bool ends = end == text.size() || !option_char(text[end]);
    if (starts && ends) return true;
  }
  return false;
}

// fish names options without dashes: "-s s -l service".
bool fish_mentions(const std::string& text, const std::string& option) {
  if (option.rfind("--", 0) == 0) return mentions(text, "-l " + option.substr(2));
  return mentions(text, "-s " + option.substr(1));
}

std::set<std::string> long_options_in(const std::string& text, const std::regex& pattern) {
  std::set<std::string> found;
  for (std::sregex_iterator it(text.begin(), text.end(), pattern), end; it != end; ++it)
    found.insert("--" + (*it)[1].str());
  return found;
}

struct completion_file {
  const char* name;
  bool fish;
};

const completion_file completion_files[] = {
    {"completions/startup-server.bash", false},
    {"completions/_startup-server", false},
    {"completions/startup-server.fish", true},
};

}  // namespace

TEST_CASE("docs: --help lists the options the documentation is checked against", "[docs]") {
  const help_options help = options_in_help();
  CHECK(help.long_options.size() >= 30);
  CHECK(help.long_options.count("--exec") == 1);
  CHECK(help.long_options.count("--log-format") == 1);
  CHECK(help.short_options == std::set<std::string>{"-a", "-b", "-h", "-p", "-s", "-V", "-v", "-x"});
}

TEST_CASE("docs: every long option in --help is in the man page", "[docs]") {
  const std::string text = roff_to_text(read_file(man_page));
  for (const auto& option : options_in_help().long_options) {
    INFO(option);
    CHECK(mentions(text, option));
  }
}

TEST_CASE("docs: every short option in --help is in the man page", "[docs]") {
  const std::string text = roff_to_text(read_file(man_page));
  for (const auto& option : options_in_help().short_options) {
    INFO(option);
    CHECK(mentions(text, option));
  }
}

TEST_CASE("docs: every option in --help is in each completion file", "[docs]") {
  const help_options help = options_in_help();
  for (const auto& file : completion_files) {
    const std::string text = read_file(source_dir + "/" + file.name);
    for (const auto* options : {&help.long_options, &help.short_options}) {
      for (const auto& option : *options) {
        INFO(file.name << ": " << option);
        CHECK((file.fish ? fish_mentions(text, option) : mentions(text, option)));
      }
    }
  }
}

TEST_CASE("docs: every option in the completion files exists in --help", "[docs]") {
  const help_options help = options_in_help();
  static const std::regex dashed(R"((?:^|[^A-Za-z0-9_-])--([a-z][a-z0-9-]*))");
  static const std::regex fish_long(R"((?:^|\s)-l ([a-z][a-z0-9-]*))");
  for (const auto& file : completion_files) {
    const std::string text = read_file(source_dir + "/" + file.name);
    auto mentioned = long_options_in(text, dashed);
    // fish's "set -l NAME" declares a local variable, not an option.
    if (file.fish) mentioned.merge(long_options_in(std::regex_replace(text, std::regex("set -l "), "set "), fish_long));
    CHECK(!mentioned.empty());
    for (const auto& option : mentioned) {
      INFO(file.name << ": " << option << " is not an option of startup-server");
      CHECK(help.long_options.count(option) == 1);
    }
  }
}

TEST_CASE("docs: every option in --help is in README.md", "[docs]") {
  const std::string text = read_file(source_dir + "/README.md");
  const help_options help = options_in_help();
  for (const auto* options : {&help.long_options, &help.short_options}) {
    for (const auto& option : *options) {
      INFO(option);
      CHECK(mentions(text, option));
    }
  }
}

TEST_CASE("docs: the man page has every required section", "[docs]") {
  std::set<std::string> sections;
  std::istringstream roff(read_file(man_page));
  for (std::string line; std::getline(roff, line);) {
    if (line.rfind(".SH ", 0) != 0) continue;
    std::string name = line.substr(4);
    name.erase(std::remove(name.begin(), name.end(), '"'), name.end());
    sections.insert(name);
  }
  for (const char* required : {"NAME", "SYNOPSIS", "DESCRIPTION", "HANDLERS", "OPTIONS", "ENVIRONMENT",
                               "EXIT STATUS", "SIGNALS", "EXAMPLES", "SEE ALSO"}) {
    INFO(required);
    CHECK(sections.count(required) == 1);
  }
}

TEST_CASE("docs: the man page's header names the project's version", "[docs]") {
  std::istringstream roff(read_file(man_page));
  std::string line;
  while (std::getline(roff, line) && line.rfind(".TH ", 0) != 0) {
  }
  INFO(line);
  CHECK(line.find("\"startup-server " STARTUP_SERVER_PROJECT_VERSION "\"") != std::string::npos);
}

TEST_CASE("docs: the man page lists every exit status and UCSPI variable", "[docs]") {
  const std::string text = roff_to_text(read_file(man_page));
  for (const char* status : {"\n.B 0\n", "\n.B 64\n", "\n.B 68\n", "\n.B 69\n", "\n.B 70\n", "\n.B 71\n", "\n.B 77\n"}) {
    INFO(status);
    CHECK(text.find(status) != std::string::npos);
  }
  for (const char* variable : {"PROTO", "TCPLOCALIP", "TCPLOCALPORT", "TCPREMOTEIP", "TCPREMOTEPORT", "PATH"}) {
    INFO(variable);
    CHECK(mentions(text, variable));
  }
}

TEST_CASE("docs: the man page formats without groff warnings", "[docs]") {
  if (std::system("command -v groff >/dev/null 2>&1") != 0) {
    WARN("groff is not installed: the man page lint is skipped");
    return;
  }
  const std::string command = "groff -man -ww -z '" + man_page + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string warnings;
  char buffer[512];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) warnings.append(buffer, n);
  const int status = ::pclose(pipe);
  INFO(warnings);
  CHECK(warnings.empty());
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("docs: the README's first command builds only the binary it starts", "[docs][shell]") {
  const std::string readme = read_file(source_dir + "/README.md");
  const auto first_block = readme.find("```sh");
  REQUIRE(first_block != std::string::npos);
  const std::string block = readme.substr(first_block, readme.find("```", first_block + 5) - first_block);
  CHECK(block.find("cmake --build --preset release --target startup-server") != std::string::npos);
  CHECK(block.find("./build/release/startup-server") != std::string::npos);
}

TEST_CASE("docs: examples that pipe into nc close with -N, as Debian's nc needs", "[docs][shell]") {
  for (const std::string& path : {source_dir + "/README.md", man_page}) {
    const std::string text = roff_to_text(read_file(path));
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      if (line.find("| nc ") == std::string::npos) continue;
      INFO(path << ": " << line);
      CHECK(line.find("| nc -N ") != std::string::npos);
    }
  }
}

// ctest's discovery cuts a test's name at ';' and then runs nothing under the cut name, yet
// counts it as passed: no test may have one.
TEST_CASE("docs: no test name holds a semicolon, so ctest runs every test it lists", "[docs]") {
  const std::regex test_case(R"(TEST_CASE\(\s*"([^"]*)\")");
  for (const auto& entry : std::filesystem::directory_iterator(source_dir + "/tests")) {
    if (entry.path().extension() != ".cpp") continue;
    const std::string text = read_file(entry.path().string());
    for (std::sregex_iterator it(text.begin(), text.end(), test_case), end; it != end; ++it) {
      INFO(entry.path().filename().string() << ": " << (*it)[1].str());
      CHECK((*it)[1].str().find(';') == std::string::npos);
    }
  }
}

TEST_CASE("docs: the man page shows the HAProxy example as docs/haproxy/haproxy.cfg has it", "[docs][proxy]") {
  const std::string text = roff_to_text(read_file(man_page));
  std::istringstream cfg(read_file(source_dir + "/docs/haproxy/haproxy.cfg"));
  std::size_t lines = 0;
  for (std::string line; std::getline(cfg, line);) {
    if (line.empty() || line[0] == '#') continue;
    INFO(line);
    CHECK(text.find("\n" + line + "\n") != std::string::npos);
    ++lines;
  }
  CHECK(lines > 10);
}

TEST_CASE("docs: the man page shows the systemd units as docs/systemd has them", "[docs][systemd]") {
  const std::string text = roff_to_text(read_file(man_page));
  for (const char* unit : {"startup-server-echo.socket", "startup-server-echo.service", "startup-server-notify.service"}) {
    std::istringstream file(read_file(source_dir + "/docs/systemd/" + unit));
    std::size_t lines = 0;
    for (std::string line; std::getline(file, line);) {
      if (line.empty() || line[0] == '#') continue;
      INFO(unit << ": " << line);
      CHECK(text.find("\n" + line + "\n") != std::string::npos);
      ++lines;
    }
    CHECK(lines >= 4);
  }
}
