// Load generator for the benchmark: loopback only, every loop bounded in count and time.
//
// Modes (one machine-readable "result mode=... key=value ..." line each on stdout):
//   short   N concurrent clients: connect, send a payload, read the echo, verify, close.
//   stream  one connection sending and receiving at once, verified byte by byte.
//   idle    hold K idle connections and read the server's PSS before and after.
//   spawn   short connections against an exec server: send, half-close, read to EOF, close.
//   launch  fork/exec a server command and time its first answered connection.
//   soak    N clients for a duration: mixed verified traffic against echo, talk and cat.
//   free-port / wait-port   small helpers for scripts.
// Exit status: 0 success, 1 verification or connection failure, 2 usage, 3 deadline.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int exit_failure = 1;
constexpr int exit_usage = 2;
constexpr int exit_deadline = 3;

// ---------------------------------------------------------------------------------------
// Options

struct options {
  std::string mode;
  std::string host = "127.0.0.1";
  int port = 0;
  double max_seconds = 60;
  std::string label = "server";
  // short / spawn
  int clients = 8;
  long count = 10000;
  double duration = 0;  // 0: until count
  long payload = -1;    // -1: mode default
  int threads = 1;
  int sources = 32;
  double conn_timeout = 10;
  // stream
  long long bytes = 512LL << 20;
  long chunk = 64 << 10;
  std::string io = "poll";
  double stall_seconds = 5;
  // idle
  long connections = 10000;
  long settle_ms = 300;
  int connect_batch = 256;
  // idle, short, spawn: the server's PID (PSS and CPU accounting include its descendants)
  pid_t pid = 0;
  // soak: one port per workload (0: not run)
  int echo_port = 0;
  int talk_port = 0;
  int cat_port = 0;
  long pause_ms = 10;
  long long stream_max = 2 << 20;
  double progress = 0;
  // launch
  int repeat = 5;
  bool wait_mode = false;
  std::vector<std::string> command;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "loadgen: %s\n", why.c_str());
  std::fprintf(stderr,
               "usage: loadgen short|stream|idle|spawn|launch|free-port|wait-port|descendants [options] [-- COMMAND...]\n"
               "  --host ADDR       loopback address only (127.0.0.0/8 or ::1), default 127.0.0.1\n"
               "  --port N          server port (launch: 0 picks one and replaces {port} in COMMAND)\n"
               "  --max-seconds S   hard deadline for the whole run (default 60)\n"
               "  --label NAME      tag for the result line\n"
               "  short/spawn: --clients N --count N --duration S --payload BYTES --threads T\n"
               "               --conn-timeout S --sources N --pid PID (server CPU per connection)\n"
               "  stream:      --bytes N[K|M|G] --chunk N[K|M] --io poll|threads --stall-seconds S\n"
               "  idle:        --connections K --pid PID --settle-ms MS --connect-batch N\n"
               "  launch:      --repeat R --payload BYTES --wait-mode -- COMMAND [ARGS...]\n"
               "  soak:        --echo-port P --talk-port P --cat-port P --clients N --duration S\n"
               "               --pause-ms MS --stream-max N[K|M] --progress S\n"
               "  descendants: --pid PID (prints PID:STARTTIME of each descendant, one a line)\n");
  std::exit(exit_usage);
}

long long parse_size(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno || end == text.c_str() || v < 0) usage(flag + ": not a size: " + text);
  std::string suffix(end);
  if (suffix == "K" || suffix == "k" || suffix == "KiB") v <<= 10;
  else if (suffix == "M" || suffix == "MiB") v <<= 20;
  else if (suffix == "G" || suffix == "GiB") v <<= 30;
  else if (!suffix.empty()) usage(flag + ": bad suffix: " + text);
  return v;
}

double parse_seconds(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end || !(v >= 0) || v > 86400) usage(flag + ": not a number of seconds: " + text);
  return v;
}

long parse_count(const std::string& flag, const std::string& text, long lo, long hi) {
  long long v = parse_size(flag, text);
  if (v < lo || v > hi) usage(flag + ": out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]: " + text);
  return static_cast<long>(v);
}

options parse(int argc, char** argv) {
  if (argc < 2) usage("missing mode");
  options o;
  o.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      for (++i; i < argc; ++i) o.command.emplace_back(argv[i]);
      break;
    }
    std::string value;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (a != "--wait-mode") {
      if (i + 1 >= argc) usage(a + ": missing value");
      value = argv[++i];
    }
    if (a == "--host") o.host = value;
    else if (a == "--port") o.port = static_cast<int>(parse_count(a, value, 0, 65535));
    else if (a == "--max-seconds") o.max_seconds = parse_seconds(a, value);
    else if (a == "--label") o.label = value;
    else if (a == "--clients") o.clients = static_cast<int>(parse_count(a, value, 1, 100000));
    else if (a == "--count") o.count = parse_count(a, value, 1, 100000000);
    else if (a == "--duration") o.duration = parse_seconds(a, value);
    else if (a == "--payload") o.payload = parse_count(a, value, 0, 1 << 20);
    else if (a == "--threads") o.threads = static_cast<int>(parse_count(a, value, 1, 64));
    else if (a == "--sources") o.sources = static_cast<int>(parse_count(a, value, 1, 250));
    else if (a == "--conn-timeout") o.conn_timeout = parse_seconds(a, value);
    else if (a == "--bytes") o.bytes = parse_size(a, value);
    else if (a == "--chunk") o.chunk = parse_count(a, value, 1, 4 << 20);
    else if (a == "--io") o.io = value;
    else if (a == "--stall-seconds") o.stall_seconds = parse_seconds(a, value);
    else if (a == "--connections") o.connections = parse_count(a, value, 1, 1000000);
    else if (a == "--settle-ms") o.settle_ms = parse_count(a, value, 0, 60000);
    else if (a == "--connect-batch") o.connect_batch = static_cast<int>(parse_count(a, value, 1, 100000));
    else if (a == "--pid") o.pid = static_cast<pid_t>(parse_count(a, value, 1, 1L << 22));
    else if (a == "--repeat") o.repeat = static_cast<int>(parse_count(a, value, 1, 1000));
    else if (a == "--wait-mode") o.wait_mode = true;
    else if (a == "--echo-port") o.echo_port = static_cast<int>(parse_count(a, value, 1, 65535));
    else if (a == "--talk-port") o.talk_port = static_cast<int>(parse_count(a, value, 1, 65535));
    else if (a == "--cat-port") o.cat_port = static_cast<int>(parse_count(a, value, 1, 65535));
    else if (a == "--pause-ms") o.pause_ms = parse_count(a, value, 0, 60000);
    else if (a == "--stream-max") o.stream_max = parse_count(a, value, 1, 4L << 20);  // the pattern window
    else if (a == "--progress") o.progress = parse_seconds(a, value);
    else usage("unknown option " + a);
  }
  if (o.max_seconds <= 0) usage("--max-seconds must be positive");
  if (o.io != "poll" && o.io != "threads") usage("--io: poll or threads");
  return o;
}

