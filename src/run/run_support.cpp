#include "run_support.h"

#include "hetrain/checkpoint/checkpoint_files.h"
#include "hetrain/comm/check_mpi.h"

#include "hetrain/common/atomic_file.h"
#include "hetrain/common/error.h"
#include "hetrain/common/log.h"
#include "hetrain/train/compute.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>

namespace hetrain::run {
namespace fs = std::filesystem;

std::string format_duration(double seconds) {
  auto s = static_cast<int64_t>(seconds + 0.5);
  return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}

torch::Device choose_device(DeviceChoice requested, int cuda_index) {
  const bool cuda = torch::cuda::is_available();
  if (requested == DeviceChoice::kCuda && !cuda)
    throw UserError("--device cuda: no CUDA device is visible to this LibTorch build");
  if (requested == DeviceChoice::kCpu || !cuda)
    return torch::Device(torch::kCPU);
  const int count = static_cast<int>(torch::cuda::device_count());
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(cuda_index % count));
}

MPI_Comm watch_rank0(const TrainConfig &config, MPI_Comm job,
                     std::optional<HeartbeatWatch> &watch) {
  MPI_Comm beats = MPI_COMM_NULL;
  CHECK_MPI(MPI_Comm_dup(job, &beats));
  CHECK_MPI(MPI_Comm_set_errhandler(beats, MPI_ERRORS_RETURN));
  if (mpi_thread_multiple()) // rank 0 beats only then (the same MPI everywhere)
    watch.emplace(beats, 0, heartbeat_limit(config.straggler_timeout));
  return beats;
}

void prepare_outputs(const TrainConfig &config) {
  // Every output's place is checked before any work, so a bad path costs seconds, not a run.
  const std::pair<const char *, const std::string *> files[] = {
      {"--summary-json", &config.summary_json},
      {"--metrics", &config.metrics},
      {"--timeline", &config.timeline},
      {"--prometheus", &config.prometheus}};
  for (const auto &[flag, path] : files) {
    if (path->empty())
      continue;
    try {
      AtomicOutputFile probe(*path); // checks the folder; creates nothing
    } catch (const UserError &e) {
      throw UserError(fmt::format("{}: {}", flag, e.what()));
    }
  }
  const std::string &dir = config.checkpoint_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw UserError(fmt::format("--checkpoint-dir {}: cannot create directory ({})", dir,
                                ec ? ec.message() : "exists as a file"));
  if (access(dir.c_str(), W_OK) != 0)
    throw UserError(
        fmt::format("--checkpoint-dir {}: not writable ({})", dir, std::strerror(errno)));
}

OptimizerOptions optimizer_options(const TrainConfig &c) {
  return OptimizerOptions{c.optimizer, c.momentum, c.beta1, c.beta2, c.eps, c.weight_decay};
}

LrSchedule lr_schedule(const TrainConfig &c, int64_t steps_per_epoch) {
  return LrSchedule{c.lr_schedule,  c.lr,
                    c.warmup_steps, c.lr_step_size > 0 ? c.lr_step_size : steps_per_epoch,
                    c.lr_gamma,     steps_per_epoch * c.epochs};
}

std::string save_checkpoint(const CheckpointSource &s, const TrainingPosition &position,
                            const std::vector<EpochRecord> &history, const std::string &tag) {
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
  for (const auto &[state_name, state] : s.optimizer->state()) {
    NamedTensors per_param;
    for (const ParameterSlot &slot : s.flat->slots())
      per_param.emplace_back(slot.name, FlatParameters::view_of(state, slot));
    c.optimizer_state.emplace_back(state_name, std::move(per_param));
  }
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
                     const std::string &path, const std::string &fingerprint) {
  const std::string refusal = resume_refusal(c, {spec, config.seed, config.optimizer, fingerprint});
  if (!refusal.empty())
    throw UserError(fmt::format("--resume {}: {}", path, refusal));
}
} // namespace

