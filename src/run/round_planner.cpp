#include "round_planner.h"

#include "hetrain/common/log.h"
#include "hetrain/schedule/replan.h"

#include "protocol.h"

#include <fmt/format.h>

#include <algorithm>

namespace hetrain::run {
using namespace protocol;

RoundPlanner::RoundPlanner(const TrainConfig &config, Roster &trainers, PlanSizes sizes,
                           std::vector<HostGroup> groups)
    : config_(config), trainers_(trainers), sizes_(std::move(sizes)), groups_(std::move(groups)),
      m_(config.micro_batch) {
  plan_ = plan_for();
}

void RoundPlanner::replan_without_gone() {
  previous_plan_ = plan_;
  plan_ = plan_for();
}

// What the plan knows of a trainer: its speed, and per aggregator the bytes it moves each round
// over the measured link (the wire dtype up, fp32 parameters down; BatchNorm buffers go with
// rank 0's pieces) or, without a probe, an assumed 1 GB/s for the whole buffer; and
// once it has worked, what rank 0 measured of its transfer (not with `links_only`).
TrainerSpeed RoundPlanner::speed_of(const TrainerState &t, bool links_only) const {
  TrainerSpeed s{t.job_rank, t.report.host, t.speed, 0, {}, links_only ? -1 : t.comm_seconds};
  if (t.links.empty())
    s.comm_seconds = transfer_seconds(sizes_.parameters * 4);
  const auto wire = static_cast<double>(wire_format(config_.wire_dtype).bytes);
  const auto buffers = static_cast<double>(sizes_.buffers) * 4;
  // A same-host pair is shared memory, not a network link: its cost is taken at no less than the
  // 1 GB/s assumed without a probe, and no latency. The probe measures it with 64 KiB only, and on
  // a host whose cores are all busy that figure is scheduling noise (tens of MB/s), low enough to
  // leave a trainer of a one-machine job out of the plan.
  for (const LinkFigures &f : t.links) {
    const auto shard = static_cast<double>(sizes_.layout.shard_length(f.aggregator_rank));
    const double extra = f.aggregator_rank == 0 ? buffers : 0.0;
    const double floor = f.same_host ? ReplanPolicy{}.assumed_link_bytes_per_second : 0.0;
    s.links.push_back({f.aggregator_rank, shard * wire + extra, shard * 4 + extra,
                       std::max(f.up_mb_per_s * 1e6, floor), std::max(f.down_mb_per_s * 1e6, floor),
                       f.same_host ? 0.0 : f.latency_ms / 1e3, f.same_host});
  }
  return s;
}

// The current plan under today's figures, with the aggregator links rated from every trainer
// still in the job, as make_plan rates them (so that keeping and changing the plan compare
// alike). `links_only`: from the probe's rates, without the measured transfers; `rates`, when
// given, receives the aggregator rates.
RoundEstimate RoundPlanner::estimate_current(bool links_only,
                                             std::vector<AggregatorRate> *rates) const {
  std::vector<TrainerSpeed> all, in_plan;
  for (const TrainerState &t : trainers_)
    if (!gone(t))
      all.push_back(speed_of(t, links_only));
  for (int rank : plan_.ranks)
    in_plan.push_back(speed_of(trainer_at(trainers_, rank), links_only));
  const std::vector<AggregatorRate> aggregators = aggregator_rates(all);
  if (rates)
    *rates = aggregators;
  return estimate_round(in_plan, plan_.micro_batches, round_unit(), aggregators);
}

// A plan over the trainers still in the job. --balance static shares follow their trainers, so a
// lost trainer's share goes away with it.
Plan RoundPlanner::plan_for() const {
  BalancePolicy policy = parse_balance(config_.balance);
  std::vector<TrainerSpeed> speeds;
  std::vector<double> shares;
  for (size_t j = 0; j < trainers_.size(); ++j) {
    if (gone(trainers_[j]))
      continue;
    const TrainerState &t = trainers_[j];
    speeds.push_back(speed_of(t));
    if (policy.kind == BalancePolicy::Kind::Static && j < policy.static_shares.size())
      shares.push_back(policy.static_shares[j]);
  }
  if (policy.kind == BalancePolicy::Kind::Static && speeds.size() < trainers_.size())
    policy.static_shares = shares;
  return make_plan(speeds, config_.global_batch / m_, round_unit(), policy);
}

// Every trainer's command for the round: its slice of the epoch's order by the plan, or a skip.
void RoundPlanner::assign_round(const RoundSlice &r) {
  const int64_t epoch = r.epoch, start = r.start, count = r.count, steps = r.steps;
  const int attempt = r.attempt;
  const RoundShard shard = shard_round(plan_.micro_batches, round_unit(), start, count);
  for (TrainerState &t : trainers_) {
    t.working = false;
    t.command = RoundCommand{}; // by name: a field added to the message cannot shift the others
    t.command.kind = RoundCommand::Kind::kSkip;
    t.command.epoch = epoch;
    t.command.global_step = r.global_step;
    t.command.local_steps = steps;
    t.command.round_steps = steps;
    t.command.attempt = attempt;
  }
  // --sync params/diloco: local steps by each trainer's time (plan.h); gradient: one step.
  const std::vector<int64_t> local_steps = config_.sync == SyncMode::kGradient
                                               ? std::vector<int64_t>(shard.counts.size(), steps)
                                               : local_steps_by_speed(shard.counts, steps);
  for (size_t p = 0; p < plan_.ranks.size(); ++p) {
    if (shard.counts[p] == 0)
      continue;
    TrainerState &t = trainers_[static_cast<size_t>(plan_.ranks[p] - config_.aggregators)];
    t.command.kind = RoundCommand::Kind::kRound;
    t.command.offset = shard.offsets[p];
    t.command.count = shard.counts[p];
    t.command.local_steps = local_steps[p];
    t.working = true;
  }
  set_uploaders();
  set_participation(r.global_step + 1);
}

// Who takes part in the round (DESIGN §5, "A trainer out of the plan"). A trainer that neither
// computes nor uploads is told kOut once and then gets nothing: no parameters, no wait for it.
// Only now and then (every half --straggler-timeout) does kOut go again, so that its wait for a
// command keeps a deadline. One coming back gets the current parameters before the round.
void RoundPlanner::set_participation(int64_t round) {
  const auto now = std::chrono::steady_clock::now();
  const auto keep_alive = std::chrono::duration<double>(config_.straggler_timeout / 2);
  for (TrainerState &t : trainers_) {
    t.in_round = !gone(t) && (t.working || t.uploading);
    t.refresh = t.in_round && !t.has_params;
    if (t.in_round) {
      t.send_command = true;
      t.has_params = true;
      if (t.told_out) {
        log_info("{} is back in the plan from round {}: the current parameters go to it first",
                 name_of(t), round);
        moves_.push_back({t.world_rank, round, true});
      }
      t.told_out.reset();
      continue;
    }
    t.command.kind = RoundCommand::Kind::kOut;
    t.send_command = !gone(t) && (t.has_params || !t.told_out || now - *t.told_out > keep_alive);
    // Re-measured as often as the plan is reconsidered, so that a machine that recovers comes
    // back: it times 2 micro-batches on its own; nobody waits for the answer.
    if (!gone(t) && config_.rebalance_every > 0 && t.out_speed_request == MPI_REQUEST_NULL &&
        ++t.rounds_since_measured >= config_.rebalance_every) {
      t.rounds_since_measured = 0;
      t.command.count = 2 * m_;
      t.send_command = true;
    }
    if (!gone(t) && !t.told_out) {
      log_info("{} is out of the plan from round {}: it gets no parameters and nobody waits for "
               "it until a plan brings it back",
               name_of(t), round);
      moves_.push_back({t.world_rank, round, false});
    }
    if (t.send_command)
      t.told_out = now;
    t.has_params = false;
  }
}

// Who uploads this round (DESIGN §6): every working trainer, except that a --host-reduce group
// uploads once, through its leader, whose command names the members that send it their sums.
void RoundPlanner::set_uploaders() {
  std::vector<bool> working;
  for (const TrainerState &t : trainers_)
    working.push_back(t.working);
  const std::vector<bool> up = uploaders(groups_, working, config_.aggregators);
  for (size_t j = 0; j < trainers_.size(); ++j)
    trainers_[j].uploading = up[j];
  for (const HostGroup &g : groups_)
    trainers_[static_cast<size_t>(g.leader - config_.aggregators)].command.members =
        member_mask(g, working, config_.aggregators);
}

// Every --rebalance-every rounds: a new plan from the measured speeds, when it is worth it.
std::optional<std::string> RoundPlanner::maybe_replan(int64_t step) {
  if (config_.rebalance_every <= 0 || ++rounds_since_plan_ < config_.rebalance_every)
    return std::nullopt;
  rounds_since_plan_ = 0;
  Plan next = plan_for();
  const double keep = estimate_current().seconds;
  double noise = 0; // the noisiest working trainer's smoothed speed
  for (const TrainerState &t : trainers_)
    if (!gone(t) && share_in(plan_, t.job_rank) > 0)
      noise = std::max(noise, smoothed_speed_noise(t.speed_variance));
  if (!should_adopt(next, plan_, keep, previous_plan_ ? &*previous_plan_ : nullptr, noise))
    return std::nullopt;
  std::string speeds;
  for (const TrainerState &t : trainers_)
    if (!gone(t))
      speeds += fmt::format("{}{} {:.0f}", speeds.empty() ? "" : ", ", t.world_rank, t.speed);
  const std::string why = fmt::format(
      "after round {} (estimated {:.4f} s a round against {:.4f} s keeping the plan, {:.0f}% "
      "less, {:.0f}% needed; measured samples/s of ranks {})",
      step, next.estimated_round_seconds, keep, 100.0 * (1.0 - next.estimated_round_seconds / keep),
      100.0 * required_gain(previous_plan_ && same_split(next, *previous_plan_), noise), speeds);
  previous_plan_ = plan_;
  plan_ = next;
  return why;
}

} // namespace hetrain::run
