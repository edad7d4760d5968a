// The parts of a run that decide or keep account without MPI or a model (src/run/): the run's
// position and cadence (run_progress.h), a round's accounting and the advice's facts
// (round_accounting.h), and the one JSON form of each record (run_records.h, train/records.h).
#include "round_accounting.h"
#include "round_planner.h"
#include "round_supervisor.h"
#include "run_progress.h"
#include "run_records.h"
#include "sync_overlap.h"
#include "trainer_optimizers.h"

#include <csignal>
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

// Two trainers (job ranks 1 and 2) with a probed link each; 100k parameters.
struct PlannerCase {
  TrainConfig config;
  Roster roster;
  PlanSizes sizes;
  explicit PlannerCase(double slow_link_mb_per_s, int rebalance_every = 5) {
    config.global_batch = 256;
    config.micro_batch = 32;
    config.rebalance_every = rebalance_every;
    roster = {trainer(1, 1, 1000), trainer(2, 2, 1000)};
    for (TrainerState &t : roster) {
      LinkFigures f;
      f.trainer_rank = t.world_rank;
      f.up_mb_per_s = f.down_mb_per_s = t.world_rank == 2 ? slow_link_mb_per_s : 1000;
      t.links.push_back(f);
    }
    sizes = {100000, 0, shard_layout(100000, 1 << 20, 1)};
  }
};

// Every sample of the round goes to exactly one working trainer, by the plan's shares.
TEST(RoundPlanner, AssignsEverySampleOfTheRoundOnce) {
  PlannerCase c(1000);
  RoundPlanner planner(c.config, c.roster, c.sizes, {});
  ASSERT_EQ(planner.plan().ranks.size(), 2u);
  planner.assign_round({10, 0, 512, 200, 1, 0}); // a short last round of 200 samples
  int64_t total = 0;
  for (const TrainerState &t : c.roster) {
    EXPECT_TRUE(t.working);
    EXPECT_TRUE(t.uploading); // no host groups: every worker uploads
    EXPECT_TRUE(t.in_round);
    EXPECT_TRUE(t.refresh); // its first round: the parameters go to it first
    EXPECT_EQ(t.command.kind, RoundCommand::Kind::kRound);
    EXPECT_EQ(t.command.global_step, 10);
    EXPECT_EQ(t.command.offset, 512 + total);
    total += t.command.count;
  }
  EXPECT_EQ(total, 200);
  planner.assign_round({11, 0, 712, 200, 1, 0});
  EXPECT_FALSE(c.roster[0].refresh); // it holds the current parameters now
}

// --sync-overlap: a trainer's guess of its next command, made from its last one, is what the
// planner really sends while the plan holds (so the round computed on it is kept), and no guess
// is made where the next round is not a full one. continues_round tells the next round from a
// redone one, a checkpoint's command and a stop.
TEST(SyncOverlap, GuessIsThePlannersNextCommandWhileThePlanHolds) {
  PlannerCase c(1000);
  c.config.sync = SyncMode::kDiLoCo;
  c.config.local_steps = 4;
  RoundPlanner planner(c.config, c.roster, c.sizes, {});
  const int64_t n = 2500, round = 256 * 4; // rounds of 1024: two full, then 452
  planner.assign_round({0, 0, 0, round, 4, 0});
  std::vector<std::optional<RoundCommand>> guesses;
  for (const TrainerState &t : c.roster)
    guesses.push_back(guess_next_round(t.command, c.config.global_batch, n));
  planner.assign_round({4, 0, round, round, 4, 0});
  for (size_t j = 0; j < c.roster.size(); ++j) {
    const RoundCommand &real = c.roster[j].command;
    ASSERT_TRUE(guesses[j].has_value()) << j;
    EXPECT_EQ(encode(*guesses[j]), encode(real)) << j;
  }
  // After the second full round the next one is short (452 samples): no guess, since each
  // trainer's slice of a full round would run past the epoch.
  for (const TrainerState &t : c.roster)
    EXPECT_FALSE(guess_next_round(t.command, 256, n).has_value());
  RoundCommand last = c.roster[0].command, next = last;
  next.global_step = last.global_step + last.round_steps;
  EXPECT_TRUE(continues_round(last, next));
  next.attempt = 1; // the round redone after a trainer was lost: take the master
  EXPECT_FALSE(continues_round(last, next));
  next.attempt = 0;
  next.kind = RoundCommand::Kind::kSaveOptimizer; // a checkpoint comes first
  EXPECT_FALSE(continues_round(last, next));
  next = last; // the same round again
  EXPECT_FALSE(continues_round(last, next));
  last.attempt = 1; // no guess after a redone round
  EXPECT_FALSE(guess_next_round(last, 256, n).has_value());
}

