// --host-reduce on a trainer (DESIGN §6): a group member sends its gradient sum (fp32) to its
// host's leader instead of the aggregators; a leader adds its working members' sums into its own
// (LeaderReduce, host_reduce.h) and uploads the host's sum. The trainer asks this object where a
// piece goes and hands it its own sum; everything the relay needs lives here. Internal to
// src/run.
#pragma once

#include "hetrain/aggregate/shards.h"
#include "hetrain/comm/messages.h"
#include "hetrain/config/config.h"

#include "host_reduce.h"
#include "protocol.h"

#include <torch/torch.h>

#include <memory>
#include <optional>

namespace hetrain::run {

class HostRelay {
public:
  // This trainer's part in its host's group (none, member or leader), as every rank computes it.
  HostRelay(const TrainConfig &config, MPI_Comm job, const HostMap &hosts);
  // A leader's reduce, once the layout and the wire format are known; `host_memory`: the
  // gradients are in host memory (a CPU trainer), else the host's sum goes through a pinned copy.
  void set_up(const ShardLayout &layout, const protocol::WireFormat &wire, int64_t chunk,
              int64_t numel, bool host_memory);

  bool member() const { return leader_ >= 0; }
  bool leader() const { return group_.has_value(); }
  // Where piece p of this trainer's own upload goes: the leader for a member, else its owner.
  int upload_peer(const Piece &p) const { return leader_ >= 0 ? leader_ : p.owner; }

  // A leader whose members work this round (--sync gradient): their sums are received from now
  // on, while this trainer computes its own into `grads`. Returns whether the host's sum leaves
  // through the relay this round.
  bool begin(const RoundCommand &command, bool params_mode, torch::Tensor grads);
  bool active() const { return active_; }
  // --overlap: the leader's own part of piece k is final; adds the members' copies, sends it on.
  void own_ready(size_t k) { reduce_->own_ready(k); }
  // The rest of the host's sum: every piece that has not left yet leaves once its members'
  // copies are in (`overlapped`: own pieces were marked ready during backward). A member that
  // does not deliver is named in a warning; rank 0 reaches its own deadline and decides.
  void finish(bool own_computed, const torch::Tensor &grads, bool overlapped, double timeout);
  // kSkip for this leader, but some of its members work: the host's sum is theirs alone.
  void relay_only(const RoundCommand &command, torch::Tensor grads, double timeout);

private:
  MPI_Comm job_;
  const HostMap &hosts_;
  int leader_ = -1;                // a member's leader (job rank); -1 when it is none
  std::optional<HostGroup> group_; // the group this trainer leads
  std::unique_ptr<LeaderReduce> reduce_;
  bool host_memory_ = true;
  bool active_ = false;    // this round the host's sum leaves through the relay
  torch::Tensor sum_host_; // a GPU leader's sum in pinned host memory
};

} // namespace hetrain::run
