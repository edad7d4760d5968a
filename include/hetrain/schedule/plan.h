// The plan (DESIGN §4): how many micro-batches each trainer computes per round. Pure functions of
// measured speeds, so they are planned apart from the loop that executes them and unit-tested.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

// Splits `total` items over `weights` by largest remainder: each gets at least `minimum`, the
// rest follows the weights as closely as integers allow; ties go to the lower index, so every
// rank computes the same split. Zero or negative weights count as zero; all-zero weights split
// evenly. Throws UserError when total < minimum * weights.size().
std::vector<int64_t> largest_remainder(const std::vector<double> &weights, int64_t total,
                                       int64_t minimum = 1);

// --balance benchmark | equal | static:a,b,c
struct BalancePolicy {
  enum class Kind { Benchmark, Equal, Static } kind = Kind::Benchmark;
  std::vector<double> static_shares; // Static: one positive weight per trainer
};
BalancePolicy parse_balance(const std::string &text); // throws UserError naming the problem

struct TrainerSpeed {
  int rank = 0;
  std::string host;
  double samples_per_sec = 0; // measured by the training probe, later smoothed from rounds
  double comm_seconds = 0;    // per round: gradients up and parameters down at its bandwidth
};

struct Plan {
  std::vector<int> ranks;             // trainers that take part, in rank order
  std::vector<int64_t> micro_batches; // per trainer in `ranks`, summing to the round's
  double estimated_round_seconds = 0; // the slowest trainer's compute + transfer
  std::vector<std::string> notes;     // why trainers were left out, for the log
};

// Estimated round time of a split: max over trainers of k_i*m/s_i + comm_i.
double estimated_round_seconds(const std::vector<TrainerSpeed> &trainers,
                               const std::vector<int64_t> &micro_batches, int64_t micro_batch);

// Plans a round of `micro_batches_per_round` micro-batches of `micro_batch` samples. With the
// benchmark policy, a trainer whose transfer costs more than its compute saves is left out (the
// round estimate without it is lower), and a note says so; at least one trainer always stays.
Plan make_plan(const std::vector<TrainerSpeed> &trainers, int64_t micro_batches_per_round,
               int64_t micro_batch, const BalancePolicy &policy);

// The samples of one round: trainer j takes `counts[j]` consecutive positions of the epoch's
// permutation starting at `offsets[j]`. A full round gives k_j*m each; the last, shorter round
// of an epoch is split in proportion to k_j, so every sample is used exactly once.
struct RoundShard {
  std::vector<int64_t> offsets, counts;
};
RoundShard shard_round(const std::vector<int64_t> &micro_batches, int64_t micro_batch,
                       int64_t round_start, int64_t round_samples);

} // namespace hetrain
