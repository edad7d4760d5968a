// A trainer of the distributed job (world ranks A..W-1; DESIGN §1-§7). Read it top to bottom:
//
//   probe + benchmark this node -> report to rank 0 -> admission verdict
//   each round (command from rank 0: which positions of the epoch's order, which step):
//     before the first round, and after being out of the plan: receive the current parameters
//     sum the gradients of its micro-batches (or take --local-steps steps in params mode),
//     send statistics, the sum (each piece to its owner, in the wire dtype) and BatchNorm
//     buffers, then receive the new parameters (each piece from its owner)
//   kOut: out of the plan; nothing follows, wait for the next command
//   kStop: send the --timeline spans if asked, leave
//
// --host-reduce (DESIGN §6): a group member sends its sum (fp32) to its host's leader instead of
// the aggregators; the leader adds its working members' sums into its own and uploads the host's
// sum, also in a round where it has no samples itself (kSkip with members set).
#include "hetrain/cluster/node_report.h"
#include "hetrain/cluster/report_message.h"
#include "hetrain/cluster/training_probe.h"
#include "hetrain/comm/check_mpi.h"
#include "hetrain/comm/messages.h"
#include "hetrain/common/faults.h"
#include "hetrain/common/log.h"
#include "hetrain/common/signals.h"
#include "hetrain/common/system_info.h"
#include "hetrain/model/models.h"
#include "hetrain/observe/gpu_monitor.h"
#include "hetrain/observe/timeline.h"
#include "hetrain/run/join.h"
#include "hetrain/schedule/plan.h"
#include "hetrain/train/amp.h"
#include "hetrain/train/compute.h"

#include "clock.h"
#include "host_reduce.h"
#include "host_relay.h"
#include "job_comms.h"
#include "joining.h"
#include "link_probe.h"
#include "model_buffers.h"
#include "pinned_memory.h"
#include "protocol.h"
#include "roles.h"
#include "sync_decision.h"
#include "sync_overlap.h"
#include "train_setup.h"
#include "trainer_optimizers.h"
#include "wire_encoder.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>

namespace hetrain::run {
using namespace protocol;
namespace {

// Benchmarks this node, runs the training probe and describes both for rank 0.
TrainerReport measure_this_trainer(const TrainConfig &config, const ModelSpec &spec,
                                   torch::Device device, int world_rank,
                                   std::optional<GpuInfo> &gpu) {
  NodeReport node = probe_node();
  run_cpu_benchmarks(node, 0.3);
  if (device.is_cuda())
    run_gpu_benchmarks(node, device.index(), 0.2); // cuBLAS GEMM and pinned copies, capped
  ProbeResult probe =
      run_training_probe(spec, probe_example(config), config.micro_batch, device, 1.5, world_rank);
  if (probe.failure.empty() && probe.micro_batch < config.micro_batch)
    log_warn("training probe: timed with micro-batches of {} samples (--micro-batch {} ran out "
             "of memory); training halves the same way in its first round",
             probe.micro_batch, config.micro_batch);
  if (fault_slows_probe(world_rank))
    probe.samples_per_sec /= 100; // testing hook (--fault-slow-probe-rank)
  if (device.is_cuda() && !node.gpus.empty())
    gpu = node.gpus[static_cast<size_t>(device.index()) % node.gpus.size()];
  return make_trainer_report(world_rank, node, probe, gpu ? &*gpu : nullptr);
}

// Sends the report and waits for the verdict. Returns the communicator of the admitted, or
// MPI_COMM_NULL when rank 0 rejected this trainer (which then leaves).
MPI_Comm join_job(const TrainConfig &config, const TrainerReport &report, int world_rank) {
  const std::vector<uint8_t> bytes = encode_report(report);
  Words verdict_words(VerdictMessage::kWords);
  {
    RequestSet set;
    MPI_Request r;
    CHECK_MPI(MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, 0, kTagReport,
                        MPI_COMM_WORLD, &r));
    set.add(r, 0, "sending this trainer's report");
    irecv_words(set, verdict_words, 0, kTagVerdict, MPI_COMM_WORLD,
                "waiting for rank 0's admission verdict");
    set.wait_all(config.join_timeout + 60);
  }
  const VerdictMessage verdict = decode_verdict(verdict_words);
  MPI_Comm job;
  CHECK_MPI(MPI_Comm_split(MPI_COMM_WORLD, verdict.admitted ? 0 : MPI_UNDEFINED, world_rank, &job));
  if (!verdict.admitted) {
    log_warn("not admitted by rank 0: {}; this rank exits", verdict.reason);
    return MPI_COMM_NULL;
  }
  CHECK_MPI(MPI_Comm_set_errhandler(job, MPI_ERRORS_RETURN));
  return job;
}

struct StopInstead {}; // rank 0 sent kStop where parameters were due

class Trainer {
public:
  Trainer(const TrainConfig &config, const RankPlacement &placement, const ModelSpec &spec,
          torch::Device device, const std::optional<GpuInfo> &gpu, MPI_Comm job,
          const HostMap &hosts);
  void run();

private:
  bool receive_parameters(const char *when); // false: rank 0 ended the job instead
  RoundCommand next_command();
  void exchange_optimizer(RoundCommand::Kind kind);
  void say_why_stopped() const;
  struct Computed {
    ComputeStats stats;
    double seconds = 0;
    bool complete = true; // false: a speculative round given up (rank 0 sent another command)
  };
  void run_round(const RoundCommand &command);
  using StepHook = std::function<bool(int64_t step)>;
  Computed compute_round(const RoundCommand &command, const StepHook &before_step = {});
  void deliver_round(const RoundCommand &command, const Computed &computed);
  void inject_faults_before_round(const RoundCommand &command);
  ComputeStats sum_gradients(const RoundCommand &command, RequestSet &early);
  ComputeStats take_local_steps(const RoundCommand &command, const StepHook &before_step,
                                bool &complete);
  RoundStats round_stats(const ComputeStats &stats, double compute_seconds);
  void run_overlapped(RoundCommand command);
  Computed speculate(const std::optional<RoundCommand> &guess);
  void land_before(int64_t step, const std::function<void()> &while_waiting = {});
  void apply_landing(bool mid_round);
  void post_landing();
  void take_landing(const RoundCommand &next);
  void save_round_start();
  void restore_round_start();
  void inject_half_send(const RoundCommand &command, const torch::Tensor &wire_upload);
  void send_round(const RoundStats &stats, const torch::Tensor &wire_upload, RequestSet &early);
  void begin_relay(const RoundCommand &command);
  void report_out_speed(const RoundCommand &command);
  void use_epoch_order(int64_t epoch);
  void send_timeline();
  void log_samples(const RoundCommand &command);

