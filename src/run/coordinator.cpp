// Rank 0 of the distributed job: the coordinator (DESIGN §1-§7). It *decides*: who is admitted,
// the plan and when it changes, what happens to a late or lost trainer, when to checkpoint,
// evaluate and stop. The round executor (round_executor.cpp) *does* each round. Read run() top to
// bottom; it follows the one-process loop of training_run.cpp:
//
//   admit the trainers -> master model, optimizer, plan -> shard servers -> parameters out
//   each epoch, each round:
//     assign the round's samples by the plan -> execute it -> (late trainer: checkpoint and end
//     the job, or drop it and redo the round; signal: checkpoint and stop) -> account for it ->
//     metrics, progress, re-plan, step checkpoint, signal check
//   end of epoch: evaluate, epoch checkpoint
//   stop everyone, gather the timeline, summary
#include "hetrain/aggregate/weighted_sum_cuda.h"
#include "hetrain/cluster/admission.h"
#include "hetrain/cluster/report_message.h"
#include "hetrain/comm/check_mpi.h"
#include "hetrain/comm/heartbeat.h"
#include "hetrain/comm/messages.h"
#include "hetrain/common/error.h"
#include "hetrain/common/faults.h"
#include "hetrain/common/log.h"
#include "hetrain/common/signals.h"
#include "hetrain/common/system_info.h"
#include "hetrain/observe/metrics.h"
#include "hetrain/schedule/advice.h"
#include "hetrain/schedule/links.h"
#include "hetrain/schedule/plan.h"
#include "hetrain/schedule/replan.h"

#include "admission_exchange.h"
#include "checkpointing.h"
#include "host_reduce.h"
#include "job_comms.h"
#include "joining.h"
#include "link_probe.h"
#include "model_buffers.h"
#include "protocol.h"
#include "roles.h"
#include "round_accounting.h"
#include "round_executor.h"
#include "round_planner.h"
#include "round_report.h"
#include "round_supervisor.h"
#include "run_progress.h"
#include "run_records.h"
#include "sync_decision.h"
#include "train_setup.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <csignal>
#include <optional>

#include <unistd.h>

namespace hetrain::run {
using namespace protocol;
namespace {

// --aggregator-device: where rank 0 averages and steps. CUDA needs three things: a build with
// the kernel, a LibTorch with CUDA (the master parameters and the optimizer live in it), and a
// visible GPU. auto takes CUDA when all three are there; cuda without them is an error that says
// which is missing.
struct AggregatorPlace {
  ReduceDevice reduce = ReduceDevice::kCpu;
  torch::Device device{torch::kCPU};
};
// `placement`: this host's placement (cluster/device_placement.h), which gives rank 0 its own GPU
// only when the trainers leave one spare.
AggregatorPlace choose_aggregator_device(DeviceChoice requested, const RankPlacement &placement) {
  if (requested == DeviceChoice::kCpu)
    return {};
  std::string why;
  const int gpus = cuda_devices(&why);
  if (gpus > 0 && !torch::cuda::is_available())
    why = "this LibTorch has no CUDA (build with a CUDA LibTorch on CMAKE_PREFIX_PATH)";
  if (gpus > 0 && torch::cuda::is_available() && placement.gpu < 0) {
    log_info("aggregator device: {}", placement.device_reason);
    return {};
  }
  if (gpus > 0 && torch::cuda::is_available())
    return {ReduceDevice::kCuda,
            torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(placement.gpu % gpus))};
  if (requested == DeviceChoice::kCuda)
    throw UserError(fmt::format("--aggregator-device cuda: {}", why));
  return {};
}

// "nesterov at --outer-lr 0.7, momentum 0.9" for the start-up line of --sync diloco.
std::string describe_outer_step(const TrainConfig &config) {
  switch (config.outer_optimizer) {
  case OuterOptimizer::kAverage:
    return "average (as --sync params)";
  case OuterOptimizer::kSgd:
    return fmt::format("sgd at --outer-lr {}", config.outer_lr);
  case OuterOptimizer::kNesterov:
    break;
  }
  return fmt::format("nesterov at --outer-lr {}, momentum {}", config.outer_lr,
                     config.outer_momentum);
}

std::string describe_overlap(const TrainConfig &config) {
  if (!config.sync_overlap)
    return "";
  const std::string when =
      config.sync_overlap_steps == 0
          ? "after the next round"
          : fmt::format("before the next round's local step {} (--sync-overlap-steps)",
                        config.sync_overlap_steps + 1);
  return fmt::format("; --sync-overlap: each round computes while the previous round's sync is in "
                     "flight, its update applied {}",
                     when);
}

class Coordinator {
public:
  Coordinator(const TrainConfig &config, const RankPlacement &placement, const DatasetMeta &meta,
              AdmittedJob admitted, JobComms &comms, const std::string &sync_choice);
  TrainSummary run();

private:
  // Decisions
  void maybe_advise(double round_seconds, double compute_seconds, bool measured);
  RoundResult run_round(int64_t epoch, int64_t start, int64_t count, int64_t steps);
  void drop_trainers(const std::vector<int> &world_ranks, const std::string &why);
  void let_leave(const std::vector<int> &world_ranks);
  void open_for_joins(const std::string &fingerprint);
  void admit_joiner();
  AdmissionVerdict judge_joiner(MPI_Comm inter, TrainerReport &report);
  void rebuild_executor();
  void record_plan(const std::string &why);
  std::string local_steps_text() const;
  void take_out_speeds();
  void describe_host_groups(const HostGrouping &grouping);
  const Plan &plan() const { return planner_->plan(); }
  bool stop_requested(bool last_round_of_epoch);
  // Carrying them out
  void account(double round_seconds, const RoundResult &result);
  void write_round_metrics(const RoundResult &result, double round_seconds, int64_t count,
                           int64_t steps, int64_t epoch);
  void report_progress(int64_t epoch, int64_t first, double loss_sum);
  void finish_epoch(int64_t epoch, int64_t first, double loss_sum, int64_t correct,
                    Clock::time_point epoch_start);
  std::string save(const std::string &tag, bool between_rounds = false);
  void write_prometheus(double loss, int64_t epoch);
  void stop_trainers(const std::vector<int> &except);
  void end_job();
  void gather_and_write_timeline();

