// The two things a trainer does with a model: sum gradients over samples, and evaluate.
#pragma once

#include "hetrain/data/dataset.h"
#include "hetrain/model/models.h"

#include <cstdint>
#include <functional>

namespace hetrain {

struct ComputeStats {
  double loss_sum = 0; // summed cross-entropy over the samples
  int64_t correct = 0;
  int64_t samples = 0;
};

// Autocast of the forward pass (train/amp.h): kFloat32 = off. The loss is multiplied by
// `loss_scale` before backward (fp16); the statistics stay unscaled.
struct AutocastSettings {
  torch::ScalarType dtype = torch::kFloat32;
  double loss_scale = 1.0;
};

// Called during the backward pass of the last micro-batch with the index (into the model's
// parameters() order, which is FlatParameters::slots()'s) of a parameter whose gradient is final;
// every parameter is reported once by the time accumulate_gradients returns (--overlap).
using GradientReady = std::function<void(size_t parameter)>;

// Forward + backward over `count` samples in micro-batches of at most `micro_batch`, *adding* the
// gradient of the summed loss to the model's .grads. The caller divides by the samples of the
// whole step, so any split of a step's samples over micro-batches and trainers gives the same sum.
ComputeStats accumulate_gradients(Classifier &model, const Dataset &data, const int64_t *indices,
                                  int64_t count, int64_t micro_batch,
                                  const AutocastSettings &autocast = {},
                                  const GradientReady &ready = {});

struct EvalResult {
  double loss = 0;     // mean cross-entropy
  double accuracy = 0; // fraction correct
  int64_t samples = 0;
};

// Evaluation mode, no gradients (torch::NoGradGuard), the whole dataset in batches.
EvalResult evaluate(Classifier &model, const Dataset &data, int64_t batch_size = 1000);

// The sums behind an EvalResult over samples [begin, end): what ranks that split an evaluation
// add up (hetrain evaluate under mpirun).
struct EvalSums {
  double loss_sum = 0;
  int64_t correct = 0;
  int64_t samples = 0;
};
EvalSums evaluate_range(Classifier &model, const Dataset &data, int64_t begin, int64_t end,
                        int64_t batch_size = 1000);

} // namespace hetrain
