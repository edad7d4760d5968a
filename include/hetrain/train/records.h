// What one epoch of training produced; printed, stored in checkpoints and the summary.
#pragma once

#include <cstdint>

namespace hetrain {

struct EpochRecord {
  int64_t epoch = 0; // 1-based: the epoch that just finished
  int64_t samples = 0;
  double train_loss = 0, train_accuracy = 0;
  double test_loss = -1, test_accuracy = -1; // -1 when there is no test set
  double seconds = 0, samples_per_sec = 0;
};

} // namespace hetrain
