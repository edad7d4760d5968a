#include "round_supervisor.h"

#include "hetrain/common/log.h"
#include "hetrain/run/training_run.h"

#include <fmt/format.h>

namespace hetrain::run {
namespace {

std::string no_parameters_taken(const TrainConfig &config) {
  return fmt::format("did not take parameters within --straggler-timeout {} s",
                     config.straggler_timeout);
}

// A trainer did not deliver within --straggler-timeout. abort: save the last complete round, stop
// the others (under mpirun --enable-recovery nothing else would) and end the job naming it.
// continue: go on without it; the survivors get the unchanged parameters and the round again.
void on_late(const TrainConfig &config, RoundRunner &runner, const Roster &trainers,
             const RoundSlice &slice, const RoundResult &result, const LossHooks &hooks) {
  const std::vector<int> &late = result.late.world_ranks;
  if (config.on_trainer_loss != TrainerLoss::kContinue) {
    const std::string path = hooks.save("abort");
    log_error("lost {} in round {} (epoch {}); wrote {} (the last complete round)",
              late_text(trainers, late, false), slice.global_step + 1, slice.epoch + 1, path);
    hooks.stop_others(late);
    throw *result.late.error;
  }
  runner.discard_round();
  hooks.drop(late, fmt::format("no answer in round {} within --straggler-timeout {} s",
                               slice.global_step + 1, config.straggler_timeout));
  const LatePeers again = runner.broadcast();
  if (again.any()) {
    runner.discard_round();
    hooks.drop(again.world_ranks, no_parameters_taken(config));
  }
}

} // namespace

RoundResult supervise_round(const TrainConfig &config, RoundRunner &runner, RoundPlanner &planner,
                            const Roster &trainers, const RoundSlice &slice,
                            const RoundOrder &order, const LossHooks &hooks) {
  for (RoundSlice attempt = slice;; ++attempt.attempt) {
    planner.assign_round(attempt);
    RoundResult result = runner.execute(order);
    switch (result.end) {
    case RoundResult::End::kComplete:
      if (result.broadcast_late.any()) {
        if (config.on_trainer_loss != TrainerLoss::kContinue)
          throw *result.broadcast_late.error;
        runner.discard_round();
        hooks.drop(result.broadcast_late.world_ranks, no_parameters_taken(config));
      }
      return result;
    case RoundResult::End::kLate:
      on_late(config, runner, trainers, attempt, result, hooks);
      break;
    case RoundResult::End::kAbandoned: {
      const std::string path = hooks.save("signal");
      throw RoundAbandoned(fmt::format("{}: abandoned it and wrote {} (the last complete round); "
                                       "continue with --resume auto",
                                       result.abandoned, path));
    }
    }
  }
}

SignalVerdict judge_signals(int own_signal, const Roster &trainers, bool leave_possible) {
  SignalVerdict verdict;
  if (own_signal != 0) {
    verdict.stop_job = own_signal;
    return verdict;
  }
  int first = 0;
  bool someone_stays = false;
  for (const TrainerState &t : trainers) {
    if (gone(t))
      continue;
    // Only a trainer that worked this round sent statistics, and with them its signal; one out
    // of the plan says so in its answer to a measurement request (trainer_roster.h).
    const int signal = t.working ? t.stats.stop_signal : t.out_signal;
    if (signal == 0) {
      someone_stays = true;
      continue;
    }
    first = first == 0 ? signal : first;
    verdict.leaving.push_back(t.world_rank);
  }
  if (!verdict.leaving.empty() && (!someone_stays || !leave_possible)) {
    verdict.stop_job = first;
    verdict.leaving.clear();
  }
  return verdict;
}

} // namespace hetrain::run
