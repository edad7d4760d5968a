#include "hetrain/common/log.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>

namespace hetrain {
namespace {

ProcessIdentity make_identity() {
  ProcessIdentity id;
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) == 0)
    id.host = name;
  else
    id.host = "unknown-host";
  return id;
}

ProcessIdentity &mutable_identity() {
  static ProcessIdentity identity = make_identity();
  return identity;
}

LogLevel g_level = LogLevel::Info;
std::mutex g_log_mutex;

const char *level_tag(LogLevel level) {
  switch (level) {
  case LogLevel::Debug:
    return "debug: ";
  case LogLevel::Info:
    return "";
  case LogLevel::Warn:
    return "warning: ";
  case LogLevel::Error:
    return "error: ";
  }
  return "";
}

} // namespace

const ProcessIdentity &process_identity() { return mutable_identity(); }

void set_process_rank(int rank, int world_size) {
  mutable_identity().rank = rank;
  mutable_identity().world_size = world_size;
}

void set_log_level(LogLevel level) { g_level = level; }

void log_line(LogLevel level, const std::string &message) {
  if (level < g_level)
    return;
  const ProcessIdentity &id = process_identity();
  // Warnings and errors go to stderr, progress to stdout; both flushed per line so that the
  // lines of different ranks interleave whole in a shared log.
  std::FILE *out = level >= LogLevel::Warn ? stderr : stdout;
  std::lock_guard<std::mutex> lock(g_log_mutex);
  fmt::print(out, "[r{} {}] {}{}\n", id.rank, id.host, level_tag(level), message);
  std::fflush(out);
}

} // namespace hetrain
