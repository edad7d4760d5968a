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
#include "host_reduce.h"
#include "link_probe.h"
#include "protocol.h"
#include "roles.h"
#include "round_executor.h"
#include "round_report.h"
#include "run_support.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <csignal>
#include <optional>

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

class Coordinator {
public:
  Coordinator(const TrainConfig &config, const RankPlacement &placement, const DatasetMeta &meta,
              AdmittedJob admitted, const HostMap &hosts);
  TrainSummary run();

private:
  // Decisions
  TrainerSpeed speed_of(const TrainerState &t, bool links_only = false) const;
  Plan plan_for() const;
  RoundEstimate estimate_current(bool links_only = false,
                                 std::vector<AggregatorRate> *rates = nullptr) const;
  void maybe_advise(double round_seconds, double compute_seconds, bool measured);
  std::string slowest_link_text(const TrainerState &t) const;
  std::string longest_measured_transfer() const;
  int trainer_hosts() const;
  void assign_round(int64_t epoch, int64_t start, int64_t count, int64_t steps, int attempt);
  RoundResult run_round(int64_t epoch, int64_t start, int64_t count, int64_t steps);
  void on_late(const RoundResult &result, int64_t epoch);
  void drop_trainers(const std::vector<int> &world_ranks, const std::string &why);
  void set_uploaders();
  void set_participation();
  void record_plan(const std::string &why);
  void take_out_speeds();
  void describe_host_groups(const HostGrouping &grouping);
  void maybe_replan();
  bool stop_requested(bool last_round_of_epoch);
  // Carrying them out
  void account(double round_seconds, const RoundResult &result);
  void write_round_metrics(const RoundResult &result, double round_seconds, int64_t count,
                           int64_t steps, int64_t epoch);
  void report_progress(int64_t epoch, int64_t first, double loss_sum);
  void finish_epoch(int64_t epoch, int64_t first, double loss_sum, int64_t correct,
                    Clock::time_point epoch_start);
  std::string save(const std::string &tag);
  void write_prometheus(double loss, int64_t epoch);
  void stop_trainers(const std::vector<int> &except);
  void end_job();
  void gather_and_write_timeline();

  const TrainConfig &config_;
  const RankPlacement placement_;
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
  const ShardLayout layout_;
  TrainSummary summary_;
  TrainingPosition position_, resumed_;
  CheckpointSource source_;
  Plan plan_;
  Timeline timeline_;
  MetricsFile metrics_;
  std::unique_ptr<ShardServers> servers_;
  std::unique_ptr<RoundExecutor> executor_;
  Clock::time_point run_start_ = Clock::now(), last_progress_ = Clock::now();
  int64_t rounds_since_plan_ = 0;
  std::optional<Plan> previous_plan_;       // the plan replaced last (replan.h: hysteresis)
  int pending_signal_ = 0;                  // SIGTERM/SIGUSR1 seen here or reported by a trainer
  std::vector<HostGroup> groups_;           // --host-reduce
  int64_t uploads_ = 0, upload_rounds_ = 0; // uploads rank 0 received over the completed rounds
  bool advised_ = false;                    // the communication-bound warning is given once
  double measured_round_ = -1, measured_compute_ = -1; // smoothed, for that warning
};

