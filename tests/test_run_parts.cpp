// The parts of a run that decide or keep account without MPI or a model (src/run/): the run's
// position and cadence (run_progress.h), a round's accounting and the advice's facts
// (round_accounting.h), and the one JSON form of each record (run_records.h, train/records.h).
#include "round_accounting.h"
#include "run_progress.h"
#include "run_records.h"

#include <gtest/gtest.h>

namespace hetrain::run {
namespace {

TrainConfig config_with(int64_t epochs, int64_t checkpoint_every) {
  TrainConfig c;
  c.epochs = epochs;
  c.checkpoint_every = checkpoint_every;
  c.progress_seconds = 1e9;
  return c;
}

// Two epochs of 1000 samples in rounds of 256: 4 rounds each, the last one 232 samples.
TEST(RunProgress, WalksEpochsOfRoundsAndStartsEachEpochAtZero) {
  RunProgress p(config_with(2, 0), 1000, 256);
  EXPECT_EQ(p.rounds_per_epoch(), 4);
  EXPECT_EQ(p.first_epoch(), 0);
  int64_t rounds = 0;
  for (int64_t epoch = p.first_epoch(); epoch < 2; ++epoch) {
    const int64_t first = p.begin_epoch(epoch);
    EXPECT_EQ(first, 0);
    for (int64_t start = first; start < 1000; start += 256) {
      p.round_done(std::min<int64_t>(256, 1000 - start), 1);
      ++rounds;
      EXPECT_EQ(p.epoch_finished(), start + 256 >= 1000);
    }
    EXPECT_EQ(p.position().round, 4);
    p.end_epoch(epoch);
    EXPECT_EQ(p.position().epoch, epoch + 1);
    EXPECT_EQ(p.position().epoch_position, 0);
    EXPECT_EQ(p.position().round, 0);
  }
  EXPECT_EQ(rounds, 8);
  EXPECT_EQ(p.position().global_step, 8);
  EXPECT_EQ(p.position().samples_seen, 2000);
}

// A run resumed 512 samples into epoch 1 goes on from there in that epoch only.
TEST(RunProgress, ResumedEpochStartsAtTheSavedPositionTheNextAtZero) {
  RunProgress p(config_with(3, 0), 1000, 256);
  TrainingPosition saved;
  saved.epoch = 1;
  saved.epoch_position = 512;
  saved.round = 2;
  saved.global_step = 6;
  saved.samples_seen = 1512;
  p.resume_at(saved);
  EXPECT_EQ(p.first_epoch(), 1);
  EXPECT_EQ(p.begin_epoch(1), 512);
  EXPECT_EQ(p.position().round, 2);
  p.round_done(256, 1);
  p.round_done(232, 1);
  EXPECT_TRUE(p.epoch_finished());
  EXPECT_EQ(p.position().global_step, 8);
  p.end_epoch(1);
  EXPECT_EQ(p.begin_epoch(2), 0);
  EXPECT_EQ(p.resumed().samples_seen, 1512);
}

// --sync params: a round takes several optimizer steps; the cadence counts steps.
TEST(RunProgress, StepCheckpointEveryNStepsButNotAtTheEpochsEnd) {
  RunProgress p(config_with(1, 2), 1000, 256);
  p.begin_epoch(0);
  std::vector<bool> due;
  for (int64_t start = 0; start < 1000; start += 256) {
    p.round_done(std::min<int64_t>(256, 1000 - start), 1);
    due.push_back(p.step_checkpoint_due());
  }
  EXPECT_EQ(due, (std::vector<bool>{false, true, false, false})); // step 4 ends the epoch
  RunProgress off(config_with(1, 0), 1000, 256);
  off.begin_epoch(0);
  off.round_done(256, 1);
  EXPECT_FALSE(off.step_checkpoint_due());
}

TEST(RunProgress, ProgressLineNamesEpochRoundAndRate) {
  RunProgress p(config_with(2, 0), 1000, 250);
  p.start();
  p.begin_epoch(0);
  p.round_done(250, 1);
  const std::string line = p.progress_line("round", 0.5);
  EXPECT_NE(line.find("epoch 1/2 round 1/4 |"), std::string::npos) << line;
  EXPECT_NE(line.find("| loss 0.5000 | ETA "), std::string::npos) << line;
}

TrainerState trainer(int world_rank, int job_rank, double speed) {
  TrainerState t;
  t.world_rank = world_rank;
  t.job_rank = job_rank;
  t.report.host = "h" + std::to_string(world_rank);
  t.speed = speed;
  t.micro_batch = 32;
  return t;
}

// A working trainer's figures grow by its statistics; one out of the round counts an out round.
TEST(RoundAccounting, AddsTheWorkersStatisticsAndCountsTheOutRounds) {
  Roster roster{trainer(1, 1, 1000), trainer(2, 2, 500)};
  roster[0].working = roster[0].in_round = true;
  roster[0].stats.samples = 256;
  roster[0].stats.compute_seconds = 0.2; // 1280 samples/s
  roster[0].stats.micro_batch = 32;
  roster[0].stats.data_wait_seconds = 0.01;
  const double compute = account_round(roster, {0.25, -1}, 0.3, 7, 32);
  EXPECT_DOUBLE_EQ(compute, 0.2);
  EXPECT_EQ(roster[0].samples, 256);
  EXPECT_DOUBLE_EQ(roster[0].wait_seconds, 0.3 - 0.2);
  EXPECT_EQ(roster[0].last_round, 7);
  EXPECT_DOUBLE_EQ(roster[0].speed, 0.7 * 1000 + 0.3 * 1280); // ReplanPolicy's 0.3 smoothing
  EXPECT_NEAR(roster[0].comm_seconds, 0.05, 1e-12);           // first transfer taken as is
  EXPECT_EQ(roster[1].out_rounds, 1);
  EXPECT_DOUBLE_EQ(roster[1].out_seconds, 0.3);
  EXPECT_DOUBLE_EQ(roster[1].speed, 500); // out: unchanged
  account_round(roster, {0.35, -1}, 0.3, 8, 32);
  EXPECT_NEAR(roster[0].comm_seconds, 0.7 * 0.05 + 0.3 * 0.15, 1e-12);
}

// A lost trainer is neither out nor working: nothing changes for it.
TEST(RoundAccounting, LostTrainerIsNotCounted) {
  Roster roster{trainer(1, 1, 1000)};
  roster[0].lost = true;
  account_round(roster, {}, 0.3, 1, 32);
  EXPECT_EQ(roster[0].out_rounds, 0);
  EXPECT_EQ(roster[0].samples, 0);
}

TEST(RoundAccounting, MeasuredRoundStartsWithTheFirstFigureThenSmooths) {
  MeasuredRound m;
  m.add(1.0, 0.5);
  EXPECT_DOUBLE_EQ(m.round_seconds, 1.0);
  EXPECT_DOUBLE_EQ(m.compute_seconds, 0.5);
  m.add(2.0, 0.5);
  EXPECT_DOUBLE_EQ(m.round_seconds, 0.7 * 1.0 + 0.3 * 2.0);
}

TEST(RoundAccounting, AdviceFactsNameTheSlowestLinkAndTheLongestTransfer) {
  Roster roster{trainer(1, 1, 1000), trainer(2, 2, 1000)};
  roster[1].links.push_back(LinkFigures{});
  roster[1].links[0].up_mb_per_s = 2.5;
  roster[1].links[0].down_mb_per_s = 1.7;
  roster[0].comm_seconds = 0.1;
  roster[1].comm_seconds = 1.2;
  EXPECT_EQ(slowest_link_text(roster[1]), "rank 2 (h2), its link 1.7 MB/s");
  EXPECT_EQ(slowest_link_text(roster[0]), "rank 1 (h1)"); // no measured link
  EXPECT_EQ(longest_measured_transfer(roster), "rank 2 (h2), 1.200 s a round");
  EXPECT_EQ(trainer_hosts(roster, {0, 1, 1}), 1); // job ranks 1 and 2 on host 1
  EXPECT_EQ(trainer_hosts(roster, {0, 1, 2}), 2);

  TrainConfig config;
  config.sync = SyncMode::kParams;
  config.local_steps = 8;
  Plan plan;
  plan.ranks = {1, 2};
  plan.micro_batches = {4, 4};
  RoundEstimate e;
  e.seconds = 2.0;
  e.compute_seconds = 0.5;
  e.transfer_seconds = 1.0;
  e.upload_seconds = 0.25;
  e.slowest_trainer = 1;
  const CommunicationFacts f =
      communication_facts(config, e, {}, roster, plan, {0, 1, 2}, 3.0, -1, false);
  EXPECT_DOUBLE_EQ(f.compute_seconds, 0.5); // from the model when none was measured
  EXPECT_DOUBLE_EQ(f.upload_fraction, 0.25);
  EXPECT_EQ(f.slowest_trainer, "rank 2 (h2), its link 1.7 MB/s");
  EXPECT_TRUE(f.busiest_aggregator.empty());
  EXPECT_EQ(f.local_steps, 8);
  EXPECT_EQ(f.hosts, 2);
}

TEST(RunRecords, EpochRecordHasOneJsonFormAndTheMetricsRecordDropsAbsentTestFigures) {
  EpochRecord r;
  r.epoch = 2;
  r.samples = 100;
  r.train_loss = 0.5;
  const nlohmann::json summary = r;
  EXPECT_EQ(summary.at("epoch"), 2);
  EXPECT_EQ(summary.at("test_loss"), -1); // the summary keeps -1: no test set
  const nlohmann::json metrics = epoch_metrics(r);
  EXPECT_EQ(metrics.at("type"), "epoch");
  EXPECT_FALSE(metrics.contains("test_loss"));
  r.test_loss = 0.25;
  r.test_accuracy = 0.9;
  EXPECT_EQ(epoch_metrics(r).at("test_accuracy"), 0.9);
}

TEST(RunRecords, RoundRecordWritesOptionalFiguresOnlyWhenKnown) {
  RoundRecord r;
  r.seconds = 0.5;
  r.samples = 256;
  r.shares = {{1, 3}, {2, 5}};
  TrainerRoundRecord &t = r.trainers.emplace_back();
  t.rank = 1;
  t.samples = 96;
  AggregatorRoundRecord &server = r.shard_servers.emplace_back();
  server.rank = 1;
  server.uploads = 2;
  const nlohmann::json j = r;
  EXPECT_EQ(j.at("type"), "round");
  EXPECT_DOUBLE_EQ(j.at("samples_per_sec").get<double>(), 512.0);
  EXPECT_EQ(j.at("shares").at("2"), 5);
  EXPECT_FALSE(j.at("trainers")[0].contains("transfer_seconds"));
  EXPECT_FALSE(j.at("trainers")[0].contains("gpu"));
  EXPECT_FALSE(j.at("aggregator").contains("rank"));
  EXPECT_FALSE(j.at("aggregator").contains("uploads"));
  EXPECT_EQ(j.at("shard_servers")[0].at("rank"), 1);
  EXPECT_EQ(j.at("shard_servers")[0].at("uploads"), 2);
  t.transfer_seconds = 0.1;
  EXPECT_DOUBLE_EQ(nlohmann::json(r).at("trainers")[0].at("transfer_seconds").get<double>(), 0.1);
}

} // namespace
} // namespace hetrain::run
