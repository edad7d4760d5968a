#include "hetrain/observe/metrics.h"

#include "hetrain/common/error.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace hetrain {

MetricsFile::MetricsFile(const std::string &path) : path_(path) {
  out_.open(path, std::ios::out | std::ios::trunc);
  if (!out_)
    throw UserError(fmt::format("--metrics {}: cannot write ({})", path, std::strerror(errno)));
}

void MetricsFile::write(const nlohmann::json &record) {
  if (!enabled())
    return;
  out_ << record.dump() << '\n';
  out_.flush();
  if (!out_)
    throw UserError(fmt::format("--metrics {}: write failed (disk full?)", path_));
}

} // namespace hetrain
