// Pieces shared by the one-process run and the distributed run (private to src/run/).
#pragma once

#include "hetrain/checkpoint/checkpoint.h"
#include "hetrain/cluster/training_probe.h"
#include "hetrain/comm/heartbeat.h"
#include "hetrain/config/config.h"
#include "hetrain/data/dataset.h"
#include "hetrain/model/models.h"
#include "hetrain/run/training_run.h"
#include "hetrain/train/flat_parameters.h"
#include "hetrain/train/loss.h"
#include "hetrain/train/optimizer.h"
#include "hetrain/train/records.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hetrain::run {

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}
std::string format_duration(double seconds);
// cpu, or the CUDA device with this index when LibTorch sees one and --device allows it.
torch::Device choose_device(DeviceChoice requested, int cuda_index = 0);
// The heartbeat's communicator, dup'ed from `job` (collective: every job rank calls it right after
// exchange_hosts); `watch` then follows rank 0's beats on a trainer or shard server while it
// lives (comm/heartbeat.h). Returns the communicator, to free at the end.
MPI_Comm watch_rank0(const TrainConfig &config, MPI_Comm job, std::optional<HeartbeatWatch> &watch);
// Checks --summary-json's folder, creates --checkpoint-dir and checks that it is writable
// (UserError naming the flag otherwise).
void prepare_outputs(const TrainConfig &config);

OptimizerOptions optimizer_options(const TrainConfig &config);
LrSchedule lr_schedule(const TrainConfig &config, int64_t steps_per_epoch);

// What a checkpoint is made of, gathered from the run.
struct CheckpointSource {
  const TrainConfig *config = nullptr;
  ModelSpec spec;
  Normalization normalization;
  const Model *model = nullptr;
  const FlatParameters *flat = nullptr;
  const Optimizer *optimizer = nullptr;
  const LrSchedule *schedule = nullptr;
  int64_t world_size = 1;
  std::vector<std::string> reports; // JSON, one per node
  std::string fingerprint;          // model_fingerprint() of the model, computed once
};
// Writes <checkpoint-dir>/ckpt-s<step>-<tag>.h5 atomically, prunes old ones, returns the path.
std::string save_checkpoint(const CheckpointSource &source, const TrainingPosition &position,
                            const std::vector<EpochRecord> &history, const std::string &tag);

// --resume: the checkpoint a run continues from. auto: the newest ckpt-*.h5 in --checkpoint-dir
// that reads back (unreadable ones are skipped with a warning; none at all means a fresh start);
// a path: that file, which must be valid. Refuses (UserError naming the mismatch) a checkpoint of
// another model, input shape or number of classes, or one made with another --seed (the epoch
// order, and so which samples are left in the epoch, depends on it).
struct ResumePoint {
  std::string path;
  CheckpointContents contents;
};
// `fingerprint`: model_fingerprint() of the run's model.
std::unique_ptr<ResumePoint> find_resume_point(const TrainConfig &config, const ModelSpec &spec,
                                               const std::string &fingerprint);
// ", 2 frozen (conv.weight, conv.bias)" for the startup line, "" without frozen parameters.
std::string describe_frozen(const Model &model);
// --loss and --label-smoothing.
LossSpec loss_spec(const TrainConfig &config);
// train/loss.h's check on the dataset's first two samples (before the model moves to a device).
void check_model_fits(Model &model, const ModelSpec &spec, const LossSpec &loss,
                      const Dataset &data);
// The training probe's example: the dataset's first sample and the run's loss.
ProbeExample probe_example(const TrainConfig &config);
// Where epoch `epoch` starts: at the saved position for the epoch a run resumed in, else at 0.
TrainingPosition start_of_epoch(const TrainingPosition &current, const TrainingPosition &resumed,
                                int64_t epoch, int64_t n);
// Loads the parameters, buffers and optimizer state, and returns where training stopped; the
// summary takes over the finished epochs' records.
TrainingPosition restore_training(const ResumePoint &resume, Model &model, FlatParameters &flat,
                                  Optimizer &optimizer, TrainSummary &summary);

// Opens --test-data (if any) after checking it has the training data's image shape and classes;
// it is normalised with the training set's statistics, as at inference time.
std::unique_ptr<Dataset> open_test_data(const TrainConfig &config, const DatasetMeta &train,
                                        const Normalization &normalization);

// What the training part of an epoch added up to (evaluation not included).
struct EpochTotals {
  int64_t epoch = 0; // 0-based
  int64_t samples = 0;
  double loss_sum = 0;
  int64_t correct = 0;
  double seconds = 0;
  bool class_labels = true; // false: float targets, no accuracy to report
};
// Makes the epoch's record (test loss and accuracy when there is a test set), logs the epoch
// line and appends the record to the summary.
void finish_epoch(const EpochTotals &totals, Model &model, const LossSpec &loss,
                  const Dataset *test, int64_t epochs, TrainSummary &summary);

// Run totals from the history and position, the closing log line, and --summary-json.
// The metrics file's "epoch" record (README "Metrics").
nlohmann::json epoch_metrics(const EpochRecord &record);
void finish_run(const TrainConfig &config, const TrainingPosition &position, TrainSummary &summary);

} // namespace hetrain::run
