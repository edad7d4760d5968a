#include "hetrain/cluster/thread_share.h"

#include <algorithm>

namespace hetrain {

int default_threads(int usable_cores, const std::vector<int> &sharing, RankRole mine) {
  const auto count = [&](RankRole role) {
    return static_cast<int>(std::count(sharing.begin(), sharing.end(), static_cast<int>(role)));
  };
  const int aggregators = count(RankRole::kAggregator), trainers = count(RankRole::kTrainer);
  if (mine == RankRole::kAggregator)
    return trainers > 0 ? 1 : std::max(1, usable_cores / std::max(1, aggregators));
  return std::max(1, (usable_cores - aggregators) / std::max(1, trainers));
}

} // namespace hetrain
