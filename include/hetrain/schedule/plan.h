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

// One trainer's traffic with one aggregator in a round, and the measured link it crosses.
struct LinkCost {
  int aggregator = 0;                  // 0..A-1 (its world rank)
  double up_bytes = 0, down_bytes = 0; // per round: its upload pieces, the parameters back
  double up_bytes_per_sec = 0, down_bytes_per_sec = 0; // the pair's rates (LinkFigures)
  double latency_seconds = 0;                          // one way
  bool same_host = false; // shared memory: does not load the aggregator's network link
};

struct TrainerSpeed {
  int rank = 0;
  std::string host;
  double samples_per_sec = 0; // measured by the training probe, later smoothed from rounds
  // Per round, fixed: without a link probe, gradients up and parameters down at an assumed
  // 1 GB/s (replan.h transfer_seconds); with one, 0 (the links below say it).
  double comm_seconds = 0;
  std::vector<LinkCost> links; // one per aggregator, from the link probe
  // Rank 0's smoothed measurement of this trainer's transfer and wait per round (arrival of its
  // upload minus its compute); negative until measured. Replaces the links' estimate of its own
  // transfer once there.
  double measured_comm_seconds = -1;
};

struct Plan {
  std::vector<int> ranks;             // trainers that take part, in rank order
  std::vector<int64_t> micro_batches; // per trainer in `ranks`, summing to the round's
  double estimated_round_seconds = 0; // the slowest trainer or aggregator link (RoundEstimate)
  std::vector<std::string> notes;     // why trainers were left out, for the log
};

// A trainer's own transfer per round: comm_seconds plus, over its links, up bytes / up rate +
// down bytes / down rate + 2 latencies (it sends to all aggregators through its one link, so
// they add up); or the measured figure once there is one.
double trainer_transfer_seconds(const TrainerSpeed &trainer);

// Each aggregator's network link rate (bytes/s; up = into it): the best rate measured from an
// off-host trainer to it, 0 when no off-host trainer has a link to it. The best, because a
// pair's rate is limited by both ends: the fastest pair shows the aggregator's own link best.
struct AggregatorRate {
  double up_bytes_per_sec = 0, down_bytes_per_sec = 0;
};
std::vector<AggregatorRate> aggregator_rates(const std::vector<TrainerSpeed> &trainers);

// The cost model of a round (DESIGN §4):
//   trainer i:   compute c_i = k_i*m/s_i, then its own transfer t_i    -> c_i + t_i
//   aggregator j: its link carries the uploads of every off-host trainer, in the order their
//                compute ends (a trainer's upload starts at c_i and waits behind earlier ones),
//                then the parameters back to all of them        -> L_j + sum down bytes / rate
//   round = max(max_i (c_i + t_i), max_j aggregator j)
struct RoundEstimate {
  double seconds = 0;
  double compute_seconds = 0;    // max_i c_i
  double trainer_seconds = 0;    // max_i (c_i + t_i)
  double aggregator_seconds = 0; // max_j over aggregator links
  double upload_seconds = 0;     // of the communication: the uploads (for the advice)
  double transfer_seconds = 0;   // uploads and downloads, summed like upload_seconds
  int slowest_trainer = -1;      // index of the trainer whose c_i + t_i is largest
  int busiest_aggregator = -1;   // index of the aggregator whose link takes longest
};
RoundEstimate estimate_round(const std::vector<TrainerSpeed> &trainers,
                             const std::vector<int64_t> &micro_batches, int64_t micro_batch,
                             const std::vector<AggregatorRate> &rates);

// estimate_round(...).seconds with the aggregator rates of these trainers.
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

// --sync params/diloco: how many local steps each trainer takes over its `counts[j]` samples of
// a round. Local work goes by time, not by count (Asynchronous Local-SGD, arXiv 2401.09135): the
// trainer with the most samples (the fastest) takes `local_steps`, and every other keeps its
// local batch, so it takes as many steps as its samples allow in the same time:
// round(local_steps * counts[j] / max count), at least 1 and at most counts[j]; 0 without
// samples. A trainer at a fifth of the speed thus takes a fifth of the steps on batches of the
// same size, not as many steps on batches five times smaller at the same learning rate.
std::vector<int64_t> local_steps_by_speed(const std::vector<int64_t> &counts, int64_t local_steps);

// --sync-seconds S: the --local-steps L whose round takes about S seconds of compute. One global
// batch of `global_batch` samples, shared by speed, takes global_batch / (sum of the trainers'
// samples/s); L = round(S / that), at least 1 and at most 100000. A trainer the plan leaves out
// makes the real batch slower, so the round a little longer than S.
int64_t local_steps_for_seconds(double seconds, int64_t global_batch,
                                const std::vector<double> &samples_per_sec);

// --sync auto (DESIGN §5 "Choosing the sync mode"), from the start-up plan's exact round (one
// global batch: compute, then every upload and download over the measured links): exact gradients
// when its communication (the round minus its compute) is at most `max_fraction` of its compute;
// otherwise local steps with an outer step, L steps between syncs so that one sync costs at most
// that fraction of L steps' compute: L = ceil(communication / (max_fraction x compute)), within
// [2, 1000], or `given_local_steps` when > 0.
struct SyncChoice {
  bool exact = true;
  int64_t local_steps = 1;
  double comm_seconds = 0, compute_seconds = 0; // of the exact round
};
SyncChoice choose_sync(const RoundEstimate &exact_round, double max_fraction,
                       int64_t given_local_steps);

} // namespace hetrain
