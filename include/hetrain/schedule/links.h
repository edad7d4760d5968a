// The network between trainers and aggregators (DESIGN §3, §4): what the link probe measured and
// the order in which it measures (the advice for a communication-bound round is advice.h). Pure
// functions, so the probe's schedule is unit-tested without MPI; the MPI exchange that fills
// LinkFigures is src/run/link_probe.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

// One trainer-aggregator pair as the probe measured it (world ranks). Rates in MB/s (1e6 bytes/s);
// latency is one way (half the median round trip of 8-byte ping-pongs).
struct LinkFigures {
  int trainer_rank = 0, aggregator_rank = 0;
  bool same_host = false;
  double latency_ms = 0;
  double up_mb_per_s = 0;   // trainer -> aggregator
  double down_mb_per_s = 0; // aggregator -> trainer
  int64_t message_bytes = 0;
};

// One pair of a probe round: trainer index (0..n-1, job order) and aggregator (0..A-1).
struct ProbePair {
  int trainer = 0, aggregator = 0;
};

// The probe's rounds: max(n, A) of them; in round r trainer i talks to aggregator (i + r) mod
// max(n, A) when that is < A. So every pair comes exactly once, no aggregator serves two trainers
// at a time (they would share its link) and no trainer talks to two aggregators at a time. Every
// rank computes the same schedule.
std::vector<std::vector<ProbePair>> probe_schedule(int trainers, int aggregators);

// The probe's first message size, measured on every pair before the real one.
constexpr int64_t kFirstProbeBytes = 64 * 1024;

// The message for the bandwidth measurement of an off-host pair: the real piece size
// (`piece_bytes`) when an up and a down message of it fit in `seconds_left` at the rate the first
// message showed (`bytes_per_second`, the slower direction), else the largest that fits (at
// least kFirstProbeBytes, which was measured already: then the first message's figures stand).
int64_t probe_message_bytes(int64_t piece_bytes, double bytes_per_second, double seconds_left);

// A transfer rate from `bytes` that took `seconds` of which `round_trip` was the round trip of an
// empty message: never above bytes / (seconds / 4), so a clock's jitter on a fast local link
// cannot produce an absurd figure.
double transfer_rate(double bytes, double seconds, double round_trip);

} // namespace hetrain
