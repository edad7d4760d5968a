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

double trainer_transfer_seconds(const TrainerSpeed &t) {
  if (t.measured_comm_seconds >= 0)
    return t.measured_comm_seconds;
  double seconds = t.comm_seconds;
  for (const LinkCost &l : t.links)
    seconds += l.up_bytes / std::max(l.up_bytes_per_sec, 1e-9) +
               l.down_bytes / std::max(l.down_bytes_per_sec, 1e-9) + 2 * l.latency_seconds;
  return seconds;
}

std::vector<AggregatorRate> aggregator_rates(const std::vector<TrainerSpeed> &trainers) {
  std::vector<AggregatorRate> rates;
  for (const TrainerSpeed &t : trainers)
    for (const LinkCost &l : t.links) {
      if (l.same_host || l.aggregator < 0)
        continue;
      if (static_cast<size_t>(l.aggregator) >= rates.size())
        rates.resize(static_cast<size_t>(l.aggregator) + 1);
      AggregatorRate &r = rates[static_cast<size_t>(l.aggregator)];
      r.up_bytes_per_sec = std::max(r.up_bytes_per_sec, l.up_bytes_per_sec);
      r.down_bytes_per_sec = std::max(r.down_bytes_per_sec, l.down_bytes_per_sec);
    }
  return rates;
}

namespace {
// Aggregator j's link: uploads queue in the order the trainers' compute ends (ties by rank),
// each starting no earlier than its trainer's compute end; then the parameters go back.
double aggregator_link_seconds(const std::vector<TrainerSpeed> &trainers,
                               const std::vector<double> &compute, int j, const AggregatorRate &r) {
  std::vector<std::pair<double, double>> uploads; // (compute end, seconds on the link)
  double down = 0;
  for (size_t i = 0; i < trainers.size(); ++i)
    for (const LinkCost &l : trainers[i].links)
      if (l.aggregator == j && !l.same_host) {
        uploads.emplace_back(compute[i], l.up_bytes / std::max(r.up_bytes_per_sec, 1e-9));
        down += l.down_bytes / std::max(r.down_bytes_per_sec, 1e-9);
      }
  if (uploads.empty())
    return 0;
  std::stable_sort(uploads.begin(), uploads.end(),
                   [](const auto &a, const auto &b) { return a.first < b.first; });
  double busy_until = 0;
  for (const auto &[ready, seconds] : uploads)
    busy_until = std::max(busy_until, ready) + seconds;
  return busy_until + down;
}
} // namespace

RoundEstimate estimate_round(const std::vector<TrainerSpeed> &trainers,
                             const std::vector<int64_t> &micro_batches, int64_t micro_batch,
                             const std::vector<AggregatorRate> &rates) {
  RoundEstimate e;
  std::vector<double> compute(trainers.size());
  for (size_t i = 0; i < trainers.size(); ++i) {
    const TrainerSpeed &t = trainers[i];
    compute[i] =
        static_cast<double>(micro_batches[i] * micro_batch) / std::max(t.samples_per_sec, 1e-9);
    e.compute_seconds = std::max(e.compute_seconds, compute[i]);
    const double own = compute[i] + trainer_transfer_seconds(t);
    if (e.slowest_trainer < 0 || own > e.trainer_seconds) {
      e.trainer_seconds = own;
      e.slowest_trainer = static_cast<int>(i);
    }
    for (const LinkCost &l : t.links) {
      e.upload_seconds += l.up_bytes / std::max(l.up_bytes_per_sec, 1e-9);
      e.transfer_seconds += l.up_bytes / std::max(l.up_bytes_per_sec, 1e-9) +
                            l.down_bytes / std::max(l.down_bytes_per_sec, 1e-9);
    }
  }
  for (size_t j = 0; j < rates.size(); ++j) {
    const double link = aggregator_link_seconds(trainers, compute, static_cast<int>(j), rates[j]);
    if (link > e.aggregator_seconds) {
      e.aggregator_seconds = link;
      e.busiest_aggregator = static_cast<int>(j);
    }
  }
  e.seconds = std::max(e.trainer_seconds, e.aggregator_seconds);
  return e;
}

double estimated_round_seconds(const std::vector<TrainerSpeed> &trainers,
                               const std::vector<int64_t> &micro_batches, int64_t micro_batch) {
  return estimate_round(trainers, micro_batches, micro_batch, aggregator_rates(trainers)).seconds;
}