// ---------------------------------------------------------------------------------------
// Loopback addresses only

struct endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
};

// Accepts only 127.0.0.0/8 and ::1: the benchmark never sends a packet off the machine.
std::optional<endpoint> loopback_endpoint(const std::string& host, int port) {
  endpoint e;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&e.addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&e.addr);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    if ((ntohl(v4->sin_addr.s_addr) >> 24) != 127) return std::nullopt;
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    e.len = sizeof(sockaddr_in);
    e.family = AF_INET;
    return e;
  }
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    if (!IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) return std::nullopt;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    e.len = sizeof(sockaddr_in6);
    e.family = AF_INET6;
    return e;
  }
  return std::nullopt;
}

endpoint require_loopback(const options& o, bool need_port) {
  if (need_port && o.port == 0) usage("--port is required");
  auto e = loopback_endpoint(o.host, o.port);
  if (!e) usage("refusing " + o.host + ": only loopback literals (127.0.0.0/8, ::1) are allowed");
  return *e;
}

void set_port(endpoint& e, int port) {
  if (e.family == AF_INET) reinterpret_cast<sockaddr_in*>(&e.addr)->sin_port = htons(static_cast<std::uint16_t>(port));
  else reinterpret_cast<sockaddr_in6*>(&e.addr)->sin6_port = htons(static_cast<std::uint16_t>(port));
}

// ---------------------------------------------------------------------------------------
// Deadline: loops check it; an alarm ends the process if something blocks past it anyway.

clock_type::time_point g_deadline;

void on_alarm(int) {
  static const char msg[] = "loadgen: fatal: --max-seconds deadline passed\n";
  ssize_t ignored = ::write(2, msg, sizeof msg - 1);
  (void)ignored;
  ::_exit(exit_deadline);
}

void arm_deadline(double seconds) {
  g_deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  struct sigaction sa{};
  sa.sa_handler = on_alarm;
  ::sigaction(SIGALRM, &sa, nullptr);
  // The loops stop at the deadline; the alarm is the backstop a little after it.
  ::alarm(static_cast<unsigned>(seconds) + 3);
}

bool past_deadline() { return clock_type::now() >= g_deadline; }

int ms_until_deadline(int cap_ms) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(g_deadline - clock_type::now()).count();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<long long>(left, cap_ms));
}

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

std::uint64_t micros_since(clock_type::time_point t) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t).count());
}

// ---------------------------------------------------------------------------------------
// The deterministic byte pattern: a pseudo-random block whose period is no power of two,
// so a dropped, duplicated or reordered chunk cannot line up with itself.

constexpr std::size_t pattern_period = 1048573;  // 2^20 - 3, prime
constexpr std::size_t max_window = 4 << 20;

const std::vector<char>& pattern() {
  static const std::vector<char> p = [] {
    std::vector<char> v(pattern_period + max_window);
    std::uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (std::size_t i = 0; i < pattern_period; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      v[i] = static_cast<char>(x >> 24);
    }
    for (std::size_t i = pattern_period; i < v.size(); ++i) v[i] = v[i - pattern_period];
    return v;
  }();
  return p;
}

// The bytes at stream offset off, contiguous for up to max_window bytes.
const char* pattern_at(std::uint64_t off) { return pattern().data() + off % pattern_period; }

// ---------------------------------------------------------------------------------------
// Process facts from /proc

// Parent of each process, to find a server's descendants (forking peers serve in children).
std::vector<pid_t> process_tree(pid_t root) {
  std::vector<std::pair<pid_t, pid_t>> links;  // (pid, ppid)
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      char* end = nullptr;
      long pid = std::strtol(e->d_name, &end, 10);
      if (*end || pid <= 0) continue;
      std::ifstream in("/proc/" + std::string(e->d_name) + "/stat");
      std::string line;
      if (!std::getline(in, line)) continue;
      auto close = line.rfind(')');
      if (close == std::string::npos) continue;
      std::istringstream rest(line.substr(close + 2));
      char state;
      long ppid;
      if (rest >> state >> ppid) links.emplace_back(static_cast<pid_t>(pid), static_cast<pid_t>(ppid));
    }
    ::closedir(d);
  }
  std::vector<pid_t> tree{root};
  for (std::size_t i = 0; i < tree.size() && tree.size() < 100000; ++i)
    for (auto [pid, ppid] : links)
      if (ppid == tree[i]) tree.push_back(pid);
  return tree;
}

// When the process started (field 22 of /proc/PID/stat), to tell it from a later process
// that reuses its PID; 0 when it is gone.
unsigned long long start_time(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && (rest >> field); ++i)
    if (i == 22) return std::strtoull(field.c_str(), nullptr, 10);
  return 0;
}

// PSS and private bytes (Private_Clean + Private_Dirty) from smaps_rollup; false when
// unreadable. PSS moves when other processes map or unmap the same libraries; the private
// figure does not, so both are reported.
struct memory {
  long long pss = 0;
  long long priv = 0;
  std::size_t processes = 0;
};

bool read_memory(pid_t pid, memory& m) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  if (!in) return false;
  std::string line;
  bool found = false;
  while (std::getline(in, line)) {
    std::istringstream s(line);
    std::string key;
    long long kb;
    if (!(s >> key >> kb)) continue;
    if (key == "Pss:") m.pss += kb * 1024, found = true;
    else if (key == "Private_Clean:" || key == "Private_Dirty:") m.priv += kb * 1024;
  }
  if (found) ++m.processes;
  return found;
}

memory memory_of_tree(pid_t root) {
  memory m;
  for (pid_t p : process_tree(root)) read_memory(p, m);
  return m;
}

// CPU time of pid plus its reaped children (utime+stime+cutime+cstime), in microseconds.
double cpu_micros(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  auto close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  double total = 0;
  // Fields after the name start at 3 (state); utime..cstime are 14..17.
  for (int i = 3; i <= 17 && (rest >> field); ++i)
    if (i >= 14) total += std::strtod(field.c_str(), nullptr);
  return total * 1e6 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double tree_cpu_micros(pid_t root) {
  double total = 0;
  for (pid_t p : process_tree(root)) {
    double c = cpu_micros(p);
    if (c > 0) total += c;
  }
  return total;
}

void raise_fd_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

long fd_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return 1024;
  return r.rlim_cur == RLIM_INFINITY ? 1L << 20 : static_cast<long>(r.rlim_cur);
}

// ---------------------------------------------------------------------------------------
// Sockets

int open_socket(const endpoint& e, bool nonblocking) {
  int flags = SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
  return ::socket(e.family, flags, IPPROTO_TCP);
}

// Client sockets bound to one of several loopback source addresses (127.0.1.1, 127.0.1.2,
// ...): each source has its own 28,000 ephemeral ports, so the TIME_WAIT sockets that short
// connections leave behind do not exhaust the port space (a single source caps loopback at
// about one port range per TIME_WAIT reuse second). The port is chosen at connect time.
int open_client_socket(const endpoint& target, int sources, unsigned serial) {
  int fd = open_socket(target, true);
  if (fd < 0 || target.family != AF_INET || sources <= 1) return fd;
  const int one = 1;
  ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl((127u << 24) | (1u << 8) | (1u + serial % static_cast<unsigned>(sources)));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&src), sizeof src) != 0) {
    ::close(fd);
    return open_socket(target, true);
  }
  return fd;
}

