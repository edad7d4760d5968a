// From the run's options to what training needs, for every role: the device, the model's spec
// and checks, the loss, the optimizer and learning-rate schedule, the test set and the training
// probe's example. Internal to src/run.
#pragma once

#include "hetrain/cluster/training_probe.h"
#include "hetrain/config/config.h"
#include "hetrain/data/dataset.h"
#include "hetrain/model/models.h"
#include "hetrain/train/loss.h"
#include "hetrain/train/optimizer.h"

#include <torch/torch.h>

#include <memory>
#include <string>

namespace hetrain::run {

// cpu, or the CUDA device with this index when LibTorch sees one and --device allows it.
torch::Device choose_device(DeviceChoice requested, int cuda_index = 0);

inline ModelSpec spec_of(const TrainConfig &config, const DatasetMeta &meta) {
  return ModelSpec{config.model, meta.channels,  meta.height,
                   meta.width,   meta.outputs(), config.model_plugin};
}
// ", 2 frozen (conv.weight, conv.bias)" for the startup line, "" without frozen parameters.
std::string describe_frozen(const Model &model);
// --loss and --label-smoothing.
LossSpec loss_spec(const TrainConfig &config);
// train/loss.h's check on the dataset's first two samples (before the model moves to a device).
void check_model_fits(Model &model, const ModelSpec &spec, const LossSpec &loss,
                      const Dataset &data);
// The training probe's example: the dataset's first sample and the run's loss.
ProbeExample probe_example(const TrainConfig &config);

// --optimizer and its settings: what trainers step with (and the one-process run).
OptimizerOptions optimizer_options(const TrainConfig &config);
// What the aggregators step the master parameters with: --optimizer, or under --sync diloco the
// outer optimizer (nesterov or sgd at --outer-lr, no weight decay), whose state the checkpoints
// keep as they keep the optimizer's. --outer-optimizer average keeps --optimizer, as --sync params
// does, so that its checkpoints are params mode's.
OptimizerOptions aggregator_optimizer_options(const TrainConfig &config);

LrSchedule lr_schedule(const TrainConfig &config, int64_t steps_per_epoch);

// Opens --test-data (if any) after checking it has the training data's image shape and classes;
// it is normalised with the training set's statistics, as at inference time.
std::unique_ptr<Dataset> open_test_data(const TrainConfig &config, const DatasetMeta &train,
                                        const Normalization &normalization);

} // namespace hetrain::run
