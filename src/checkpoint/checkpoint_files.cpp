#include "hetrain/checkpoint/checkpoint_files.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

namespace hetrain {
namespace fs = std::filesystem;

std::string checkpoint_name(int64_t global_step, const std::string &tag) {
  return fmt::format("ckpt-s{:08}-{}.h5", global_step, tag);
}

bool is_checkpoint_name(const std::string &name) {
  return name.rfind("ckpt-", 0) == 0 && fs::path(name).extension() == ".h5";
}

std::vector<std::string> checkpoints_to_prune(std::vector<std::string> names, int64_t keep) {
  names.erase(std::remove_if(names.begin(), names.end(),
                             [](const std::string &n) { return !is_checkpoint_name(n); }),
              names.end());
  std::sort(names.begin(), names.end());
  const size_t kept = static_cast<size_t>(std::max<int64_t>(keep, 0));
  if (names.size() <= kept)
    return {};
  names.resize(names.size() - kept);
  return names;
}

std::vector<std::string> resume_order(std::vector<std::string> names) {
  names.erase(std::remove_if(names.begin(), names.end(),
                             [](const std::string &n) { return !is_checkpoint_name(n); }),
              names.end());
  // "ckpt-s00000010" is the first 14 characters: the step.
  std::sort(names.begin(), names.end(), [](const std::string &x, const std::string &y) {
    if (x.substr(0, 14) != y.substr(0, 14))
      return x > y;
    const bool ex = x.find("-epoch") != std::string::npos,
               ey = y.find("-epoch") != std::string::npos;
    return ex != ey ? ex : x > y;
  });
  return names;
}

std::string resume_refusal(const CheckpointContents &c, const ResumeRequirements &run) {
  const ModelSpec &spec = run.spec;
  // The fingerprint decides where both have one (a TorchScript file may have moved); checkpoints
  // from before fingerprints compare names.
  const bool fingerprints = !c.model_fingerprint.empty() && !run.fingerprint.empty();
  if (fingerprints ? c.model_fingerprint != run.fingerprint : c.model.label() != spec.label())
    return fmt::format(
        "a checkpoint of model '{}'{}, this run trains '{}'{}: another model", c.model.label(),
        fingerprints ? fmt::format(" (fingerprint {})", c.model_fingerprint) : "", spec.label(),
        fingerprints ? fmt::format(" (fingerprint {})", run.fingerprint) : "");
  if (c.model.in_channels != spec.in_channels || c.model.height != spec.height ||
      c.model.width != spec.width)
    return fmt::format("made for {}x{}x{} images, the dataset has {}x{}x{}", c.model.in_channels,
                       c.model.height, c.model.width, spec.in_channels, spec.height, spec.width);
  if (c.model.num_classes != spec.num_classes)
    return fmt::format("made for {} classes, the dataset has {}", c.model.num_classes,
                       spec.num_classes);
  if (c.seed != run.seed)
    return fmt::format("made with --seed {}, this run has --seed {}; the epoch order depends on "
                       "it, so pass --seed {}",
                       c.seed, run.seed, c.seed);
  if (c.optimizer.kind != run.optimizer)
    return fmt::format("its optimizer is {}, this run's is {}", c.optimizer.kind, run.optimizer);
  return "";
}

std::vector<std::string> files_in(const std::string &dir) {
  std::vector<std::string> names;
  std::error_code ec;
  if (fs::is_directory(dir, ec))
    for (const auto &entry : fs::directory_iterator(dir, ec))
      names.push_back(entry.path().filename().string());
  return names;
}

void prune_checkpoints(const std::string &dir, int64_t keep) {
  for (const std::string &name : checkpoints_to_prune(files_in(dir), keep)) {
    std::error_code ec;
    fs::remove(fs::path(dir) / name, ec);
  }
}

} // namespace hetrain