// A trainer whose link costs more than it saves is out: told kOut once, then left alone.
TEST(RoundPlanner, LeftOutTrainerIsToldOnceAndThenGetsNothing) {
  PlannerCase c(0.001, 0); // 1 kB/s: 0.8 s to move its 400 kB, against 0.26 s of compute
  RoundPlanner planner(c.config, c.roster, c.sizes, {});
  ASSERT_EQ(planner.plan().ranks, std::vector<int>{1});
  ASSERT_FALSE(planner.plan().notes.empty()); // the log says why
  planner.assign_round({0, 0, 0, 256, 1, 0});
  const TrainerState &out = c.roster[1];
  EXPECT_FALSE(out.working);
  EXPECT_FALSE(out.in_round);
  EXPECT_EQ(out.command.kind, RoundCommand::Kind::kOut);
  EXPECT_TRUE(out.send_command);
  planner.assign_round({1, 0, 256, 256, 1, 0});
  EXPECT_FALSE(out.send_command);        // within half --straggler-timeout: nothing goes to it
  ASSERT_EQ(planner.moves().size(), 1u); // the summary's plan_moves: out from round 1
  EXPECT_EQ(planner.moves()[0].rank, 2);
  EXPECT_EQ(planner.moves()[0].round, 1);
  EXPECT_FALSE(planner.moves()[0].in_plan);
  EXPECT_EQ(c.roster[0].command.count, 256);
}

// --sync params/diloco moves the bytes once per --local-steps global batches, so the plan weighs a
// slow link against L batches of compute: a trainer behind 2 MB/s (0.4 s to move its 800 kB)
// is out of an exact round (0.128 s of compute each) and in a round of 8 local steps.
TEST(RoundPlanner, ASlowLinkCostsALocalStepsRoundOnce) {
  PlannerCase exact(2);
  RoundPlanner exact_planner(exact.config, exact.roster, exact.sizes, {});
  EXPECT_EQ(exact_planner.plan().ranks, std::vector<int>{1});
  PlannerCase local(2);
  local.config.sync = SyncMode::kDiLoCo;
  local.config.local_steps = 8;
  RoundPlanner local_planner(local.config, local.roster, local.sizes, {});
  EXPECT_EQ(local_planner.plan().ranks, (std::vector<int>{1, 2}));
  // Its estimate is of the whole round: 8 batches of compute and one transfer.
  EXPECT_GT(local_planner.plan().estimated_round_seconds, 8 * 0.128);
  EXPECT_LT(local_planner.plan().estimated_round_seconds, 8 * 0.256);
  // The round still cuts the samples of 8 global batches by the plan's shares.
  local_planner.assign_round({0, 0, 0, 2048, 8, 0});
  EXPECT_EQ(local.roster[0].command.count + local.roster[1].command.count, 2048);
}

// A trainer that became 10x slower gets a new plan at the next re-plan, with the reason; steady
// speeds keep the plan.
TEST(RoundPlanner, ReplansWhenSpeedsChangeAndKeepsThePlanWhenSteady) {
  PlannerCase c(1000, 1);
  RoundPlanner planner(c.config, c.roster, c.sizes, {});
  const Plan start = planner.plan();
  EXPECT_FALSE(planner.maybe_replan(1)); // same speeds: the same split is not adopted
  c.roster[1].speed = 100;
  const std::optional<std::string> why = planner.maybe_replan(2);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("after round 2"), std::string::npos) << *why;
  EXPECT_GT(planner.plan().micro_batches[0], start.micro_batches[0]);
  c.roster[1].lost = true;
  planner.replan_without_gone();
  EXPECT_EQ(planner.plan().ranks, std::vector<int>{1});
}

