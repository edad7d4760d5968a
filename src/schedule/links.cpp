#include "hetrain/schedule/links.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace hetrain {

std::vector<std::vector<ProbePair>> probe_schedule(int trainers, int aggregators) {
  std::vector<std::vector<ProbePair>> rounds;
  const int m = std::max(trainers, aggregators);
  for (int r = 0; r < m; ++r) {
    std::vector<ProbePair> round;
    for (int i = 0; i < trainers; ++i) {
      const int j = (i + r) % m;
      if (j < aggregators)
        round.push_back({i, j});
    }
    if (!round.empty())
      rounds.push_back(round);
  }
  return rounds;
}

int64_t probe_message_bytes(int64_t piece_bytes, double bytes_per_second, double seconds_left) {
  if (piece_bytes <= kFirstProbeBytes)
    return kFirstProbeBytes;
  // Up and down each get half of what is left, with a fifth kept back for the round trips.
  const double fits = bytes_per_second * std::max(0.0, seconds_left) * 0.4;
  if (!std::isfinite(fits) || fits >= static_cast<double>(piece_bytes))
    return piece_bytes;
  return std::max<int64_t>(kFirstProbeBytes, static_cast<int64_t>(fits));
}

double transfer_rate(double bytes, double seconds, double round_trip) {
  const double moving = std::max({seconds - round_trip, seconds / 4, 1e-9});
  return bytes / moving;
}

} // namespace hetrain
