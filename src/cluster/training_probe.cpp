#include "hetrain/cluster/training_probe.h"

#include <torch/torch.h>

#include <chrono>

namespace hetrain {

namespace {
// The example's one sample repeated to n (dimension 0), on the device.
torch::Tensor repeated(const torch::Tensor &one, int64_t n, torch::Device device) {
  std::vector<int64_t> times(static_cast<size_t>(one.dim()), 1);
  times[0] = n;
  return one.repeat(times).to(device);
}
} // namespace

ProbeResult run_training_probe(const ModelSpec &spec, const ProbeExample &example,
                               int64_t micro_batch, torch::Device device, double seconds_cap) {
  using Clock = std::chrono::steady_clock;
  torch::manual_seed(12345); // the probe must not disturb anything seeded later; re-seeded after
  auto model = make_model(spec);
  model->to(device);
  model->train();
  check_model_fits(*model, spec.label(), example.loss, repeated(example.inputs, 2, device),
                   repeated(example.targets, 2, device), example.classes);
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
  return result;
}

} // namespace hetrain
