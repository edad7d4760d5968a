// Checkpoints of a run (DESIGN §8): what one is made of, writing it, and finding and loading the
// one a run resumes from. The one-process run and the coordinator both use these. Internal to
// src/run.
#pragma once

#include "trainer_optimizers.h"

#include "hetrain/checkpoint/checkpoint.h"
#include "hetrain/config/config.h"
#include "hetrain/data/dataset.h"
#include "hetrain/model/models.h"
#include "hetrain/run/training_run.h"
#include "hetrain/train/flat_parameters.h"
#include "hetrain/train/optimizer.h"
#include "hetrain/train/records.h"

#include <memory>
#include <string>
#include <vector>

namespace hetrain::run {

// What a checkpoint is made of, gathered from the run.
struct CheckpointSource {
  const TrainConfig *config = nullptr;
  ModelSpec spec;
  Normalization normalization;
  const Model *model = nullptr;
  const FlatParameters *flat = nullptr;
  const Optimizer *optimizer = nullptr;
  const LrSchedule *schedule = nullptr;
  int64_t world_size = 1;
  std::vector<std::string> reports; // JSON, one per node
  std::string fingerprint;          // model_fingerprint() of the model, computed once
};
// Writes <checkpoint-dir>/ckpt-s<step>-<tag>.h5 atomically, prunes old ones, returns the path.
// `trainer_optimizers`: the trainers' own optimizers (--sync params/diloco), when collected.
std::string save_checkpoint(const CheckpointSource &source, const TrainingPosition &position,
                            const std::vector<EpochRecord> &history, const std::string &tag,
                            const std::vector<TrainerOptimizerState> &trainer_optimizers = {});

// --resume: the checkpoint a run continues from. auto: the newest ckpt-*.h5 in --checkpoint-dir
// that reads back (unreadable ones are skipped with a warning; none at all means a fresh start);
// a path: that file, which must be valid. Refuses (UserError naming the mismatch) a checkpoint of
// another model, input shape or number of classes, or one made with another --seed (the epoch
// order, and so which samples are left in the epoch, depends on it).
struct ResumePoint {
  std::string path;
  CheckpointContents contents;
};
// `fingerprint`: model_fingerprint() of the run's model; `optimizer`: the kind of optimizer whose
// state the checkpoint must hold (the aggregators', aggregator_optimizer_options()).
std::unique_ptr<ResumePoint> find_resume_point(const TrainConfig &config, const ModelSpec &spec,
                                               const std::string &fingerprint,
                                               const std::string &optimizer);
// Loads the parameters, buffers and optimizer state, and returns where training stopped; the
// summary takes over the finished epochs' records.
TrainingPosition restore_training(const ResumePoint &resume, Model &model, FlatParameters &flat,
                                  Optimizer &optimizer, TrainSummary &summary);
// The trainers' own optimizers saved in the checkpoint, flat: empty when it holds none (its
// trainers' --optimizer had no state, or it predates them: the trainers then start fresh).
// UserError when they belong to another --optimizer than this run's.
std::vector<TrainerOptimizerState> saved_trainer_optimizers(const ResumePoint &resume,
                                                            const FlatParameters &flat,
                                                            const TrainConfig &config);

} // namespace hetrain::run
