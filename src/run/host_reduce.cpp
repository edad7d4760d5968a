#include "host_reduce.h"

#include "hetrain/comm/check_mpi.h"

#include <fmt/format.h>

namespace hetrain::run {
using namespace protocol;

HostMap exchange_hosts(const TrainConfig &config, MPI_Comm job) {
  return {host_ids(job, config.join_timeout + 60), world_ranks(job)};
}

HostGrouping job_host_groups(const TrainConfig &config, const HostMap &hosts) {
  HostReduce mode = config.host_reduce;
  // validate() refuses `on` with these; `auto` quietly stays off.
  std::string why;
  if (config.sync != SyncMode::kGradient)
    why = "--sync params averages each trainer's model";
  else if (config.on_trainer_loss != TrainerLoss::kAbort)
    why = "--on-trainer-loss continue would need a leader's sum undone without a lost member";
  if (!why.empty())
    mode = HostReduce::kOff;
  HostGrouping g = host_groups(hosts.host_of, config.aggregators, mode);
  if (!why.empty())
    g.off_reason = why;
  else if (config.host_reduce == HostReduce::kOff)
    g.off_reason = "--host-reduce off";
  return g;
}

std::string rank_list(const std::vector<int> &ranks) {
  std::string out;
  for (int r : ranks)
    out += (out.empty() ? "" : ",") + std::to_string(r);
  return out;
}

LeaderReduce::LeaderReduce(const ShardLayout &layout, const WireFormat &wire, int64_t chunk,
                           MPI_Comm job, const HostGroup &group, const HostMap &hosts)
    : layout_(layout), wire_(wire), chunk_(chunk), job_(job), hosts_(hosts),
      received_(group.members.size()) {
  const int64_t numel = layout.shard_begin.back();
  for (auto &r : received_)
    r.resize(static_cast<size_t>(numel));
  if (wire.dtype != torch::kFloat32)
    wire_out_ = torch::empty({numel}, torch::TensorOptions().dtype(wire.dtype));
}

void LeaderReduce::begin(const std::vector<int> &members, float *sum, int64_t round) {
  receives_ = RequestSet();
  sends_ = RequestSet();
  first_.clear();
  own_.assign(layout_.pieces.size(), false);
  sent_.assign(layout_.pieces.size(), false);
  sum_ = sum;
  round_ = round;
  for (size_t m = 0; m < members.size(); ++m) {
    const int world = hosts_.world_of[static_cast<size_t>(members[m])];
    first_.push_back(receives_.size());
    for (const Piece &p : layout_.pieces)
      irecv_upload_piece(receives_, received_[m].data(), 0, p, WireFormat{}, chunk_, members[m],
                         job_,
                         fmt::format("round {} gradients of host member rank {}", round, world));
  }
}

void LeaderReduce::own_ready(size_t k) {
  own_[k] = true;
  progress();
}

void LeaderReduce::all_own_ready() {
  std::fill(own_.begin(), own_.end(), true);
  progress();
}

void LeaderReduce::progress() {
  receives_.test_all();
  for (size_t k = 0; k < layout_.pieces.size(); ++k) {
    if (sent_[k] || !own_[k])
      continue;
    bool ready = true;
    for (size_t first : first_)
      ready = ready && receives_.done(first + k);
    if (ready)
      add_and_send(k);
  }
}

// The host's sum of piece k: the leader's own, then each member's in group order (a fixed order,
// so a rerun adds alike), sent on in the wire dtype.
void LeaderReduce::add_and_send(size_t k) {
  const Piece &p = layout_.pieces[k];
  float *out = sum_ + p.begin;
  for (size_t m = 0; m < first_.size(); ++m) {
    const float *in = received_[m].data() + p.begin;
    for (int64_t i = 0; i < p.length; ++i)
      out[i] += in[i];
  }
  const void *base = sum_;
  if (wire_out_.defined()) {
    wire_out_.narrow(0, p.begin, p.length)
        .copy_(torch::from_blob(out, {p.length}, torch::kFloat32));
    base = wire_out_.data_ptr();
  }
  isend_upload_piece(sends_, base, 0, p, wire_, chunk_, p.owner, job_,
                     fmt::format("round {} sending the host's gradients to rank {}", round_,
                                 hosts_.world_of[static_cast<size_t>(p.owner)]));
  sent_[k] = true;
}

void LeaderReduce::finish(double timeout) {
  receives_.wait_all(timeout, [&] { progress(); });
  progress();
  sends_.wait_all(timeout);
}

void LeaderReduce::cancel() {
  receives_.cancel_pending();
  sends_.cancel_pending();
}

} // namespace hetrain::run
