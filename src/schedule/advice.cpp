#include "hetrain/schedule/advice.h"

#include <fmt/format.h>

#include <algorithm>

namespace hetrain {
namespace {

std::string option_line(const std::string &option, double seconds, double now, const char *unit) {
  return fmt::format("\n  {}: about {:.3f} s {} ({:.0f}% less)", option, seconds, unit,
                     100.0 * (1.0 - seconds / std::max(now, 1e-12)));
}

// Worth naming: saves at least 5% of what it is compared with.
bool worth(double seconds, double now) { return seconds < 0.95 * now; }

// The round with --aggregators H under the cost model: each aggregator link carries A/H of its
// bytes; a trainer's own link carries the same bytes as before.
double model_round_with_aggregators(const CommunicationFacts &f) {
  const double shared = std::max(0.0, f.model_aggregator_seconds - f.model_compute_seconds);
  return std::max(f.model_trainer_seconds,
                  f.model_compute_seconds + shared * f.aggregators / std::max(f.hosts, 1));
}

std::string header(const CommunicationFacts &f, double comm, double model_comm, bool explained) {
  std::string text = fmt::format(
      "communication-bound: {} round takes {:.3f} s, of which {:.3f} s compute and "
      "{:.3f} s moving gradients and parameters",
      f.measured ? "a measured" : "the estimated", f.round_seconds, f.compute_seconds, comm);
  if (!explained)
    return text + fmt::format("; the links measured at start-up account for {:.3f} s of it, so "
                              "they are not the cause (other traffic on these links, or a busy "
                              "host?){}",
                              model_comm,
                              f.longest_measured.empty()
                                  ? std::string()
                                  : "; the longest measured transfer: " + f.longest_measured);
  if (f.model_aggregator_seconds > f.model_trainer_seconds)
    return text + fmt::format("; bottleneck (cost model): aggregator {}'s link, shared by every "
                              "trainer that sends to it",
                              f.busiest_aggregator);
  return text + fmt::format("; bottleneck (cost model): the own link of {}", f.slowest_trainer);
}

} // namespace

std::string communication_advice(const CommunicationFacts &f) {
  const double comm = std::max(0.0, f.round_seconds - f.compute_seconds);
  if (comm <= f.compute_seconds || f.round_seconds <= 0)
    return {};
  const double model_comm = std::max(0.0, f.model_round_seconds - f.model_compute_seconds);
  const bool explained =
      !f.measured || comm <= kUnexplainedCommunication * model_comm + 0.05 * f.round_seconds;
  std::string options;
  if (f.wire_bytes > 2) {
    const double seconds =
        f.round_seconds - model_comm * std::clamp(f.upload_fraction, 0.0, 1.0) / 2;
    if (worth(seconds, f.round_seconds))
      options += option_line("--wire-dtype bf16 (half the upload bytes)", seconds, f.round_seconds,
                             "a round");
  }
  if (f.model_aggregator_seconds > f.model_trainer_seconds && f.hosts > f.aggregators) {
    const double seconds =
        f.round_seconds - (f.model_round_seconds - model_round_with_aggregators(f));
    if (worth(seconds, f.round_seconds))
      options += option_line(fmt::format("--aggregators {} with mpirun --map-by node (each "
                                         "aggregator link carries 1/{} of the bytes)",
                                         f.hosts, f.hosts),
                             seconds, f.round_seconds, "a round");
  }
  // Params mode exchanges once per L batches: compare time per global batch. What the model does
  // not explain stays once per round.
  const int64_t steps = f.params_mode ? 2 * f.local_steps : 4;
  const auto L = static_cast<double>(f.params_mode ? f.local_steps : 1);
  const double per_batch_now = f.round_seconds / L;
  const double per_batch = (f.round_seconds - model_comm) / L + model_comm / steps;
  if (worth(per_batch, per_batch_now))
    options += option_line(
        f.params_mode
            ? fmt::format("--local-steps {} (communication once per {} batches)", steps, steps)
            : fmt::format("--sync params --local-steps {} (communication once per {} "
                          "batches; not the exact gradient)",
                          steps, steps),
        per_batch, per_batch_now, "per global batch");
  std::string text = header(f, comm, model_comm, explained);
  if (options.empty())
    return text + "; no option hetrain has would shorten it by 5% or more under the cost model";
  return text + "; options that would help (cost model):" + options;
}

} // namespace hetrain
