// A shard server of --aggregators A (world ranks 1..A-1; DESIGN §4): the multiple-parameter-server
// design. Read it top to bottom:
//
//   setup from rank 0: the trainers, the optimizer's step count, this rank's shard of the
//     parameters and of the optimizer state
//   send the shard's parameters to every trainer
//   each round (command from rank 0: who works, how many samples, the learning rate):
//     receive this shard's pieces of every working trainer's gradient sum, reduce each piece as
//     soon as all copies of it are in (weights 1/S), step the shard, tell rank 0, send the
//     updated parameters to every trainer
//   kGather: send the shard to rank 0 (checkpoints, evaluation), undoing the step of a round rank
//     0 did not complete
//   kStop: leave
//
// Rank 0 keeps everything else: admission, plans, commands, BatchNorm buffers, checkpoints. So a
// server never decides the job's fate: when a trainer does not deliver it says whom it waited for
// and waits for rank 0, which reaches the same deadline and ends the job.
#include "hetrain/aggregate/chunk_reducer.h"
#include "hetrain/aggregate/shards.h"
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/common/check.h"
#include "hetrain/common/log.h"
#include "hetrain/common/system_info.h"
#include "hetrain/train/flat_parameters.h"
#include "hetrain/train/optimizer.h"

#include "protocol.h"
#include "run_support.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <chrono>
#include <vector>