  const TrainConfig &config_;
  const RankPlacement placement_;
  JobComms &comms_;
  MPI_Comm job_;
  Roster trainers_;
  std::vector<nlohmann::json> report_json_;
  const std::vector<int> hosts_;         // by job rank: which host
  const std::vector<LinkFigures> links_; // the link probe's (empty when it was off)
  const ModelSpec spec_;
  const bool class_labels_; // accuracy is reported for class labels only
  const AggregatorPlace place_;
  std::shared_ptr<Model> model_;
  std::unique_ptr<FlatParameters> flat_;
  std::unique_ptr<Dataset> test_;
  const int64_t n_, G_, m_, local_steps_, round_samples_;
  std::unique_ptr<Optimizer> optimizer_;
  const LrSchedule schedule_;
  ShardLayout layout_; // set once the master model's size is known
  TrainSummary summary_;
  RunProgress progress_;
  CheckpointSource source_;
  std::vector<TrainerOptimizerState> trainer_optimizers_; // from --resume, until handed back
  std::unique_ptr<RoundPlanner> planner_; // decides the plan and each round's assignment
  Timeline timeline_;
  MetricsFile metrics_;
  std::unique_ptr<ShardServers> servers_;
  std::unique_ptr<RoundExecutor> executor_;
  int pending_signal_ = 0;                  // SIGTERM/SIGUSR1 seen here or reported by a trainer
  int64_t uploads_ = 0, upload_rounds_ = 0; // uploads rank 0 received over the completed rounds
  bool advised_ = false;                    // the communication-bound warning is given once
  MeasuredRound measured_;                  // smoothed, for that warning
  // --accept-joins: the service name joiners publish under, and the next joiner's rank.
  std::string join_service_;
  int next_join_rank_ = 0;
};

Coordinator::Coordinator(const TrainConfig &config, const RankPlacement &placement,
                         const DatasetMeta &meta, AdmittedJob admitted, JobComms &comms,
                         const std::string &sync_choice)
    : config_(config), placement_(placement), comms_(comms), job_(admitted.job),
      trainers_(std::move(admitted.trainers)), report_json_(std::move(admitted.reports)),
      hosts_(std::move(admitted.hosts)), links_(std::move(admitted.links)),
      spec_(spec_of(config, meta)), class_labels_(meta.class_labels()),
      place_(choose_aggregator_device(config.aggregator_device, placement)),
      n_(config.limit_train_samples > 0 ? std::min(config.limit_train_samples, meta.count)
                                        : meta.count),
      G_(config.global_batch), m_(config.micro_batch), local_steps_(local_steps_of(config)),
      round_samples_(G_ * local_steps_), // samples of the epoch's order per round
      schedule_(lr_schedule(config, (n_ + G_ - 1) / G_)), progress_(config, n_, round_samples_),
      timeline_(!config.timeline.empty()),
      metrics_(config.metrics.empty() ? MetricsFile() : MetricsFile(config.metrics)) {
  torch::manual_seed(config.seed); // every rank builds the same initial model from the seed
  model_ = make_model(spec_);
  model_->to(place_.device); // the master parameters and the optimizer state live here
  flat_ = std::make_unique<FlatParameters>(*model_);
  layout_ = shard_layout_checked(flat_->numel(), config);
  const Normalization normalization{meta.mean, meta.std};
  test_ = open_test_data(config, meta, normalization);
  optimizer_ = std::make_unique<Optimizer>(aggregator_optimizer_options(config), flat_->numel(),
                                           place_.device);
  summary_.aggregators = config.aggregators;
  summary_.world_size = placement.world_size;
  summary_.model = spec_.label();
  summary_.parameters = flat_->numel();
  summary_.epochs = config.epochs;
  summary_.aggregator_device = place_.device.str();
  summary_.amp = name_of(config.amp);
  summary_.sync = name_of(config.sync);
  summary_.local_steps = local_steps_of(config);
  summary_.sync_choice = sync_choice;
  summary_.sync_overlap = config.sync_overlap && config.sync == SyncMode::kDiLoCo;
  // --resume: rank 0 alone reads the checkpoint; the trainers get the parameters as at any start,
  // and each round's command says where in which epoch it is.
  const std::string fingerprint = model_fingerprint(*model_, spec_);
  if (auto resume = find_resume_point(config, spec_, fingerprint, optimizer_->options().kind)) {
    progress_.resume_at(restore_training(*resume, *model_, *flat_, *optimizer_, summary_));
    if (trainers_keep_optimizer_state(config))
      trainer_optimizers_ = saved_trainer_optimizers(*resume, *flat_, config);
  }
  source_ = CheckpointSource{
      &config,          spec_,      normalization,        model_.get(), flat_.get(),
      optimizer_.get(), &schedule_, placement.world_size, {},           fingerprint};
  summary_.links = links_;
  summary_.link_probe_seconds = admitted.link_probe_seconds;
  summary_.link_probe_wait_seconds = admitted.link_probe_wait_seconds;
  for (const nlohmann::json &r : report_json_)
    summary_.admission.push_back({r["rank"], r["host"], r["device"], r["probe_samples_per_sec"],
                                  r["admitted"], r["reason"]});
  if (links_.empty())
    log_info("links: not probed (--link-probe-seconds 0); the plan assumes every link moves "
             "1 GB/s");
  if (metrics_.enabled())
    metrics_.write({{"type", "links"}, {"time", 0.0}, {"links", links_json(links_)}});
  const HostGrouping grouping = job_host_groups(config, comms.hosts());
  planner_ = std::make_unique<RoundPlanner>(
      config, trainers_, PlanSizes{flat_->numel(), buffer_elements(*model_), layout_},
      grouping.groups);
  describe_host_groups(grouping);
  servers_ = std::make_unique<ShardServers>(config, layout_, job_, placement.world_size, *flat_,
                                            *optimizer_);
  servers_->setup(trainers_);
  rebuild_executor();
  log_info("model {}: {} parameters{}", spec_.label(), flat_->numel(), describe_frozen(*model_));
  log_info("aggregator: master parameters and optimizer on {}; reduce on {}", place_.device.str(),
           executor_->reduce_description());
  if (config.sync == SyncMode::kDiLoCo)
    log_info("sync: diloco, {} local steps of --optimizer {} per round, then the outer step: {}{}",
             config.local_steps, config.optimizer, describe_outer_step(config),
             describe_overlap(config));
  record_plan("start-up");
  maybe_advise(plan().estimated_round_seconds, -1, false);
  if (!config.accept_joins.empty())
    open_for_joins(fingerprint);
}

TrainSummary Coordinator::run() {
  // No parameters go out here: each trainer gets them with its first kRound or kSkip, so a
  // trainer the plan leaves out costs the job nothing, not even at the start (DESIGN §5).
  progress_.start();
  if (!trainer_optimizers_.empty()) { // resumed: the trainers' own optimizers go back first
    hand_back_trainer_optimizers(config_, job_, trainers_, trainer_optimizers_);
    trainer_optimizers_.clear();
  }
  for (int64_t epoch = progress_.first_epoch(); epoch < config_.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    // A resumed epoch goes on from the saved position; its record covers this part only.
    const int64_t first = progress_.begin_epoch(epoch);
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t start = first; start < n_; start += round_samples_) {
      if (fault_kills_in_round(0, progress_.position().round + 1)) {
        log_warn("--fault-kill-rank: rank 0 dying (SIGKILL) before round {}",
                 progress_.position().global_step + 1);
        std::raise(SIGKILL);
      }
      const auto round_start = Clock::now();
      const int64_t count = std::min(round_samples_, n_ - start);
      const int64_t steps = (count + G_ - 1) / G_; // optimizer steps this round (params: local)
      const RoundResult result = run_round(epoch, start, count, steps);
      const double round_seconds = seconds_since(round_start);
      take_out_speeds();
      for (const TrainerState &t : trainers_)
        uploads_ += t.uploading ? 1 : 0;
      ++upload_rounds_;
      account(round_seconds, result);
      for (const TrainerState &t : trainers_)
        if (t.working) {
          loss_sum += t.stats.loss_sum;
          correct += t.stats.correct;
        }
      progress_.round_done(count, steps);
      write_round_metrics(result, round_seconds, count, steps, epoch);
      report_progress(epoch, first, loss_sum);
      admit_joiner(); // --accept-joins: one waiting joiner, if any, is in the next plan
      // Signals first: a trainer that leaves is out of the re-plan that follows.
      const bool stop = stop_requested(progress_.epoch_finished());
      if (const auto why = planner_->maybe_replan(progress_.position().global_step))
        record_plan(*why);
      if (progress_.step_checkpoint_due())
        save("step", true);
      if (stop) {
        summary_.final_checkpoint = save("signal", true);
        summary_.stopped_by_signal = pending_signal_;
        break;
      }
    }
    if (summary_.stopped_by_signal != 0)
      break;
    finish_epoch(epoch, first, loss_sum, correct, epoch_start);
    if (pending_signal_ == 0)
      pending_signal_ = stop_signal();
    if (pending_signal_ != 0 && epoch + 1 < config_.epochs) {
      summary_.stopped_by_signal = pending_signal_;
      break;
    }
  }
  end_job();
  if (summary_.stopped_by_signal != 0) {
    log_warn("{}: stopped at step {} (epoch {}), wrote {}; continue with --resume auto",
             signal_name(summary_.stopped_by_signal), progress_.position().global_step,
             progress_.position().epoch + 1, summary_.final_checkpoint);
    return summary_;
  }
  for (const TrainerState &t : trainers_) {
    summary_.trainers.push_back({t.world_rank, t.report.host, share_in(plan(), t.job_rank),
                                 t.samples, t.compute_seconds, t.wait_seconds, t.micro_batch,
                                 t.lost, t.left, t.data_wait_seconds, t.out_rounds, t.out_seconds,
                                 t.speed, t.overlapped_rounds});
    summary_.compute_seconds += t.compute_seconds;
    summary_.data_wait_seconds += t.data_wait_seconds;
  }
  summary_.plan_moves = planner_->moves();
  summary_.uploads_per_round =
      upload_rounds_ > 0 ? static_cast<double>(uploads_) / static_cast<double>(upload_rounds_) : 0;
  finish_run(config_, progress_.position(), summary_);
  return summary_;
}