// A round executor that plays back scripted results and records what it was asked.
class FakeRunner : public RoundRunner {
public:
  FakeRunner(const Roster &roster, std::vector<RoundResult> script)
      : roster_(roster), script_(std::move(script)) {}
  RoundResult execute(const RoundOrder &) override {
    std::vector<int> working;
    for (const TrainerState &t : roster_)
      if (t.working)
        working.push_back(t.world_rank);
    attempts.push_back({roster_.front().command.attempt, working});
    RoundResult r = script_.at(attempts.size() - 1);
    return r;
  }
  void discard_round() override { ++discards; }
  LatePeers broadcast() override {
    ++broadcasts;
    return {};
  }
  std::vector<std::pair<int, std::vector<int>>> attempts; // attempt, working world ranks
  int discards = 0, broadcasts = 0;

private:
  const Roster &roster_;
  std::vector<RoundResult> script_;
};

RoundResult late_result(int world_rank) {
  RoundResult r;
  r.end = RoundResult::End::kLate;
  r.late.world_ranks = {world_rank};
  r.late.error = PeerTimeout(world_rank, "rank did not answer");
  return r;
}

// What the coordinator was asked to do, as LossHooks.
struct HookLog {
  std::vector<std::string> saved;
  std::vector<int> stopped_except, dropped;
  LossHooks hooks(Roster &roster, RoundPlanner &planner) {
    LossHooks h;
    h.save = [this](const std::string &tag) {
      saved.push_back(tag);
      return "ckpt-" + tag + ".h5";
    };
    h.stop_others = [this](const std::vector<int> &late) { stopped_except = late; };
    h.drop = [this, &roster, &planner](const std::vector<int> &ranks, const std::string &) {
      for (int r : ranks) {
        dropped.push_back(r);
        for (TrainerState &t : roster)
          t.lost = t.lost || t.world_rank == r;
      }
      planner.replan_without_gone();
    };
    return h;
  }
};

// continue: the late trainer is dropped and the same round is redone by the survivor.
TEST(RoundSupervisor, ContinueDropsTheLateTrainerAndRedoesTheRound) {
  PlannerCase c(1000);
  c.config.on_trainer_loss = TrainerLoss::kContinue;
  RoundPlanner planner(c.config, c.roster, c.sizes, {});
  FakeRunner runner(c.roster, {late_result(2), RoundResult{}});
  HookLog log;
  const RoundResult r = supervise_round(c.config, runner, planner, c.roster, {4, 0, 0, 256, 1, 0},
                                        {5, 4, 256, 0.1}, log.hooks(c.roster, planner));
  EXPECT_EQ(r.end, RoundResult::End::kComplete);
  ASSERT_EQ(runner.attempts.size(), 2u);
  EXPECT_EQ(runner.attempts[0], (std::pair<int, std::vector<int>>{0, {1, 2}}));
  EXPECT_EQ(runner.attempts[1], (std::pair<int, std::vector<int>>{1, {1}}));
  EXPECT_EQ(c.roster[0].command.count, 256); // the survivor takes the whole round
  EXPECT_EQ(log.dropped, std::vector<int>{2});
  EXPECT_EQ(runner.discards, 1);
  EXPECT_EQ(runner.broadcasts, 1); // the survivors get the unchanged parameters again
  EXPECT_TRUE(log.saved.empty());
}

// abort: the last complete round is saved, the others stopped, and the job ends naming the late.
TEST(RoundSupervisor, AbortSavesStopsTheOthersAndThrowsNamingTheLate) {
  PlannerCase c(1000);
  RoundPlanner planner(c.config, c.roster, c.sizes, {});
  FakeRunner runner(c.roster, {late_result(2)});
  HookLog log;
  try {
    supervise_round(c.config, runner, planner, c.roster, {4, 0, 0, 256, 1, 0}, {5, 4, 256, 0.1},
                    log.hooks(c.roster, planner));
    FAIL() << "no PeerTimeout";
  } catch (const PeerTimeout &e) {
    EXPECT_EQ(e.peer(), 2);
  }
  EXPECT_EQ(log.saved, std::vector<std::string>{"abort"});
  EXPECT_EQ(log.stopped_except, std::vector<int>{2});
  EXPECT_TRUE(log.dropped.empty());
  EXPECT_EQ(runner.discards, 0);
}

