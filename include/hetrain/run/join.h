// `hetrain join FILE` (DESIGN §7 "Live join"): one more trainer for a job started with
// `hetrain train --accept-joins FILE`, taken at a round boundary.
#pragma once

#include "hetrain/config/config.h"
#include "hetrain/run/training_run.h"

#include <string>
#include <vector>

namespace hetrain {

// The job's `hetrain train` options from FILE; UserError (exit 2) for a missing or malformed FILE
// or a job of another protocol version.
std::vector<std::string> join_command(const std::string &file);

// Under MPI (its own mpirun with --ompi-server): measures this node, waits to be taken by the
// job's rank 0, then trains with the job until it ends or lets this trainer go. `config`: the
// job's options (join_command) with this machine's --device and --threads.
TrainSummary run_joiner(const TrainConfig &config, const std::string &file);

} // namespace hetrain