// A blocking connect; loopback answers at once, so no timeout is needed beyond the alarm.
int connect_blocking(const endpoint& e, int& err) {
  int fd = open_socket(e, false);
  if (fd < 0) {
    err = errno;
    return -1;
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&e.addr), e.len) != 0) {
    err = errno;
    ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool send_all(int fd, const char* data, std::size_t size) {
  while (size > 0 && !past_deadline()) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return size == 0;
}

// Reads exactly size bytes (blocking fd, bounded by the deadline through poll).
bool recv_exact(int fd, char* data, std::size_t size) {
  while (size > 0) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, ms_until_deadline(1000));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t n = ::recv(fd, data, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// short and spawn: many concurrent short connections driven by one epoll loop per thread

struct short_config {
  endpoint target;
  std::size_t payload = 64;
  bool half_close = false;   // spawn: shutdown(SHUT_WR) after sending
  bool read_to_eof = false;  // spawn: the connection ends when the server closes
  int sources = 1;
  double conn_timeout = 10;
  clock_type::time_point stop_starting;
};

struct short_totals {
  long done = 0;
  long mismatches = 0;
  long errors = 0;
  long timeouts = 0;
  std::vector<std::uint32_t> latencies_us;
  std::string first_error;
};

std::atomic<long> g_started{0};
long g_count_limit = 0;

class short_driver {
 public:
  short_driver(const short_config& c, int clients) : cfg_(c), clients_(static_cast<std::size_t>(clients)) {}

  short_totals run() {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) {
      t_.errors = 1;
      t_.first_error = std::string("epoll_create1: ") + std::strerror(errno);
      return std::move(t_);
    }
    buf_.resize(std::max<std::size_t>(cfg_.payload, 1) + 4096);
    for (std::size_t i = 0; i < clients_.size(); ++i) start(i);
    std::vector<epoll_event> events(clients_.size() + 1);
    while (active_ > 0) {
      if (past_deadline()) {
        t_.timeouts += active_;
        note_error("run deadline passed with connections in flight");
        break;
      }
      int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()), ms_until_deadline(100));
      if (n < 0 && errno != EINTR) {
        note_error(std::string("epoll_wait: ") + std::strerror(errno));
        break;
      }
      for (int i = 0; i < n; ++i) step(events[static_cast<std::size_t>(i)].data.u64, events[static_cast<std::size_t>(i)].events);
      if (++sweeps_ % 64 == 0) expire_stuck();
    }
    for (auto& c : clients_)
      if (c.fd >= 0) ::close(c.fd);
    ::close(ep_);
    return std::move(t_);
  }

 private:
  enum class phase { idle, connecting, reading };
  struct client {
    int fd = -1;
    phase state = phase::idle;
    clock_type::time_point began;
    std::uint64_t offset = 0;  // where this connection's payload starts in the pattern
    std::size_t got = 0;
  };

  void note_error(const std::string& what) {
    ++t_.errors;
    if (t_.first_error.empty()) t_.first_error = what;
  }

  // Claims the next connection from the shared budget, bounded by count and time.
  bool claim() {
    if (clock_type::now() >= cfg_.stop_starting || past_deadline()) return false;
    return g_started.fetch_add(1) < g_count_limit;
  }

  void start(std::size_t i) {
    client& c = clients_[i];
    c = client{};
    // A failed connect is retried by the next claim; a budget keeps that loop bounded.
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (!claim()) return;
      c.began = clock_type::now();
      c.offset = static_cast<std::uint64_t>(serial_++) * 7919 + i * 104729;
      c.fd = open_client_socket(cfg_.target, cfg_.sources, static_cast<unsigned>(serial_ + static_cast<long>(i)));
      if (c.fd < 0) {
        note_error(std::string("socket: ") + std::strerror(errno));
        continue;
      }
      int r = ::connect(c.fd, reinterpret_cast<const sockaddr*>(&cfg_.target.addr), cfg_.target.len);
      if (r != 0 && errno != EINPROGRESS) {
        note_error(std::string("connect: ") + std::strerror(errno));
        ::close(c.fd);
        c.fd = -1;
        continue;
      }
      c.state = phase::connecting;
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.u64 = i;
      if (::epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
        note_error(std::string("epoll_ctl: ") + std::strerror(errno));
        ::close(c.fd);
        c.fd = -1;
        continue;
      }
      ++active_;
      return;
    }
  }

  void finish(std::size_t i, bool ok) {
    client& c = clients_[i];
    if (ok) {
      ++t_.done;
      t_.latencies_us.push_back(static_cast<std::uint32_t>(std::min<std::uint64_t>(micros_since(c.began), UINT32_MAX)));
    }
    ::close(c.fd);
    c.fd = -1;
    c.state = phase::idle;
    --active_;
    start(i);
  }

  void step(std::uint64_t index, std::uint32_t events) {
    const auto i = static_cast<std::size_t>(index);
    client& c = clients_[i];
    if (c.fd < 0) return;
    if (c.state == phase::connecting) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err) {
        note_error(std::string("connect: ") + std::strerror(err));
        return finish(i, false);
      }
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      if (cfg_.payload > 0) {
        // Small payloads fit the empty send buffer of a fresh connection at once.
        ssize_t n = ::send(c.fd, pattern_at(c.offset), cfg_.payload, MSG_NOSIGNAL);
        if (n != static_cast<ssize_t>(cfg_.payload)) {
          note_error(n < 0 ? std::string("send: ") + std::strerror(errno) : "short send");
          return finish(i, false);
        }
      }
      if (cfg_.half_close) ::shutdown(c.fd, SHUT_WR);
      c.state = phase::reading;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      ::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
      return;
    }
    if (c.state != phase::reading) return;
    for (int reads = 0; reads < 16; ++reads) {
      ssize_t n = ::recv(c.fd, buf_.data(), buf_.size(), 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EINTR) continue;
        note_error(std::string("recv: ") + std::strerror(errno));
        return finish(i, false);
      }
      if (n == 0) {
        if (cfg_.read_to_eof && c.got == cfg_.payload) return finish(i, true);
        note_error("early EOF after " + std::to_string(c.got) + " of " + std::to_string(cfg_.payload) + " bytes");
        return finish(i, false);
      }
      const auto got = static_cast<std::size_t>(n);
      if (c.got + got > cfg_.payload ||
          std::memcmp(buf_.data(), pattern_at(c.offset + c.got), got) != 0) {
        ++t_.mismatches;
        if (t_.first_error.empty()) t_.first_error = "echoed bytes differ from the payload";
        return finish(i, false);
      }
      c.got += got;
      if (!cfg_.read_to_eof && c.got == cfg_.payload) return finish(i, true);
    }
  }

  // A connection that neither completes nor fails (a dropped SYN that is never answered)
  // counts as a timeout rather than holding the run to its deadline.
  void expire_stuck() {
    const auto limit = std::chrono::duration<double>(cfg_.conn_timeout);
    const auto now = clock_type::now();
    for (std::size_t i = 0; i < clients_.size(); ++i) {
      client& c = clients_[i];
      if (c.fd >= 0 && now - c.began > limit) {
        ++t_.timeouts;
        note_error("connection timed out");
        finish(i, false);
      }
    }
  }

  short_config cfg_;
  std::vector<client> clients_;
  std::vector<char> buf_;
  int ep_ = -1;
  long active_ = 0;
  long serial_ = 0;
  unsigned sweeps_ = 0;
  short_totals t_;
};

