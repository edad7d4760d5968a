// --sync auto (DESIGN §5 "Choosing the sync mode"): rank 0 decides after the link probe, from the
// start-up plan's exact round, whether exact gradients fit the links or diloco's local steps are
// needed (schedule/plan.h choose_sync), and every job rank learns the decided mode before anything
// that depends on it is built (a trainer's optimizer, the host groups, the shard servers' sums).
// Internal to src/run.
#pragma once

#include "hetrain/config/config.h"
#include "hetrain/data/dataset_file.h"

#include "admission_exchange.h"
#include "host_reduce.h"

#include <mpi.h>

#include <string>

namespace hetrain::run {

struct SyncDecision {
  TrainConfig config; // with a concrete --sync (and --local-steps when it chose diloco)
  std::string why;    // for the log and the summary ("" when the user chose the mode)
};

// Rank 0: the decision (the config unchanged unless --sync auto). `admitted.trainers` carry
// their link figures.
SyncDecision decide_sync(const TrainConfig &config, const AdmittedJob &admitted,
                         const HostMap &hosts, const DatasetMeta &meta);

// Collective over the job, every job rank right after the link probe: rank 0's --sync and
// --local-steps replace this rank's. Waits at most --join-timeout + 60 s (rank 0 builds the model
// for its estimate in between).
TrainConfig share_sync_decision(const TrainConfig &config, MPI_Comm job);

} // namespace hetrain::run
