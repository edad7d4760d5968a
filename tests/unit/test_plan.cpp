// The plan: largest remainder, the balance policies, the cost model (measured links, shared
// aggregator links), round sharding, the re-planning policy (smoothing, the 5% rule, the link
// assumption), the link probe's schedule and message size, and the communication advice.
#include "hetrain/common/error.h"
#include "hetrain/schedule/advice.h"
#include "hetrain/schedule/links.h"
#include "hetrain/schedule/plan.h"
#include "hetrain/schedule/replan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>

using namespace hetrain;

namespace {

int64_t sum(const std::vector<int64_t> &v) {
  return std::accumulate(v.begin(), v.end(), int64_t{0});
}

TEST(LargestRemainder, ProportionalWhenDivisible) {
  EXPECT_EQ(largest_remainder({2, 1, 1}, 8), (std::vector<int64_t>{4, 2, 2}));
  EXPECT_EQ(largest_remainder({1, 1, 1, 1, 100}, 104), (std::vector<int64_t>{1, 1, 1, 1, 100}));
  EXPECT_EQ(largest_remainder({3, 1}, 8), (std::vector<int64_t>{6, 2}));
}

TEST(LargestRemainder, EveryTrainerGetsAtLeastOne) {
  EXPECT_EQ(largest_remainder({10, 1}, 4), (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(largest_remainder({1000, 1, 1}, 3), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(largest_remainder({1000, 1, 1}, 10), (std::vector<int64_t>{8, 1, 1}));
}

TEST(LargestRemainder, TiesGoToTheLowerIndex) {
  EXPECT_EQ(largest_remainder({1, 1, 1}, 4), (std::vector<int64_t>{2, 1, 1}));
  EXPECT_EQ(largest_remainder({1, 1, 1}, 5), (std::vector<int64_t>{2, 2, 1}));
}

TEST(LargestRemainder, ZeroAndInvalidSpeeds) {
  EXPECT_EQ(largest_remainder({0, 1}, 4), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(largest_remainder({0, 0}, 4), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(largest_remainder({NAN, -3, 2}, 5), (std::vector<int64_t>{1, 1, 3}));
  EXPECT_EQ(largest_remainder({0, 1}, 4, 0), (std::vector<int64_t>{0, 4}));
  EXPECT_THROW(largest_remainder({1, 1, 1}, 2), UserError);
  EXPECT_TRUE(largest_remainder({}, 5).empty());
}

TEST(LargestRemainder, RandomInputsKeepSumMinimumAndStayWithinOneOfTheQuota) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> speed(0.1, 10.0);
  for (int trial = 0; trial < 500; ++trial) {
    size_t n = 1 + rng() % 8;
    int64_t total = static_cast<int64_t>(n) + rng() % 200;
    std::vector<double> w(n);
    for (auto &x : w)
      x = speed(rng);
    auto k = largest_remainder(w, total);
    ASSERT_EQ(sum(k), total);
    double wsum = std::accumulate(w.begin(), w.end(), 0.0);
    bool minimum_binds = false;
    for (size_t i = 0; i < n; ++i) {
      ASSERT_GE(k[i], 1);
      minimum_binds |= static_cast<double>(total) * w[i] / wsum < 1.0;
    }
    if (minimum_binds)
      continue;
    // Where no minimum binds, this is plain largest remainder: within one of the ideal quota.
    for (size_t i = 0; i < n; ++i) {
      double quota = static_cast<double>(total) * w[i] / wsum;
      EXPECT_LT(std::abs(static_cast<double>(k[i]) - quota), 1.0) << "trial " << trial;
    }
  }
}

TEST(Balance, ParsesPoliciesAndRefusesBadOnes) {
  EXPECT_EQ(parse_balance("benchmark").kind, BalancePolicy::Kind::Benchmark);
  EXPECT_EQ(parse_balance("equal").kind, BalancePolicy::Kind::Equal);
  auto s = parse_balance("static:3,2,1");
  EXPECT_EQ(s.kind, BalancePolicy::Kind::Static);
  EXPECT_EQ(s.static_shares, (std::vector<double>{3, 2, 1}));
  for (const char *bad : {"fast", "static:", "static:1,,2", "static:1,-2", "static:a"})
    EXPECT_THROW(parse_balance(bad), UserError) << bad;
}

std::vector<TrainerSpeed> speeds(std::vector<double> s, std::vector<double> comm) {
  std::vector<TrainerSpeed> out;
  for (size_t i = 0; i < s.size(); ++i)
    out.push_back({static_cast<int>(i + 1), "host" + std::to_string(i + 1), s[i], comm[i], {}, -1});
  return out;
}

TEST(Plan, BenchmarkFollowsSpeedEqualAndStaticDoNot) {
  auto t = speeds({200, 100, 100}, {0.001, 0.001, 0.001});
  auto p = make_plan(t, 8, 32, parse_balance("benchmark"));
  EXPECT_EQ(p.ranks, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(p.micro_batches, (std::vector<int64_t>{4, 2, 2}));
  EXPECT_TRUE(p.notes.empty());
  EXPECT_EQ(make_plan(t, 8, 32, parse_balance("equal")).micro_batches,
            (std::vector<int64_t>{3, 3, 2}));
  EXPECT_EQ(make_plan(t, 8, 32, parse_balance("static:1,2,5")).micro_batches,
            (std::vector<int64_t>{1, 2, 5}));
  EXPECT_THROW(make_plan(t, 8, 32, parse_balance("static:1,2")), UserError);
  EXPECT_THROW(make_plan(t, 2, 32, parse_balance("equal")), UserError);
}

TEST(Plan, CostModelLeavesOutATrainerWhoseTransferCostsMoreThanItsCompute) {
  // Two fast trainers and a slow one behind a slow link: 8 micro-batches of 32 take the fast
  // ones ~0.26 s; the slow one would add 1 s of transfer for one micro-batch of compute.
  auto t = speeds({500, 500, 50}, {0.01, 0.01, 1.0});
  auto p = make_plan(t, 8, 32, parse_balance("benchmark"));
  EXPECT_EQ(p.ranks, (std::vector<int>{1, 2}));
  EXPECT_EQ(p.micro_batches, (std::vector<int64_t>{4, 4}));
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_NE(p.notes[0].find("rank 3 (host3) left out"), std::string::npos) << p.notes[0];
  // A slower trainer on a fast link stays: 3+3+2 micro-batches beat 4+4 without it.
  auto kept =
      make_plan(speeds({500, 500, 300}, {0.01, 0.01, 0.01}), 8, 32, parse_balance("benchmark"));
  EXPECT_EQ(kept.micro_batches, (std::vector<int64_t>{3, 3, 2}));
  EXPECT_TRUE(kept.notes.empty());
  // One ten times slower is left out even on a fast link: its minimum of one micro-batch
  // (0.64 s) would take longer than the others' whole round (0.27 s).
  auto slow =
      make_plan(speeds({500, 500, 50}, {0.01, 0.01, 0.01}), 8, 32, parse_balance("benchmark"));
  EXPECT_EQ(slow.ranks, (std::vector<int>{1, 2}));
  // More trainers than micro-batches: the slowest wait this round out, with a note.
  auto few = make_plan(speeds({100, 300, 200}, {0, 0, 0}), 2, 32, parse_balance("benchmark"));
  EXPECT_EQ(few.ranks, (std::vector<int>{2, 3}));
  EXPECT_EQ(few.notes.size(), 1u);
}

TEST(RoundShard, FullAndPartialRoundsCoverEverySampleOnce) {
  std::vector<int64_t> k = {1, 2, 5};
  auto full = shard_round(k, 10, 160, 80);
  EXPECT_EQ(full.counts, (std::vector<int64_t>{10, 20, 50}));
  EXPECT_EQ(full.offsets, (std::vector<int64_t>{160, 170, 190}));
  for (int64_t samples : {1, 7, 33, 79}) {
    auto part = shard_round(k, 10, 240, samples);
    EXPECT_EQ(sum(part.counts), samples);
    int64_t expect_offset = 240;
    for (size_t j = 0; j < k.size(); ++j) {
      EXPECT_EQ(part.offsets[j], expect_offset);
      expect_offset += part.counts[j];
    }
    EXPECT_GE(part.counts[2], part.counts[0]); // in proportion to the shares
  }
}

} // namespace

TEST(Replan, SmoothedSpeedFollowsAChangeWithinAFewRoundsAndIgnoresEmptyRounds) {
  EXPECT_DOUBLE_EQ(smoothed_speed(100, 400, 2), 0.7 * 100 + 0.3 * 200);
  EXPECT_EQ(smoothed_speed(100, 400, 0), 100); // no compute time: nothing measured
  double speed = 100;
  int rounds = 0;
  while (speed < 0.95 * 200) {
    speed = smoothed_speed(speed, 200, 1);
    ++rounds;
  }
  EXPECT_GE(rounds, 5); // one round does not flip the speed
  EXPECT_LE(rounds, 10);
  ReplanPolicy jumpy;
  jumpy.smoothing = 1.0;
  EXPECT_EQ(smoothed_speed(100, 300, 1, jumpy), 300);
}

TEST(Replan, TransferAssumesTheLinkUntilMeasured) {
  EXPECT_DOUBLE_EQ(transfer_seconds(500'000'000), 1.0); // up and down at 1 GB/s
  ReplanPolicy slow;
  slow.assumed_link_bytes_per_second = 125e6; // 1 Gbit/s
  EXPECT_DOUBLE_EQ(transfer_seconds(125'000'000, slow), 2.0);
}

TEST(Replan, ANewPlanIsAdoptedOnlyWhenDifferentAndAtLeastFivePercentFaster) {
  Plan current;
  current.ranks = {1, 2};
  current.micro_batches = {4, 4};
  Plan candidate = current;
  candidate.micro_batches = {5, 3};
  candidate.estimated_round_seconds = 0.94;
  EXPECT_TRUE(should_adopt(candidate, current, 1.0));
  candidate.estimated_round_seconds = 0.96; // only 4% faster: noise
  EXPECT_FALSE(should_adopt(candidate, current, 1.0));
  Plan same = current;
  same.estimated_round_seconds = 0.5; // the same split is never "new", however fast
  EXPECT_FALSE(should_adopt(same, current, 1.0));
  Plan fewer = current;
  fewer.ranks = {1};
  fewer.micro_batches = {8};
  fewer.estimated_round_seconds = 0.9;
  EXPECT_TRUE(should_adopt(fewer, current, 1.0));
}

// The speeds' own noise raises the gain a new plan needs.
TEST(Replan, NoisySpeedsNeedALargerGainAndAStepChangeCountsOnce) {
  EXPECT_DOUBLE_EQ(speed_variance(0, 100, 0, 100, 1), 0); // no round before: nothing known
  // Rounds alternating 75 and 125 samples/s around 100: differences of 50%, variance 0.3 x
  // 0.5^2 / 2 per round into the running figure.
  double v = 0;
  for (int k = 0; k < 40; ++k)
    v = speed_variance(v, 100, k % 2 ? 75 : 125, k % 2 ? 125 : 75, 1);
  EXPECT_NEAR(v, 0.125, 1e-3); // = 0.5^2 / 2: a relative sd of 35%
  const double noise = smoothed_speed_noise(v);
  EXPECT_NEAR(noise, std::sqrt(v * 0.3 / 1.7), 1e-12);
  EXPECT_NEAR(required_gain(false, noise), noise, 1e-12);      // about 15%
  EXPECT_NEAR(required_gain(true, noise), 1.5 * noise, 1e-12); // going back: about 22%
  EXPECT_DOUBLE_EQ(required_gain(false, 0), 0.05);
  EXPECT_DOUBLE_EQ(required_gain(true, 0), 0.10);
  Plan current, candidate;
  current.ranks = candidate.ranks = {1, 2};
  current.micro_batches = {4, 4};
  candidate.micro_batches = {5, 3};
  candidate.estimated_round_seconds = 0.88; // 12%: enough on steady speeds, not on these
  EXPECT_TRUE(should_adopt(candidate, current, 1.0, nullptr, 0.0));
  EXPECT_FALSE(should_adopt(candidate, current, 1.0, nullptr, noise));
  // A step change (100 -> 25 samples/s, then steady) adds one difference, which decays: 10 rounds
  // later the variance is back under a tenth of that step's.
  double step = speed_variance(0, 100, 100, 25, 1);
  for (int k = 0; k < 10; ++k)
    step = speed_variance(step, 40, 25, 25, 1);
  EXPECT_LT(step, 0.1 * 0.3 * 0.75 * 0.75 / 2);
}

// Hysteresis: back to the plan replaced last only for 10%, so two plans whose estimates differ by
// about 5% do not alternate with the noise of the speeds.
TEST(Replan, GoingBackToThePlanReplacedLastNeedsTwiceTheGain) {
  Plan previous, current;
  previous.ranks = current.ranks = {1, 2};
  previous.micro_batches = {4, 4};
  current.micro_batches = {5, 3};
  Plan back = previous;
  back.estimated_round_seconds = 0.93; // 7% faster: enough for a new plan, not to go back
  EXPECT_FALSE(should_adopt(back, current, 1.0, &previous));
  EXPECT_TRUE(should_adopt(back, current, 1.0)); // without that history it would flip
  back.estimated_round_seconds = 0.89;
  EXPECT_TRUE(should_adopt(back, current, 1.0, &previous));
  Plan other = current;
  other.micro_batches = {6, 2};
  other.estimated_round_seconds = 0.93; // another plan: the usual 5%
  EXPECT_TRUE(should_adopt(other, current, 1.0, &previous));
}

namespace {

// A trainer of `speed` samples/s whose flat buffer of `bytes` goes to A aggregators in equal
// shards (up and down), each over a link of `rate` bytes/s; `same_host_with`: the aggregator on
// its host (-1: none).
TrainerSpeed linked(int rank, double speed, double bytes, double rate, int aggregators = 1,
                    int same_host_with = -1) {
  TrainerSpeed t{rank, "host" + std::to_string(rank), speed, 0, {}, -1};
  for (int j = 0; j < aggregators; ++j)
    t.links.push_back(
        {j, bytes / aggregators, bytes / aggregators, rate, rate, 0, j == same_host_with});
  return t;
}

constexpr double kGbit = 125e6, kMbit = 125e3; // bytes/s

} // namespace

TEST(ProbeSchedule, EveryPairOnceNoAggregatorOrTrainerTwiceInARound) {
  for (auto [n, a] : std::vector<std::pair<int, int>>{{1, 1}, {4, 1}, {3, 3}, {5, 2}, {2, 4}}) {
    const auto rounds = probe_schedule(n, a);
    EXPECT_EQ(static_cast<int>(rounds.size()), std::max(n, a)) << n << " " << a;
    std::set<std::pair<int, int>> seen;
    for (const auto &round : rounds) {
      std::set<int> trainers, aggregators;
      for (const ProbePair &p : round) {
        EXPECT_TRUE(trainers.insert(p.trainer).second) << "trainer twice in a round";
        EXPECT_TRUE(aggregators.insert(p.aggregator).second) << "aggregator shared in a round";
        EXPECT_TRUE(seen.insert({p.trainer, p.aggregator}).second) << "pair twice";
      }
    }
    EXPECT_EQ(static_cast<int>(seen.size()), n * a);
  }
  EXPECT_TRUE(probe_schedule(0, 2).empty());
}

TEST(ProbeSchedule, TransfersGrowByFourAndFitWhatIsLeft) {
  EXPECT_EQ(next_probe_bytes(0, 0, 0, 0.5), kFirstProbeBytes); // nothing measured yet
  EXPECT_EQ(next_probe_bytes(0, 0, 0, 0), 0);                  // no time left: not even that
  // The download's first, sized by the upload's rate: 64 KiB at 2 MB/s need 33 ms.
  EXPECT_EQ(next_probe_bytes(0, 2e6, 0.001, 0.05), kFirstProbeBytes);
  EXPECT_EQ(next_probe_bytes(0, 2e6, 0.001, 0.02), 0);
  EXPECT_EQ(next_probe_bytes(1 << 20, 100e6, 0.001, 10), 4 << 20); // time to spare: four times
  // 2 MB/s, 0.3 s left after a 0.1 s round trip: 0.4 MB fits, more than twice the last 128 KB.
  EXPECT_EQ(next_probe_bytes(128'000, 2e6, 0.1, 0.3), 400'000);
  EXPECT_EQ(next_probe_bytes(256'000, 2e6, 0.1, 0.3), 0);  // 400 kB < twice the last: stop
  EXPECT_EQ(next_probe_bytes(1 << 20, 1e9, 0.001, -1), 0); // the pair's time is up
  EXPECT_EQ(next_probe_bytes(65536, std::numeric_limits<double>::infinity(), 0, 1), 262144);
}

TEST(ProbeSchedule, TransfersAreRealPiecesNeverMoreThanAsked) {
  const int64_t piece = 1'686'952;
  EXPECT_EQ(probe_transfer(65536, piece).message_bytes, 65536); // smaller than a piece: one
  EXPECT_EQ(probe_transfer(65536, piece).messages, 1);
  const ProbeTransfer t = probe_transfer(4 << 20, piece); // 2 pieces, not 3 (over 4 MiB)
  EXPECT_EQ(t.message_bytes, piece);
  EXPECT_EQ(t.messages, 2);
  // A tiny piece: messages of kFirstProbeBytes, as many as fit.
  EXPECT_EQ(probe_transfer(1 << 20, 1000).message_bytes, kFirstProbeBytes);
  EXPECT_EQ(probe_transfer(1 << 20, 1000).messages, 16);
}

TEST(ProbeSchedule, RatesAreExactOnlyFromLongEnoughTransfers) {
  EXPECT_DOUBLE_EQ(transfer_rate(1e6, 0.011, 0.001), 1e8);
  EXPECT_DOUBLE_EQ(transfer_rate(1e6, 0.001, 0.002), 4e9); // jitter: capped, still positive
  EXPECT_EQ(rate_bound(0.061, 0.001, 100e6, 0), RateBound::kExact);
  // 10 ms: a burst could be in it, unless the rate still rose with the transfer's size.
  EXPECT_EQ(rate_bound(0.011, 0.001, 100e6, 0), RateBound::kAtMost);
  EXPECT_EQ(rate_bound(0.011, 0.001, 100e6, 150e6), RateBound::kAtMost);
  EXPECT_EQ(rate_bound(0.011, 0.001, 100e6, 60e6), RateBound::kAtLeast);
  EXPECT_EQ(rate_bound(0.001, 0.002, 4e9, 0), RateBound::kAtLeast); // the round trip was most
  EXPECT_STREQ(rate_bound_name(RateBound::kExact), "exact");
  EXPECT_STREQ(rate_bound_name(RateBound::kAtLeast), "at_least");
  EXPECT_STREQ(rate_bound_name(RateBound::kAtMost), "at_most");
}

TEST(CostModel, TrainerTransferIsItsBytesOverItsMeasuredLinks) {
  TrainerSpeed t = linked(1, 100, 50e6, kGbit); // 50 MB up and down at 125 MB/s
  t.links[0].latency_seconds = 0.001;
  EXPECT_NEAR(trainer_transfer_seconds(t), 0.4 + 0.4 + 0.002, 1e-12);
  t.measured_comm_seconds = 0.25; // rank 0's measurement replaces the estimate
  EXPECT_DOUBLE_EQ(trainer_transfer_seconds(t), 0.25);
  TrainerSpeed assumed{1, "h", 100, 0.7, {}, -1}; // no probe: the fixed assumption
  EXPECT_DOUBLE_EQ(trainer_transfer_seconds(assumed), 0.7);
}

TEST(CostModel, NTrainersIntoOneAggregatorCostNTimesItsLink) {
  // 4 trainers of 10 MB each into one aggregator at 1 Gbit/s: its link carries 40 MB up and
  // 40 MB down after the equal compute of 8 micro-batches of 32 at 1000 samples/s each.
  std::vector<TrainerSpeed> t;
  for (int i = 1; i <= 4; ++i)
    t.push_back(linked(i, 1000, 10e6, kGbit));
  const std::vector<int64_t> k{2, 2, 2, 2};
  const RoundEstimate one = estimate_round({t[0]}, {8}, 32, aggregator_rates({t[0]}));
  const RoundEstimate four = estimate_round(t, k, 32, aggregator_rates(t));
  const double compute = 64.0 / 1000, link = 2 * 10e6 / kGbit;
  EXPECT_NEAR(four.compute_seconds, compute, 1e-12);
  EXPECT_NEAR(one.seconds - 4 * compute, link, 1e-9);
  EXPECT_NEAR(four.aggregator_seconds, compute + 4 * link, 1e-9);
  EXPECT_NEAR(four.seconds, compute + 4 * link, 1e-9); // the shared link is the bottleneck
  EXPECT_GT(four.aggregator_seconds, four.trainer_seconds);
}

TEST(CostModel, CoLocatedAggregatorsShareTheLoadAndSameHostPairsDoNotLoadTheLink) {
  // n = 4 hosts, each with one trainer and one of A = 4 aggregators (--map-by node): aggregator j
  // gets a quarter of the bytes of the n - 1 = 3 off-host trainers, (n - 1) / A of one link.
  std::vector<TrainerSpeed> t;
  for (int i = 0; i < 4; ++i)
    t.push_back(linked(i + 4, 1000, 10e6, kGbit, 4, i));
  const std::vector<int64_t> k{2, 2, 2, 2};
  const RoundEstimate e = estimate_round(t, k, 32, aggregator_rates(t));
  const double compute = 64.0 / 1000, link = 2 * 10e6 / kGbit;
  EXPECT_NEAR(e.aggregator_seconds - compute, link * 3.0 / 4.0, 1e-9);
  // Everyone on one host: no network link is loaded at all.
  std::vector<TrainerSpeed> local;
  for (int i = 0; i < 4; ++i)
    local.push_back(linked(i + 1, 1000, 10e6, 10 * kGbit, 1, 0));
  EXPECT_TRUE(aggregator_rates(local).empty());
  EXPECT_DOUBLE_EQ(estimate_round(local, k, 32, aggregator_rates(local)).aggregator_seconds, 0);
}

TEST(CostModel, UploadsQueueInTheOrderComputeEnds) {
  // A trainer that finishes early has its upload done before the late one starts: the link
  // then adds only the late one's upload (and all downloads) after the late compute.
  std::vector<TrainerSpeed> t{linked(1, 2000, 1e6, 10e6), linked(2, 500, 1e6, 10e6)};
  const RoundEstimate e = estimate_round(t, {4, 4}, 32, aggregator_rates(t));
  // compute 0.064 and 0.256 s; uploads 0.1 s each; downloads 0.2 s.
  EXPECT_NEAR(e.aggregator_seconds, 0.256 + 0.1 + 0.2, 1e-9);
}

TEST(Plan, AFiftyMbitTrainerAmongGigabitOnesIsLeftOutWithItsFigures) {
  // 5 MB up and down: 0.08 s a round at 1 Gbit/s, 1.6 s at 50 Mbit/s, longer than the compute
  // its share would save (its 4 of 16 micro-batches take 1.28 s; without it the others 1.92 s).
  const double bytes = 5e6;
  std::vector<TrainerSpeed> t{linked(1, 100, bytes, kGbit, 1, 0), linked(2, 100, bytes, kGbit),
                              linked(3, 100, bytes, kGbit), linked(4, 100, bytes, 50 * kMbit)};
  const Plan p = make_plan(t, 16, 32, parse_balance("benchmark"));
  EXPECT_EQ(p.ranks, (std::vector<int>{1, 2, 3}));
  ASSERT_EQ(p.notes.size(), 1u);
  const std::string &note = p.notes[0];
  EXPECT_NE(note.find("rank 4 (host4) left out: its link 6."), std::string::npos) << note;
  EXPECT_NE(note.find("its transfer takes 1.600 s a round, and the round is estimated at 2.000 s "
                      "without it against 2.880 s with it"),
            std::string::npos)
      << note;
  EXPECT_NEAR(p.estimated_round_seconds, 2.0, 1e-9);
  // On a gigabit link like the others it stays.
  t[3] = linked(4, 100, bytes, kGbit);
  EXPECT_EQ(make_plan(t, 16, 32, parse_balance("benchmark")).ranks.size(), 4u);
}

TEST(Plan, WithoutLinksTheEstimateIsComputePlusTheFixedTransfer) {
  auto t = speeds({100, 100}, {0.5, 0.5});
  EXPECT_NEAR(estimated_round_seconds(t, {2, 2}, 10), 0.2 + 0.5, 1e-12);
}

// The cost model's figures for a round of 1 s compute and 4 s communication, an aggregator's
// shared link the bottleneck (its link 5 s, a trainer's own 2 s).
CommunicationFacts aggregator_bound_facts() {
  CommunicationFacts f;
  f.compute_seconds = 1;
  f.round_seconds = 5;
  f.model_round_seconds = 5;
  f.model_compute_seconds = 1;
  f.model_trainer_seconds = 2;
  f.model_aggregator_seconds = 5;
  f.upload_fraction = 0.5;
  f.slowest_trainer = "rank 2 (b), its link 100.0 MB/s";
  f.busiest_aggregator = "rank 0 (110.0 MB/s)";
  f.hosts = 4;
  return f;
}

TEST(Advice, CommunicationBoundNamesTheOptionsThatApplyWithTheirEstimates) {
  CommunicationFacts f = aggregator_bound_facts();
  f.round_seconds = 1.8; // 0.8 s moving: not communication-bound
  EXPECT_EQ(communication_advice(f), "");
  f = aggregator_bound_facts();
  const std::string text = communication_advice(f);
  EXPECT_NE(text.find("communication-bound: the estimated round takes 5.000 s, of which 1.000 s "
                      "compute and 4.000 s moving"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("bottleneck (cost model): aggregator rank 0 (110.0 MB/s)'s link"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("--wire-dtype bf16 (half the upload bytes): about 4.000 s a round (20% "
                      "less)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("--aggregators 4 with mpirun --map-by node"), std::string::npos) << text;
  EXPECT_NE(text.find("about 2.000 s a round (60% less)"), std::string::npos) << text;
  EXPECT_NE(text.find("--sync params --local-steps 4"), std::string::npos) << text;
  EXPECT_NE(text.find("about 2.000 s per global batch (60% less)"), std::string::npos) << text;
  // Already 16-bit, one host, params mode with 4 local steps: only more local steps apply.
  f.wire_bytes = 2;
  f.hosts = 1;
  f.params_mode = true;
  f.local_steps = 4;
  f.measured = true;
  const std::string params = communication_advice(f);
  EXPECT_EQ(params.find("--wire-dtype"), std::string::npos) << params;
  EXPECT_EQ(params.find("--aggregators"), std::string::npos) << params;
  EXPECT_NE(params.find("a measured round"), std::string::npos) << params;
  EXPECT_NE(params.find("--local-steps 8"), std::string::npos) << params;
  // per batch now 5/4 = 1.25 s; with 8: 1/4 + 4/8 = 0.75 s
  EXPECT_NE(params.find("about 0.750 s per global batch (40% less)"), std::string::npos) << params;
}

// A trainer's own link is the bottleneck: more aggregators would not help (it still sends all of
// its bytes through that link), so they are not suggested, and the trainer is named.
TEST(Advice, ATrainersOwnLinkIsNamedAndMoreAggregatorsAreNotSuggested) {
  CommunicationFacts f = aggregator_bound_facts();
  f.model_trainer_seconds = 5;
  f.model_aggregator_seconds = 3;
  const std::string text = communication_advice(f);
  EXPECT_NE(text.find("bottleneck (cost model): the own link of rank 2 (b), its link 100.0 MB/s"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("aggregator rank"), std::string::npos) << text;
  EXPECT_EQ(text.find("--aggregators"), std::string::npos) << text;
  // An aggregator that is busier but whose sharing over 4 hosts would still leave the trainer's
  // own link at 4.9 s: a gain under 5%, not suggested either.
  f.model_trainer_seconds = 4.9;
  f.model_aggregator_seconds = 5;
  EXPECT_EQ(communication_advice(f).find("--aggregators"), std::string::npos);
}

// Measured rounds far slower than the measured links explain (issue 23: a left-out trainer's
// traffic): no link is blamed, no option whose gain the links contradict is offered, and the
// longest measured transfer is named.
TEST(Advice, CommunicationTheLinksDoNotExplainBlamesNoLink) {
  CommunicationFacts f = aggregator_bound_facts();
  f.measured = true;
  f.compute_seconds = 0.15;
  f.round_seconds = 0.7;
  f.model_round_seconds = 0.233;
  f.model_compute_seconds = 0.15;
  f.model_trainer_seconds = 0.2;
  f.model_aggregator_seconds = 0.233;
  f.longest_measured = "rank 1 (t-h1), 0.520 s a round";
  const std::string text = communication_advice(f);
  EXPECT_NE(text.find("the links measured at start-up account for 0.083 s of it, so they are not "
                      "the cause"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("the longest measured transfer: rank 1 (t-h1), 0.520 s a round"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("bottleneck"), std::string::npos) << text;
  EXPECT_EQ(text.find("--aggregators"), std::string::npos) << text;
  EXPECT_EQ(text.find("--wire-dtype"), std::string::npos) << text; // saves 0.02 of 0.7 s
  // The same round explained by the links: the bottleneck is named as before.
  f.model_round_seconds = 0.7;
  f.model_aggregator_seconds = 0.7;
  EXPECT_NE(communication_advice(f).find("bottleneck (cost model): aggregator"), std::string::npos);
}

// --sync params/diloco: local steps by time. Speeds 1:2:5 with --local-steps 8: the fastest
// takes 8 steps of its 160 samples (local batch 20), the others as many steps of about that size
// as their samples allow; a trainer without samples takes none, one with a single sample one.
// --sync-seconds: trainers of 1000 and 3000 samples/s do a batch of 256 in 0.064 s, so a round of
// about 1 s is 16 local steps; the bounds hold.
TEST(LocalSteps, ForSecondsFollowTheSummedSpeed) {
  EXPECT_EQ(local_steps_for_seconds(1.0, 256, {1000, 3000}), 16);
  EXPECT_EQ(local_steps_for_seconds(0.001, 256, {1000, 3000}), 1);
  EXPECT_EQ(local_steps_for_seconds(1e9, 256, {1000, 3000}), 100000);
  EXPECT_EQ(local_steps_for_seconds(1.0, 256, {}), 1); // no speeds: sync every batch
}

TEST(LocalSteps, GoByEachTrainersTimeAtTheFastestTrainersLocalBatch) {
  EXPECT_EQ(local_steps_by_speed({32, 64, 160}, 8), (std::vector<int64_t>{2, 3, 8}));
  EXPECT_EQ(local_steps_by_speed({100, 100}, 4), (std::vector<int64_t>{4, 4}));
  EXPECT_EQ(local_steps_by_speed({0, 1, 512}, 8), (std::vector<int64_t>{0, 1, 8}));
  EXPECT_EQ(local_steps_by_speed({3, 4}, 8), (std::vector<int64_t>{3, 4})); // at most one a sample
  EXPECT_EQ(local_steps_by_speed({}, 8), (std::vector<int64_t>{}));
}

// --sync auto: exact while the round's communication stays within the fraction of its compute;
// otherwise the fewest local steps that bring one sync within that fraction of their compute.
TEST(SyncChoice, ExactWhileTheLinksKeepUpElseEnoughLocalStepsToHideThem) {
  RoundEstimate round;
  round.compute_seconds = 0.1;
  round.seconds = 0.12; // 0.02 s on the wire: 0.2 of compute
  SyncChoice c = choose_sync(round, 0.25, 0);
  EXPECT_TRUE(c.exact);
  EXPECT_EQ(c.local_steps, 1);
  EXPECT_NEAR(c.comm_seconds, 0.02, 1e-12);
  round.seconds = 0.46; // 0.36 s on the wire (a ResNet-18 gradient at 1 Gbit/s): 3.6x compute
  c = choose_sync(round, 0.25, 0);
  EXPECT_FALSE(c.exact);
  EXPECT_EQ(c.local_steps, 15); // ceil(0.36 / 0.025) = 15: 0.36 s per 1.5 s of compute
  EXPECT_EQ(choose_sync(round, 0.25, 8).local_steps, 8); // --local-steps given: kept
  round.seconds = 0.126;                                 // just over: at least 2 steps, never 1
  EXPECT_EQ(choose_sync(round, 0.25, 0).local_steps, 2);
  round.seconds = 1e6; // a link that barely moves: capped
  EXPECT_EQ(choose_sync(round, 0.25, 0).local_steps, 1000);
  round.compute_seconds = 0; // no compute figure: nothing to hide the wire behind
  round.seconds = 0.01;
  EXPECT_EQ(choose_sync(round, 0.25, 0).local_steps, 1000);
}