namespace {
// "its link 6.2 MB/s up": the slowest of the trainer's off-host links, or what was assumed.
std::string link_text(const TrainerSpeed &t) {
  double slowest = 0;
  for (const LinkCost &l : t.links)
    if (slowest == 0 || std::min(l.up_bytes_per_sec, l.down_bytes_per_sec) < slowest)
      slowest = std::min(l.up_bytes_per_sec, l.down_bytes_per_sec);
  if (t.links.empty())
    return "no link measured";
  return fmt::format("its link {:.1f} MB/s", slowest / 1e6);
}
} // namespace

Plan make_plan(const std::vector<TrainerSpeed> &trainers, int64_t micro_batches_per_round,
               int64_t micro_batch, const BalancePolicy &policy) {
  if (trainers.empty())
    throw UserError("no trainers to plan for");
  std::vector<TrainerSpeed> active = trainers;
  // Aggregator links are rated from every trainer offered, so that leaving one out in a
  // candidate does not change the rate the others see.
  const std::vector<AggregatorRate> rates = aggregator_rates(trainers);
  auto estimate = [&](const std::vector<TrainerSpeed> &set, const std::vector<int64_t> &k) {
    return estimate_round(set, k, micro_batch, rates).seconds;
  };
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
      double with_all = estimate(active, split(active));
      size_t best = active.size();
      double best_time = with_all;
      for (size_t drop = 0; active.size() > 1 && drop < active.size(); ++drop) {
        std::vector<TrainerSpeed> without = active;
        without.erase(without.begin() + static_cast<std::ptrdiff_t>(drop));
        double t = estimate(without, split(without));
        if (t < best_time) {
          best_time = t;
          best = drop;
        }
      }
      if (best == active.size())
        break;
      const TrainerSpeed &gone = active[best];
      plan.notes.push_back(fmt::format(
          "rank {} ({}) left out: {}, its transfer takes {:.3f} s a round, and the round is "
          "estimated at {:.3f} s without it against {:.3f} s with it",
          gone.rank, gone.host, link_text(gone), trainer_transfer_seconds(gone), best_time,
          with_all));
      active.erase(active.begin() + static_cast<std::ptrdiff_t>(best));
    }
    std::sort(active.begin(), active.end(),
              [](const TrainerSpeed &a, const TrainerSpeed &b) { return a.rank < b.rank; });
  }
  plan.micro_batches = split(active);
  for (const TrainerSpeed &t : active)
    plan.ranks.push_back(t.rank);
  plan.estimated_round_seconds = estimate(active, plan.micro_batches);
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

int64_t local_steps_for_seconds(double seconds, int64_t global_batch,
                                const std::vector<double> &samples_per_sec) {
  double total = 0;
  for (double s : samples_per_sec)
    total += std::max(0.0, s);
  if (total <= 0 || global_batch <= 0)
    return 1;
  const double batch_seconds = static_cast<double>(global_batch) / total;
  return std::clamp<int64_t>(std::llround(seconds / batch_seconds), 1, 100000);
}

SyncChoice choose_sync(const RoundEstimate &exact_round, double max_fraction,
                       int64_t given_local_steps) {
  SyncChoice choice;
  choice.compute_seconds = std::max(0.0, exact_round.compute_seconds);
  choice.comm_seconds = std::max(0.0, exact_round.seconds - choice.compute_seconds);
  const double allowed = max_fraction * choice.compute_seconds;
  if (choice.comm_seconds <= allowed)
    return choice;
  choice.exact = false;
  constexpr int64_t kMost = 1000;
  const double needed = allowed > 0 ? std::ceil(choice.comm_seconds / allowed) : kMost;
  choice.local_steps =
      given_local_steps > 0
          ? given_local_steps
          : std::clamp<int64_t>(static_cast<int64_t>(std::min<double>(needed, kMost)), 2, kMost);
  return choice;
}

std::vector<int64_t> local_steps_by_speed(const std::vector<int64_t> &counts, int64_t local_steps) {
  const int64_t most = counts.empty() ? 0 : *std::max_element(counts.begin(), counts.end());
  std::vector<int64_t> steps;
  for (int64_t count : counts) {
    if (count <= 0) {
      steps.push_back(0);
      continue;
    }
    const auto share =
        static_cast<double>(local_steps) * static_cast<double>(count) / static_cast<double>(most);
    steps.push_back(std::clamp<int64_t>(std::llround(share), 1, count));
  }
  return steps;
}

} // namespace hetrain
