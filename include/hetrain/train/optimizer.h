// The optimizers of `--optimizer`, stepping one flat parameter tensor with its flat gradient.
//
// Why not torch::optim: in hetrain the optimizer state lives only where the step happens (rank 0,
// later on its GPU, later sharded across aggregators), must be saved per parameter into HDF5
// checkpoints, and must behave the same on LibTorch 1.13 and 2.x, whose optimizer state maps are
// keyed differently. A flat optimizer is a few lines of tensor arithmetic;
// tests/unit/test_optimizer.cpp checks it against torch::optim step by step.
#pragma once

#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

namespace hetrain {

struct OptimizerOptions {
  // sgd | momentum | adam | adamw; nesterov (SGD with nesterov=True) is the outer optimizer of
  // --sync diloco, not a choice of --optimizer.
  std::string kind = "adam";
  double momentum = 0.9;                         // momentum, nesterov
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8; // adam, adamw
  double weight_decay = 0.0; // L2 (sgd, momentum, adam) or decoupled (adamw), as in PyTorch
};

class Optimizer {
public:
  Optimizer(OptimizerOptions options, int64_t numel, torch::Device device = torch::kCPU);

  // params -= update(grads) at learning rate lr (PyTorch's update rules).
  void step(torch::Tensor &params, const torch::Tensor &grads, double lr);
  // The same step on elements [begin, begin + length) only, counting as one step: rank 0 of a
  // sharded job (--aggregators) steps its own shard and keeps the full-size state for
  // checkpoints, the other shards' part of it filled in when the shards are gathered.
  void step_range(torch::Tensor &params, const torch::Tensor &grads, double lr, int64_t begin,
                  int64_t length);

  const OptimizerOptions &options() const { return options_; }
  int64_t steps_taken() const { return steps_; }
  // Named flat state tensors ("momentum_buffer" or "exp_avg", "exp_avg_sq"), for checkpoints.
  std::vector<std::pair<std::string, torch::Tensor>> state() const;
  // Restores what state() returned (same names, same sizes) and the step count.
  void load_state(const std::vector<std::pair<std::string, torch::Tensor>> &state, int64_t steps);

private:
  void update(torch::Tensor params, const torch::Tensor &grads, double lr,
              const torch::Tensor &momentum_buffer, const torch::Tensor &exp_avg,
              const torch::Tensor &exp_avg_sq) const;

  OptimizerOptions options_;
  int64_t steps_ = 0;
  torch::Tensor momentum_buffer_, exp_avg_, exp_avg_sq_;
};

// Learning rate at a given step (0-based) of `total_steps` (DESIGN: --lr-schedule, --warmup-steps).
struct LrSchedule {
  std::string kind = "constant"; // constant | cosine | step
  double base_lr = 1e-3;
  int64_t warmup_steps = 0;
  int64_t step_size = 1; // step: decay every step_size steps
  double gamma = 0.1;
  int64_t total_steps = 1;
};
double learning_rate(const LrSchedule &schedule, int64_t step);

} // namespace hetrain
