// The loader that keeps compute fed (DESIGN §8): a background thread prepares the next
// micro-batches of a run of samples (read or generate, augment, normalise; pinned host memory for
// a GPU) while the calling thread computes the current one. At most kAhead batches wait ready.
#pragma once

#include "hetrain/data/dataset.h"

#include <torch/types.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

namespace hetrain {

class BatchLoader {
public:
  static constexpr size_t kAhead = 2;

  // Micro-batches of at most `micro_batch` samples of indices[0, count), augmented with `draw`.
  BatchLoader(const Dataset &data, const int64_t *indices, int64_t count, int64_t micro_batch,
              EpochDraw draw, bool pin);
  ~BatchLoader(); // stops and joins the thread (an exception in the caller must not leak it)
  BatchLoader(const BatchLoader &) = delete;
  BatchLoader &operator=(const BatchLoader &) = delete;

  // The next micro-batch, in order; blocks until it is ready (the time counts in
  // wait_seconds()). Rethrows what the loader thread threw.
  Batch next();
  double wait_seconds() const { return wait_seconds_; }

private:
  void produce();

  const Dataset &data_;
  const int64_t *indices_;
  const int64_t count_, micro_batch_;
  const EpochDraw draw_;
  const bool pin_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> ready_;
  std::exception_ptr failure_;
  bool stop_ = false;
  double wait_seconds_ = 0;
  std::thread thread_; // last: started once everything above exists
};

} // namespace hetrain