// A round given up on a signal is saved as "signal" and ends the job.
TEST(RoundSupervisor, AbandonedRoundSavesAndEnds) {
  PlannerCase c(1000);
  RoundPlanner planner(c.config, c.roster, c.sizes, {});
  RoundResult abandoned;
  abandoned.end = RoundResult::End::kAbandoned;
  abandoned.abandoned = "SIGTERM during round 5";
  FakeRunner runner(c.roster, {abandoned});
  HookLog log;
  EXPECT_THROW(supervise_round(c.config, runner, planner, c.roster, {4, 0, 0, 256, 1, 0},
                               {5, 4, 256, 0.1}, log.hooks(c.roster, planner)),
               RoundAbandoned);
  EXPECT_EQ(log.saved, std::vector<std::string>{"signal"});
}

// continue: a trainer that did not take the new parameters is dropped after a complete round.
TEST(RoundSupervisor, ContinueDropsATrainerThatMissedTheBroadcast) {
  PlannerCase c(1000);
  c.config.on_trainer_loss = TrainerLoss::kContinue;
  RoundPlanner planner(c.config, c.roster, c.sizes, {});
  RoundResult done;
  done.broadcast_late.world_ranks = {1};
  done.broadcast_late.error = PeerTimeout(1, "no parameters taken");
  FakeRunner runner(c.roster, {done});
  HookLog log;
  supervise_round(c.config, runner, planner, c.roster, {4, 0, 0, 256, 1, 0}, {5, 4, 256, 0.1},
                  log.hooks(c.roster, planner));
  EXPECT_EQ(log.dropped, std::vector<int>{1});
  EXPECT_EQ(runner.discards, 1);
  EXPECT_EQ(planner.plan().ranks, std::vector<int>{2});
}

// A trainer that worked this round with a signal of its own leaves; the job stops when rank 0 has
// one, when every trainer still in the job has one, or where the job cannot go on without it.
Roster signalled(std::vector<int> signals) {
  Roster roster;
  for (size_t i = 0; i < signals.size(); ++i) {
    roster.push_back(trainer(static_cast<int>(i) + 1, static_cast<int>(i) + 1, 1000));
    roster.back().working = true;
    roster.back().stats.stop_signal = signals[i];
  }
  return roster;
}

TEST(SignalVerdict, ATrainersOwnSignalLetsItLeaveAndTheJobGoesOn) {
  const SignalVerdict v = judge_signals(0, signalled({0, SIGTERM, 0}), true);
  EXPECT_EQ(v.stop_job, 0);
  EXPECT_EQ(v.leaving, std::vector<int>{2});
  EXPECT_EQ(judge_signals(0, signalled({0, 0, 0}), true).leaving, std::vector<int>{});
}

TEST(SignalVerdict, RankZerosSignalOrOneAtEveryTrainerStopsTheJob) {
  SignalVerdict v = judge_signals(SIGUSR1, signalled({0, SIGTERM}), true);
  EXPECT_EQ(v.stop_job, SIGUSR1);
  EXPECT_TRUE(v.leaving.empty());
  v = judge_signals(0, signalled({SIGUSR1, SIGUSR1}), true);
  EXPECT_EQ(v.stop_job, SIGUSR1);
  EXPECT_TRUE(v.leaving.empty());
}

