// --wire-dtype int8 (--sync diloco): pseudo-gradients travel as int8 with one fp32 scale per
// block of kInt8Block elements, the block's largest magnitude / 127 (absmax quantization, as
// in OpenDiLoCo's int8 all-reduce). Blocks are fixed in the whole flat buffer, so how it is cut
// into pieces (--aggregators, --chunk-mb) does not change what is sent; a piece travels with the
// scales of the blocks it touches. The trainer keeps what rounding lost and adds it to the next
// round's upload (error feedback), so nothing is lost for good, only delayed a round.
//
//   quantize_with_feedback(x, residual, numel, q, scales);   the trainer, the whole buffer
//   send piece p: scales + first_int8_block(p), int8_blocks(p) of them; then q + p.begin
//   dequantize_int8(q_of_p, scales_of_p, p.begin, p.length, out_of_p);   the aggregator
#pragma once

#include "hetrain/aggregate/shards.h"

#include <cstdint>
#include <vector>

namespace hetrain {

inline constexpr int64_t kInt8Block = 256; // 4 bytes of scale per 256: 1.6% on top of 1 byte each

inline int64_t int8_blocks(int64_t numel) { return (numel + kInt8Block - 1) / kInt8Block; }
inline int64_t first_int8_block(const Piece &p) { return p.begin / kInt8Block; }
// The blocks piece p touches (one may be shared with the piece before or after it).
inline int64_t int8_blocks(const Piece &p) {
  return p.length > 0 ? (p.begin + p.length - 1) / kInt8Block - first_int8_block(p) + 1 : 0;
}

// The aggregator's side: where each piece's scales start in one array of all the pieces' scales
// (indexed by Piece::index; a shared block's scale is in both pieces), and that array's length.
struct Int8Layout {
  explicit Int8Layout(const std::vector<Piece> &pieces);
  std::vector<int64_t> offset;
  int64_t scales = 0;
};

// x[0, n) -> q[0, n) and scales[0, int8_blocks(n)): q = round(x / scale), scale = absmax / 127
// per block (0 for a block of zeros). A non-finite x makes its block's scale NaN, so the
// aggregator's result shows it instead of hiding it.
void quantize_int8(const float *x, int64_t n, int8_t *q, float *scales);
// Elements [begin, begin + n) of the buffer: out[i] = q[i] * the scale of element begin + i's
// block, with scales[0] the scale of block begin / kInt8Block.
void dequantize_int8(const int8_t *q, const float *scales, int64_t begin, int64_t n, float *out);

// The trainer's side: quantizes x + residual (the error feedback) into q and scales and leaves
// in `residual` what the rounding lost. Returns the relative L2 error of the values sent against
// x + residual (the metrics' wire_relative_error).
double quantize_with_feedback(const float *x, float *residual, int64_t numel, int8_t *q,
                              float *scales);

} // namespace hetrain
