// The stop signals of the command: SIGINT, SIGTERM and SIGHUP, watched by a thread the caller owns.
#pragma once

#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace startup_server::cli {

// Blocks the stop signals in the calling thread, and so in every thread created after it.
// Call first, before any thread exists, so only the watcher ever receives them.
void block_stop_signals();

// Watches the stop signals on a thread of its own, from construction on, so its
// descriptors exist before the server announces itself. Signals that come before
// on_signal is given are held and handed over then. The destructor stops and joins the
// thread, so the handler never runs after it: destroy the watcher before whatever the
// handler uses.
class stop_signal_watcher {
 public:
  stop_signal_watcher();
  ~stop_signal_watcher();
  stop_signal_watcher(const stop_signal_watcher&) = delete;
  stop_signal_watcher& operator=(const stop_signal_watcher&) = delete;

  // handler(signal number, how many came before it), on the watcher's thread.
  void on_signal(std::function<void(int signal, unsigned before)> handler);

 private:
  void run();
  void deliver(int sig);

  std::mutex mutex_;
  std::function<void(int, unsigned)> handler_;
  std::vector<int> held_;
  unsigned count_ = 0;
  int signals_ = -1;  // signalfd for the stop signals
  int wake_ = -1;     // eventfd: the destructor's request to stop
  std::thread thread_;
};

}  // namespace startup_server::cli
