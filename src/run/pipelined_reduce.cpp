#include "pipelined_reduce.h"

namespace hetrain::run {

PipelinedReduce::PipelinedReduce(ChunkReducer &reducer, const std::vector<Piece> &pieces,
                                 int64_t shard_begin, const protocol::WireFormat &wire,
                                 int64_t chunk, MPI_Comm comm, Timeline *timeline, int64_t round)
    : reducer_(reducer), pieces_(pieces), shard_begin_(shard_begin), wire_(wire), chunk_(chunk),
      comm_(comm), timeline_(timeline), round_(round), reduced_(pieces.size(), false),
      receive_from_us_(wall_microseconds()) {}

void PipelinedReduce::post(RequestSet &set, size_t slot, int peer, MPI_Comm comm,
                           const std::string &what) {
  slots_.push_back(slot);
  first_request_.push_back(set.size());
  for (const Piece &p : pieces_)
    if (int8_)
      protocol::irecv_upload_piece(
          set, int8_->values[slot].data(), shard_begin_, p, wire_, chunk_, peer, comm, what,
          int8_->scales[slot].data() + int8_->layout.offset[static_cast<size_t>(p.index)]);
    else
      protocol::irecv_upload_piece(set, reducer_.receive_buffer(slot), shard_begin_, p, wire_,
                                   chunk_, peer, comm, what);
}

// int8: piece `piece` of slot `slot`, from the staging buffers into the reducer's fp32 receive
// buffer (through host memory when that is device memory).
void PipelinedReduce::decode(size_t slot, const Piece &piece) {
  const int64_t at = piece.begin - shard_begin_;
  const float *scales =
      int8_->scales[slot].data() + int8_->layout.offset[static_cast<size_t>(piece.index)];
  float *out = static_cast<float *>(reducer_.receive_buffer(slot)) + at;
  if (!reducer_.receives_on_device()) {
    dequantize_int8(int8_->values[slot].data() + at, scales, piece.begin, piece.length, out);
    return;
  }
  torch::Tensor host = torch::empty({piece.length});
  dequantize_int8(int8_->values[slot].data() + at, scales, piece.begin, piece.length,
                  host.data_ptr<float>());
  torch::from_blob(out, {piece.length},
                   torch::TensorOptions().device(torch::kCUDA, reducer_.cuda_device()))
      .copy_(host);
}

void PipelinedReduce::reduce_ready(const RequestSet &set, float *target,
                                   const std::function<std::vector<float>()> &weights) {
  for (size_t q = 0; q < pieces_.size(); ++q) {
    if (reduced_[q])
      continue;
    bool ready = true;
    for (size_t first : first_request_)
      for (size_t r = 0; r < requests_per_piece(); ++r)
        ready = ready && set.done(first + q * requests_per_piece() + r);
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
    if (int8_)
      for (size_t slot : slots_)
        decode(slot, piece);
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
