// What the ranks of a distributed job say to each other (DESIGN §7): message tags, commands, the
// statistics a trainer reports, the wire formats and chunk sizes. Shared by rank 0
// (distributed_run.cpp), the trainers (same file) and the shard servers of --aggregators
// (shard_server.cpp). Internal to src/run.
#pragma once

#include "hetrain/aggregate/chunk_reducer.h"
#include "hetrain/aggregate/shards.h"
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/common/check.h"
#include "hetrain/common/error.h"
#include "hetrain/config/config.h"
#include "hetrain/data/dataset.h"
#include "hetrain/model/models.h"
#include "hetrain/run/training_run.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace hetrain::protocol {

enum Tag : int {
  kTagReport = 11,
  kTagVerdict,
  kTagCommand,
  kTagStats,
  kTagBuffers,
  kTagParams,
  kTagParamBuffers,
  kTagTimeline,
  kTagShardSetup,
  kTagShardCommand,
  kTagShardAck,
  // A shard's parameters, then its optimizer state tensor s at kTagShardState + 1 + s.
  kTagShardState = 100,
  // Gradient piece k (ShardLayout; without --aggregators the pieces are the chunks) travels with
  // tag kTagGradChunks + k: with --overlap pieces leave in the order backward finishes them (last
  // layers first), and MPI matches same-tag messages in order.
  kTagGradChunks = 1000
};
constexpr int64_t kMaxGradChunks = 32767 - kTagGradChunks; // MPI guarantees tags up to 32767

// Command to a trainer for one round:
//   {kind, epoch, offset, count, global_step, local_steps, attempt}
// attempt > 0: the round is being redone after a trainer was lost (--on-trainer-loss continue).
// kStop: {kStop, send_timeline (1: send your --timeline spans to rank 0 now), 0, ...}
enum CommandKind : int64_t { kRound = 1, kSkip = 2, kStop = 3 };
constexpr int kCommandLength = 7;
constexpr int kVerdictBytes = 512;
// Round statistics: loss sum, correct, samples, compute seconds, stop signal (SIGTERM/SIGUSR1
// seen by the trainer), micro-batch in use (smaller than --micro-batch after running out of device
// memory), then its GPU as NVML sees it: utilisation, memory used, temperature, power (-1 when it
// has none or NVML does not answer).
constexpr int kStatsLength = 10;
constexpr int kStatsGpu = 6;

// BatchNorm running stats and counters travel as one float vector, averaged by samples.
inline int64_t buffer_elements(const torch::nn::Module &model) {
  int64_t n = 0;
  for (const auto &b : model.buffers())
    n += b.numel();
  return n;
}
inline void flatten_buffers(const torch::nn::Module &model, float *out) {
  for (const auto &b : model.buffers()) {
    auto f = b.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    std::copy_n(f.data_ptr<float>(), f.numel(), out);
    out += f.numel();
  }
}
inline void load_buffers(torch::nn::Module &model, const float *in) {
  torch::NoGradGuard no_grad;
  for (auto &b : model.buffers()) {
    auto f = torch::from_blob(const_cast<float *>(in), b.sizes(), torch::kFloat32);
    b.copy_(b.is_floating_point() ? f : f.round()); // counters stay integers
    in += b.numel();
  }
}

inline ModelSpec spec_of(const TrainConfig &config, const DatasetMeta &meta) {
  return ModelSpec{config.model, meta.channels, meta.height, meta.width, meta.num_classes};
}

// --wire-dtype: how trainers' uploads travel. Accumulation at rank 0 is always fp32.
struct WireFormat {
  MPI_Datatype mpi_type = MPI_FLOAT;
  size_t bytes = 4;
  torch::ScalarType dtype = torch::kFloat32;
  DType reduce_dtype = DType::kFloat32;
};
inline WireFormat wire_format(const std::string &name) {
  if (name == "bf16")
    return {MPI_UINT16_T, 2, torch::kBFloat16, DType::kBFloat16};
  if (name == "fp16")
    return {MPI_UINT16_T, 2, torch::kHalf, DType::kFloat16};
  return {};
}

// Host memory the GPU path copies through: pinned (page-locked) when the model is on a GPU, so
// that copies run at the bus's speed and can overlap with MPI.
inline torch::Tensor host_buffer(int64_t numel, torch::ScalarType dtype, bool pinned) {
  return torch::empty({numel}, torch::TensorOptions().dtype(dtype).pinned_memory(pinned));
}

inline int64_t chunk_elements(const TrainConfig &config) {
  return std::max<int64_t>(1, static_cast<int64_t>(config.chunk_mb * (1 << 20)) / 4);
}

