// Where a run stands and how fast it goes, for the one-process run and the coordinator alike: the
// position in the epochs (resumed or fresh), the step-checkpoint cadence, the epoch's end and the
// progress line with its ETA. Both loops read top to bottom as
//
//   for (epoch = progress.first_epoch(); epoch < epochs; ++epoch)
//     for (start = progress.begin_epoch(epoch); start < n; start += round_samples)
//       ... one round of `count` samples, `steps` optimizer steps ...
//       progress.round_done(count, steps);
//       if (progress.step_checkpoint_due()) save("step");
//     ... epoch record ...; progress.end_epoch(epoch);
//
// Internal to src/run; nothing here talks to MPI or touches the model.
#pragma once

#include "hetrain/checkpoint/checkpoint.h"
#include "hetrain/config/config.h"

#include "clock.h"

#include <cstdint>
#include <string>

namespace hetrain::run {

class RunProgress {
public:
  // `n`: samples of an epoch; `round_samples`: samples of the epoch's order one round takes.
  RunProgress(const TrainConfig &config, int64_t n, int64_t round_samples);

  // Continue from a checkpoint's position (--resume); call before the loop.
  void resume_at(const TrainingPosition &position);
  const TrainingPosition &position() const { return position_; }
  const TrainingPosition &resumed() const { return resumed_; }
  int64_t first_epoch() const { return resumed_.epoch; }
  int64_t rounds_per_epoch() const { return (n_ + round_samples_ - 1) / round_samples_; }

  // The loop starts now (the progress clock and the rate count from here).
  void start();
  // Where epoch `epoch` starts: at the saved position in the epoch a run resumed in, else at 0.
  // Returns that first sample.
  int64_t begin_epoch(int64_t epoch);
  // A round of `count` samples and `steps` optimizer steps completed.
  void round_done(int64_t count, int64_t steps);
  // The round just done was the epoch's last.
  bool epoch_finished() const { return position_.epoch_position >= n_; }
  // --checkpoint-every N: the step just done is a multiple of N and not the epoch's end (which
  // checkpoints anyway).
  bool step_checkpoint_due() const;
  // After the epoch's record: the position is the start of the next epoch.
  void end_epoch(int64_t epoch);

  // --progress-seconds have passed since the last line (or the start); restarts that interval.
  bool progress_due();
  double run_seconds() const { return seconds_since(run_start_); }
  // Samples per second since start(), the samples before a resume not counted.
  double samples_per_sec() const;
  // "epoch 2/5 round 17/40 | 1234 samples/s | loss 0.4321 | ETA 0:01:02"; `unit` names the
  // rounds ("step" for the one-process run, "round" for the coordinator).
  std::string progress_line(const char *unit, double loss) const;

private:
  const int64_t n_, round_samples_, epochs_, checkpoint_every_;
  const double progress_seconds_;
  TrainingPosition position_, resumed_;
  Clock::time_point run_start_ = Clock::now(), last_progress_ = Clock::now();
};

} // namespace hetrain::run
