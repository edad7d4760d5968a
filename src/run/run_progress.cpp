#include "run_progress.h"

#include <fmt/format.h>

#include <algorithm>

namespace hetrain::run {

RunProgress::RunProgress(const TrainConfig &config, int64_t n, int64_t round_samples)
    : n_(n), round_samples_(round_samples), epochs_(config.epochs),
      checkpoint_every_(config.checkpoint_every), progress_seconds_(config.progress_seconds) {}

void RunProgress::resume_at(const TrainingPosition &position) {
  position_ = position;
  resumed_ = position;
}

void RunProgress::start() {
  run_start_ = Clock::now();
  last_progress_ = run_start_;
}

int64_t RunProgress::begin_epoch(int64_t epoch) {
  const bool resumed_here = epoch == resumed_.epoch;
  position_.epoch = epoch;
  position_.epoch_position = resumed_here ? std::min(resumed_.epoch_position, n_) : 0;
  position_.round = resumed_here ? resumed_.round : 0;
  return position_.epoch_position;
}

void RunProgress::round_done(int64_t count, int64_t steps) {
  position_.epoch_position += count;
  position_.round += 1;
  position_.global_step += steps;
  position_.samples_seen += count;
}

bool RunProgress::step_checkpoint_due() const {
  return checkpoint_every_ > 0 && position_.global_step % checkpoint_every_ == 0 &&
         !epoch_finished();
}

void RunProgress::end_epoch(int64_t epoch) {
  position_.epoch = epoch + 1;
  position_.epoch_position = 0;
  position_.round = 0;
}

bool RunProgress::progress_due() {
  if (seconds_since(last_progress_) < progress_seconds_)
    return false;
  last_progress_ = Clock::now();
  return true;
}

double RunProgress::samples_per_sec() const {
  // At least 1 ns: a Prometheus snapshot may be written before any time has passed.
  return static_cast<double>(position_.samples_seen - resumed_.samples_seen) /
         std::max(1e-9, run_seconds());
}

std::string RunProgress::progress_line(const char *unit, double loss) const {
  const double rate = samples_per_sec();
  const double remaining = static_cast<double>(n_ * epochs_ - position_.samples_seen) / rate;
  return fmt::format("epoch {}/{} {} {}/{} | {:.0f} samples/s | loss {:.4f} | ETA {}",
                     position_.epoch + 1, epochs_, unit, position_.round, rounds_per_epoch(), rate,
                     loss, format_duration(remaining));
}

} // namespace hetrain::run
