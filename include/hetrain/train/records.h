// What one epoch of training produced; printed, stored in checkpoints and the summary.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>

namespace hetrain {

struct EpochRecord {
  int64_t epoch = 0; // 1-based: the epoch that just finished
  int64_t samples = 0;
  double train_loss = 0, train_accuracy = 0;
  double test_loss = -1, test_accuracy = -1; // -1 when there is no test set
  double seconds = 0, samples_per_sec = 0;
};

// The one JSON form of an epoch record: the summary's history, the checkpoint listing of
// `hetrain inspect --json` and (without the test fields when there is no test set) the --metrics
// "epoch" record.
inline void to_json(nlohmann::json &j, const EpochRecord &r) {
  j = {{"epoch", r.epoch},           {"samples", r.samples},
       {"train_loss", r.train_loss}, {"train_accuracy", r.train_accuracy},
       {"test_loss", r.test_loss},   {"test_accuracy", r.test_accuracy},
       {"seconds", r.seconds},       {"samples_per_sec", r.samples_per_sec}};
}

} // namespace hetrain
