// What a run writes besides checkpoints (DESIGN §8, §9), one type and one JSON form per record:
// the epoch record (train/records.h) with its log line, the --metrics "round" and "epoch"
// records, and the --summary-json file with its closing log line. The one-process run and the
// coordinator fill the same structs; nothing here decides anything. Internal to src/run.
#pragma once

#include "hetrain/checkpoint/checkpoint.h"
#include "hetrain/config/config.h"
#include "hetrain/data/dataset.h"
#include "hetrain/model/models.h"
#include "hetrain/observe/gpu_monitor.h"
#include "hetrain/run/training_run.h"
#include "hetrain/train/loss.h"
#include "hetrain/train/records.h"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace hetrain::run {

// Checks --summary-json's, --metrics', --timeline's and --prometheus' folders, creates
// --checkpoint-dir and checks that it is writable (UserError naming the flag otherwise): a bad
// path costs seconds, not a run.
void prepare_outputs(const TrainConfig &config);

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
// The --metrics "epoch" record (README "Metrics").
nlohmann::json epoch_metrics(const EpochRecord &record);

// The --metrics "round" record (README "Metrics"): what one round did, per trainer and at the
// aggregators. The one-process run is one trainer, rank 0, with no transfers.
struct TrainerRoundRecord {
  int rank = 0;
  std::string host;
  int64_t samples = 0;
  double compute_seconds = 0, data_wait_seconds = 0, wait_seconds = 0;
  int64_t micro_batch = 0;
  // Rank 0's measure of its transfer: this round's (its last message's arrival minus its
  // compute), and the smoothed figure the re-plans use; unset in a one-process run.
  std::optional<double> transfer_seconds, smoothed_transfer_seconds;
  std::optional<GpuSample> gpu;
  // Relative L2 error of its upload after rounding to --wire-dtype (int8; 16-bit in params and
  // diloco); unset where not measured.
  std::optional<double> wire_relative_error;
};
struct AggregatorRoundRecord {
  std::optional<int> rank; // a shard server's; rank 0's own record has none
  double receive_seconds = 0, reduce_seconds = 0, step_seconds = 0;
  std::optional<double> broadcast_seconds;        // rank 0 sends the parameters back
  std::optional<int64_t> uploads, bytes_received; // unset in a one-process run
};
struct RoundRecord {
  int64_t round = 0, step = 0, epoch = 0; // after the round; epoch 1-based
  double time = 0, seconds = 0;           // since the run started; of the round
  int64_t samples = 0;
  double loss = 0, lr = 0;
  std::map<int, int64_t> shares; // world rank -> micro-batches in the plan
  std::vector<int> out;          // trainers out of the plan: no traffic this round
  std::vector<TrainerRoundRecord> trainers;
  AggregatorRoundRecord aggregator;
  std::vector<AggregatorRoundRecord> shard_servers; // --aggregators
  int64_t bytes = 0;                                // over rank 0's links, both ways
};
void to_json(nlohmann::json &j, const RoundRecord &r);

// Run totals from the history and position, the closing log line, and --summary-json.
void finish_run(const TrainConfig &config, const TrainingPosition &position, TrainSummary &summary);

} // namespace hetrain::run
