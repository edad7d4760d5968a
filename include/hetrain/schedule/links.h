// The network between trainers and aggregators (DESIGN §3, §4): what the link probe measured and
// the order in which it measures (the advice for a communication-bound round is advice.h). Pure
// functions, so the probe's schedule is unit-tested without MPI; the MPI exchange that fills
// LinkFigures is src/run/link_probe.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hetrain {

// How far a measured rate holds. Short of a transfer long enough to trust (the budget ran out),
// the trend of the last two says which way the figure errs. kAtLeast: the rate still rose with
// the transfer's size (the round trip, TCP's window held it back), or the round trip took most
// of the transfer (transfer_rate's cap applied): the link is faster. kAtMost: a single short
// transfer, or one slower than its smaller predecessor: a short transfer can pass in a shaper's
// burst or into buffers faster than the link sustains. Noise on a busy host only ever lowers a
// figure. The link table prints ">=" / "<=" before a bound.
enum class RateBound : int { kExact = 0, kAtLeast = 1, kAtMost = 2 };
// "exact", "at_least", "at_most" (the JSON form).
const char *rate_bound_name(RateBound bound);

// One trainer-aggregator pair as the probe measured it (world ranks). Rates in MB/s (1e6 bytes/s);
// latency is one way (half the median round trip of 8-byte ping-pongs).
struct LinkFigures {
  int trainer_rank = 0, aggregator_rank = 0;
  bool same_host = false;
  double latency_ms = 0;
  double up_mb_per_s = 0;   // trainer -> aggregator
  double down_mb_per_s = 0; // aggregator -> trainer
  int64_t message_bytes = 0;
  RateBound up_bound = RateBound::kExact, down_bound = RateBound::kExact;
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

// The probe's first transfer each way, on every pair: one message (Open MPI's TCP eager limit).
constexpr int64_t kFirstProbeBytes = 64 * 1024;
// Each transfer of a direction is at most this many times the last: a rate measured on a short
// transfer can be too high (a burst), and the growth bounds what that costs the budget.
constexpr int64_t kProbeGrowth = 4;
// A transfer whose moving part (elapsed - round trip) lasted this long gives an exact rate. The
// simulated LAN's tbf burst is 1 ms at the rate, at least 4 KiB (1.7 ms at 20 Mbit/s), so within
// 4%; with 20 ms, 64 KiB on 20 Mbit/s (27 ms) counted and measured up to 13% high.
constexpr double kTrustedTransferSeconds = 0.05;

// The bytes of a direction's next transfer: kFirstProbeBytes first (`last_bytes` 0), then up to
// kProbeGrowth times the last, fewer when that would not end within `seconds_left` at the rate
// measured so far (`bytes_per_second`) after `round_trip`. 0: stop, when no time is left or not
// even twice the last fits (a transfer hardly larger tells little more). The first transfer is
// sized only when a rate is given (the download's first, by the upload's rate): then 0 when
// kFirstProbeBytes do not fit, else the upload's first is the one unsized transfer of a pair.
int64_t next_probe_bytes(int64_t last_bytes, double bytes_per_second, double round_trip,
                         double seconds_left);

// A transfer of about `total_bytes` as messages of the real piece size (`piece_bytes`, at least
// kFirstProbeBytes) back to back, as a round sends them: never more than `total_bytes` in all
// (so that it keeps to the time it was sized for), at least one message.
struct ProbeTransfer {
  int64_t message_bytes = 0, messages = 0;
};
ProbeTransfer probe_transfer(int64_t total_bytes, int64_t piece_bytes);

// What the rate `rate` of a transfer that took `seconds` (round trip `round_trip`) is worth:
// kExact when its moving part lasted kTrustedTransferSeconds, else a bound as RateBound says
// (`previous_rate`: the direction's transfer before, 0 when there was none).
RateBound rate_bound(double seconds, double round_trip, double rate, double previous_rate);

// A transfer rate from `bytes` that took `seconds` of which `round_trip` was the round trip of an
// empty message: never above bytes / (seconds / 4), so a clock's jitter on a fast local link
// cannot produce an absurd figure.
double transfer_rate(double bytes, double seconds, double round_trip);

} // namespace hetrain