// Once at the start: the host groups (or why there are none), as every rank computed them.
void Coordinator::describe_host_groups(const HostGrouping &grouping) {
  if (grouping.groups.empty() && config_.host_reduce != HostReduce::kOff)
    log_info("host reduce: off ({}): {}", name_of(config_.host_reduce), grouping.off_reason);
  for (const HostGroup &g : grouping.groups) {
    std::vector<int> job{g.leader}, world{trainer_at(trainers_, g.leader).world_rank};
    for (int m : g.members) {
      job.push_back(m);
      world.push_back(trainer_at(trainers_, m).world_rank);
    }
    log_info("host reduce: host {}: job ranks {} -> {} uploads (world ranks {})",
             trainer_at(trainers_, g.leader).report.host, rank_list(job), g.leader,
             rank_list(world));
    summary_.host_groups.push_back(world);
  }
}

// The round to completion (round_supervisor.h decides what a late or lost trainer means).
RoundResult Coordinator::run_round(int64_t epoch, int64_t start, int64_t count, int64_t steps) {
  const int64_t step = progress_.position().global_step;
  const RoundOrder order{step + 1, step, count, learning_rate(schedule_, step)};
  LossHooks hooks;
  hooks.save = [this](const std::string &tag) { return save(tag); };
  hooks.stop_others = [this](const std::vector<int> &late) { stop_trainers(late); };
  hooks.drop = [this](const std::vector<int> &ranks, const std::string &why) {
    drop_trainers(ranks, why);
  };
  return supervise_round(config_, *executor_, *planner_, trainers_,
                         {step, epoch, start, count, steps, 0}, order, hooks);
}

