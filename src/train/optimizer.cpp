#include "hetrain/train/optimizer.h"

#include "hetrain/common/error.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <cmath>

namespace hetrain {

Optimizer::Optimizer(OptimizerOptions options, int64_t numel, torch::Device device)
    : options_(std::move(options)) {
  auto zeros = [&] { return torch::zeros({numel}, torch::dtype(torch::kFloat32).device(device)); };
  if (options_.kind == "momentum" || options_.kind == "nesterov") {
    momentum_buffer_ = zeros();
  } else if (options_.kind == "adam" || options_.kind == "adamw") {
    exp_avg_ = zeros();
    exp_avg_sq_ = zeros();
  } else if (options_.kind != "sgd") {
    throw UserError(fmt::format("unknown optimizer '{}'", options_.kind));
  }
}

void Optimizer::step(torch::Tensor &params, const torch::Tensor &grads, double lr) {
  step_range(params, grads, lr, 0, params.numel());
}

void Optimizer::step_range(torch::Tensor &params, const torch::Tensor &grads, double lr,
                           int64_t begin, int64_t length) {
  torch::NoGradGuard no_grad;
  ++steps_;
  auto part = [&](const torch::Tensor &t) {
    return t.defined() ? t.narrow(0, begin, length) : torch::Tensor();
  };
  update(params.narrow(0, begin, length), grads.narrow(0, begin, length), lr,
         part(momentum_buffer_), part(exp_avg_), part(exp_avg_sq_));
}

// One step on views of the parameters, gradient and state (steps_ already counts it).
void Optimizer::update(torch::Tensor params, const torch::Tensor &grads, double lr,
                       const torch::Tensor &momentum_buffer, const torch::Tensor &exp_avg,
                       const torch::Tensor &exp_avg_sq) const {
  const double wd = options_.weight_decay;
  if (options_.kind == "sgd" || options_.kind == "momentum" || options_.kind == "nesterov") {
    torch::Tensor d = wd != 0 ? grads.add(params, wd) : grads;
    if (options_.kind != "sgd") {
      // torch.optim.SGD: the first step initialises the buffer with the gradient itself.
      torch::Tensor buffer = momentum_buffer; // a view: in-place updates reach the state
      if (steps_ == 1)
        buffer.copy_(d);
      else
        buffer.mul_(options_.momentum).add_(d);
      // nesterov=True: the step looks ahead along the buffer, d + momentum * buffer.
      d = options_.kind == "nesterov" ? d.add(buffer, options_.momentum) : buffer;
    }
    params.add_(d, -lr);
    return;
  }
  // Adam / AdamW as in torch.optim (non-amsgrad, bias-corrected).
  torch::Tensor g = grads;
  if (options_.kind == "adamw")
    params.mul_(1.0 - lr * wd);
  else if (wd != 0)
    g = grads.add(params, wd);
  const double b1 = options_.beta1, b2 = options_.beta2;
  torch::Tensor m = exp_avg, v = exp_avg_sq; // views of the state
  m.mul_(b1).add_(g, 1.0 - b1);
  v.mul_(b2).addcmul_(g, g, 1.0 - b2);
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(steps_));
  const double bias2 = 1.0 - std::pow(b2, static_cast<double>(steps_));
  torch::Tensor denom = (v.sqrt() / std::sqrt(bias2)).add_(options_.eps);
  params.addcdiv_(m, denom, -lr / bias1);
}

std::vector<std::pair<std::string, torch::Tensor>> Optimizer::state() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  if (momentum_buffer_.defined())
    out.emplace_back("momentum_buffer", momentum_buffer_);
  if (exp_avg_.defined()) {
    out.emplace_back("exp_avg", exp_avg_);
    out.emplace_back("exp_avg_sq", exp_avg_sq_);
  }
  return out;
}

void Optimizer::load_state(const std::vector<std::pair<std::string, torch::Tensor>> &state,
                           int64_t steps) {
  auto mine = this->state();
  if (mine.size() != state.size())
    throw UserError(fmt::format("optimizer '{}' expects {} state tensors, the checkpoint has {}",
                                options_.kind, mine.size(), state.size()));
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < mine.size(); ++i) {
    if (mine[i].first != state[i].first || mine[i].second.numel() != state[i].second.numel())
      throw UserError(fmt::format("optimizer state '{}' does not match the model", state[i].first));
    mine[i].second.copy_(state[i].second.reshape({-1}));
  }
  steps_ = steps;
}

double learning_rate(const LrSchedule &s, int64_t step) {
  if (s.warmup_steps > 0 && step < s.warmup_steps)
    return s.base_lr * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  if (s.kind == "cosine") {
    int64_t span = std::max<int64_t>(1, s.total_steps - s.warmup_steps);
    double t =
        std::min(1.0, static_cast<double>(step - s.warmup_steps) / static_cast<double>(span));
    return s.base_lr * 0.5 * (1.0 + std::cos(M_PI * t));
  }
  if (s.kind == "step") {
    int64_t decays = (step - s.warmup_steps) / std::max<int64_t>(1, s.step_size);
    return s.base_lr * std::pow(s.gamma, static_cast<double>(decays));
  }
  return s.base_lr;
}

} // namespace hetrain
