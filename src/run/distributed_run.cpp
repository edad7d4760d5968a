// The distributed job (DESIGN §1-§7): one role per world rank (roles.h). Rank 0 coordinates
// (coordinator.cpp, with the round executor), ranks 1..A-1 serve shards of the flat buffer under
// --aggregators A (shard_server.cpp), the others train (trainer.cpp). All traffic after admission
// is point to point with deadlines, never a collective a lost peer would block.
#include "hetrain/cluster/aggregator_layout.h"
#include "hetrain/cluster/device_placement.h"
#include "hetrain/cluster/thread_share.h"
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/common/error.h"
#include "hetrain/common/log.h"
#include "hetrain/common/system_info.h"
#include "hetrain/run/training_run.h"

#include "roles.h"

#include <fmt/format.h>

#include <torch/cuda.h>

#include <algorithm>

namespace hetrain {

namespace {
// --aggregators-per-host resolved: A = the job's hosts, checked against where the ranks sit.
TrainConfig with_aggregators(TrainConfig config) {
  if (!config.aggregators_per_host)
    return config;
  // Collective: every rank calls it. The deadline covers a rank that dies at startup.
  const std::vector<int> host_of = host_ids(MPI_COMM_WORLD, config.join_timeout + 60);
  config.aggregators = aggregators_per_host(host_of);
  if (process_identity().rank == 0)
    log_info("--aggregators-per-host: {} host(s), so rank(s) 0..{} aggregate, one per host",
             config.aggregators, config.aggregators - 1);
  return config;
}

// Every rank of this host placed at once (cluster/device_placement.h), so each reaches the same
// answer without another message: rank 0 is the only aggregator that may use CUDA (shard servers
// reduce on the CPU), trainers follow --device.
DevicePlace this_rank_device(const TrainConfig &config, const NodeLocal &local) {
  auto wish = [](DeviceChoice c) {
    return c == DeviceChoice::kCpu    ? DeviceWish::kCpu
           : c == DeviceChoice::kCuda ? DeviceWish::kCuda
                                      : DeviceWish::kAuto;
  };
  std::vector<HostRank> host;
  for (size_t i = 0; i < local.roles.size(); ++i) {
    const auto role = static_cast<RankRole>(local.roles[i]);
    const DeviceWish w = role == RankRole::kTrainer ? wish(config.device)
                         : local.ranks[i] == 0      ? wish(config.aggregator_device)
                                                    : DeviceWish::kCpu;
    host.push_back({role, w});
  }
  const int gpus = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  return place_devices(host, gpus)[static_cast<size_t>(local.rank)];
}
} // namespace

TrainSummary run_distributed_training(const TrainConfig &given) {
  validate(given);
  const TrainConfig config = with_aggregators(given);
  const ProcessIdentity &id = process_identity();
  // Collective over the world, so every rank calls it before anything can diverge.
  const RankRole role = id.rank < config.aggregators ? RankRole::kAggregator : RankRole::kTrainer;
  const NodeLocal local = node_local(MPI_COMM_WORLD, static_cast<int>(role));
  DevicePlace device = this_rank_device(config, local);
  const run::RankPlacement placement{
      id.rank,    id.world_size,
      local.rank, default_threads(usable_cores(), local.sharing_roles, role),
      device.gpu, std::move(device.reason)};
  if (config.aggregators >= id.world_size)
    throw UserError(fmt::format("--aggregators {} needs at least {} ranks (one trainer), the job "
                                "has {}",
                                config.aggregators, config.aggregators + 1, id.world_size));
  // The per-rank startup banner: who runs what where, with how many threads.
  log_info("{} on {} (local rank {}), {} torch threads{}; device: {}",
           id.rank == 0                   ? "coordinator"
           : id.rank < config.aggregators ? "shard server"
                                          : "trainer",
           id.host, local.rank, run::threads_for(config, placement),
           config.threads > 0 ? " (--threads)"
                              : fmt::format(" ({} cores shared by {} ranks)", usable_cores(),
                                            local.sharing_roles.size()),
           placement.gpu >= 0 ? fmt::format("cuda:{} ({})", placement.gpu, placement.device_reason)
                              : fmt::format("cpu ({})", placement.device_reason));
  if (id.rank == 0)
    return run::run_coordinator(config, placement);
  if (id.rank < config.aggregators)
    return run::run_shard_server(config, placement);
  return run::run_trainer(config, placement);
}

} // namespace hetrain
