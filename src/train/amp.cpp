#include "hetrain/train/amp.h"

#include "hetrain/common/error.h"
#include "hetrain/common/faults.h"
#include "hetrain/common/log.h"

#include <fmt/format.h>

#include <optional>

namespace hetrain {

MixedPrecision::MixedPrecision(AmpMode mode, torch::Device device) {
  if (mode == AmpMode::kOff)
    return;
  if (mode == AmpMode::kFp16 && !device.is_cuda())
    throw UserError("--amp fp16 needs a CUDA device (LibTorch's CPU autocast does bf16 only); use "
                    "--amp bf16 or --amp off on CPU trainers");
  dtype_ = mode == AmpMode::kBf16 ? torch::kBFloat16 : torch::kHalf;
  if (dtype_ == torch::kHalf)
    scale_ = 65536.0; // GradScaler's initial scale
}

std::string MixedPrecision::describe() const {
  if (!enabled())
    return "off (fp32)";
  return dtype_ == torch::kBFloat16
             ? "bf16 autocast"
             : fmt::format("fp16 autocast, dynamic loss scale (now {:.0f})", scale_);
}

bool MixedPrecision::unscale(torch::Tensor grads) {
  if (dtype_ != torch::kHalf)
    return true;
  grads.div_(scale_);
  if (!torch::isfinite(grads).all().item<bool>()) {
    scale_ /= 2;
    finite_rounds_ = 0;
    return false;
  }
  if (++finite_rounds_ >= kGrowthInterval && scale_ < 16777216.0) {
    scale_ *= 2;
    finite_rounds_ = 0;
  }
  return true;
}

namespace {
// What --fault-oom-above throws: the same path as a real allocation failure.
class SimulatedOutOfMemory : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};
} // namespace

void simulate_out_of_memory(int64_t micro_batch, bool always) {
  if (always)
    throw SimulatedOutOfMemory(
        fmt::format("--fault-probe-oom-rank: a micro-batch of {} samples", micro_batch));
  if (fault_oom_above() > 0 && micro_batch > fault_oom_above())
    throw SimulatedOutOfMemory(fmt::format("--fault-oom-above {}: a micro-batch of {} samples",
                                           fault_oom_above(), micro_batch));
}

bool is_out_of_memory(const std::exception &e) {
  if (dynamic_cast<const c10::OutOfMemoryError *>(&e) ||
      dynamic_cast<const SimulatedOutOfMemory *>(&e))
    return true;
  // The CPU allocator reports a failed allocation as a plain c10::Error.
  const std::string what = e.what();
  return dynamic_cast<const c10::Error *>(&e) &&
         (what.find("out of memory") != std::string::npos ||
          what.find("can't allocate memory") != std::string::npos);
}

ComputeStats MixedPrecision::gradients(Model &model, const LossSpec &loss, const Dataset &data,
                                       const SampleRun &samples, int64_t micro_batch,
                                       FlatParameters &flat, const GradientReady &ready) {
  const int64_t count = samples.count;
  if (ready && dtype_ == torch::kHalf)
    throw UserError("--overlap does not work with --amp fp16 (the gradient is unscaled after the "
                    "whole backward pass)");
  bool reported = false;
  GradientReady tracked;
  if (ready)
    tracked = [&](size_t parameter) {
      reported = true;
      ready(parameter);
    };
  // fp16 may redo the step after accumulate_gradients left its buffers: keep the ones before.
  std::optional<BufferSnapshot> start_buffers;
  if (dtype_ == torch::kHalf)
    start_buffers.emplace(model);
  for (int attempt = 0;;) {
    flat.zero_grads();
    const double scale = dtype_ == torch::kHalf ? scale_ : 1.0;
    const int64_t m = this->micro_batch(micro_batch);
    ComputeStats stats;
    try {
      if (fault_oom_above() > 0 && std::min(m, count) > fault_oom_above())
        simulate_out_of_memory(m);
      stats = accumulate_gradients(model, loss, data, samples, m, {dtype_, scale}, tracked);
    } catch (const std::exception &e) {
      if (!is_out_of_memory(e))
        throw;
      if (reported)
        throw UserError(fmt::format("out of memory after --overlap sent part of the gradient; "
                                    "run with --overlap off or a smaller --micro-batch ({})",
                                    first_line(e.what())));
      // A failed pass may have added part of its gradient already: start again from zero.
      if (m <= 1)
        throw UserError(fmt::format("out of memory with a micro-batch of 1 sample; this model does "
                                    "not fit on this device ({})",
                                    first_line(e.what())));
      micro_batch_limit_ = (m + 1) / 2;
      log_warn("out of memory with micro-batches of {} samples; running micro-batches of at most "
               "{} from now on ({})",
               m, micro_batch_limit_, first_line(e.what()));
      continue;
    }
    if (unscale(flat.grads()))
      return stats;
    start_buffers->restore(); // reached with fp16 only
    log_warn("--amp fp16: gradient overflowed at loss scale {:.0f}; recomputing at {:.0f}", scale,
             scale_);
    if (++attempt >= 24)
      throw UserError("--amp fp16: the gradient is not finite even at a tiny loss scale; the "
                      "model diverged (try --amp bf16 or a lower --lr)");
  }
}

} // namespace hetrain