std::uint32_t percentile(std::vector<std::uint32_t>& v, double q) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

int run_short(const options& o, bool spawn) {
  short_config cfg;
  cfg.target = require_loopback(o, true);
  cfg.payload = static_cast<std::size_t>(o.payload >= 0 ? o.payload : (spawn ? 0 : 64));
  cfg.half_close = spawn;
  cfg.read_to_eof = spawn;
  cfg.conn_timeout = o.conn_timeout;
  cfg.sources = o.sources;
  raise_fd_limit();
  pattern();
  const int threads = std::min(o.threads, o.clients);
  g_count_limit = o.count;
  const double cpu_before = o.pid ? tree_cpu_micros(o.pid) : 0;
  const auto t0 = clock_type::now();
  cfg.stop_starting = o.duration > 0
      ? t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.duration))
      : clock_type::time_point::max();
  std::vector<short_totals> parts(static_cast<std::size_t>(threads));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    const int clients = o.clients / threads + (t < o.clients % threads ? 1 : 0);
    pool.emplace_back([&parts, &cfg, t, clients] { parts[static_cast<std::size_t>(t)] = short_driver(cfg, clients).run(); });
  }
  for (auto& th : pool) th.join();
  const double seconds = seconds_since(t0);
  const double cpu_after = o.pid ? tree_cpu_micros(o.pid) : 0;

  short_totals all;
  for (auto& p : parts) {
    all.done += p.done;
    all.mismatches += p.mismatches;
    all.errors += p.errors;
    all.timeouts += p.timeouts;
    if (all.first_error.empty()) all.first_error = p.first_error;
    all.latencies_us.insert(all.latencies_us.end(), p.latencies_us.begin(), p.latencies_us.end());
  }
  const std::uint32_t p50 = percentile(all.latencies_us, 0.50);
  const std::uint32_t p99 = percentile(all.latencies_us, 0.99);
  const std::uint32_t pmax = all.latencies_us.empty() ? 0 : *std::max_element(all.latencies_us.begin(), all.latencies_us.end());
  std::printf("result mode=%s label=%s clients=%d payload=%zu conns=%ld seconds=%.3f conns_per_s=%.0f "
              "p50_us=%u p99_us=%u max_us=%u errors=%ld mismatches=%ld timeouts=%ld",
              spawn ? "spawn" : "short", o.label.c_str(), o.clients, cfg.payload, all.done, seconds,
              seconds > 0 ? static_cast<double>(all.done) / seconds : 0.0, p50, p99, pmax, all.errors,
              all.mismatches, all.timeouts);
  if (o.pid && all.done > 0 && cpu_before >= 0 && cpu_after >= 0)
    std::printf(" server_cpu_us_per_conn=%.1f server_cpu_util=%.2f", (cpu_after - cpu_before) / static_cast<double>(all.done),
                (cpu_after - cpu_before) / 1e6 / seconds);
  std::printf("\n");
  std::fflush(stdout);
  if (!all.first_error.empty()) std::fprintf(stderr, "loadgen: %s: first error: %s\n", o.label.c_str(), all.first_error.c_str());
  if (all.done == 0) std::fprintf(stderr, "loadgen: %s: no connection completed\n", o.label.c_str());
  return (all.mismatches || all.errors || all.timeouts || all.done == 0) ? exit_failure : 0;
}

// ---------------------------------------------------------------------------------------
// stream: one connection, sending and receiving at once

struct stream_state {
  std::uint64_t total = 0;
  std::size_t chunk = 0;
  double stall_seconds = 5;
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  bool mismatch = false;
  std::uint64_t mismatch_at = 0;
  std::string error;
};

// Compares received bytes against the pattern; on a difference, records its exact offset.
bool verify(stream_state& s, const char* data, std::size_t n) {
  if (s.received + n > s.total) {
    s.mismatch = true;
    s.mismatch_at = s.total;
    return false;
  }
  const char* want = pattern_at(s.received);
  if (std::memcmp(data, want, n) == 0) return true;
  std::size_t k = 0;
  while (k < n && data[k] == want[k]) ++k;
  s.mismatch = true;
  s.mismatch_at = s.received + k;
  return false;
}

// A server that stops echoing (a relay deadlocked on its own pipes) ends the run early.
bool stalled(stream_state& s, std::uint64_t& last_received, clock_type::time_point& last_progress) {
  const auto now = clock_type::now();
  if (s.received != last_received) {
    last_received = s.received;
    last_progress = now;
    return false;
  }
  if (std::chrono::duration<double>(now - last_progress).count() < s.stall_seconds) return false;
  s.error = "stalled: nothing echoed for " + std::to_string(static_cast<int>(s.stall_seconds)) + " s at byte " +
            std::to_string(s.received) + " (" + std::to_string(s.sent) + " sent)";
  return true;
}

// One thread, nonblocking: write what the socket takes, read what is there, poll only when
// both would block. Uses one core, leaving the other to the server on a 2-core machine.
void stream_poll(int fd, stream_state& s) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::vector<char> buf(s.chunk);
  bool shut = false;
  std::uint64_t last_received = 0;
  auto last_progress = clock_type::now();
  while (s.received < s.total && !past_deadline()) {
    bool progressed = false;
    if (s.sent < s.total) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(s.chunk, s.total - s.sent));
      ssize_t w = ::send(fd, pattern_at(s.sent), n, MSG_NOSIGNAL);
      if (w > 0) {
        s.sent += static_cast<std::uint64_t>(w);
        progressed = true;
      } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        s.error = std::string("send: ") + std::strerror(errno);
        return;
      }
    } else if (!shut) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
    }
    ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
    if (r > 0) {
      if (!verify(s, buf.data(), static_cast<std::size_t>(r))) return;
      s.received += static_cast<std::uint64_t>(r);
      progressed = true;
    } else if (r == 0) {
      s.error = "early EOF at byte " + std::to_string(s.received);
      return;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      s.error = std::string("recv: ") + std::strerror(errno);
      return;
    }
    if (progressed) continue;
    if (stalled(s, last_received, last_progress)) return;
    pollfd p{fd, static_cast<short>(POLLIN | (s.sent < s.total ? POLLOUT : 0)), 0};
    ::poll(&p, 1, ms_until_deadline(100));
  }
  if (!shut) ::shutdown(fd, SHUT_WR);
}

