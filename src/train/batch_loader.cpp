#include "hetrain/train/batch_loader.h"

#include <chrono>

namespace hetrain {

BatchLoader::BatchLoader(const Dataset &data, const int64_t *indices, int64_t count,
                         int64_t micro_batch, EpochDraw draw, bool pin)
    : data_(data), indices_(indices), count_(count), micro_batch_(micro_batch), draw_(draw),
      pin_(pin), thread_([this] { produce(); }) {}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void BatchLoader::produce() {
  try {
    for (int64_t start = 0; start < count_; start += micro_batch_) {
      const int64_t n = std::min(micro_batch_, count_ - start);
      Batch batch = data_.get(indices_ + start, n, &draw_);
      if (pin_) {
        batch.inputs = batch.inputs.pin_memory();
        batch.targets = batch.targets.pin_memory();
      }
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [this] { return stop_ || ready_.size() < kAhead; });
      if (stop_)
        return;
      ready_.push_back(std::move(batch));
      changed_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    failure_ = std::current_exception();
    changed_.notify_all();
  }
}

Batch BatchLoader::next() {
  const auto start = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return !ready_.empty() || failure_; });
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (ready_.empty())
    std::rethrow_exception(failure_);
  Batch batch = std::move(ready_.front());
  ready_.pop_front();
  changed_.notify_all();
  return batch;
}

} // namespace hetrain
