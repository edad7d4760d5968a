// `--model FILE.pt`: a TorchScript module (torch.jit.script or torch.jit.trace, then .save) as a
// hetrain::Model. The module's trainable parameters and its buffers are re-registered, the same
// tensors under the same dotted names, in a tree of plain torch::nn::Modules that mirrors its
// submodules. So everything that works on a torch::nn::Module (the flat parameter buffer, buffer
// averaging, .to(device), checkpoints by name) works on the script module's own tensors, and its
// forward (TorchScript's interpreter) computes with the values hetrain wrote into them.
#pragma once

#include "hetrain/model/models.h"

#include <torch/script.h>

#include <memory>
#include <string>

namespace hetrain {

class ScriptModel : public Model {
public:
  // Throws UserError with one line for a missing file, a file that is not TorchScript, one from a
  // newer PyTorch, or a module without trainable parameters.
  static std::shared_ptr<ScriptModel> load(const std::string &path);

  torch::Tensor forward(torch::Tensor inputs) override;
  bool has_loss() const override;
  torch::Tensor loss(const torch::Tensor &outputs, const torch::Tensor &targets) override;
  torch::Tensor forward_loss(const torch::Tensor &inputs, const torch::Tensor &targets,
                             torch::Tensor *outputs) override;
  // The script module keeps its own training flag (dropout, BatchNorm read it), set with ours.
  void train(bool on = true) override;
  // The mirror moves the trained tensors; the frozen ones are moved here.
  void to(torch::Device device, bool non_blocking = false) override;
  using Model::to;

  const NamedTensors &frozen() const { return frozen_; }
  // The module's code (all methods of all submodules), for the fingerprint.
  std::string code() const;
  const std::string &path() const { return path_; }

private:
  explicit ScriptModel(torch::jit::Module script, std::string path);
  torch::jit::IValue run_forward(const torch::Tensor &inputs);

  torch::jit::Module script_;
  std::string path_;
  NamedTensors frozen_;
};

} // namespace hetrain
