#include "hetrain/run/training_run.h"
#include "hetrain/train/amp.h"

#include "checkpointing.h"
#include "clock.h"
#include "run_progress.h"
#include "run_records.h"
#include "train_setup.h"

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

namespace {

// The one-process run: the whole global batch on this process, one optimizer step per round.
// Read run() top to bottom; the distributed coordinator (coordinator.cpp) follows its shape.
class LocalRun {
public:
  explicit LocalRun(const TrainConfig &config);
  TrainSummary run();

private:
  void log_setup() const;
  void write_round_metrics(const ComputeStats &stats, int64_t count, int64_t epoch,
                           double compute_seconds, double step_seconds, double round_seconds);
  // SIGTERM/SIGUSR1: true when the run stops after `where` (not after the run's last step or
  // epoch); mid-epoch it writes a signal checkpoint first (the epoch's end has its own).
  bool stopped_by_signal(const std::string &where, bool mid_epoch, bool last);
  std::string save(const std::string &tag);
  void write_timeline();

  const TrainConfig &config_;
  const int threads_;
  const torch::Device device_;
  Dataset train_;
  std::unique_ptr<Dataset> test_;
  const int64_t n_, G_, m_, steps_per_epoch_;
  const ModelSpec spec_;
  const LossSpec loss_;
  std::shared_ptr<Model> model_;
  std::unique_ptr<FlatParameters> flat_;
  std::unique_ptr<Optimizer> optimizer_;
  const LrSchedule schedule_;
  MixedPrecision amp_;
  TrainSummary summary_;
  RunProgress progress_;
  CheckpointSource source_;
  MetricsFile metrics_;
  Timeline timeline_;
};

LocalRun::LocalRun(const TrainConfig &config)
    : config_(config), threads_(config.threads > 0 ? config.threads : usable_cores()),
      device_(choose_device(config.device)), train_(data_source(config), config.data_residency),
      test_(open_test_data(config, train_.meta(), train_.normalization())),
      n_(config.limit_train_samples > 0 ? std::min(config.limit_train_samples, train_.size())
                                        : train_.size()),
      G_(config.global_batch), m_(config.micro_batch), steps_per_epoch_((n_ + G_ - 1) / G_),
      spec_(spec_of(config, train_.meta())), loss_(loss_spec(config)),
      schedule_(lr_schedule(config, steps_per_epoch_)), amp_(config.amp, device_),
      progress_(config, n_, G_),
      metrics_(config.metrics.empty() ? MetricsFile() : MetricsFile(config.metrics)),
      timeline_(!config.timeline.empty()) {
  train_.set_augmentation(parse_augment(config.augment));
  torch::manual_seed(config.seed); // every rank builds the same initial model from the seed
  model_ = make_model(spec_);
  check_model_fits(*model_, spec_, loss_, train_);
  model_->to(device_);
  flat_ = std::make_unique<FlatParameters>(*model_);
  optimizer_ = std::make_unique<Optimizer>(optimizer_options(config), flat_->numel(), device_);
  log_setup();
  summary_.model = spec_.label();
  summary_.parameters = flat_->numel();
  summary_.epochs = config.epochs;
  summary_.aggregator_device = device_.str();
  summary_.amp = name_of(config.amp);
  // --resume: the finished epochs, the position in the current one, parameters and optimizer.
  const std::string fingerprint = model_fingerprint(*model_, spec_);
  if (auto resume = find_resume_point(config, spec_, fingerprint, optimizer_->options().kind))
    progress_.resume_at(restore_training(*resume, *model_, *flat_, *optimizer_, summary_));
  source_ = CheckpointSource{&config,      spec_,       train_.normalization(),
                             model_.get(), flat_.get(), optimizer_.get(),
                             &schedule_,   1,           {},
                             fingerprint};
  source_.reports = {nlohmann::json{
      {"rank", 0},
      {"host", process_identity().host},
      {"role", "single process"},
      {"device", device_.str()},
      {"threads",
       threads_}}.dump()};
}

void LocalRun::log_setup() const {
  const DatasetMeta &meta = train_.meta();
  log_info("model {} ({} parameters{}) on {}, {} threads; data {} ({} samples of {}, {}, {})",
           spec_.label(), flat_->numel(), describe_frozen(*model_), device_.str(), threads_,
           meta.path, n_, meta.shape_string(), meta.describe_targets(),
           meta.inputs_name == "synthetic" ? "generated"
           : train_.in_memory()            ? "in memory"
                                           : "streamed");
  log_info("global batch {} = {} micro-batches of {}; {} steps per epoch; optimizer {} lr {} "
           "({} schedule)",
           G_, G_ / m_, m_, steps_per_epoch_, config_.optimizer, config_.lr, config_.lr_schedule);
  if (amp_.enabled())
    log_info("mixed precision: {}", amp_.describe());
}

// --- the loop: epochs of rounds; one round = one optimizer step over G samples ---------------
TrainSummary LocalRun::run() {
  progress_.start();
  for (int64_t epoch = progress_.first_epoch(); epoch < config_.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    const std::vector<int64_t> order = epoch_permutation(config_.seed, epoch, n_);
    // A resumed epoch goes on from the saved position; its record covers this part only.
    const int64_t first = progress_.begin_epoch(epoch);
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t start = first; start < n_; start += G_) {
      const int64_t count = std::min(G_, n_ - start);
      const int64_t step = progress_.position().global_step;
      const auto round_start = Clock::now();
      ScopedSpan compute_span(timeline_, Span::kCompute, step + 1);
      const SampleRun samples{order.data() + start, count, config_.seed, epoch, start};
      ComputeStats stats = amp_.gradients(*model_, loss_, train_, samples, m_, *flat_);
      compute_span.end();
      const double compute_seconds = seconds_since(round_start);
      summary_.compute_seconds += compute_seconds;
      summary_.data_wait_seconds += stats.data_wait_seconds;
      const auto step_start = Clock::now();
      {
        ScopedSpan step_span(timeline_, Span::kStep, step + 1);
        // Mean over the samples of this step: the exact gradient of the global batch.
        flat_->grads().mul_(1.0 / static_cast<double>(count));
        torch::Tensor params = flat_->params();
        optimizer_->step(params, flat_->grads(), learning_rate(schedule_, step));
      }
      const double step_seconds = seconds_since(step_start);
      loss_sum += stats.loss_sum;
      correct += stats.correct;
      progress_.round_done(count, 1);
      write_round_metrics(stats, count, epoch, compute_seconds, step_seconds,
                          seconds_since(round_start));
      if (progress_.progress_due())
        log_info("{}",
                 progress_.progress_line("step", stats.loss_sum / static_cast<double>(count)));
      if (progress_.step_checkpoint_due())
        save("step");
      if (stopped_by_signal(fmt::format("step {} (epoch {})", step + 1, epoch + 1), true,
                            progress_.epoch_finished()))
        return summary_;
    }

    // Training time only: evaluation is not part of the epoch's seconds.
    {
      ScopedSpan span(timeline_, Span::kEvaluate);
      finish_epoch({epoch, n_ - first, loss_sum, correct, seconds_since(epoch_start),
                    train_.meta().class_labels()},
                   *model_, loss_, test_.get(), config_.epochs, summary_);
    }
    metrics_.write(epoch_metrics(summary_.history.back()));
    progress_.end_epoch(epoch);
    summary_.final_checkpoint = save("epoch");
    if (stopped_by_signal(fmt::format("epoch {}", epoch + 1), false, epoch + 1 >= config_.epochs))
      return summary_;
  }
  write_timeline();
  finish_run(config_, progress_.position(), summary_);
  return summary_;
}

