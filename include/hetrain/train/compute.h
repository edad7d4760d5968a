// The two things a trainer does with a model: sum gradients over samples, and evaluate.
#pragma once

#include "hetrain/data/dataset.h"
#include "hetrain/model/models.h"
#include "hetrain/train/loss.h"

#include <cstdint>
#include <functional>

namespace hetrain {

struct ComputeStats {
  double loss_sum = 0; // summed loss (train/loss.h) over the samples
  int64_t correct = 0;
  int64_t samples = 0;
  double data_wait_seconds = 0; // the compute thread waited for the loader (train/batch_loader.h)
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

// Consecutive samples of an epoch's order, and where they sit in it: random ops (dropout) are
// seeded per micro-batch from (seed, epoch, position of the micro-batch's first sample in the
// epoch's order), so a micro-batch draws the same masks whichever trainer computes it. Every full
// round cuts its micro-batches at the same positions for any split (shares are whole
// micro-batches), so the result does not depend on the split. Not covered: the shorter last round
// of an epoch (split in proportion, not in whole micro-batches) and micro-batches halved after
// running out of memory: there random ops draw other masks than one process would.
struct SampleRun {
  const int64_t *indices = nullptr; // into the dataset
  int64_t count = 0;
  uint64_t seed = 0;
  int64_t epoch = 0, position = 0; // position of indices[0] in the epoch's order
};
// A model's buffers as they are now, to put back: a step recomputed (after an fp16 overflow, or
// an exception part-way) starts from the buffers it started from.
class BufferSnapshot {
public:
  explicit BufferSnapshot(torch::nn::Module &model);
  void restore();

private:
  std::vector<torch::Tensor> buffers_, saved_;
};

// The seed of the micro-batch starting at `position` (unit-tested: a pure function).
uint64_t micro_batch_seed(uint64_t seed, int64_t epoch, int64_t position);

// --deterministic: LibTorch picks only deterministic kernels (cuDNN without benchmarking, no
// atomics-based reductions where a deterministic one exists; a warning where none does) and
// computes float32 in full precision (no TF32 in cuDNN convolutions or cuBLAS), and cuBLAS gets
// a fixed workspace (CUBLAS_WORKSPACE_CONFIG, when not set already). Without it a GPU run is not
// repeatable bit for bit (on an H200 a one-process run stopped and resumed differs from the
// straight one by 2.7e-2 relative at step 24). Call before any CUDA work.
void use_deterministic_kernels();

// Forward + backward over the run's samples in micro-batches of at most `micro_batch`, *adding*
// the gradient of the summed loss to the model's .grads. The caller divides by the samples of the
// whole step, so any split of a step's samples over micro-batches and trainers gives the same sum.
//
// Buffers (BatchNorm running statistics): every micro-batch starts from the buffers as they were
// at the call, and the call leaves them at the sample-weighted mean of the micro-batches' results
// (integer buffers rounded). Averaged again by samples over the trainers, that is the same for any
// split: one running-statistics update per step with the step's mean batch statistics (and
// num_batches_tracked counts steps). On an exception the buffers are restored.
ComputeStats accumulate_gradients(Model &model, const LossSpec &loss, const Dataset &data,
                                  const SampleRun &samples, int64_t micro_batch,
                                  const AutocastSettings &autocast = {},
                                  const GradientReady &ready = {});

struct EvalResult {
  double loss = 0;     // mean loss (--loss)
  double accuracy = 0; // fraction correct (0 for data without class labels)
  int64_t samples = 0;
};

// Evaluation mode, no gradients (torch::NoGradGuard), the whole dataset in batches.
EvalResult evaluate(Model &model, const LossSpec &loss, const Dataset &data,
                    int64_t batch_size = 1000);

// The sums behind an EvalResult over samples [begin, end): what ranks that split an evaluation
// add up (hetrain evaluate under mpirun).
struct EvalSums {
  double loss_sum = 0;
  int64_t correct = 0;
  int64_t samples = 0;
};
EvalSums evaluate_range(Model &model, const LossSpec &loss, const Dataset &data, int64_t begin,
                        int64_t end, int64_t batch_size = 1000);

} // namespace hetrain
