#include "hetrain/common/signals.h"

#include <csignal>
#include <cstring>

namespace hetrain {
namespace {
volatile std::sig_atomic_t received = 0;
extern "C" void record_signal(int signal) { received = signal; }
} // namespace

void install_stop_handlers() {
  struct sigaction action;
  std::memset(&action, 0, sizeof action);
  action.sa_handler = record_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART; // system calls go on; the loops poll stop_signal()
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

int stop_signal() { return received; }

const char *signal_name(int signal) {
  return signal == SIGTERM ? "SIGTERM" : signal == SIGUSR1 ? "SIGUSR1" : "a signal";
}

} // namespace hetrain
