// The coordinator's decisions about rounds, apart from the loop that carries them out (DESIGN
// §4, §5): the plan over the trainers still in the job and when a re-plan replaces it, and for
// each round who computes which samples, who uploads (--host-reduce) and who is out of it. It
// sets the roster's per-round fields (TrainerState::working, uploading, in_round, refresh,
// send_command, command) and never sends anything itself, so tests/unit/test_run_parts.cpp checks
// its decisions on a hand-made roster without MPI. Internal to src/run.
#pragma once

#include "hetrain/aggregate/host_groups.h"
#include "hetrain/aggregate/shards.h"
#include "hetrain/config/config.h"
#include "hetrain/run/training_run.h"
#include "hetrain/schedule/plan.h"

#include "trainer_roster.h"

#include <optional>
#include <string>
#include <vector>

namespace hetrain::run {

// What the plan's cost model needs of the model: the sizes that travel each round.
struct PlanSizes {
  int64_t parameters = 0; // elements of the flat parameter buffer
  int64_t buffers = 0;    // elements of the BatchNorm buffers (model_buffers.h)
  ShardLayout layout;     // which aggregator owns which part (--aggregators)
};

// One round's place in the run: optimizer steps before it, the epoch and the samples of the
// epoch's order it covers, its optimizer steps (--sync params: local ones) and its attempt (a
// round redone after a lost trainer counts up).
struct RoundSlice {
  int64_t global_step = 0, epoch = 0, start = 0, count = 0, steps = 1;
  int attempt = 0;
};

class RoundPlanner {
public:
  // Makes the start-up plan from the roster's speeds (probe figures) and links.
  RoundPlanner(const TrainConfig &config, Roster &trainers, PlanSizes sizes,
               std::vector<HostGroup> groups);

  const Plan &plan() const { return plan_; }
  const std::vector<HostGroup> &groups() const { return groups_; }
  // Every trainer's moves out of the plan and back, in order (the summary's plan_moves).
  const std::vector<PlanMove> &moves() const { return moves_; }

  // Every trainer's command for the round: its slice of the epoch's order by the plan, or a skip;
  // then who uploads and who takes part.
  void assign_round(const RoundSlice &round);
  // Every --rebalance-every rounds: a new plan from the measured speeds when it is worth it
  // (replan.h: gain over noise, hysteresis). Returns why, for the plan history, when it adopted
  // one; `step`: the optimizer steps done.
  std::optional<std::string> maybe_replan(int64_t step);
  // Trainers were just marked lost or left: a plan over the others.
  void replan_without_gone();

  // The current plan under today's figures (`links_only`: the probe's rates alone, not the
  // measured transfers; `rates` receives the aggregator rates when given).
  RoundEstimate estimate_current(bool links_only = false,
                                 std::vector<AggregatorRate> *rates = nullptr) const;

private:
  TrainerSpeed speed_of(const TrainerState &t, bool links_only = false) const;
  Plan plan_for() const;
  void set_uploaders();
  void set_participation(int64_t round);

  const TrainConfig &config_;
  Roster &trainers_;
  const PlanSizes sizes_;
  const std::vector<HostGroup> groups_; // --host-reduce
  const int64_t m_;
  // Samples a round holds per micro-batch of a share: --micro-batch, times --local-steps under
  // --sync params/diloco, whose round covers that many global batches and moves its bytes once.
  // The plan's cost model weighs a round's compute against its transfer with it, so a slow link
  // costs a params round 1/L of what it costs an exact one.
  int64_t round_unit() const { return m_ * local_steps_of(config_); }
  Plan plan_;
  std::optional<Plan> previous_plan_; // the plan replaced last (replan.h: hysteresis)
  int64_t rounds_since_plan_ = 0;
  std::vector<PlanMove> moves_;
};

} // namespace hetrain::run
