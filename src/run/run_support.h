// Pieces shared by the one-process run and the distributed run (private to src/run/).
#pragma once

#include "hetrain/checkpoint/checkpoint.h"
#include "hetrain/config/config.h"
#include "hetrain/data/dataset.h"
#include "hetrain/model/models.h"
#include "hetrain/train/flat_parameters.h"
#include "hetrain/train/optimizer.h"
#include "hetrain/train/records.h"

#include <chrono>
#include <string>
#include <vector>

namespace hetrain::run {

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}
std::string format_duration(double seconds);
DataResidency parse_residency(const std::string &name);
// cpu, or the CUDA device with this index when LibTorch sees one and --device allows it.
torch::Device choose_device(const std::string &requested, int cuda_index = 0);
void prepare_checkpoint_dir(const std::string &dir);

OptimizerOptions optimizer_options(const TrainConfig &config);
LrSchedule lr_schedule(const TrainConfig &config, int64_t steps_per_epoch);

// What a checkpoint is made of, gathered from the run.
struct CheckpointSource {
  const TrainConfig *config = nullptr;
  ModelSpec spec;
  Normalization normalization;
  const Classifier *model = nullptr;
  const FlatParameters *flat = nullptr;
  const Optimizer *optimizer = nullptr;
  const LrSchedule *schedule = nullptr;
  int64_t world_size = 1;
  std::vector<std::string> reports; // JSON, one per node
};
// Writes <checkpoint-dir>/ckpt-s<step>-<tag>.h5 atomically, prunes old ones, returns the path.
std::string save_checkpoint(const CheckpointSource &source, const TrainingPosition &position,
                            const std::vector<EpochRecord> &history, const std::string &tag);

} // namespace hetrain::run
