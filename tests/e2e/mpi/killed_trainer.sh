#!/usr/bin/env bash
# mpi.killed_trainer: a trainer killed with SIGKILL in its 3rd round (--fault-kill-rank, testing
# only), two ways:
#  plain mpirun: mpirun ends the job about a second later (exit 137 = 128 + SIGKILL) after its
#    SIGTERM reaches rank 0, which names the trainer it was waiting for and checkpoints;
#  mpirun --enable-recovery: rank 0 notices within --straggler-timeout, names the trainer,
#    checkpoints, stops the others and exits 3 (through scripts/mpirun-hetrain.sh).
# Either way the job ends within 2x the timeout of the death (+ $job_end_margin s for Open MPI to end
# it on a busy machine, see common.sh) with a valid checkpoint of step 2,
# and --resume auto on the 2 survivors completes it to where the uninterrupted run ends: 2 epochs
# of 2480 samples = 20 steps, parameters within $early_rtol (the same maths summed in another
# order, compared before rounding differences grow, see common.sh; measured 2026-11 on the 2-core
# VM: 5.0e-8 for both), and so the same test accuracy: parameters that close change the
# prediction of only a test image whose two top logits tie to about 1e-5 (measured: equal, 0.5360
# after these 20 steps); 10 such images of the 10000 (0.001) are allowed.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
need_data "$test_set"
s=(--data "$train" --test-data "$test_set" --model mlp --epochs 2 --optimizer momentum --lr 0.05
   --global-batch 256 --micro-batch 32 --limit-train-samples 2480 --threads 1 --seed 7
   --checkpoint-every 4 --progress-seconds 1000 --balance static:2,3,3)
final=ckpt-s00000020-epoch.h5
timeout_s=6
mpi 4 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/straight" \
  --summary-json "$work/straight.json" | tail -n 1
kill_run() { # kill_run NAME EXPECTED_RC LAUNCH...: runs, times from the death to the end
  local name=$1 expected=$2
  shift 2
  "$@" "$HETRAIN" train "${s[@]}" --straggler-timeout $timeout_s --fault-kill-rank 2 \
    --checkpoint-dir "$work/$name" >"$work/$name.log" 2>&1 &
  local pid=$! died=""
  for _ in $(seq 1 1200); do # the log shows when the fault fired: the clock starts there
    grep -q "dying (SIGKILL)" "$work/$name.log" && { died=$(now); break; }
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
  done
  local rc=0
  wait $pid || rc=$?
  grep -E "dying|warning: SIGTERM|error: lost|stall:" "$work/$name.log" | cut -c1-220
  [ -n "$died" ] || { tail -n 20 "$work/$name.log"; fail "$name: the trainer never died"; }
  expect_rc "$rc" "$expected" "$work/$name.log"
  within "$died" $((2 * timeout_s + job_end_margin)) \
    "$name: from the death to the end (2x --straggler-timeout + $job_end_margin s)"
}
# The log: these jobs end without a summary, and a message naming the rank waited for, its last
# round and the checkpoint is what the user gets (the contract checked here).
kill_run plain 137 mpi 4
grep -q "SIGTERM during round 3 while waiting for rank 2 (.*last completed round 2).*wrote" \
  "$work/plain.log" || fail "rank 0 did not name rank 2 and its checkpoint"
kill_run recovery 3 recovery_mpi 4
grep -q "error: lost rank 2 (.*last completed round 2) in round 3 (epoch 1); wrote .*abort.h5" \
  "$work/recovery.log" || fail "rank 0 did not name rank 2 and its checkpoint"
for name in plain recovery; do
  ck=$(find "$work/$name" -name 'ckpt-*-signal.h5' -o -name 'ckpt-*-abort.h5' | head -n 1)
  "$HETRAIN" inspect "$ck" --json | $py -c '
import json, sys; d = json.load(sys.stdin)
assert d["global_step"] == 2, d["global_step"]
print(sys.argv[1], "checkpoint valid, at step", d["global_step"])' "$ck"
  # Resume on the survivors' number of trainers (2), to the end.
  mpi 3 "$HETRAIN" train "${s[@]}" --balance static:1,1 --checkpoint-dir "$work/$name" \
    --resume auto --summary-json "$work/$name.json" | grep -E "resuming|finished"
  echo "$name, resumed on 2 trainers, against the uninterrupted run:"
  compare --quiet "$work/straight/$final" "$work/$name/$final" "$early_rtol"
done
$py - "$work/straight.json" "$work/plain.json" "$work/recovery.json" <<'PY'
import json, sys
straight = json.load(open(sys.argv[1]))["test_accuracy"]
for path in sys.argv[2:]:
    s = json.load(open(path))
    assert s["steps"] == 20, s["steps"]
    acc = s["test_accuracy"]
    print(f"{path.rsplit('/', 1)[-1]}: test accuracy {acc:.4f}, uninterrupted {straight:.4f}")
    assert abs(acc - straight) <= 0.001, "resumed run does not reach the uninterrupted accuracy"
PY
