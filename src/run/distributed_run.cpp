// The distributed job (DESIGN §1-§7): one role per world rank (roles.h). Rank 0 coordinates
// (coordinator.cpp, with the round executor), ranks 1..A-1 serve shards of the flat buffer under
// --aggregators A (shard_server.cpp), the others train (trainer.cpp). All traffic after admission
// is point to point with deadlines, never a collective a lost peer would block.
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/common/error.h"
#include "hetrain/common/log.h"
#include "hetrain/common/system_info.h"
#include "hetrain/run/training_run.h"

#include "roles.h"

#include <fmt/format.h>

#include <algorithm>

namespace hetrain {
namespace run {

int threads_for(const TrainConfig &config, const RankPlacement &placement) {
  if (config.threads > 0)
    return config.threads;
  return std::max(1, usable_cores() / std::max(1, placement.local_size));
}

} // namespace run

TrainSummary run_distributed_training(const TrainConfig &config) {
  validate(config);
  const ProcessIdentity &id = process_identity();
  // Collective over the world, so every rank calls it before anything can diverge.
  const NodeLocal local = node_local(MPI_COMM_WORLD);
  const run::RankPlacement placement{id.rank, id.world_size, local.rank, local.size};
  if (config.aggregators >= id.world_size)
    throw UserError(fmt::format("--aggregators {} needs at least {} ranks (one trainer), the job "
                                "has {}",
                                config.aggregators, config.aggregators + 1, id.world_size));
  if (id.rank == 0)
    return run::run_coordinator(config, placement);
  if (id.rank < config.aggregators)
    return run::run_shard_server(config, placement);
  return run::run_trainer(config, placement);
}

} // namespace hetrain