std::unique_ptr<ResumePoint> find_resume_point(const TrainConfig &config, const ModelSpec &spec,
                                               const std::string &fingerprint) {
  if (config.resume.empty())
    return nullptr;
  auto point = std::make_unique<ResumePoint>();
  if (config.resume != "auto") {
    point->path = config.resume;
    point->contents = read_checkpoint(config.resume); // UserError names the file and problem
    check_resumable(point->contents, spec, config, point->path, fingerprint);
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
    check_resumable(point->contents, spec, config, point->path, fingerprint);
    return point;
  }
  log_info("--resume auto: no checkpoint in {}; starting from the beginning",
           config.checkpoint_dir);
  return nullptr;
}

std::string describe_frozen(const Model &model) {
  const NamedTensors frozen = frozen_parameters(model);
  if (frozen.empty())
    return "";
  int64_t values = 0;
  std::vector<std::string> names;
  for (const auto &[name, t] : frozen) {
    values += t.numel();
    if (names.size() < 3)
      names.push_back(name);
  }
  return fmt::format(" trained, {} frozen in {} tensors: {}{}", values, frozen.size(),
                     fmt::join(names, ", "), frozen.size() > names.size() ? ", ..." : "");
}

LossSpec loss_spec(const TrainConfig &config) {
  return LossSpec{config.loss, config.label_smoothing};
}

void check_model_fits(Model &model, const ModelSpec &spec, const LossSpec &loss,
                      const Dataset &data) {
  const std::vector<int64_t> first{0, std::min<int64_t>(1, data.size() - 1)};
  const Batch batch = data.get(first);
  hetrain::check_model_fits(model, spec.label(), loss, batch.inputs, batch.targets,
                            data.meta().class_labels() ? data.meta().num_classes : 0);
}

ProbeExample probe_example(const TrainConfig &config) {
  const Dataset data(data_source(config), DataResidency::Stream);
  const Batch one = data.get(std::vector<int64_t>{0});
  return ProbeExample{loss_spec(config), one.inputs, one.targets,
                      data.meta().class_labels() ? data.meta().num_classes : 0};
}

TrainingPosition start_of_epoch(const TrainingPosition &current, const TrainingPosition &resumed,
                                int64_t epoch, int64_t n) {
  TrainingPosition p = current;
  const bool resumed_here = epoch == resumed.epoch;
  p.epoch = epoch;
  p.epoch_position = resumed_here ? std::min(resumed.epoch_position, n) : 0;
  p.round = resumed_here ? resumed.round : 0;
  return p;
}

TrainingPosition restore_training(const ResumePoint &resume, Model &model, FlatParameters &flat,
                                  Optimizer &optimizer, TrainSummary &summary) {
  const CheckpointContents &c = resume.contents;
  load_model_state(c, model, resume.path);
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (const auto &[state_name, per_param] : c.optimizer_state) {
    torch::Tensor flat_state = torch::zeros_like(flat.params());
    for (const ParameterSlot &slot : flat.slots()) {
      auto it = std::find_if(per_param.begin(), per_param.end(),
                             [&](const auto &p) { return p.first == slot.name; });
      if (it == per_param.end() || it->second.numel() != slot.numel)
        throw UserError(fmt::format("--resume {}: optimizer state {}/{} is missing or has the "
                                    "wrong size",
                                    resume.path, state_name, slot.name));
      flat_state.narrow(0, slot.offset, slot.numel).copy_(it->second.reshape({slot.numel}));
    }
    state.emplace_back(state_name, flat_state);
  }
  optimizer.load_state(state, c.optimizer_steps);
  summary.history = c.epochs;
  for (const EpochRecord &r : c.epochs)
    summary.epoch_seconds.push_back(r.seconds);
  summary.final_checkpoint = resume.path;
  summary.resumed_step = c.position.global_step;
  log_info("resuming from {}: epoch {}, {} samples into it, step {}", resume.path,
           c.position.epoch + 1, c.position.epoch_position, c.position.global_step);
  return c.position;
}

