// Rank 0's side of admission (DESIGN §3): collect every trainer's report until --join-timeout,
// decide (cluster/admission.h), print the cluster table, tell every reporting rank its verdict,
// and form the communicator of the admitted. Internal to src/run.
#pragma once

#include "hetrain/config/config.h"
#include "hetrain/schedule/links.h"

#include "trainer_roster.h"

#include <mpi.h>
#include <nlohmann/json.hpp>

#include <vector>

namespace hetrain::run {

struct AdmittedJob {
  MPI_Comm job = MPI_COMM_NULL;        // rank 0, the shard servers and the admitted trainers
  Roster trainers;                     // the admitted, job ranks after rank 0 and the shard servers
  std::vector<nlohmann::json> reports; // every report with its verdict (stored in checkpoints)
  std::vector<int> hosts;              // by job rank: which host (host_reduce.h exchange_hosts)
  std::vector<LinkFigures> links;      // the link probe's, empty when it is off
  double link_probe_seconds = 0, link_probe_wait_seconds = 0; // its duration, its wait to start
};

// Throws UserError when no trainer was admitted.
AdmittedJob admit_trainers(const TrainConfig &config, int world_size);

} // namespace hetrain::run
