#!/usr/bin/env bash
# mpi.rank0_lost: rank 0 is lost under mpirun --enable-recovery, which keeps the other ranks alive:
# each trainer and shard server ends on its own when rank 0's heartbeat stops (comm/heartbeat.h,
# DESIGN §7: a beat every timeout/4, silence for 1.5 x timeout is a lost rank 0), naming rank 0
# and what it was doing, with exit code 3 (kExitPeerLost). Three ways, --aggregators 2 (rank 1 a
# shard server, ranks 2 and 3 trainers), --straggler-timeout 1:
#   round       SIGKILL in the 3rd round (--fault-kill-rank 0)
#   checkpoint  SIGKILL inside the first checkpoint write (--fault-crash-in-checkpoint 1, at the
#               end of epoch 1, while the trainers wait for epoch 2's first command), after the
#               write spent 4 s (--fault-slow-checkpoint 4, > 2 x timeout) alive and beating: no
#               rank may leave during those 4 s, and each names the checkpoint write
#   stopped     SIGSTOP (a hung rank 0) 1 s after rank 0 logged its plan (training runs, the
#               heartbeat too); SIGKILL after the others left
# Both trainers must name rank 0 within 2 x timeout (+ $job_end_margin s: what the poll of a loaded
# 2-core machine and the log take) of the death; before the heartbeat this took 2 x timeout + 60 s.
# A trainer whose own upload to rank 0 times out first (1 x timeout) names rank 0 that way and
# ends the job with MPI_Abort (exit 3), which also ends the shard server; otherwise the shard
# server names rank 0 from the heartbeat as well.
# scripts/mpirun-hetrain.sh then fails: rank 0 recorded no exit code.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
timeout_s=1
bound=$((2 * timeout_s + job_end_margin))
# What a trainer says: the heartbeat's verdict or, when one of its own waits for rank 0 (a
# gradient upload, --straggler-timeout) runs out first, that wait's; both name rank 0, exit 3.
named="rank 0 sent no heartbeat .*said it was .*; this rank leaves the job|rank 0 did not answer within $timeout_s s"
args=(--data "$train" --model mlp --global-batch 64 --micro-batch 16 --limit-train-samples 2000
      --threads 1 --aggregators 2 --straggler-timeout $timeout_s --progress-seconds 1000)

# rank0_pid LOG: rank 0's process id (Open MPI gives each process its world rank in OMPI_COMM_WORLD_RANK)
rank0_pid() {
  local p
  for p in $(pgrep -f -- "$work/ck-stopped" || true); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=0" &&
      [ "$(cat "/proc/$p/comm")" = "$(basename "$HETRAIN" | cut -c1-15)" ] && { echo "$p"; return; }
  done
}

# The log throughout: with rank 0 gone nothing writes a summary; what is checked is what the other
# ranks tell the user (naming rank 0 and what it said it was doing), and when the fault fired.
one_case() { # one_case NAME ARGS...: rank 0 lost as NAME says; checks who ended, how fast
  local name=$1 log="$work/$1.log" died="" rc=0 job pid=""
  shift
  recovery_mpi 4 "$HETRAIN" train "${args[@]}" --checkpoint-dir "$work/ck-$name" "$@" >"$log" 2>&1 &
  job=$!
  for _ in $(seq 1 1200); do
    if [ "$name" = stopped ]; then
      if [ -z "$pid" ] && grep -qE "link|coordinator on" "$log"; then pid=$(rank0_pid); fi
      if [ -n "$pid" ] && grep -q "^\[r0 .*plan:" "$log"; then
        sleep 1 # into training: rank 0 beats from before its plan (comm/heartbeat.h)
        kill -STOP "$pid"
        echo "SIGSTOP to rank 0 (pid $pid)" >>"$log"
        died=$(now)
        break
      fi
    else
      grep -q "dying (SIGKILL)" "$log" && { died=$(now); break; }
    fi
    kill -0 $job 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$died" ] || { tail -n 20 "$log"; kill -KILL "$pid" 2>/dev/null || true; fail "$name: rank 0 was never lost"; }
  for _ in $(seq 1 400); do # until both trainers have named rank 0
    [ "$(grep -cE "^\[r[23] .*($named)" "$log")" -ge 2 ] && break
    sleep 0.05
  done
  [ "$(grep -cE "^\[r[23] .*($named)" "$log")" -ge 2 ] || tail -n 25 "$log"
  within "$died" "$bound" "$name: from rank 0's loss to both trainers naming it"
  [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
  wait $job || rc=$?
  grep -E "dying|SIGSTOP|sent no heartbeat|did not answer|recorded no exit code" "$log" | cut -c1-260
  [ "$rc" -ne 0 ] || fail "$name: the job succeeded without rank 0"
  [ "$(grep -cE "^\[r[23] .*($named)" "$log")" -ge 2 ] ||
    { tail -n 30 "$log"; fail "$name: not both trainers named rank 0"; }
  # The shard server names rank 0 too, unless a trainer's MPI_Abort (its own deadline for rank 0
  # ran out first) ended the job before it could.
  grep -qE "^\[r1 .*rank 0 sent no heartbeat .*said it was" "$log" || grep -q "MPI_ABORT was invoked" "$log" ||
    { tail -n 30 "$log"; fail "$name: the shard server neither named rank 0 nor was ended"; }
}

one_case round --epochs 1 --fault-kill-rank 0
one_case checkpoint --epochs 2 --fault-crash-in-checkpoint 1 --fault-slow-checkpoint 4
first_loss=$(grep -n "sent no heartbeat" "$work/checkpoint.log" | head -n 1 | cut -d: -f1)
[ "$first_loss" -gt "$(grep -n "dying (SIGKILL)" "$work/checkpoint.log" | cut -d: -f1)" ] ||
  fail "checkpoint: a rank left while rank 0 was alive in its slow checkpoint write"
[ "$(grep -c "said it was writing a checkpoint" "$work/checkpoint.log")" -eq 3 ] ||
  fail "checkpoint: not every other rank said rank 0 was writing a checkpoint"
one_case stopped --epochs 1000 # long enough to be running when stopped
