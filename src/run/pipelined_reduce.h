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

class PipelinedReduce {
public:
  // `pieces`: this aggregator's pieces, all inside its shard, which starts at element
  // `shard_begin` of the flat buffer (the receive buffers and `target` hold the shard only).
  // `timeline` (may be null): receive and reduce spans of round `round`.
  PipelinedReduce(ChunkReducer &reducer, const std::vector<Piece> &pieces, int64_t shard_begin,
                  const protocol::WireFormat &wire, int64_t chunk, MPI_Comm comm,
                  Timeline *timeline = nullptr, int64_t round = -1);
  // Posts the receives of every piece from trainer `peer` (job rank) into receive slot `slot`.
  void post(RequestSet &set, size_t slot, int peer, const std::string &what);
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
  std::vector<size_t> slots_, first_request_; // per posted trainer: piece q is request first + q
  std::vector<bool> reduced_;
  bool begun_ = false;
  double receive_from_us_; // the receive span in progress
  double reduce_seconds_ = 0;
};

} // namespace hetrain::run
