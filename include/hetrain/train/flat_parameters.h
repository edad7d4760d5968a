// DESIGN §5 and §8: all parameters of a model live in one contiguous float32 buffer, and every
// parameter's .grad is a view into a second one. Backward then writes straight into what is sent
// over the wire, the optimizer steps one flat tensor, and checkpoints slice it per parameter.
#pragma once

#include <torch/nn/module.h>

#include <string>
#include <vector>

namespace hetrain {

struct ParameterSlot {
  std::string name; // e.g. "block1.conv.weight"
  int64_t offset = 0, numel = 0;
  std::vector<int64_t> shape;
};

class FlatParameters {
public:
  // Moves the model's parameters into the flat buffer (values kept) and binds their grads.
  explicit FlatParameters(torch::nn::Module &model);

  torch::Tensor params() const { return params_; } // 1-D float32, shares storage with the model
  torch::Tensor grads() const { return grads_; }   // 1-D float32, the model's .grad views
  const std::vector<ParameterSlot> &slots() const { return slots_; }
  int64_t numel() const { return params_.numel(); }
  // The part of a flat tensor (params, grads or optimizer state) that belongs to one parameter.
  static torch::Tensor view_of(const torch::Tensor &flat, const ParameterSlot &slot);

  void zero_grads() { grads_.zero_(); }

private:
  torch::Tensor params_, grads_;
  std::vector<ParameterSlot> slots_;
};

} // namespace hetrain