// Two threads, blocking: a sender and a receiver (the classic way a client would do it).
void stream_threads(int fd, stream_state& s) {
  std::atomic<bool> send_failed{false};
  std::thread sender([&] {
    while (s.sent < s.total && !past_deadline()) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(s.chunk, s.total - s.sent));
      ssize_t w = ::send(fd, pattern_at(s.sent), n, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        send_failed = true;
        return;
      }
      s.sent += static_cast<std::uint64_t>(w);
    }
    ::shutdown(fd, SHUT_WR);
  });
  timeval tv{0, 200000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::vector<char> buf(s.chunk);
  std::uint64_t last_received = 0;
  auto last_progress = clock_type::now();
  while (s.received < s.total && !past_deadline()) {
    ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (stalled(s, last_received, last_progress)) break;
      continue;
    }
    if (r <= 0) {
      s.error = r == 0 ? "early EOF at byte " + std::to_string(s.received) : std::string("recv: ") + std::strerror(errno);
      break;
    }
    if (!verify(s, buf.data(), static_cast<std::size_t>(r))) break;
    s.received += static_cast<std::uint64_t>(r);
  }
  if (!s.error.empty() || s.mismatch) ::shutdown(fd, SHUT_RDWR);  // unblocks the sender
  sender.join();
  if (send_failed && s.error.empty() && !s.mismatch) s.error = "send failed";
}

int run_stream(const options& o) {
  endpoint target = require_loopback(o, true);
  if (static_cast<std::size_t>(o.chunk) > max_window) usage("--chunk too large");
  pattern();
  int err = 0;
  int fd = connect_blocking(target, err);
  if (fd < 0) {
    std::fprintf(stderr, "loadgen: %s: connect: %s\n", o.label.c_str(), std::strerror(err));
    return exit_failure;
  }
  stream_state s;
  s.total = static_cast<std::uint64_t>(o.bytes);
  s.chunk = static_cast<std::size_t>(o.chunk);
  s.stall_seconds = o.stall_seconds > 0 ? o.stall_seconds : 1e9;
  const auto t0 = clock_type::now();
  if (o.io == "threads") stream_threads(fd, s);
  else stream_poll(fd, s);
  const double seconds = seconds_since(t0);
  // After the half-close the echo server ends the stream: expect its EOF, briefly.
  bool eof = false;
  if (s.error.empty() && !s.mismatch && s.received == s.total) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    char extra[256];
    for (int i = 0; i < 50 && !eof; ++i) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, ms_until_deadline(100)) <= 0) continue;
      ssize_t r = ::recv(fd, extra, sizeof extra, 0);
      if (r == 0) eof = true;
      else if (r > 0) {
        s.mismatch = true;
        s.mismatch_at = s.total;
        break;
      } else break;
    }
  }
  ::close(fd);
  const bool ok = s.error.empty() && !s.mismatch && s.received == s.total;
  std::printf("result mode=stream label=%s bytes=%llu chunk=%zu io=%s seconds=%.3f mb_per_s=%.1f verified=%s eof=%s\n",
              o.label.c_str(), static_cast<unsigned long long>(s.received), s.chunk, o.io.c_str(), seconds,
              seconds > 0 ? static_cast<double>(s.received) / 1e6 / seconds : 0.0, ok ? "yes" : "no", eof ? "yes" : "no");
  std::fflush(stdout);
  if (s.mismatch)
    std::fprintf(stderr, "loadgen: %s: byte %llu differs from the pattern\n", o.label.c_str(),
                 static_cast<unsigned long long>(s.mismatch_at));
  else if (!s.error.empty())
    std::fprintf(stderr, "loadgen: %s: %s\n", o.label.c_str(), s.error.c_str());
  else if (s.received < s.total)
    std::fprintf(stderr, "loadgen: %s: deadline after %llu of %llu bytes\n", o.label.c_str(),
                 static_cast<unsigned long long>(s.received), static_cast<unsigned long long>(s.total));
  return ok ? 0 : exit_failure;
}

// ---------------------------------------------------------------------------------------
// idle: hold K connections, each proven served by a one-byte echo, then read the PSS

int run_idle(const options& o) {
  endpoint target = require_loopback(o, true);
  if (!o.pid) usage("idle: --pid PID of the server is required");
  raise_fd_limit();
  if (o.connections + 64 > fd_limit())
    usage("idle: --connections " + std::to_string(o.connections) + " needs more descriptors than RLIMIT_NOFILE allows (" +
          std::to_string(fd_limit()) + ")");
  const memory before = memory_of_tree(o.pid);
  if (before.processes == 0) {
    std::fprintf(stderr, "loadgen: %s: cannot read /proc/%d/smaps_rollup\n", o.label.c_str(), static_cast<int>(o.pid));
    return exit_failure;
  }
  const auto t0 = clock_type::now();
  std::vector<int> fds;
  fds.reserve(static_cast<std::size_t>(o.connections));
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  long failures = 0;
  std::string first_error;
  auto fail = [&](const std::string& what) {
    ++failures;
    if (first_error.empty()) first_error = what;
  };
  // Batches bound the connects in flight, so a small backlog never drops a SYN.
  std::vector<epoll_event> events(static_cast<std::size_t>(o.connect_batch));
  while (static_cast<long>(fds.size()) < o.connections && !past_deadline() && failures < 100) {
    const long want = std::min<long>(o.connect_batch, o.connections - static_cast<long>(fds.size()));
    std::vector<int> batch;
    for (long k = 0; k < want; ++k) {
      int fd = open_client_socket(target, o.sources, static_cast<unsigned>(fds.size()) + static_cast<unsigned>(k));
      if (fd < 0) {
        fail(std::string("socket: ") + std::strerror(errno));
        break;
      }
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&target.addr), target.len) != 0 && errno != EINPROGRESS) {
        fail(std::string("connect: ") + std::strerror(errno));
        ::close(fd);
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.fd = fd;
      ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      batch.push_back(fd);
    }
    // Connected -> send one byte -> its echo arrives: the server holds this connection.
    long pending = static_cast<long>(batch.size());
    // A server that stops accepting (a connection limit) must not hold the run to its deadline.
    const auto batch_deadline = clock_type::now() + 10s;
    while (pending > 0 && !past_deadline() && clock_type::now() < batch_deadline) {
      int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), ms_until_deadline(200));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) continue;
      for (int k = 0; k < n; ++k) {
        int fd = events[static_cast<std::size_t>(k)].data.fd;
        if (events[static_cast<std::size_t>(k)].events & EPOLLOUT) {
          int err = 0;
          socklen_t len = sizeof err;
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
          if (err || ::send(fd, "i", 1, MSG_NOSIGNAL) != 1) {
            fail(std::string("connect/send: ") + std::strerror(err ? err : errno));
            ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
            ::close(fd);
            --pending;
            continue;
          }
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.fd = fd;
          ::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        } else {
          char c = 0;
          ssize_t r = ::recv(fd, &c, 1, 0);
          if (r < 0 && errno == EAGAIN) continue;
          ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
          --pending;
          if (r != 1 || c != 'i') {
            fail(r == 0 ? "EOF instead of the echo" : r < 0 ? std::string("recv: ") + std::strerror(errno) : "wrong echo");
            ::close(fd);
            continue;
          }
          fds.push_back(fd);
        }
      }
    }
    if (pending > 0) {
      fail(std::to_string(pending) + " connections not echoed within 10 s (after " + std::to_string(fds.size()) + ")");
      for (int fd : batch)
        if (std::find(fds.begin(), fds.end(), fd) == fds.end()) ::close(fd);
      break;
    }
  }
  const double open_seconds = seconds_since(t0);
  ::usleep(static_cast<useconds_t>(o.settle_ms * 1000));
  const memory after = memory_of_tree(o.pid);
  const long held = static_cast<long>(fds.size());
  for (int fd : fds) ::close(fd);
  ::close(ep);
  auto per = [held](long long a, long long b) {
    return held > 0 ? static_cast<double>(a - b) / static_cast<double>(held) : 0.0;
  };
  std::printf("result mode=idle label=%s connections=%ld pss_before_kib=%lld pss_after_kib=%lld bytes_per_conn=%.0f "
              "private_bytes_per_conn=%.0f processes_before=%zu processes_after=%zu open_seconds=%.3f errors=%ld\n",
              o.label.c_str(), held, before.pss / 1024, after.pss / 1024, per(after.pss, before.pss),
              per(after.priv, before.priv), before.processes, after.processes, open_seconds, failures);
  std::fflush(stdout);
  if (!first_error.empty()) std::fprintf(stderr, "loadgen: %s: first error: %s\n", o.label.c_str(), first_error.c_str());
  return (failures || held < o.connections) ? exit_failure : 0;
}

