#include "hetrain/run/training_run.h"
#include "hetrain/train/amp.h"

#include "link_probe.h"
#include "protocol.h"
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
  void report_progress(const ComputeStats &stats, int64_t count, int64_t epoch);
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
  TrainingPosition position_, resumed_;
  CheckpointSource source_;
  MetricsFile metrics_;
  Timeline timeline_;
  Clock::time_point run_start_ = Clock::now(), last_progress_ = Clock::now();
};

LocalRun::LocalRun(const TrainConfig &config)
    : config_(config), threads_(config.threads > 0 ? config.threads : usable_cores()),
      device_(choose_device(config.device)), train_(data_source(config), config.data_residency),
      test_(open_test_data(config, train_.meta(), train_.normalization())),
      n_(config.limit_train_samples > 0 ? std::min(config.limit_train_samples, train_.size())
                                        : train_.size()),
      G_(config.global_batch), m_(config.micro_batch), steps_per_epoch_((n_ + G_ - 1) / G_),
      spec_(protocol::spec_of(config, train_.meta())), loss_(loss_spec(config)),
      schedule_(lr_schedule(config, steps_per_epoch_)), amp_(config.amp, device_),
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
  if (auto resume = find_resume_point(config, spec_, fingerprint))
    position_ = restore_training(*resume, *model_, *flat_, *optimizer_, summary_);
  resumed_ = position_;
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
  run_start_ = Clock::now();
  last_progress_ = Clock::now();
  for (int64_t epoch = resumed_.epoch; epoch < config_.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    const std::vector<int64_t> order = epoch_permutation(config_.seed, epoch, n_);
    // A resumed epoch goes on from the saved position; its record covers this part only.
    position_ = start_of_epoch(position_, resumed_, epoch, n_);
    const int64_t first = position_.epoch_position;
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t start = first; start < n_; start += G_) {
      const int64_t count = std::min(G_, n_ - start);
      const auto round_start = Clock::now();
      ScopedSpan compute_span(timeline_, Span::kCompute, position_.global_step + 1);
      const SampleRun samples{order.data() + start, count, config_.seed, epoch, start};
      ComputeStats stats = amp_.gradients(*model_, loss_, train_, samples, m_, *flat_);
      compute_span.end();
      const double compute_seconds = seconds_since(round_start);
      summary_.compute_seconds += compute_seconds;
      summary_.data_wait_seconds += stats.data_wait_seconds;
      const auto step_start = Clock::now();
      {
        ScopedSpan step_span(timeline_, Span::kStep, position_.global_step + 1);
        // Mean over the samples of this step: the exact gradient of the global batch.
        flat_->grads().mul_(1.0 / static_cast<double>(count));
        torch::Tensor params = flat_->params();
        optimizer_->step(params, flat_->grads(), learning_rate(schedule_, position_.global_step));
      }
      write_round_metrics(stats, count, epoch, compute_seconds, seconds_since(step_start),
                          seconds_since(round_start));
      loss_sum += stats.loss_sum;
      correct += stats.correct;
      position_.epoch_position = start + count;
      position_.round += 1;
      position_.global_step += 1;
      position_.samples_seen += count;
      report_progress(stats, count, epoch);
      if (config_.checkpoint_every > 0 && position_.global_step % config_.checkpoint_every == 0 &&
          start + count < n_)
        save("step");
      if (stopped_by_signal(fmt::format("step {} (epoch {})", position_.global_step, epoch + 1),
                            true, start + count >= n_))
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
    // Position after a finished epoch: the start of the next one.
    position_.epoch = epoch + 1;
    position_.epoch_position = 0;
    position_.round = 0;
    summary_.final_checkpoint = save("epoch");
    if (stopped_by_signal(fmt::format("epoch {}", epoch + 1), false, epoch + 1 >= config_.epochs))
      return summary_;
  }
  write_timeline();
  finish_run(config_, position_, summary_);
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

