// Log lines carry rank and host (DESIGN §9) so interleaved output of many ranks stays readable,
// in a terminal and in a SLURM log file alike (plain lines, no carriage-return tricks).
#pragma once

#include <fmt/format.h>

#include <string>

namespace hetrain {

// Who this process is; set once after MPI is initialised (rank 0 / world 1 before that).
struct ProcessIdentity {
  int rank = 0;
  int world_size = 1;
  std::string host;
};
const ProcessIdentity &process_identity();
void set_process_rank(int rank, int world_size);

enum class LogLevel { Debug, Info, Warn, Error };
void set_log_level(LogLevel level);
void log_line(LogLevel level, const std::string &message);

template <typename... Args> void log_info(fmt::format_string<Args...> f, Args &&...args) {
  log_line(LogLevel::Info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args> void log_warn(fmt::format_string<Args...> f, Args &&...args) {
  log_line(LogLevel::Warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args> void log_error(fmt::format_string<Args...> f, Args &&...args) {
  log_line(LogLevel::Error, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args> void log_debug(fmt::format_string<Args...> f, Args &&...args) {
  log_line(LogLevel::Debug, fmt::format(f, std::forward<Args>(args)...));
}

} // namespace hetrain