  const TrainConfig &config_;
  const RankPlacement placement_;
  const torch::Device device_;
  const std::optional<GpuInfo> gpu_;
  MPI_Comm job_;
  std::shared_ptr<Model> model_;
  std::unique_ptr<FlatParameters> flat_;
  Dataset data_;
  LossSpec loss_;
  int64_t n_ = 0, chunk_ = 0, nbuf_ = 0;
  // Host copies of what travels: on a CPU trainer the flat buffers themselves (fp32 wire); on a
  // GPU trainer pinned buffers, filled chunk by chunk just before each chunk is sent.
  bool host_ = true;
  WireFormat wire_;
  torch::Tensor params_host_, upload_host_;
  std::vector<float> buffers_;
  MixedPrecision amp_;
  bool params_mode_ = false;
  ShardLayout layout_;
  bool overlap_ = false;
  std::unique_ptr<Optimizer> local_optimizer_; // params mode: each trainer steps its own
  std::unique_ptr<LrSchedule> local_schedule_;
  // --sync diloco with an outer step: the upload is the pseudo-gradient, start minus end of the
  // local steps, so that --wire-dtype rounds that small difference and not the parameters.
  bool upload_delta_ = false;
  torch::Tensor round_start_; // the parameters at the round's start, then the pseudo-gradient
  Timeline timeline_;
  bool watch_gpu_ = false;
  std::ofstream sample_log_;
  Inbox inbox_;
  std::vector<int64_t> order_; // the epoch's permutation
  int64_t order_epoch_ = -1, rounds_worked_ = 0;
  HostRelay relay_; // --host-reduce: to its host's leader, or a leader's reduce
  std::unique_ptr<WireEncoder> encoder_; // the upload in --wire-dtype
  bool overlap_now_ = false; // this round pieces leave during backward (a leader: not in fp32
                             // unless it relays)
  RequestSet early_;         // --overlap: gradient pieces sent during the last backward pass
  // --sync-overlap (DESIGN §4 "Sync overlap"): the master that the round just sent produces lands
  // in landing_ while the next round computes; saved_ is the state at that round's start, to go
  // back to when rank 0 sends another command than the one guessed.
  bool sync_overlap_ = false, overlapped_ = false, landed_ = false;
  int64_t overlap_steps_ = 0; // --sync-overlap-steps: apply the landed sync before this local
                              // step (0: after the round's last)
  double landing_wait_ = 0;   // of this round's compute time, waiting for the landing sync
  RequestSet landing_set_;
  torch::Tensor landing_;
  std::vector<float> landing_buffers_;
  struct Saved {
    torch::Tensor params;
    std::vector<std::pair<std::string, torch::Tensor>> optimizer;
    int64_t optimizer_steps = 0;
    std::vector<float> buffers;
    std::optional<MixedPrecision> amp;
  } saved_;
  std::optional<RoundCommand> taken_; // read while overlapping; run()'s loop handles it next
};

Trainer::Trainer(const TrainConfig &config, const RankPlacement &placement, const ModelSpec &spec,
                 torch::Device device, const std::optional<GpuInfo> &gpu, MPI_Comm job,
                 const HostMap &hosts)
    : config_(config), placement_(placement), device_(device), gpu_(gpu), job_(job),
      data_(data_source(config), config.data_residency), loss_(loss_spec(config)),
      amp_(config.amp, device), timeline_(!config.timeline.empty()),
      inbox_(job, 0, kTagCommand, RoundCommand::kWords), relay_(config, job, hosts) {
  data_.set_augmentation(parse_augment(config.augment));
  torch::manual_seed(config.seed);
  model_ = make_model(spec);
  model_->to(device);
  flat_ = std::make_unique<FlatParameters>(*model_);
  n_ = config.limit_train_samples > 0 ? std::min(config.limit_train_samples, data_.size())
                                      : data_.size();
  chunk_ = chunk_elements(config);
  nbuf_ = buffer_elements(*model_);
  host_ = device.is_cpu();
  // A member's sum goes to its leader in fp32: only the host's sum is rounded to --wire-dtype.
  wire_ = relay_.member() ? WireFormat{} : wire_format(config.wire_dtype);
  params_host_ = host_ ? flat_->params() : host_buffer(flat_->numel(), torch::kFloat32, true);
  upload_host_ = host_ ? torch::Tensor() : host_buffer(flat_->numel(), wire_.dtype, true);
  buffers_.resize(static_cast<size_t>(nbuf_));
  if (amp_.enabled() && device.is_cuda() && gpu && !gpu->bf16 && amp_.dtype() == torch::kBFloat16)
    log_warn("--amp bf16 on {} (compute capability {}.{}): no bf16 hardware, expect it slow",
             gpu->name, gpu->cc_major, gpu->cc_minor);
  params_mode_ = config.sync != SyncMode::kGradient; // params, diloco: local steps, then upload
  upload_delta_ = has_outer_step(config);
  // Who reduces which part of the flat buffer: rank 0 all of it, or with --aggregators A each of
  // ranks 0..A-1 its shard. Gradients go to, and parameters come from, each piece's owner.
  layout_ = shard_layout_checked(flat_->numel(), config);
  relay_.set_up(layout_, wire_, chunk_, flat_->numel(), host_);
  encoder_ = std::make_unique<WireEncoder>(wire_, flat_->numel(), params_mode_);
  // --overlap: the gradient sum of a CPU trainer is sent piece by piece from the flat buffer
  // during the last backward pass (a GPU trainer's goes through a dtype conversion and pinned
  // copies after it; fp16 is unscaled after it; params mode sends parameters after local steps).
  // A leader converts the host's sum piece by piece itself, so any wire dtype overlaps there.
  overlap_ = config.overlap && !params_mode_ && host_ &&
             (wire_.dtype == torch::kFloat32 || relay_.leader());
  if (config.overlap && !overlap_)
    log_warn("--overlap applies to CPU trainers in --sync gradient with --wire-dtype fp32; this "
             "trainer sends after backward");
  if (upload_delta_)
    round_start_ = torch::empty_like(flat_->params());
  // --sync auto may have chosen gradient: then there is no period to overlap.
  sync_overlap_ = config.sync_overlap && config.sync == SyncMode::kDiLoCo;
  overlap_steps_ = config.sync_overlap_steps;
  if (sync_overlap_) {
    landing_ = host_ ? torch::empty_like(flat_->params())
                     : host_buffer(flat_->numel(), torch::kFloat32, true);
    landing_buffers_.resize(static_cast<size_t>(nbuf_));
  }
  if (params_mode_) {
    local_optimizer_ =
        std::make_unique<Optimizer>(optimizer_options(config), flat_->numel(), device);
    const int64_t steps_per_epoch = (n_ + config.global_batch - 1) / config.global_batch;
    local_schedule_ = std::make_unique<LrSchedule>(lr_schedule(config, steps_per_epoch));
  }
  timeline_.set_rank(placement.world_rank);
  // NVML figures for the metrics file and the Prometheus textfile, when asked for either.
  watch_gpu_ = device.is_cuda() && (!config.metrics.empty() || !config.prometheus.empty());
  if (!debug_sample_log().empty())
    sample_log_.open(fmt::format("{}.rank{}", debug_sample_log(), placement.world_rank));
}

void Trainer::run() {
  // The next command is always posted: rank 0 may say "stop" while this trainer waits for
  // parameters (a job ending because another trainer was lost), not only between rounds.
  inbox_.post();
  // No parameters yet: they come with the first kRound or kSkip, and again after kOut (rank 0
  // sends nothing to a trainer out of the plan, DESIGN §5).
  bool stale = true, out = false, stopped = false;
  while (!stopped) {
    const RoundCommand command = next_command();
    if (command.kind == RoundCommand::Kind::kStop) {
      if (command.send_timeline)
        send_timeline();
      say_why_stopped();
      break;
    }
    inbox_.post(); // the next command may come while this round runs
    if (command.kind == RoundCommand::Kind::kSaveOptimizer ||
        command.kind == RoundCommand::Kind::kLoadOptimizer) {
      exchange_optimizer(command.kind);
      continue;
    }
    if (command.kind == RoundCommand::Kind::kOut) {
      if (!out) // rank 0 repeats kOut now and then: say it once
        log_info("out of the plan from round {}: waiting for rank 0's next command",
                 command.global_step + 1);
      out = stale = true;
      if (command.count > 0)
        report_out_speed(command);
      continue;
    }
    if (stale && !receive_parameters("before its first round in the plan"))
      break;
    out = stale = false;
    if (command.kind == RoundCommand::Kind::kRound && sync_overlap_) {
      run_overlapped(command); // ends having taken the parameters and the next command
      continue;
    }
    if (command.kind == RoundCommand::Kind::kRound)
      run_round(command);
    else if (relay_.leader() && command.members != 0) {
      // no samples here, but the host's members have some: the host's sum is theirs alone
      ScopedSpan span(timeline_, Span::kSend, command.global_step + 1);
      relay_.relay_only(command, flat_->grads(), config_.straggler_timeout);
    }
    stopped = !receive_parameters("after a round");
  }
  inbox_.cancel(); // still posted when the job ended while parameters were due
}

// A trainer that got SIGTERM/SIGUSR1 is told to stop after its round: alone, it leaves while
// the others go on (a planned leave, DESIGN §7); with the whole job, rank 0 checkpoints and says
// so. Either way this trainer's work is delivered and it exits with 0.
void Trainer::say_why_stopped() const {
  if (const int signal = stop_signal())
    log_info("{} here: rank 0 let this trainer go (its last round taken, or none due while out "
             "of the plan) after {} rounds of work; leaving the job (exit 0)",
             signal_name(signal), rounds_worked_);
}

// Rank 0 saves this trainer's optimizer into a checkpoint, or hands one back on resume
// (trainer_optimizers.h); only params and diloco trainers have one.
void Trainer::exchange_optimizer(RoundCommand::Kind kind) {
  if (!local_optimizer_)
    throw ProtocolError("rank 0 asked for the optimizer of a trainer that has none (--sync "
                        "gradient)");
  const double timeout = 2 * config_.straggler_timeout + 30;
  if (kind == RoundCommand::Kind::kSaveOptimizer)
    send_own_optimizer(*local_optimizer_, encoder_->residual(), job_, chunk_, timeout);
  else
    receive_own_optimizer(*local_optimizer_, encoder_->residual(), flat_->numel(), job_, chunk_,
                          timeout);
}

RoundCommand Trainer::next_command() {
  if (taken_) {
    const RoundCommand command = *taken_;
    taken_.reset();
    return command;
  }
  if (!inbox_.poll()) {
    ScopedSpan span(timeline_, Span::kWait);
    // Rank 0 evaluates and checkpoints between epochs: allow for that on top of a round.
    inbox_.wait(2 * config_.straggler_timeout + 60, "waiting for the next round's command");
  }
  return decode_round_command(inbox_.words());
}

bool Trainer::receive_parameters(const char *when) {
  ScopedSpan span(timeline_, Span::kWait);
  RequestSet set;
  for (const Piece &p : layout_.pieces)
    irecv_chunks(set, params_host_.data_ptr<float>() + p.begin, p.length, chunk_, p.owner,
                 kTagParams, job_, fmt::format("parameters from rank {} {}", p.owner, when));
  irecv_chunks(set, buffers_.data(), nbuf_, chunk_, 0, kTagParamBuffers, job_,
               fmt::format("buffers from rank 0 {}", when));
  // Rank 0 sends parameters only after hearing from every trainer (up to the straggler
  // timeout), and must have time to checkpoint when one is lost: wait longer than it does.
  try {
    set.wait_all(2 * config_.straggler_timeout + 30, [&] {
      if (inbox_.poll() && decode_round_command(inbox_.words()).kind == RoundCommand::Kind::kStop)
        throw StopInstead{};
    });
  } catch (const StopInstead &) {
    set.cancel_pending();
    return false;
  }
  torch::NoGradGuard no_grad;
  if (!host_)
    flat_->params().copy_(params_host_);
  load_buffers(*model_, buffers_.data());
  return true;
}

void Trainer::run_round(const RoundCommand &command) {
  deliver_round(command, compute_round(command));
}

// The round's compute: gradient sums, or local steps and (diloco) the pseudo-gradient in
// round_start_. `before_step(s)`, asked before local step s, may give up a speculative round.
Trainer::Computed Trainer::compute_round(const RoundCommand &command, const StepHook &before_step) {
  inject_faults_before_round(command);
  use_epoch_order(command.epoch);
  const auto start = Clock::now();
  const double start_us = wall_microseconds();
  early_ = RequestSet();
  landing_wait_ = 0;
  begin_relay(command);
  if (upload_delta_)
    round_start_.copy_(flat_->params());
  Computed out;
  out.stats = params_mode_ ? take_local_steps(command, before_step, out.complete)
                           : sum_gradients(command, early_);
  if (upload_delta_)
    round_start_.sub_(flat_->params()); // start minus end: the pseudo-gradient
  if (!host_)
    torch::cuda::synchronize(); // compute time is the GPU's, not just the launches'
  out.seconds = seconds_since(start) - landing_wait_;
  timeline_.add(Span::kCompute, start_us, wall_microseconds(), command.global_step + 1);
  return out;
}

void Trainer::deliver_round(const RoundCommand &command, const Computed &computed) {
  ++rounds_worked_;
  const torch::Tensor upload = upload_delta_  ? round_start_
                               : params_mode_ ? flat_->params()
                                              : flat_->grads();
  // A leader's relay converts the host's sum itself.
  const torch::Tensor wire_upload = relay_.active() ? upload : encoder_->encode(upload, command);
  ScopedSpan send_span(timeline_, Span::kSend, command.global_step + 1);
  log_samples(command);
  RoundStats out = round_stats(computed.stats, computed.seconds);
  out.overlapped_steps = overlapped_ ? command.local_steps : 0;
  flatten_buffers(*model_, buffers_.data());
  inject_half_send(command, wire_upload);
  send_round(out, wire_upload, early_);
}

// --sync-overlap (DESIGN §4 "Sync overlap"): rounds back to back. A round that directly follows
// this trainer's previous one starts from its own end of that round instead of waiting for the
// master that round's sync produces; when the master lands, the trainer moves by what the sync
// changed (the master minus the round's start): the one-period delay of Streaming and
// Asynchronous DiLoCo. To hide the wire, it computes on a guess of rank 0's next command while
// the sync is in flight; another command sends it back to the round's saved start, so the result
// never depends on timing. Any command but the next round ends the chain: the trainer takes the
// master, as in every other mode, and run()'s loop handles that command.
void Trainer::run_overlapped(RoundCommand command) {
  overlapped_ = false;
  run_round(command);
  for (;;) {
    post_landing();
    save_round_start();
    const RoundCommand last = command;
    const std::optional<RoundCommand> guess = guess_next_round(last, config_.global_batch, n_);
    landed_ = false;
    Computed computed = speculate(guess);
    command = next_command();
    overlapped_ = guess && computed.complete && encode(*guess) == encode(command);
    if (!overlapped_)
      restore_round_start();
    if (!continues_round(last, command)) {
      take_landing(command);
      taken_ = command;
      return;
    }
    inbox_.post(); // the command after this one
    if (!overlapped_) {
      landed_ = false;
      computed = compute_round(command, [&](int64_t step) {
        land_before(step);
        return true;
      });
    }
    if (!landed_) { // --sync-overlap-steps 0, or more than this trainer's local steps
      ScopedSpan span(timeline_, Span::kWait);
      landing_set_.wait_all(2 * config_.straggler_timeout + 30);
      apply_landing(false);
    }
    deliver_round(command, computed);
  }
}

// The next round computed on the guess of its command, given up when another command arrives
// (also while it waits for the landing sync: before a stop, rank 0 may send none).
Trainer::Computed Trainer::speculate(const std::optional<RoundCommand> &guess) {
  Computed given_up;
  given_up.complete = false;
  if (!guess)
    return given_up;
  struct GuessWrong {};
  const Words expected = encode(*guess);
  const auto right = [&] { return !inbox_.poll() || inbox_.words() == expected; };
  try {
    return compute_round(*guess, [&](int64_t step) {
      if (!right())
        return false;
      land_before(step, [&] {
        if (!right())
          throw GuessWrong{};
      });
      return true;
    });
  } catch (const GuessWrong &) {
    return given_up;
  }
}

// --sync-overlap-steps T: before local step T the sync in flight must have landed; it is applied
// there, so that the round's later steps start from the new master (Streaming DiLoCo's overlap of
// T inner steps).
void Trainer::land_before(int64_t step, const std::function<void()> &while_waiting) {
  if (landed_ || overlap_steps_ == 0 || step != overlap_steps_)
    return;
  ScopedSpan span(timeline_, Span::kWait);
  const auto start = Clock::now();
  landing_set_.wait_all(2 * config_.straggler_timeout + 30, while_waiting);
  landing_wait_ += seconds_since(start); // not compute: rank 0's speeds must not count it
  apply_landing(true);
}

// The trainer moves by what the sync changed, the master minus the round's start. Mid-round the
// round's start moves with it, so that the pseudo-gradient stays what the local steps did (after
// the round round_start_ holds that pseudo-gradient already).
void Trainer::apply_landing(bool mid_round) {
  torch::NoGradGuard no_grad;
  const torch::Tensor change = landing_.to(device_) - saved_.params;
  flat_->params().add_(change);
  if (upload_delta_ && mid_round)
    round_start_.add_(change);
  landed_ = true;
}

// The master (and buffers) that the round just sent produces: rank 0 sends them to every
// trainer in the round, as it does without overlap.
void Trainer::post_landing() {
  landing_set_ = RequestSet();
  for (const Piece &p : layout_.pieces)
    irecv_chunks(landing_set_, landing_.data_ptr<float>() + p.begin, p.length, chunk_, p.owner,
                 kTagParams, job_,
                 fmt::format("parameters from rank {} (the sync in flight)", p.owner));
  irecv_chunks(landing_set_, landing_buffers_.data(), nbuf_, chunk_, 0, kTagParamBuffers, job_,
               "buffers from rank 0 (the sync in flight)");
}

// Out of the chain: the master becomes this trainer's parameters. Before a stop rank 0 may have
// sent none (the job ends after another trainer was lost): what has not come is cancelled.
void Trainer::take_landing(const RoundCommand &next) {
  if (next.kind == RoundCommand::Kind::kStop) {
    if (!landing_set_.test_all())
      landing_set_.cancel_pending();
    return;
  }
  {
    ScopedSpan span(timeline_, Span::kWait);
    landing_set_.wait_all(2 * config_.straggler_timeout + 30);
  }
  torch::NoGradGuard no_grad;
  flat_->params().copy_(landing_);
  load_buffers(*model_, landing_buffers_.data());
}

// What a given-up speculative round changes: parameters, the local optimizer, BatchNorm buffers
// and the fp16 loss scale (the data order and augmentation follow from the positions).
void Trainer::save_round_start() {
  torch::NoGradGuard no_grad;
  saved_.params = flat_->params().clone();
  saved_.optimizer.clear();
  for (const auto &[name, tensor] : local_optimizer_->state())
    saved_.optimizer.emplace_back(name, tensor.clone());
  saved_.optimizer_steps = local_optimizer_->steps_taken();
  saved_.buffers.resize(static_cast<size_t>(nbuf_));
  flatten_buffers(*model_, saved_.buffers.data());
  saved_.amp = amp_;
}

void Trainer::restore_round_start() {
  torch::NoGradGuard no_grad;
  flat_->params().copy_(saved_.params);
  local_optimizer_->load_state(saved_.optimizer, saved_.optimizer_steps);
  load_buffers(*model_, saved_.buffers.data());
  amp_ = *saved_.amp;
}

void Trainer::inject_faults_before_round(const RoundCommand &command) {
  const int64_t round = rounds_worked_ + 1; // the round this trainer is about to work
  if (fault_stalls_in_round(placement_.world_rank, round)) {
    // Testing hook (--fault-stall-rank): a hung trainer, for the deadline tests.
    log_warn("--fault-stall-rank: stalling instead of computing round {}", command.global_step + 1);
    std::this_thread::sleep_for(std::chrono::duration<double>(config_.straggler_timeout * 4));
  }
  if (fault_kills_in_round(placement_.world_rank, round)) {
    // Testing hook (--fault-kill-rank): a trainer whose node dies, for the failure tests.
    log_warn("--fault-kill-rank: dying (SIGKILL) in round {}", command.global_step + 1);
    std::raise(SIGKILL);
  }
}

// gradient: the sum of the gradients of all this trainer's micro-batches. With --overlap each
// piece leaves for its owner as soon as every parameter in it has its final gradient.
ComputeStats Trainer::sum_gradients(const RoundCommand &command, RequestSet &early) {
  GradientReady ready;
  std::vector<int64_t> piece_left; // elements of each piece still without their gradient
  if (overlap_now_) {
    for (const Piece &p : layout_.pieces)
      piece_left.push_back(p.length);
    float *grads = flat_->grads().data_ptr<float>();
    ready = [&, grads](size_t parameter) {
      const ParameterSlot &slot = flat_->slots()[parameter];
      const int64_t from = slot.offset, to = slot.offset + slot.numel;
      for (int64_t k = layout_.piece_at(from); k < static_cast<int64_t>(layout_.pieces.size()) &&
                                               layout_.pieces[static_cast<size_t>(k)].begin < to;
           ++k) {
        const Piece &p = layout_.pieces[static_cast<size_t>(k)];
        const int64_t lo = std::max(from, p.begin), hi = std::min(to, p.begin + p.length);
        if (hi <= lo || (piece_left[static_cast<size_t>(k)] -= hi - lo) != 0)
          continue;
        if (relay_.active())
          relay_.own_ready(static_cast<size_t>(k)); // adds the members' copies, sends it on
        else
          isend_upload_piece(
              early, grads, 0, p, WireFormat{}, chunk_, relay_.upload_peer(p), job_,
              fmt::format("sending gradients to rank {} (overlapped)", relay_.upload_peer(p)));
      }
    };
  }
  const SampleRun samples{order_.data() + command.offset, command.count, config_.seed,
                          command.epoch, command.offset};
  return amp_.gradients(*model_, loss_, data_, samples, config_.micro_batch, *flat_, ready);
}

// params: `local_steps` optimizer steps over consecutive parts of the slice. Before each step
// `before_step(s)` (when given) may stop them before step s: `complete` is then false.
ComputeStats Trainer::take_local_steps(const RoundCommand &command, const StepHook &before_step,
                                       bool &complete) {
  ComputeStats stats;
  const std::vector<int64_t> parts = largest_remainder(
      std::vector<double>(static_cast<size_t>(command.local_steps), 1.0), command.count, 0);
  int64_t at = command.offset;
  for (int64_t s = 0; s < command.local_steps; ++s) {
    const int64_t part = parts[static_cast<size_t>(s)];
    if (part == 0)
      continue;
    if (before_step && !before_step(s)) {
      complete = false;
      return stats;
    }
    const SampleRun samples{order_.data() + at, part, config_.seed, command.epoch, at};
    ComputeStats p = amp_.gradients(*model_, loss_, data_, samples, config_.micro_batch, *flat_);
    flat_->grads().mul_(1.0 / static_cast<double>(part));
    torch::Tensor params = flat_->params();
    // A trainer that takes fewer steps than --local-steps (it is slower, plan.h
    // local_steps_by_speed) spreads them over the same span of the schedule.
    const int64_t at_step = command.global_step + s * command.round_steps / command.local_steps;
    local_optimizer_->step(params, flat_->grads(), learning_rate(*local_schedule_, at_step));
    stats.loss_sum += p.loss_sum;
    stats.correct += p.correct;
    stats.samples += p.samples;
    stats.data_wait_seconds += p.data_wait_seconds;
    at += part;
  }
  return stats;
}

RoundStats Trainer::round_stats(const ComputeStats &stats, double compute_seconds) {
  RoundStats out;
  out.loss_sum = stats.loss_sum;
  out.correct = stats.correct;
  out.samples = stats.samples;
  out.compute_seconds = compute_seconds;
  out.data_wait_seconds = stats.data_wait_seconds;
  // A SIGTERM/SIGUSR1 here is passed on to rank 0, which decides when the job stops.
  out.stop_signal = stop_signal();
  out.micro_batch = amp_.micro_batch(config_.micro_batch);
  const GpuSample gpu = watch_gpu_ ? sample_gpu(device_.index()) : GpuSample{};
  out.gpu_valid = gpu.valid;
  out.gpu_utilization = gpu.utilization;
  out.gpu_memory_used = gpu.memory_used;
  out.gpu_temperature = gpu.temperature;
  out.gpu_power = gpu.power;
  out.wire_relative_error = encoder_->relative_error();
  return out;
}

// Testing hook (--fault-half-send-rank): the shard servers get this round's gradient and step,
// rank 0 gets nothing and never completes the round; a checkpoint must then hold the servers'
// shards as they were before that step.
void Trainer::inject_half_send(const RoundCommand &command, const torch::Tensor &wire_upload) {
  if (!fault_half_sends_in_round(placement_.world_rank, rounds_worked_) || !host_ ||
      relay_.member() || relay_.active())
    return;
  RequestSet half;
  for (const Piece &p : layout_.pieces)
    if (p.owner != 0)
      isend_upload_piece(half, wire_upload.data_ptr(), 0, p, wire_, chunk_, p.owner, job_,
                         "sending gradients to the shard servers only", encoder_->scales_of(p));
  half.wait_all(config_.straggler_timeout);
  log_warn("--fault-half-send-rank: sent round {} to the shard servers only; dying (SIGKILL)",
           command.global_step + 1);
  std::raise(SIGKILL);
}

void Trainer::send_round(const RoundStats &stats, const torch::Tensor &wire_upload,
                         RequestSet &early) {
  RequestSet set;
  const Words stats_words = encode(stats);
  isend_words(set, stats_words, 0, kTagStats, job_, "sending round statistics");
  const std::string what = params_mode_ ? "sending parameters" : "sending gradients";
  if (relay_.active()) {
    // The host's sum leaves through the relay (relay_.finish below).
  } else if (host_ || encoder_->on_host()) {
    if (!overlap_now_) // with --overlap they are on their way already
      for (const Piece &p : layout_.pieces)
        isend_upload_piece(set, wire_upload.data_ptr(), 0, p, wire_, chunk_, relay_.upload_peer(p),
                           job_, what, encoder_->scales_of(p));
  } else {
    // One device-to-host copy per piece into pinned memory, each piece sent as soon as it is
    // there: the copy of piece k+1 overlaps the network transfer of piece k.
    for (const Piece &p : layout_.pieces) {
      upload_host_.narrow(0, p.begin, p.length).copy_(wire_upload.narrow(0, p.begin, p.length));
      isend_upload_piece(set, upload_host_.data_ptr(), 0, p, wire_, chunk_, relay_.upload_peer(p),
                         job_, what);
    }
  }
  isend_chunks(set, buffers_.data(), nbuf_, chunk_, 0, kTagBuffers, job_, "sending buffers");
  if (relay_.active())
    relay_.finish(true, flat_->grads(), overlap_now_, config_.straggler_timeout);
  early.wait_all(config_.straggler_timeout);
  set.wait_all(config_.straggler_timeout);
}

// A leader whose members work this round starts receiving their sums (host_relay.h); what
// leaves during backward follows from that.
void Trainer::begin_relay(const RoundCommand &command) {
  const bool relaying = relay_.begin(command, params_mode_, flat_->grads());
  overlap_now_ = overlap_ && (relaying || wire_.dtype == torch::kFloat32);
}

// order_ becomes the permutation of `epoch` (computed once per epoch).
void Trainer::use_epoch_order(int64_t epoch) {
  if (epoch == order_epoch_)
    return;
  order_ = epoch_permutation(config_.seed, epoch, n_);
  order_epoch_ = epoch;
}

// Out of the plan and asked to (kOut with a count): forward and backward over the first `count`
// samples of the epoch's order with the parameters it has, timed, for rank 0's re-plans (a
// machine that recovered comes back). The BatchNorm buffers it moves are replaced with the
// parameters before its next round; nobody waits for this.
void Trainer::report_out_speed(const RoundCommand &command) {
  // {samples, seconds, signal}; after a signal of its own, {0, 0, signal}: measuring nothing, it
  // asks to leave, and rank 0 answers with kStop (a planned leave, DESIGN §7).
  std::vector<double> figures{0, 0, static_cast<double>(stop_signal())};
  if (figures[2] == 0) {
    use_epoch_order(command.epoch);
    const SampleRun samples{order_.data(), std::min(command.count, n_), config_.seed, command.epoch,
                            0};
    const auto start = Clock::now();
    const ComputeStats stats =
        amp_.gradients(*model_, loss_, data_, samples, config_.micro_batch, *flat_);
    if (!host_)
      torch::cuda::synchronize();
    figures[0] = static_cast<double>(stats.samples);
    figures[1] = seconds_since(start);
    figures[2] = static_cast<double>(stop_signal()); // one that came while it measured
  }
  RequestSet set;
  MPI_Request r;
  CHECK_MPI(MPI_Isend(figures.data(), 3, MPI_DOUBLE, 0, kTagOutSpeed, job_, &r));
  set.add(r, 0, "sending rank 0 this trainer's speed (out of the plan)");
  set.wait_all(config_.straggler_timeout);
}

// --timeline: rank 0 gathers every trainer's spans after the stop command that asks for them.
void Trainer::send_timeline() {
  const std::vector<double> spans = timeline_.encode();
  const int64_t length = static_cast<int64_t>(spans.size());
  RequestSet set;
  MPI_Request r;
  CHECK_MPI(MPI_Isend(&length, 1, MPI_INT64_T, 0, kTagTimeline, job_, &r));
  set.add(r, 0, "sending the timeline's length");
  isend_chunks(set, spans.data(), length, chunk_, MPI_DOUBLE, 8, 0, kTagTimeline, job_,
               "sending the timeline");
  set.wait_all(config_.straggler_timeout);
}

// --debug-sample-log: which sample this trainer used where (tests check exactly-once use).
void Trainer::log_samples(const RoundCommand &c) {
  if (!sample_log_)
    return;
  for (int64_t i = 0; i < c.count; ++i)
    sample_log_ << c.epoch << ' ' << c.global_step << ' ' << c.attempt << ' '
                << order_[static_cast<size_t>(c.offset + i)] << '\n';
  sample_log_.flush(); // what a trainer killed later did use must be on disk
}

// The largest piece of the flat-buffer layout in bytes: the link probe's message size. From a
// model built here on the CPU, before the Trainer (which is built for the sync mode the probe
// decides); the Trainer seeds the global generator again for its own.
int64_t largest_piece_bytes(const TrainConfig &config, const ModelSpec &spec) {
  torch::NoGradGuard no_grad;
  const std::shared_ptr<Model> model = make_model(spec);
  const FlatParameters flat(*model);
  int64_t largest = 0;
  for (const Piece &p : shard_layout_checked(flat.numel(), config).pieces)
    largest = std::max(largest, p.length);
  return largest * 4;
}

} // namespace

