// The communicators of a distributed job and the order in which every rank sets them up
// (DESIGN §1, §7). Every job rank, whatever its role, goes through the same collective steps:
//
//   1. the job communicator: the admitted ranks (admission_exchange.h on rank 0, the verdict on
//      a trainer, a split on a shard server), handed to JobComms;
//   2. exchange_hosts over it (host_reduce.h): which job rank sits on which host;
//   3. the heartbeat's own communicator, dup'ed from the job's, so that beats never match a
//      round's receives: rank 0 beats every job rank, the others watch rank 0 (comm/heartbeat.h);
//   4. the link probe (link_probe.h), which each role runs with its own arguments after this.
//
// Steps 2 and 3 happen in the constructor, so they cannot be reordered per role; finish() undoes
// them in reverse at the job's normal end. Internal to src/run.
#pragma once

#include "hetrain/comm/heartbeat.h"
#include "hetrain/config/config.h"

#include "host_reduce.h"

#include <mpi.h>

#include <optional>

namespace hetrain::run {

enum class JobRole { kCoordinator, kShardServer, kTrainer };

class JobComms {
public:
  // Takes over `job`. Collective: every job rank constructs one, right after admission.
  JobComms(const TrainConfig &config, MPI_Comm job, JobRole role);
  // Only stops the heartbeat: when an exception unwinds (a peer is lost, the job is about to be
  // aborted) the communicators are left to MPI_Abort, as freeing one whose peer is gone could hang.
  ~JobComms() = default;
  JobComms(const JobComms &) = delete;
  JobComms &operator=(const JobComms &) = delete;

  MPI_Comm job() const { return job_; }
  const HostMap &hosts() const { return hosts_; }
  // Rank 0: a trainer left the job (a planned leave); its heartbeat stops.
  void forget(int job_rank) {
    if (heart_)
      heart_->forget(job_rank);
  }
  // At the job's normal end (on rank 0 once the trainers have their stop command, so that they
  // no longer watch): stops the heartbeat, frees the heartbeat's and the job's communicators.
  void finish();

private:
  MPI_Comm job_ = MPI_COMM_NULL, beats_ = MPI_COMM_NULL;
  HostMap hosts_;
  std::optional<HeartbeatSender> heart_; // rank 0
  std::optional<HeartbeatWatch> watch_;  // every other job rank
};

} // namespace hetrain::run
