// HDF5 checkpoints (DESIGN §8), readable with h5py:
//
//   /                attrs: format="hetrain-checkpoint", format_version, hetrain_version, model
//                    (a built-in name, the TorchScript file as given, or plugin:LIB.so:NAME),
//                    model_fingerprint (models.h), in_channels, height, width, num_classes
//                    (outputs per sample), norm_mean, norm_std, epoch,
//                    epoch_position, round, global_step, samples_seen, seed, sync_mode,
//                    world_size, config (JSON)
//   /params/<name>   float32, the parameter's own shape; names are the module's dotted
//                    state_dict names (layer1.0.conv1.weight), so /params + /buffers + /frozen
//                    is the model's state_dict (scripts/h5_to_torch.py)
//   /buffers/<name>  BatchNorm running stats (float32) and counters (int64)
//   /frozen/<name>   parameters that do not require gradients (only when the model has some)
//   /optimizer       attrs: kind, lr, momentum, beta1, beta2, eps, weight_decay, step
//   /optimizer/<state>/<name>   e.g. exp_avg/fc1.weight, momentum_buffer/fc1.weight
//   /trainer_optimizers         --sync params/diloco only, when the trainers' --optimizer has
//                    state: attrs kind; /trainer_optimizers/rank<R> (R: the trainer's world
//                    rank) attrs step, with <state>/<name> laid out as under /optimizer
//   /cluster/reports one JSON string per node report of the run
//   /metrics/epochs  compound table: epoch, samples, train_loss, train_accuracy, test_loss,
//                    test_accuracy, seconds, samples_per_sec
//
// Files are written to a temporary name and renamed, so a crash never leaves a torn checkpoint.
#pragma once

#include "hetrain/model/models.h"
#include "hetrain/train/optimizer.h"
#include "hetrain/train/records.h"

#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

namespace hetrain {

inline constexpr int64_t kCheckpointFormatVersion = 1;

// Where in the run the checkpoint was taken; enough to continue from it.
struct TrainingPosition {
  int64_t epoch = 0;          // epoch in progress, 0-based (== epochs when training is done)
  int64_t epoch_position = 0; // samples of that epoch's permutation already consumed
  int64_t round = 0;          // rounds (optimizer steps) completed within the epoch
  int64_t global_step = 0;    // optimizer steps completed in the whole run
  int64_t samples_seen = 0;
};

// --sync params/diloco: a trainer's own optimizer, which takes its local steps.
struct TrainerOptimizerContents {
  int rank = 0; // the trainer's world rank when it was saved
  int64_t steps = 0;
  std::vector<std::pair<std::string, NamedTensors>> state; // state name -> per parameter
};

struct CheckpointContents {
  ModelSpec model;
  std::string model_fingerprint;           // "" in checkpoints written before it existed
  std::vector<double> norm_mean, norm_std; // the training set's normalisation
  TrainingPosition position;
  uint64_t seed = 0;
  std::string sync_mode = "gradient";
  int64_t world_size = 1;
  std::string config_json;
  NamedTensors params, buffers, frozen;
  OptimizerOptions optimizer;
  double learning_rate = 0;
  int64_t optimizer_steps = 0;
  std::vector<std::pair<std::string, NamedTensors>> optimizer_state; // state name -> per parameter
  std::string trainer_optimizer_kind; // "" when the checkpoint holds no trainer optimizers
  std::vector<TrainerOptimizerContents> trainer_optimizers;
  std::vector<std::string> cluster_reports; // JSON, one per report
  std::vector<EpochRecord> epochs;
};

void write_checkpoint(const std::string &path, const CheckpointContents &contents);
// Reads and validates; throws UserError naming the file and what is wrong with it.
CheckpointContents read_checkpoint(const std::string &path);
// The same from the file's bytes in memory (fuzz/fuzz_checkpoint.cpp); `name` is for messages.
CheckpointContents read_checkpoint_image(const std::vector<uint8_t> &image,
                                         const std::string &name);

// Copies parameters, buffers and frozen parameters into a model of the same spec; a missing
// tensor or a wrong shape is a UserError that names it.
void load_model_state(const CheckpointContents &contents, Model &model,
                      const std::string &path_for_errors);
NamedTensors named_buffers(const torch::nn::Module &model);

} // namespace hetrain
