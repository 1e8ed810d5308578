// The stop signals of the command: SIGINT, SIGTERM and SIGHUP, watched by a thread the caller owns.
#pragma once

#include <functional>
#include <thread>

namespace startup_server::cli {

// Blocks the stop signals in the calling thread, and so in every thread created after it.
// Call first, before any thread exists, so only the watcher ever receives them.
void block_stop_signals();

// Watches the stop signals on a thread of its own and calls on_signal(signal number,
// how many came before) for each. The destructor stops and joins the thread, so the
// callback never runs after it: destroy the watcher before whatever the callback uses.
class stop_signal_watcher {
 public:
  explicit stop_signal_watcher(std::function<void(int signal, unsigned before)> on_signal);
  ~stop_signal_watcher();
  stop_signal_watcher(const stop_signal_watcher&) = delete;
  stop_signal_watcher& operator=(const stop_signal_watcher&) = delete;

 private:
  void run();

  std::function<void(int, unsigned)> on_signal_;
  int signals_ = -1;  // signalfd for the stop signals
  int wake_ = -1;     // eventfd: the destructor's request to stop
  std::thread thread_;
};

}  // namespace startup_server::cli
