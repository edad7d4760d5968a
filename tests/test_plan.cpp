// The plan: largest remainder, the balance policies, the cost model, round sharding, and the
// re-planning policy (smoothing, the 5% rule, the link assumption).
#include "hetrain/common/error.h"
#include "hetrain/schedule/plan.h"
#include "hetrain/schedule/replan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

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
    out.push_back({static_cast<int>(i + 1), "host" + std::to_string(i + 1), s[i], comm[i]});
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