// --on-trainer-loss continue: the job goes on without these trainers, on a new plan.
void Coordinator::drop_trainers(const std::vector<int> &world_ranks, const std::string &why) {
  for (int r : world_ranks)
    for (TrainerState &t : trainers_)
      if (t.world_rank == r && !gone(t)) {
        t.lost = true;
        const std::string what =
            fmt::format("{}, last completed round {}: {}", name_of(t), t.last_round, why);
        log_error("lost {}; going on without it (--on-trainer-loss continue)", what);
        summary_.lost_trainers.push_back(what);
        summary_.membership_changes.push_back(
            {t.world_rank, t.report.host, "lost", why, progress_.position().global_step,
             progress_.run_seconds(),
             fmt::format("round {} redone on the others", progress_.position().global_step + 1)});
      }
  if (std::all_of(trainers_.begin(), trainers_.end(),
                  [](const TrainerState &t) { return gone(t); })) {
    const std::string path = save("abort");
    throw PeerTimeout(world_ranks.empty() ? 0 : world_ranks.front(),
                      fmt::format("every trainer is lost (the last {}); wrote {}", why, path));
  }
  planner_->replan_without_gone();
  record_plan(fmt::format("after round {} (without the lost rank {})",
                          progress_.position().global_step, rank_list(world_ranks)));
}

// The round executor sizes its buffers by the roster: built again when a trainer joins.
void Coordinator::rebuild_executor() {
  executor_ = std::make_unique<RoundExecutor>(config_, job_, *model_, *flat_, *optimizer_, layout_,
                                              *servers_, trainers_, timeline_, place_.reduce,
                                              place_.device, threads_for(config_, placement_));
}

// --accept-joins FILE: the ticket `hetrain join FILE` reads (DESIGN §7 "Live join").
void Coordinator::open_for_joins(const std::string &fingerprint) {
  CHECK_MPI(MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN));
  const ProcessIdentity &id = process_identity();
  join_service_ = fmt::format("hetrain-join-{}-{}", id.host, getpid());
  next_join_rank_ = placement_.world_size;
  try {
    publish_running(join_service_);
  } catch (const LibraryError &e) {
    throw UserError(fmt::format("--accept-joins: cannot publish the job's name ({}); start "
                                "ompi-server and give mpirun --ompi-server file:URI",
                                e.what()));
  }
  write_join_ticket(config_.accept_joins, {join_service_, kMessageVersion, kProtocolVersion,
                                           fingerprint, config_.command_line, id.host});
  log_info("joins: `hetrain join {}` (under mpirun --ompi-server) adds a trainer at a round's end",
           config_.accept_joins);
}

