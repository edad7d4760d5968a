// --amp: mixed precision (DESIGN §10). Forward passes run under LibTorch's autocast in bf16 or
// fp16; parameters, gradients, the wire and the optimizer stay fp32, so the aggregation is
// unchanged. fp16 has a narrow range: the loss is scaled before backward and the summed gradient
// unscaled after it; a round whose gradient overflowed is recomputed at half the scale (as
// PyTorch's GradScaler does, except that the round is redone rather than skipped, so no samples
// are lost).
#pragma once

#include "hetrain/config/choices.h"
#include "hetrain/train/compute.h"
#include "hetrain/train/flat_parameters.h"

#include <torch/torch.h>

#include <algorithm>
#include <string>

namespace hetrain {

class MixedPrecision {
public:
  // --amp. Throws UserError when the device cannot do it (fp16 autocast on a CPU).
  MixedPrecision(AmpMode mode, torch::Device device);
  // By name (off | bf16 | fp16); UserError for another name.
  MixedPrecision(const std::string &mode, torch::Device device)
      : MixedPrecision(parse_named<AmpMode>("amp", mode), device) {}

  bool enabled() const { return dtype_ != torch::kFloat32; }
  torch::ScalarType dtype() const { return dtype_; }
  double loss_scale() const { return scale_; }
  std::string describe() const;

  // Zeroes the gradients, then sums the gradients of the samples into flat.grads() (unscaled),
  // in micro-batches. fp16: recomputes with a lower loss scale while the sum is not finite.
  // Out of device memory: halves the micro-batch (for this and every later call), logs it and
  // recomputes from zeroed gradients, so the sum stays exact (BatchNorm statistics then come from
  // the smaller batches); a micro-batch of one sample that does not fit is a UserError.
  // `ready` (--overlap; not with fp16, whose sum is unscaled at the end): see
  // accumulate_gradients. A recomputation after a gradient was reported is an error, since what
  // was reported may already be on the wire.
  // Buffers: as accumulate_gradients; a recomputation starts from the buffers of the first try.
  ComputeStats gradients(Model &model, const LossSpec &loss, const Dataset &data,
                         const SampleRun &samples, int64_t micro_batch, FlatParameters &flat,
                         const GradientReady &ready = {});

  // The micro-batch gradients() really runs: `configured` until memory ran out, then smaller.
  int64_t micro_batch(int64_t configured) const {
    return micro_batch_limit_ > 0 ? std::min(configured, micro_batch_limit_) : configured;
  }
  // The loss-scale rules, apart from the model (unit-tested): true when `grads` are finite after
  // dividing them by the scale; false (scale halved) otherwise. Grows the scale x2 after
  // kGrowthInterval finite rounds in a row.
  bool unscale(torch::Tensor grads);
  static constexpr int64_t kGrowthInterval = 2000;

private:
  torch::ScalarType dtype_ = torch::kFloat32;
  double scale_ = 1.0;
  int64_t finite_rounds_ = 0;
  int64_t micro_batch_limit_ = 0; // 0 = none yet
};

// True for LibTorch's out-of-memory errors (CUDA's and the CPU allocator's), and the simulated
// ones below.
bool is_out_of_memory(const std::exception &e);
// Testing hook (--fault-oom-above): throws a simulated out-of-memory error for a micro-batch of
// more than the fault's samples, or for any size when `always`; the training probe and training
// take the same path as for a real one.
void simulate_out_of_memory(int64_t micro_batch, bool always = false);

} // namespace hetrain
