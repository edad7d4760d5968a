// Errors that cross module boundaries.
//
// UserError: the user gave us something we cannot use (bad flag, malformed file, mismatched
// checkpoint). The command line prints its one-line message and exits with kExitBadInput; no
// stack trace, no core dump. Everything else (a failed library call inside hetrain) is a
// LibraryError, printed with the call, file and line that failed, and exits with kExitInternal.
#pragma once

#include <stdexcept>
#include <string>

namespace hetrain {

// Exit codes of the hetrain binary (documented in README.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitInternal = 1;     // a library call failed or an invariant broke
inline constexpr int kExitBadInput = 2;     // bad flag, malformed or mismatched file
inline constexpr int kExitPeerLost = 3;     // a peer stopped answering; rank 0 checkpointed first
inline constexpr int kExitStopped = 4;      // SIGTERM/SIGUSR1: checkpoint written, resume with
                                            // --resume auto
inline constexpr int kExitTrainersLost = 5; // --on-trainer-loss continue: training completed,
                                            // but without the trainers the log names

// LibTorch's messages carry a C++ backtrace after the first line; users see the first line.
inline std::string first_line(const std::string &text) { return text.substr(0, text.find('\n')); }

class UserError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

class LibraryError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

} // namespace hetrain
