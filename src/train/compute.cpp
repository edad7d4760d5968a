#include "hetrain/train/compute.h"

#include "hetrain/common/splitmix.h"
#include "hetrain/train/batch_loader.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <optional>

namespace hetrain {
namespace {
torch::Device device_of(Model &model) {
  auto params = model.parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}
// Autocast on for one forward pass (LibTorch's C++ side of torch.autocast). The API was renamed
// in LibTorch 2.4 (per device type); both spellings are kept so Debian's 1.13 and a CUDA LibTorch
// 2.x build the same code.
class AutocastGuard {
public:
  AutocastGuard(torch::Device device, torch::ScalarType dtype)
      : active_(dtype != torch::kFloat32), type_(device.type()) {
    if (!active_)
      return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    previous_ = at::autocast::is_autocast_enabled(type_);
    previous_dtype_ = at::autocast::get_autocast_dtype(type_);
    at::autocast::set_autocast_dtype(type_, dtype);
    at::autocast::set_autocast_enabled(type_, true);
#else
    if (type_ == torch::kCUDA) {
      previous_ = at::autocast::is_enabled();
      previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
      at::autocast::set_autocast_gpu_dtype(dtype);
      at::autocast::set_enabled(true);
    } else {
      previous_ = at::autocast::is_cpu_enabled();
      previous_dtype_ = at::autocast::get_autocast_cpu_dtype();
      at::autocast::set_autocast_cpu_dtype(dtype);
      at::autocast::set_cpu_enabled(true);
    }
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!active_)
      return;
    // Autocast caches fp16/bf16 copies of the weights; they change every step.
    if (at::autocast::decrement_nesting() == 0)
      at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(type_, previous_);
    at::autocast::set_autocast_dtype(type_, previous_dtype_);
#else
    if (type_ == torch::kCUDA) {
      at::autocast::set_enabled(previous_);
      at::autocast::set_autocast_gpu_dtype(previous_dtype_);
    } else {
      at::autocast::set_cpu_enabled(previous_);
      at::autocast::set_autocast_cpu_dtype(previous_dtype_);
    }
#endif
  }
  AutocastGuard(const AutocastGuard &) = delete;
  AutocastGuard &operator=(const AutocastGuard &) = delete;

private:
  bool active_ = false, previous_ = false;
  torch::DeviceType type_;
  torch::ScalarType previous_dtype_ = torch::kFloat32;
};

} // namespace

namespace {
// Reports parameters' gradients as final during one backward pass. A hook on a leaf runs just
// before that leaf's gradient is accumulated; the CPU autograd engine runs nodes one at a time on
// the calling thread, so when a hook fires, every parameter whose hook fired earlier has been
// accumulated. The rest (the last one, and any that got no gradient) are reported at the end.
class ReadyReporter {
public:
  ReadyReporter(Model &model, const GradientReady &ready) : ready_(ready) {
    for (const auto &named : trainable_parameters(model))
      params_.push_back(named.second);
    done_.assign(params_.size(), false);
    for (size_t i = 0; i < params_.size(); ++i)
      handles_.push_back(params_[i].register_hook([this, i](const torch::Tensor &) {
        report_fired();
        fired_.push_back(i);
      }));
  }
  ~ReadyReporter() {
    for (size_t i = 0; i < params_.size(); ++i)
      params_[i].remove_hook(handles_[i]);
  }
  void finish() {
    report_fired();
    for (size_t i = 0; i < params_.size(); ++i)
      report(i);
  }

private:
  void report_fired() {
    for (size_t i : fired_)
      report(i);
    fired_.clear();
  }
  void report(size_t i) {
    if (!done_[i]) {
      done_[i] = true;
      ready_(i);
    }
  }
  const GradientReady &ready_;
  std::vector<torch::Tensor> params_;
  std::vector<bool> done_;
  std::vector<size_t> fired_;
  std::vector<unsigned> handles_;
};
} // namespace

BufferSnapshot::BufferSnapshot(torch::nn::Module &model) : buffers_(model.buffers()) {
  torch::NoGradGuard no_grad;
  for (const auto &b : buffers_)
    saved_.push_back(b.detach().clone());
}

void BufferSnapshot::restore() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < buffers_.size(); ++i)
    buffers_[i].copy_(saved_[i]);
}

uint64_t micro_batch_seed(uint64_t seed, int64_t epoch, int64_t position) {
  // splitmix64's finaliser over the three, so neighbouring positions get unrelated seeds.
  uint64_t h = mix64(seed + kGoldenGamma);
  h = mix64(h ^ (static_cast<uint64_t>(epoch) + 0x632be59bd9b4e019ULL));
  return mix64(h ^ (static_cast<uint64_t>(position) + 0x85157af5a2e8c2e1ULL));
}

