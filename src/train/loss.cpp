#include "hetrain/train/loss.h"

#include "hetrain/common/error.h"

#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace hetrain {
namespace F = torch::nn::functional;
namespace {

std::string shape_of(const torch::Tensor &t) {
  return fmt::format("[{}]", fmt::join(t.sizes(), ", "));
}

// mse / bce targets: float targets as they are; integer labels one-hot over the outputs' classes.
torch::Tensor dense_targets(const torch::Tensor &outputs, const torch::Tensor &targets) {
  if (targets.is_floating_point())
    return targets.to(outputs.scalar_type());
  return F::one_hot(targets, outputs.size(1)).to(outputs.scalar_type());
}

// Summed over samples, each sample's loss the mean over its elements.
torch::Tensor per_sample_mean_sum(const torch::Tensor &elementwise_sum,
                                  const torch::Tensor &outputs) {
  const int64_t per_sample = outputs.numel() / std::max<int64_t>(1, outputs.size(0));
  return elementwise_sum / static_cast<double>(per_sample);
}

// The line of an error that says what went wrong: for the TorchScript interpreter's errors the
// last "...Error: " line (its first line only says that an operation failed), else the first line.
std::string root_cause(const std::string &what) {
  const auto at = what.rfind("Error: ");
  if (what.find("TorchScript interpreter") != std::string::npos && at != std::string::npos) {
    const std::string cause = what.substr(at + 7);
    return cause.substr(0, cause.find('\n'));
  }
  return what.substr(0, what.find('\n'));
}

} // namespace

BatchLoss batch_loss(Model &model, const LossSpec &loss, const torch::Tensor &inputs,
                     const torch::Tensor &targets) {
  BatchLoss out;
  const int64_t n = inputs.size(0);
  if (loss.kind == LossKind::kModel) {
    torch::Tensor mean = model.forward_loss(inputs, targets, &out.outputs);
    out.sum = mean.to(torch::kFloat32) * static_cast<double>(n);
    return out;
  }
  out.outputs = model.forward(inputs);
  const torch::Tensor logits = out.outputs.to(torch::kFloat32); // autocast may give bf16/fp16
  switch (loss.kind) {
  case LossKind::kCrossEntropy:
    out.sum = F::cross_entropy(
        logits, targets,
        F::CrossEntropyFuncOptions().reduction(torch::kSum).label_smoothing(loss.label_smoothing));
    break;
  case LossKind::kMse:
    out.sum = per_sample_mean_sum(
        F::mse_loss(logits, dense_targets(logits, targets), F::MSELossFuncOptions(torch::kSum)),
        logits);
    break;
  case LossKind::kBceWithLogits:
    out.sum = per_sample_mean_sum(
        F::binary_cross_entropy_with_logits(
            logits, dense_targets(logits, targets),
            F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kSum)),
        logits);
    break;
  case LossKind::kModel:
    break; // handled above
  }
  return out;
}

int64_t count_correct(const torch::Tensor &outputs, const torch::Tensor &targets) {
  if (!outputs.defined() || targets.is_floating_point() || outputs.dim() != 2 ||
      targets.dim() != 1 || outputs.size(0) != targets.size(0))
    return 0;
  return outputs.argmax(1).eq(targets).sum().item<int64_t>();
}

namespace {
std::string fit_problem(const torch::Tensor &outputs, const LossSpec &loss,
                        const torch::Tensor &targets) {
  if (loss.kind == LossKind::kModel || !outputs.defined())
    return "";
  const bool labels = !targets.is_floating_point();
  if (loss.kind == LossKind::kCrossEntropy) {
    if (!labels)
      return fmt::format("--loss cross-entropy needs integer class labels; the targets are float "
                         "{} (use --loss mse or bce-with-logits)",
                         shape_of(targets));
    if (outputs.dim() != 2)
      return fmt::format("--loss cross-entropy needs outputs [n, classes]; the model gives {}",
                         shape_of(outputs));
    return "";
  }
  if (labels && outputs.dim() != 2)
    return fmt::format("--loss {} with class labels needs outputs [n, classes]; the model gives {}",
                       name_of(loss.kind), shape_of(outputs));
  if (!labels && !outputs.sizes().equals(targets.sizes()))
    return fmt::format("--loss {} needs outputs of the targets' shape {}; the model gives {}",
                       name_of(loss.kind), shape_of(targets), shape_of(outputs));
  return "";
}
} // namespace

void check_model_fits(Model &model, const std::string &label, const LossSpec &loss,
                      const torch::Tensor &inputs, const torch::Tensor &targets, int64_t classes) {
  if (loss.kind == LossKind::kModel && !model.has_loss())
    throw UserError(fmt::format("model {}: --loss model needs a loss(outputs, targets) method "
                                "(@torch.jit.export in TorchScript), and it has none",
                                label));
  torch::Tensor outputs;
  auto failed = [&](const std::exception &e) {
    const std::string what = e.what();
    return UserError(fmt::format("model {}: fails on a batch of the dataset's shape {} with "
                                 "targets {} and --loss {}: {}",
                                 label, shape_of(inputs), shape_of(targets), name_of(loss.kind),
                                 root_cause(e.what())));
  };
  torch::NoGradGuard no_grad;
  model.eval();
  try {
    // The outputs' shape first: a loss given the wrong shape may broadcast, warn or fail.
    if (loss.kind != LossKind::kModel)
      outputs = model.forward(inputs);
  } catch (const UserError &) {
    throw;
  } catch (const std::exception &e) {
    throw failed(e);
  }
  const std::string problem = fit_problem(outputs, loss, targets);
  if (!problem.empty())
    throw UserError(fmt::format("model {}: {}", label, problem));
  try {
    batch_loss(model, loss, inputs, targets);
  } catch (const UserError &) {
    throw;
  } catch (const std::exception &e) {
    throw failed(e);
  }
  model.train();
  if (loss.kind != LossKind::kModel && classes > 0 && outputs.size(1) != classes)
    throw UserError(fmt::format("model {}: gives {} outputs per sample, the dataset has {} classes",
                                label, outputs.size(1), classes));
}

} // namespace hetrain
