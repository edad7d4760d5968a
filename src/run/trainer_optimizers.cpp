#include "trainer_optimizers.h"

#include "protocol.h"
#include "train_setup.h"

#include "hetrain/comm/messages.h"
#include "hetrain/common/error.h"
#include "hetrain/common/log.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <memory>

namespace hetrain::run {
using protocol::chunk_elements;
using protocol::kTagCommand;
using protocol::kTagTrainerState;

bool trainers_keep_optimizer_state(const TrainConfig &config) {
  return config.sync != SyncMode::kGradient && !trainer_state_names(config).empty();
}

std::vector<std::string> trainer_state_names(const TrainConfig &config) {
  std::vector<std::string> names;
  for (const auto &[name, tensor] : Optimizer(optimizer_options(config), 0).state())
    names.push_back(name);
  if (config.wire_dtype == WireDType::kInt8)
    names.push_back(kWireResidual);
  return names;
}

std::vector<TrainerOptimizerState> states_for(const TrainConfig &config,
                                              std::vector<TrainerOptimizerState> saved,
                                              const std::string &path) {
  const std::vector<std::string> names = trainer_state_names(config);
  for (TrainerOptimizerState &s : saved) {
    std::vector<std::pair<std::string, torch::Tensor>> ordered;
    for (const std::string &name : names) {
      auto it = std::find_if(s.state.begin(), s.state.end(),
                             [&](const auto &p) { return p.first == name; });
      if (it != s.state.end())
        ordered.push_back(*it);
      else if (name == kWireResidual && !s.state.empty())
        ordered.emplace_back(name, torch::zeros_like(s.state.front().second));
      else
        throw UserError(fmt::format("--resume {}: trainer rank {}'s optimizer state has no {}",
                                    path, s.rank, name));
    }
    s.state = std::move(ordered);
  }
  return saved;
}

ReSplit choose_resplit(const std::vector<int> &ranks_now, const std::vector<int> &ranks_saved) {
  if (ranks_saved.empty())
    return ReSplit::kNone;
  std::vector<int> now = ranks_now, saved = ranks_saved;
  std::sort(now.begin(), now.end());
  std::sort(saved.begin(), saved.end());
  return now == saved ? ReSplit::kOwn : ReSplit::kMean;
}

TrainerOptimizerState mean_state(const std::vector<TrainerOptimizerState> &saved) {
  TrainerOptimizerState mean;
  if (saved.empty())
    return mean;
  torch::NoGradGuard no_grad;
  for (const auto &[name, tensor] : saved.front().state)
    mean.state.emplace_back(name, torch::zeros_like(tensor, torch::kFloat64));
  for (const TrainerOptimizerState &s : saved) {
    mean.steps = std::max(mean.steps, s.steps);
    for (size_t i = 0; i < mean.state.size(); ++i)
      mean.state[i].second.add_(s.state.at(i).second);
  }
  for (auto &[name, tensor] : mean.state)
    tensor = tensor.div_(static_cast<double>(saved.size())).to(torch::kFloat32);
  return mean;
}

namespace {

// A state on its way: the header words and the host tensors, alive until the set completes.
struct StateTransfer {
  Words header;
  std::vector<torch::Tensor> tensors;
};

void post_send(RequestSet &set, StateTransfer &out, const TrainerOptimizerState &state, int peer,
               MPI_Comm comm, int64_t chunk, const std::string &what) {
  const int64_t numel = state.state.empty() ? 0 : state.state.front().second.numel();
  out.header =
      encode(OptimizerStateHeader{state.steps, static_cast<int64_t>(state.state.size()), numel});
  isend_words(set, out.header, peer, kTagTrainerState, comm, what);
  for (const auto &[name, tensor] : state.state) {
    out.tensors.push_back(tensor.to(torch::kCPU).contiguous());
    isend_chunks(set, out.tensors.back().data_ptr<float>(), numel, chunk, peer, kTagTrainerState,
                 comm, fmt::format("{} ({})", what, name));
  }
}

void post_receive(RequestSet &set, StateTransfer &in, size_t tensors, int64_t numel, int peer,
                  MPI_Comm comm, int64_t chunk, const std::string &what) {
  in.header.assign(OptimizerStateHeader::kWords, 0);
  irecv_words(set, in.header, peer, kTagTrainerState, comm, what);
  for (size_t i = 0; i < tensors; ++i) {
    in.tensors.push_back(torch::empty({numel}, torch::kFloat32));
    irecv_chunks(set, in.tensors.back().data_ptr<float>(), numel, chunk, peer, kTagTrainerState,
                 comm, what);
  }
}

// The received state, checked against what was expected (both sides run the same --optimizer on
// the same model, so a mismatch is a protocol error, not the user's).
TrainerOptimizerState finish_receive(StateTransfer &in, const std::vector<std::string> &names,
                                     int64_t numel, int rank) {
  const OptimizerStateHeader h = decode_optimizer_state_header(in.header);
  if (h.tensors != static_cast<int64_t>(names.size()) || (h.tensors > 0 && h.numel != numel))
    throw ProtocolError(fmt::format("rank {}'s optimizer state has {} tensors of {} elements, "
                                    "expected {} of {}",
                                    rank, h.tensors, h.numel, names.size(), numel));
  TrainerOptimizerState s;
  s.rank = rank;
  s.steps = h.steps;
  for (size_t i = 0; i < names.size(); ++i)
    s.state.emplace_back(names[i], in.tensors[i]);
  return s;
}

TrainerOptimizerState state_of(const Optimizer &optimizer, const torch::Tensor *residual) {
  TrainerOptimizerState s;
  s.steps = optimizer.steps_taken();
  s.state = optimizer.state();
  if (residual)
    s.state.emplace_back(kWireResidual, *residual);
  return s;
}

} // namespace

void send_own_optimizer(const Optimizer &optimizer, const torch::Tensor *residual, MPI_Comm job,
                        int64_t chunk, double timeout) {
  RequestSet set;
  StateTransfer out;
  post_send(set, out, state_of(optimizer, residual), 0, job, chunk,
            "its optimizer state to rank 0");
  set.wait_all(timeout);
}

void receive_own_optimizer(Optimizer &optimizer, torch::Tensor *residual, int64_t numel,
                           MPI_Comm job, int64_t chunk, double timeout) {
  std::vector<std::string> names;
  for (const auto &[name, tensor] : optimizer.state())
    names.push_back(name);
  if (residual)
    names.push_back(kWireResidual);
  RequestSet set;
  StateTransfer in;
  post_receive(set, in, names.size(), numel, 0, job, chunk, "its optimizer state from rank 0");
  set.wait_all(timeout);
  TrainerOptimizerState s = finish_receive(in, names, numel, 0);
  if (residual) {
    residual->copy_(s.state.back().second);
    s.state.pop_back();
  }
  optimizer.load_state(s.state, s.steps);
}

std::vector<TrainerOptimizerState> collect_trainer_optimizers(const TrainConfig &config,
                                                              MPI_Comm job, const Roster &trainers,
                                                              int64_t numel) {
  const std::vector<std::string> names = trainer_state_names(config);
  const int64_t chunk = chunk_elements(config);
  RoundCommand ask;
  ask.kind = RoundCommand::Kind::kSaveOptimizer;
  const Words ask_words = encode(ask);
  std::vector<const TrainerState *> asked;
  for (const TrainerState &t : trainers)
    if (!gone(t))
      asked.push_back(&t);
  std::vector<std::unique_ptr<RequestSet>> sets;
  std::vector<StateTransfer> in(asked.size());
  RequestSet commands;
  for (size_t i = 0; i < asked.size(); ++i) {
    const TrainerState &t = *asked[i];
    const std::string what = fmt::format("the optimizer state of rank {}", t.world_rank);
    isend_words(commands, ask_words, peer_of(t), kTagCommand, comm_of(t, job), what);
    sets.push_back(std::make_unique<RequestSet>());
    post_receive(*sets.back(), in[i], names.size(), numel, peer_of(t), comm_of(t, job), chunk,
                 what);
  }
  std::vector<TrainerOptimizerState> out;
  for (size_t i = 0; i < asked.size(); ++i) {
    try {
      sets[i]->wait_all(config.straggler_timeout);
      out.push_back(finish_receive(in[i], names, numel, asked[i]->world_rank));
    } catch (const PeerTimeout &e) {
      sets[i]->cancel_pending();
      log_warn("checkpoint without rank {}'s optimizer state: {}", asked[i]->world_rank, e.what());
    }
  }
  try {
    commands.wait_all(config.straggler_timeout);
  } catch (const PeerTimeout &) {
    commands.cancel_pending(); // that trainer is gone: its receive above said so
  }
  return out;
}

void hand_back_trainer_optimizers(const TrainConfig &config, MPI_Comm job, const Roster &trainers,
                                  const std::vector<TrainerOptimizerState> &saved) {
  std::vector<int> now, then;
  for (const TrainerState &t : trainers)
    now.push_back(t.world_rank);
  for (const TrainerOptimizerState &s : saved)
    then.push_back(s.rank);
  const ReSplit split = choose_resplit(now, then);
  if (split == ReSplit::kNone)
    return;
  const TrainerOptimizerState mean =
      split == ReSplit::kMean ? mean_state(saved) : TrainerOptimizerState{};
  if (split == ReSplit::kMean)
    log_info("trainer optimizers: the checkpoint holds {} for ranks {}, the job has ranks {}: "
             "each trainer starts from their mean (step {})",
             saved.size(), fmt::join(then, ","), fmt::join(now, ","), mean.steps);
  else
    log_info("trainer optimizers: each of the {} trainers gets its own state back",
             trainers.size());
  RoundCommand load;
  load.kind = RoundCommand::Kind::kLoadOptimizer;
  const Words load_words = encode(load);
  const int64_t chunk = chunk_elements(config);
  RequestSet set;
  std::vector<StateTransfer> out(trainers.size());
  for (size_t i = 0; i < trainers.size(); ++i) {
    const TrainerState &t = trainers[i];
    const std::string what = fmt::format("the optimizer state to rank {}", t.world_rank);
    isend_words(set, load_words, peer_of(t), kTagCommand, comm_of(t, job), what);
    const TrainerOptimizerState *state = &mean;
    for (const TrainerOptimizerState &s : saved)
      if (split == ReSplit::kOwn && s.rank == t.world_rank)
        state = &s;
    post_send(set, out[i], *state, peer_of(t), comm_of(t, job), chunk, what);
  }
  set.wait_all(config.straggler_timeout);
}

} // namespace hetrain::run
