// A shard server of --aggregators A (world ranks 1..A-1; DESIGN §6): the multiple-parameter-server
// design. Read it top to bottom:
//
//   setup from rank 0: the trainers, the optimizer's step count, this rank's shard of the
//     parameters and of the optimizer state
//   each round (command from rank 0: who works, how many samples, the learning rate):
//     send the shard's parameters first to a trainer back in the plan (or in its first round),
//     receive this shard's pieces of every uploader's gradient sum (a working trainer, or with
//     --host-reduce a host's leader carrying its host's sum), reduce each piece as soon as all
//     copies of it are in (weights 1/S), step the shard, tell rank 0, send the
//     updated parameters to every trainer in the round (none to one out of the plan)
//   kGather: send the shard to rank 0 (checkpoints, evaluation), undoing the step of a round rank
//     0 did not complete
//   kStop: leave
//
// Rank 0 keeps everything else: admission, plans, commands, BatchNorm buffers, checkpoints. So a
// server never decides the job's fate: when a trainer does not deliver it says whom it waited for
// and waits for rank 0, which reaches the same deadline and ends the job.
#include "hetrain/comm/check_mpi.h"
#include "hetrain/comm/messages.h"
#include "hetrain/common/log.h"
#include "hetrain/train/flat_parameters.h"
#include "hetrain/train/optimizer.h"

#include "clock.h"
#include "host_reduce.h"
#include "job_comms.h"
#include "link_probe.h"
#include "pipelined_reduce.h"
#include "protocol.h"
#include "roles.h"
#include "sync_decision.h"
#include "train_setup.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <vector>

namespace hetrain::run {
using namespace protocol;
namespace {

struct Interrupted {}; // rank 0 sent kGather or kStop while this server waited for gradients

class ShardServer {
public:
  ShardServer(const TrainConfig &config, const RankPlacement &placement, MPI_Comm job);
  void run();

private:
  void receive_setup();
  void move_shard(bool receive, const std::string &what);
  void post_parameters(RequestSet &set, const std::vector<bool> &to, const char *when);
  void send_parameters(const std::vector<bool> &to, const char *when);
  void undo_step_past(int64_t global_step);
  std::vector<float> reduce_weights(const ShardCommand &command,
                                    const std::vector<size_t> &uploading) const;
  void step(const ShardCommand &command);
  // One round; false when it did not complete (rank 0 then decides what happens).
  bool run_round(const ShardCommand &command);

