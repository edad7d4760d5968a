#include "hetrain/observe/timeline.h"

#include "hetrain/common/atomic_file.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

namespace hetrain {

const char *span_name(Span span) {
  switch (span) {
  case Span::kCompute:
    return "compute";
  case Span::kSend:
    return "send";
  case Span::kWait:
    return "wait";
  case Span::kReceive:
    return "receive";
  case Span::kReduce:
    return "reduce";
  case Span::kStep:
    return "step";
  case Span::kBroadcast:
    return "broadcast";
  case Span::kCheckpoint:
    return "checkpoint";
  case Span::kEvaluate:
    return "evaluate";
  }
  return "?";
}

double wall_microseconds() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Timeline::add(Span span, double start_us, double end_us, int64_t round) {
  if (enabled_)
    events_.push_back({own_rank_, span, start_us, std::max(0.0, end_us - start_us), round});
}

std::vector<double> Timeline::encode() const {
  std::vector<double> out;
  out.reserve(events_.size() * 4);
  for (const Event &e : events_) {
    out.push_back(static_cast<double>(e.span));
    out.push_back(e.start_us);
    out.push_back(e.duration_us);
    out.push_back(static_cast<double>(e.round));
  }
  return out;
}

void Timeline::add_encoded(int rank, const std::vector<double> &encoded) {
  if (encoded.size() % 4 != 0)
    throw std::invalid_argument("timeline spans: length is not a multiple of 4");
  // Checked before any conversion: a double out of an integer's range does not convert (found
  // by fuzz/fuzz_messages.cpp: -3e231 as the round).
  const auto integral_in = [](double v, double low, double high) {
    return v >= low && v <= high && v == std::floor(v);
  };
  for (size_t i = 0; i < encoded.size(); i += 4) {
    if (!integral_in(encoded[i], 0, static_cast<double>(Span::kEvaluate)))
      throw std::invalid_argument("timeline spans: unknown span kind");
    if (!std::isfinite(encoded[i + 1]) || !std::isfinite(encoded[i + 2]) ||
        !integral_in(encoded[i + 3], -1, 9.0e15))
      throw std::invalid_argument("timeline spans: a start, duration or round out of range");
  }
  for (size_t i = 0; i < encoded.size(); i += 4)
    events_.push_back({rank, static_cast<Span>(static_cast<int>(encoded[i])), encoded[i + 1],
                       encoded[i + 2], static_cast<int64_t>(encoded[i + 3])});
}

std::string Timeline::to_json(const std::vector<std::string> &rank_names) const {
  std::vector<Event> sorted = events_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const Event &a, const Event &b) {
    return a.rank != b.rank ? a.rank < b.rank : a.start_us < b.start_us;
  });
  // Perfetto shows small numbers better than microseconds since 1970: start at the first span.
  const double origin =
      sorted.empty()
          ? 0.0
          : std::min_element(sorted.begin(), sorted.end(), [](const Event &a, const Event &b) {
              return a.start_us < b.start_us;
            })->start_us;
  nlohmann::json events = nlohmann::json::array();
  for (size_t rank = 0; rank < rank_names.size(); ++rank) {
    events.push_back({{"name", "process_name"},
                      {"ph", "M"},
                      {"pid", rank},
                      {"tid", 0},
                      {"args", {{"name", rank_names[rank]}}}});
    events.push_back({{"name", "process_sort_index"},
                      {"ph", "M"},
                      {"pid", rank},
                      {"tid", 0},
                      {"args", {{"sort_index", rank}}}});
  }
  for (const Event &e : sorted) {
    nlohmann::json event{{"name", span_name(e.span)},
                         {"cat", span_name(e.span)},
                         {"ph", "X"},
                         {"pid", e.rank},
                         {"tid", 0},
                         {"ts", e.start_us - origin},
                         {"dur", e.duration_us}};
    if (e.round >= 0)
      event["args"] = {{"round", e.round}};
    events.push_back(event);
  }
  return nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump();
}

void Timeline::write(const std::string &path, const std::vector<std::string> &rank_names) const {
  write_text_file_atomically(path, to_json(rank_names) + "\n");
}

} // namespace hetrain