void LocalRun::write_round_metrics(const ComputeStats &stats, int64_t count, int64_t epoch,
                                   double compute_seconds, double step_seconds,
                                   double round_seconds) {
  if (!metrics_.enabled()) // the record is built only when it is written
    return;
  metrics_.write({{"type", "round"},
                  {"round", position_.round + 1},
                  {"step", position_.global_step + 1},
                  {"epoch", epoch + 1},
                  {"time", seconds_since(run_start_)},
                  {"seconds", round_seconds},
                  {"samples", count},
                  {"samples_per_sec", static_cast<double>(count) / round_seconds},
                  {"loss", stats.loss_sum / static_cast<double>(count)},
                  {"lr", learning_rate(schedule_, position_.global_step)},
                  {"shares", {{"0", G_ / m_}}},
                  {"trainers",
                   {{{"rank", 0},
                     {"host", process_identity().host},
                     {"samples", count},
                     {"compute_seconds", compute_seconds},
                     {"data_wait_seconds", stats.data_wait_seconds},
                     {"wait_seconds", 0.0},
                     {"micro_batch", amp_.micro_batch(m_)}}}},
                  {"aggregator",
                   {{"receive_seconds", 0.0},
                    {"reduce_seconds", 0.0},
                    {"step_seconds", step_seconds},
                    {"broadcast_seconds", 0.0}}},
                  {"bytes", 0}});
}

void LocalRun::report_progress(const ComputeStats &stats, int64_t count, int64_t epoch) {
  if (seconds_since(last_progress_) < config_.progress_seconds)
    return;
  last_progress_ = Clock::now();
  const double elapsed = seconds_since(run_start_);
  const double rate = static_cast<double>(position_.samples_seen - resumed_.samples_seen) / elapsed;
  const double remaining = static_cast<double>(n_ * config_.epochs - position_.samples_seen) / rate;
  log_info("epoch {}/{} step {}/{} | {:.0f} samples/s | loss {:.4f} | ETA {}", epoch + 1,
           config_.epochs, position_.round, steps_per_epoch_, rate,
           stats.loss_sum / static_cast<double>(count), format_duration(remaining));
}

std::string LocalRun::save(const std::string &tag) {
  ScopedSpan span(timeline_, Span::kCheckpoint);
  return save_checkpoint(source_, position_, summary_.history, tag);
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
                   {"parameters", s.parameters},
                   {"aggregator_device", s.aggregator_device},
                   {"amp", s.amp},
                   {"aggregators", s.aggregators},
                   {"epochs", s.epochs},
                   {"steps", s.steps},
                   {"resumed_step", s.resumed_step},
                   {"samples", s.samples},
                   {"samples_per_sec", s.samples_per_sec},
                   {"epoch_seconds", s.epoch_seconds},
                   {"test_accuracy", s.test_accuracy},
                   {"test_loss", s.test_loss},
                   {"final_train_loss", s.final_train_loss},
                   {"compute_seconds", s.compute_seconds},
                   {"data_wait_seconds", s.data_wait_seconds},
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
                          {"data_wait_seconds", t.data_wait_seconds},
                          {"wait_seconds", t.wait_seconds},
                          {"micro_batch", t.micro_batch},
                          {"lost", t.lost},
                          {"out_rounds", t.out_rounds},
                          {"out_seconds", t.out_seconds},
                          {"samples_per_sec", t.samples_per_sec}});
    j["trainers"] = trainers;
    j["plan_history"] = s.plan_history;
    j["plan_notes"] = s.plan_notes;
    j["host_groups"] = s.host_groups;
    j["uploads_per_round"] = s.uploads_per_round;
    j["lost_trainers"] = s.lost_trainers;
    j["links"] = run::links_json(s.links);
    j["link_probe_seconds"] = s.link_probe_seconds;
    j["link_probe_wait_seconds"] = s.link_probe_wait_seconds;
    nlohmann::json admission = nlohmann::json::array(), moves = nlohmann::json::array();
    for (const AdmissionRecord &a : s.admission)
      admission.push_back({{"rank", a.rank},
                           {"host", a.host},
                           {"device", a.device},
                           {"probe_samples_per_sec", a.probe_samples_per_sec},
                           {"admitted", a.admitted},
                           {"reason", a.reason}});
    for (const PlanMove &m : s.plan_moves)
      moves.push_back({{"rank", m.rank}, {"round", m.round}, {"in_plan", m.in_plan}});
    j["admission"] = admission;
    j["plan_moves"] = moves;
  }
  return j.dump(2);
}

} // namespace hetrain
