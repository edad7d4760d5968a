#!/usr/bin/env bash
# mpi.signal: SIGTERM to a one-process run and SIGUSR1 to mpirun (forwarded to every rank) end the
# run after the current step/round with exit code 4 and a valid ckpt-*-signal.h5, and
# --resume auto completes it (cnn, BatchNorm buffers included):
#  - one process, resumed in one process, and 2 trainers (1,1), resumed on the same 2 trainers:
#    the same computation as the uninterrupted run, so the whole state (parameters, BatchNorm
#    running statistics, Adam state) is bit-identical to it, and with it any evaluation;
#  - the same signal checkpoint of the 2 trainers resumed on 3 (benchmark shares), with
#    --test-data: it completes (2 epochs, 24 steps) to a trained model's test accuracy: at least
#    the uninterrupted run's minus 5 points. Not compared closer: another split sums in another
#    order, and in the cnn (max-pool ties; Adam, whose first steps move every weight by about lr
#    whatever the gradient's size) that rounding grows past 1e-4 relative within 4 steps
#    (measured: 1.3e-4 at step 4), and the BatchNorm running statistics are averaged over
#    trainers by design. Measured (2026-11, 2-core VM): seeds 1..4 of this run end at
#    0.791 .. 0.807, 2 and 3 trainers at 0.796, 0.797 (one process 0.796), so 5 points is 3x the
#    spread; an untrained model scores 0.1.
# And a round that cannot finish (trainer 2 stalls) is abandoned on SIGTERM to rank 0 after its
# short grace: checkpoint of the last complete round, exit 4, well before --straggler-timeout.
# (Evaluation of the 10000 test images takes longer than these 24 steps of training, so only the
# run whose accuracy is asserted evaluates; with both cores busy this case takes about 2 min.)
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
need_data "$test_set"
s=(--data "$train" --model cnn --epochs 2 --limit-train-samples 3072 --threads 1 --deterministic
   --checkpoint-every 2 --keep-checkpoints 100 --progress-seconds 1000)
final=ckpt-s00000024-epoch.h5 # 3072 samples in steps of 256: 12 an epoch
two=(--balance static:1,1)
"$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/straight" | tail -n 1
"$HETRAIN" evaluate --checkpoint "$work/straight/$final" --data "$test_set" --json >"$work/straight.json"
mpi 3 "$HETRAIN" train "${s[@]}" "${two[@]}" --checkpoint-dir "$work/straight2" | tail -n 1
# Waits for the run's first step checkpoint, sends the signal, returns the run's exit code.
signal_run() { # signal_run SIGNAL DIR CMD...
  local sig=$1 dir=$2
  shift 2
  "$@" --checkpoint-dir "$dir" >"$dir.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 600); do
    compgen -G "$dir/ckpt-*-step.h5" >/dev/null && break
    sleep 0.1
  done
  kill "-$sig" "$pid"
  local rc=0
  wait "$pid" || rc=$?
  grep -E "$sig|warning" "$dir.log" | tail -n 2
  return $rc
}
check_stopped() { # check_stopped RC DIR: exit code 4 and a readable signal checkpoint
  expect_rc "$1" 4 "$2.log"
  local ck
  ck=$(find "$2" -name 'ckpt-*-signal.h5' | head -n 1)
  [ -n "$ck" ] || { ls "$2"; fail "no signal checkpoint in $2"; }
  "$HETRAIN" inspect "$ck" | grep -E "epoch|step" | head -n 2
}
rc=0
signal_run TERM "$work/one" "$HETRAIN" train "${s[@]}" || rc=$?
check_stopped $rc "$work/one"
"$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/one" --resume auto \
  --summary-json "$work/one.json" | grep -E "resuming|finished"
echo "one process, stopped and resumed, against the uninterrupted run:"
compare --quiet --exact "$work/straight/$final" "$work/one/$final"
# mpirun itself (not a shell function around it) gets the signal, and forwards it.
rc=0
signal_run USR1 "$work/mpi" "$MPIEXEC" --oversubscribe -np 3 --mca mpi_yield_when_idle 1 \
  "$HETRAIN" train "${s[@]}" "${two[@]}" || rc=$?
check_stopped $rc "$work/mpi"
cp -r "$work/mpi" "$work/mpi3"
mpi 3 "$HETRAIN" train "${s[@]}" "${two[@]}" --checkpoint-dir "$work/mpi" --resume auto \
  --summary-json "$work/mpi.json" | grep -E "resuming|finished"
echo "2 trainers, stopped and resumed on the same 2, against the uninterrupted run:"
compare --quiet --exact "$work/straight2/$final" "$work/mpi/$final"
mpi 4 "$HETRAIN" train "${s[@]}" --test-data "$test_set" --checkpoint-dir "$work/mpi3" \
  --resume auto --summary-json "$work/mpi3.json" | grep -E "resuming|finished"
$py - "$work"/{straight,one,mpi,mpi3}.json <<'PY'
import json, sys
straight, one, mpi, mpi3 = (json.load(open(p)) for p in sys.argv[1:])
for name, s in (("one process", one), ("2 trainers", mpi), ("2 then 3 trainers", mpi3)):
    assert [r["epoch"] for r in s["history"]] == [1, 2], s["history"]
    assert s["steps"] == 2 * 12, s["steps"]
    print(f"{name}: completed after the resume: {s['steps']} steps")
acc, ref = mpi3["test_accuracy"], straight["accuracy"]
print(f"2 then 3 trainers: test accuracy {acc:.4f}; uninterrupted, one process: {ref:.4f}")
assert acc >= ref - 0.05, "2 then 3 trainers: not a trained model's accuracy"
PY
# Trainer 2 stalls in its 3rd round; SIGTERM to rank 0 alone while it waits for that round.
straggler_timeout=60
"$MPIEXEC" --oversubscribe -np 3 --mca mpi_yield_when_idle 1 "$HETRAIN" train --data "$train" \
  --model mlp --epochs 1 --global-batch 64 --micro-batch 16 --limit-train-samples 2000 \
  --threads 1 --fault-stall-rank 2 --straggler-timeout $straggler_timeout --checkpoint-every 1 \
  --keep-checkpoints 10 --checkpoint-dir "$work/stall" >"$work/stall.log" 2>&1 &
job=$!
stalled=""
for _ in $(seq 1 600); do # the log shows when the stall began (not a check)
  grep -q "stalling instead of computing round 3" "$work/stall.log" &&
    [ -f "$(step_ckpt "$work/stall" 2)" ] && { stalled=yes; break; }
  sleep 0.1
done
[ -n "$stalled" ] || { tail -n 20 "$work/stall.log"; fail "no stall after step 2 within 60 s"; }
sleep 1 # rank 0 is now waiting for round 3
rank0=""
for p in $(pgrep -f "$HETRAIN train --data"); do
  tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=0 && rank0=$p
done
[ -n "$rank0" ] || fail "rank 0 not found"
start=$(now)
kill -TERM "$rank0"
rc=0
wait "$job" || rc=$?
grep -E "abandoned" "$work/stall.log" | tail -n 1
expect_rc "$rc" 4 "$work/stall.log"
# Waiting the round out would take --straggler-timeout; abandoning it takes a 0.5 s grace plus the
# checkpoint and the job's end.
within "$start" $straggler_timeout "abandoning the stalled round"
"$HETRAIN" inspect "$work/stall/ckpt-s00000002-signal.h5" | grep -E "step"
