// The models hetrain trains (`--model`, `--model-plugin`). Every model is a hetrain::Model
// (model/plugin.h): a torch::nn::Module whose dotted parameter and buffer names are the names in
// checkpoints. Three come built in (mlp, cnn, resnet: their input shape and class count come from
// the dataset, so the same names serve Fashion-MNIST and CIFAR-10); any other is the user's own:
// a TorchScript file (model/script_model.h) or a C++ plugin (model/plugin_loader.h).
#pragma once

#include "hetrain/model/plugin.h"

#include <torch/nn/module.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace hetrain {

struct ModelSpec {
  ModelSpec() = default;
  ModelSpec(std::string name_, int64_t channels, int64_t height_, int64_t width_, int64_t outputs,
            std::string plugin_ = "")
      : name(std::move(name_)), in_channels(channels), height(height_), width(width_),
        num_classes(outputs), plugin(std::move(plugin_)) {}

  std::string name; // mlp | cnn | resnet, or a TorchScript file (--model)
  int64_t in_channels = 1, height = 28, width = 28;
  int64_t num_classes = 10; // outputs per sample: the class count, or a float target's size
  std::string plugin;       // --model-plugin LIB.so[:NAME]; when set, it is the model
  // What checkpoints call the model: the plugin as "plugin:LIB.so:NAME", else the name.
  std::string label() const { return plugin.empty() ? name : "plugin:" + plugin; }
  ModelShape shape() const { return {in_channels, height, width, num_classes}; }
};

const std::vector<std::string> &model_names();
bool is_builtin_model(const std::string &name);
// Builds the model of a spec: a built-in, a TorchScript file or a plugin. Throws UserError for an
// unknown name, an unreadable model, or a shape the model cannot take.
std::shared_ptr<Model> make_model(const ModelSpec &spec);
int64_t parameter_count(const torch::nn::Module &model);

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;
// The parameters that are trained (requires_grad), by name, in the module's order: the layout of
// the flat buffer (train/flat_parameters.h) and of /params in checkpoints.
NamedTensors trainable_parameters(const torch::nn::Module &model);
// Parameters that do not require gradients (a TorchScript module's frozen layers): not trained,
// not in the flat buffer, but part of the state_dict, so checkpoints keep them.
NamedTensors frozen_parameters(const Model &model);
// Identifies the model apart from its weights: a hash of its code (TorchScript) or name, and of
// every parameter's and buffer's name, shape and dtype. --resume refuses another fingerprint.
std::string model_fingerprint(const Model &model, const ModelSpec &spec);

} // namespace hetrain
