#include "hetrain/cli/cli.h"

#include "hetrain/checkpoint/checkpoint.h"
#include "hetrain/cluster/node_report.h"
#include "hetrain/cluster/training_probe.h"
#include "hetrain/comm/heartbeat.h"
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/common/error.h"
#include "hetrain/common/faults.h"
#include "hetrain/common/log.h"
#include "hetrain/common/signals.h"
#include "hetrain/common/system_info.h"
#include "hetrain/config/config.h"
#include "hetrain/config/options.h"
#include "hetrain/config/train_flags.h"
#include "hetrain/data/dataset.h"
#include "hetrain/data/dataset_file.h"
#include "hetrain/data/image_folder.h"
#include "hetrain/data/image_set.h"
#include "hetrain/model/models.h"
#include "hetrain/run/distributed_evaluate.h"
#include "hetrain/run/join.h"
#include "hetrain/run/training_run.h"
#include "hetrain/train/compute.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <type_traits>

namespace hetrain {
namespace {

// How many processes the launcher started (mpirun/srun export it to every rank); 1 when none.
// `srun --mpi=pmix` sets PMIX_RANK but no size variable: there the step's task count (the total
// over a heterogeneous job's components) is the world size.
int launched_world_size() {
  for (const char *name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char *value = std::getenv(name))
      return std::max(1, std::atoi(value));
  if (std::getenv("PMIX_RANK") || std::getenv("PMI_RANK"))
    if (const char *tasks = std::getenv("SLURM_STEP_NUM_TASKS"))
      return std::max(1, std::atoi(tasks));
  return 1;
}

// `mpirun --enable-recovery` exits 0 whatever its ranks return (Open MPI 4.1), so rank 0 also
// writes its exit code to $HETRAIN_EXIT_CODE_FILE when set; scripts/mpirun-hetrain.sh returns it.
int record_exit_code(int rank, int code) {
  const char *path = std::getenv("HETRAIN_EXIT_CODE_FILE");
  if (rank == 0 && path && *path)
    std::ofstream(path) << code << '\n';
  return code;
}

// A finished run's exit code from its summary (rank 0's or the one process's), after printing the
// result line. Trainers of a job end with 0 once told to stop.
int run_exit_code(const TrainSummary &summary) {
  if (summary.stopped_by_signal != 0)
    return kExitStopped;
  if (summary.test_accuracy >= 0)
    fmt::print("test accuracy {:.4f} (loss {:.4f}) after {} epochs, {:.0f} samples/s\n",
               summary.test_accuracy, summary.test_loss, summary.epochs, summary.samples_per_sec);
  else if (summary.test_loss >= 0) // float targets: no accuracy
    fmt::print("test loss {:.6f} after {} epochs, {:.0f} samples/s\n", summary.test_loss,
               summary.epochs, summary.samples_per_sec);
  if (!summary.lost_trainers.empty()) {
    log_warn("completed without {} lost trainer(s): {}", summary.lost_trainers.size(),
             fmt::join(summary.lost_trainers, "; "));
    return kExitTrainersLost;
  }
  return kExitOk;
}

int cmd_train(const TrainConfig &config, const FaultPlan &faults, int argc, char **argv) {
  arm_faults(faults); // testing only; an empty plan (every real run) arms nothing
  if (config.deterministic)
    use_deterministic_kernels(); // before the node probe's first CUDA call
  if (launched_world_size() > 1) {
    MpiSession mpi(&argc, &argv, /*ranks_may_leave=*/true); // planned leaves, lost trainers
    install_stop_handlers();                                // after MPI_Init, so that ours win
    if (mpi.size() > 1) {
      const int rank = mpi.rank();
      auto abort_job = [&](int code) {
        record_exit_code(rank, code);
        std::fflush(nullptr);
        MPI_Abort(MPI_COMM_WORLD, code);
      };
      try {
        const TrainSummary summary = run_distributed_training(config);
        const int code = record_exit_code(rank, rank == 0 ? run_exit_code(summary) : kExitOk);
        mpi.finalize(code, config.straggler_timeout);
        return code;
      } catch (const RoundAbandoned &e) {
        log_warn("{}", e.what());
        abort_job(kExitStopped);
      } catch (const LeaderLost &e) {
        // Rank 0 is gone: nobody is left to end the job in order, and each rank finds this on
        // its own within the heartbeat's limit. Leave, rather than MPI_Abort into a dead rank.
        log_error("{}; this rank leaves the job", e.what());
        std::fflush(nullptr);
        std::_Exit(kExitPeerLost);
      } catch (const PeerTimeout &e) {
        // A peer is gone or hung: say who, then end the whole job rather than wait in MPI.
        if (rank != 0 && config.on_trainer_loss == TrainerLoss::kContinue) {
          // Rank 0 may have dropped this trainer and be going on without it (the launcher keeps
          // the job alive, --enable-recovery): leave alone rather than abort everyone. When rank
          // 0 is the one gone, every trainer reaches this on its own deadline.
          log_error("{}; this trainer leaves the job", e.what());
          std::fflush(nullptr);
          std::_Exit(kExitPeerLost);
        }
        log_error("{}; ending the job", e.what());
        abort_job(kExitPeerLost);
      } catch (const UserError &e) {
        log_error("{}", e.what());
        abort_job(kExitBadInput);
      } catch (const std::exception &e) {
        log_error("{}", first_line(e.what()));
        abort_job(kExitInternal);
      }
      return kExitInternal;
    }
  }
  install_stop_handlers();
  return run_exit_code(run_local_training(config));
}

// The node report plus the training probe (what the plan uses) for a model and micro-batch; the
// input shape comes from --data when given, else Fashion-MNIST's 1x28x28 with 10 classes.
int cmd_bench(bool json, double seconds, const std::string &model, int64_t micro_batch,
              const std::string &data, DeviceChoice device_choice) {
  torch::set_num_threads(usable_cores());
  NodeReport report = probe_node();
  run_cpu_benchmarks(report, seconds);
  run_gpu_benchmarks(report, -1, seconds / 2); // every visible GPU; nothing without one
  ModelSpec spec{model, 1, 28, 28, 10};
  // Without data: random Fashion-MNIST-shaped images with label 0, cross-entropy.
  ProbeExample example{LossSpec{}, torch::randn({1, 1, 28, 28}), torch::zeros({1}, torch::kInt64),
                       10};
  if (!data.empty()) {
    const Dataset d(data, DataResidency::Stream);
    const DatasetMeta &m = d.meta();
    spec = ModelSpec{model, m.channels, m.height, m.width, m.outputs()};
    const Batch one = d.get(std::vector<int64_t>{0});
    example = ProbeExample{LossSpec{m.class_labels() ? LossKind::kCrossEntropy : LossKind::kMse},
                           one.inputs, one.targets, m.class_labels() ? m.num_classes : 0};
  }
  const torch::Device device = device_choice == DeviceChoice::kCpu || !torch::cuda::is_available()
                                   ? torch::Device(torch::kCPU)
                                   : torch::Device(torch::kCUDA, 0);
  if (device_choice == DeviceChoice::kCuda && device.is_cpu())
    throw UserError("--device cuda: no CUDA device is visible to this LibTorch build");
  const ProbeResult probe = run_training_probe(spec, example, micro_batch, device, seconds * 1.5);
  if (json) {
    nlohmann::json j = nlohmann::json::parse(report_to_json(report));
    j["training_probe"] = {
        {"model", model},
        {"input", fmt::format("{}x{}x{}", spec.in_channels, spec.height, spec.width)},
        {"micro_batch", micro_batch},
        {"device", device.str()},
        {"samples_per_sec", probe.samples_per_sec},
        {"estimated_bytes", probe.peak_bytes}};
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("{}", report_to_text(report));
    fmt::print("  {:<16} {:.0f} samples/s ({} on {}x{}x{}, micro-batch {}, {}); ~{:.0f} MiB\n",
               "training probe", probe.samples_per_sec, model, spec.in_channels, spec.height,
               spec.width, micro_batch, device.str(), probe.peak_bytes / (1 << 20));
  }
  return kExitOk;
}

nlohmann::json meta_to_json(const DatasetMeta &m) {
  return {{"path", m.path},
          {"count", m.count},
          {"channels", m.channels},
          {"height", m.height},
          {"width", m.width},
          {"sample_shape", m.sample_shape},
          {"inputs_dtype", m.float_inputs ? "float32" : "uint8"},
          {"num_classes", m.num_classes},
          {"target_shape", m.target_shape},
          {"class_names", m.class_names},
          {"mean", m.mean},
          {"std", m.std},
          {"source", m.source}};
}

int cmd_data_info(const std::string &path, bool json) {
  DatasetMeta m = read_dataset_meta(path);
  if (json) {
    fmt::print("{}\n", meta_to_json(m).dump(2));
    return kExitOk;
  }
  fmt::print("{}: {} samples of {} ({}), {}\n", m.path, m.count, m.shape_string(),
             m.float_inputs ? "float32" : "uint8", m.describe_targets());
  std::string names;
  for (const auto &n : m.class_names)
    names += (names.empty() ? "" : ", ") + n;
  fmt::print("  classes: {}\n  mean: {}  std: {}\n  source: {}\n", names, fmt::join(m.mean, ", "),
             fmt::join(m.std, ", "), m.source);
  return kExitOk;
}

void apply_class_names(ImageSet &set, const std::vector<std::string> &names) {
  if (names.empty())
    return;
  if (names.size() < set.class_names.size())
    throw UserError(fmt::format("--class-names: {} names given but the labels need {}",
                                names.size(), set.class_names.size()));
  set.class_names = names;
}

int cmd_inspect(const std::string &path, bool json) {
  CheckpointContents c = read_checkpoint(path);
  nlohmann::json params = nlohmann::json::array(), buffers = nlohmann::json::array();
  int64_t total = 0;
  for (const auto &[name, t] : c.params) {
    params.push_back({{"name", name}, {"shape", t.sizes().vec()}});
    total += t.numel();
  }
  for (const auto &[name, t] : c.buffers)
    buffers.push_back({{"name", name}, {"shape", t.sizes().vec()}});
  const nlohmann::json epochs = c.epochs; // train/records.h: the one JSON form of an epoch
  nlohmann::json state_names = nlohmann::json::array();
  for (const auto &s : c.optimizer_state)
    state_names.push_back(s.first);
  // The link probe's figures travel with the trainers' reports (DESIGN §3).
  nlohmann::json links = nlohmann::json::array();
  for (const std::string &report : c.cluster_reports) {
    const nlohmann::json r = nlohmann::json::parse(report, nullptr, false);
    if (r.is_object() && r.contains("links") && r["links"].is_array())
      for (const auto &l : r["links"])
        links.push_back(l);
  }
  nlohmann::json j{
      {"path", path},
      {"model", c.model.label()},
      {"model_fingerprint", c.model_fingerprint},
      {"frozen", c.frozen.size()},
      {"input", fmt::format("{}x{}x{}", c.model.in_channels, c.model.height, c.model.width)},
      {"num_classes", c.model.num_classes},
      {"parameters", total},
      {"epoch", c.position.epoch},
      {"epoch_position", c.position.epoch_position},
      {"global_step", c.position.global_step},
      {"samples_seen", c.position.samples_seen},
      {"seed", c.seed},
      {"sync_mode", c.sync_mode},
      {"world_size", c.world_size},
      {"optimizer",
       {{"kind", c.optimizer.kind},
        {"lr", c.learning_rate},
        {"step", c.optimizer_steps},
        {"state", state_names}}},
      {"params", params},
      {"buffers", buffers},
      {"cluster_reports", c.cluster_reports.size()},
      {"links", links},
      {"epochs", epochs},
      {"config", nlohmann::json::parse(c.config_json, nullptr, false)}};
  // --sync params/diloco: each trainer's own optimizer (DESIGN §8, "Trainer optimizers").
  nlohmann::json trainer_steps = nlohmann::json::object();
  for (const TrainerOptimizerContents &t : c.trainer_optimizers)
    trainer_steps[fmt::format("rank{}", t.rank)] = t.steps;
  j["trainer_optimizers"] = {{"kind", c.trainer_optimizer_kind}, {"steps", trainer_steps}};
  if (json) {
    fmt::print("{}\n", j.dump(2));
    return kExitOk;
  }
  fmt::print("{}: hetrain checkpoint of model {} (fingerprint {}; {} parameters, input {}, {} "
             "outputs per sample)\n",
             path, c.model.label(), c.model_fingerprint, total, j["input"].get<std::string>(),
             c.model.num_classes);
  fmt::print("  position: epoch {} (+{} samples), step {}, {} samples seen; seed {}, sync {}, "
             "world size {}\n",
             c.position.epoch, c.position.epoch_position, c.position.global_step,
             c.position.samples_seen, c.seed, c.sync_mode, c.world_size);
  fmt::print("  optimizer: {} lr {} after {} steps, state: {}\n", c.optimizer.kind, c.learning_rate,
             c.optimizer_steps, state_names.dump());
  if (!c.trainer_optimizers.empty())
    fmt::print("  trainer optimizers: {}, steps by trainer {}\n", c.trainer_optimizer_kind,
               trainer_steps.dump());
  for (const auto &[name, t] : c.params)
    fmt::print("  /params/{:<28} {}\n", name, nlohmann::json(t.sizes().vec()).dump());
  for (const auto &[name, t] : c.buffers)
    fmt::print("  /buffers/{:<27} {}\n", name, nlohmann::json(t.sizes().vec()).dump());
  for (const auto &[name, t] : c.frozen)
    fmt::print("  /frozen/{:<28} {}\n", name, nlohmann::json(t.sizes().vec()).dump());
  for (const auto &l : links)
    fmt::print("  link: trainer rank {} -> aggregator rank {}: {:.3f} ms, up {:.1f} MB/s, down "
               "{:.1f} MB/s, {}-byte messages{}\n",
               l.value("trainer_rank", -1), l.value("aggregator_rank", -1),
               l.value("latency_ms", 0.0), l.value("up_mb_per_s", 0.0),
               l.value("down_mb_per_s", 0.0), l.value("message_bytes", int64_t{0}),
               l.value("same_host", false) ? ", same host" : "");
  for (const EpochRecord &r : c.epochs)
    fmt::print("  epoch {}: train loss {:.4f}, test accuracy {:.4f}, {:.1f} s, {:.0f} samples/s\n",
               r.epoch, r.train_loss, r.test_accuracy, r.seconds, r.samples_per_sec);
  return kExitOk;
}

namespace {
// evaluate --model / --model-plugin: where the checkpoint's model now is (a moved TorchScript file
// or plugin); it must be the same model (fingerprint).
std::shared_ptr<Model> model_for(CheckpointContents &c, const std::string &model,
                                 const std::string &plugin, const std::string &checkpoint) {
  if (!plugin.empty()) {
    c.model.plugin = plugin;
  } else if (!model.empty()) {
    c.model.name = model;
    c.model.plugin.clear();
  }
  std::shared_ptr<Model> built = make_model(c.model);
  const std::string fingerprint = model_fingerprint(*built, c.model);
  if (!c.model_fingerprint.empty() && fingerprint != c.model_fingerprint)
    throw UserError(fmt::format("{} holds model fingerprint {}, but {} is another model "
                                "(fingerprint {})",
                                checkpoint, c.model_fingerprint, c.model.label(), fingerprint));
  return built;
}
} // namespace

int cmd_evaluate(const std::string &checkpoint, const std::string &data, bool json, int threads,
                 const std::string &model_override, const std::string &plugin_override,
                 MpiSession *mpi) {
  torch::set_num_threads(threads > 0 ? threads : usable_cores());
  CheckpointContents c = read_checkpoint(checkpoint);
  const DatasetMeta m = read_dataset_meta(data);
  if (m.channels != c.model.in_channels || m.height != c.model.height || m.width != c.model.width ||
      m.outputs() != c.model.num_classes)
    throw UserError(fmt::format("{} has samples of {} with {} outputs, but checkpoint {} was "
                                "trained on {}x{}x{} with {} outputs",
                                data, m.shape_string(), m.outputs(), checkpoint,
                                c.model.in_channels, c.model.height, c.model.width,
                                c.model.num_classes));
  Dataset dataset(data, DataResidency::Auto, Normalization{c.norm_mean, c.norm_std});
  std::shared_ptr<Model> model = model_for(c, model_override, plugin_override, checkpoint);
  load_model_state(c, *model, checkpoint);
  // The loss the model was trained with (the checkpoint's config), for the reported loss.
  TrainConfig trained;
  const nlohmann::json config_json = nlohmann::json::parse(c.config_json, nullptr, false);
  if (config_json.is_object())
    from_json(config_json, trained);
  const LossSpec loss{trained.loss, trained.label_smoothing};
  EvalResult r;
  if (mpi && mpi->size() > 1) {
    // Under mpirun: the set split over the ranks by measured speed; rank 0 prints.
    const DistributedEvaluation d = evaluate_distributed(*model, loss, dataset, 120);
    if (mpi->rank() != 0)
      return kExitOk;
    std::string split;
    for (size_t i = 0; i < d.shares.size(); ++i)
      split += fmt::format("{}rank {} {} samples ({:.0f}/s)", i ? ", " : "", i, d.shares[i],
                           d.speeds[i]);
    // To stderr: stdout carries the result (JSON with --json).
    fmt::print(stderr, "evaluate: {}\n", split);
    r = d.result;
  } else {
    r = evaluate(*model, loss, dataset);
  }
  // Accuracy for class labels only (null in JSON, left out of the line otherwise).
  const bool labels = m.class_labels();
  if (json)
    fmt::print("{}\n", nlohmann::json{{"checkpoint", checkpoint},
                                      {"data", data},
                                      {"samples", r.samples},
                                      {"accuracy", labels ? nlohmann::json(r.accuracy) : nullptr},
                                      {"loss", r.loss}}
                           .dump(2));
  else
    fmt::print("{} on {}: {}loss {:.4f} ({} samples)\n", checkpoint, data,
               labels ? fmt::format("accuracy {:.4f}, ", r.accuracy) : "", r.loss, r.samples);
  return kExitOk;
}

// What the command line fills: each subcommand (null until added) and its options' variables.
struct Commands {
  CLI::App *train = nullptr, *bench = nullptr, *import_idx = nullptr, *import_cifar = nullptr,
           *import_images = nullptr, *info = nullptr, *inspect = nullptr, *evaluate = nullptr,
           *join = nullptr;
  std::string join_file; // join: the job's --accept-joins file
  DeviceChoice join_device = DeviceChoice::kAuto;
  int join_threads = 0;
  TrainConfig config;
  FaultPlan faults;        // train's testing-only options
  std::string config_path; // train --config: expanded before parsing (expand_config_file)
  bool json = false;
  double bench_seconds = 1.0;
  std::string bench_model = "cnn", bench_data;
  DeviceChoice bench_device = DeviceChoice::kAuto;
  int64_t bench_micro_batch = 32;
  std::string images, labels, out, info_path, checkpoint_path, eval_data, eval_model, eval_plugin;
  std::vector<std::string> inputs, class_names;
  int eval_threads = 0;
  ImageFolderOptions folder; // data import-images
  std::string image_size, val_out;
};

void add_train_command(CLI::App &app, Commands &c) {
  c.train = app.add_subcommand("train", "Train a model (one process, or under mpirun)");
  c.train->add_option("--config", c.config_path,
                      "Read options from a TOML/INI file (keys are the long flag names)");
  add_train_options(*c.train, c.config, c.faults);
}

void add_join_command(CLI::App &app, Commands &c) {
  c.join = app.add_subcommand("join", "Add this machine's trainer to a running job (under "
                                      "mpirun --ompi-server; the job ran --accept-joins FILE)");
  c.join->add_option("file", c.join_file, "The job's --accept-joins file")->required();
  add_named_option(*c.join, "device", c.join_device, "auto | cuda | cpu: this trainer's device");
  c.join->add_option("--threads", c.join_threads, "Torch threads (0 = this machine's cores)")
      ->check(CLI::NonNegativeNumber);
}

// The job's `hetrain train` options from its --accept-joins file, parsed as train would (its
// testing-only --fault-* and --debug-sample-log too: they name ranks, and a joiner has one).
TrainConfig joined_config(const std::string &file, DeviceChoice device, int threads,
                          FaultPlan &faults) {
  CLI::App app;
  TrainConfig config;
  add_train_options(app, config, faults);
  std::vector<std::string> args = join_command(file);
  std::reverse(args.begin(), args.end()); // CLI11 takes the arguments back to front
  try {
    app.parse(args);
  } catch (const CLI::ParseError &e) {
    throw UserError(
        fmt::format("{}: the job's options do not parse here ({})", file, first_line(e.what())));
  }
  config.device = device;
  config.threads = threads;
  validate(config);
  return config;
}

int cmd_join(const Commands &c, int argc, char **argv) {
  FaultPlan faults;
  const TrainConfig config = joined_config(c.join_file, c.join_device, c.join_threads, faults);
  arm_faults(faults);
  MpiSession mpi(&argc, &argv, /*ranks_may_leave=*/true);
  install_stop_handlers();
  int code = kExitOk;
  try {
    run_joiner(config, c.join_file);
  } catch (const UserError &e) {
    log_error("{}", e.what());
    code = kExitBadInput;
  } catch (const PeerTimeout &e) {
    log_error("{}; this joiner leaves", e.what());
    code = kExitPeerLost;
  }
  mpi.finalize(code, config.straggler_timeout);
  return code;
}

void add_bench_command(CLI::App &app, Commands &c) {
  c.bench = app.add_subcommand("bench", "Probe and benchmark this node, print its report");
  c.bench->add_flag("--json", c.json, "Print the report as JSON");
  c.bench->add_option("--seconds", c.bench_seconds, "Time cap of each benchmark")
      ->check(CLI::Range(0.05, 60.0))
      ->capture_default_str();
  c.bench->add_option("--model", c.bench_model, "Model of the training probe")
      ->check(one_of(model_names()))
      ->capture_default_str();
  c.bench->add_option("--micro-batch", c.bench_micro_batch, "Micro-batch of the training probe")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c.bench->add_option("--data", c.bench_data, "Take the probe's input shape from this dataset");
  add_named_option(*c.bench, "device", c.bench_device, "auto | cuda | cpu");
}

void add_data_commands(CLI::App &app, Commands &c) {
  auto *data = app.add_subcommand("data", "Import and describe datasets");
  data->require_subcommand(1);
  c.import_idx = data->add_subcommand("import-idx", "Convert MNIST-style IDX files to HDF5");
  c.import_idx->add_option("--images", c.images, "IDX image file (.gz or plain)")->required();
  c.import_idx->add_option("--labels", c.labels, "IDX label file (.gz or plain)")->required();
  c.import_idx->add_option("--out", c.out, "Output dataset (.h5)")->required();
  c.import_idx->add_option("--class-names", c.class_names, "Class names, comma separated")
      ->delimiter(',');
  c.import_cifar = data->add_subcommand("import-cifar", "Convert CIFAR-10 binary batches");
  c.import_cifar->add_option("--input", c.inputs, "data_batch_*.bin files, appended in order")
      ->required();
  c.import_cifar->add_option("--out", c.out, "Output dataset (.h5)")->required();
  c.import_images = data->add_subcommand(
      "import-images", "Convert a folder of class subfolders of JPEG/PNG/BMP images");
  c.import_images->add_option("dir", c.folder.dir, "DIR/<class>/<image>")->required();
  c.import_images->add_option("--size", c.image_size, "Resize every image to HxW")->required();
  c.import_images->add_option("--channels", c.folder.channels, "1 (grayscale) or 3 (RGB)")
      ->capture_default_str();
  c.import_images->add_option("--out", c.out, "Output dataset (.h5)")->required();
  c.import_images->add_option("--val-fraction", c.folder.val_fraction,
                              "Also write this fraction of each class as a validation set");
  c.import_images->add_option("--val-out", c.val_out,
                              "Validation dataset (default: --out with -val before .h5)");
  c.import_images->add_flag("--skip-bad-images", c.folder.skip_bad_images,
                            "Skip (and list) unreadable images instead of stopping");
  c.import_images->add_option("--threads", c.folder.threads, "Decoding threads (0 = usable cores)");
  c.info = data->add_subcommand("info", "Describe a dataset file");
  c.info->add_option("file", c.info_path, "Dataset (.h5)")->required();
  c.info->add_flag("--json", c.json, "Print as JSON");
}

void add_checkpoint_commands(CLI::App &app, Commands &c) {
  c.inspect = app.add_subcommand("inspect", "Show what is in a checkpoint");
  c.inspect->add_option("checkpoint", c.checkpoint_path, "Checkpoint (.h5)")->required();
  c.inspect->add_flag("--json", c.json, "Print as JSON");
  c.evaluate = app.add_subcommand("evaluate", "Accuracy and loss of a checkpoint");
  c.evaluate->add_option("--checkpoint", c.checkpoint_path, "Checkpoint (.h5)")->required();
  c.evaluate->add_option("--data", c.eval_data, "Dataset (.h5)")->required();
  c.evaluate->add_option("--threads", c.eval_threads, "Torch threads (0 = usable cores)");
  c.evaluate->add_option("--model", c.eval_model,
                         "The checkpoint's TorchScript file, where it is now (default: the path "
                         "the checkpoint names)");
  c.evaluate->add_option("--model-plugin", c.eval_plugin,
                         "The checkpoint's plugin, LIB.so[:NAME], where it is now");
  c.evaluate->add_flag("--json", c.json, "Print as JSON");
}

// Runs the subcommand the command line chose.
int run_command(Commands &c, int argc, char **argv) {
  if (*c.train)
    return cmd_train(c.config, c.faults, argc, argv);
  if (*c.join)
    return cmd_join(c, argc, argv);
  if (*c.bench)
    return cmd_bench(c.json, c.bench_seconds, c.bench_model, c.bench_micro_batch, c.bench_data,
                     c.bench_device);
  if (*c.import_idx) {
    ImageSet set = read_idx(c.images, c.labels);
    apply_class_names(set, c.class_names);
    write_dataset_file(c.out, set);
    fmt::print("wrote {}: {} samples of {}x{}x{}, {} classes\n", c.out, set.count, set.channels,
               set.height, set.width, set.class_names.size());
    return kExitOk;
  }
  if (*c.import_cifar) {
    ImageSet set = read_cifar10(c.inputs);
    write_dataset_file(c.out, set);
    fmt::print("wrote {}: {} samples of 3x32x32, 10 classes\n", c.out, set.count);
    return kExitOk;
  }
  if (*c.import_images) {
    parse_image_size(c.image_size, c.folder.height, c.folder.width);
    c.folder.progress = true;
    fmt::print("{}\n", import_image_folder(c.folder, c.out, c.val_out));
    return kExitOk;
  }
  if (*c.info)
    return cmd_data_info(c.info_path, c.json);
  if (*c.inspect)
    return cmd_inspect(c.checkpoint_path, c.json);
  if (*c.evaluate) {
    std::unique_ptr<MpiSession> mpi; // under mpirun the ranks split the set
    if (launched_world_size() > 1)
      mpi = std::make_unique<MpiSession>(&argc, &argv);
    const int code = cmd_evaluate(c.checkpoint_path, c.eval_data, c.json, c.eval_threads,
                                  c.eval_model, c.eval_plugin, mpi.get());
    if (mpi)
      mpi->finalize(code, 120); // evaluate's own waits have 120 s deadlines too
    return code;
  }
  return kExitOk;
}

} // namespace

int run_cli(int argc, char **argv) {
  CLI::App app{"hetrain: one network trained across unequal machines"};
  app.require_subcommand(1);
  app.set_version_flag("--version", HETRAIN_VERSION);
  Commands commands;
  add_train_command(app, commands);
  add_join_command(app, commands);
  add_bench_command(app, commands);
  add_data_commands(app, commands);
  add_checkpoint_commands(app, commands);

  try {
    std::vector<std::string> args(argv, argv + argc);
    args = expand_config_file(args);
    args.erase(args.begin());                // the program name
    if (!args.empty() && args[0] == "train") // for --accept-joins, as given
      commands.config.command_line.assign(args.begin() + 1, args.end());
    std::reverse(args.begin(), args.end()); // CLI11 takes the arguments back to front
    app.parse(args);
  } catch (const UserError &e) {
    fmt::print(stderr, "hetrain: error: {}\n", e.what());
    return kExitBadInput;
  } catch (const CLI::Success &e) {
    return app.exit(e); // --help, --version
  } catch (const CLI::ParseError &e) {
    std::string name = argc > 1 ? fmt::format("hetrain {}", argv[1]) : "hetrain";
    fmt::print(stderr, "hetrain: error: {}\nRun '{} --help' for the options.\n",
               first_line(e.what()), name);
    return kExitBadInput;
  }

  try {
    return run_command(commands, argc, argv);
  } catch (const UserError &e) {
    fmt::print(stderr, "hetrain: error: {}\n", e.what());
    return kExitBadInput;
  } catch (const LibraryError &e) {
    fmt::print(stderr, "hetrain: internal error: {}\n", e.what());
    return kExitInternal;
  } catch (const std::exception &e) {
    // c10::Error carries a backtrace after the first line; the first line is the message.
    fmt::print(stderr, "hetrain: internal error: {}\n", first_line(e.what()));
    return kExitInternal;
  }
}

} // namespace hetrain