namespace hetrain::protocol {
namespace {

using run::Clock;
using run::seconds_since;

struct Interrupted {}; // rank 0 sent kGather or kStop while this server waited for gradients

} // namespace

TrainSummary run_shard_server(const TrainConfig &config, int world_rank) {
  TrainSummary summary;
  summary.world_size = process_identity().world_size;
  MPI_Comm job;
  CHECK_MPI(MPI_Comm_split(MPI_COMM_WORLD, 0, world_rank, &job));
  CHECK_MPI(MPI_Comm_set_errhandler(job, MPI_ERRORS_RETURN));
  torch::set_num_threads(config.threads > 0 ? config.threads : usable_cores());

  // The model's size and the layout, computed from the same files and flags as every rank.
  const DatasetMeta meta = read_dataset_meta(config.data);
  auto model = make_model(spec_of(config, meta));
  const int64_t numel = FlatParameters(*model).numel();
  const int64_t chunk = chunk_elements(config);
  const ShardLayout layout = shard_layout_checked(numel, config);
  const int64_t begin = layout.shard_begin[static_cast<size_t>(world_rank)];
  const int64_t length = layout.shard_length(world_rank);
  const std::vector<Piece> mine = layout.pieces_of(world_rank);
  const WireFormat wire = wire_format(config.wire_dtype);

  // --- setup: the trainers, then this shard ---
  std::vector<int64_t> setup(static_cast<size_t>(kSetupLength(summary.world_size)));
  {
    RequestSet set;
    MPI_Request r;
    CHECK_MPI(MPI_Irecv(setup.data(), static_cast<int>(setup.size()), MPI_INT64_T, 0,
                        kTagShardSetup, job, &r));
    set.add(r, 0, "waiting for rank 0's setup (it first waits --join-timeout for reports)");
    set.wait_all(config.join_timeout + 60);
  }
  const auto trainer_count = static_cast<size_t>(setup[0]);
  std::vector<int> job_ranks, world_ranks;
  for (size_t i = 0; i < trainer_count; ++i) {
    job_ranks.push_back(static_cast<int>(setup[2 + i]));
    world_ranks.push_back(static_cast<int>(setup[2 + trainer_count + i]));
  }
  Optimizer optimizer(run::optimizer_options(config), length);
  torch::Tensor params = torch::empty({length});
  torch::Tensor grads = torch::zeros({length});
  std::vector<torch::Tensor> tensors{params}; // what moves to and from rank 0, in that order
  for (const auto &named : optimizer.state())
    tensors.push_back(named.second);
  // Sends the shard to rank 0 or receives it from there (contiguous CPU tensors).
  auto move_shard = [&](bool receive, const std::string &what) {
    RequestSet set;
    for (size_t s = 0; s < tensors.size(); ++s) {
      const int tag = kTagShardState + static_cast<int>(s);
      if (receive)
        irecv_chunks(set, tensors[s].data_ptr<float>(), length, chunk, 0, tag, job, what);
      else
        isend_chunks(set, tensors[s].data_ptr<float>(), length, chunk, 0, tag, job, what);
    }
    set.wait_all(config.straggler_timeout);
  };
  move_shard(true, "receiving this shard from rank 0");
  optimizer.load_state(optimizer.state(), setup[1]); // the step count (the state is in place)
  // The shard as it was before the last step, for a kGather that undoes it.
  std::vector<torch::Tensor> before;
  for (const torch::Tensor &t : tensors)
    before.push_back(t.clone());
  int64_t steps_before = optimizer.steps_taken();
  log_info("shard server: elements [{}, {}) of {} ({} pieces), {} trainers", begin, begin + length,
           numel, mine.size(), trainer_count);

  ChunkReducer reducer(ReduceDevice::kCpu, trainer_count, length, wire.reduce_dtype,
                       config.threads);
  auto send_parameters = [&](const char *when) {
    RequestSet set;
    for (size_t i = 0; i < trainer_count; ++i)
      for (const Piece &p : mine)
        isend_chunks(set, params.data_ptr<float>() + (p.begin - begin), p.length, chunk,
                     job_ranks[i], kTagParams, job,
                     fmt::format("sending parameters {} to rank {}", when, world_ranks[i]));
    try {
      set.wait_all(config.straggler_timeout);
    } catch (const PeerTimeout &e) {
      // A trainer that is gone: rank 0 finds out on its own deadline and ends the job.
      log_warn("shard server: {}; waiting for rank 0", e.what());
      set.cancel_pending();
    }
  };
  send_parameters("at the start");

  // The next command is always posted, so that rank 0 can interrupt a round (kGather, kStop).
  CommandInbox inbox(job, kTagShardCommand,
                     static_cast<size_t>(kShardCommandLength(trainer_count)));
  inbox.post();
  for (;;) {
    inbox.wait(2 * config.straggler_timeout + 60, // rank 0 may be evaluating
               "waiting for rank 0's next command");
    const std::vector<int64_t> command = inbox.command();
    if (command[0] == kStop)
      break;
    inbox.post();
    if (command[0] == kGather) {
      if (optimizer.steps_taken() > command[1]) { // a step rank 0 did not complete: undo it
        log_warn("shard server: undoing step {} (rank 0 did not complete that round)",
                 optimizer.steps_taken());
        for (size_t s = 0; s < tensors.size(); ++s)
          tensors[s].copy_(before[s]);
        optimizer.load_state(optimizer.state(), steps_before);
      }
      move_shard(false, "sending this shard to rank 0");
      continue;
    }
    // kRound: this shard of every working trainer's gradient sum, reduced as pieces arrive.
    const int64_t global_step = command[1], count = command[2];
    const double lr = bits_double(command[3]);
    const auto round_start = Clock::now();
    std::vector<size_t> working;
    for (size_t i = 0; i < trainer_count; ++i)
      if (command[4 + i] != 0)
        working.push_back(i);
    RequestSet set;
    std::vector<size_t> first(trainer_count);
    for (size_t i : working) {
      first[i] = set.size();
      for (const Piece &p : mine)
        irecv_upload_piece(
            set, reducer.receive_buffer(i), begin, p, wire, chunk, job_ranks[i], job,
            fmt::format("round {} gradients from rank {}", global_step + 1, world_ranks[i]));
    }
    std::vector<bool> reduced(mine.size(), false);
    bool round_begun = false;
    double reduce_seconds = 0;
    auto reduce_ready = [&] {
      if (inbox.poll())
        throw Interrupted{};
      for (size_t q = 0; q < mine.size(); ++q) {
        if (reduced[q])
          continue;
        bool ready = true;
        for (size_t i : working)
          ready = ready && set.done(first[i] + q);
        if (!ready)
          continue;
        if (!round_begun) {
          reducer.begin_round(working,
                              std::vector<float>(working.size(), 1.0f / static_cast<float>(count)));
          round_begun = true;
        }
        const auto t = Clock::now();
        reducer.reduce_chunk(mine[q].begin - begin, mine[q].length, grads.data_ptr<float>());
        reduce_seconds += seconds_since(t);
        reduced[q] = true;
      }
    };
    try {
      set.wait_all(config.straggler_timeout, reduce_ready);
      reducer.finish();
    } catch (const PeerTimeout &e) {
      log_warn("shard server: {}; waiting for rank 0's decision", e.what());
      set.cancel_pending();
      reducer.finish();
      continue;
    } catch (const Interrupted &) {
      set.cancel_pending();
      reducer.finish();
      continue;
    }
    const double receive_seconds = seconds_since(round_start) - reduce_seconds;
    const auto step_start = Clock::now();
    for (size_t s = 0; s < tensors.size(); ++s)
      before[s].copy_(tensors[s]);
    steps_before = optimizer.steps_taken();
    optimizer.step(params, grads, lr);
    const double step_seconds = seconds_since(step_start);
    {
      double ack[kShardAckLength] = {receive_seconds, reduce_seconds, step_seconds,
                                     static_cast<double>(working.size()) *
                                         static_cast<double>(length) *
                                         static_cast<double>(wire.bytes)};
      RequestSet a;
      MPI_Request r;
      CHECK_MPI(MPI_Isend(ack, kShardAckLength, MPI_DOUBLE, 0, kTagShardAck, job, &r));
      a.add(r, 0, "telling rank 0 the shard has stepped");
      a.wait_all(config.straggler_timeout);
    }
    send_parameters("after a round");
  }
  inbox.cancel();
  CHECK_MPI(MPI_Comm_free(&job));
  return summary;
}

} // namespace hetrain::protocol
