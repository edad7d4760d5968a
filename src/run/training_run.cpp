#include "hetrain/run/training_run.h"
#include "hetrain/train/amp.h"

#include "run_support.h"

#include "hetrain/checkpoint/checkpoint.h"
#include "hetrain/common/atomic_file.h"
#include "hetrain/common/error.h"
#include "hetrain/common/log.h"
#include "hetrain/common/signals.h"
#include "hetrain/common/system_info.h"
#include "hetrain/data/dataset.h"
#include "hetrain/model/models.h"
#include "hetrain/observe/metrics.h"
#include "hetrain/observe/timeline.h"
#include "hetrain/train/compute.h"
#include "hetrain/train/flat_parameters.h"
#include "hetrain/train/optimizer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

namespace hetrain {
namespace fs = std::filesystem;
using namespace run;

TrainSummary run_local_training(const TrainConfig &config) {
  validate(config);
  if (config.aggregators > 1)
    throw UserError(fmt::format("--aggregators {}: sharded aggregation needs an MPI job of at "
                                "least {} ranks (mpirun -np {} ...)",
                                config.aggregators, config.aggregators + 1,
                                config.aggregators + 1));
  const int threads = config.threads > 0 ? config.threads : usable_cores();
  torch::set_num_threads(threads);
  const torch::Device device = choose_device(config.device);
  prepare_outputs(config);

  // --- data ------------------------------------------------------------------------------
  Dataset train(config.data, parse_residency(config.data_residency));
  const DatasetMeta &meta = train.meta();
  std::unique_ptr<Dataset> test = open_test_data(config, meta, train.normalization());
  const int64_t n = config.limit_train_samples > 0
                        ? std::min(config.limit_train_samples, train.size())
                        : train.size();
  const int64_t G = config.global_batch, m = config.micro_batch;
  const int64_t steps_per_epoch = (n + G - 1) / G;

  // --- model, flat buffers, optimizer -------------------------------------------------------
  torch::manual_seed(config.seed); // every rank builds the same initial model from the seed
  ModelSpec spec{config.model, meta.channels, meta.height, meta.width, meta.num_classes};
  std::shared_ptr<Classifier> model = make_model(spec);
  model->to(device);
  FlatParameters flat(*model);
  Optimizer optimizer(optimizer_options(config), flat.numel(), device);
  const LrSchedule schedule = lr_schedule(config, steps_per_epoch);
  MixedPrecision amp(config.amp, device);
  amp.set_fault_oom_above(config.fault_oom_above);

  log_info("model {} ({} parameters) on {}, {} threads; data {} ({} samples of {}, {}{})",
           spec.name, flat.numel(), device.str(), threads, meta.path, n, meta.shape_string(),
           meta.num_classes, train.in_memory() ? " classes, in memory" : " classes, streamed");
  log_info("global batch {} = {} micro-batches of {}; {} steps per epoch; optimizer {} lr {} "
           "({} schedule)",
           G, G / m, m, steps_per_epoch, config.optimizer, config.lr, config.lr_schedule);
  if (amp.enabled())
    log_info("mixed precision: {}", amp.describe());

  TrainSummary summary;
  summary.model = spec.name;
  summary.epochs = config.epochs;
  summary.aggregator_device = device.str();
  summary.amp = config.amp;
  TrainingPosition position;
  // --resume: the finished epochs, the position in the current one, parameters and optimizer.
  if (auto resume = find_resume_point(config, spec))
    position = restore_training(*resume, *model, flat, optimizer, summary);
  const TrainingPosition resumed = position;

  CheckpointSource source{
      &config, spec, train.normalization(), model.get(), &flat, &optimizer, &schedule, 1, {}};
  source.reports = {nlohmann::json{
      {"rank", 0},
      {"host", process_identity().host},
      {"role", "single process"},
      {"device", device.str()},
      {"threads",
       threads}}.dump()};
  // --metrics and --timeline: one process is rank 0 and its only "trainer".
  MetricsFile metrics = config.metrics.empty() ? MetricsFile() : MetricsFile(config.metrics);
  Timeline timeline(!config.timeline.empty());
  auto save = [&](const std::string &tag) {
    ScopedSpan span(timeline, Span::kCheckpoint);
    return save_checkpoint(source, position, summary.history, tag);
  };
  auto write_timeline = [&] {
    if (timeline.enabled())
      timeline.write(config.timeline,
                     {fmt::format("rank 0 ({}) single process", process_identity().host)});
  };

  // --- the loop: epochs of rounds; one round = one optimizer step over G samples -------------
  const auto run_start = Clock::now();
  auto last_progress = Clock::now();
  for (int64_t epoch = resumed.epoch; epoch < config.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    const std::vector<int64_t> order = epoch_permutation(config.seed, epoch, n);
    // A resumed epoch goes on from the saved position; its record covers this part only.
    position = start_of_epoch(position, resumed, epoch, n);
    const int64_t first = position.epoch_position;
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t start = first; start < n; start += G) {
      const int64_t count = std::min(G, n - start);
      const auto round_start = Clock::now();
      ScopedSpan compute_span(timeline, Span::kCompute, position.global_step + 1);
      ComputeStats stats = amp.gradients(*model, train, order.data() + start, count, m, flat);
      compute_span.end();
      const double compute_seconds = seconds_since(round_start);
      const auto step_start = Clock::now();
      {
        ScopedSpan step_span(timeline, Span::kStep, position.global_step + 1);
        // Mean over the samples of this step: the exact gradient of the global batch.
        flat.grads().mul_(1.0 / static_cast<double>(count));
        torch::Tensor params = flat.params();
        optimizer.step(params, flat.grads(), learning_rate(schedule, position.global_step));
      }
      const double step_seconds = seconds_since(step_start),
                   round_seconds = seconds_since(round_start);
      if (metrics.enabled()) // the record is built only when it is written
        metrics.write({{"type", "round"},
                       {"round", position.round + 1},
                       {"step", position.global_step + 1},
                       {"epoch", epoch + 1},
                       {"time", seconds_since(run_start)},
                       {"seconds", round_seconds},
                       {"samples", count},
                       {"samples_per_sec", static_cast<double>(count) / round_seconds},
                       {"loss", stats.loss_sum / static_cast<double>(count)},
                       {"lr", learning_rate(schedule, position.global_step)},
                       {"shares", {{"0", G / m}}},
                       {"trainers",
                        {{{"rank", 0},
                          {"host", process_identity().host},
                          {"samples", count},
                          {"compute_seconds", compute_seconds},
                          {"wait_seconds", 0.0},
                          {"micro_batch", amp.micro_batch(m)}}}},
                       {"aggregator",
                        {{"receive_seconds", 0.0},
                         {"reduce_seconds", 0.0},
                         {"step_seconds", step_seconds},
                         {"broadcast_seconds", 0.0}}},
                       {"bytes", 0}});
      loss_sum += stats.loss_sum;
      correct += stats.correct;
      position.epoch_position = start + count;
      position.round += 1;
      position.global_step += 1;
      position.samples_seen += count;

      if (seconds_since(last_progress) >= config.progress_seconds) {
        last_progress = Clock::now();
        double elapsed = seconds_since(run_start);
        double rate = static_cast<double>(position.samples_seen - resumed.samples_seen) / elapsed;
        double remaining = static_cast<double>(n * config.epochs - position.samples_seen) / rate;
        log_info("epoch {}/{} step {}/{} | {:.0f} samples/s | loss {:.4f} | ETA {}", epoch + 1,
                 config.epochs, position.round, steps_per_epoch, rate,
                 stats.loss_sum / static_cast<double>(count), format_duration(remaining));
      }
      if (config.checkpoint_every > 0 && position.global_step % config.checkpoint_every == 0 &&
          start + count < n)
        save("step");
      if (const int signal = stop_signal(); signal != 0 && start + count < n) {
        summary.final_checkpoint = save("signal");
        summary.stopped_by_signal = signal;
        log_warn("{}: stopped after step {} (epoch {}), wrote {}; continue with --resume auto",
                 signal_name(signal), position.global_step, epoch + 1, summary.final_checkpoint);
        write_timeline();
        return summary;
      }
    }

    // Training time only: evaluation is not part of the epoch's seconds.
    {
      ScopedSpan span(timeline, Span::kEvaluate);
      finish_epoch({epoch, n - first, loss_sum, correct, seconds_since(epoch_start)}, *model,
                   test.get(), config.epochs, summary);
    }
    metrics.write(epoch_metrics(summary.history.back()));
    // Position after a finished epoch: the start of the next one.
    position.epoch = epoch + 1;
    position.epoch_position = 0;
    position.round = 0;
    summary.final_checkpoint = save("epoch");
    if (const int signal = stop_signal(); signal != 0 && epoch + 1 < config.epochs) {
      summary.stopped_by_signal = signal;
      log_warn("{}: stopped after epoch {}, wrote {}; continue with --resume auto",
               signal_name(signal), epoch + 1, summary.final_checkpoint);
      write_timeline();
      return summary;
    }
  }