TrainSummary run_trainer(const TrainConfig &config, const RankPlacement &placement) {
  TrainSummary summary;
  summary.world_size = placement.world_size;
  const DatasetMeta meta = read_dataset_meta(data_source(config));
  const ModelSpec spec = spec_of(config, meta);
  // The GPU placed for this trainer by cluster/device_placement.h (it avoids rank 0's).
  const torch::Device device = choose_device(config.device, std::max(placement.gpu, 0));
  torch::set_num_threads(threads_for(config, placement));
  std::optional<GpuInfo> gpu;
  const TrainerReport report =
      measure_this_trainer(config, spec, device, placement.world_rank, gpu);
  MPI_Comm job = join_job(config, report, placement.world_rank);
  if (job == MPI_COMM_NULL)
    return summary;
  JobComms comms(config, job, JobRole::kTrainer);
  probe_links_trainer(config, comms.job(), comms.hosts().host_of, placement.world_rank,
                      largest_piece_bytes(config, spec));
  // --sync auto: the mode rank 0 chose from the probe; everything below is built for it.
  const TrainConfig decided = share_sync_decision(config, comms.job());
  {
    Trainer trainer(decided, placement, spec, device, gpu, comms.job(), comms.hosts());
    trainer.run();
  }
  comms.finish();
  return summary;
}

} // namespace hetrain::run