std::unique_ptr<Dataset> open_test_data(const TrainConfig &config, const DatasetMeta &train,
                                        const Normalization &normalization) {
  if (config.test_data.empty())
    return nullptr;
  const DatasetMeta t = read_dataset_meta(config.test_data);
  if (t.sample_shape != train.sample_shape || t.float_inputs != train.float_inputs ||
      t.num_classes != train.num_classes || t.target_shape != train.target_shape)
    throw UserError(fmt::format("--test-data {} has samples of {} with {}, but the training "
                                "data {} has samples of {} with {}",
                                t.path, t.shape_string(), t.describe_targets(), train.path,
                                train.shape_string(), train.describe_targets()));
  return std::make_unique<Dataset>(config.test_data, config.data_residency, normalization);
}

void finish_epoch(const EpochTotals &totals, Model &model, const LossSpec &loss,
                  const Dataset *test, int64_t epochs, TrainSummary &summary) {
  EpochRecord record;
  record.epoch = totals.epoch + 1;
  record.samples = totals.samples;
  record.train_loss = totals.loss_sum / static_cast<double>(totals.samples);
  // Accuracy means something for class labels only; NaN (null in JSON) otherwise.
  const double no_accuracy = std::numeric_limits<double>::quiet_NaN();
  record.train_accuracy = totals.class_labels ? static_cast<double>(totals.correct) /
                                                    static_cast<double>(totals.samples)
                                              : no_accuracy;
  record.seconds = totals.seconds;
  record.samples_per_sec = static_cast<double>(totals.samples) / totals.seconds;
  if (test != nullptr) {
    EvalResult eval = evaluate(model, loss, *test);
    record.test_loss = eval.loss;
    record.test_accuracy = totals.class_labels ? eval.accuracy : no_accuracy;
  }
  summary.history.push_back(record);
  summary.epoch_seconds.push_back(record.seconds);
  const bool acc = totals.class_labels;
  log_info("epoch {}/{} done in {:.1f} s ({:.0f} samples/s) | train loss {:.4f}{}{}", record.epoch,
           epochs, record.seconds, record.samples_per_sec, record.train_loss,
           acc ? fmt::format(" acc {:.4f}", record.train_accuracy) : std::string(),
           test ? fmt::format(" | test loss {:.4f}{}", record.test_loss,
                              acc ? fmt::format(" accuracy {:.4f}", record.test_accuracy) : "")
                : std::string());
}

nlohmann::json epoch_metrics(const EpochRecord &r) {
  nlohmann::json j{{"type", "epoch"},
                   {"epoch", r.epoch},
                   {"samples", r.samples},
                   {"train_loss", r.train_loss},
                   {"train_accuracy", r.train_accuracy},
                   {"seconds", r.seconds},
                   {"samples_per_sec", r.samples_per_sec}};
  if (r.test_loss >= 0) {
    j["test_loss"] = r.test_loss;
    j["test_accuracy"] = r.test_accuracy;
  }
  return j;
}

void finish_run(const TrainConfig &config, const TrainingPosition &position,
                TrainSummary &summary) {
  summary.steps = position.global_step;
  summary.samples = position.samples_seen;
  const double train_seconds =
      std::accumulate(summary.epoch_seconds.begin(), summary.epoch_seconds.end(), 0.0);
  summary.samples_per_sec = static_cast<double>(position.samples_seen) / train_seconds;
  summary.final_train_loss = summary.history.back().train_loss;
  summary.test_accuracy = summary.history.back().test_accuracy;
  summary.test_loss = summary.history.back().test_loss;
  log_info("finished: {} steps, {:.0f} samples/s, final checkpoint {}", summary.steps,
           summary.samples_per_sec, summary.final_checkpoint);
  if (!config.summary_json.empty())
    write_text_file_atomically(config.summary_json, summary_to_json(summary) + "\n");
}

} // namespace hetrain::run
