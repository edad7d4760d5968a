// Rank 0's side of the shard servers of --aggregators A (ranks 1..A-1; DESIGN §6). Rank 0 keeps
// full-size parameters and optimizer state, but between gathers only its own shard of them is
// current: gather() brings the others' shards here (before every checkpoint, every evaluation and
// the end); setup() sends them out (at the start and after --resume). Internal to src/run.
#pragma once

#include "hetrain/aggregate/shards.h"
#include "hetrain/comm/messages.h"
#include "hetrain/config/config.h"
#include "hetrain/train/flat_parameters.h"
#include "hetrain/train/optimizer.h"

#include "trainer_roster.h"

#include <torch/torch.h>

#include <vector>

namespace hetrain::run {

class ShardServers {
public:
  ShardServers(const TrainConfig &config, const ShardLayout &layout, MPI_Comm job, int world_size,
               FlatParameters &flat, Optimizer &optimizer);
  int count() const { return servers_; }
  // Who the trainers are and how many steps the optimizer has taken; then the shards.
  void setup(const Roster &trainers);
  // Posts the round's command to every server and the receive of its acknowledgement (it answers
  // when it has stepped its shard, so a round is complete only when every server's is).
  void post_round(RequestSet &set, const ShardCommand &command, int64_t round_number);
  const std::vector<ShardAck> acks() const;
  // The servers' shards moved on in a completed round.
  void stepped() { gathered_ = servers_ == 0; }
  // Brings every shard here unless already here; a server first undoes a round rank 0 did not
  // complete (one that started at `global_step`, rank 0's position, or later).
  void gather(int64_t global_step);
  // The job is ending anyway: a server that does not listen is killed with it.
  void stop();

private:
  // Sends (gather false) or receives (true) every server's shard of the parameters and of each
  // optimizer state tensor.
  void move_shards(bool gather, const char *what);
  void command_all(const ShardCommand &command, const char *what, double timeout);

  const TrainConfig &config_;
  const ShardLayout &layout_;
  MPI_Comm job_;
  int world_size_, servers_;
  size_t trainers_ = 0;
  int64_t chunk_;
  FlatParameters &flat_;
  Optimizer &optimizer_;
  std::vector<std::pair<std::string, torch::Tensor>> optimizer_state_;
  std::vector<Words> commands_, acks_; // in flight during a round
  bool gathered_ = true;
};

} // namespace hetrain::run
