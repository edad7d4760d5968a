#include "hetrain/cluster/training_probe.h"

#include "hetrain/common/error.h"
#include "hetrain/common/faults.h"
#include "hetrain/common/log.h"
#include "hetrain/train/amp.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <chrono>

namespace hetrain {

namespace {
// The example's one sample repeated to n (dimension 0), on the device.
torch::Tensor repeated(const torch::Tensor &one, int64_t n, torch::Device device) {
  std::vector<int64_t> times(static_cast<size_t>(one.dim()), 1);
  times[0] = n;
  return one.repeat(times).to(device);
}

// One probe at `micro_batch` samples: warm-up, then timed passes. Throws what LibTorch throws,
// out-of-memory errors included.
ProbeResult time_probe(const ModelSpec &spec, const ProbeExample &example, int64_t micro_batch,
                       torch::Device device, double seconds_cap, bool always_oom) {
  using Clock = std::chrono::steady_clock;
  torch::manual_seed(12345); // the probe must not disturb anything seeded later; re-seeded after
  auto model = make_model(spec);
  model->to(device);
  model->train();
  check_model_fits(*model, spec.label(), example.loss, repeated(example.inputs, 2, device),
                   repeated(example.targets, 2, device), example.classes);
  simulate_out_of_memory(micro_batch, always_oom); // testing hooks; nothing when unarmed
  const torch::Tensor images = repeated(example.inputs, micro_batch, device);
  const torch::Tensor targets = repeated(example.targets, micro_batch, device);
  int64_t activation_elements = 0;
  auto step = [&] {
    BatchLoss out = batch_loss(*model, example.loss, images, targets);
    out.sum.backward();
    activation_elements = out.outputs.defined() ? out.outputs.numel() : 0;
    (void)out.sum.item<float>(); // waits for the device
  };
  for (int i = 0; i < 2; ++i)
    step(); // warm-up: allocator, thread pools, cuDNN/oneDNN choices
  int64_t passes = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (passes < 3 || elapsed < seconds_cap / 2) {
    step();
    ++passes;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if (elapsed > seconds_cap)
      break;
  }
  ProbeResult result;
  result.samples_per_sec = static_cast<double>(passes * micro_batch) / elapsed;
  double param_bytes = static_cast<double>(parameter_count(*model)) * 4;
  // Activations of a micro-batch: bounded above by the input times the widest layer ratio; use
  // a generous 64 floats per input element, which covers the cnn and resnet here.
  double activation_bytes =
      static_cast<double>(images.numel()) * 4 * 64 + static_cast<double>(activation_elements) * 4;
  result.peak_bytes = 4 * param_bytes + activation_bytes;
  result.micro_batch = micro_batch;
  return result;
}
} // namespace

// Out of memory: halve the micro-batch, as training does (train/amp.cpp), down to 1 sample; a
// model that does not fit even then gives a result with no speed, which admission rejects
// ("its training probe did not run"), so the job goes on with the other trainers.
ProbeResult run_training_probe(const ModelSpec &spec, const ProbeExample &example,
                               int64_t micro_batch, torch::Device device, double seconds_cap,
                               int world_rank) {
  const bool always_oom = world_rank >= 0 && fault_probe_out_of_memory(world_rank);
  for (int64_t m = micro_batch;;) {
    try {
      return time_probe(spec, example, m, device, seconds_cap, always_oom);
    } catch (const std::exception &e) {
      if (!is_out_of_memory(e))
        throw;
      if (m <= 1) {
        ProbeResult failed;
        failed.failure = fmt::format("out of memory even with a micro-batch of 1 sample ({})",
                                     first_line(e.what()));
        log_warn("training probe: {}; rank 0 will reject this trainer", failed.failure);
        return failed;
      }
      log_warn("training probe: out of memory with micro-batches of {} samples; trying {} ({})", m,
               (m + 1) / 2, first_line(e.what()));
      m = (m + 1) / 2;
    }
  }
}

} // namespace hetrain
