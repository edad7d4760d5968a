#include "hetrain/model/script_model.h"

#include "hetrain/common/error.h"

#include <fmt/format.h>

#include <minizip/unzip.h>
#include <sys/stat.h>

#include <memory>
#include <regex>
#include <vector>

namespace hetrain {
namespace {

// A node of the mirror tree: holds nothing but what mirror() registers in it.
struct MirrorNode : torch::nn::Module {};

// Registers `script`'s own trainable parameters and buffers in `node` (the same tensors), its
// frozen parameters in `frozen`, and recurses into its submodules.
void mirror(const torch::jit::Module &script, torch::nn::Module &node, const std::string &prefix,
            NamedTensors &frozen) {
  for (const auto &p : script.named_parameters(/*recurse=*/false)) {
    if (p.value.requires_grad())
      node.register_parameter(p.name, p.value);
    else
      frozen.emplace_back(prefix + p.name, p.value);
  }
  for (const auto &b : script.named_buffers(/*recurse=*/false))
    node.register_buffer(b.name, b.value);
  for (const auto &child : script.named_children()) {
    auto sub = std::make_shared<MirrorNode>();
    mirror(child.value, *sub, prefix + child.name + ".", frozen);
    node.register_module(child.name, sub);
  }
}

std::string first_line(const std::string &text) { return text.substr(0, text.find('\n')); }

// LibTorch's errors for a file it cannot load, turned into what the user should do.
[[noreturn]] void refuse(const std::string &path, const std::string &what) {
  const std::string line = first_line(what);
  if (what.find("maximum supported version") != std::string::npos ||
      what.find("max supported version") != std::string::npos)
    throw UserError(fmt::format("{}: saved by a newer PyTorch than this LibTorch {} reads ({}); "
                                "export it with the PyTorch version hetrain is built against",
                                path, TORCH_VERSION, line));
  if (what.find("constants.pkl") != std::string::npos ||
      what.find("PytorchStreamReader") != std::string::npos ||
      what.find("central directory") != std::string::npos ||
      what.find("file not found") != std::string::npos)
    throw UserError(fmt::format("{}: not a TorchScript file (make one with torch.jit.script or "
                                "torch.jit.trace and .save(); torch.save of a model or a "
                                "state_dict is not one) ({})",
                                path, line));
  throw UserError(fmt::format("{}: cannot be loaded as TorchScript: {}", path, line));
}

// A TorchScript file is a zip archive, and LibTorch's reader trusts what is inside: a damaged
// file (one flipped length in the pickled module) makes torch::jit::load ask for terabytes or
// read past its buffers (found by fuzz/fuzz_model_file.cpp). Every zip entry carries a CRC-32,
// which LibTorch does not check; minizip does, so damage is found here, before LibTorch sees the
// file. (A file crafted with matching CRCs is not damage but a forgery; like a plugin, a model
// file is code, and hetrain trusts the user with it.)
void check_archive(const std::string &path) {
  const auto not_torchscript = [&](const std::string &why) {
    return UserError(
        fmt::format("{}: not a TorchScript file ({}; make one with torch.jit.script or "
                    "torch.jit.trace and .save())",
                    path, why));
  };
  std::unique_ptr<void, int (*)(unzFile)> zip(unzOpen64(path.c_str()), unzClose);
  if (!zip)
    throw not_torchscript("not a zip archive");
  std::vector<char> buffer(1 << 20);
  int entries = 0;
  int rc = unzGoToFirstFile(zip.get());
  for (; rc == UNZ_OK; rc = unzGoToNextFile(zip.get()), ++entries) {
    unz_file_info64 info{};
    char name[256] = {};
    if (unzGetCurrentFileInfo64(zip.get(), &info, name, sizeof name - 1, nullptr, 0, nullptr, 0) !=
            UNZ_OK ||
        unzOpenCurrentFile(zip.get()) != UNZ_OK)
      throw UserError(fmt::format("{}: damaged file (zip entry {} cannot be read)", path, entries));
    uint64_t size = 0;
    int n = 0;
    while ((n = unzReadCurrentFile(zip.get(), buffer.data(),
                                   static_cast<unsigned>(buffer.size()))) > 0)
      size += static_cast<uint64_t>(n);
    const int closed = unzCloseCurrentFile(zip.get()); // UNZ_CRCERROR when the CRC-32 differs
    if (n < 0 || closed != UNZ_OK || size != info.uncompressed_size)
      throw UserError(fmt::format("{}: damaged file (zip entry '{}' {})", path, name,
                                  closed == UNZ_CRCERROR ? "fails its CRC-32 check"
                                                         : "is truncated or corrupt"));
  }
  if (rc != UNZ_END_OF_LIST_OF_FILE)
    throw UserError(fmt::format("{}: damaged file (its zip directory ends early)", path));
  if (entries == 0)
    throw not_torchscript("an empty zip archive");
}

} // namespace

std::shared_ptr<ScriptModel> ScriptModel::load(const std::string &path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw UserError(fmt::format("--model {}: no such file (and not one of the built-in models "
                                "mlp, cnn, resnet)",
                                path));
  check_archive(path);
  torch::jit::Module script;
  try {
    script = torch::jit::load(path, torch::kCPU);
  } catch (const c10::Error &e) {
    refuse(path, e.what());
  } catch (const std::exception &e) {
    refuse(path, e.what());
  }
  if (script.find_method("forward") == c10::nullopt)
    throw UserError(fmt::format("{}: holds no TorchScript module with a forward method (torch.save "
                                "of a tensor, model or state_dict is not TorchScript; make one "
                                "with torch.jit.script or torch.jit.trace and .save())",
                                path));
  return std::shared_ptr<ScriptModel>(new ScriptModel(std::move(script), path));
}

ScriptModel::ScriptModel(torch::jit::Module script, std::string path)
    : script_(std::move(script)), path_(std::move(path)) {
  mirror(script_, *this, "", frozen_);
}

torch::jit::IValue ScriptModel::run_forward(const torch::Tensor &inputs) {
  return script_.forward({inputs});
}

torch::Tensor ScriptModel::forward(torch::Tensor inputs) {
  torch::jit::IValue out = run_forward(inputs);
  if (!out.isTensor())
    throw UserError(fmt::format("{}: forward returns a {}, not a tensor; a model with other "
                                "outputs trains with --loss model (its loss method takes them)",
                                path_, out.tagKind()));
  return out.toTensor();
}

bool ScriptModel::has_loss() const { return script_.find_method("loss") != c10::nullopt; }

torch::Tensor ScriptModel::loss(const torch::Tensor &outputs, const torch::Tensor &targets) {
  return script_.get_method("loss")({outputs, targets}).toTensor();
}

torch::Tensor ScriptModel::forward_loss(const torch::Tensor &inputs, const torch::Tensor &targets,
                                        torch::Tensor *outputs) {
  torch::jit::IValue out = run_forward(inputs);
  if (outputs != nullptr && out.isTensor())
    *outputs = out.toTensor();
  torch::jit::IValue loss = script_.get_method("loss")({out, targets});
  if (!loss.isTensor())
    throw UserError(fmt::format("{}: loss returns a {}, not a tensor", path_, loss.tagKind()));
  return loss.toTensor();
}

void ScriptModel::train(bool on) {
  Model::train(on);
  script_.train(on);
}

void ScriptModel::to(torch::Device device, bool non_blocking) {
  Model::to(device, non_blocking);
  torch::NoGradGuard no_grad;
  for (auto &[name, t] : frozen_)
    t.set_data(t.to(device, /*non_blocking=*/non_blocking));
}

std::string ScriptModel::code() const {
  const std::string dump = script_.dump_to_str(/*print_method_bodies=*/true,
                                               /*print_attr_values=*/false,
                                               /*print_param_values=*/false);
  // The dump names submodules as "<... object at 0x345c47d0>": drop the addresses, which change
  // from one load to the next.
  static const std::regex address(" at 0x[0-9a-fA-F]+");
  return std::regex_replace(dump, address, "");
}

} // namespace hetrain
