// An example hetrain model plugin: `hetrain train --model-plugin
// libhetrain_example_plugin.so:tiny_cnn`. It includes only hetrain/model/plugin.h and LibTorch, as
// a plugin built outside this repository would (see CMakeLists.txt next to it for the three lines
// that build one).
#include "hetrain/model/plugin.h"

#include <torch/torch.h>

namespace {
namespace nn = torch::nn;

// conv3x3 (8 channels) + BatchNorm + ReLU + 2x2 max-pool, then a linear classifier.
class TinyCnn : public hetrain::Model {
public:
  explicit TinyCnn(const hetrain::ModelShape &shape) {
    conv = register_module(
        "conv", nn::Conv2d(nn::Conv2dOptions(shape.in_channels, 8, 3).padding(1).bias(false)));
    bn = register_module("bn", nn::BatchNorm2d(8));
    out = register_module("out",
                          nn::Linear(8 * (shape.height / 2) * (shape.width / 2), shape.outputs));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::max_pool2d(torch::relu(bn(conv(x))), 2);
    return out(x.flatten(1));
  }

private:
  nn::Conv2d conv{nullptr};
  nn::BatchNorm2d bn{nullptr};
  nn::Linear out{nullptr};
};

// A linear model with its own loss (--loss model): mean squared error over the batch, for
// classification with one-hot targets or for float targets of the outputs' shape.
class LinearMse : public hetrain::Model {
public:
  explicit LinearMse(const hetrain::ModelShape &shape) {
    fc = register_module("fc",
                         nn::Linear(shape.in_channels * shape.height * shape.width, shape.outputs));
  }
  torch::Tensor forward(torch::Tensor x) override { return fc(x.flatten(1)); }
  bool has_loss() const override { return true; }
  torch::Tensor loss(const torch::Tensor &outputs, const torch::Tensor &targets) override {
    torch::Tensor dense = targets.is_floating_point()
                              ? targets
                              : torch::one_hot(targets, outputs.size(1)).to(outputs.dtype());
    return torch::mse_loss(outputs, dense); // mean over the batch's elements
  }

private:
  nn::Linear fc{nullptr};
};

std::shared_ptr<hetrain::Model> make_tiny_cnn(const hetrain::ModelShape &shape) {
  if (shape.height < 2 || shape.width < 2)
    throw std::invalid_argument("tiny_cnn needs inputs of at least 2x2");
  return std::make_shared<TinyCnn>(shape);
}
std::shared_ptr<hetrain::Model> make_linear_mse(const hetrain::ModelShape &shape) {
  return std::make_shared<LinearMse>(shape);
}

} // namespace

HETRAIN_MODEL_PLUGIN({"tiny_cnn", &make_tiny_cnn}, {"linear_mse", &make_linear_mse})
