// Faults on demand, FOR THE TESTS ONLY (docs/testing.md, "Testing-only options"). The hidden
// --fault-* options of `hetrain train` (and --debug-sample-log) fill a FaultPlan; the command line
// arms it once at startup, before any work; the few places that can fail on demand ask the named
// queries below, and nothing else reads the plan. Unarmed (every production run, every unit test
// that does not arm one) every query answers "no fault".
#pragma once

#include <cstdint>
#include <string>

namespace hetrain {

struct FaultPlan {
  // Not a fault: trainers append "epoch step attempt index" per sample to FILE.rank<r>.
  std::string debug_sample_log;
  int slow_probe_rank = -1;        // this rank reports a 100x slower training probe
  int stall_rank = -1;             // this rank stops answering in its 3rd round
  int kill_rank = -1;              // this rank dies (SIGKILL) in its 3rd round
  int half_send_rank = -1;         // 3rd round to the shard servers only, then dies
  int64_t oom_above = 0;           // micro-batches above this many samples run out of memory
  int64_t crash_in_checkpoint = 0; // SIGKILL inside the Nth checkpoint write of this process
  int64_t slow_checkpoint = 0;     // seconds each checkpoint write sleeps before its data
  int probe_oom_rank = -1;         // this trainer's start-up probe runs out of memory at any size
};

// The round (1-based) in which the *_rank faults strike: the 3rd round a trainer works in (a round
// without samples for it does not count); for rank 0 (--fault-kill-rank 0) the 3rd of an epoch.
inline constexpr int64_t kFaultRound = 3;

// Arms `plan` for this process (replacing any armed before). UserError for a negative oom_above.
void arm_faults(const FaultPlan &plan);

// The queries, each true (or non-zero) only when the armed plan asks for that fault.
bool fault_slows_probe(int world_rank);
bool fault_stalls_in_round(int world_rank, int64_t round);
bool fault_kills_in_round(int world_rank, int64_t round);
bool fault_half_sends_in_round(int world_rank, int64_t round);
int64_t fault_oom_above(); // 0: never
bool fault_probe_out_of_memory(int world_rank);
int64_t fault_slow_checkpoint_seconds(); // 0: off
// Counts this process's checkpoint writes; true inside the write that must die.
bool fault_crashes_this_checkpoint_write();
const std::string &debug_sample_log(); // "": off

} // namespace hetrain
