// --loss and --label-smoothing: what a batch's loss is, summed over its samples so that any split
// of a step's samples over micro-batches and trainers adds up to the same total (the caller
// divides by the samples of the whole step, which makes it PyTorch's reduction="mean" over the
// global batch).
//
//   cross-entropy    logits [n, classes], integer labels [n] (--label-smoothing as PyTorch's)
//   mse              outputs and float targets of one shape; integer labels become one-hot.
//   bce-with-logits  the same, binary cross-entropy on logits (multi-label classification).
//                    Both count a sample's loss as the mean over its output elements, so the
//                    step's loss is PyTorch's mean over all elements of the global batch.
//   model            the model's own loss(outputs, targets), which returns the MEAN over the
//                    batch it is given; it is multiplied by the batch size. Exact for any split
//                    when that loss is a mean of per-sample losses (a loss normalised by, say,
//                    the number of boxes in the batch is not, and then depends on the split).
#pragma once

#include "hetrain/config/choices.h"
#include "hetrain/model/models.h"

#include <torch/types.h>

#include <string>

namespace hetrain {

struct LossSpec {
  LossKind kind = LossKind::kCrossEntropy;
  double label_smoothing = 0.0;
};

struct BatchLoss {
  torch::Tensor sum;     // 0-d, float32: the summed loss of the batch (backward starts here)
  torch::Tensor outputs; // the model's outputs when they are one tensor (for accuracy), else {}
};

// Forward pass and loss of one batch.
BatchLoss batch_loss(Model &model, const LossSpec &loss, const torch::Tensor &inputs,
                     const torch::Tensor &targets);

// Correct predictions (argmax of [n, classes] outputs against integer labels); 0 when the batch
// is not a classification (float targets, other outputs).
int64_t count_correct(const torch::Tensor &outputs, const torch::Tensor &targets);

// Runs one batch of two samples through the model and the loss before anything is trained, so a
// model that does not fit the data or the loss is refused with one line that names both shapes.
// `classes`: the dataset's class count (0 for float targets).
void check_model_fits(Model &model, const std::string &model_label, const LossSpec &loss,
                      const torch::Tensor &inputs, const torch::Tensor &targets, int64_t classes);

} // namespace hetrain
