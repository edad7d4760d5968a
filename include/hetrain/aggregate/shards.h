// Sharded aggregation (--aggregators A, DESIGN §6): aggregator j (world rank j, j < A) owns a
// contiguous 1/A of the flat buffer, its parameters and its optimizer state. Each shard travels
// in pieces of at most one chunk (--chunk-mb); piece k goes to or comes from its owner with tag
// base + k, so with A = 1 the pieces are exactly the chunks of an unsharded job.
//
//   const ShardLayout layout = shard_layout(flat.numel(), chunk, A);
//   for (const Piece &p : layout.pieces) send(p.begin, p.length, to = p.owner, tag = base +
//   p.index)
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hetrain {

struct Piece {
  int64_t index = 0;  // position in ShardLayout::pieces, the tag offset
  int64_t begin = 0;  // first element in the flat buffer
  int64_t length = 0; // elements, at most one chunk
  int owner = 0;      // the aggregator (world and job rank) that reduces and steps it
};

struct ShardLayout {
  std::vector<Piece> pieces;        // in flat-buffer order; owners ascending
  std::vector<int64_t> shard_begin; // A + 1 entries: shard j is [shard_begin[j], shard_begin[j+1])
  int aggregators() const { return static_cast<int>(shard_begin.size()) - 1; }
  int64_t shard_length(int j) const {
    return shard_begin[static_cast<size_t>(j) + 1] - shard_begin[static_cast<size_t>(j)];
  }
  // The pieces of aggregator j (a contiguous run of `pieces`).
  std::vector<Piece> pieces_of(int j) const;
  // The index of the piece holding element `at` (0 <= at < numel).
  int64_t piece_at(int64_t at) const;
};

// Shards of near-equal length (split on multiples of 16 elements, so every shard of a fp32 or
// 16-bit wire buffer starts 64-byte aligned), each cut into chunk-sized pieces. Throws UserError
// when a shard would be empty (more aggregators than 16-element blocks).
ShardLayout shard_layout(int64_t numel, int64_t chunk_elems, int aggregators);

} // namespace hetrain
