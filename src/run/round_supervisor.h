// One round run to completion, with what a late or lost trainer means decided here and carried
// out by the coordinator (DESIGN §7, --on-trainer-loss):
//   abort     checkpoint the last complete round, stop the other trainers, end the job naming it
//   continue  drop it, re-plan over the survivors and redo the round: the same samples from the
//             same parameters (attempt 1, 2, ...), so the global batch stays exact
// and a round abandoned on SIGTERM/SIGUSR1 checkpoints the last complete round and ends the job.
// The round itself runs through RoundRunner, which the round executor implements and tests fake
// (tests/unit/test_run_parts.cpp), as torchft tests its Manager against a mocked process group.
// Internal to src/run.
#pragma once

#include "hetrain/config/config.h"

#include "round_executor.h"
#include "round_planner.h"

#include <functional>
#include <string>
#include <vector>

namespace hetrain::run {

// What the coordinator does when a round's trainers fail it.
struct LossHooks {
  // Writes a checkpoint of the last complete round ("abort", "signal"); returns its path.
  std::function<std::string(const std::string &tag)> save;
  // abort: tells every trainer but these (world ranks) to stop.
  std::function<void(const std::vector<int> &world_ranks)> stop_others;
  // continue: marks these trainers lost, says why, and re-plans without them (throws when none
  // is left).
  std::function<void(const std::vector<int> &world_ranks, const std::string &why)> drop;
};

// Runs the round `slice` (its order: `order`) until it completes. Throws the late peers'
// PeerTimeout under abort, RoundAbandoned on a signal.
RoundResult supervise_round(const TrainConfig &config, RoundRunner &runner, RoundPlanner &planner,
                            const Roster &trainers, const RoundSlice &slice,
                            const RoundOrder &order, const LossHooks &hooks);

// After a complete round, what SIGTERM/SIGUSR1 means (DESIGN §7 "Planned leave"). Rank 0's own
// signal, or one at every trainer still in the job (the launcher signalled the whole job), stops
// the job: a checkpoint, then exit 4. A signal at some trainers only is theirs alone: they leave
// and the job goes on without them, where it can (`leave_possible`: one aggregator and no host
// groups); where it cannot, it stops the job as before.
struct SignalVerdict {
  int stop_job = 0;         // the signal that stops the job (0: it goes on)
  std::vector<int> leaving; // world ranks of the trainers that leave now
};
SignalVerdict judge_signals(int own_signal, const Roster &trainers, bool leave_possible);

} // namespace hetrain::run
