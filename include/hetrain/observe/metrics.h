// --metrics FILE.jsonl: one JSON object per line, a "round" record after every round and an
// "epoch" record after every epoch (schema in README "Metrics"). Lines are flushed as written,
// so a crashed or stopped run keeps every complete record; `tail -f` works on it.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

namespace hetrain {

class MetricsFile {
public:
  MetricsFile() = default; // disabled
  // Opens (truncates) `path`; UserError naming it when it cannot be written.
  explicit MetricsFile(const std::string &path);
  bool enabled() const { return out_.is_open(); }
  // Appends one record (a "type" key says "round" or "epoch"); UserError when the write fails.
  void write(const nlohmann::json &record);

private:
  std::string path_;
  std::ofstream out_;
};

} // namespace hetrain
