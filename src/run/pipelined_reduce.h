// The receive-and-reduce that rank 0 and the shard servers share (DESIGN §5 "One round", step 4):
// every working trainer's copy of this aggregator's pieces arrives into a ChunkReducer's receive
// buffers, and each piece is reduced as soon as all copies of it are in, while the others are
// still on the wire. Internal to src/run.
//
//   PipelinedReduce pipe(reducer, my_pieces, shard_begin, wire, chunk, comm);
//   pipe.post(set, slot, job_rank, what)     for each working trainer
//   set.wait_all(timeout, [&] { pipe.reduce_ready(set, target, weights); })
//   pipe.finish()                            before anyone reads `target`
#pragma once

#include "hetrain/aggregate/chunk_reducer.h"
#include "hetrain/aggregate/shards.h"
#include "hetrain/comm/mpi_comm.h"
#include "hetrain/observe/timeline.h"

#include "protocol.h"

#include <functional>
#include <string>
#include <vector>

namespace hetrain::run {

// --wire-dtype int8: where each trainer's int8 values and block scales land before they are
// decoded into the reducer's fp32 receive buffers. One set per receive slot, for the
// aggregator's shard; its owner keeps it across rounds.
struct Int8Staging {
  Int8Staging(size_t slots, int64_t shard_length, const std::vector<Piece> &all_pieces)
      : values(slots, std::vector<int8_t>(static_cast<size_t>(shard_length))), layout(all_pieces),
        scales(slots, std::vector<float>(static_cast<size_t>(layout.scales))) {}
  std::vector<std::vector<int8_t>> values;
  Int8Layout layout; // scale offsets by piece index (the trainers' layout)
  std::vector<std::vector<float>> scales;
};

class PipelinedReduce {
public:
  // `pieces`: this aggregator's pieces, all inside its shard, which starts at element
  // `shard_begin` of the flat buffer (the receive buffers and `target` hold the shard only).
  // `timeline` (may be null): receive and reduce spans of round `round`.
  PipelinedReduce(ChunkReducer &reducer, const std::vector<Piece> &pieces, int64_t shard_begin,
                  const protocol::WireFormat &wire, int64_t chunk, MPI_Comm comm,
                  Timeline *timeline = nullptr, int64_t round = -1);
  // --wire-dtype int8: receive into `staging` and decode each piece before reducing it.
  void decode_int8_from(Int8Staging *staging) { int8_ = staging; }
  // Posts the receives of every piece from trainer `peer` (job rank) into receive slot `slot`.
  void post(RequestSet &set, size_t slot, int peer, const std::string &what) {
    post(set, slot, peer, comm_, what);
  }
  // The same from `peer` of `comm` (a trainer that joined the running job has its own).
  void post(RequestSet &set, size_t slot, int peer, MPI_Comm comm, const std::string &what);
  // Reduces every piece whose copies have all arrived into `target`. The round's first reduce
  // begins it with the posted slots and `weights()` (asked once, in the order of post()).
  void reduce_ready(const RequestSet &set, float *target,
                    const std::function<std::vector<float>()> &weights);
  // Waits for queued device work; closes the last receive span.
  void finish();
  double reduce_seconds() const { return reduce_seconds_; }

private:
  ChunkReducer &reducer_;
  const std::vector<Piece> &pieces_;
  int64_t shard_begin_;
  const protocol::WireFormat &wire_;
  int64_t chunk_;
  MPI_Comm comm_;
  Timeline *timeline_;
  int64_t round_;
  Int8Staging *int8_ = nullptr;
  // Per posted trainer: piece q is requests first + q * per_piece ... (2 with int8: scales, values)
  std::vector<size_t> slots_, first_request_;
  std::vector<bool> reduced_;
  bool begun_ = false;
  double receive_from_us_; // the receive span in progress
  double reduce_seconds_ = 0;

  size_t requests_per_piece() const { return int8_ ? 2 : 1; }
  void decode(size_t slot, const Piece &piece);
};

} // namespace hetrain::run
