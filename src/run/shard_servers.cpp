#include "shard_servers.h"

#include "hetrain/common/log.h"

#include "protocol.h"

#include <fmt/format.h>

#include <algorithm>

namespace hetrain::run {
using namespace protocol;

ShardServers::ShardServers(const TrainConfig &config, const ShardLayout &layout, MPI_Comm job,
                           int world_size, FlatParameters &flat, Optimizer &optimizer)
    : config_(config), layout_(layout), job_(job), world_size_(world_size),
      servers_(config.aggregators - 1), chunk_(chunk_elements(config)), flat_(flat),
      optimizer_(optimizer), optimizer_state_(optimizer.state()) {}

void ShardServers::setup(const Roster &trainers) {
  trainers_ = trainers.size();
  if (servers_ == 0)
    return;
  ShardSetup setup;
  setup.optimizer_steps = optimizer_.steps_taken();
  for (const TrainerState &t : trainers) {
    setup.job_ranks.push_back(t.job_rank);
    setup.world_ranks.push_back(t.world_rank);
  }
  const Words message = encode(setup, world_size_);
  RequestSet set;
  for (int j = 1; j <= servers_; ++j)
    isend_words(set, message, j, kTagShardSetup, job_, "sending a shard server its setup");
  set.wait_all(config_.straggler_timeout);
  move_shards(false, "sending its shard to");
  log_info("aggregators: {} ranks; rank 0 owns elements [0, {}) of {}, {} the rest; {} "
           "pieces of at most {} elements",
           config_.aggregators, layout_.shard_length(0), flat_.numel(),
           servers_ == 1 ? std::string("rank 1") : fmt::format("ranks 1-{}", servers_),
           layout_.pieces.size(), chunk_);
}

void ShardServers::post_round(RequestSet &set, const ShardCommand &command, int64_t round_number) {
  commands_.assign(static_cast<size_t>(servers_), encode(command, trainers_));
  acks_.assign(static_cast<size_t>(servers_), Words(ShardAck::kWords));
  for (int j = 1; j <= servers_; ++j) {
    isend_words(set, commands_[static_cast<size_t>(j - 1)], j, kTagShardCommand, job_,
                fmt::format("sending round {} to rank {} (shard server)", round_number, j));
    irecv_words(
        set, acks_[static_cast<size_t>(j - 1)], j, kTagShardAck, job_,
        fmt::format("rank {} (shard server) stepping its shard in round {}", j, round_number));
  }
}

const std::vector<ShardAck> ShardServers::acks() const {
  std::vector<ShardAck> out;
  for (const Words &a : acks_)
    out.push_back(decode_shard_ack(a));
  return out;
}

void ShardServers::gather(int64_t global_step) {
  if (gathered_)
    return;
  ShardCommand command;
  command.kind = ShardCommand::Kind::kGather;
  command.global_step = global_step;
  command_all(command, "asking a shard server for its shard", config_.straggler_timeout);
  move_shards(true, "the shard of");
  gathered_ = true;
}

void ShardServers::stop() {
  if (servers_ == 0)
    return;
  try {
    command_all(ShardCommand{}, "telling a shard server to stop",
                std::min(5.0, config_.straggler_timeout));
  } catch (const PeerTimeout &) {
  }
}

void ShardServers::command_all(const ShardCommand &command, const char *what, double timeout) {
  const Words message = encode(command, trainers_);
  RequestSet set;
  for (int j = 1; j <= servers_; ++j)
    isend_words(set, message, j, kTagShardCommand, job_, what);
  try {
    set.wait_all(timeout);
  } catch (const PeerTimeout &) {
    set.cancel_pending();
    throw;
  }
}

void ShardServers::move_shards(bool gather, const char *what) {
  std::vector<torch::Tensor> tensors{flat_.params()};
  for (const auto &named : optimizer_state_)
    tensors.push_back(named.second);
  std::vector<std::vector<float>> host(static_cast<size_t>(servers_) * tensors.size());
  RequestSet set;
  for (int j = 1; j <= servers_; ++j)
    for (size_t s = 0; s < tensors.size(); ++s) {
      const int64_t begin = layout_.shard_begin[static_cast<size_t>(j)];
      const int64_t length = layout_.shard_length(j);
      std::vector<float> &h = host[static_cast<size_t>(j - 1) * tensors.size() + s];
      const int tag = kTagShardState + static_cast<int>(s);
      const std::string text = fmt::format("{} rank {} (shard server)", what, j);
      if (gather) {
        h.resize(static_cast<size_t>(length));
        irecv_chunks(set, h.data(), length, chunk_, j, tag, job_, text);
      } else {
        torch::Tensor part = tensors[s].narrow(0, begin, length).to(torch::kCPU).contiguous();
        h.assign(part.data_ptr<float>(), part.data_ptr<float>() + length);
        isend_chunks(set, h.data(), length, chunk_, j, tag, job_, text);
      }
    }
  set.wait_all(config_.straggler_timeout);
  if (!gather)
    return;
  torch::NoGradGuard no_grad;
  for (int j = 1; j <= servers_; ++j)
    for (size_t s = 0; s < tensors.size(); ++s) {
      std::vector<float> &h = host[static_cast<size_t>(j - 1) * tensors.size() + s];
      tensors[s]
          .narrow(0, layout_.shard_begin[static_cast<size_t>(j)], layout_.shard_length(j))
          .copy_(torch::from_blob(h.data(), {layout_.shard_length(j)}, torch::kFloat32));
    }
}

} // namespace hetrain::run
