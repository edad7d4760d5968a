// The training probe (DESIGN §3): what the plan uses. A few warm-up steps, then timed
// forward+backward passes of the configured model at the configured micro-batch size.
#pragma once

#include "hetrain/model/models.h"

#include <torch/types.h>

namespace hetrain {

struct ProbeResult {
  double samples_per_sec = 0;
  // An estimate of the bytes for the model (parameters, gradients, two optimizer states) and one
  // micro-batch's activations (64 floats per input element), from the sizes alone.
  double peak_bytes = 0;
};

ProbeResult run_training_probe(const ModelSpec &spec, int64_t micro_batch, torch::Device device,
                               double seconds_cap = 1.5);

} // namespace hetrain
