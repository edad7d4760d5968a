// Host memory the GPU path copies through. Internal to src/run.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace hetrain::run {

// Host memory the GPU path copies through: pinned (page-locked) when the model is on a GPU, so
// that copies run at the bus's speed and can overlap with MPI.
inline torch::Tensor host_buffer(int64_t numel, torch::ScalarType dtype, bool pinned) {
  return torch::empty({numel}, torch::TensorOptions().dtype(dtype).pinned_memory(pinned));
}

} // namespace hetrain::run