// The joiner's report and the start-up rules against the trainers in the job now.
AdmissionVerdict Coordinator::judge_joiner(MPI_Comm inter, TrainerReport &report) {
  const std::vector<uint8_t> raw =
      receive_joiner_report(inter, next_join_rank_, config_.join_timeout);
  AdmissionVerdict verdict;
  verdict.rank = next_join_rank_;
  try {
    report = decode_report(raw);
  } catch (const UserError &e) {
    verdict.reason = e.what();
    return verdict;
  }
  report.rank = next_join_rank_;
  if (!summary_.host_groups.empty()) {
    verdict.reason = "this job has --host-reduce groups, which a joiner cannot join";
    return verdict;
  }
  std::vector<TrainerReport> reports{report};
  for (const TrainerState &t : trainers_)
    if (!gone(t))
      reports.push_back(t.report);
  const AdmissionPolicy policy{config_.require_gpu, config_.min_relative_speed,
                               config_.require_bf16};
  for (const AdmissionVerdict &v : decide_admission(reports, policy))
    if (v.rank == next_join_rank_)
      verdict = v;
  return verdict;
}

// --accept-joins, after a round: a joiner waiting to be taken is judged, told, and (admitted)
// planned in from the next round on; it gets the parameters with its first command.
void Coordinator::admit_joiner() {
  if (join_service_.empty())
    return;
  const std::optional<MPI_Comm> inter = connect_waiting_joiner(join_service_);
  if (!inter)
    return;
  const auto start = Clock::now();
  TrainerReport report;
  AdmissionVerdict verdict;
  try { // a joiner that fails here is dropped; the job goes on
    verdict = judge_joiner(*inter, report);
    answer_joiner(*inter, verdict.admitted, verdict.reason,
                  {next_join_rank_, static_cast<int64_t>(config_.sync), config_.local_steps},
                  config_.join_timeout);
  } catch (const PeerTimeout &e) {
    log_warn("joins: joiner {} dropped: {}", next_join_rank_++, e.what());
    return;
  }
  const int64_t round = progress_.position().global_step;
  if (!verdict.admitted) {
    log_warn("joins: rank {} ({}) not admitted: {}", next_join_rank_, report.host, verdict.reason);
    ++next_join_rank_;
    return;
  }
  TrainerState t;
  t.world_rank = t.job_rank = next_join_rank_++;
  t.report = report;
  t.speed = report.probe_samples_per_sec;
  t.micro_batch = config_.micro_batch;
  t.joined = *inter;
  trainers_.push_back(t);
  rebuild_executor();
  planner_->replan_without_gone();
  const double seconds = seconds_since(start);
  log_info("{} joined the job after round {} (its report, verdict: {:.2f} s of rank 0's time)",
           name_of(t), round, seconds);
  summary_.membership_changes.push_back(
      {t.world_rank, report.host, "joined", "hetrain join", round, progress_.run_seconds(),
       fmt::format("{:.2f} s of rank 0 between rounds", seconds)});
  record_plan(fmt::format("after round {} (rank {} joined)", round, t.world_rank));
}

// A plan just adopted (the first: at start-up), with why: its notes (who is left out and why) and
// the plan in the log, the summary's plan_history and a "plan" record of --metrics (the shares plot
// marks it).
void Coordinator::record_plan(const std::string &why) {
  for (const std::string &note : plan().notes)
    log_info("plan: {}", note);
  const std::string text = plan_text(plan(), trainers_, m_);
  summary_.plan_history.push_back(why + ": " + text);
  summary_.plan_notes.push_back(plan().notes);
  if (summary_.plan_history.size() == 1)
    log_info("plan: {}", text);
  else
    log_info("re-plan {}", summary_.plan_history.back());
  if (config_.sync != SyncMode::kGradient)
    log_info("local steps per round by speed (a full round): {}", local_steps_text());
  if (!metrics_.enabled())
    return;
  nlohmann::json shares = nlohmann::json::object();
  for (size_t p = 0; p < plan().ranks.size(); ++p)
    shares[std::to_string(trainer_at(trainers_, plan().ranks[p]).world_rank)] =
        plan().micro_batches[p];
  metrics_.write({{"type", "plan"},
                  {"time", progress_.run_seconds()},
                  {"step", progress_.position().global_step},
                  {"reason", why},
                  {"shares", shares},
                  {"estimated_round_seconds", plan().estimated_round_seconds},
                  {"notes", plan().notes}});
}

// --sync params/diloco: each planned trainer's local steps and local batch in a full round
// (plan.h local_steps_by_speed), e.g. "rank 1: 2 steps of 16, rank 2: 8 steps of 16".
std::string Coordinator::local_steps_text() const {
  std::vector<int64_t> counts;
  for (int64_t k : plan().micro_batches)
    counts.push_back(k * m_ * local_steps_);
  const std::vector<int64_t> steps = local_steps_by_speed(counts, local_steps_);
  std::vector<std::string> parts;
  for (size_t p = 0; p < counts.size(); ++p)
    if (steps[p] > 0)
      parts.push_back(fmt::format("rank {}: {} steps of {}",
                                  trainer_at(trainers_, plan().ranks[p]).world_rank, steps[p],
                                  counts[p] / steps[p]));
  return fmt::format("{}", fmt::join(parts, ", "));
}

