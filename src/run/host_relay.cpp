#include "host_relay.h"

#include "hetrain/comm/check_mpi.h"
#include "hetrain/common/error.h"
#include "hetrain/common/log.h"

#include "pinned_memory.h"

namespace hetrain::run {

HostRelay::HostRelay(const TrainConfig &config, MPI_Comm job, const HostMap &hosts)
    : job_(job), hosts_(hosts) {
  int job_rank = 0;
  CHECK_MPI(MPI_Comm_rank(job, &job_rank));
  const HostGrouping grouping = job_host_groups(config, hosts);
  if (const HostGroup *g = group_of(grouping.groups, job_rank)) {
    if (g->leader == job_rank)
      group_ = *g;
    else
      leader_ = g->leader;
  }
}

void HostRelay::set_up(const ShardLayout &layout, const protocol::WireFormat &wire, int64_t chunk,
                       int64_t numel, bool host_memory) {
  host_memory_ = host_memory;
  if (!group_)
    return;
  reduce_ = std::make_unique<LeaderReduce>(layout, wire, chunk, job_, *group_, hosts_);
  if (!host_memory)
    sum_host_ = host_buffer(numel, torch::kFloat32, true);
}

bool HostRelay::begin(const RoundCommand &command, bool params_mode, torch::Tensor grads) {
  active_ = group_ && command.members != 0 && !params_mode;
  if (!active_)
    return false;
  float *sum = host_memory_ ? grads.data_ptr<float>() : sum_host_.data_ptr<float>();
  reduce_->begin(working_members(*group_, command.members), sum, command.global_step + 1);
  return true;
}

void HostRelay::finish(bool own_computed, const torch::Tensor &grads, bool overlapped,
                       double timeout) {
  if (!host_memory_ && own_computed)
    sum_host_.copy_(grads);
  if (!overlapped)
    reduce_->all_own_ready();
  try {
    reduce_->finish(timeout);
  } catch (const PeerTimeout &e) {
    log_warn("host reduce: round {}: {}; waiting for rank 0's decision", reduce_->round(),
             e.what());
    reduce_->cancel();
  }
  active_ = false;
}

void HostRelay::relay_only(const RoundCommand &command, torch::Tensor grads, double timeout) {
  {
    torch::NoGradGuard no_grad;
    (host_memory_ ? grads : sum_host_).zero_();
  }
  begin(command, false, grads);
  reduce_->all_own_ready();
  finish(false, grads, true, timeout);
}

} // namespace hetrain::run
