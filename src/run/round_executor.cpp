#include "round_executor.h"

#include "hetrain/aggregate/weighted_sum.h"
#include "hetrain/comm/check_mpi.h"
#include "hetrain/common/log.h"
#include "hetrain/common/signals.h"
#include "hetrain/run/training_run.h"

#include "clock.h"
#include "model_buffers.h"
#include "pinned_memory.h"

#include <fmt/format.h>

#include <optional>

namespace hetrain::run {
using namespace protocol;

RoundExecutor::RoundExecutor(const TrainConfig &config, MPI_Comm job, Model &model,
                             FlatParameters &flat, Optimizer &optimizer, const ShardLayout &layout,
                             ShardServers &servers, Roster &trainers, Timeline &timeline,
                             ReduceDevice reduce, torch::Device device, int reduce_threads)
    : config_(config), job_(job), model_(model), flat_(flat), optimizer_(optimizer),
      layout_(layout), servers_(servers), trainers_(trainers), timeline_(timeline),
      wire_(wire_format(config.wire_dtype)), params_mode_(config.sync != SyncMode::kGradient),
      outer_step_(has_outer_step(config)), chunk_(chunk_elements(config)),
      nbuf_(buffer_elements(model)), my_pieces_(layout.pieces_of(0)),
      my_length_(layout.shard_length(0)), buffers_(static_cast<size_t>(nbuf_)),
      master_on_gpu_(device.is_cuda()) {
  // What trainers upload (gradient sums, or their parameters in params mode, in the wire dtype)
  // lands in the reducer's buffers, one per trainer; only shard 0 comes here.
  reducer_ = std::make_unique<ChunkReducer>(reduce, trainers.size(), my_length_, wire_.reduce_dtype,
                                            reduce_threads, device.is_cuda() ? device.index() : 0);
  if (wire_.int8)
    int8_ = std::make_unique<Int8Staging>(trainers.size(), my_length_, layout.pieces);
  // The broadcast leaves from host memory: the master parameters themselves on the CPU, a pinned
  // copy of them when they live on the GPU.
  params_out_ = master_on_gpu_ ? host_buffer(flat.numel(), torch::kFloat32, true) : flat.params();
  for (TrainerState &t : trainers)
    t.buffers.assign(static_cast<size_t>(nbuf_), 0.0f);
}

RoundResult RoundExecutor::execute(const RoundOrder &order) {
  RoundResult result;
  const auto start = Clock::now();
  PipelinedReduce pipe(*reducer_, my_pieces_, 0, wire_, chunk_, job_, &timeline_,
                       order.round_number);
  pipe.decode_int8_from(int8_.get());
  post_round(order, pipe);
  wait_and_reduce(order, pipe, result);
  if (result.end != RoundResult::End::kComplete)
    return result;
  pipe.finish();
  result.reduce_seconds = pipe.reduce_seconds();
  result.receive_seconds = seconds_since(start) - result.reduce_seconds;
  result.server_acks = servers_.acks();
  for (TrainerState &t : trainers_)
    if (t.working)
      t.stats = decode_round_stats(stats_words_[static_cast<size_t>(&t - trainers_.data())]);
  average_buffers(order);
  const auto step_start = Clock::now();
  {
    ScopedSpan span(timeline_, Span::kStep, order.round_number);
    step(order);
    servers_.stepped(); // the servers' shards moved on too
  }
  result.step_seconds = seconds_since(step_start);
  const auto broadcast_start = Clock::now();
  {
    ScopedSpan span(timeline_, Span::kBroadcast, order.round_number);
    result.broadcast_late = broadcast();
  }
  result.broadcast_seconds = seconds_since(broadcast_start);
  return result;
}

// Commands and uploads wait together in one set: a trainer that is gone shows up in one deadline.
void RoundExecutor::post_round(const RoundOrder &order, PipelinedReduce &pipe) {
  set_ = RequestSet();
  command_words_.assign(trainers_.size(), Words());
  stats_words_.assign(trainers_.size(), Words(RoundStats::kWords));
  stats_request_.assign(trainers_.size(), 0);
  requests_end_.assign(trainers_.size(), 0);
  bool staged = false;
  for (size_t j = 0; j < trainers_.size(); ++j) {
    const TrainerState &t = trainers_[j];
    if (!t.send_command)
      continue;
    command_words_[j] = encode(t.command);
    isend_words(set_, command_words_[j], peer_of(t), kTagCommand, comm_of(t, job_),
                fmt::format("sending the round's command to {}", name_of(t)));
    if (t.command.kind == RoundCommand::Kind::kOut && t.command.count > 0)
      CHECK_MPI(MPI_Irecv(trainers_[j].out_speed.data(), 3, MPI_DOUBLE, peer_of(t), kTagOutSpeed,
                          comm_of(t, job_), &trainers_[j].out_speed_request));
    // Back in the plan: the current parameters first. They leave from the master (or its pinned
    // copy), which the step changes only after this set is complete.
    if (t.refresh) {
      if (!staged)
        stage_parameters();
      staged = true;
      send_parameters(set_, t, "before its first round in the plan");
    }
  }
  // The shard servers: who works this round and the learning rate of the step.
  ShardCommand server_command;
  server_command.kind = ShardCommand::Kind::kRound;
  server_command.global_step = order.global_step;
  server_command.samples = order.samples;
  server_command.lr = order.lr;
  for (const TrainerState &t : trainers_) {
    server_command.uploading.push_back(t.uploading);
    server_command.refresh.push_back(t.refresh);
    server_command.receiving.push_back(t.in_round);
    server_command.trainer_samples.push_back(t.working ? t.command.count : 0);
  }
  servers_.post_round(set_, server_command, order.round_number);
  const char *what = params_mode_ ? "parameters" : "gradients";
  for (size_t j = 0; j < trainers_.size(); ++j) {
    TrainerState &t = trainers_[j];
    // A --host-reduce leader uploads its host's sum, also when it has no samples itself.
    if (t.uploading)
      pipe.post(set_, j, peer_of(t), comm_of(t, job_),
                fmt::format("round {} {} from {}", order.round_number, what, name_of(t)));
    if (!t.working)
      continue;
    stats_request_[j] = set_.size();
    irecv_words(set_, stats_words_[j], peer_of(t), kTagStats, comm_of(t, job_),
                fmt::format("round {} statistics from {}", order.round_number, name_of(t)));
    irecv_chunks(set_, t.buffers.data(), nbuf_, chunk_, peer_of(t), kTagBuffers, comm_of(t, job_),
                 fmt::format("round {} buffers from {}", order.round_number, name_of(t)));
    requests_end_[j] = set_.size();
  }
}

// Rank 0's shard moves on from what the reduce left in the gradient buffer: --sync gradient, the
// optimizer's step on the gradient; diloco, the outer optimizer's step along the sample-weighted
// mean of the trainers' pseudo-gradients (each one's start minus end of its local steps) at
// --outer-lr (DiLoCo, arXiv 2311.08105); params (and diloco with --outer-optimizer average), the
// mean of the trainers' parameters becomes the master copy. The master changes only here, so a
// round cut short (a signal, a lost trainer) leaves it, and its checkpoint, as it was.
void RoundExecutor::step(const RoundOrder &order) {
  torch::NoGradGuard no_grad;
  torch::Tensor params = flat_.params();
  if (!params_mode_)
    optimizer_.step_range(params, flat_.grads(), order.lr, 0, my_length_);
  else if (outer_step_)
    optimizer_.step_range(params, flat_.grads(), config_.outer_lr, 0, my_length_);
  else
    params.narrow(0, 0, my_length_).copy_(flat_.grads().narrow(0, 0, my_length_));
}

// Weights of the reduce, in the order of the posted uploads: 1/S for gradient sums (a host's sum
// of sums too); each trainer's share of the samples for params (no host groups there).
std::vector<float> RoundExecutor::reduce_weights(const RoundOrder &order) const {
  std::vector<float> weights;
  for (size_t j = 0; j < trainers_.size(); ++j) {
    if (!trainers_[j].uploading)
      continue;
    if (params_mode_) {
      const RoundStats s = decode_round_stats(stats_words_[j]);
      weights.push_back(
          static_cast<float>(static_cast<double>(s.samples) / static_cast<double>(order.samples)));
    } else {
      weights.push_back(1.0f / static_cast<float>(order.samples));
    }
  }
  return weights;
}

// Reduce piece c as soon as every working trainer's copy of it has arrived, into the gradient
// buffer. gradient: sum / S; params and diloco: the sample-weighted mean, whose weights need the
// sample counts that come with the statistics. Either way the target is overwritten, never read,
// so a redone round starts clean.
void RoundExecutor::wait_and_reduce(const RoundOrder &order, PipelinedReduce &pipe,
                                    RoundResult &result) {
  // Every mode reduces into the gradient buffer (step() takes it from there).
  float *target = flat_.grads().data_ptr<float>();
  // SIGTERM/SIGUSR1 during the round: it may finish within a short grace (the checkpoint then
  // holds it); past that it is abandoned, since the launcher kills the job soon after its signal
  // (Open MPI after about a second).
  constexpr double kAbandonGrace = 0.5;
  std::optional<Clock::time_point> signal_at;
  const double stall_warning =
      config_.stall_warning > 0 ? config_.stall_warning : config_.straggler_timeout / 2;
  const auto wait_start = Clock::now();
  bool stall_warned = false;
  result.arrival_seconds.assign(trainers_.size(), -1.0);
  auto progress = [&] {
    note_arrivals(wait_start, result.arrival_seconds);
    if (stop_signal() != 0) {
      if (!signal_at)
        signal_at = Clock::now();
      else if (seconds_since(*signal_at) > kAbandonGrace)
        throw RoundAbandoned(fmt::format("{} during round {}{}", signal_name(stop_signal()),
                                         order.round_number,
                                         late_text(trainers_, set_.pending_peers())));
    }
    // The stall inspector: name the trainers this round still waits for, well before the
    // straggler timeout ends the job (or drops them).
    if (!stall_warned && seconds_since(wait_start) > stall_warning) {
      stall_warned = true;
      log_warn("stall: round {} has waited {:.1f} s{}; the job gives up on them after {:.0f} s "
               "(--straggler-timeout)",
               order.round_number, seconds_since(wait_start),
               late_text(trainers_, set_.pending_peers()), config_.straggler_timeout);
    }
    if (params_mode_)
      for (size_t j = 0; j < trainers_.size(); ++j)
        if (trainers_[j].working && !set_.done(stats_request_[j]))
          return;
    pipe.reduce_ready(set_, target, [&] { return reduce_weights(order); });
  };
  try {
    set_.wait_all(config_.straggler_timeout, progress);
  } catch (const PeerTimeout &e) {
    // Everyone else has delivered all of this round: no message of it is left in flight.
    result.end = RoundResult::End::kLate;
    result.late = {set_.pending_peers(), e};
  } catch (const RoundAbandoned &e) {
    result.end = RoundResult::End::kAbandoned;
    result.abandoned = e.what();
  }
}

// When each working trainer's last message of the round arrived (the coordinator's measured
// transfer cost): polled with the round's waits, so as exact as their polling.
void RoundExecutor::note_arrivals(Clock::time_point start, std::vector<double> &arrival) const {
  for (size_t j = 0; j < trainers_.size(); ++j) {
    if (!trainers_[j].working || arrival[j] >= 0)
      continue;
    bool all = true;
    for (size_t r = stats_request_[j]; all && r < requests_end_[j]; ++r)
      all = set_.done(r);
    if (all)
      arrival[j] = seconds_since(start);
  }
}

std::optional<double> RoundExecutor::out_speed(TrainerState &t) {
  if (t.out_speed_request == MPI_REQUEST_NULL)
    return std::nullopt;
  int done = 0;
  CHECK_MPI(MPI_Test(&t.out_speed_request, &done, MPI_STATUS_IGNORE));
  if (!done)
    return std::nullopt;
  t.out_signal = static_cast<int>(t.out_speed[2]); // it got SIGTERM/SIGUSR1: it measured nothing
  if (t.out_speed[0] <= 0 || !(t.out_speed[1] > 0))
    return std::nullopt;
  return t.out_speed[0] / t.out_speed[1];
}

void RoundExecutor::cancel_out_speeds() {
  for (TrainerState &t : trainers_)
    if (t.out_speed_request != MPI_REQUEST_NULL) {
      MPI_Cancel(&t.out_speed_request);
      MPI_Request_free(&t.out_speed_request); // a cancelled receive: nothing to wait for
    }
}

void RoundExecutor::discard_round() {
  set_.cancel_pending();
  reducer_->finish();
}

// Buffers: sample-weighted mean of what the working trainers ran with.
void RoundExecutor::average_buffers(const RoundOrder &order) {
  if (nbuf_ == 0)
    return;
  std::vector<const float *> inputs;
  std::vector<float> w;
  for (const TrainerState &t : trainers_) {
    if (!t.working)
      continue;
    inputs.push_back(t.buffers.data());
    w.push_back(static_cast<float>(static_cast<double>(t.stats.samples) /
                                   static_cast<double>(order.samples)));
  }
  weighted_sum_cpu(inputs, w, buffers_.data(), nbuf_);
  load_buffers(model_, buffers_.data());
}

// What the parameters leave from: the model's buffers flattened, and on a GPU master a pinned
// host copy of the parameters.
void RoundExecutor::stage_parameters() {
  flatten_buffers(model_, buffers_.data());
  if (master_on_gpu_)
    params_out_.copy_(flat_.params());
}

void RoundExecutor::send_parameters(RequestSet &set, const TrainerState &t, const char *when) {
  for (const Piece &p : my_pieces_)
    isend_chunks(set, params_out_.data_ptr<float>() + p.begin, p.length, chunk_, peer_of(t),
                 kTagParams, comm_of(t, job_),
                 fmt::format("sending parameters to {} {}", name_of(t), when));
  isend_chunks(set, buffers_.data(), nbuf_, chunk_, peer_of(t), kTagParamBuffers, comm_of(t, job_),
               fmt::format("sending buffers to {} {}", name_of(t), when));
}

// The new parameters go to the trainers in the round only: one out of the plan gets nothing.
LatePeers RoundExecutor::broadcast() {
  stage_parameters();
  set_ = RequestSet();
  for (const TrainerState &t : trainers_)
    if (t.in_round && !gone(t))
      send_parameters(set_, t, "after the round");
  try {
    set_.wait_all(config_.straggler_timeout);
  } catch (const PeerTimeout &e) {
    return {set_.pending_peers(), e};
  }
  return {};
}

} // namespace hetrain::run