// Speeds that trainers out of the plan measured on request (set_participation): a fresh figure
// of several micro-batches replaces the old one, so that a recovered machine shows at once.
void Coordinator::take_out_speeds() {
  for (TrainerState &t : trainers_) {
    const std::optional<double> speed = executor_->out_speed(t);
    if (!speed)
      continue;
    if (*speed > 1.2 * t.speed || *speed < t.speed / 1.2)
      log_info("{} (out of the plan) measured {:.0f} samples/s (was {:.0f})", name_of(t), *speed,
               t.speed);
    t.speed = *speed;
  }
}

// SIGTERM/SIGUSR1 here or at a trainer (it says so in its statistics), judged after a complete
// round (round_supervisor.h): trainers that alone got one leave now; a signal for the whole job
// stops it after a round that is not the epoch's last (the epoch's end checkpoints anyway).
bool Coordinator::stop_requested(bool last_round_of_epoch) {
  if (pending_signal_ == 0) {
    const bool leave_possible = config_.aggregators == 1 && summary_.host_groups.empty();
    const SignalVerdict verdict = judge_signals(stop_signal(), trainers_, leave_possible);
    if (!verdict.leaving.empty())
      let_leave(verdict.leaving);
    pending_signal_ = verdict.stop_job;
  }
  return pending_signal_ != 0 && !last_round_of_epoch;
}

// A planned leave (DESIGN §7): these trainers delivered the round just completed and got a signal
// of their own. They are told to stop (each then leaves with exit code 0), the heartbeat forgets
// them, and the next round runs on a plan over the others: nothing is redone, nothing saved.
void Coordinator::let_leave(const std::vector<int> &world_ranks) {
  const Words stop = encode(RoundCommand{RoundCommand::Kind::kStop});
  RequestSet set;
  const int64_t round = progress_.position().global_step;
  for (TrainerState &t : trainers_) {
    if (std::count(world_ranks.begin(), world_ranks.end(), t.world_rank) == 0)
      continue;
    t.left = true;
    isend_words(set, stop, peer_of(t), kTagCommand, comm_of(t, job_), "telling it to leave");
    comms_.forget(t.job_rank);
    const std::string reason = signal_name(t.working ? t.stats.stop_signal : t.out_signal);
    log_info("{} leaves the job after round {} ({}, its own); the others go on", name_of(t), round,
             reason);
    summary_.membership_changes.push_back({t.world_rank, t.report.host, "left", reason, round,
                                           progress_.run_seconds(), "nothing redone"});
  }
  set.wait_all(config_.straggler_timeout);
  planner_->replan_without_gone();
  record_plan(fmt::format("after round {} (rank {} left: {})", round, rank_list(world_ranks),
                          summary_.membership_changes.back().reason));
}

// Statistics of the working trainers: their totals, smoothed speeds, what they run on
// (round_accounting.h); from the second round on, the smoothed round for the advice.
void Coordinator::account(double round_seconds, const RoundResult &result) {
  const double compute = account_round(trainers_, result.arrival_seconds, round_seconds,
                                       progress_.position().global_step + 1, m_);
  // The first round carries warm-up (allocations, first touches): measured from the second on.
  if (progress_.position().round < 1)
    return;
  measured_.add(round_seconds, compute);
  if (progress_.position().round >= 3)
    maybe_advise(measured_.round_seconds, measured_.compute_seconds, true);
}

// Once per run: a round whose communication takes longer than its compute, and what would help.
// `compute_seconds` < 0: take it from the cost model (the estimate at the start). The cost model
// runs on the probe's link rates alone (not the measured transfers), so that a measured round
// can be held against what the links explain.
void Coordinator::maybe_advise(double round_seconds, double compute_seconds, bool measured) {
  if (advised_ || plan().ranks.empty())
    return;
  std::vector<AggregatorRate> rates;
  const RoundEstimate e = planner_->estimate_current(true, &rates);
  const std::string advice = communication_advice(communication_facts(
      config_, e, rates, trainers_, plan(), hosts_, round_seconds, compute_seconds, measured));
  if (advice.empty())
    return;
  advised_ = true;
  log_warn("{}", advice);
}

void Coordinator::write_round_metrics(const RoundResult &result, double round_seconds,
                                      int64_t count, int64_t steps, int64_t epoch) {
  if (!metrics_.enabled())
    return;
  RoundFacts f;
  f.round = progress_.position().round;
  f.step = progress_.position().global_step;
  f.epoch = epoch + 1;
  f.time = progress_.run_seconds();
  f.seconds = round_seconds;
  f.samples = count;
  f.lr = learning_rate(schedule_, progress_.position().global_step - steps);
  f.shard_elements = layout_.shard_length(0);
  f.shard_upload_bytes = upload_bytes(layout_.pieces_of(0), wire_format(config_.wire_dtype));
  f.buffer_elements = buffer_elements(*model_);
  metrics_.write(round_record(f, trainers_, plan(), result));
}

void Coordinator::report_progress(int64_t epoch, int64_t first, double loss_sum) {
  if (!progress_.progress_due())
    return;
  const int64_t done = progress_.position().epoch_position;
  write_prometheus(loss_sum / static_cast<double>(done - first), epoch + 1);
  log_info("{}", progress_.progress_line("round", loss_sum / static_cast<double>(done)));
}

