// A model's buffers (BatchNorm running statistics and counters) as one float vector: how they
// travel between trainers and rank 0, which averages them by samples. Internal to src/run.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>

namespace hetrain::run {

inline int64_t buffer_elements(const torch::nn::Module &model) {
  int64_t n = 0;
  for (const auto &b : model.buffers())
    n += b.numel();
  return n;
}
inline void flatten_buffers(const torch::nn::Module &model, float *out) {
  for (const auto &b : model.buffers()) {
    auto f = b.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    std::copy_n(f.data_ptr<float>(), f.numel(), out);
    out += f.numel();
  }
}
inline void load_buffers(torch::nn::Module &model, const float *in) {
  torch::NoGradGuard no_grad;
  for (auto &b : model.buffers()) {
    auto f = torch::from_blob(const_cast<float *>(in), b.sizes(), torch::kFloat32);
    b.copy_(b.is_floating_point() ? f : f.round()); // counters stay integers
    in += b.numel();
  }
}

} // namespace hetrain::run
