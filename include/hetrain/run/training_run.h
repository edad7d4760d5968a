// A whole `hetrain train` run: the stages of DESIGN §2 wired together. run/ sits after every
// other stage (it calls data/, model/, train/, checkpoint/), so no stage reaches back.
#pragma once

#include "hetrain/config/config.h"
#include "hetrain/schedule/links.h"
#include "hetrain/train/records.h"

#include <string>
#include <vector>

namespace hetrain {

struct TrainerSummary {
  int rank = 0;
  std::string host;
  int64_t micro_batches = 0; // share in the last plan
  int64_t samples = 0;       // over the whole run
  double compute_seconds = 0, wait_seconds = 0;
  int64_t micro_batch = 0;      // what it ran last: below --micro-batch after running out of memory
  bool lost = false;            // dropped by --on-trainer-loss continue
  bool left = false;            // left the job on its own signal (a planned leave)
  double data_wait_seconds = 0; // of compute_seconds: waiting for the loader's next batch
  int64_t out_rounds = 0;       // rounds it sat out of the plan (no traffic, nobody waited)
  double out_seconds = 0;       // their wall time
  double samples_per_sec = 0;   // rank 0's smoothed figure of its speed, what re-plans use
  // --sync-overlap: rounds it computed while the previous round's sync was in flight
  int64_t overlapped_rounds = 0;
};

// A trainer's admission (DESIGN §3), for every rank whose report rank 0 could read.
struct AdmissionRecord {
  int rank = 0;
  std::string host, device;
  double probe_samples_per_sec = 0;
  bool admitted = false;
  std::string reason; // why it was rejected ("" when admitted)
};

// A trainer leaving the plan (in_plan false) or coming back (true) from a round (a global step,
// counted from 1, as the log says it).
struct PlanMove {
  int rank = 0;
  int64_t round = 0;
  bool in_plan = false;
};

// A change of the job's trainers: who (rank 0 for a whole restart), what ("left": a planned
// leave; "lost": dropped under --on-trainer-loss continue; "restart": resumed on another world
// size), after which round (a global step, counted from 1), when (seconds into this run), why,
// and what it cost the job.
struct MembershipChange {
  int rank = 0;
  std::string host, change, reason;
  int64_t round = 0;
  double time = 0;
  std::string cost;
};

struct TrainSummary {
  int world_size = 1;
  std::string model;
  int64_t parameters = 0;                // trained parameters (the flat buffer; not the frozen)
  std::string aggregator_device = "cpu"; // where the master parameters were stepped
  int aggregators = 1;                   // --aggregators: ranks that each stepped a shard
  std::string amp = "off";
  // The sync mode the job ran (--sync auto: the one rank 0 chose), its local steps per sync (1
  // for gradient), and why auto chose it ("" when the user chose).
  std::string sync = "gradient";
  int64_t local_steps = 1;
  std::string sync_choice;
  bool sync_overlap = false; // --sync-overlap in effect (diloco only)
  int stopped_by_signal = 0; // SIGTERM/SIGUSR1 ended the run early (final_checkpoint has it)
  int64_t epochs = 0, steps = 0, samples = 0;
  int64_t resumed_step = -1; // --resume: the checkpoint's global step (-1: started afresh)
  double samples_per_sec = 0;
  std::vector<double> epoch_seconds;
  double test_accuracy = -1, test_loss = -1; // -1 without a test set
  double final_train_loss = 0;
  // Summed over the run (and over the trainers of a distributed run): forward/backward time, and
  // the part of it spent waiting for the loader (train/batch_loader.h).
  double compute_seconds = 0, data_wait_seconds = 0;
  std::string final_checkpoint;
  std::vector<EpochRecord> history;
  std::vector<TrainerSummary> trainers;             // distributed runs
  std::vector<std::string> plan_history;            // every plan, as logged
  std::vector<std::vector<std::string>> plan_notes; // by plan: who was left out and why
  // --host-reduce: each group's world ranks (leader first); the mean number of uploads rank 0
  // received per round (one per working trainer without groups).
  std::vector<std::vector<int>> host_groups;
  double uploads_per_round = 0;
  // --on-trainer-loss continue: the trainers dropped, e.g. "rank 2 (host) in round 17: ...".
  std::vector<std::string> lost_trainers;
  std::vector<MembershipChange> membership_changes; // in order
  std::vector<LinkFigures> links; // the startup link probe's figures (empty when it was off)
  // Its duration, counted from when every rank had entered it, and the wait for that (0 when off).
  double link_probe_seconds = 0, link_probe_wait_seconds = 0;
  std::vector<AdmissionRecord> admission; // every verdict, rejected trainers included
  std::vector<PlanMove> plan_moves;       // trainers out of the plan and back, in order
};

// Trains on this process alone (world size 1): gradient accumulation over micro-batches, one
// optimizer step per global batch, evaluation after every epoch, checkpoints, progress lines.
TrainSummary run_local_training(const TrainConfig &config);

// This rank's part of a job of world size >= 2 (MPI initialised): rank 0 aggregates, the other
// ranks train (DESIGN §1-§7, gradient sync). The full summary is returned on rank 0; trainers
// return theirs with world_size set. Throws UserError on bad input; PeerTimeout when a peer stops
// answering (on rank 0 after it has written the last complete round's abort checkpoint and told
// the others to stop: a lost trainer under --on-trainer-loss abort, or the last one under
// continue); LeaderLost on a trainer or shard server when rank 0's heartbeat stops; RoundAbandoned
// on rank 0 after a stop signal. The command line turns these into exit codes 2, 3, 3 and 4.
TrainSummary run_distributed_training(const TrainConfig &config);

std::string summary_to_json(const TrainSummary &summary);

// Rank 0 abandoned a round on SIGTERM/SIGUSR1 (the round did not complete within the grace
// period) after checkpointing the last complete one; the job ends with kExitStopped.
class RoundAbandoned : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

} // namespace hetrain