// Evaluation (training time only counts in the epoch's seconds), the epoch's record and table,
// and the epoch checkpoint.
void Coordinator::finish_epoch(int64_t epoch, int64_t first, double loss_sum, int64_t correct,
                               Clock::time_point epoch_start) {
  {
    ScopedSpan span(timeline_, Span::kEvaluate);
    const LeaderActivityScope doing(LeaderActivity::kEvaluating);
    servers_->gather(progress_.position().global_step); // evaluation needs every shard
    run::finish_epoch(
        {epoch, n_ - first, loss_sum, correct, seconds_since(epoch_start), class_labels_}, *model_,
        loss_spec(config_), test_.get(), config_.epochs, summary_);
  }
  metrics_.write(epoch_metrics(summary_.history.back()));
  write_prometheus(summary_.history.back().train_loss, epoch + 1);
  log_trainer_table(trainers_, plan());
  progress_.end_epoch(epoch);
  summary_.final_checkpoint = save("epoch", true);
}

// `between_rounds`: every trainer waits for its next command, so those with an optimizer of their
// own (--sync params/diloco) can be asked for it; a checkpoint in a broken round ("abort", a
// signal mid-round) is written without them.
std::string Coordinator::save(const std::string &tag, bool between_rounds) {
  ScopedSpan span(timeline_, Span::kCheckpoint);
  const LeaderActivityScope doing(LeaderActivity::kCheckpointing);
  servers_->gather(progress_.position().global_step);
  const std::vector<TrainerOptimizerState> trainer_optimizers =
      between_rounds && trainers_keep_optimizer_state(config_)
          ? collect_trainer_optimizers(config_, job_, trainers_, flat_->numel())
          : std::vector<TrainerOptimizerState>{};
  // Checkpoints store every report with the trainer's share in the current plan.
  source_.reports.clear();
  for (nlohmann::json r : report_json_) {
    r["micro_batches"] = 0;
    for (const TrainerState &t : trainers_)
      if (t.world_rank == r["rank"].get<int>()) {
        r["micro_batches"] = share_in(plan(), t.job_rank);
        r["links"] = links_json(t.links); // the link probe's figures to each aggregator
      }
    source_.reports.push_back(r.dump());
  }
  return save_checkpoint(source_, progress_.position(), summary_.history, tag, trainer_optimizers);
}

void Coordinator::write_prometheus(double loss, int64_t epoch) {
  if (config_.prometheus.empty())
    return;
  PrometheusSnapshot p;
  const TrainingPosition &at = progress_.position();
  p.samples_total = at.samples_seen;
  p.samples_per_second = progress_.samples_per_sec();
  p.rounds_total = at.global_step;
  p.epoch = epoch;
  p.loss = loss;
  if (!summary_.history.empty())
    p.test_accuracy = summary_.history.back().test_accuracy;
  p.trainers = prometheus_trainers(trainers_, plan());
  write_prometheus_file(config_.prometheus, p);
}

// Tells every trainer but `except` (world ranks) to stop, waiting a few seconds at most: the job
// is ending anyway, and a trainer that does not listen is killed with it.
void Coordinator::stop_trainers(const std::vector<int> &except) {
  executor_->cancel_out_speeds();
  const Words stop = encode(RoundCommand{RoundCommand::Kind::kStop});
  RequestSet set;
  for (const TrainerState &t : trainers_) {
    if (gone(t) || std::count(except.begin(), except.end(), t.world_rank) > 0)
      continue;
    isend_words(set, stop, peer_of(t), kTagCommand, comm_of(t, job_), "telling it to stop");
  }
  try {
    set.wait_all(std::min(5.0, config_.straggler_timeout));
  } catch (const PeerTimeout &) {
    set.cancel_pending();
  }
  servers_->stop();
}

// The end of a job that completed or stopped on a signal: every trainer is told to stop (and to
// send its --timeline spans), then the shard servers.
void Coordinator::end_job() {
  if (!join_service_.empty())
    unpublish_running(join_service_); // a joiner started from now on is told at once
  executor_->cancel_out_speeds();
  RoundCommand stop{RoundCommand::Kind::kStop};
  stop.send_timeline = timeline_.enabled();
  const Words stop_words = encode(stop);
  RequestSet set;
  for (const TrainerState &t : trainers_)
    if (!gone(t))
      isend_words(set, stop_words, peer_of(t), kTagCommand, comm_of(t, job_),
                  fmt::format("sending the round's command to {}", name_of(t)));
  set.wait_all(config_.straggler_timeout);
  servers_->stop();
  if (timeline_.enabled())
    gather_and_write_timeline();
}

