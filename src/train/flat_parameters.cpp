#include "hetrain/train/flat_parameters.h"

#include "hetrain/model/models.h"

#include <torch/torch.h>

namespace hetrain {

FlatParameters::FlatParameters(torch::nn::Module &model) {
  NamedTensors named = trainable_parameters(model); // frozen parameters stay out
  int64_t total = 0;
  for (const auto &item : named) {
    ParameterSlot slot;
    slot.name = item.first;
    slot.offset = total;
    slot.numel = item.second.numel();
    slot.shape = item.second.sizes().vec();
    total += slot.numel;
    slots_.push_back(std::move(slot));
  }
  auto options = torch::TensorOptions()
                     .dtype(torch::kFloat32)
                     .device(named.empty() ? torch::Device(torch::kCPU) : named[0].second.device());
  params_ = torch::empty({total}, options);
  grads_ = torch::zeros({total}, options);

  torch::NoGradGuard no_grad;
  size_t i = 0;
  for (auto &item : named) {
    torch::Tensor &p = item.second;
    const ParameterSlot &slot = slots_[i++];
    auto value_view = view_of(params_, slot);
    value_view.copy_(p.detach());
    // set_data keeps p the same leaf Variable (autograd and the module still hold it) but makes
    // it look at the flat buffer. Autograd accumulates into an existing .grad in place, so the
    // gradient view stays bound as long as nobody resets .grad (we never call zero_grad on it).
    p.set_data(value_view);
    p.mutable_grad() = view_of(grads_, slot);
  }
}

torch::Tensor FlatParameters::view_of(const torch::Tensor &flat, const ParameterSlot &slot) {
  return flat.narrow(0, slot.offset, slot.numel).view(slot.shape);
}

} // namespace hetrain
