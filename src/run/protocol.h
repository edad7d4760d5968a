// What the ranks of a distributed job send each other besides the typed messages of
// comm/messages.h (DESIGN §5 "Messages"): message tags, the bulk data's layout, wire formats and
// chunk sizes.
// Shared by rank 0 (coordinator, round executor), the trainers and the shard servers of
// --aggregators. Internal to src/run.
#pragma once

#include "hetrain/aggregate/chunk_reducer.h"
#include "hetrain/aggregate/int8_codec.h"
#include "hetrain/aggregate/shards.h"
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/common/error.h"
#include "hetrain/config/config.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>

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
  // The link probe at startup (link_probe.h): requests and answers, payloads, a trainer's figures.
  kTagLinkProbe,
  kTagLinkData,
  kTagLinks,
  // A trainer out of the plan, asked by kOut with a sample count: {samples, seconds} it timed.
  kTagOutSpeed,
  // A trainer's own optimizer (--sync params/diloco): OptimizerStateHeader, then its tensors.
  kTagTrainerState,
  // A shard's parameters, then its optimizer state tensor s at kTagShardState + 1 + s.
  kTagShardState = 100,
  // Gradient piece k (ShardLayout; without --aggregators the pieces are the chunks) travels with
  // tag kTagGradChunks + k: with --overlap pieces leave in the order backward finishes them (last
  // layers first), and MPI matches same-tag messages in order.
  kTagGradChunks = 1000
};
constexpr int64_t kMaxGradChunks = 32767 - kTagGradChunks; // MPI guarantees tags up to 32767

// The control messages (commands, statistics, setup, acknowledgements, verdicts) are typed and
// versioned in comm/messages.h; this file holds what the data that follows them looks like (the
// BatchNorm buffers' layout is in model_buffers.h).

// --wire-dtype: how trainers' uploads travel. Accumulation at rank 0 is always fp32.
struct WireFormat {
  MPI_Datatype mpi_type = MPI_FLOAT;
  size_t bytes = 4;
  torch::ScalarType dtype = torch::kFloat32;
  DType reduce_dtype = DType::kFloat32;
  // int8 (aggregate/int8_codec.h): each piece's block scales travel before its values, and the
  // aggregator decodes them into fp32 receive buffers (so reduce_dtype is fp32).
  bool int8 = false;
};
inline WireFormat wire_format(WireDType dtype) {
  if (dtype == WireDType::kBf16)
    return {MPI_UINT16_T, 2, torch::kBFloat16, DType::kBFloat16};
  if (dtype == WireDType::kFp16)
    return {MPI_UINT16_T, 2, torch::kHalf, DType::kFloat16};
  if (dtype == WireDType::kInt8)
    return {MPI_INT8_T, 1, torch::kInt8, DType::kFloat32, true};
  return {};
}

inline int64_t chunk_elements(const TrainConfig &config) {
  return std::max<int64_t>(1, static_cast<int64_t>(config.chunk_mb * (1 << 20)) / 4);
}

// Sharded aggregation (--aggregators A): rank 0 sends each shard server a ShardSetup, then the
// server's shard of the parameters (tag kTagShardState) and of every optimizer state tensor
// (kTagShardState + 1 + s, in the order Optimizer::state() lists them); a ShardCommand kGather
// sends them back the same way.

// Upload piece p (a trainer's gradient sum, or its parameters in params mode, in the wire
// format) between a trainer and the piece's owner, as one message with its own tag. `base` holds
// the buffer's elements from `base_begin` on: a trainer's whole upload (0), or an aggregator's
// receive buffer for its shard (the shard's first element). int8: `piece_scales` (the scales of
// the int8_blocks(p) blocks it touches) go first with the same tag; MPI keeps one tag's messages
// from one sender in order, so two requests per piece.
inline void isend_upload_piece(RequestSet &set, const void *base, int64_t base_begin,
                               const Piece &p, const WireFormat &wire, int64_t chunk, int peer,
                               MPI_Comm comm, const std::string &what,
                               const float *piece_scales = nullptr) {
  if (wire.int8)
    isend_chunks(set, piece_scales, int8_blocks(p), chunk, MPI_FLOAT, 4, peer,
                 kTagGradChunks + static_cast<int>(p.index), comm, what);
  isend_chunks(set,
               static_cast<const uint8_t *>(base) +
                   (p.begin - base_begin) * static_cast<int64_t>(wire.bytes),
               p.length, chunk, wire.mpi_type, wire.bytes, peer,
               kTagGradChunks + static_cast<int>(p.index), comm, what);
}
inline void irecv_upload_piece(RequestSet &set, void *base, int64_t base_begin, const Piece &p,
                               const WireFormat &wire, int64_t chunk, int peer, MPI_Comm comm,
                               const std::string &what, float *piece_scales = nullptr) {
  if (wire.int8)
    irecv_chunks(set, piece_scales, int8_blocks(p), chunk, MPI_FLOAT, 4, peer,
                 kTagGradChunks + static_cast<int>(p.index), comm, what);
  irecv_chunks(
      set, static_cast<uint8_t *>(base) + (p.begin - base_begin) * static_cast<int64_t>(wire.bytes),
      p.length, chunk, wire.mpi_type, wire.bytes, peer, kTagGradChunks + static_cast<int>(p.index),
      comm, what);
}

// Bytes of one trainer's upload of `pieces` in the wire format (int8: with the block scales).
inline int64_t upload_bytes(const std::vector<Piece> &pieces, const WireFormat &wire) {
  int64_t bytes = 0;
  for (const Piece &p : pieces)
    bytes += p.length * static_cast<int64_t>(wire.bytes) + (wire.int8 ? 4 * int8_blocks(p) : 0);
  return bytes;
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

} // namespace hetrain::protocol
