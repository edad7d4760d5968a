#include "hetrain/common/crash_guard.h"

#include "hetrain/common/error.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <thread>

// A sanitizer runtime (the fuzz and sanitizer builds) calls this callback when it finds an error;
// libFuzzer sets one that saves the input as a crash. The child of a check must not: its crash
// is the expected outcome there. Null (weak, absent) in a normal build.
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));
// Where the sanitizer runtime writes its reports (log_path=... by default): the child's go to
// /dev/null with the rest of its output.
extern "C" void __sanitizer_set_report_fd(void *fd) __attribute__((weak));

namespace hetrain {
namespace {

constexpr int kChildOk = 0;
double read_check_timeout = 300;

[[noreturn]] void run_child(const std::function<void()> &read, pid_t parent) {
  // A child looping in HDF5 must not outlive a parent that gave up on it (or was killed).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent)
    ::_exit(kChildOk);
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL})
    std::signal(sig, SIG_DFL); // no handler of the parent's (libFuzzer, a backtrace printer)
  if (__sanitizer_set_death_callback != nullptr)
    __sanitizer_set_death_callback(nullptr);
  const rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  const int null = ::open("/dev/null", O_WRONLY);
  if (null >= 0) {
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    if (__sanitizer_set_report_fd != nullptr)
      __sanitizer_set_report_fd(reinterpret_cast<void *>(static_cast<intptr_t>(null)));
  }
  try {
    read();
  } catch (...) { // an exception is an answer: the parent's own read will throw it too
  }
  ::_exit(kChildOk); // no atexit handlers: they belong to the parent (MPI, HDF5, the log)
}

std::string describe(int status) {
  if (WIFSIGNALED(status))
    return fmt::format("reading it crashed the HDF5 library (signal {}: {})", WTERMSIG(status),
                       strsignal(WTERMSIG(status)));
  return fmt::format("reading it failed inside a library (a test read ended with status {})",
                     WEXITSTATUS(status));
}

} // namespace

void set_read_check_timeout(double seconds) { read_check_timeout = seconds; }

void check_read_survives(const std::string &name, const std::function<void()> &read) {
  const double timeout_seconds = read_check_timeout;
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child < 0)
    return; // no test process (out of processes): read as before, without the check
  if (child == 0)
    run_child(read, parent);
  // A pidfd becomes readable when the child ends: poll() on it waits with a deadline and wakes
  // at once (Linux 5.3 and later; without it, waitpid is polled every millisecond).
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
  const auto start = std::chrono::steady_clock::now();
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(child, &status, WNOHANG);
    if (done == child)
      break;
    if (done < 0 && errno != EINTR) {
      if (pidfd >= 0)
        ::close(pidfd);
      return; // reaped elsewhere (a SIGCHLD handler): no verdict
    }
    const std::chrono::duration<double> waited = std::chrono::steady_clock::now() - start;
    if (waited.count() > timeout_seconds) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      if (pidfd >= 0)
        ::close(pidfd);
      throw UserError(fmt::format("{}: damaged file: reading it did not finish within {:.0f} s",
                                  name, timeout_seconds));
    }
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, 100);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  if (pidfd >= 0)
    ::close(pidfd);
  if (WIFEXITED(status) && WEXITSTATUS(status) == kChildOk)
    return;
  throw UserError(
      fmt::format("{}: damaged file: {}; hetrain does not read it", name, describe(status)));
}

} // namespace hetrain
