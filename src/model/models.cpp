#include "hetrain/model/models.h"

#include "hetrain/common/error.h"
#include "hetrain/model/plugin_loader.h"
#include "hetrain/model/script_model.h"

#include <torch/nn/modules.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace hetrain {
namespace nn = torch::nn;
namespace {

// mlp: flatten, three hidden layers of 128 with ReLU, linear classifier (784-128-128-128-10).
class Mlp : public Model {
public:
  explicit Mlp(const ModelSpec &spec) {
    int64_t inputs = spec.in_channels * spec.height * spec.width;
    fc1 = register_module("fc1", nn::Linear(inputs, 128));
    fc2 = register_module("fc2", nn::Linear(128, 128));
    fc3 = register_module("fc3", nn::Linear(128, 128));
    out = register_module("out", nn::Linear(128, spec.num_classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = x.flatten(1);
    x = torch::relu(fc1(x));
    x = torch::relu(fc2(x));
    x = torch::relu(fc3(x));
    return out(x);
  }

private:
  nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr}, out{nullptr};
};

// One conv3x3 + BatchNorm + ReLU + 2x2 max-pool block of the cnn.
struct ConvBlockImpl : nn::Module {
  ConvBlockImpl(int64_t in, int64_t out) {
    conv =
        register_module("conv", nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1).bias(false)));
    bn = register_module("bn", nn::BatchNorm2d(out));
  }
  torch::Tensor forward(torch::Tensor x) { return torch::max_pool2d(torch::relu(bn(conv(x))), 2); }
  nn::Conv2d conv{nullptr};
  nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(ConvBlock);

// cnn: two conv blocks (32 and 64 channels), then 128 hidden units and the classifier.
class Cnn : public Model {
public:
  explicit Cnn(const ModelSpec &spec) {
    block1 = register_module("block1", ConvBlock(spec.in_channels, 32));
    block2 = register_module("block2", ConvBlock(32, 64));
    int64_t features = 64 * (spec.height / 4) * (spec.width / 4);
    fc1 = register_module("fc1", nn::Linear(features, 128));
    out = register_module("out", nn::Linear(128, spec.num_classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = block2(block1(x)).flatten(1);
    return out(torch::relu(fc1(x)));
  }

private:
  ConvBlock block1{nullptr}, block2{nullptr};
  nn::Linear fc1{nullptr}, out{nullptr};
};

// The basic residual block of ResNet: two 3x3 convs with BatchNorm, identity or 1x1 shortcut.
struct ResidualBlockImpl : nn::Module {
  ResidualBlockImpl(int64_t in, int64_t out, int64_t stride) {
    conv1 = register_module(
        "conv1", nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)));
    bn1 = register_module("bn1", nn::BatchNorm2d(out));
    conv2 =
        register_module("conv2", nn::Conv2d(nn::Conv2dOptions(out, out, 3).padding(1).bias(false)));
    bn2 = register_module("bn2", nn::BatchNorm2d(out));
    if (stride != 1 || in != out) {
      shortcut_conv = register_module(
          "shortcut_conv", nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)));
      shortcut_bn = register_module("shortcut_bn", nn::BatchNorm2d(out));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    auto y = torch::relu(bn1(conv1(x)));
    y = bn2(conv2(y));
    auto skip = shortcut_conv ? shortcut_bn(shortcut_conv(x)) : x;
    return torch::relu(y + skip);
  }
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, shortcut_conv{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, shortcut_bn{nullptr};
};
TORCH_MODULE(ResidualBlock);

// resnet: a small ResNet for 28x28 and 32x32 inputs: 3x3 stem (16 channels), three stages of two
// residual blocks (16, 32, 64 channels; stride 1, 2, 2), global average pooling, classifier.
class ResNet : public Model {
public:
  explicit ResNet(const ModelSpec &spec) {
    stem = register_module(
        "stem", nn::Conv2d(nn::Conv2dOptions(spec.in_channels, 16, 3).padding(1).bias(false)));
    stem_bn = register_module("stem_bn", nn::BatchNorm2d(16));
    const int64_t widths[] = {16, 32, 64};
    int64_t in = 16;
    for (int stage = 0; stage < 3; ++stage) {
      for (int b = 0; b < 2; ++b) {
        int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
        blocks->push_back(ResidualBlock(in, widths[stage], stride));
        in = widths[stage];
      }
    }
    register_module("blocks", blocks);
    out = register_module("out", nn::Linear(64, spec.num_classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::relu(stem_bn(stem(x)));
    x = blocks->forward(x);
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return out(x);
  }

private:
  nn::Conv2d stem{nullptr};
  nn::BatchNorm2d stem_bn{nullptr};
  nn::Sequential blocks;
  nn::Linear out{nullptr};
};

} // namespace

const std::vector<std::string> &model_names() {
  static const std::vector<std::string> names = {"mlp", "cnn", "resnet"};
  return names;
}

bool is_builtin_model(const std::string &name) {
  const auto &names = model_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

namespace {
std::shared_ptr<Model> make_builtin(const ModelSpec &spec) {
  if (spec.name == "mlp")
    return std::make_shared<Mlp>(spec);
  if (spec.name == "cnn") {
    if (spec.height < 4 || spec.width < 4)
      throw UserError("model cnn needs images of at least 4x4");
    return std::make_shared<Cnn>(spec);
  }
  if (spec.height < 8 || spec.width < 8)
    throw UserError("model resnet needs images of at least 8x8");
  return std::make_shared<ResNet>(spec);
}
} // namespace

std::shared_ptr<Model> make_model(const ModelSpec &spec) {
  if (spec.in_channels <= 0 || spec.height <= 0 || spec.width <= 0 || spec.num_classes <= 0)
    throw UserError(fmt::format("model {}: bad input shape {}x{}x{} with {} outputs", spec.label(),
                                spec.in_channels, spec.height, spec.width, spec.num_classes));
  std::shared_ptr<Model> model;
  if (!spec.plugin.empty())
    model = load_plugin_model(spec.plugin, spec.shape());
  else if (is_builtin_model(spec.name))
    model = make_builtin(spec);
  else
    model = ScriptModel::load(spec.name);
  if (trainable_parameters(*model).empty())
    throw UserError(fmt::format("model {}: has no trainable parameters ({} frozen); nothing to "
                                "train",
                                spec.label(), frozen_parameters(*model).size()));
  return model;
}

int64_t parameter_count(const torch::nn::Module &model) {
  int64_t n = 0;
  for (const auto &p : model.parameters())
    n += p.numel();
  return n;
}

NamedTensors trainable_parameters(const torch::nn::Module &model) {
  NamedTensors out;
  for (const auto &p : model.named_parameters(/*recurse=*/true))
    if (p.value().requires_grad())
      out.emplace_back(p.key(), p.value());
  return out;
}

NamedTensors frozen_parameters(const Model &model) {
  NamedTensors out;
  if (const auto *script = dynamic_cast<const ScriptModel *>(&model))
    out = script->frozen();
  for (const auto &p : model.named_parameters(/*recurse=*/true))
    if (!p.value().requires_grad())
      out.emplace_back(p.key(), p.value());
  return out;
}

namespace {
// FNV-1a, 64 bits: a fingerprint to tell models apart, not a defence against forgery.
uint64_t fnv1a(const std::string &text, uint64_t hash = 0xcbf29ce484222325ULL) {
  for (unsigned char c : text)
    hash = (hash ^ c) * 0x100000001b3ULL;
  return hash;
}
std::string describe_tensors(const std::string &kind,
                             const torch::OrderedDict<std::string, torch::Tensor> &d) {
  std::string out;
  for (const auto &item : d)
    out += fmt::format("{} {} {} {}\n", kind, item.key(), fmt::join(item.value().sizes(), "x"),
                       c10::toString(item.value().scalar_type()));
  return out;
}
} // namespace

std::string model_fingerprint(const Model &model, const ModelSpec &spec) {
  std::string text;
  if (const auto *script = dynamic_cast<const ScriptModel *>(&model))
    text = "torchscript\n" + script->code();
  else
    text = spec.plugin.empty() ? "builtin " + spec.name : "plugin " + spec.plugin;
  text += describe_tensors("param", model.named_parameters(true));
  text += describe_tensors("buffer", model.named_buffers(true));
  for (const auto &[name, t] : frozen_parameters(model))
    text += fmt::format("frozen {} {}\n", name, fmt::join(t.sizes(), "x"));
  return fmt::format("{:016x}", fnv1a(text));
}

} // namespace hetrain
