#include "hetrain/schedule/replan.h"

namespace hetrain {

double smoothed_speed(double previous, double samples, double seconds, const ReplanPolicy &policy) {
  if (seconds <= 0)
    return previous;
  return (1.0 - policy.smoothing) * previous + policy.smoothing * (samples / seconds);
}

double transfer_seconds(int64_t flat_bytes, const ReplanPolicy &policy) {
  return 2.0 * static_cast<double>(flat_bytes) / policy.assumed_link_bytes_per_second;
}

bool should_adopt(const Plan &candidate, const Plan &current, double current_seconds,
                  const ReplanPolicy &policy) {
  const bool different =
      candidate.ranks != current.ranks || candidate.micro_batches != current.micro_batches;
  return different && candidate.estimated_round_seconds < (1.0 - policy.min_gain) * current_seconds;
}

} // namespace hetrain
