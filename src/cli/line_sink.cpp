// A bounded line queue and the thread that writes it out.
#include "cli/line_sink.hpp"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace startup_server::detail {
namespace {

using clock = std::chrono::steady_clock;

constexpr auto poll_slice = std::chrono::milliseconds(100);

std::size_t count_lines(std::string_view s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

bool line_sink::open(const std::string& destination, std::string& reason) {
  if (destination == "stdout") {
    attach(STDOUT_FILENO);
    return true;
  }
  if (destination == "stderr") {
    attach(STDERR_FILENO);
    return true;
  }
  int fd = ::open(destination.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND, 0666);
  if (fd < 0) {
    reason = std::strerror(errno);
    return false;
  }
  attach(fd);
  owned_ = true;
  return true;
}

void line_sink::attach(int fd) noexcept {
  fd_ = fd;
  owned_ = false;
  struct stat st {};
  if (::fstat(fd, &st) == 0) {
    regular_file_ = S_ISREG(st.st_mode);
    socket_ = S_ISSOCK(st.st_mode);
  }
}

void line_sink::set_drop_note(std::function<std::string(std::uint64_t)> note) {
  std::lock_guard lock(mutex_);
  drop_note_ = std::move(note);
}

line_sink::~line_sink() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (owned_ && fd_ >= 0) ::close(fd_);
}

void line_sink::write_line(std::string_view line) noexcept {
  if (fd_ < 0) return;
  try {
    std::lock_guard lock(mutex_);
    if (stop_ || broken_) return;
    if (queue_.size() + line.size() + 1 > limit && !queue_.empty()) {
      ++dropped_;
      return;
    }
    queue_.append(line);
    queue_.push_back('\n');
    queued_total_ += line.size() + 1;
    if (!writer_.joinable()) writer_ = std::thread([this] { run(); });
  } catch (...) {
    // Out of memory or threads: the line is lost, the caller goes on.
    return;
  }
  wake_.notify_one();
}

bool line_sink::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  const std::uint64_t target = queued_total_;
  return written_.wait_for(lock, timeout, [&] { return written_total_ >= target || broken_; });
}

void line_sink::run() {
  // A reader that went away must cost an error, not the process; so must a full file.
  sigset_t quiet;
  ::sigemptyset(&quiet);
  ::sigaddset(&quiet, SIGPIPE);
  ::sigaddset(&quiet, SIGXFSZ);
  ::pthread_sigmask(SIG_BLOCK, &quiet, nullptr);

  std::unique_lock lock(mutex_);
  clock::time_point give_up = clock::time_point::max();
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || !queue_.empty() || dropped_ > 0; });
    if (stop_ && give_up == clock::time_point::max()) give_up = clock::now() + close_deadline;
    if (queue_.empty() && dropped_ == 0) break;  // stopping, and everything is out
    std::string batch;
    batch.swap(queue_);
    const std::uint64_t dropped = std::exchange(dropped_, 0);
    const std::uint64_t taken = batch.size();
    if (dropped && drop_note_) batch += drop_note_(dropped) + '\n';
    else if (dropped) batch += std::to_string(dropped) + " lines dropped\n";
    lock.unlock();
    const bool ok = !broken_ && write_batch(batch, give_up);
    lock.lock();
    written_total_ += taken;
    if (!ok && !regular_file_) broken_ = true;  // a pipe or socket that failed stays failed
    written_.notify_all();
    if (stop_ && clock::now() >= give_up) break;
  }
  written_total_ = queued_total_;
  written_.notify_all();
}

// Writes batch (whole lines). On a regular file a short write is cut back to the last
// whole line; elsewhere what could not be written by give_up is dropped.
bool line_sink::write_batch(const std::string& batch, clock::time_point give_up) {
  std::size_t written = 0;
  const bool ok = write_piece(batch.data(), batch.size(), give_up, written);
  if (ok) return true;
  if (regular_file_ && written > 0) {
    const std::string_view done(batch.data(), written);
    const std::size_t last = done.rfind('\n');
    const std::size_t keep = last == std::string_view::npos ? 0 : last + 1;
    const off_t end = ::lseek(fd_, 0, SEEK_CUR);
    struct stat st {};
    // Only when no one else wrote after us: the torn tail is ours alone.
    if (keep < written && end >= 0 && ::fstat(fd_, &st) == 0 && st.st_size == end) {
      const off_t cut = end - static_cast<off_t>(written - keep);
      if (::ftruncate(fd_, cut) == 0) ::lseek(fd_, cut, SEEK_SET);
    }
    written = keep;
  }
  std::lock_guard lock(mutex_);
  dropped_ += count_lines(std::string_view(batch).substr(written));
  return false;
}

bool line_sink::write_piece(const char* data, std::size_t size, clock::time_point give_up, std::size_t& written) {
  written = 0;
  while (written < size) {
    ssize_t n;
    if (regular_file_) {
      n = ::write(fd_, data + written, size - written);
    } else {
      // Wait for room, in slices, so a stop is noticed; then write no more than the
      // kernel takes at once, so the write itself never blocks.
      const auto now = clock::now();
      if (now >= give_up) return false;
      const auto slice = std::min<clock::duration>(poll_slice, give_up - now);
      pollfd p{fd_, POLLOUT, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(slice).count()) + 1);
      if (ready < 0 && errno != EINTR) return false;
      if (ready <= 0) {
        std::lock_guard lock(mutex_);
        if (stop_ && give_up == clock::time_point::max()) give_up = clock::now() + close_deadline;
        continue;
      }
      if (p.revents & (POLLERR | POLLNVAL)) return false;
      // Pieces end at a line's end where they can, so giving up never leaves half a line.
      std::size_t piece = std::min<std::size_t>(size - written, PIPE_BUF);
      if (piece < size - written) {
        const std::string_view window(data + written, piece);
        if (const std::size_t nl = window.rfind('\n'); nl != std::string_view::npos) piece = nl + 1;
      }
      n = socket_ ? ::send(fd_, data + written, piece, MSG_DONTWAIT | MSG_NOSIGNAL)
                  : ::write(fd_, data + written, piece);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    written += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace startup_server::detail