namespace hetrain {

std::vector<std::string> join_command(const std::string &file) {
  return run::read_join_ticket(file).command;
}

TrainSummary run_joiner(const TrainConfig &given, const std::string &file) {
  using namespace run;
  const JoinTicket ticket = read_join_ticket(file);
  TrainConfig config = given;
  config.host_reduce = HostReduce::kOff; // a joiner uploads to rank 0 itself
  TrainSummary summary;
  const DatasetMeta meta = read_dataset_meta(data_source(config));
  const ModelSpec spec = spec_of(config, meta);
  {
    torch::manual_seed(config.seed);
    const std::shared_ptr<Model> model = make_model(spec);
    if (model_fingerprint(*model, spec) != ticket.model_fingerprint)
      throw UserError(fmt::format("{}: the job trains another model than this hetrain builds from "
                                  "its options (fingerprints differ)",
                                  file));
  }
  const torch::Device device = choose_device(config.device, 0);
  RankPlacement placement;
  placement.threads = usable_cores(); // the machine is this trainer's alone
  torch::set_num_threads(threads_for(config, placement));
  std::optional<GpuInfo> gpu;
  const TrainerReport report = measure_this_trainer(config, spec, device, 0, gpu);
  JoinAssignment assigned;
  const MPI_Comm inter = wait_to_be_taken(config, ticket, file, report, assigned);
  if (inter == MPI_COMM_NULL)
    return summary;
  placement.world_rank = static_cast<int>(assigned.rank);
  set_process_rank(placement.world_rank, placement.world_rank + 1);
  config.sync = static_cast<SyncMode>(assigned.sync); // --sync auto: the job's choice
  config.local_steps = assigned.local_steps;
  log_info("joined the job on {} as rank {}", ticket.host, assigned.rank);
  Trainer trainer(config, placement, spec, device, gpu, inter, HostMap{});
  trainer.run();
  return summary;
}

} // namespace hetrain
