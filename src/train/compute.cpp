#include "hetrain/train/compute.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

namespace hetrain {
namespace {
torch::Device device_of(Classifier &model) {
  auto params = model.parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}
} // namespace

ComputeStats accumulate_gradients(Classifier &model, const Dataset &data, const int64_t *indices,
                                  int64_t count, int64_t micro_batch) {
  ComputeStats stats;
  const torch::Device device = device_of(model);
  model.train();
  for (int64_t start = 0; start < count; start += micro_batch) {
    int64_t n = std::min(micro_batch, count - start);
    Batch batch = data.get(indices + start, n);
    batch.images = batch.images.to(device);
    batch.labels = batch.labels.to(device);
    torch::Tensor logits = model.forward(batch.images);
    torch::Tensor loss = torch::nn::functional::cross_entropy(
        logits, batch.labels,
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    loss.backward();
    stats.loss_sum += loss.item<double>();
    stats.correct += logits.argmax(1).eq(batch.labels).sum().item<int64_t>();
    stats.samples += n;
  }
  return stats;
}

EvalResult evaluate(Classifier &model, const Dataset &data, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  const torch::Device device = device_of(model);
  model.eval();
  EvalResult result;
  double loss_sum = 0;
  int64_t correct = 0;
  std::vector<int64_t> indices(static_cast<size_t>(std::min(batch_size, data.size())));
  for (int64_t start = 0; start < data.size(); start += batch_size) {
    int64_t n = std::min(batch_size, data.size() - start);
    indices.resize(static_cast<size_t>(n));
    std::iota(indices.begin(), indices.end(), start);
    Batch batch = data.get(indices);
    batch.images = batch.images.to(device);
    batch.labels = batch.labels.to(device);
    torch::Tensor logits = model.forward(batch.images);
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, batch.labels,
                    torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
    correct += logits.argmax(1).eq(batch.labels).sum().item<int64_t>();
  }
  model.train();
  result.samples = data.size();
  result.loss = loss_sum / static_cast<double>(data.size());
  result.accuracy = static_cast<double>(correct) / static_cast<double>(data.size());
  return result;
}

} // namespace hetrain
