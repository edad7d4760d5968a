// `hetrain evaluate` under an MPI launcher: every rank loads the checkpoint, times a few batches,
// and the evaluation set is split over the ranks in proportion to those speeds (contiguous
// ranges, largest remainder), so an unequal cluster finishes together. The sums are added on
// rank 0: the correct count is an integer sum, so the accuracy equals one process's.
#pragma once

#include "hetrain/data/dataset.h"
#include "hetrain/model/models.h"
#include "hetrain/train/compute.h"

#include <cstdint>
#include <vector>

namespace hetrain {

struct DistributedEvaluation {
  EvalResult result;           // on rank 0; the other ranks' is empty
  std::vector<int64_t> shares; // samples per rank
  std::vector<double> speeds;  // measured samples/s per rank
};

// Collective over every rank of the job (every wait has `timeout_seconds` and names what it
// waited for).
DistributedEvaluation evaluate_distributed(Model &model, const LossSpec &loss, const Dataset &data,
                                           double timeout_seconds);

} // namespace hetrain
