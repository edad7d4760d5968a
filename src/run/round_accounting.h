// What rank 0 learns from a completed round, kept apart from the loop that runs it: every
// trainer's totals and smoothed speed and transfer (the re-plans read them), the smoothed round
// and compute time, and the facts of the communication advice (schedule/advice.h). No MPI and no
// model here: tests/unit/test_run_parts.cpp checks it on a hand-made roster. Internal to
// src/run.
#pragma once

#include "hetrain/config/config.h"
#include "hetrain/schedule/advice.h"
#include "hetrain/schedule/plan.h"
#include "hetrain/schedule/replan.h"

#include "trainer_roster.h"

#include <string>
#include <vector>

namespace hetrain::run {

// Adds a completed round to the roster: a trainer out of it counts an out round of
// `round_seconds`; a working one adds its statistics (samples, compute, data wait, the wait for
// the round), its smoothed speed and speed noise, and its transfer as rank 0 saw it
// (`arrival_seconds[j]`, by roster index, < 0 unknown: the arrival of its last message minus its
// compute, smoothed like the speed). `round_number`: the global step the round completed.
// Returns the longest compute of the round.
double account_round(Roster &trainers, const std::vector<double> &arrival_seconds,
                     double round_seconds, int64_t round_number, int64_t micro_batch,
                     const ReplanPolicy &policy = {});

// The smoothed round and compute times the communication advice compares.
struct MeasuredRound {
  double round_seconds = -1, compute_seconds = -1; // -1: nothing measured yet
  void add(double round, double compute, const ReplanPolicy &policy = {});
};

// "rank 3 (h3), its link 1.7 MB/s": a trainer and the slowest of its measured off-host links.
std::string slowest_link_text(const TrainerState &t);
// "rank 3 (h3), 1.20 s a round": the trainer still in the job whose measured transfer is
// longest; empty before any was measured.
std::string longest_measured_transfer(const Roster &trainers);
// Distinct hosts of the trainers; `host_of`: by job rank.
int trainer_hosts(const Roster &trainers, const std::vector<int> &host_of);

// The advice's facts for the current plan: `estimate` and `rates` are the cost model's view from
// the probe's links alone (Coordinator::estimate_current(true, ...)); `round_seconds` and
// `compute_seconds` what was measured (`measured`), or the estimate at the start
// (`compute_seconds` < 0: the model's).
CommunicationFacts communication_facts(const TrainConfig &config, const RoundEstimate &estimate,
                                       const std::vector<AggregatorRate> &rates,
                                       const Roster &trainers, const Plan &plan,
                                       const std::vector<int> &host_of, double round_seconds,
                                       double compute_seconds, bool measured);

} // namespace hetrain::run
