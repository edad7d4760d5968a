#include "checkpointing.h"

#include "hetrain/checkpoint/checkpoint_files.h"
#include "hetrain/common/error.h"
#include "hetrain/common/log.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

namespace hetrain::run {
namespace fs = std::filesystem;

namespace {
// Flat state tensors (the flat parameter layout) as one tensor per parameter, for the file.
std::vector<std::pair<std::string, NamedTensors>>
per_parameter(const std::vector<std::pair<std::string, torch::Tensor>> &flat_state,
              const FlatParameters &flat) {
  std::vector<std::pair<std::string, NamedTensors>> out;
  for (const auto &[state_name, state] : flat_state) {
    NamedTensors per_param;
    for (const ParameterSlot &slot : flat.slots())
      per_param.emplace_back(slot.name, FlatParameters::view_of(state, slot));
    out.emplace_back(state_name, std::move(per_param));
  }
  return out;
}

// The inverse, checking that every parameter is there with its size.
std::vector<std::pair<std::string, torch::Tensor>>
flat_state_of(const std::vector<std::pair<std::string, NamedTensors>> &saved,
              const FlatParameters &flat, const std::string &path, const std::string &group) {
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (const auto &[state_name, per_param] : saved) {
    torch::Tensor flat_state = torch::zeros({flat.numel()}, torch::kFloat32);
    for (const ParameterSlot &slot : flat.slots()) {
      auto it = std::find_if(per_param.begin(), per_param.end(),
                             [&](const auto &p) { return p.first == slot.name; });
      if (it == per_param.end() || it->second.numel() != slot.numel)
        throw UserError(fmt::format("--resume {}: {} state {}/{} is missing or has the wrong size",
                                    path, group, state_name, slot.name));
      flat_state.narrow(0, slot.offset, slot.numel).copy_(it->second.reshape({slot.numel}));
    }
    state.emplace_back(state_name, flat_state);
  }
  return state;
}
} // namespace

std::string save_checkpoint(const CheckpointSource &s, const TrainingPosition &position,
                            const std::vector<EpochRecord> &history, const std::string &tag,
                            const std::vector<TrainerOptimizerState> &trainer_optimizers) {
  const TrainConfig &config = *s.config;
  CheckpointContents c;
  c.model = s.spec;
  c.norm_mean = s.normalization.mean;
  c.norm_std = s.normalization.std;
  c.position = position;
  c.seed = config.seed;
  c.world_size = s.world_size;
  c.sync_mode = name_of(config.sync);
  c.config_json = nlohmann::json(config).dump();
  for (const ParameterSlot &slot : s.flat->slots())
    c.params.emplace_back(slot.name, FlatParameters::view_of(s.flat->params(), slot));
  c.buffers = named_buffers(*s.model);
  c.frozen = frozen_parameters(*s.model);
  c.model_fingerprint = s.fingerprint;
  c.optimizer = s.optimizer->options();
  c.learning_rate = learning_rate(*s.schedule, std::max<int64_t>(0, position.global_step - 1));
  c.optimizer_steps = s.optimizer->steps_taken();
  c.optimizer_state = per_parameter(s.optimizer->state(), *s.flat);
  if (!trainer_optimizers.empty())
    c.trainer_optimizer_kind = config.optimizer;
  for (const TrainerOptimizerState &t : trainer_optimizers)
    c.trainer_optimizers.push_back({t.rank, t.steps, per_parameter(t.state, *s.flat)});
  c.cluster_reports = s.reports;
  c.epochs = history;
  std::string path =
      (fs::path(config.checkpoint_dir) / checkpoint_name(position.global_step, tag)).string();
  write_checkpoint(path, c);
  prune_checkpoints(config.checkpoint_dir, config.keep_checkpoints);
  return path;
}

namespace {
void check_resumable(const CheckpointContents &c, const ModelSpec &spec, const TrainConfig &config,
                     const std::string &path, const std::string &fingerprint,
                     const std::string &optimizer) {
  const std::string refusal = resume_refusal(c, {spec, config.seed, optimizer, fingerprint});
  if (!refusal.empty())
    throw UserError(fmt::format("--resume {}: {}", path, refusal));
}
} // namespace

std::unique_ptr<ResumePoint> find_resume_point(const TrainConfig &config, const ModelSpec &spec,
                                               const std::string &fingerprint,
                                               const std::string &optimizer) {
  if (config.resume.empty())
    return nullptr;
  auto point = std::make_unique<ResumePoint>();
  if (config.resume != "auto") {
    point->path = config.resume;
    point->contents = read_checkpoint(config.resume); // UserError names the file and problem
    check_resumable(point->contents, spec, config, point->path, fingerprint, optimizer);
    return point;
  }
  for (const std::string &name : resume_order(files_in(config.checkpoint_dir))) {
    const fs::path path = fs::path(config.checkpoint_dir) / name;
    try {
      point->contents = read_checkpoint(path.string());
    } catch (const UserError &e) {
      log_warn("--resume auto: skipping {}: {}", path.string(), e.what());
      continue;
    }
    point->path = path.string();
    check_resumable(point->contents, spec, config, point->path, fingerprint, optimizer);
    return point;
  }
  log_info("--resume auto: no checkpoint in {}; starting from the beginning",
           config.checkpoint_dir);
  return nullptr;
}

TrainingPosition restore_training(const ResumePoint &resume, Model &model, FlatParameters &flat,
                                  Optimizer &optimizer, TrainSummary &summary) {
  const CheckpointContents &c = resume.contents;
  load_model_state(c, model, resume.path);
  optimizer.load_state(flat_state_of(c.optimizer_state, flat, resume.path, "optimizer"),
                       c.optimizer_steps);
  summary.history = c.epochs;
  for (const EpochRecord &r : c.epochs)
    summary.epoch_seconds.push_back(r.seconds);
  summary.final_checkpoint = resume.path;
  summary.resumed_step = c.position.global_step;
  if (c.world_size != summary.world_size) // a restart that added or removed ranks
    summary.membership_changes.push_back(
        {0, "", "restart",
         fmt::format("resumed on {} ranks from a checkpoint of {}", summary.world_size,
                     c.world_size),
         c.position.global_step, 0.0,
         fmt::format("work after step {} was not in the checkpoint; the start-up again",
                     c.position.global_step)});
  log_info("resuming from {}: epoch {}, {} samples into it, step {}", resume.path,
           c.position.epoch + 1, c.position.epoch_position, c.position.global_step);
  return c.position;
}

std::vector<TrainerOptimizerState> saved_trainer_optimizers(const ResumePoint &resume,
                                                            const FlatParameters &flat,
                                                            const TrainConfig &config) {
  const CheckpointContents &c = resume.contents;
  std::vector<TrainerOptimizerState> out;
  if (c.trainer_optimizers.empty())
    return out;
  if (c.trainer_optimizer_kind != config.optimizer)
    throw UserError(fmt::format("--resume {}: the trainers' optimizers in it are {}, this run's "
                                "--optimizer is {}",
                                resume.path, c.trainer_optimizer_kind, config.optimizer));
  for (const TrainerOptimizerContents &t : c.trainer_optimizers)
    out.push_back({t.rank, t.steps,
                   flat_state_of(t.state, flat, resume.path,
                                 fmt::format("trainer_optimizers/rank{}", t.rank))});
  return states_for(config, std::move(out), resume.path);
}

} // namespace hetrain::run
