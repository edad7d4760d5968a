// The models hetrain trains (`--model`). Each is an ordinary torch::nn::Module whose input shape
// and class count come from the dataset, so the same names serve Fashion-MNIST (1x28x28) and
// CIFAR-10 (3x32x32).
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

namespace hetrain {

struct ModelSpec {
  std::string name; // mlp | cnn | resnet
  int64_t in_channels = 1, height = 28, width = 28, num_classes = 10;
};

// The common face of our models: images [n, C, H, W] in, logits [n, classes] out.
class Classifier : public torch::nn::Module {
public:
  virtual torch::Tensor forward(torch::Tensor images) = 0;
};

const std::vector<std::string> &model_names();
// Throws UserError for an unknown name or a shape the model cannot take.
std::shared_ptr<Classifier> make_model(const ModelSpec &spec);
int64_t parameter_count(const torch::nn::Module &model);

} // namespace hetrain
