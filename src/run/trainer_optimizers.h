// --sync params/diloco: each trainer steps its own optimizer during its local steps, and that
// optimizer's state (Adam's moments, a momentum buffer) lives only on the trainer. A checkpoint
// asks every trainer for it between rounds; a resumed run hands it back before its first round
// (DESIGN §8, "Trainer optimizers"). The wire, both ways: an OptimizerStateHeader, then the state
// tensors, on kTagTrainerState. Internal to src/run.
#pragma once

#include "trainer_roster.h"

#include "hetrain/config/config.h"
#include "hetrain/train/optimizer.h"

#include <mpi.h>
#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

namespace hetrain::run {

// One trainer's optimizer as flat tensors in the flat parameter layout, on the CPU.
struct TrainerOptimizerState {
  int rank = 0; // the trainer's world rank
  int64_t steps = 0;
  std::vector<std::pair<std::string, torch::Tensor>> state; // as Optimizer::state() lists them
};

// True where trainers keep optimizer state worth saving: --sync params or diloco, with an
// --optimizer that has state (plain sgd has none).
bool trainers_keep_optimizer_state(const TrainConfig &config);

// The state tensors' names of the trainers' --optimizer, in Optimizer::state() order, then
// kWireResidual with --wire-dtype int8: the rounding error each trainer carries into its next
// upload (wire_encoder.h), saved with the optimizer so that a resume continues it.
inline constexpr const char *kWireResidual = "wire_residual";
std::vector<std::string> trainer_state_names(const TrainConfig &config);
// The saved states in the order trainer_state_names(config) lists, whatever the checkpoint's run
// used: a missing kWireResidual (saved without int8) starts at zero, one this run does not use
// is dropped; another missing state is a UserError naming the checkpoint.
std::vector<TrainerOptimizerState> states_for(const TrainConfig &config,
                                              std::vector<TrainerOptimizerState> saved,
                                              const std::string &path);

// Which saved state each trainer gets on resume: its own when the trainers now are exactly the
// ones saved (by world rank); otherwise (a trainer added, lost or renumbered) every trainer starts
// from the element-wise mean of the saved states, with the largest step count, so that no
// trainer restarts Adam's bias correction from zero on a model that has trained for a while.
enum class ReSplit { kOwn, kMean, kNone };
ReSplit choose_resplit(const std::vector<int> &ranks_now, const std::vector<int> &ranks_saved);
TrainerOptimizerState mean_state(const std::vector<TrainerOptimizerState> &saved);

// Trainer side: sends this trainer's optimizer (and `residual`, int8's carried error, when not
// null) to rank 0 / receives them from it and loads them.
void send_own_optimizer(const Optimizer &optimizer, const torch::Tensor *residual, MPI_Comm job,
                        int64_t chunk, double timeout);
void receive_own_optimizer(Optimizer &optimizer, torch::Tensor *residual, int64_t numel,
                           MPI_Comm job, int64_t chunk, double timeout);

// Rank 0: asks every trainer still in the job for its optimizer (kSaveOptimizer) and collects
// the answers; a trainer that does not answer within `timeout` is left out of the checkpoint
// with a warning (its loss is the round's business, not the checkpoint's).
std::vector<TrainerOptimizerState> collect_trainer_optimizers(const TrainConfig &config,
                                                              MPI_Comm job, const Roster &trainers,
                                                              int64_t numel);
// Rank 0, before the first round of a resumed run: sends each trainer its state (choose_resplit).
void hand_back_trainer_optimizers(const TrainConfig &config, MPI_Comm job, const Roster &trainers,
                                  const std::vector<TrainerOptimizerState> &saved);

} // namespace hetrain::run