Coordinator::Coordinator(const TrainConfig &config, const RankPlacement &placement,
                         const DatasetMeta &meta, AdmittedJob admitted, const HostMap &hosts)
    : config_(config), placement_(placement), job_(admitted.job),
      trainers_(std::move(admitted.trainers)), report_json_(std::move(admitted.reports)),
      hosts_(std::move(admitted.hosts)), links_(std::move(admitted.links)),
      spec_(spec_of(config, meta)), class_labels_(meta.class_labels()),
      place_(choose_aggregator_device(config.aggregator_device, placement)),
      n_(config.limit_train_samples > 0 ? std::min(config.limit_train_samples, meta.count)
                                        : meta.count),
      G_(config.global_batch), m_(config.micro_batch),
      local_steps_(config.sync == SyncMode::kParams ? config.local_steps : 1),
      round_samples_(G_ * local_steps_), // samples of the epoch's order per round
      schedule_(lr_schedule(config, (n_ + G_ - 1) / G_)), layout_([&] {
        torch::manual_seed(config.seed);
        model_ = make_model(spec_);
        model_->to(place_.device); // the master parameters and the optimizer state live here
        flat_ = std::make_unique<FlatParameters>(*model_);
        return shard_layout_checked(flat_->numel(), config);
      }()),
      timeline_(!config.timeline.empty()),
      metrics_(config.metrics.empty() ? MetricsFile() : MetricsFile(config.metrics)) {
  const Normalization normalization{meta.mean, meta.std};
  test_ = open_test_data(config, meta, normalization);
  optimizer_ =
      std::make_unique<Optimizer>(optimizer_options(config), flat_->numel(), place_.device);
  summary_.aggregators = config.aggregators;
  summary_.world_size = placement.world_size;
  summary_.model = spec_.label();
  summary_.parameters = flat_->numel();
  summary_.epochs = config.epochs;
  summary_.aggregator_device = place_.device.str();
  summary_.amp = name_of(config.amp);
  // --resume: rank 0 alone reads the checkpoint; the trainers get the parameters as at any start,
  // and each round's command says where in which epoch it is.
  const std::string fingerprint = model_fingerprint(*model_, spec_);
  if (auto resume = find_resume_point(config, spec_, fingerprint))
    position_ = restore_training(*resume, *model_, *flat_, *optimizer_, summary_);
  resumed_ = position_;
  source_ = CheckpointSource{
      &config,          spec_,      normalization,        model_.get(), flat_.get(),
      optimizer_.get(), &schedule_, placement.world_size, {},           fingerprint};
  for (TrainerState &t : trainers_)
    for (const LinkFigures &f : links_)
      if (f.trainer_rank == t.world_rank)
        t.links.push_back(f);
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
  plan_ = plan_for();
  describe_host_groups(job_host_groups(config, hosts));
  servers_ = std::make_unique<ShardServers>(config, layout_, job_, placement.world_size, *flat_,
                                            *optimizer_);
  servers_->setup(trainers_);
  executor_ = std::make_unique<RoundExecutor>(config, job_, *model_, *flat_, *optimizer_, layout_,
                                              *servers_, trainers_, timeline_, place_.reduce,
                                              place_.device, threads_for(config, placement));
  log_info("model {}: {} parameters{}", spec_.label(), flat_->numel(), describe_frozen(*model_));
  log_info("aggregator: master parameters and optimizer on {}; reduce on {}", place_.device.str(),
           executor_->reduce_description());
  record_plan("start-up");
  maybe_advise(plan_.estimated_round_seconds, -1, false);
}

