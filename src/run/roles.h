// The three roles of a distributed job (DESIGN §1), one per world rank. Internal to src/run.
//
//   rank 0          the coordinator: admission, plans, rounds, checkpoints (coordinator.cpp)
//   ranks 1..A-1    shard servers of --aggregators A (shard_server.cpp)
//   ranks A..W-1    trainers (trainer.cpp)
#pragma once

#include "hetrain/config/config.h"
#include "hetrain/run/training_run.h"

#include <string>

namespace hetrain::run {

// Where a rank sits on its host: picks its GPU and divides the host's cores.
struct RankPlacement {
  int world_rank = 0, world_size = 1;
  int local_rank = 0; // among the ranks on the same host
  int threads = 1;    // torch threads: --threads, or the default of cluster/thread_share.h
  // This rank's device from cluster/device_placement.h: a GPU index (-1: the CPU) and why.
  int gpu = -1;
  std::string device_reason;
};

// Torch threads for a rank: --threads when given, else this rank's share of its host's cores.
inline int threads_for(const TrainConfig &config, const RankPlacement &placement) {
  return config.threads > 0 ? config.threads : placement.threads;
}

TrainSummary run_coordinator(const TrainConfig &config, const RankPlacement &placement);
TrainSummary run_shard_server(const TrainConfig &config, const RankPlacement &placement);
TrainSummary run_trainer(const TrainConfig &config, const RankPlacement &placement);

} // namespace hetrain::run
