// --host-reduce (DESIGN §6): the transfers behind aggregate/host_groups.h. Internal to src/run.
//
//   every job rank, once after admission: exchange_hosts() (collective over the job), then
//     job_host_groups() computes the same groups everywhere
//   a group's leader, each round its command names working members: LeaderReduce receives their
//     fp32 gradient sums piece by piece, adds each piece into its own sum as soon as every copy is
//     in, and sends the piece on to its owner (rank 0 or a shard server) in --wire-dtype
#pragma once

#include "hetrain/aggregate/host_groups.h"
#include "hetrain/aggregate/shards.h"
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/config/config.h"

#include "protocol.h"

#include <torch/torch.h>

#include <string>
#include <vector>

namespace hetrain::run {

// Per job rank: its host's id (the lowest job rank on the same host, MPI_COMM_TYPE_SHARED) and
// its world rank. Collective over `job`: every rank of the job calls it right after the job's
// communicator is made, before any other traffic on it.
struct HostMap {
  std::vector<int> host_of, world_of;
};
HostMap exchange_hosts(const TrainConfig &config, MPI_Comm job);

// The groups of this job under --host-reduce (auto stays off with --sync params or
// --on-trainer-loss continue, saying why in off_reason).
HostGrouping job_host_groups(const TrainConfig &config, const HostMap &hosts);

// "3,4"
std::string rank_list(const std::vector<int> &ranks);

class LeaderReduce {
public:
  LeaderReduce(const ShardLayout &layout, const protocol::WireFormat &wire, int64_t chunk,
               MPI_Comm job, const HostGroup &group, const HostMap &hosts);
  // A round begins: posts the receives of every piece from each of `members` (job ranks, this
  // round's working ones). `sum` (fp32, the whole flat buffer, host memory) holds the leader's
  // own gradient sum once own_ready() says so (zeros when the leader has no samples), and the
  // host's sum after finish().
  void begin(const std::vector<int> &members, float *sum, int64_t round);
  // The leader's own part of piece k is final (--overlap: during its last backward pass).
  void own_ready(size_t k);
  void all_own_ready();
  // Adds and sends on every piece whose copies are all in; cheap, call it often.
  void progress();
  // Waits until every piece has left for its owner; PeerTimeout naming the member (or the
  // owner) it waited for after `timeout` seconds.
  void finish(double timeout);
  // After a timeout: what is still pending is cancelled (rank 0 decides what follows).
  void cancel();
  int64_t round() const { return round_; }

private:
  void add_and_send(size_t k);

  const ShardLayout &layout_;
  const protocol::WireFormat wire_;
  const int64_t chunk_;
  MPI_Comm job_;
  const HostMap &hosts_;
  std::vector<std::vector<float>> received_; // per member slot: its fp32 sum (whole buffer)
  torch::Tensor wire_out_;                   // the host's sum in --wire-dtype (not fp32)
  RequestSet receives_, sends_;
  std::vector<size_t> first_; // per working member: piece k's receive is request first + k
  std::vector<bool> own_, sent_;
  float *sum_ = nullptr;
  int64_t round_ = 0;
};

} // namespace hetrain::run
