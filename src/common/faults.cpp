// Testing only: see hetrain/common/faults.h.
#include "hetrain/common/faults.h"

#include "hetrain/common/error.h"

#include <atomic>

namespace hetrain {
namespace {

FaultPlan armed;                           // written once at startup, before any thread starts
std::atomic<int64_t> checkpoint_writes{0}; // this process's, since arming

bool strikes(int fault_rank, int world_rank, int64_t round) {
  return fault_rank >= 0 && fault_rank == world_rank && round == kFaultRound;
}

} // namespace

void arm_faults(const FaultPlan &plan) {
  if (plan.oom_above < 0)
    throw UserError("--fault-oom-above: must be >= 0");
  if (plan.slow_checkpoint < 0)
    throw UserError("--fault-slow-checkpoint: must be >= 0");
  armed = plan;
  checkpoint_writes = 0;
}

bool fault_slows_probe(int world_rank) {
  return armed.slow_probe_rank >= 0 && armed.slow_probe_rank == world_rank;
}

bool fault_stalls_in_round(int world_rank, int64_t round) {
  return strikes(armed.stall_rank, world_rank, round);
}

bool fault_kills_in_round(int world_rank, int64_t round) {
  return strikes(armed.kill_rank, world_rank, round);
}

bool fault_half_sends_in_round(int world_rank, int64_t round) {
  return strikes(armed.half_send_rank, world_rank, round);
}

int64_t fault_oom_above() { return armed.oom_above; }

int64_t fault_slow_checkpoint_seconds() { return armed.slow_checkpoint; }

bool fault_probe_out_of_memory(int world_rank) {
  return armed.probe_oom_rank >= 0 && armed.probe_oom_rank == world_rank;
}

bool fault_crashes_this_checkpoint_write() {
  return armed.crash_in_checkpoint > 0 && ++checkpoint_writes == armed.crash_in_checkpoint;
}

const std::string &debug_sample_log() { return armed.debug_sample_log; }

} // namespace hetrain