TEST(SignalVerdict, GoneAndIdleTrainersDoNotCountAndNoLeaveWhereTheJobCannotGoOn) {
  Roster roster = signalled({SIGTERM, SIGTERM, 0});
  roster[2].lost = true; // the only trainer without a signal is gone: everyone left signalled
  EXPECT_EQ(judge_signals(0, roster, true).stop_job, SIGTERM);
  roster = signalled({SIGTERM, 0});
  roster[0].working = false; // out of the plan: its statistics (and signal) did not come
  EXPECT_EQ(judge_signals(0, roster, true).leaving, std::vector<int>{});
  roster[0].out_signal = SIGTERM; // out of the plan, it said so in its answer to a measurement
  EXPECT_EQ(judge_signals(0, roster, true).leaving, std::vector<int>{roster[0].world_rank});
  const SignalVerdict v = judge_signals(0, signalled({SIGTERM, 0}), false); // host groups
  EXPECT_EQ(v.stop_job, SIGTERM);
  EXPECT_TRUE(v.leaving.empty());
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

// A resumed run's trainers get back their own optimizers only when they are the trainers that
// saved them; any other set (one more, one fewer, other ranks) starts from the saved mean.
TEST(TrainerOptimizers, OwnStateOnlyForTheSameTrainers) {
  EXPECT_EQ(choose_resplit({1, 2, 3}, {3, 1, 2}), ReSplit::kOwn);
  EXPECT_EQ(choose_resplit({1, 2, 3}, {1, 2}), ReSplit::kMean);
  EXPECT_EQ(choose_resplit({1, 2}, {1, 2, 3}), ReSplit::kMean);
  EXPECT_EQ(choose_resplit({1, 3}, {1, 2}), ReSplit::kMean);
  EXPECT_EQ(choose_resplit({1, 2}, {}), ReSplit::kNone);
}

TEST(TrainerOptimizers, MeanStateAveragesEveryTensorAndKeepsTheLargestStepCount) {
  TrainerOptimizerState a{
      1,
      4,
      {{"exp_avg", torch::tensor({1.0f, 2.0f})}, {"exp_avg_sq", torch::tensor({4.0f, 0.0f})}}};
  TrainerOptimizerState b{
      2,
      6,
      {{"exp_avg", torch::tensor({3.0f, -2.0f})}, {"exp_avg_sq", torch::tensor({2.0f, 1.0f})}}};
  const TrainerOptimizerState m = mean_state({a, b});
  EXPECT_EQ(m.steps, 6);
  ASSERT_EQ(m.state.size(), 2u);
  EXPECT_EQ(m.state[0].first, "exp_avg");
  EXPECT_TRUE(torch::equal(m.state[0].second, torch::tensor({2.0f, 0.0f})));
  EXPECT_TRUE(torch::equal(m.state[1].second, torch::tensor({3.0f, 0.5f})));
  EXPECT_EQ(m.state[1].second.scalar_type(), torch::kFloat32);
}

TEST(TrainerOptimizers, KeptOnlyWhereTrainersStepTheirOwnStatefulOptimizer) {
  TrainConfig c;
  c.optimizer = "adam";
  EXPECT_FALSE(trainers_keep_optimizer_state(c)); // --sync gradient: rank 0 steps
  c.sync = SyncMode::kDiLoCo;
  EXPECT_TRUE(trainers_keep_optimizer_state(c));
  EXPECT_EQ(trainer_state_names(c), (std::vector<std::string>{"exp_avg", "exp_avg_sq"}));
  c.sync = SyncMode::kParams;
  c.optimizer = "momentum";
  EXPECT_TRUE(trainers_keep_optimizer_state(c));
  c.optimizer = "sgd";
  EXPECT_FALSE(trainers_keep_optimizer_state(c)); // no state to keep
  // --wire-dtype int8: the carried rounding error is kept with the optimizer, even plain sgd's.
  c.sync = SyncMode::kDiLoCo;
  c.wire_dtype = WireDType::kInt8;
  EXPECT_TRUE(trainers_keep_optimizer_state(c));
  EXPECT_EQ(trainer_state_names(c), std::vector<std::string>{"wire_residual"});
}

// A checkpoint's trainer states in the order this run's trainers expect: int8's carried error
// starts at zero when the checkpoint's run did not use int8, and is dropped when this one does
// not; another missing state is the user's mistake, named.
TEST(TrainerOptimizers, StatesFollowThisRunsNamesWhateverTheCheckpointHeld) {
  TrainConfig c;
  c.sync = SyncMode::kDiLoCo;
  c.optimizer = "momentum";
  c.wire_dtype = WireDType::kInt8;
  const torch::Tensor ones = torch::ones({5});
  TrainerOptimizerState without{1, 3, {{"momentum_buffer", ones}}};
  auto got = states_for(c, {without}, "c.h5");
  ASSERT_EQ(got.at(0).state.size(), 2u);
  EXPECT_EQ(got[0].state[0].first, "momentum_buffer");
  EXPECT_EQ(got[0].state[1].first, "wire_residual");
  EXPECT_EQ(got[0].state[1].second.abs().sum().item<float>(), 0.0f);
  c.wire_dtype = WireDType::kFp32;
  TrainerOptimizerState with{1, 3, {{"wire_residual", ones}, {"momentum_buffer", ones * 2}}};
  got = states_for(c, {with}, "c.h5");
  ASSERT_EQ(got.at(0).state.size(), 1u);
  EXPECT_EQ(got[0].state[0].first, "momentum_buffer");
  EXPECT_EQ(got[0].state[0].second.sum().item<float>(), 10.0f);
  c.optimizer = "adam";
  EXPECT_THROW(states_for(c, {with}, "c.h5"), UserError);
}

} // namespace hetrain::run