// --timeline: every trainer sends its spans after the stop command that asked for them.
void Coordinator::gather_and_write_timeline() {
  const int64_t chunk = chunk_elements(config_);
  std::vector<std::string> names(static_cast<size_t>(placement_.world_size), "not admitted");
  names[0] = fmt::format("rank 0 ({}) aggregator", process_identity().host);
  for (int j = 1; j < config_.aggregators; ++j)
    names[static_cast<size_t>(j)] = fmt::format("rank {} shard server (no spans)", j);
  for (const TrainerState &t : trainers_) {
    if (gone(t)) {
      names[static_cast<size_t>(t.world_rank)] = name_of(t) + (t.lost ? " lost" : " left");
      continue;
    }
    names[static_cast<size_t>(t.world_rank)] = name_of(t) + " trainer";
    int64_t length = 0;
    RequestSet set;
    MPI_Request r;
    CHECK_MPI(MPI_Irecv(&length, 1, MPI_INT64_T, peer_of(t), kTagTimeline, comm_of(t, job_), &r));
    set.add(r, t.world_rank, fmt::format("the timeline's length from {}", name_of(t)));
    set.wait_all(config_.straggler_timeout);
    // 4 doubles a span; a trainer records a few per round, far fewer than 2^28 doubles (2 GiB).
    if (length < 0 || length % 4 != 0 || length > (int64_t{1} << 28))
      throw ProtocolError(
          fmt::format("{} announced a timeline of {} values (not 4 per span)", name_of(t), length));
    std::vector<double> spans(static_cast<size_t>(length));
    RequestSet data;
    irecv_chunks(data, spans.data(), length, chunk, MPI_DOUBLE, 8, peer_of(t), kTagTimeline,
                 comm_of(t, job_), fmt::format("the timeline from {}", name_of(t)));
    data.wait_all(config_.straggler_timeout);
    timeline_.add_encoded(t.world_rank, spans);
  }
  timeline_.write(config_.timeline, names);
  log_info("timeline: {} spans of {} ranks in {}", timeline_.size(), placement_.world_size,
           config_.timeline);
}

// Host names by world rank for the link table: rank 0's own, the trainers' reports, and a shard
// server's from a rank on its host (it sends no report).
std::vector<std::string> link_host_names(const AdmittedJob &job, int world_size) {
  std::vector<std::string> names(static_cast<size_t>(world_size));
  std::vector<std::string> by_job_rank(job.hosts.size());
  if (!by_job_rank.empty())
    by_job_rank[0] = process_identity().host;
  for (const TrainerState &t : job.trainers) {
    names[static_cast<size_t>(t.world_rank)] = t.report.host;
    by_job_rank.at(static_cast<size_t>(t.job_rank)) = t.report.host;
  }
  for (size_t r = 0; r < job.hosts.size() && r < names.size(); ++r)
    if (names[r].empty())
      names[r] = by_job_rank.at(static_cast<size_t>(job.hosts[r])).empty()
                     ? fmt::format("(host of rank {})", job.hosts[r])
                     : by_job_rank[static_cast<size_t>(job.hosts[r])];
  return names;
}

// --sync-seconds S: rank 0 alone chooses --local-steps from the trainers' start-up speeds (the
// trainers take their steps from each round's command), and says so.
TrainConfig with_sync_period(const TrainConfig &config, const Roster &trainers) {
  TrainConfig decided = config;
  if (config.sync_seconds <= 0 || config.sync == SyncMode::kGradient)
    return decided;
  std::vector<double> speeds;
  for (const TrainerState &t : trainers)
    speeds.push_back(t.speed);
  decided.local_steps = local_steps_for_seconds(config.sync_seconds, config.global_batch, speeds);
  double total = 0;
  for (double s : speeds)
    total += s;
  log_info("--sync-seconds {:g}: {} local steps a round (a global batch of {} takes about {:.3f} "
           "s of compute at the trainers' measured {:.0f} samples/s)",
           config.sync_seconds, decided.local_steps, config.global_batch,
           total > 0 ? static_cast<double>(config.global_batch) / total : 0.0, total);
  return decided;
}

} // namespace

TrainSummary run_coordinator(const TrainConfig &config, const RankPlacement &placement) {
  // Bad data and output paths are found before anyone waits for reports (the trainers read the
  // same files).
  const DatasetMeta meta = read_dataset_meta(data_source(config));
  prepare_outputs(config);
  AdmittedJob admitted = admit_trainers(config, placement.world_size);
  JobComms comms(config, admitted.job, JobRole::kCoordinator);
  admitted.hosts = comms.hosts().host_of;
  admitted.links = probe_links_coordinator(config, admitted.job, &admitted.link_probe_seconds,
                                           &admitted.link_probe_wait_seconds);
  if (!admitted.links.empty())
    log_link_table(admitted.links, link_host_names(admitted, placement.world_size));
  // Each trainer's own figures, for every plan from here on (--sync auto's estimate first).
  for (TrainerState &t : admitted.trainers)
    for (const LinkFigures &f : admitted.links)
      if (f.trainer_rank == t.world_rank)
        t.links.push_back(f);
  torch::set_num_threads(threads_for(config, placement));
  set_leader_activity(LeaderActivity::kRound);
  const SyncDecision sync = decide_sync(config, admitted, comms.hosts(), meta); // --sync auto
  const TrainConfig decided =
      share_sync_decision(with_sync_period(sync.config, admitted.trainers), admitted.job);
  Coordinator coordinator(decided, placement, meta, std::move(admitted), comms, sync.why);
  TrainSummary summary = coordinator.run();
  set_leader_activity(LeaderActivity::kEnding);
  comms.finish(); // the trainers have their stop command: they no longer watch
  return summary;
}

} // namespace hetrain::run
