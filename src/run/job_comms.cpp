#include "job_comms.h"

#include "hetrain/comm/check_mpi.h"
#include "hetrain/common/log.h"

#include <vector>

namespace hetrain::run {

JobComms::JobComms(const TrainConfig &config, MPI_Comm job, JobRole role)
    : job_(job), hosts_(exchange_hosts(config, job)) { // collective: every job rank, now
  CHECK_MPI(MPI_Comm_dup(job_, &beats_));              // collective: every job rank, now
  CHECK_MPI(MPI_Comm_set_errhandler(beats_, MPI_ERRORS_RETURN));
  if (!mpi_thread_multiple()) { // the same MPI everywhere: nobody beats, nobody watches
    if (role == JobRole::kCoordinator)
      log_warn("this MPI offers no MPI_THREAD_MULTIPLE: no heartbeat, so the other ranks find a "
               "lost rank 0 only after {:.0f} s",
               2 * config.straggler_timeout + 60);
    return;
  }
  if (role != JobRole::kCoordinator) {
    watch_.emplace(beats_, 0, heartbeat_limit(config.straggler_timeout));
    return;
  }
  int job_size = 1;
  CHECK_MPI(MPI_Comm_size(beats_, &job_size));
  std::vector<int> peers;
  for (int r = 1; r < job_size; ++r)
    peers.push_back(r);
  heart_.emplace(beats_, std::move(peers), heartbeat_period(config.straggler_timeout));
}

void JobComms::finish() {
  heart_.reset();
  watch_.reset();
  CHECK_MPI(MPI_Comm_free(&beats_));
  CHECK_MPI(MPI_Comm_free(&job_));
}

} // namespace hetrain::run
