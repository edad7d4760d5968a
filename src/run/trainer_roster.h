// Rank 0's view of the admitted trainers: one TrainerState each (what it reported, what it has
// done, what it is doing this round), and the small lookups the coordinator and the round
// executor share. Internal to src/run.
#pragma once

#include "hetrain/cluster/report_message.h"
#include "hetrain/comm/messages.h"
#include "hetrain/observe/gpu_monitor.h"
#include "hetrain/schedule/links.h"
#include "hetrain/schedule/plan.h"

#include <fmt/format.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hetrain::run {

struct TrainerState {
  // Who it is
  int world_rank = 0, job_rank = 0; // job rank: in the communicator of the admitted
  TrainerReport report;
  // What it has done (over the run)
  double speed = 0; // smoothed samples/s, from the probe, then from rounds
  double speed_variance = 0, last_round_speed = 0; // its rounds' noise (replan.h)
  int64_t samples = 0;
  double compute_seconds = 0, wait_seconds = 0;
  double data_wait_seconds = 0; // of compute_seconds: waiting for its loader
  int64_t last_round = 0;       // the last round it delivered (0 = none yet)
  int64_t micro_batch = 0;      // what it runs: less than --micro-batch after running out of memory
  bool lost = false;            // dropped by --on-trainer-loss continue
  bool left = false;            // left on its own signal after a round (a planned leave)
  // A trainer that joined the running job (hetrain join) is reached over an intercommunicator of
  // its own, where it is rank 0 of the remote group; the others over the job communicator.
  MPI_Comm joined = MPI_COMM_NULL;
  GpuSample gpu;                  // its GPU in the last round (NVML), when it has one
  std::vector<LinkFigures> links; // to each aggregator, from the link probe (empty: probe off)
  // Smoothed transfer and wait per round as rank 0 sees it (arrival of its upload minus its
  // compute); -1 until it has worked a round.
  double comm_seconds = -1;
  // Out of the plan (DESIGN §5): it holds the current parameters only while it is in the rounds;
  // rounds it sat out and their wall time.
  bool has_params = false; // false at the start and after kOut
  std::optional<std::chrono::steady_clock::time_point> told_out; // when kOut last went to it
  int64_t out_rounds = 0;
  int64_t overlapped_rounds = 0; // --sync-overlap: computed while the last sync was in flight
  double out_seconds = 0;
  // While out: its speed is measured every --rebalance-every rounds (kOut with a count); the
  // answer {samples, seconds, signal} lands here, tested after each round, never waited for. A
  // trainer that got SIGTERM/SIGUSR1 while out answers {0, 0, signal} and leaves (out_signal).
  int64_t rounds_since_measured = 0;
  std::array<double, 3> out_speed{};
  int out_signal = 0;
  MPI_Request out_speed_request = MPI_REQUEST_NULL;
  // This round (the coordinator decides these, the round executor acts on them)
  bool working = false;       // it has samples in the round
  bool uploading = false;     // its gradient sum (with --host-reduce: its host's) comes this round
  bool in_round = false;      // kRound or kSkip: it takes part and gets the parameters after
  bool refresh = false;       // it gets the current parameters before the round (it was out)
  bool send_command = false;  // its command goes out (kOut only when it leaves, then now and then)
  RoundCommand command;       // what it was told
  RoundStats stats;           // what it answered
  std::vector<float> buffers; // its BatchNorm buffers after its part
};
using Roster = std::vector<TrainerState>;
// No longer in the job: lost, or left on its own signal. Plans, rounds and the end skip it.
inline bool gone(const TrainerState &t) { return t.lost || t.left; }
// Where rank 0 reaches a trainer: the communicator, and its rank there.
inline MPI_Comm comm_of(const TrainerState &t, MPI_Comm job) {
  return t.joined != MPI_COMM_NULL ? t.joined : job;
}
inline int peer_of(const TrainerState &t) { return t.joined != MPI_COMM_NULL ? 0 : t.job_rank; }

// "rank 2 (node7)"
inline std::string name_of(const TrainerState &t) {
  return fmt::format("rank {} ({})", t.world_rank, t.report.host);
}

// The trainer with this job rank (plans name trainers by job rank).
const TrainerState &trainer_at(const Roster &trainers, int job_rank);

// Micro-batches a round gives the trainer with this job rank in `plan` (0 when it is not in it).
int64_t share_in(const Plan &plan, int job_rank);

// "rank 1 (a) 3 x 32, rank 2 (b) 1 x 32; estimated round 0.120 s"
std::string plan_text(const Plan &plan, const Roster &trainers, int64_t micro_batch);

// " while waiting for rank 2 (node7, last completed round 16), ...": who a wait is stuck on
// (`leading` false: without the " while waiting for "); empty when none of them is a trainer.
std::string late_text(const Roster &trainers, const std::vector<int> &world_ranks,
                      bool leading = true);

} // namespace hetrain::run