// --- sharded aggregation (--aggregators A): ranks 1..A-1 are shard servers ---
// Setup, rank 0 -> server, once after admission (length kSetupLength(world size)):
//   {trainers T, optimizer steps taken, then T job ranks, then T world ranks, 0-padded}
// then the server's shard of the parameters (tag kTagShardState) and of every optimizer state
// tensor (kTagShardState + 1 + s), in the order Optimizer::state() lists them.
// Command, rank 0 -> server, per round (length kShardCommandLength(T)):
//   {kRound, global_step, samples in the round, lr (double bits), working flag per trainer}
//   {kGather, optimizer steps of the last complete round}: send the shard (same tags as setup),
//     first undoing a step taken in a round that rank 0 did not complete
//   {kStop}
// Acknowledgement, server -> rank 0, after each step (kShardAckLength doubles):
//   {receive seconds, reduce seconds, step seconds, bytes received}
enum ShardCommandKind : int64_t { kGather = 4 };
constexpr int kShardAckLength = 4;
inline int kSetupLength(int world_size) { return 2 + 2 * world_size; }
inline int kShardCommandLength(size_t trainers) { return 4 + static_cast<int>(trainers); }
inline int64_t double_bits(double value) {
  int64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}
inline double bits_double(int64_t bits) {
  double value = 0;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// Upload piece p (a trainer's gradient sum, or its parameters in params mode, in the wire
// format) between a trainer and the piece's owner, as one message with its own tag. `base` holds
// the buffer's elements from `base_begin` on: a trainer's whole upload (0), or an aggregator's
// receive buffer for its shard (the shard's first element).
inline void isend_upload_piece(RequestSet &set, const void *base, int64_t base_begin,
                               const Piece &p, const WireFormat &wire, int64_t chunk, int peer,
                               MPI_Comm comm, const std::string &what) {
  isend_chunks(set,
               static_cast<const uint8_t *>(base) +
                   (p.begin - base_begin) * static_cast<int64_t>(wire.bytes),
               p.length, chunk, wire.mpi_type, wire.bytes, peer,
               kTagGradChunks + static_cast<int>(p.index), comm, what);
}
inline void irecv_upload_piece(RequestSet &set, void *base, int64_t base_begin, const Piece &p,
                               const WireFormat &wire, int64_t chunk, int peer, MPI_Comm comm,
                               const std::string &what) {
  irecv_chunks(
      set, static_cast<uint8_t *>(base) + (p.begin - base_begin) * static_cast<int64_t>(wire.bytes),
      p.length, chunk, wire.mpi_type, wire.bytes, peer, kTagGradChunks + static_cast<int>(p.index),
      comm, what);
}

// The layout every rank computes alike from the model's size, --chunk-mb and --aggregators.
inline ShardLayout shard_layout_checked(int64_t numel, const TrainConfig &config) {
  ShardLayout layout = shard_layout(numel, chunk_elements(config), config.aggregators);
  if (static_cast<int64_t>(layout.pieces.size()) > kMaxGradChunks)
    throw UserError(fmt::format("--chunk-mb: the gradient would travel in {} pieces, more than "
                                "the {} message tags available; raise --chunk-mb",
                                layout.pieces.size(), kMaxGradChunks));
  return layout;
}

// Rank 0's next command, received by a trainer or shard server into a receive that is always
// posted: rank 0 can then interrupt any wait (kStop while parameters are due, kGather while a
// server waits for gradients), not only the wait for the next round.
class CommandInbox {
public:
  CommandInbox(MPI_Comm comm, int tag, size_t length) : comm_(comm), tag_(tag), command_(length) {}
  void post() {
    full_ = false;
    CHECK_MPI(MPI_Irecv(command_.data(), static_cast<int>(command_.size()), MPI_INT64_T, 0, tag_,
                        comm_, &request_));
  }
  // True once the posted command has arrived (then command() holds it until the next post()).
  bool poll() {
    if (!full_) {
      int flag = 0;
      CHECK_MPI(MPI_Test(&request_, &flag, MPI_STATUS_IGNORE));
      full_ = flag != 0;
    }
    return full_;
  }
  // Waits for the command; PeerTimeout naming rank 0 and `what` after `timeout` seconds.
  void wait(double timeout, const std::string &what) {
    if (poll())
      return;
    RequestSet set;
    set.add(request_, 0, what);
    set.wait_all(timeout);
    full_ = true; // the set completed (and freed) the request
  }
  const std::vector<int64_t> &command() const { return command_; }
  // At the end: a receive still posted is cancelled.
  void cancel() {
    if (!full_ && request_ != MPI_REQUEST_NULL) {
      MPI_Cancel(&request_);
      MPI_Request_free(&request_);
    }
  }

private:
  MPI_Comm comm_;
  int tag_;
  std::vector<int64_t> command_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  bool full_ = false;
};

// A shard server's life (world ranks 1..A-1 of a job with --aggregators A).
TrainSummary run_shard_server(const TrainConfig &config, int world_rank);

} // namespace hetrain::protocol