namespace {
// The buffer rule of accumulate_gradients: each micro-batch starts from the buffers at the start;
// their results are averaged by samples (in double).
class BufferMean {
public:
  explicit BufferMean(Model &model) : buffers_(model.buffers()), start_(model) {
    for (const auto &b : buffers_)
      sums_.push_back(torch::zeros_like(b, b.options().dtype(torch::kFloat64)));
  }
  ~BufferMean() {
    if (!finished_)
      restore(); // an exception: leave the buffers as they were
  }
  BufferMean(const BufferMean &) = delete;
  BufferMean &operator=(const BufferMean &) = delete;

  void restore() { start_.restore(); }
  void add(int64_t samples) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < buffers_.size(); ++i)
      sums_[i].add_(buffers_[i].to(torch::kFloat64), static_cast<double>(samples));
  }
  void finish(int64_t samples) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < buffers_.size(); ++i) {
      torch::Tensor mean = sums_[i] / static_cast<double>(samples);
      buffers_[i].copy_(buffers_[i].is_floating_point() ? mean : mean.round());
    }
    finished_ = true;
  }

private:
  std::vector<torch::Tensor> buffers_;
  BufferSnapshot start_;
  std::vector<torch::Tensor> sums_;
  bool finished_ = false;
};
} // namespace

ComputeStats accumulate_gradients(Model &model, const LossSpec &loss, const Dataset &data,
                                  const SampleRun &samples, int64_t micro_batch,
                                  const AutocastSettings &autocast, const GradientReady &ready) {
  ComputeStats stats;
  const torch::Device device = device_of(model);
  const int64_t count = samples.count;
  model.train();
  // One micro-batch needs no averaging: its result is the mean.
  std::optional<BufferMean> buffers;
  if (count > micro_batch)
    buffers.emplace(model);
  BatchLoader loader(data, samples.indices, count, micro_batch, {samples.seed, samples.epoch},
                     /*pin=*/device.is_cuda());
  for (int64_t start = 0; start < count; start += micro_batch) {
    int64_t n = std::min(micro_batch, count - start);
    Batch batch = loader.next();
    batch.inputs = batch.inputs.to(device, /*non_blocking=*/true);
    batch.targets = batch.targets.to(device, /*non_blocking=*/true);
    torch::manual_seed(micro_batch_seed(samples.seed, samples.epoch, samples.position + start));
    if (buffers)
      buffers->restore();
    BatchLoss out;
    {
      // Forward under autocast; backward outside it, as PyTorch recommends.
      AutocastGuard guard(device, autocast.dtype);
      out = batch_loss(model, loss, batch.inputs, batch.targets);
    }
    if (buffers)
      buffers->add(n);
    // The last micro-batch's backward reports gradients as they become final (--overlap).
    std::optional<ReadyReporter> reporter;
    if (ready && start + micro_batch >= count)
      reporter.emplace(model, ready);
    if (autocast.loss_scale != 1.0)
      (out.sum * autocast.loss_scale).backward();
    else
      out.sum.backward();
    if (reporter)
      reporter->finish();
    stats.loss_sum += out.sum.item<double>();
    stats.correct += count_correct(out.outputs, batch.targets);
    stats.samples += n;
  }
  if (buffers)
    buffers->finish(count);
  stats.data_wait_seconds = loader.wait_seconds();
  return stats;
}

EvalSums evaluate_range(Model &model, const LossSpec &loss, const Dataset &data, int64_t begin,
                        int64_t end, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  const torch::Device device = device_of(model);
  model.eval();
  EvalSums sums;
  std::vector<int64_t> indices;
  for (int64_t start = begin; start < end; start += batch_size) {
    const int64_t n = std::min(batch_size, end - start);
    indices.resize(static_cast<size_t>(n));
    std::iota(indices.begin(), indices.end(), start);
    Batch batch = data.get(indices);
    batch.inputs = batch.inputs.to(device);
    batch.targets = batch.targets.to(device);
    BatchLoss out = batch_loss(model, loss, batch.inputs, batch.targets);
    sums.loss_sum += out.sum.item<double>();
    sums.correct += count_correct(out.outputs, batch.targets);
    sums.samples += n;
  }
  model.train();
  return sums;
}

EvalResult evaluate(Model &model, const LossSpec &loss, const Dataset &data, int64_t batch_size) {
  const EvalSums sums = evaluate_range(model, loss, data, 0, data.size(), batch_size);
  EvalResult result;
  result.samples = sums.samples;
  result.loss = sums.loss_sum / static_cast<double>(sums.samples);
  result.accuracy = static_cast<double>(sums.correct) / static_cast<double>(sums.samples);
  return result;
}

void use_deterministic_kernels() {
  setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0); // read when cuBLAS starts
  at::Context &context = at::globalContext();
  context.setDeterministicAlgorithms(true, /*warn_only=*/true);
  context.setDeterministicCuDNN(true);
  context.setBenchmarkCuDNN(false);
  context.setAllowTF32CuDNN(false);
  context.setFloat32MatmulPrecision("highest");
}

} // namespace hetrain
