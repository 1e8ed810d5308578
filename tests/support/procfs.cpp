// Reading /proc for the tests; every reader tolerates a process vanishing under it.
#include "support/procfs.hpp"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <system_error>
#include <thread>

#include "support/process.hpp"

namespace test_support {
namespace {

std::vector<std::string> directory_names(const std::string& path) {
  std::vector<std::string> names;
  DIR* d = ::opendir(path.c_str());
  if (!d) return names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  return names;
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// "pid (comm) S ppid …": comm may hold spaces and parentheses, so parse after the last ')'.
std::optional<proc_entry> read_stat(pid_t pid) {
  auto text = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!text) return std::nullopt;
  auto close = text->rfind(')');
  if (close == std::string::npos || close + 2 >= text->size()) return std::nullopt;
  std::istringstream rest(text->substr(close + 2));
  proc_entry e;
  e.pid = pid;
  long ppid = 0;
  if (!(rest >> e.state >> ppid)) return std::nullopt;
  e.ppid = static_cast<pid_t>(ppid);
  return e;
}

long status_field_kib(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  for (int i = 0; i < 1000 && std::getline(in, line); ++i) {
    if (line.rfind(key, 0) == 0) return std::strtol(line.c_str() + key.size(), nullptr, 10);
  }
  return -1;
}

std::string exe_of(pid_t pid) {
  std::error_code ec;
  auto target = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  if (ec) return {};
  // A binary rebuilt while it runs shows as "PATH (deleted)"; it is still that program.
  std::string path = target.string();
  const std::string deleted = " (deleted)";
  if (path.size() > deleted.size() && path.compare(path.size() - deleted.size(), deleted.size(), deleted) == 0)
    path.resize(path.size() - deleted.size());
  return path;
}

}  // namespace

bool wait_until(const std::function<bool()>& done, milliseconds timeout, milliseconds step) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const long rounds = timeout / std::max(step, milliseconds(1)) + 1;
  for (long i = 0; i < rounds; ++i) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(step);
  }
  return done();
}

int count_fds(pid_t pid) {
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!d) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

int settled_fd_count(pid_t pid, milliseconds quiet, milliseconds timeout) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + timeout;
  int last = count_fds(pid);
  auto since = clock::now();
  while (clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
    const int now = count_fds(pid);
    if (now != last) {
      last = now;
      since = clock::now();
    } else if (clock::now() - since >= quiet) {
      break;
    }
  }
  return last;
}

std::vector<std::pair<int, std::string>> fd_targets(pid_t pid) {
  std::vector<std::pair<int, std::string>> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& name : directory_names(dir)) {
    if (!all_digits(name)) continue;
    std::error_code ec;
    auto target = std::filesystem::read_symlink(dir + "/" + name, ec);
    if (!ec) out.emplace_back(std::stoi(name), target.string());
  }
  return out;
}

std::vector<proc_entry> all_processes() {
  std::vector<proc_entry> out;
  for (const auto& name : directory_names("/proc")) {
    if (!all_digits(name)) continue;
    if (auto e = read_stat(static_cast<pid_t>(std::stol(name)))) out.push_back(*e);
  }
  return out;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  for (const auto& e : all_processes())
    if (e.ppid == pid) out.push_back(e.pid);
  return out;
}

int count_zombie_children(pid_t pid) {
  int n = 0;
  for (const auto& e : all_processes())
    if (e.ppid == pid && e.state == 'Z') ++n;
  return n;
}

std::optional<char> process_state(pid_t pid) {
  auto e = read_stat(pid);
  if (!e) return std::nullopt;
  return e->state;
}

std::string command_line(pid_t pid) {
  auto text = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  if (!text) return {};
  std::string out = *text;
  while (!out.empty() && out.back() == '\0') out.pop_back();
  for (char& c : out)
    if (c == '\0') c = ' ';
  return out;
}

std::vector<pid_t> find_processes(const std::vector<std::string>& parts) {
  std::vector<pid_t> out;
  const pid_t self = ::getpid();
  for (const auto& name : directory_names("/proc")) {
    if (!all_digits(name)) continue;
    pid_t pid = static_cast<pid_t>(std::stol(name));
    if (pid == self) continue;
    std::string cmd = command_line(pid);
    if (cmd.empty()) continue;
    bool all = true;
    for (const auto& p : parts) all = all && cmd.find(p) != std::string::npos;
    if (all) out.push_back(pid);
  }
  return out;
}

long rss_kib(pid_t pid) { return status_field_kib("/proc/" + std::to_string(pid) + "/status", "VmRSS:"); }
long pss_kib(pid_t pid) { return status_field_kib("/proc/" + std::to_string(pid) + "/smaps_rollup", "Pss:"); }

std::string random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; i += 4) {
    std::uint32_t v = gen();
    for (std::size_t k = 0; k < 4 && i + k < n; ++k) out[i + k] = static_cast<char>((v >> (8 * k)) & 0xff);
  }
  return out;
}

temp_dir::temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string tpl = std::string(base && *base ? base : "/tmp") + "/startup-server-test.XXXXXX";
  if (!::mkdtemp(tpl.data())) throw std::system_error(errno, std::system_category(), "mkdtemp");
  path_ = tpl;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

detached_process::~detached_process() {
  if (pid_ <= 0) return;
  if (alive() && send_signal(SIGTERM) && wait_exit(milliseconds(5000)) == timed_out) {
    send_signal(SIGKILL);
    wait_exit(milliseconds(5000));
  } else {
    wait_exit(milliseconds(0));  // reap it if it ended and is ours
  }
}

bool detached_process::alive() const {
  auto state = process_state(pid_);
  return state && *state != 'Z' && *state != 'X';
}

bool detached_process::send_signal(int sig) const {
  if (pid_ <= 0 || !alive()) return false;
  std::error_code ec;
  auto mine = std::filesystem::canonical(binary_path(), ec);
  if (ec || exe_of(pid_) != mine.string()) return false;
  return ::kill(pid_, sig) == 0;
}

int detached_process::wait_exit(milliseconds timeout) {
  int status = 0;
  int result = timed_out;
  wait_until(
      [&] {
        pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
          result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          return true;
        }
        if (r < 0 && !process_state(pid_)) {  // not ours, and gone
          result = -2;
          return true;
        }
        return false;
      },
      timeout);
  return result;
}

subreaper_scope::subreaper_scope() { ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }
subreaper_scope::~subreaper_scope() {
  // A server a failed test never got to name was orphaned to us: stop it and reap every
  // orphan. The test's own child_process objects, declared later, are gone by now.
  std::error_code ec;
  const std::string mine = std::filesystem::canonical(binary_path(), ec).string();
  for (pid_t pid : children_of(::getpid())) {
    int status = 0;
    if (!ec && exe_of(pid) == mine && ::kill(pid, SIGKILL) == 0)
      wait_until([&] { return ::waitpid(pid, &status, WNOHANG) != 0; }, milliseconds(2000));
    else
      ::waitpid(pid, &status, WNOHANG);  // an exited orphan of another kind
  }
  ::prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
}

}  // namespace test_support
