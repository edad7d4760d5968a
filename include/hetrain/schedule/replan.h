// When the plan changes while a job runs (DESIGN §4): pure decisions, apart from the loop that
// carries them out, so they are unit-tested without MPI.
//
//   speed  <- smoothed_speed(speed, samples, compute_seconds)   after every round a trainer worked
//   every --rebalance-every rounds (default 5): candidate = make_plan(...); adopt it only if
//   should_adopt(), which asks twice the gain to go back to the plan replaced last
#pragma once

#include "hetrain/schedule/plan.h"

#include <cstdint>

namespace hetrain {

struct ReplanPolicy {
  // Weight of the newest round in a trainer's smoothed speed. Round times are noisy (a shared
  // node, the OS); 0.3 follows a real change within a few rounds without chasing one slow round.
  double smoothing = 0.3;
  // A new plan is adopted only when it is estimated at least this much faster than keeping the
  // current one: shares that flip on noise help no one.
  double min_gain = 0.05;
  // Hysteresis: going back to the plan that was replaced last needs this gain. Two plans whose
  // estimates differ by about min_gain would otherwise alternate with the noise of the speeds.
  double return_gain = 0.10;
  // Noise: a plan must also win by more than the relative standard deviation of the noisiest
  // trainer's smoothed speed (speed_noise below), and going back by 1.5 times that. On the 2-core
  // VM a pinned cnn trainer's per-round speed varies by 25% (relative sd), so its smoothed speed
  // (0.3) by 10%, and two equal trainers' by about 15% against each other: without this, a
  // 2-trainer job flipped its shares 3-4 times in 40 rounds of steady speeds. Two standard
  // deviations kept a trainer out of the plan for good when its machine recovered (a 25-33% gain
  // against 30% needed on that VM); a real step (4x) gains far more than either.
  double noise_sigmas = 1.0;
  double return_noise_sigmas = 1.5;
  // Every link is assumed to move this many bytes per second (gradients up, parameters down)
  // until links are measured.
  double assumed_link_bytes_per_second = 1e9;
};

// The trainer's speed after a round in which it computed `samples` in `seconds` (a round without
// compute time leaves it unchanged).
double smoothed_speed(double previous, double samples, double seconds,
                      const ReplanPolicy &policy = {});

// An exponential average with the policy's smoothing: `value` alone while `previous` < 0 (none
// yet). Rank 0 smooths a trainer's measured transfer and the measured round with it.
double smoothed(double previous, double value, const ReplanPolicy &policy = {});

// The running variance of a trainer's round-to-round speed noise, relative to its smoothed
// `speed`, updated with a round that computed `samples` in `seconds`, `last_speed` being the raw
// speed of its round before (0: none). From successive differences (half their square), so a
// step change counts once rather than until the smoothed speed has caught up.
double speed_variance(double previous_variance, double speed, double last_speed, double samples,
                      double seconds, const ReplanPolicy &policy = {});

// The relative standard deviation of a smoothed speed whose rounds vary with `variance`: an
// exponential average with weight a keeps a / (2 - a) of the variance.
double smoothed_speed_noise(double variance, const ReplanPolicy &policy = {});

// Seconds a round spends moving a flat buffer of `flat_bytes` up and back down one link.
double transfer_seconds(int64_t flat_bytes, const ReplanPolicy &policy = {});

// Whether `candidate` replaces `current`, whose estimate under today's speeds is
// `current_seconds`: only a different split that is at least min_gain faster, or return_gain
// when it is `previous`, the plan `current` replaced (nullptr: none), and in either case more than
// noise_sigmas (return_noise_sigmas) x `speed_noise`, the largest smoothed_speed_noise of the
// trainers in the current plan.
bool should_adopt(const Plan &candidate, const Plan &current, double current_seconds,
                  const Plan *previous = nullptr, double speed_noise = 0,
                  const ReplanPolicy &policy = {});

// The gain should_adopt asks for (0.05 means 5% faster).
double required_gain(bool going_back, double speed_noise, const ReplanPolicy &policy = {});

// Whether two plans split the round the same way.
bool same_split(const Plan &a, const Plan &b);

} // namespace hetrain
