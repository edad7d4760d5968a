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

namespace {
std::string option_line(const std::string &option, double round_seconds, double now,
                        const char *unit) {
  return fmt::format("\n  {}: about {:.3f} s {} ({:.0f}% less)", option, round_seconds, unit,
                     100.0 * (1.0 - round_seconds / std::max(now, 1e-12)));
}
} // namespace

std::string communication_advice(const CommunicationFacts &f) {
  const double comm = std::max(0.0, f.round_seconds - f.compute_seconds);
  if (comm <= f.compute_seconds || f.round_seconds <= 0)
    return {};
  std::string text = fmt::format(
      "communication-bound: {} round takes {:.3f} s, of which {:.3f} s compute and {:.3f} s "
      "moving gradients and parameters{}; options that would help (cost model):",
      f.measured ? "a measured" : "the estimated", f.round_seconds, f.compute_seconds, comm,
      f.aggregator_bound ? " (an aggregator's shared link is the bottleneck)" : "");
  if (f.wire_bytes > 2) {
    const double fraction = std::clamp(f.upload_fraction, 0.0, 1.0);
    text +=
        option_line("--wire-dtype bf16 (half the upload bytes)",
                    f.compute_seconds + comm * (1.0 - fraction / 2), f.round_seconds, "a round");
  }
  if (f.aggregator_bound && f.hosts > f.aggregators) {
    text +=
        option_line(fmt::format("--aggregators {} with mpirun --map-by node (each link "
                                "carries 1/{} of the bytes)",
                                f.hosts, f.hosts),
                    f.compute_seconds + comm * f.aggregators / f.hosts, f.round_seconds, "a round");
  }
  // Params mode exchanges once per L batches: compare time per global batch.
  const int64_t steps = f.params_mode ? 2 * f.local_steps : 4;
  const double per_batch_now =
      f.round_seconds / static_cast<double>(f.params_mode ? f.local_steps : 1);
  const double per_batch =
      f.compute_seconds / static_cast<double>(f.params_mode ? f.local_steps : 1) +
      comm / static_cast<double>(steps);
  text += option_line(
      f.params_mode
          ? fmt::format("--local-steps {} (communication once per {} batches)", steps, steps)
          : fmt::format("--sync params --local-steps {} (communication once per {} "
                        "batches; not the exact gradient)",
                        steps, steps),
      per_batch, per_batch_now, "per global batch");
  return text;
}

} // namespace hetrain
