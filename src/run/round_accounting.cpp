#include "round_accounting.h"

#include "hetrain/common/log.h"

#include "protocol.h"

#include <fmt/format.h>

#include <algorithm>

namespace hetrain::run {

double account_round(Roster &trainers, const std::vector<double> &arrival_seconds,
                     double round_seconds, int64_t round_number, int64_t micro_batch,
                     const ReplanPolicy &policy) {
  double compute = 0;
  for (size_t j = 0; j < trainers.size(); ++j) {
    TrainerState &t = trainers[j];
    if (!gone(t) && !t.in_round) {
      ++t.out_rounds;
      t.out_seconds += round_seconds;
    }
    if (!t.working)
      continue;
    const RoundStats &s = t.stats;
    compute = std::max(compute, s.compute_seconds);
    const double arrival = j < arrival_seconds.size() ? arrival_seconds[j] : -1;
    if (arrival >= 0)
      t.comm_seconds = smoothed(t.comm_seconds, std::max(0.0, arrival - s.compute_seconds), policy);
    t.samples += s.samples;
    t.compute_seconds += s.compute_seconds;
    t.data_wait_seconds += s.data_wait_seconds;
    t.overlapped_rounds += s.overlapped_steps > 0 ? 1 : 0;
    t.wait_seconds += std::max(0.0, round_seconds - s.compute_seconds);
    t.last_round = round_number;
    if (s.micro_batch != t.micro_batch)
      log_warn("{} now runs micro-batches of {} samples (--micro-batch {}): it ran out of "
               "device memory",
               name_of(t), s.micro_batch, micro_batch);
    t.micro_batch = s.micro_batch;
    t.gpu = GpuSample{s.gpu_valid, s.gpu_utilization, s.gpu_memory_used, s.gpu_temperature,
                      s.gpu_power};
    const auto samples = static_cast<double>(s.samples);
    t.speed_variance = speed_variance(t.speed_variance, t.speed, t.last_round_speed, samples,
                                      s.compute_seconds, policy);
    if (s.compute_seconds > 0)
      t.last_round_speed = samples / s.compute_seconds;
    t.speed = smoothed_speed(t.speed, samples, s.compute_seconds, policy);
  }
  return compute;
}

void MeasuredRound::add(double round, double compute, const ReplanPolicy &policy) {
  round_seconds = smoothed(round_seconds, round, policy);
  compute_seconds = smoothed(compute_seconds, compute, policy);
}

std::string slowest_link_text(const TrainerState &t) {
  double slowest = -1;
  for (const LinkFigures &f : t.links)
    if (!f.same_host && (slowest < 0 || std::min(f.up_mb_per_s, f.down_mb_per_s) < slowest))
      slowest = std::min(f.up_mb_per_s, f.down_mb_per_s);
  return slowest < 0 ? name_of(t) : fmt::format("{}, its link {:.1f} MB/s", name_of(t), slowest);
}

std::string longest_measured_transfer(const Roster &trainers) {
  const TrainerState *longest = nullptr;
  for (const TrainerState &t : trainers)
    if (!gone(t) && t.comm_seconds >= 0 && (!longest || t.comm_seconds > longest->comm_seconds))
      longest = &t;
  return longest ? fmt::format("{}, {:.3f} s a round", name_of(*longest), longest->comm_seconds)
                 : std::string();
}

int trainer_hosts(const Roster &trainers, const std::vector<int> &host_of) {
  std::vector<int> hosts;
  for (const TrainerState &t : trainers)
    if (static_cast<size_t>(t.job_rank) < host_of.size())
      hosts.push_back(host_of[static_cast<size_t>(t.job_rank)]);
  std::sort(hosts.begin(), hosts.end());
  return static_cast<int>(std::unique(hosts.begin(), hosts.end()) - hosts.begin());
}

CommunicationFacts communication_facts(const TrainConfig &config, const RoundEstimate &e,
                                       const std::vector<AggregatorRate> &rates,
                                       const Roster &trainers, const Plan &plan,
                                       const std::vector<int> &host_of, double round_seconds,
                                       double compute_seconds, bool measured) {
  CommunicationFacts f;
  f.compute_seconds = compute_seconds < 0 ? e.compute_seconds : compute_seconds;
  f.round_seconds = round_seconds;
  f.measured = measured;
  f.model_round_seconds = e.seconds;
  f.model_compute_seconds = e.compute_seconds;
  f.model_trainer_seconds = e.trainer_seconds;
  f.model_aggregator_seconds = e.aggregator_seconds;
  f.upload_fraction = e.transfer_seconds > 0 ? e.upload_seconds / e.transfer_seconds : 0.5;
  if (e.slowest_trainer >= 0)
    f.slowest_trainer = slowest_link_text(trainer_at(trainers, plan.ranks[e.slowest_trainer]));
  if (e.busiest_aggregator >= 0)
    f.busiest_aggregator = fmt::format("rank {} ({:.1f} MB/s)", e.busiest_aggregator,
                                       rates[e.busiest_aggregator].up_bytes_per_sec / 1e6);
  f.longest_measured = longest_measured_transfer(trainers);
  f.wire_bytes = static_cast<int>(protocol::wire_format(config.wire_dtype).bytes);
  f.aggregators = config.aggregators;
  f.hosts = trainer_hosts(trainers, host_of);
  f.params_mode = config.sync != SyncMode::kGradient;
  f.local_steps = local_steps_of(config);
  return f;
}

} // namespace hetrain::run