TrainSummary Coordinator::run() {
  // No parameters go out here: each trainer gets them with its first kRound or kSkip, so a
  // trainer the plan leaves out costs the job nothing, not even at the start (DESIGN §5).
  run_start_ = Clock::now();
  last_progress_ = Clock::now();
  for (int64_t epoch = resumed_.epoch; epoch < config_.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    // A resumed epoch goes on from the saved position; its record covers this part only.
    position_ = start_of_epoch(position_, resumed_, epoch, n_);
    const int64_t first = position_.epoch_position;
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t start = first; start < n_; start += round_samples_) {
      if (fault_kills_in_round(0, position_.round + 1)) {
        log_warn("--fault-kill-rank: rank 0 dying (SIGKILL) before round {}",
                 position_.global_step + 1);
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
      position_.epoch_position = start + count;
      position_.round += 1;
      position_.global_step += steps;
      position_.samples_seen += count;
      write_round_metrics(result, round_seconds, count, steps, epoch);
      report_progress(epoch, first, loss_sum);
      maybe_replan();
      const bool last = start + count >= n_;
      if (config_.checkpoint_every > 0 && position_.global_step % config_.checkpoint_every == 0 &&
          !last)
        save("step");
      if (stop_requested(last)) {
        summary_.final_checkpoint = save("signal");
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
  CHECK_MPI(MPI_Comm_free(&job_));
  if (summary_.stopped_by_signal != 0) {
    log_warn("{}: stopped at step {} (epoch {}), wrote {}; continue with --resume auto",
             signal_name(summary_.stopped_by_signal), position_.global_step, position_.epoch + 1,
             summary_.final_checkpoint);
    return summary_;
  }
  for (const TrainerState &t : trainers_) {
    summary_.trainers.push_back({t.world_rank, t.report.host, share_in(plan_, t.job_rank),
                                 t.samples, t.compute_seconds, t.wait_seconds, t.micro_batch,
                                 t.lost, t.data_wait_seconds, t.out_rounds, t.out_seconds,
                                 t.speed});
    summary_.compute_seconds += t.compute_seconds;
    summary_.data_wait_seconds += t.data_wait_seconds;
  }
  summary_.uploads_per_round =
      upload_rounds_ > 0 ? static_cast<double>(uploads_) / static_cast<double>(upload_rounds_) : 0;
  finish_run(config_, position_, summary_);
  return summary_;
}

// What the plan knows of a trainer: its speed, and per aggregator the bytes it moves each round
// over the measured link (the wire dtype up, fp32 parameters down; BatchNorm buffers go with
// rank 0's pieces) or, without a probe, the old assumption of 1 GB/s for the whole buffer; and
// once it has worked, what rank 0 measured of its transfer (not with `links_only`).
TrainerSpeed Coordinator::speed_of(const TrainerState &t, bool links_only) const {
  TrainerSpeed s{t.job_rank, t.report.host, t.speed, 0, {}, links_only ? -1 : t.comm_seconds};
  if (t.links.empty())
    s.comm_seconds = transfer_seconds(flat_->numel() * 4);
  const auto wire = static_cast<double>(wire_format(config_.wire_dtype).bytes);
  const auto buffers = static_cast<double>(buffer_elements(*model_)) * 4;
  // A same-host pair is shared memory, not a network link: its cost is taken at no less than the
  // old 1 GB/s and no latency. The probe measures it with 64 KiB only, and on a host whose cores
  // are all busy that figure is scheduling noise (tens of MB/s), which once left a trainer of a
  // one-machine job out of the plan.
  for (const LinkFigures &f : t.links) {
    const auto shard = static_cast<double>(layout_.shard_length(f.aggregator_rank));
    const double extra = f.aggregator_rank == 0 ? buffers : 0.0;
    const double floor = f.same_host ? ReplanPolicy{}.assumed_link_bytes_per_second : 0.0;
    s.links.push_back({f.aggregator_rank, shard * wire + extra, shard * 4 + extra,
                       std::max(f.up_mb_per_s * 1e6, floor), std::max(f.down_mb_per_s * 1e6, floor),
                       f.same_host ? 0.0 : f.latency_ms / 1e3, f.same_host});
  }
  return s;
}

// The current plan under today's figures, with the aggregator links rated from every trainer
// still in the job, as make_plan rates them (so that keeping and changing the plan compare
// alike). `links_only`: from the probe's rates, without the measured transfers; `rates`, when
// given, receives the aggregator rates.
RoundEstimate Coordinator::estimate_current(bool links_only,
                                            std::vector<AggregatorRate> *rates) const {
  std::vector<TrainerSpeed> all, in_plan;
  for (const TrainerState &t : trainers_)
    if (!t.lost)
      all.push_back(speed_of(t, links_only));
  for (int rank : plan_.ranks)
    in_plan.push_back(speed_of(trainer_at(trainers_, rank), links_only));
  const std::vector<AggregatorRate> aggregators = aggregator_rates(all);
  if (rates)
    *rates = aggregators;
  return estimate_round(in_plan, plan_.micro_batches, m_, aggregators);
}

// A plan over the trainers still in the job. --balance static shares follow their trainers, so a
// lost trainer's share goes away with it.
Plan Coordinator::plan_for() const {
  BalancePolicy policy = parse_balance(config_.balance);
  std::vector<TrainerSpeed> speeds;
  std::vector<double> shares;
  for (size_t j = 0; j < trainers_.size(); ++j) {
    if (trainers_[j].lost)
      continue;
    const TrainerState &t = trainers_[j];
    speeds.push_back(speed_of(t));
    if (policy.kind == BalancePolicy::Kind::Static && j < policy.static_shares.size())
      shares.push_back(policy.static_shares[j]);
  }
  if (policy.kind == BalancePolicy::Kind::Static && speeds.size() < trainers_.size())
    policy.static_shares = shares;
  return make_plan(speeds, G_ / m_, m_, policy);
}

// Every trainer's command for the round: its slice of the epoch's order by the plan, or a skip.
void Coordinator::assign_round(int64_t epoch, int64_t start, int64_t count, int64_t steps,
                               int attempt) {
  const RoundShard shard = shard_round(plan_.micro_batches, m_ * local_steps_, start, count);
  for (TrainerState &t : trainers_) {
    t.working = false;
    t.command = RoundCommand{RoundCommand::Kind::kSkip, epoch, 0,       0,
                             position_.global_step,     steps, attempt, false};
  }
  for (size_t p = 0; p < plan_.ranks.size(); ++p) {
    if (shard.counts[p] == 0)
      continue;
    TrainerState &t = trainers_[static_cast<size_t>(plan_.ranks[p] - config_.aggregators)];
    t.command.kind = RoundCommand::Kind::kRound;
    t.command.offset = shard.offsets[p];
    t.command.count = shard.counts[p];
    t.working = true;
  }
  set_uploaders();
  set_participation();
}

// Who takes part in the round (DESIGN §5, "A trainer out of the plan"). A trainer that neither
// computes nor uploads is told kOut once and then gets nothing: no parameters, no wait for it.
// Only now and then (every half --straggler-timeout) does kOut go again, so that its wait for a
// command keeps a deadline. One coming back gets the current parameters before the round.
void Coordinator::set_participation() {
  const auto now = std::chrono::steady_clock::now();
  const auto keep_alive = std::chrono::duration<double>(config_.straggler_timeout / 2);
  for (TrainerState &t : trainers_) {
    t.in_round = !t.lost && (t.working || t.uploading);
    t.refresh = t.in_round && !t.has_params;
    if (t.in_round) {
      t.send_command = true;
      t.has_params = true;
      if (t.told_out) {
        log_info("{} is back in the plan from round {}: the current parameters go to it first",
                 name_of(t), position_.global_step + 1);
        summary_.plan_moves.push_back({t.world_rank, position_.global_step + 1, true});
      }
      t.told_out.reset();
      continue;
    }
    t.command.kind = RoundCommand::Kind::kOut;
    t.send_command = !t.lost && (t.has_params || !t.told_out || now - *t.told_out > keep_alive);
    // Re-measured as often as the plan is reconsidered, so that a machine that recovers comes
    // back: it times 2 micro-batches on its own; nobody waits for the answer.
    if (!t.lost && config_.rebalance_every > 0 && t.out_speed_request == MPI_REQUEST_NULL &&
        ++t.rounds_since_measured >= config_.rebalance_every) {
      t.rounds_since_measured = 0;
      t.command.count = 2 * m_;
      t.send_command = true;
    }
    if (!t.lost && !t.told_out) {
      log_info("{} is out of the plan from round {}: it gets no parameters and nobody waits for "
               "it until a plan brings it back",
               name_of(t), position_.global_step + 1);
      summary_.plan_moves.push_back({t.world_rank, position_.global_step + 1, false});
    }
    if (t.send_command)
      t.told_out = now;
    t.has_params = false;
  }
}

// Who uploads this round (DESIGN §6): every working trainer, except that a --host-reduce group
// uploads once, through its leader, whose command names the members that send it their sums.
void Coordinator::set_uploaders() {
  std::vector<bool> working;
  for (const TrainerState &t : trainers_)
    working.push_back(t.working);
  const std::vector<bool> up = uploaders(groups_, working, config_.aggregators);
  for (size_t j = 0; j < trainers_.size(); ++j)
    trainers_[j].uploading = up[j];
  for (const HostGroup &g : groups_)
    trainers_[static_cast<size_t>(g.leader - config_.aggregators)].command.members =
        member_mask(g, working, config_.aggregators);
}

// Once at the start: the host groups (or why there are none), as every rank computed them.
void Coordinator::describe_host_groups(const HostGrouping &grouping) {
  groups_ = grouping.groups;
  if (groups_.empty() && config_.host_reduce != HostReduce::kOff)
    log_info("host reduce: off ({}): {}", name_of(config_.host_reduce), grouping.off_reason);
  for (const HostGroup &g : groups_) {
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

// A round is redone (attempt 1, 2, ...) after --on-trainer-loss continue dropped a trainer in it:
// the same samples, re-planned over the survivors, from the same parameters.
RoundResult Coordinator::run_round(int64_t epoch, int64_t start, int64_t count, int64_t steps) {
  const RoundOrder order{position_.global_step + 1, position_.global_step, count,
                         learning_rate(schedule_, position_.global_step)};
  for (int attempt = 0;; ++attempt) {
    assign_round(epoch, start, count, steps, attempt);
    RoundResult result = executor_->execute(order);
    switch (result.end) {
    case RoundResult::End::kComplete:
      if (result.broadcast_late.any()) {
        if (config_.on_trainer_loss != TrainerLoss::kContinue)
          throw *result.broadcast_late.error;
        executor_->discard_round();
        drop_trainers(result.broadcast_late.world_ranks,
                      fmt::format("did not take parameters within --straggler-timeout {} s",
                                  config_.straggler_timeout));
      }
      return result;
    case RoundResult::End::kLate:
      on_late(result, epoch);
      break;
    case RoundResult::End::kAbandoned: {
      const std::string path = save("signal");
      throw RoundAbandoned(fmt::format("{}: abandoned it and wrote {} (the last complete round); "
                                       "continue with --resume auto",
                                       result.abandoned, path));
    }
    }
  }
}

// A trainer did not deliver within --straggler-timeout. abort: save the last complete round, stop
// the others (under mpirun --enable-recovery nothing else would) and end the job naming it.
// continue: go on without it; the survivors get the unchanged parameters and the round again.
void Coordinator::on_late(const RoundResult &result, int64_t epoch) {
  const std::vector<int> &late = result.late.world_ranks;
  if (config_.on_trainer_loss != TrainerLoss::kContinue) {
    const std::string path = save("abort");
    log_error("lost {} in round {} (epoch {}); wrote {} (the last complete round)",
              late_text(trainers_, late, false), position_.global_step + 1, epoch + 1, path);
    stop_trainers(late);
    throw *result.late.error;
  }
  executor_->discard_round();
  drop_trainers(late, fmt::format("no answer in round {} within --straggler-timeout {} s",
                                  position_.global_step + 1, config_.straggler_timeout));
  const LatePeers again = executor_->broadcast();
  if (again.any()) {
    executor_->discard_round();
    drop_trainers(again.world_ranks,
                  fmt::format("did not take parameters within --straggler-timeout {} s",
                              config_.straggler_timeout));
  }
}

// --on-trainer-loss continue: the job goes on without these trainers, on a new plan.
void Coordinator::drop_trainers(const std::vector<int> &world_ranks, const std::string &why) {
  for (int r : world_ranks)
    for (TrainerState &t : trainers_)
      if (t.world_rank == r && !t.lost) {
        t.lost = true;
        const std::string what =
            fmt::format("{}, last completed round {}: {}", name_of(t), t.last_round, why);
        log_error("lost {}; going on without it (--on-trainer-loss continue)", what);
        summary_.lost_trainers.push_back(what);
      }
  if (std::all_of(trainers_.begin(), trainers_.end(),
                  [](const TrainerState &t) { return t.lost; })) {
    const std::string path = save("abort");
    throw PeerTimeout(world_ranks.empty() ? 0 : world_ranks.front(),
                      fmt::format("every trainer is lost (the last {}); wrote {}", why, path));
  }
  previous_plan_ = plan_;
  plan_ = plan_for();
  record_plan(fmt::format("after round {} (without the lost rank {})", position_.global_step,
                          rank_list(world_ranks)));
}

// A plan just adopted (the first: at start-up), with why: its notes (who is left out and why) and
// the plan in the log, the summary's plan_history and a "plan" record of --metrics (the shares plot
// marks it).
void Coordinator::record_plan(const std::string &why) {
  for (const std::string &note : plan_.notes)
    log_info("plan: {}", note);
  const std::string text = plan_text(plan_, trainers_, m_);
  summary_.plan_history.push_back(why + ": " + text);
  summary_.plan_notes.push_back(plan_.notes);
  if (summary_.plan_history.size() == 1)
    log_info("plan: {}", text);
  else
    log_info("re-plan {}", summary_.plan_history.back());
  if (!metrics_.enabled())
    return;
  nlohmann::json shares = nlohmann::json::object();
  for (size_t p = 0; p < plan_.ranks.size(); ++p)
    shares[std::to_string(trainer_at(trainers_, plan_.ranks[p]).world_rank)] =
        plan_.micro_batches[p];
  metrics_.write({{"type", "plan"},
                  {"time", seconds_since(run_start_)},
                  {"step", position_.global_step},
                  {"reason", why},
                  {"shares", shares},
                  {"estimated_round_seconds", plan_.estimated_round_seconds},
                  {"notes", plan_.notes}});
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

// Every --rebalance-every rounds: a new plan from the measured speeds, when it is worth it.
void Coordinator::maybe_replan() {
  if (config_.rebalance_every <= 0 || ++rounds_since_plan_ < config_.rebalance_every)
    return;
  rounds_since_plan_ = 0;
  Plan next = plan_for();
  const double keep = estimate_current().seconds;
  double noise = 0; // the noisiest working trainer's smoothed speed
  for (const TrainerState &t : trainers_)
    if (!t.lost && share_in(plan_, t.job_rank) > 0)
      noise = std::max(noise, smoothed_speed_noise(t.speed_variance));
  if (!should_adopt(next, plan_, keep, previous_plan_ ? &*previous_plan_ : nullptr, noise))
    return;
  std::string speeds;
  for (const TrainerState &t : trainers_)
    if (!t.lost)
      speeds += fmt::format("{}{} {:.0f}", speeds.empty() ? "" : ", ", t.world_rank, t.speed);
  const std::string why = fmt::format(
      "after round {} (estimated {:.4f} s a round against {:.4f} s keeping the plan, {:.0f}% "
      "less, {:.0f}% needed; measured samples/s of ranks {})",
      position_.global_step, next.estimated_round_seconds, keep,
      100.0 * (1.0 - next.estimated_round_seconds / keep),
      100.0 * required_gain(previous_plan_ && same_split(next, *previous_plan_), noise), speeds);
  previous_plan_ = plan_;
  plan_ = next;
  record_plan(why);
}

// SIGTERM/SIGUSR1 here or at a trainer (it says so in its statistics): after a complete round
// that is not the epoch's last (the epoch's end checkpoints anyway), the job stops.
bool Coordinator::stop_requested(bool last_round_of_epoch) {
  for (const TrainerState &t : trainers_)
    if (t.working && pending_signal_ == 0 && t.stats.stop_signal != 0)
      pending_signal_ = t.stats.stop_signal;
  if (pending_signal_ == 0)
    pending_signal_ = stop_signal();
  return pending_signal_ != 0 && !last_round_of_epoch;
}

// Statistics of the working trainers: their totals, smoothed speeds, what they run on.
void Coordinator::account(double round_seconds, const RoundResult &result) {
  double compute = 0;
  for (TrainerState &t : trainers_) {
    if (!t.lost && !t.in_round) {
      ++t.out_rounds;
      t.out_seconds += round_seconds;
    }
    if (!t.working)
      continue;
    const RoundStats &s = t.stats;
    compute = std::max(compute, s.compute_seconds);
    // Its transfer and wait as rank 0 sees it: the arrival of its last message minus its
    // compute, smoothed like the speed (replan.h).
    const double arrival = result.arrival_seconds.at(static_cast<size_t>(&t - trainers_.data()));
    if (arrival >= 0) {
      const double comm = std::max(0.0, arrival - s.compute_seconds);
      t.comm_seconds = t.comm_seconds < 0 ? comm : 0.7 * t.comm_seconds + 0.3 * comm;
    }
    t.samples += s.samples;
    t.compute_seconds += s.compute_seconds;
    t.data_wait_seconds += s.data_wait_seconds;
    t.wait_seconds += std::max(0.0, round_seconds - s.compute_seconds);
    t.last_round = position_.global_step + 1;
    if (s.micro_batch != t.micro_batch)
      log_warn("{} now runs micro-batches of {} samples (--micro-batch {}): it ran out of "
               "device memory",
               name_of(t), s.micro_batch, m_);
    t.micro_batch = s.micro_batch;
    t.gpu = GpuSample{s.gpu_valid, s.gpu_utilization, s.gpu_memory_used, s.gpu_temperature,
                      s.gpu_power};
    const auto samples = static_cast<double>(s.samples);
    t.speed_variance =
        speed_variance(t.speed_variance, t.speed, t.last_round_speed, samples, s.compute_seconds);
    if (s.compute_seconds > 0)
      t.last_round_speed = samples / s.compute_seconds;
    t.speed = smoothed_speed(t.speed, samples, s.compute_seconds);
  }
  // The first round carries warm-up (allocations, first touches): measured from the second on.
  if (position_.round < 1)
    return;
  measured_round_ =
      measured_round_ < 0 ? round_seconds : 0.7 * measured_round_ + 0.3 * round_seconds;
  measured_compute_ = measured_compute_ < 0 ? compute : 0.7 * measured_compute_ + 0.3 * compute;
  if (position_.round >= 3)
    maybe_advise(measured_round_, measured_compute_, true);
}

// Once per run: a round whose communication takes longer than its compute, and what would help.
// `compute_seconds` < 0: take it from the cost model (the estimate at the start).
void Coordinator::maybe_advise(double round_seconds, double compute_seconds, bool measured) {
  if (advised_ || plan_.ranks.empty())
    return;
  // The cost model from the probe's link rates alone (not the measured transfers), so that a
  // measured round can be held against what the links explain.
  std::vector<AggregatorRate> rates;
  const RoundEstimate e = estimate_current(true, &rates);
  CommunicationFacts f;
  f.compute_seconds = compute_seconds < 0 ? e.compute_seconds : compute_seconds;
  f.round_seconds = round_seconds;
  f.measured = measured;
  f.model_round_seconds = e.seconds;
  f.model_compute_seconds = e.compute_seconds;
  f.model_trainer_seconds = e.trainer_seconds;
  f.model_aggregator_seconds = e.aggregator_seconds;
  f.upload_fraction = e.transfer_seconds > 0 ? e.upload_seconds / e.transfer_seconds : 0.5;
  if (e.slowest_trainer >= 0)
    f.slowest_trainer = slowest_link_text(trainer_at(trainers_, plan_.ranks[e.slowest_trainer]));
  if (e.busiest_aggregator >= 0)
    f.busiest_aggregator = fmt::format("rank {} ({:.1f} MB/s)", e.busiest_aggregator,
                                       rates[e.busiest_aggregator].up_bytes_per_sec / 1e6);
  f.longest_measured = longest_measured_transfer();
  f.wire_bytes = static_cast<int>(wire_format(config_.wire_dtype).bytes);
  f.aggregators = config_.aggregators;
  f.hosts = trainer_hosts();
  f.params_mode = config_.sync == SyncMode::kParams;
  f.local_steps = local_steps_;
  const std::string advice = communication_advice(f);
  if (advice.empty())
    return;
  advised_ = true;
  log_warn("{}", advice);
}

// "rank 3 (h3), its link 1.7 MB/s": a trainer and the slowest of its measured off-host links.
std::string Coordinator::slowest_link_text(const TrainerState &t) const {
  double slowest = -1;
  for (const LinkFigures &f : t.links)
    if (!f.same_host && (slowest < 0 || std::min(f.up_mb_per_s, f.down_mb_per_s) < slowest))
      slowest = std::min(f.up_mb_per_s, f.down_mb_per_s);
  return slowest < 0 ? name_of(t) : fmt::format("{}, its link {:.1f} MB/s", name_of(t), slowest);
}

// "rank 3 (h3), 1.20 s a round": the working trainer whose measured transfer is longest.
std::string Coordinator::longest_measured_transfer() const {
  const TrainerState *longest = nullptr;
  for (const TrainerState &t : trainers_)
    if (!t.lost && t.comm_seconds >= 0 && (!longest || t.comm_seconds > longest->comm_seconds))
      longest = &t;
  return longest ? fmt::format("{}, {:.3f} s a round", name_of(*longest), longest->comm_seconds)
                 : std::string();
}

// Distinct hosts of the trainers.
int Coordinator::trainer_hosts() const {
  std::vector<int> hosts;
  for (const TrainerState &t : trainers_)
    if (static_cast<size_t>(t.job_rank) < hosts_.size())
      hosts.push_back(hosts_[static_cast<size_t>(t.job_rank)]);
  std::sort(hosts.begin(), hosts.end());
  return static_cast<int>(std::unique(hosts.begin(), hosts.end()) - hosts.begin());
}

void Coordinator::write_round_metrics(const RoundResult &result, double round_seconds,
                                      int64_t count, int64_t steps, int64_t epoch) {
  if (!metrics_.enabled())
    return;
  RoundFacts f;
  f.round = position_.round;
  f.step = position_.global_step;
  f.epoch = epoch + 1;
  f.time = seconds_since(run_start_);
  f.seconds = round_seconds;
  f.samples = count;
  f.lr = learning_rate(schedule_, position_.global_step - steps);
  f.shard_elements = layout_.shard_length(0);
  f.wire_bytes = static_cast<int64_t>(wire_format(config_.wire_dtype).bytes);
  f.buffer_elements = buffer_elements(*model_);
  metrics_.write(round_metrics(f, trainers_, plan_, result));
}

void Coordinator::report_progress(int64_t epoch, int64_t first, double loss_sum) {
  if (seconds_since(last_progress_) < config_.progress_seconds)
    return;
  last_progress_ = Clock::now();
  write_prometheus(loss_sum / static_cast<double>(position_.epoch_position - first), epoch + 1);
  const double rate = static_cast<double>(position_.samples_seen - resumed_.samples_seen) /
                      seconds_since(run_start_);
  const double remaining = static_cast<double>(n_ * config_.epochs - position_.samples_seen) / rate;
  log_info("epoch {}/{} round {}/{} | {:.0f} samples/s | loss {:.4f} | ETA {}", epoch + 1,
           config_.epochs, position_.round, (n_ + round_samples_ - 1) / round_samples_, rate,
           loss_sum / static_cast<double>(position_.epoch_position), format_duration(remaining));
}

// Evaluation (training time only counts in the epoch's seconds), the epoch's record and table,
// and the epoch checkpoint.
void Coordinator::finish_epoch(int64_t epoch, int64_t first, double loss_sum, int64_t correct,
                               Clock::time_point epoch_start) {
  {
    ScopedSpan span(timeline_, Span::kEvaluate);
    const LeaderActivityScope doing(LeaderActivity::kEvaluating);
    servers_->gather(); // evaluation needs every shard's parameters
    run::finish_epoch(
        {epoch, n_ - first, loss_sum, correct, seconds_since(epoch_start), class_labels_}, *model_,
        loss_spec(config_), test_.get(), config_.epochs, summary_);
  }
  metrics_.write(epoch_metrics(summary_.history.back()));
  write_prometheus(summary_.history.back().train_loss, epoch + 1);
  log_trainer_table(trainers_, plan_);
  position_.epoch = epoch + 1;
  position_.epoch_position = 0;
  position_.round = 0;
  summary_.final_checkpoint = save("epoch");
}

std::string Coordinator::save(const std::string &tag) {
  ScopedSpan span(timeline_, Span::kCheckpoint);
  const LeaderActivityScope doing(LeaderActivity::kCheckpointing);
  servers_->gather();
  // Checkpoints store every report with the trainer's share in the current plan.
  source_.reports.clear();
  for (nlohmann::json r : report_json_) {
    r["micro_batches"] = 0;
    for (const TrainerState &t : trainers_)
      if (t.world_rank == r["rank"].get<int>()) {
        r["micro_batches"] = share_in(plan_, t.job_rank);
        r["links"] = links_json(t.links); // the link probe's figures to each aggregator
      }
    source_.reports.push_back(r.dump());
  }
  return save_checkpoint(source_, position_, summary_.history, tag);
}

void Coordinator::write_prometheus(double loss, int64_t epoch) {
  if (config_.prometheus.empty())
    return;
  PrometheusSnapshot p;
  p.samples_total = position_.samples_seen;
  p.samples_per_second = static_cast<double>(position_.samples_seen - resumed_.samples_seen) /
                         std::max(1e-9, seconds_since(run_start_));
  p.rounds_total = position_.global_step;
  p.epoch = epoch;
  p.loss = loss;
  if (!summary_.history.empty())
    p.test_accuracy = summary_.history.back().test_accuracy;
  p.trainers = prometheus_trainers(trainers_, plan_);
  write_prometheus_file(config_.prometheus, p);
}

// Tells every trainer but `except` (world ranks) to stop, waiting a few seconds at most: the job
// is ending anyway, and a trainer that does not listen is killed with it.
void Coordinator::stop_trainers(const std::vector<int> &except) {
  executor_->cancel_out_speeds();
  const Words stop = encode(RoundCommand{RoundCommand::Kind::kStop});
  RequestSet set;
  for (const TrainerState &t : trainers_) {
    if (t.lost || std::count(except.begin(), except.end(), t.world_rank) > 0)
      continue;
    isend_words(set, stop, t.job_rank, kTagCommand, job_, "telling it to stop");
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
  executor_->cancel_out_speeds();
  RoundCommand stop{RoundCommand::Kind::kStop};
  stop.send_timeline = timeline_.enabled();
  const Words stop_words = encode(stop);
  RequestSet set;
  for (const TrainerState &t : trainers_)
    if (!t.lost)
      isend_words(set, stop_words, t.job_rank, kTagCommand, job_,
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
    if (t.lost) {
      names[static_cast<size_t>(t.world_rank)] = name_of(t) + " lost";
      continue;
    }
    names[static_cast<size_t>(t.world_rank)] = name_of(t) + " trainer";
    int64_t length = 0;
    RequestSet set;
    MPI_Request r;
    CHECK_MPI(MPI_Irecv(&length, 1, MPI_INT64_T, t.job_rank, kTagTimeline, job_, &r));
    set.add(r, t.world_rank, fmt::format("the timeline's length from {}", name_of(t)));
    set.wait_all(config_.straggler_timeout);
    // 4 doubles a span; a trainer records a few per round, far fewer than 2^28 doubles (2 GiB).
    if (length < 0 || length % 4 != 0 || length > (int64_t{1} << 28))
      throw ProtocolError(
          fmt::format("{} announced a timeline of {} values (not 4 per span)", name_of(t), length));
    std::vector<double> spans(static_cast<size_t>(length));
    RequestSet data;
    irecv_chunks(data, spans.data(), length, chunk, MPI_DOUBLE, 8, t.job_rank, kTagTimeline, job_,
                 fmt::format("the timeline from {}", name_of(t)));
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

} // namespace

TrainSummary run_coordinator(const TrainConfig &config, const RankPlacement &placement) {
  // Bad data and output paths are found before anyone waits for reports (the trainers read the
  // same files).
  const DatasetMeta meta = read_dataset_meta(data_source(config));
  prepare_outputs(config);
  AdmittedJob admitted = admit_trainers(config, placement.world_size);
  const HostMap hosts = exchange_hosts(config, admitted.job); // collective: every job rank, now
  admitted.hosts = hosts.host_of;
  // The heartbeat's own communicator: beats never match a round's receives (comm/heartbeat.h).
  MPI_Comm beat_comm = MPI_COMM_NULL;
  CHECK_MPI(MPI_Comm_dup(admitted.job, &beat_comm)); // collective: every job rank, now
  CHECK_MPI(MPI_Comm_set_errhandler(beat_comm, MPI_ERRORS_RETURN));
  std::optional<HeartbeatSender> heart;
  if (mpi_thread_multiple()) {
    int job_size = 1;
    CHECK_MPI(MPI_Comm_size(beat_comm, &job_size));
    std::vector<int> peers;
    for (int r = 1; r < job_size; ++r)
      peers.push_back(r);
    heart.emplace(beat_comm, std::move(peers), heartbeat_period(config.straggler_timeout));
  } else {
    log_warn("this MPI offers no MPI_THREAD_MULTIPLE: no heartbeat, so the other ranks find a "
             "lost rank 0 only after {:.0f} s",
             2 * config.straggler_timeout + 60);
  }
  admitted.links = probe_links_coordinator(config, admitted.job, &admitted.link_probe_seconds,
                                           &admitted.link_probe_wait_seconds);
  if (!admitted.links.empty())
    log_link_table(admitted.links, link_host_names(admitted, placement.world_size));
  torch::set_num_threads(threads_for(config, placement));
  set_leader_activity(LeaderActivity::kRound);
  Coordinator coordinator(config, placement, meta, std::move(admitted), hosts);
  TrainSummary summary = coordinator.run();
  set_leader_activity(LeaderActivity::kEnding);
  heart.reset(); // the trainers have their stop command: they no longer watch
  CHECK_MPI(MPI_Comm_free(&beat_comm));
  return summary;
}

} // namespace hetrain::run
