#include "hetrain/schedule/plan.h"

#include "hetrain/common/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

namespace hetrain {

std::vector<int64_t> largest_remainder(const std::vector<double> &weights, int64_t total,
                                       int64_t minimum) {
  const auto n = static_cast<int64_t>(weights.size());
  if (n == 0)
    return {};
  if (total < minimum * n)
    throw UserError(fmt::format("cannot give each of {} trainers at least {} of {} micro-batches",
                                n, minimum, total));
  std::vector<double> w(weights.size());
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = std::isfinite(weights[i]) && weights[i] > 0 ? weights[i] : 0.0;
  double sum = std::accumulate(w.begin(), w.end(), 0.0);
  if (sum <= 0) {
    std::fill(w.begin(), w.end(), 1.0);
    sum = static_cast<double>(n);
  }
  // Ideal quotas, floored and raised to the minimum; then repair the sum one item at a time,
  // taking from the most over-served or giving to the most under-served (lower index on ties).
  std::vector<double> quota(w.size());
  std::vector<int64_t> out(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    quota[i] = static_cast<double>(total) * w[i] / sum;
    out[i] = std::max<int64_t>(minimum, static_cast<int64_t>(std::floor(quota[i])));
  }
  int64_t assigned = std::accumulate(out.begin(), out.end(), int64_t{0});
  while (assigned > total) {
    size_t best = w.size();
    for (size_t i = 0; i < w.size(); ++i)
      if (out[i] > minimum && (best == w.size() || out[i] - quota[i] > out[best] - quota[best]))
        best = i;
    --out[best];
    --assigned;
  }
  while (assigned < total) {
    size_t best = 0;
    for (size_t i = 1; i < w.size(); ++i)
      if (quota[i] - out[i] > quota[best] - out[best])
        best = i;
    ++out[best];
    ++assigned;
  }
  return out;
}

BalancePolicy parse_balance(const std::string &text) {
  BalancePolicy policy;
  if (text == "benchmark")
    return policy;
  if (text == "equal") {
    policy.kind = BalancePolicy::Kind::Equal;
    return policy;
  }
  if (text.rfind("static:", 0) == 0) {
    policy.kind = BalancePolicy::Kind::Static;
    std::stringstream list(text.substr(7));
    std::string item;
    while (std::getline(list, item, ',')) {
      char *end = nullptr;
      double value = std::strtod(item.c_str(), &end);
      if (item.empty() || end == nullptr || *end != '\0' || !std::isfinite(value) || value <= 0)
        throw UserError(
            fmt::format("--balance {}: share '{}' is not a positive number", text, item));
      policy.static_shares.push_back(value);
    }
    if (policy.static_shares.empty())
      throw UserError(fmt::format("--balance {}: no shares given", text));
    return policy;
  }
  throw UserError(fmt::format("--balance: '{}' is not benchmark, equal or static:a,b,...", text));
}

double estimated_round_seconds(const std::vector<TrainerSpeed> &trainers,
                               const std::vector<int64_t> &micro_batches, int64_t micro_batch) {
  double worst = 0;
  for (size_t i = 0; i < trainers.size(); ++i) {
    double speed = std::max(trainers[i].samples_per_sec, 1e-9);
    double t =
        static_cast<double>(micro_batches[i] * micro_batch) / speed + trainers[i].comm_seconds;
    worst = std::max(worst, t);
  }
  return worst;
}

Plan make_plan(const std::vector<TrainerSpeed> &trainers, int64_t micro_batches_per_round,
               int64_t micro_batch, const BalancePolicy &policy) {
  if (trainers.empty())
    throw UserError("no trainers to plan for");
  std::vector<TrainerSpeed> active = trainers;
  Plan plan;
  auto split = [&](const std::vector<TrainerSpeed> &set) {
    std::vector<double> weights;
    for (size_t i = 0; i < set.size(); ++i) {
      if (policy.kind == BalancePolicy::Kind::Equal)
        weights.push_back(1.0);
      else if (policy.kind == BalancePolicy::Kind::Static)
        weights.push_back(policy.static_shares.at(i));
      else
        weights.push_back(set[i].samples_per_sec);
    }
    return largest_remainder(weights, micro_batches_per_round, 1);
  };
  if (policy.kind == BalancePolicy::Kind::Static && policy.static_shares.size() != trainers.size())
    throw UserError(fmt::format("--balance static: {} shares given for {} trainers",
                                policy.static_shares.size(), trainers.size()));
  if (static_cast<int64_t>(trainers.size()) > micro_batches_per_round &&
      policy.kind != BalancePolicy::Kind::Benchmark)
    throw UserError(fmt::format("{} trainers but only {} micro-batches a round: raise "
                                "--global-batch or lower --micro-batch",
                                trainers.size(), micro_batches_per_round));

  if (policy.kind == BalancePolicy::Kind::Benchmark) {
    // Keep only as many trainers as there are micro-batches (the fastest ones), then drop, one at
    // a time, the trainer whose absence shortens the estimated round the most.
    std::stable_sort(active.begin(), active.end(),
                     [](const TrainerSpeed &a, const TrainerSpeed &b) {
                       return a.samples_per_sec > b.samples_per_sec;
                     });
    while (static_cast<int64_t>(active.size()) > micro_batches_per_round) {
      const TrainerSpeed &gone = active.back();
      plan.notes.push_back(fmt::format("rank {} ({}) left out: a round has only {} micro-batches "
                                       "and faster trainers take them",
                                       gone.rank, gone.host, micro_batches_per_round));
      active.pop_back();
    }
    for (;;) {
      double with_all = estimated_round_seconds(active, split(active), micro_batch);
      size_t best = active.size();
      double best_time = with_all;
      for (size_t drop = 0; active.size() > 1 && drop < active.size(); ++drop) {
        std::vector<TrainerSpeed> without = active;
        without.erase(without.begin() + static_cast<std::ptrdiff_t>(drop));
        double t = estimated_round_seconds(without, split(without), micro_batch);
        if (t < best_time) {
          best_time = t;
          best = drop;
        }
      }
      if (best == active.size())
        break;
      const TrainerSpeed &gone = active[best];
      plan.notes.push_back(fmt::format(
          "rank {} ({}) left out: its transfer takes {:.3f} s a round, and the round is "
          "estimated at {:.3f} s without it against {:.3f} s with it",
          gone.rank, gone.host, gone.comm_seconds, best_time, with_all));
      active.erase(active.begin() + static_cast<std::ptrdiff_t>(best));
    }
    std::sort(active.begin(), active.end(),
              [](const TrainerSpeed &a, const TrainerSpeed &b) { return a.rank < b.rank; });
  }
  plan.micro_batches = split(active);
  for (const TrainerSpeed &t : active)
    plan.ranks.push_back(t.rank);
  plan.estimated_round_seconds = estimated_round_seconds(active, plan.micro_batches, micro_batch);
  return plan;
}

RoundShard shard_round(const std::vector<int64_t> &micro_batches, int64_t micro_batch,
                       int64_t round_start, int64_t round_samples) {
  RoundShard shard;
  const int64_t full =
      std::accumulate(micro_batches.begin(), micro_batches.end(), int64_t{0}) * micro_batch;
  if (round_samples >= full) {
    for (int64_t k : micro_batches)
      shard.counts.push_back(k * micro_batch);
  } else {
    std::vector<double> weights(micro_batches.begin(), micro_batches.end());
    shard.counts = largest_remainder(weights, round_samples, 0);
  }
  int64_t offset = round_start;
  for (int64_t count : shard.counts) {
    shard.offsets.push_back(offset);
    offset += count;
  }
  return shard;
}

} // namespace hetrain
