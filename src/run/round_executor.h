// Rank 0's round executor (DESIGN §5 "One round"): it *does* one round and says what happened;
// the coordinator decides what follows. One round:
//
//   commands to the trainers (each TrainerState::command, where send_command says so), the
//     current parameters first to one back in the plan (refresh), commands to the shard servers
//   receive statistics, upload pieces and buffers; reduce each piece of rank 0's shard as soon
//     as every working trainer's copy of it is in (PipelinedReduce, as the shard servers do)
//   average the BatchNorm buffers by samples, step the optimizer on rank 0's shard
//   broadcast parameters and buffers to every trainer in the round (not to one out of the plan)
//
// A round that does not complete returns the late peers (a deadline passed) or is abandoned (a
// SIGTERM/SIGUSR1 did not let it finish within its grace). Internal to src/run.
#pragma once

#include "hetrain/aggregate/chunk_reducer.h"
#include "hetrain/config/config.h"
#include "hetrain/model/models.h"
#include "hetrain/observe/timeline.h"
#include "hetrain/train/flat_parameters.h"
#include "hetrain/train/optimizer.h"

#include "pipelined_reduce.h"
#include "protocol.h"
#include "shard_servers.h"
#include "trainer_roster.h"

#include <optional>

#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hetrain::run {

// What the coordinator decided for one round (each trainer's command is in the roster).
struct RoundOrder {
  int64_t round_number = 0; // as logs and trainers count it (global step + 1)
  int64_t global_step = 0;  // optimizer steps before the round
  int64_t samples = 0;      // in the round, over all working trainers
  double lr = 0;
};

// Peers that did not answer within --straggler-timeout, and the error that names them.
struct LatePeers {
  std::vector<int> world_ranks;
  std::optional<PeerTimeout> error;
  bool any() const { return error.has_value(); }
};

struct RoundResult {
  enum class End { kComplete, kLate, kAbandoned } end = End::kComplete;
  LatePeers late;           // kLate: who the round still waited for
  std::string abandoned;    // kAbandoned: "SIGTERM during round 3 while waiting for ..."
  LatePeers broadcast_late; // kComplete: trainers that did not take the new parameters
  double receive_seconds = 0, reduce_seconds = 0, step_seconds = 0, broadcast_seconds = 0;
  std::vector<ShardAck> server_acks;
  // By roster index: seconds from the round's start until the last of the trainer's messages to
  // rank 0 (statistics, its upload pieces, buffers) had arrived; -1 when it did not work.
  std::vector<double> arrival_seconds;
};

// What the coordinator needs of a round's execution (round_supervisor.h); tests fake it.
class RoundRunner {
public:
  virtual ~RoundRunner() = default;
  // Sends every trainer its command, receives and reduces, steps, broadcasts.
  virtual RoundResult execute(const RoundOrder &order) = 0;
  // After kLate: cancels what is still pending of the round (the job goes on without the late).
  virtual void discard_round() = 0;
  // Parameters and buffers to every trainer in the round (after every round, and to the
  // survivors after a round was given up).
  virtual LatePeers broadcast() = 0;
};

class RoundExecutor : public RoundRunner {
public:
  RoundExecutor(const TrainConfig &config, MPI_Comm job, Model &model, FlatParameters &flat,
                Optimizer &optimizer, const ShardLayout &layout, ShardServers &servers,
                Roster &trainers, Timeline &timeline, ReduceDevice reduce, torch::Device device,
                int reduce_threads);
  std::string reduce_description() const { return reducer_->description(); }
  RoundResult execute(const RoundOrder &order) override;
  void discard_round() override;
  // A trainer out of the plan that was asked to measure itself: its samples/s once the answer is
  // in (tested, never waited for); cancel_out_speeds() at the end of the job.
  // Its answer also sets t.out_signal (a signal of its own while out: it wants to leave).
  std::optional<double> out_speed(TrainerState &t);
  void cancel_out_speeds();
  LatePeers broadcast() override;

private:
  void post_round(const RoundOrder &order, PipelinedReduce &pipe);
  void stage_parameters();
  void send_parameters(RequestSet &set, const TrainerState &t, const char *when);
  void wait_and_reduce(const RoundOrder &order, PipelinedReduce &pipe, RoundResult &result);
  void average_buffers(const RoundOrder &order);
  void note_arrivals(std::chrono::steady_clock::time_point start,
                     std::vector<double> &arrival) const;
  std::vector<float> reduce_weights(const RoundOrder &order) const;
  void step(const RoundOrder &order);

  const TrainConfig &config_;
  MPI_Comm job_;
  Model &model_;
  FlatParameters &flat_;
  Optimizer &optimizer_;
  const ShardLayout &layout_;
  ShardServers &servers_;
  Roster &trainers_;
  Timeline &timeline_;
  const protocol::WireFormat wire_;
  const bool params_mode_; // params and diloco: trainers upload parameters after local steps
  const bool outer_step_;  // diloco with an outer optimizer (not plain averaging)
  const int64_t chunk_, nbuf_;
  const std::vector<Piece> my_pieces_; // rank 0's shard: all of the buffer without --aggregators
  const int64_t my_length_;
  std::unique_ptr<ChunkReducer> reducer_;
  std::unique_ptr<Int8Staging> int8_; // --wire-dtype int8 only
  std::vector<float> buffers_;        // averaged BatchNorm buffers, broadcast with the parameters
  torch::Tensor params_out_; // what the broadcast sends: the master parameters or a pinned copy
  bool master_on_gpu_;
  // The round in flight
  RequestSet set_;
  std::vector<Words> command_words_, stats_words_;
  std::vector<size_t> stats_request_, requests_end_; // each trainer's requests in set_
};

} // namespace hetrain::run