// ---------------------------------------------------------------------------------------
// soak: client threads, for a duration, mixed traffic against an echo server, a talk server
// and an exec cat server at once; every byte that comes back is compared with what the
// server must answer.

enum class soak_kind { echo, talk, cat };

struct soak_target {
  const char* name;
  soak_kind kind;
  endpoint at;
  std::atomic<long> conns{0};
  std::atomic<long> errors{0};
  std::atomic<long> ops[3]{};  // short, lines, stream
  std::atomic<unsigned long long> bytes_sent{0};
  std::atomic<unsigned long long> bytes_verified{0};
};

std::mutex g_soak_log;
std::atomic<long> g_soak_logged{0};

void soak_error(soak_target& t, const std::string& what) {
  ++t.errors;
  if (g_soak_logged.fetch_add(1) >= 20) return;  // the first twenty are enough to debug
  std::lock_guard<std::mutex> lock(g_soak_log);
  std::fprintf(stderr, "loadgen: soak %s: %s\n", t.name, what.c_str());
}

std::uint64_t next_random(std::uint64_t& x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

// A nonblocking connection from one of the loopback source addresses, or -1 (err set).
int soak_connect(const endpoint& target, unsigned serial, std::string& err) {
  int fd = open_client_socket(target, 32, serial);
  if (fd < 0) {
    err = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&target.addr), target.len) != 0 && errno != EINPROGRESS) {
    err = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  int e = 0;
  socklen_t len = sizeof e;
  if (::poll(&p, 1, ms_until_deadline(10000)) != 1 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0 || e) {
    err = std::string("connect: ") + (e ? std::strerror(e) : "no answer within 10 s");
    ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Sends out[0..n) while reading want[0..m) back, both at once (neither side's buffers can
// fill up and stall the other), comparing every read with want. With finish, it then
// half-closes and requires the server's EOF with nothing more. A connection that makes no
// progress for 10 s fails.
bool soak_exchange(int fd, soak_target& t, std::string_view out, std::string_view want, bool finish, std::vector<char>& buf,
                   std::string& err) {
  std::size_t sent = 0, got = 0;
  bool shut = false;
  auto last_progress = clock_type::now();
  for (long turns = 0; turns < 100000000 && !past_deadline(); ++turns) {
    bool progressed = false;
    if (sent < out.size()) {
      ssize_t w = ::send(fd, out.data() + sent, std::min<std::size_t>(out.size() - sent, 64 << 10), MSG_NOSIGNAL);
      if (w > 0) {
        sent += static_cast<std::size_t>(w);
        t.bytes_sent += static_cast<unsigned long long>(w);
        progressed = true;
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        err = std::string("send: ") + std::strerror(errno);
        return false;
      }
    } else if (finish && !shut) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
    }
    if (got == want.size() && !finish) return true;
    ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
    if (r > 0) {
      const auto n = static_cast<std::size_t>(r);
      if (got + n > want.size()) {
        err = std::to_string(got + n - want.size()) + " bytes more than the " + std::to_string(want.size()) + " expected";
        return false;
      }
      if (std::memcmp(buf.data(), want.data() + got, n) != 0) {
        std::size_t k = 0;
        while (buf[k] == want[got + k]) ++k;
        err = "byte " + std::to_string(got + k) + " of " + std::to_string(want.size()) + " differs";
        return false;
      }
      got += n;
      t.bytes_verified += n;
      progressed = true;
    } else if (r == 0) {
      if (finish && got == want.size() && shut) return true;
      err = "early EOF after " + std::to_string(got) + " of " + std::to_string(want.size()) + " bytes";
      return false;
    } else if (errno != EAGAIN && errno != EINTR) {
      err = std::string("recv: ") + std::strerror(errno);
      return false;
    }
    if (progressed) {
      last_progress = clock_type::now();
      continue;
    }
    if (clock_type::now() - last_progress > 10s) {
      err = "stalled at " + std::to_string(got) + " of " + std::to_string(want.size()) + " bytes (" + std::to_string(sent) +
            " sent)";
      return false;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (sent < out.size() ? POLLOUT : 0)), 0};
    ::poll(&p, 1, ms_until_deadline(100));
  }
  err = "run deadline passed mid-connection";
  return false;
}

// Talk lines: pattern bytes with any LF replaced and no CR just before the terminator
// (a CR LF ending is not part of the line); NUL and lone CR bytes stay in.
std::string talk_line(std::uint64_t& rng, std::size_t size) {
  std::string line(pattern_at(next_random(rng) % pattern_period), size);
  for (char& c : line)
    if (c == '\n') c = 'N';
  if (!line.empty() && line.back() == '\r') line.back() = 'R';
  return line;
}

// What SPEC §3 says talk answers for one line.
void talk_reply(std::string& want, std::string_view line) {
  want += "You sent: '";
  want += line;
  want += "'\n";
}

// Appends lines (each ended by LF or CR LF) of up to max_line bytes until out holds at
// least total bytes, and their replies to want. With open_end the last line has no
// terminator (talk answers it at EOF as well).
void talk_lines(std::uint64_t& rng, std::size_t total, std::size_t max_line, bool open_end, std::string& out,
                std::string& want) {
  for (int lines = 0; out.size() < total && lines < 1000000; ++lines) {
    std::string line = talk_line(rng, next_random(rng) % (max_line + 1));
    out += line;
    talk_reply(want, line);
    out += next_random(rng) % 4 == 0 ? "\r\n" : "\n";
  }
  if (open_end) {
    std::string line = talk_line(rng, 1 + next_random(rng) % max_line);
    out += line;
    talk_reply(want, line);
  }
}

enum class soak_op { short_conn, lines, stream };

// One connection of the given kind against t; false (err set) on any failure.
bool soak_connection(soak_target& t, soak_op op, std::uint64_t& rng, unsigned serial, long long stream_max,
                     std::vector<char>& buf, std::string& err) {
  int fd = soak_connect(t.at, serial, err);
  if (fd < 0) return false;
  ++t.ops[static_cast<int>(op)];
  bool ok = true;
  std::string out, want;
  if (op == soak_op::lines) {
    // Ping-pong: each message waits for its answer; then the half-close and the EOF.
    const int rounds = 2 + static_cast<int>(next_random(rng) % 63);
    for (int i = 0; i < rounds && ok; ++i) {
      out.clear();
      want.clear();
      if (t.kind == soak_kind::talk) {
        talk_lines(rng, 1, 200, false, out, want);
      } else {
        out.assign(pattern_at(next_random(rng) % pattern_period), 1 + next_random(rng) % 1024);
        want = out;
      }
      ok = soak_exchange(fd, t, out, want, false, buf, err);
    }
    ok = ok && soak_exchange(fd, t, {}, {}, true, buf, err);
  } else {
    const std::size_t size = op == soak_op::short_conn
        ? 1 + next_random(rng) % 16384
        : static_cast<std::size_t>(stream_max / 8) + next_random(rng) % static_cast<std::size_t>(stream_max - stream_max / 8 + 1);
    if (t.kind == soak_kind::talk) {
      // Streams carry a long line now and then (a quarter of them, up to 64 KiB).
      const std::size_t max_line = op == soak_op::stream && next_random(rng) % 4 == 0 ? 65536 : 2000;
      talk_lines(rng, size, max_line, next_random(rng) % 2 == 0, out, want);
      ok = soak_exchange(fd, t, out, want, true, buf, err);
    } else {
      const std::string_view data(pattern_at(next_random(rng) % pattern_period), size);
      ok = soak_exchange(fd, t, data, data, true, buf, err);
    }
  }
  ::close(fd);
  if (ok) ++t.conns;
  return ok;
}

void soak_client(std::vector<soak_target*> targets, int index, const options& o, clock_type::time_point stop) {
  std::uint64_t rng = UINT64_C(0x9e3779b97f4a7c15) ^ (static_cast<std::uint64_t>(index + 1) * UINT64_C(0xbf58476d1ce4e5b9));
  std::vector<char> buf(64 << 10);
  for (long iter = 0; iter < 100000000 && clock_type::now() < stop && !past_deadline(); ++iter) {
    soak_target& t = *targets[static_cast<std::size_t>(index + iter) % targets.size()];
    const auto pick = next_random(rng) % 100;
    const soak_op op = pick < 50 ? soak_op::short_conn : pick < 85 ? soak_op::lines : soak_op::stream;
    std::string err;
    const unsigned serial = static_cast<unsigned>(index) * 7919u + static_cast<unsigned>(iter);
    if (!soak_connection(t, op, rng, serial, o.stream_max, buf, err)) soak_error(t, err);
    if (o.pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.pause_ms));
  }
}

