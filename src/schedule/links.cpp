#include "hetrain/schedule/links.h"

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

const char *rate_bound_name(RateBound bound) {
  switch (bound) {
  case RateBound::kAtLeast:
    return "at_least";
  case RateBound::kAtMost:
    return "at_most";
  default:
    return "exact";
  }
}

int64_t next_probe_bytes(int64_t last_bytes, double bytes_per_second, double round_trip,
                         double seconds_left) {
  if (!(seconds_left > 0))
    return 0;
  const double fits = bytes_per_second * (seconds_left - round_trip);
  if (last_bytes <= 0) // the first: unsized, unless the other direction gave a rate to size it by
    return bytes_per_second > 0 && fits < static_cast<double>(kFirstProbeBytes) ? 0
                                                                                : kFirstProbeBytes;
  const double grown = static_cast<double>(kProbeGrowth * last_bytes);
  const double next = std::isfinite(fits) ? std::min(fits, grown) : grown;
  if (next < 2.0 * static_cast<double>(last_bytes))
    return 0;
  return std::llround(next);
}

ProbeTransfer probe_transfer(int64_t total_bytes, int64_t piece_bytes) {
  const int64_t total = std::max<int64_t>(total_bytes, 1);
  const int64_t message = std::min(total, std::max(piece_bytes, kFirstProbeBytes));
  return {message, total / message};
}

RateBound rate_bound(double seconds, double round_trip, double rate, double previous_rate) {
  const double moving = seconds - round_trip;
  if (moving < seconds / 4) // transfer_rate's cap
    return RateBound::kAtLeast;
  if (moving >= kTrustedTransferSeconds)
    return RateBound::kExact;
  return previous_rate > 0 && rate >= previous_rate ? RateBound::kAtLeast : RateBound::kAtMost;
}

double transfer_rate(double bytes, double seconds, double round_trip) {
  const double moving = std::max({seconds - round_trip, seconds / 4, 1e-9});
  return bytes / moving;
}

} // namespace hetrain
