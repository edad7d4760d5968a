// The training probe (DESIGN §3): what the plan uses. A few warm-up steps, then timed
// forward+backward passes of the configured model at the configured micro-batch size.
#pragma once

#include "hetrain/model/models.h"
#include "hetrain/train/loss.h"

#include <torch/types.h>

#include <cstdint>
#include <string>

namespace hetrain {

struct ProbeResult {
  double samples_per_sec = 0;
  // An estimate of the bytes for the model (parameters, gradients, two optimizer states) and one
  // micro-batch's activations (64 floats per input element), from the sizes alone.
  double peak_bytes = 0;
  int64_t micro_batch = 0; // the micro-batch timed: less than asked when it ran out of memory
  std::string failure;     // why there is no speed ("" when the probe ran)
};

// What the probe trains on: one sample of the dataset (inputs [1, ...], targets [1, ...]), repeated
// to a micro-batch, and the run's loss; so it times this model on this data's shape.
struct ProbeExample {
  LossSpec loss;
  torch::Tensor inputs, targets;
  int64_t classes = 0; // the dataset's class count (0: float targets)
};
// Refuses (UserError, train/loss.h's check_model_fits) a model that does not fit the example
// before timing anything, so every trainer stops with the reason instead of a LibTorch error.

// Out of memory halves the micro-batch like training does; `world_rank` arms the testing hook
// --fault-probe-oom-rank (-1: none).
ProbeResult run_training_probe(const ModelSpec &spec, const ProbeExample &example,
                               int64_t micro_batch, torch::Device device, double seconds_cap = 1.5,
                               int world_rank = -1);

} // namespace hetrain
