#include "hetrain/aggregate/shards.h"

#include "hetrain/common/error.h"

#include <fmt/format.h>

#include <algorithm>

namespace hetrain {

ShardLayout shard_layout(int64_t numel, int64_t chunk_elems, int aggregators) {
  if (aggregators < 1 || chunk_elems < 1 || numel < 0)
    throw UserError(fmt::format("shard layout: {} aggregators, chunks of {}, {} elements",
                                aggregators, chunk_elems, numel));
  constexpr int64_t kBlock = 16;
  const int64_t blocks = (numel + kBlock - 1) / kBlock;
  if (aggregators > 1 && blocks < aggregators)
    throw UserError(fmt::format("--aggregators {}: the model has only {} parameters, too few to "
                                "give every aggregator a part",
                                aggregators, numel));
  ShardLayout layout;
  for (int j = 0; j <= aggregators; ++j)
    layout.shard_begin.push_back(
        std::min(numel, blocks * j / aggregators * kBlock)); // floor: shards differ by one block
  for (int j = 0; j < aggregators; ++j)
    for (int64_t at = layout.shard_begin[static_cast<size_t>(j)];
         at < layout.shard_begin[static_cast<size_t>(j) + 1]; at += chunk_elems) {
      const int64_t end =
          std::min(at + chunk_elems, layout.shard_begin[static_cast<size_t>(j) + 1]);
      layout.pieces.push_back({static_cast<int64_t>(layout.pieces.size()), at, end - at, j});
    }
  return layout;
}

std::vector<Piece> ShardLayout::pieces_of(int j) const {
  std::vector<Piece> mine;
  for (const Piece &p : pieces)
    if (p.owner == j)
      mine.push_back(p);
  return mine;
}

int64_t ShardLayout::piece_at(int64_t at) const {
  auto it = std::upper_bound(pieces.begin(), pieces.end(), at,
                             [](int64_t value, const Piece &p) { return value < p.begin; });
  return static_cast<int64_t>(it - pieces.begin()) - 1;
}

} // namespace hetrain