  write_timeline();
  finish_run(config, position, summary);
  return summary;
}

std::string summary_to_json(const TrainSummary &s) {
  nlohmann::json history = nlohmann::json::array();
  for (const EpochRecord &r : s.history)
    history.push_back({{"epoch", r.epoch},
                       {"samples", r.samples},
                       {"train_loss", r.train_loss},
                       {"train_accuracy", r.train_accuracy},
                       {"test_loss", r.test_loss},
                       {"test_accuracy", r.test_accuracy},
                       {"seconds", r.seconds},
                       {"samples_per_sec", r.samples_per_sec}});
  nlohmann::json j{{"world_size", s.world_size},
                   {"model", s.model},
                   {"aggregator_device", s.aggregator_device},
                   {"amp", s.amp},
                   {"aggregators", s.aggregators},
                   {"epochs", s.epochs},
                   {"steps", s.steps},
                   {"samples", s.samples},
                   {"samples_per_sec", s.samples_per_sec},
                   {"epoch_seconds", s.epoch_seconds},
                   {"test_accuracy", s.test_accuracy},
                   {"test_loss", s.test_loss},
                   {"final_train_loss", s.final_train_loss},
                   {"final_checkpoint", s.final_checkpoint},
                   {"history", history}};
  if (!s.trainers.empty()) {
    nlohmann::json trainers = nlohmann::json::array();
    for (const TrainerSummary &t : s.trainers)
      trainers.push_back({{"rank", t.rank},
                          {"host", t.host},
                          {"share", t.micro_batches},
                          {"samples", t.samples},
                          {"compute_seconds", t.compute_seconds},
                          {"wait_seconds", t.wait_seconds},
                          {"micro_batch", t.micro_batch},
                          {"lost", t.lost}});
    j["trainers"] = trainers;
    j["plan_history"] = s.plan_history;
    j["lost_trainers"] = s.lost_trainers;
  }
  return j.dump(2);
}

} // namespace hetrain
