#include "train_setup.h"

#include "hetrain/common/error.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <vector>

namespace hetrain::run {

torch::Device choose_device(DeviceChoice requested, int cuda_index) {
  const bool cuda = torch::cuda::is_available();
  if (requested == DeviceChoice::kCuda && !cuda)
    throw UserError("--device cuda: no CUDA device is visible to this LibTorch build");
  if (requested == DeviceChoice::kCpu || !cuda)
    return torch::Device(torch::kCPU);
  const int count = static_cast<int>(torch::cuda::device_count());
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(cuda_index % count));
}

OptimizerOptions optimizer_options(const TrainConfig &c) {
  return OptimizerOptions{c.optimizer, c.momentum, c.beta1, c.beta2, c.eps, c.weight_decay};
}

OptimizerOptions aggregator_optimizer_options(const TrainConfig &c) {
  if (!has_outer_step(c))
    return optimizer_options(c); // average has no outer state: the checkpoint is params mode's
  OptimizerOptions outer;
  outer.kind = c.outer_optimizer == OuterOptimizer::kNesterov ? "nesterov" : "sgd";
  outer.momentum = c.outer_momentum;
  return outer;
}

LrSchedule lr_schedule(const TrainConfig &c, int64_t steps_per_epoch) {
  return LrSchedule{c.lr_schedule,  c.lr,
                    c.warmup_steps, c.lr_step_size > 0 ? c.lr_step_size : steps_per_epoch,
                    c.lr_gamma,     steps_per_epoch * c.epochs};
}

std::string describe_frozen(const Model &model) {
  const NamedTensors frozen = frozen_parameters(model);
  if (frozen.empty())
    return "";
  int64_t values = 0;
  std::vector<std::string> names;
  for (const auto &[name, t] : frozen) {
    values += t.numel();
    if (names.size() < 3)
      names.push_back(name);
  }
  return fmt::format(" trained, {} frozen in {} tensors: {}{}", values, frozen.size(),
                     fmt::join(names, ", "), frozen.size() > names.size() ? ", ..." : "");
}

LossSpec loss_spec(const TrainConfig &config) {
  return LossSpec{config.loss, config.label_smoothing};
}

void check_model_fits(Model &model, const ModelSpec &spec, const LossSpec &loss,
                      const Dataset &data) {
  const std::vector<int64_t> first{0, std::min<int64_t>(1, data.size() - 1)};
  const Batch batch = data.get(first);
  hetrain::check_model_fits(model, spec.label(), loss, batch.inputs, batch.targets,
                            data.meta().class_labels() ? data.meta().num_classes : 0);
}

ProbeExample probe_example(const TrainConfig &config) {
  const Dataset data(data_source(config), DataResidency::Stream);
  const Batch one = data.get(std::vector<int64_t>{0});
  return ProbeExample{loss_spec(config), one.inputs, one.targets,
                      data.meta().class_labels() ? data.meta().num_classes : 0};
}

std::unique_ptr<Dataset> open_test_data(const TrainConfig &config, const DatasetMeta &train,
                                        const Normalization &normalization) {
  if (config.test_data.empty())
    return nullptr;
  const DatasetMeta t = read_dataset_meta(config.test_data);
  if (t.sample_shape != train.sample_shape || t.float_inputs != train.float_inputs ||
      t.num_classes != train.num_classes || t.target_shape != train.target_shape)
    throw UserError(fmt::format("--test-data {} has samples of {} with {}, but the training "
                                "data {} has samples of {} with {}",
                                t.path, t.shape_string(), t.describe_targets(), train.path,
                                train.shape_string(), train.describe_targets()));
  return std::make_unique<Dataset>(config.test_data, config.data_residency, normalization);
}

} // namespace hetrain::run
