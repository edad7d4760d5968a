#!/usr/bin/env bash
# mpi.rank0_lost: rank 0 dies (SIGKILL, --fault-kill-rank 0) under mpirun --enable-recovery, which
# keeps the trainers alive: each ends on its own deadline for rank 0's next command (2x
# --straggler-timeout + 60 s, which leaves rank 0 time to evaluate and checkpoint between
# epochs), naming rank 0. scripts/mpirun-hetrain.sh then fails: rank 0 recorded no exit code.
# The job ends within the deadline (+ $job_end_margin s for Open MPI to end it, see common.sh) of the
# death; measured 63.2 s with the 62 s deadline.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
timeout_s=1
deadline=$((2 * timeout_s + 60))
recovery_mpi 3 "$HETRAIN" train --data "$train" --model mlp --epochs 1 \
  --global-batch 64 --micro-batch 16 --limit-train-samples 2000 --threads 1 \
  --straggler-timeout $timeout_s --fault-kill-rank 0 --checkpoint-dir "$work/ck" >"$work/log" 2>&1 &
job=$!
died=""
for _ in $(seq 1 1200); do
  grep -q "dying (SIGKILL)" "$work/log" && { died=$(now); break; }
  kill -0 $job 2>/dev/null || break
  sleep 0.05
done
rc=0
wait $job || rc=$?
grep -E "dying|did not answer|recorded no exit code" "$work/log" | cut -c1-200
[ -n "$died" ] || { tail -n 20 "$work/log"; fail "rank 0 never died"; }
expect_rc "$rc" 1 "$work/log"
[ "$(grep -c "rank 0 did not answer within $deadline s (waiting for the next round's command)" "$work/log")" -eq 2 ] ||
  fail "not every trainer named rank 0 with its $deadline s deadline"
within "$died" $((deadline + job_end_margin)) \
  "from rank 0's death to the end (deadline $deadline s + $job_end_margin s)"
