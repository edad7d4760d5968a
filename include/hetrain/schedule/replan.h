// When the plan changes while a job runs (DESIGN §4): pure decisions, apart from the loop that
// carries them out, so they are unit-tested without MPI.
//
//   speed  <- smoothed_speed(speed, samples, compute_seconds)   after every round a trainer worked
//   every --rebalance-every rounds: candidate = make_plan(...); adopt it only if should_adopt()
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
  // Every link is assumed to move this many bytes per second (gradients up, parameters down)
  // until links are measured.
  double assumed_link_bytes_per_second = 1e9;
};

// The trainer's speed after a round in which it computed `samples` in `seconds` (a round without
// compute time leaves it unchanged).
double smoothed_speed(double previous, double samples, double seconds,
                      const ReplanPolicy &policy = {});

// Seconds a round spends moving a flat buffer of `flat_bytes` up and back down one link.
double transfer_seconds(int64_t flat_bytes, const ReplanPolicy &policy = {});

// Whether `candidate` replaces `current`, whose estimate under today's speeds is
// `current_seconds`: only a different split that is at least min_gain faster.
bool should_adopt(const Plan &candidate, const Plan &current, double current_seconds,
                  const ReplanPolicy &policy = {});

} // namespace hetrain