bool LocalRun::stopped_by_signal(const std::string &where, bool mid_epoch, bool last) {
  const int signal = stop_signal();
  if (signal == 0 || last)
    return false;
  if (mid_epoch)
    summary_.final_checkpoint = save("signal");
  summary_.stopped_by_signal = signal;
  log_warn("{}: stopped after {}, wrote {}; continue with --resume auto", signal_name(signal),
           where, summary_.final_checkpoint);
  write_timeline();
  return true;
}

// The --metrics round record after the round: one trainer (this process), no transfers.
void LocalRun::write_round_metrics(const ComputeStats &stats, int64_t count, int64_t epoch,
                                   double compute_seconds, double step_seconds,
                                   double round_seconds) {
  if (!metrics_.enabled()) // the record is built only when it is written
    return;
  const TrainingPosition &at = progress_.position();
  RoundRecord r;
  r.round = at.round;
  r.step = at.global_step;
  r.epoch = epoch + 1;
  r.time = progress_.run_seconds();
  r.seconds = round_seconds;
  r.samples = count;
  r.loss = stats.loss_sum / static_cast<double>(count);
  r.lr = learning_rate(schedule_, at.global_step - 1);
  r.shares[0] = G_ / m_;
  TrainerRoundRecord &me = r.trainers.emplace_back();
  me.host = process_identity().host;
  me.samples = count;
  me.compute_seconds = compute_seconds;
  me.data_wait_seconds = stats.data_wait_seconds;
  me.micro_batch = amp_.micro_batch(m_);
  r.aggregator.step_seconds = step_seconds;
  r.aggregator.broadcast_seconds = 0.0;
  metrics_.write(r);
}

std::string LocalRun::save(const std::string &tag) {
  ScopedSpan span(timeline_, Span::kCheckpoint);
  return save_checkpoint(source_, progress_.position(), summary_.history, tag);
}

// --timeline: one process is rank 0 and its only "trainer".
void LocalRun::write_timeline() {
  if (timeline_.enabled())
    timeline_.write(config_.timeline,
                    {fmt::format("rank 0 ({}) single process", process_identity().host)});
}

} // namespace

TrainSummary run_local_training(const TrainConfig &config) {
  validate(config);
  if (config.aggregators > 1)
    throw UserError(fmt::format("--aggregators {}: sharded aggregation needs an MPI job of at "
                                "least {} ranks (mpirun -np {} ...)",
                                config.aggregators, config.aggregators + 1,
                                config.aggregators + 1));
  torch::set_num_threads(config.threads > 0 ? config.threads : usable_cores());
  prepare_outputs(config);
  return LocalRun(config).run();
}

} // namespace hetrain