void soak_print(const char* prefix, double seconds, const std::vector<soak_target*>& targets) {
  for (soak_target* t : targets)
    std::printf("%s label=%s seconds=%.1f conns=%ld short=%ld lines=%ld streams=%ld bytes_sent=%llu bytes_verified=%llu "
                "errors=%ld\n",
                prefix, t->name, seconds, t->conns.load(), t->ops[0].load(), t->ops[1].load(), t->ops[2].load(),
                t->bytes_sent.load(), t->bytes_verified.load(), t->errors.load());
  std::fflush(stdout);
}

int run_soak(const options& o) {
  std::vector<std::unique_ptr<soak_target>> owned;
  auto add = [&](const char* name, soak_kind kind, int port) {
    if (!port) return;
    options at = o;
    at.port = port;
    owned.push_back(std::make_unique<soak_target>());
    owned.back()->name = name;
    owned.back()->kind = kind;
    owned.back()->at = require_loopback(at, true);
  };
  add("echo", soak_kind::echo, o.echo_port);
  add("talk", soak_kind::talk, o.talk_port);
  add("cat", soak_kind::cat, o.cat_port);
  if (owned.empty()) usage("soak: give at least one of --echo-port, --talk-port, --cat-port");
  if (o.duration <= 0 || o.duration + 15 > o.max_seconds) usage("soak: --duration S is required, and --max-seconds at least S + 15");
  std::vector<soak_target*> targets;
  for (auto& t : owned) targets.push_back(t.get());
  raise_fd_limit();
  pattern();
  const auto t0 = clock_type::now();
  const auto stop = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.duration));
  std::vector<std::thread> pool;
  for (int i = 0; i < o.clients; ++i) pool.emplace_back(soak_client, targets, i, std::cref(o), stop);
  // Progress lines while the clients run (bounded by the duration; the clients stop on their own).
  if (o.progress > 0) {
    auto next = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.progress));
    while (next < stop && !past_deadline()) {
      std::this_thread::sleep_until(next);
      soak_print("progress mode=soak", seconds_since(t0), targets);
      next += std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.progress));
    }
  }
  for (auto& th : pool) th.join();
  soak_print("result mode=soak", seconds_since(t0), targets);
  long errors = 0, conns = 0;
  for (soak_target* t : targets) errors += t->errors, conns += t->conns;
  return (errors || conns == 0) ? exit_failure : 0;
}

// ---------------------------------------------------------------------------------------
// launch: fork/exec the server, connect in a tight bounded loop until it answers

int pick_free_port(const endpoint& where) {
  endpoint e = where;
  set_port(e, 0);
  int fd = open_socket(e, false);
  if (fd < 0) return -1;
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  int port = -1;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&e.addr), e.len) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) == 0)
    port = ntohs(e.family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                     : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  ::close(fd);
  return port;
}

std::vector<std::string> substitute_port(const std::vector<std::string>& argv, int port) {
  std::vector<std::string> out;
  for (std::string a : argv) {
    for (auto at = a.find("{port}"); at != std::string::npos; at = a.find("{port}"))
      a.replace(at, 6, std::to_string(port));
    out.push_back(a);
  }
  return out;
}

// Stops a process this run started and whatever it forked: SIGTERM to the process, SIGKILL
// after a bounded wait, then SIGKILL to its remaining descendants (a forking server's
// children outlive it when they hang). Reaps what is this process's to reap.
void stop_process(pid_t pid);

