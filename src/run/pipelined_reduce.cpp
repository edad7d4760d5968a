#include "pipelined_reduce.h"

namespace hetrain::run {

PipelinedReduce::PipelinedReduce(ChunkReducer &reducer, const std::vector<Piece> &pieces,
                                 int64_t shard_begin, const protocol::WireFormat &wire,
                                 int64_t chunk, MPI_Comm comm, Timeline *timeline, int64_t round)
    : reducer_(reducer), pieces_(pieces), shard_begin_(shard_begin), wire_(wire), chunk_(chunk),
      comm_(comm), timeline_(timeline), round_(round), reduced_(pieces.size(), false),
      receive_from_us_(wall_microseconds()) {}

void PipelinedReduce::post(RequestSet &set, size_t slot, int peer, const std::string &what) {
  slots_.push_back(slot);
  first_request_.push_back(set.size());
  for (const Piece &p : pieces_)
    protocol::irecv_upload_piece(set, reducer_.receive_buffer(slot), shard_begin_, p, wire_, chunk_,
                                 peer, comm_, what);
}

void PipelinedReduce::reduce_ready(const RequestSet &set, float *target,
                                   const std::function<std::vector<float>()> &weights) {
  for (size_t q = 0; q < pieces_.size(); ++q) {
    if (reduced_[q])
      continue;
    bool ready = true;
    for (size_t first : first_request_)
      ready = ready && set.done(first + q);
    if (!ready)
      continue;
    if (!begun_) {
      reducer_.begin_round(slots_, weights());
      begun_ = true;
    }
    // The timeline's aggregator row: receiving, then this reduce, then receiving again.
    const double reduce_from = wall_microseconds();
    if (timeline_)
      timeline_->add(Span::kReceive, receive_from_us_, reduce_from, round_);
    const Piece &piece = pieces_[q];
    reducer_.reduce_chunk(piece.begin - shard_begin_, piece.length, target);
    receive_from_us_ = wall_microseconds();
    if (timeline_)
      timeline_->add(Span::kReduce, reduce_from, receive_from_us_, round_);
    reduce_seconds_ += (receive_from_us_ - reduce_from) / 1e6;
    reduced_[q] = true;
  }
}

void PipelinedReduce::finish() {
  reducer_.finish();
  if (timeline_)
    timeline_->add(Span::kReceive, receive_from_us_, wall_microseconds(), round_);
}

} // namespace hetrain::run
