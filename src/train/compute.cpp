#include "hetrain/train/compute.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <numeric>
#include <optional>

namespace hetrain {
namespace {
torch::Device device_of(Classifier &model) {
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
  ReadyReporter(Classifier &model, const GradientReady &ready)
      : ready_(ready), params_(model.parameters()), done_(params_.size(), false) {
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

ComputeStats accumulate_gradients(Classifier &model, const Dataset &data, const int64_t *indices,
                                  int64_t count, int64_t micro_batch,
                                  const AutocastSettings &autocast, const GradientReady &ready) {
  ComputeStats stats;
  const torch::Device device = device_of(model);
  model.train();
  for (int64_t start = 0; start < count; start += micro_batch) {
    int64_t n = std::min(micro_batch, count - start);
    Batch batch = data.get(indices + start, n);
    batch.images = batch.images.to(device);
    batch.labels = batch.labels.to(device);
    torch::Tensor logits, loss;
    {
      // Forward under autocast; backward outside it, as PyTorch recommends.
      AutocastGuard guard(device, autocast.dtype);
      logits = model.forward(batch.images);
      loss = torch::nn::functional::cross_entropy(
          logits.to(torch::kFloat32), batch.labels,
          torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    }
    // The last micro-batch's backward reports gradients as they become final (--overlap).
    std::optional<ReadyReporter> reporter;
    if (ready && start + micro_batch >= count)
      reporter.emplace(model, ready);
    if (autocast.loss_scale != 1.0)
      (loss * autocast.loss_scale).backward();
    else
      loss.backward();
    if (reporter)
      reporter->finish();
    stats.loss_sum += loss.item<double>();
    stats.correct += logits.argmax(1).eq(batch.labels).sum().item<int64_t>();
    stats.samples += n;
  }
  return stats;
}

EvalSums evaluate_range(Classifier &model, const Dataset &data, int64_t begin, int64_t end,
                        int64_t batch_size) {
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
    batch.images = batch.images.to(device);
    batch.labels = batch.labels.to(device);
    torch::Tensor logits = model.forward(batch.images);
    sums.loss_sum += torch::nn::functional::cross_entropy(
                         logits, batch.labels,
                         torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                         .item<double>();
    sums.correct += logits.argmax(1).eq(batch.labels).sum().item<int64_t>();
    sums.samples += n;
  }
  model.train();
  return sums;
}

EvalResult evaluate(Classifier &model, const Dataset &data, int64_t batch_size) {
  const EvalSums sums = evaluate_range(model, data, 0, data.size(), batch_size);
  EvalResult result;
  result.samples = sums.samples;
  result.loss = sums.loss_sum / static_cast<double>(sums.samples);
  result.accuracy = static_cast<double>(sums.correct) / static_cast<double>(sums.samples);
  return result;
}

} // namespace hetrain
