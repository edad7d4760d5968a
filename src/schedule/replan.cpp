#include "hetrain/schedule/replan.h"

#include <algorithm>
#include <cmath>

namespace hetrain {

double smoothed_speed(double previous, double samples, double seconds, const ReplanPolicy &policy) {
  if (seconds <= 0)
    return previous;
  return (1.0 - policy.smoothing) * previous + policy.smoothing * (samples / seconds);
}

double smoothed(double previous, double value, const ReplanPolicy &policy) {
  return previous < 0 ? value : (1.0 - policy.smoothing) * previous + policy.smoothing * value;
}

double transfer_seconds(int64_t flat_bytes, const ReplanPolicy &policy) {
  return 2.0 * static_cast<double>(flat_bytes) / policy.assumed_link_bytes_per_second;
}

bool same_split(const Plan &a, const Plan &b) {
  return a.ranks == b.ranks && a.micro_batches == b.micro_batches;
}

double speed_variance(double previous_variance, double speed, double last_speed, double samples,
                      double seconds, const ReplanPolicy &policy) {
  if (seconds <= 0 || speed <= 0 || last_speed <= 0)
    return previous_variance;
  const double difference = (samples / seconds - last_speed) / speed;
  return (1.0 - policy.smoothing) * previous_variance +
         policy.smoothing * difference * difference / 2;
}

double smoothed_speed_noise(double variance, const ReplanPolicy &policy) {
  const double a = policy.smoothing;
  return std::sqrt(std::max(0.0, variance) * a / (2.0 - a));
}

double required_gain(bool going_back, double speed_noise, const ReplanPolicy &policy) {
  if (going_back)
    return std::max(policy.return_gain, policy.return_noise_sigmas * speed_noise);
  return std::max(policy.min_gain, policy.noise_sigmas * speed_noise);
}

bool should_adopt(const Plan &candidate, const Plan &current, double current_seconds,
                  const Plan *previous, double speed_noise, const ReplanPolicy &policy) {
  if (same_split(candidate, current))
    return false;
  const bool going_back = previous != nullptr && same_split(candidate, *previous);
  const double gain = required_gain(going_back, speed_noise, policy);
  return candidate.estimated_round_seconds < (1.0 - gain) * current_seconds;
}

} // namespace hetrain