  const TrainConfig &config_;
  const RankPlacement placement_;
  MPI_Comm job_;
  const int64_t chunk_;
  const WireFormat wire_;
  ShardLayout layout_;
  int64_t begin_ = 0, length_ = 0;
  std::vector<Piece> mine_;
  ShardSetup setup_;
  std::unique_ptr<Optimizer> optimizer_;
  torch::Tensor params_, grads_;
  std::vector<torch::Tensor> tensors_; // what moves to and from rank 0: parameters, then state
  std::vector<torch::Tensor> before_;  // the shard before the last step, for an undo
  int64_t steps_before_ = 0;
  int64_t applied_round_ = -1; // global_step of the last round stepped here (-1: none since undo)
  std::unique_ptr<ChunkReducer> reducer_;
  std::unique_ptr<Int8Staging> int8_; // --wire-dtype int8 only
  std::unique_ptr<Inbox> inbox_;
};

ShardServer::ShardServer(const TrainConfig &config, const RankPlacement &placement, MPI_Comm job)
    : config_(config), placement_(placement), job_(job), chunk_(chunk_elements(config)),
      wire_(wire_format(config.wire_dtype)) {
  // The model's size and the layout, computed from the same files and flags as every rank.
  const DatasetMeta meta = read_dataset_meta(data_source(config));
  auto model = make_model(spec_of(config, meta));
  const int64_t numel = FlatParameters(*model).numel();
  layout_ = shard_layout_checked(numel, config);
  begin_ = layout_.shard_begin[static_cast<size_t>(placement.world_rank)];
  length_ = layout_.shard_length(placement.world_rank);
  mine_ = layout_.pieces_of(placement.world_rank);
  optimizer_ = std::make_unique<Optimizer>(aggregator_optimizer_options(config), length_);
  params_ = torch::empty({length_});
  grads_ = torch::zeros({length_});
  tensors_ = {params_};
  for (const auto &named : optimizer_->state())
    tensors_.push_back(named.second);
}

void ShardServer::receive_setup() {
  setup_ = decode_shard_setup(receive_one(
      ShardSetup::words(placement_.world_size), 0, kTagShardSetup, job_, config_.join_timeout + 60,
      "waiting for rank 0's setup (it first waits --join-timeout for reports)"));
  move_shard(true, "receiving this shard from rank 0");
  optimizer_->load_state(optimizer_->state(), setup_.optimizer_steps); // the state is in place
  for (const torch::Tensor &t : tensors_)
    before_.push_back(t.clone());
  steps_before_ = optimizer_->steps_taken();
  reducer_ = std::make_unique<ChunkReducer>(ReduceDevice::kCpu, setup_.job_ranks.size(), length_,
                                            wire_.reduce_dtype, threads_for(config_, placement_));
  if (wire_.int8)
    int8_ = std::make_unique<Int8Staging>(setup_.job_ranks.size(), length_, layout_.pieces);
  log_info("shard server: elements [{}, {}) of {} ({} pieces), {} trainers", begin_,
           begin_ + length_, layout_.shard_begin.back(), mine_.size(), setup_.job_ranks.size());
}

// Sends the shard to rank 0 or receives it from there (contiguous CPU tensors).
void ShardServer::move_shard(bool receive, const std::string &what) {
  RequestSet set;
  for (size_t s = 0; s < tensors_.size(); ++s) {
    const int tag = kTagShardState + static_cast<int>(s);
    if (receive)
      irecv_chunks(set, tensors_[s].data_ptr<float>(), length_, chunk_, 0, tag, job_, what);
    else
      isend_chunks(set, tensors_[s].data_ptr<float>(), length_, chunk_, 0, tag, job_, what);
  }
  set.wait_all(config_.straggler_timeout);
}

// The shard's parameters to the trainers flagged in `to` (setup order).
void ShardServer::post_parameters(RequestSet &set, const std::vector<bool> &to, const char *when) {
  for (size_t i = 0; i < setup_.job_ranks.size() && i < to.size(); ++i)
    if (to[i])
      for (const Piece &p : mine_)
        isend_chunks(set, params_.data_ptr<float>() + (p.begin - begin_), p.length, chunk_,
                     setup_.job_ranks[i], kTagParams, job_,
                     fmt::format("sending parameters {} to rank {}", when, setup_.world_ranks[i]));
}

void ShardServer::send_parameters(const std::vector<bool> &to, const char *when) {
  RequestSet set;
  post_parameters(set, to, when);
  try {
    set.wait_all(config_.straggler_timeout);
  } catch (const PeerTimeout &e) {
    // A trainer that is gone: rank 0 finds out on its own deadline and ends the job.
    log_warn("shard server: {}; waiting for rank 0", e.what());
    set.cancel_pending();
  }
}

// kGather after a round rank 0 did not complete (it starts at rank 0's position, `global_step`):
// that round's step is taken back. Rounds, not optimizer steps, tell it: params mode's averaging
// takes no optimizer step.
void ShardServer::undo_step_past(int64_t global_step) {
  if (applied_round_ < global_step)
    return;
  log_warn("shard server: undoing the round from step {} (rank 0 did not complete it)",
           applied_round_);
  applied_round_ = -1;
  for (size_t s = 0; s < tensors_.size(); ++s)
    tensors_[s].copy_(before_[s]);
  optimizer_->load_state(optimizer_->state(), steps_before_);
}

// Weights of the reduce, in the order of `uploading`: every upload is a gradient sum (weight 1/S)
// under --sync gradient; under params and diloco, each trainer's share of the round's samples
// (its parameters or pseudo-gradient are averaged), as on rank 0.
std::vector<float> ShardServer::reduce_weights(const ShardCommand &command,
                                               const std::vector<size_t> &uploading) const {
  std::vector<float> weights;
  for (size_t i : uploading)
    weights.push_back(config_.sync == SyncMode::kGradient
                          ? 1.0f / static_cast<float>(command.samples)
                          : static_cast<float>(static_cast<double>(command.trainer_samples[i]) /
                                               static_cast<double>(command.samples)));
  return weights;
}

// The shard's step after the reduce into the gradient buffer: the optimizer's step on the
// gradient (--sync gradient), the outer optimizer's on the mean pseudo-gradient (diloco); the
// mean becomes the shard itself under params (and diloco with --outer-optimizer average). The
// shard changes only here, so a round cut short leaves it as it was.
void ShardServer::step(const ShardCommand &command) {
  if (config_.sync == SyncMode::kGradient)
    optimizer_->step(params_, grads_, command.lr);
  else if (has_outer_step(config_))
    optimizer_->step(params_, grads_, config_.outer_lr);
  else
    params_.copy_(grads_);
}

bool ShardServer::run_round(const ShardCommand &command) {
  const auto round_start = Clock::now();
  std::vector<size_t> uploading;
  for (size_t i = 0; i < command.uploading.size(); ++i)
    if (command.uploading[i])
      uploading.push_back(i);
  const char *what = config_.sync == SyncMode::kGradient ? "gradients"
                     : has_outer_step(config_)           ? "pseudo-gradients"
                                                         : "parameters";
  RequestSet set;
  // Before the step changes them (the step waits for this set).
  post_parameters(set, command.refresh, "before its first round in the plan");
  PipelinedReduce pipe(*reducer_, mine_, begin_, wire_, chunk_, job_);
  pipe.decode_int8_from(int8_.get());
  for (size_t i : uploading)
    pipe.post(set, i, setup_.job_ranks[i],
              fmt::format("round {} {} from rank {}", command.global_step + 1, what,
                          setup_.world_ranks[i]));
  const auto weights = [&] { return reduce_weights(command, uploading); };
  try {
    set.wait_all(config_.straggler_timeout, [&] {
      if (inbox_->poll())
        throw Interrupted{};
      pipe.reduce_ready(set, grads_.data_ptr<float>(), weights);
    });
    pipe.finish();
  } catch (const PeerTimeout &e) {
    log_warn("shard server: {}; waiting for rank 0's decision", e.what());
    set.cancel_pending();
    pipe.finish();
    return false;
  } catch (const Interrupted &) {
    set.cancel_pending();
    pipe.finish();
    return false;
  }
  ShardAck ack;
  ack.reduce_seconds = pipe.reduce_seconds();
  ack.receive_seconds = seconds_since(round_start) - ack.reduce_seconds;
  const auto step_start = Clock::now();
  for (size_t s = 0; s < tensors_.size(); ++s)
    before_[s].copy_(tensors_[s]);
  steps_before_ = optimizer_->steps_taken();
  step(command);
  applied_round_ = command.global_step;
  ack.step_seconds = seconds_since(step_start);
  ack.bytes_received = static_cast<int64_t>(uploading.size()) * upload_bytes(mine_, wire_);
  send_one(encode(ack), 0, kTagShardAck, job_, config_.straggler_timeout,
           "telling rank 0 the shard has stepped");
  return true;
}

void ShardServer::run() {
  receive_setup(); // no parameters go out yet: each trainer gets them with its first round
  // The next command is always posted, so that rank 0 can interrupt a round (kGather, kStop).
  inbox_ = std::make_unique<Inbox>(job_, 0, kTagShardCommand,
                                   ShardCommand::words(setup_.job_ranks.size()));
  inbox_->post();
  for (;;) {
    inbox_->wait(2 * config_.straggler_timeout + 60, // rank 0 may be evaluating
                 "waiting for rank 0's next command");
    const ShardCommand command = decode_shard_command(inbox_->words());
    if (command.kind == ShardCommand::Kind::kStop)
      break;
    inbox_->post();
    if (command.kind == ShardCommand::Kind::kGather) {
      undo_step_past(command.global_step);
      move_shard(false, "sending this shard to rank 0");
      continue;
    }
    if (run_round(command))
      send_parameters(command.receiving, "after a round");
  }
  inbox_->cancel();
}

} // namespace

TrainSummary run_shard_server(const TrainConfig &config, const RankPlacement &placement) {
  TrainSummary summary;
  summary.world_size = placement.world_size;
  MPI_Comm job;
  CHECK_MPI(MPI_Comm_split(MPI_COMM_WORLD, 0, placement.world_rank, &job));
  CHECK_MPI(MPI_Comm_set_errhandler(job, MPI_ERRORS_RETURN));
  JobComms comms(config, job, JobRole::kShardServer); // its host map is not needed here
  probe_links_server(config, comms.job());
  const TrainConfig decided = share_sync_decision(config, comms.job()); // --sync auto
  torch::set_num_threads(threads_for(config, placement));
  ShardServer(decided, placement, comms.job()).run();
  comms.finish();
  return summary;
}

} // namespace hetrain::run
