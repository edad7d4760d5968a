// What rank 0 tells the world about a distributed run as it goes (DESIGN §9): the --metrics
// record of a round, the --prometheus snapshot and the per-epoch table. Built from the roster and
// the round's result; nothing here decides anything. Internal to src/run.
#pragma once

#include "hetrain/observe/prometheus.h"
#include "hetrain/schedule/plan.h"

#include "round_executor.h"
#include "run_records.h"
#include "trainer_roster.h"

#include <nlohmann/json.hpp>

namespace hetrain::run {

struct RoundFacts {
  int64_t round = 0, step = 0, epoch = 0; // after the round; epoch 1-based
  double time = 0, seconds = 0;           // since the run started; of the round
  int64_t samples = 0;
  double lr = 0;
  int64_t shard_elements = 0, buffer_elements = 0;
  int64_t shard_upload_bytes =
      0; // one trainer's upload of rank 0's shard (protocol.h upload_bytes)
};

// The "round" record of --metrics (README "Metrics") of a distributed round.
RoundRecord round_record(const RoundFacts &facts, const Roster &trainers, const Plan &plan,
                         const RoundResult &result);

// The Prometheus snapshot: the trainers still in the job with their shares and speeds.
std::vector<PrometheusTrainer> prometheus_trainers(const Roster &trainers, const Plan &plan);

// The per-epoch table: shares of the current plan and where the time went.
void log_trainer_table(const Roster &trainers, const Plan &plan);

} // namespace hetrain::run