void stop_child(pid_t pid) {
  if (pid <= 0) return;
  std::vector<pid_t> tree = process_tree(pid);
  std::vector<unsigned long long> started;
  for (pid_t p : tree) started.push_back(start_time(p));
  stop_process(pid);
  for (std::size_t i = 1; i < tree.size(); ++i)
    if (started[i] && start_time(tree[i]) == started[i]) ::kill(tree[i], SIGKILL);
  for (std::size_t i = 1; i < tree.size(); ++i) {
    int status;
    ::waitpid(tree[i], &status, WNOHANG);
  }
}

void stop_process(pid_t pid) {
  ::kill(pid, SIGTERM);
  for (int i = 0; i < 3000; ++i) {
    int status;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return;
    ::usleep(1000);
  }
  ::kill(pid, SIGKILL);
  int status;
  ::waitpid(pid, &status, 0);
}

// Sends the payload and reads its echo; with no payload, a completed connect is the answer.
bool answered(const endpoint& e, std::size_t payload) {
  int err = 0;
  int fd = connect_blocking(e, err);
  if (fd < 0) return false;
  bool ok = true;
  if (payload > 0) {
    std::vector<char> back(payload);
    ok = send_all(fd, pattern_at(0), payload) && recv_exact(fd, back.data(), payload) &&
         std::memcmp(back.data(), pattern_at(0), payload) == 0;
  }
  ::close(fd);
  return ok;
}

struct launch_sample {
  double first_ms = -1;
  double exit_ms = -1;  // --wait-mode: when the launching command returned
};

launch_sample launch_once(const options& o, endpoint e, std::string& error) {
  launch_sample sample;
  int port = o.port ? o.port : pick_free_port(e);
  if (port <= 0) {
    error = "no free port";
    return sample;
  }
  set_port(e, port);
  auto argv_s = substitute_port(o.command, port);
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  int out[2] = {-1, -1};
  if (o.wait_mode && ::pipe2(out, O_CLOEXEC) != 0) {
    error = "pipe failed";
    return sample;
  }
  const auto t0 = clock_type::now();
  pid_t child = ::fork();
  if (child < 0) {
    error = std::string("fork: ") + std::strerror(errno);
    return sample;
  }
  if (child == 0) {
    // The server starts as a shell would start it: default SIGPIPE, nothing blocked.
    ::signal(SIGPIPE, SIG_DFL);
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(o.wait_mode ? out[1] : devnull, 1);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  pid_t server = child;
  if (o.wait_mode) {
    // The command prints the background server's PID and returns once it listens.
    ::close(out[1]);
    std::string text;
    char buf[64];
    for (;;) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, ms_until_deadline(1000)) <= 0) break;
      ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(out[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    sample.exit_ms = static_cast<double>(micros_since(t0)) / 1000.0;
    server = static_cast<pid_t>(std::strtol(text.c_str(), nullptr, 10));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || server <= 0) {
      error = "the command did not return a PID with status 0";
      if (server > 0) stop_child(server);
      return sample;
    }
  }
  for (long attempt = 0; attempt < 2000000 && !past_deadline(); ++attempt) {
    if (answered(e, static_cast<std::size_t>(o.payload < 0 ? 1 : o.payload))) {
      sample.first_ms = static_cast<double>(micros_since(t0)) / 1000.0;
      break;
    }
    if (!o.wait_mode) {
      int status;
      if (::waitpid(child, &status, WNOHANG) == child) {
        error = "the server exited before answering";
        return sample;
      }
    }
    ::usleep(20);
  }
  if (sample.first_ms < 0) error = "no answer before the deadline";
  stop_child(server);
  return sample;
}

int run_launch(const options& o) {
  endpoint e = require_loopback(o, false);
  if (o.command.empty()) usage("launch: the server command follows --");
  // A --wait server daemonises; as subreaper this process can still reap it.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  std::vector<double> firsts, exits;
  std::string error;
  for (int r = 0; r < o.repeat && !past_deadline(); ++r) {
    launch_sample s = launch_once(o, e, error);
    if (s.first_ms < 0) break;
    firsts.push_back(s.first_ms);
    if (s.exit_ms >= 0) exits.push_back(s.exit_ms);
  }
  // Anything re-parented here (a forking peer's last children) is reaped, boundedly.
  for (int i = 0; i < 1000; ++i) {
    int status;
    if (::waitpid(-1, &status, WNOHANG) <= 0) break;
  }
  std::sort(firsts.begin(), firsts.end());
  std::sort(exits.begin(), exits.end());
  auto med = [](const std::vector<double>& v) { return v.empty() ? -1.0 : v[v.size() / 2]; };
  std::printf("result mode=launch label=%s runs=%zu first_answer_ms_min=%.2f first_answer_ms_p50=%.2f first_answer_ms_max=%.2f",
              o.label.c_str(), firsts.size(), firsts.empty() ? -1.0 : firsts.front(), med(firsts),
              firsts.empty() ? -1.0 : firsts.back());
  if (o.wait_mode) std::printf(" wait_return_ms_p50=%.2f", med(exits));
  std::printf("\n");
  std::fflush(stdout);
  if (!error.empty()) std::fprintf(stderr, "loadgen: %s: %s\n", o.label.c_str(), error.c_str());
  return (error.empty() && static_cast<int>(firsts.size()) == o.repeat) ? 0 : exit_failure;
}

// ---------------------------------------------------------------------------------------
// helpers for scripts

int run_free_port(const options& o) {
  endpoint e = require_loopback(o, false);
  int port = pick_free_port(e);
  if (port <= 0) return exit_failure;
  std::printf("%d\n", port);
  return 0;
}

int run_descendants(const options& o) {
  if (!o.pid) usage("descendants: --pid PID is required");
  std::vector<pid_t> tree = process_tree(o.pid);
  for (std::size_t i = 1; i < tree.size(); ++i) {
    const unsigned long long t = start_time(tree[i]);
    if (t) std::printf("%d:%llu\n", static_cast<int>(tree[i]), t);
  }
  return 0;
}

int run_wait_port(const options& o) {
  endpoint e = require_loopback(o, true);
  for (long attempt = 0; attempt < 1000000 && !past_deadline(); ++attempt) {
    int err = 0;
    int fd = connect_blocking(e, err);
    if (fd >= 0) {
      ::close(fd);
      return 0;
    }
    ::usleep(1000);
  }
  std::fprintf(stderr, "loadgen: nothing listens on port %d\n", o.port);
  return exit_failure;
}

}  // namespace

int main(int argc, char** argv) {
  options o = parse(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  arm_deadline(o.max_seconds);
  if (o.mode == "short") return run_short(o, false);
  if (o.mode == "spawn") return run_short(o, true);
  if (o.mode == "stream") return run_stream(o);
  if (o.mode == "idle") return run_idle(o);
  if (o.mode == "launch") return run_launch(o);
  if (o.mode == "soak") return run_soak(o);
  if (o.mode == "free-port") return run_free_port(o);
  if (o.mode == "wait-port") return run_wait_port(o);
  if (o.mode == "descendants") return run_descendants(o);
  usage("unknown mode " + o.mode);
}
