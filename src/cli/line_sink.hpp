// Output lines written off the caller's thread: a stalled reader costs dropped lines, never a stalled server.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace startup_server::detail {

// Writes whole lines to a descriptor from a writer thread of its own. write_line only
// queues: it never waits for the reader. When the queue holds `limit` bytes, further lines
// are dropped and counted, and once the reader catches up a note ("N lines dropped", as
// drop_note words it) is written in their place. A line is written whole or not at all:
// on a regular file a write cut short (a full disk, a file size limit) is truncated back
// to the last whole line. Pipes, terminals and sockets are written in pieces the kernel
// takes at once (poll, then at most PIPE_BUF bytes), so the writer never blocks for long
// and can always be stopped.
//
// The writer thread starts with the first line, so a process may fork after open().
// Thread-safe: write_line and flush may be called from any thread.
class line_sink {
 public:
  line_sink() = default;
  ~line_sink();  // writes what is queued for at most close_deadline, then stops the writer
  line_sink(const line_sink&) = delete;
  line_sink& operator=(const line_sink&) = delete;

  // Opens "stdout", "stderr" or a file (created or truncated, close-on-exec).
  // Returns false with reason set if the file cannot be opened.
  bool open(const std::string& destination, std::string& reason);
  // Points at an already open descriptor without owning it.
  void attach(int fd) noexcept;
  int fd() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }

  // The line written in place of n dropped ones (without newline). Default: "N lines dropped".
  void set_drop_note(std::function<std::string(std::uint64_t)> note);

  // Queues line and a newline. Never blocks on the reader; drops the line when full.
  void write_line(std::string_view line) noexcept;
  // Waits until everything queued so far is written, at most timeout. True if it was.
  bool flush(std::chrono::milliseconds timeout);

  std::size_t limit = 256 * 1024;                             // bytes queued at most
  std::chrono::milliseconds close_deadline{1000};             // how long the destructor may write

 private:
  void run();
  bool write_batch(const std::string& batch, std::chrono::steady_clock::time_point give_up);
  bool write_piece(const char* data, std::size_t size, std::chrono::steady_clock::time_point give_up,
                   std::size_t& written);

  int fd_ = -1;
  bool owned_ = false;
  bool regular_file_ = false;
  bool socket_ = false;

  std::mutex mutex_;
  std::condition_variable wake_;     // the writer: lines queued, or stop
  std::condition_variable written_;  // flush: the queue went out
  std::string queue_;
  std::uint64_t dropped_ = 0;
  std::uint64_t queued_total_ = 0;   // bytes ever queued (flush waits for written_total_ to reach it)
  std::uint64_t written_total_ = 0;  // bytes ever taken off the queue (written or given up)
  bool stop_ = false;
  bool broken_ = false;  // the descriptor failed for good: everything is dropped
  std::function<std::string(std::uint64_t)> drop_note_;
  std::thread writer_;
};

}  // namespace startup_server::detail
