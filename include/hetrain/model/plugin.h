// The interface every model hetrain trains implements, and the one stable header a C++ model
// plugin (`--model-plugin LIB.so[:NAME]`) is built against. It depends on LibTorch only: a plugin
// includes this file, derives from hetrain::Model, and lists its models with
// HETRAIN_MODEL_PLUGIN (see examples/plugin/). Build it with the same compiler and LibTorch as
// hetrain (C++ classes cross the library boundary).
//
// Contract with hetrain:
//  - forward() takes a float batch [n, ...] (the dataset's sample shape) and returns [n, ...];
//  - parameters and buffers are registered with register_parameter / register_buffer /
//    register_module; their dotted names are the names in checkpoints;
//  - parameters with requires_grad() are trained; others are kept as they are ("frozen");
//  - loss() (only with --loss model) returns the MEAN loss over the batch it is given, as
//    PyTorch's default reduction does: hetrain multiplies it by the batch size, so the gradient
//    of the global batch is exact for any split when the loss is a mean of per-sample losses.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <stdexcept>

namespace hetrain {

// Raised version numbers mean an incompatible change of this header.
inline constexpr int kModelPluginApiVersion = 1;

// What the dataset gives a model: samples of in_channels x height x width (a feature vector of F
// values is 1 x 1 x F) and `outputs` values per sample (class count, or the target's size).
struct ModelShape {
  int64_t in_channels = 1, height = 1, width = 1, outputs = 1;
};

class Model : public torch::nn::Module {
public:
  virtual torch::Tensor forward(torch::Tensor inputs) = 0;

  // --loss model: whether loss() is provided, and the mean loss of a batch.
  virtual bool has_loss() const { return false; }
  virtual torch::Tensor loss(const torch::Tensor & /*outputs*/, const torch::Tensor & /*targets*/) {
    throw std::logic_error("this model has no loss method");
  }
  // forward + loss in one call, for models whose outputs are not one tensor (a TorchScript
  // detector's tuple); `outputs` is set when they are. Plugins need not override it.
  virtual torch::Tensor forward_loss(const torch::Tensor &inputs, const torch::Tensor &targets,
                                     torch::Tensor *outputs) {
    torch::Tensor out = forward(inputs);
    if (outputs != nullptr)
      *outputs = out;
    return loss(out, targets);
  }
};

using ModelFactory = std::shared_ptr<Model> (*)(const ModelShape &shape);

struct PluginModel {
  const char *name;
  ModelFactory make;
};

// What a plugin exports (extern "C", so the symbol name is stable): its API version and a list of
// models ending with {nullptr, nullptr}.
struct PluginModels {
  int api_version;
  const PluginModel *models;
};
inline constexpr const char *kModelPluginSymbol = "hetrain_model_plugin";

} // namespace hetrain

// In one .cpp of a plugin:  HETRAIN_MODEL_PLUGIN({"tiny_cnn", &make_tiny_cnn}, {"other", ...})
#define HETRAIN_MODEL_PLUGIN(...)                                                                  \
  extern "C" __attribute__((visibility("default"))) const ::hetrain::PluginModels *                \
  hetrain_model_plugin() {                                                                         \
    static const ::hetrain::PluginModel models[] = {__VA_ARGS__, {nullptr, nullptr}};              \
    static const ::hetrain::PluginModels list = {::hetrain::kModelPluginApiVersion, models};       \
    return &list;                                                                                  \
  }
