#!/usr/bin/env bash
# MPI tests of the distributed core, run by ctest (label mpi) with oversubscribed ranks.
# Usage: mpi_tests.sh CASE   with HETRAIN, MPIEXEC and DATA (data folder) in the environment.
#   exactness     2 trainers static:3,1 and 3 trainers static:1,2,5 end within 1e-4 (per tensor)
#                 of the one-process run with the same seed, global batch and micro-batch
#   exactly_once  every sample index is used once per epoch, summed over trainers, read from the
#                 trainers' own debug records (not from the plan)
#   rejection     a trainer failing admission is named with its reason; the job goes on without it
#   wire_dtype    bf16 / fp16 uploads stay close to the exact run (and bf16 is really lossy)
#   pinned_shares trainers 1 and 2 share CPU 0, trainer 3 has CPU 1 alone: with --balance
#                 benchmark (and re-planning) the lone trainer's share is at least 1.5x each other's
#   straggler     a trainer that stops answering is named (rank, host, what) within
#                 --straggler-timeout; rank 0 checkpoints the last complete round; exit code 3
#   params        --sync params --local-steps 4 trains the mlp to a sensible accuracy
#   resume        exact continuation: 2 epochs with 3 trainers straight, against 1 epoch with 2
#                 trainers then --resume auto with 3 for the second; and a resume from the middle
#                 of an epoch (a step checkpoint) with 1 trainer; parameters within 1e-4 per tensor;
#                 a checkpoint of another model or seed is refused with exit 2
#   signal        SIGTERM to a one-process run and SIGUSR1 to mpirun (forwarded to every rank) end
#                 the run after the current step/round with exit code 4 and a valid
#                 ckpt-*-signal.h5; --resume auto (with another number of trainers) completes it;
#                 a round that cannot finish (a stalled trainer) is abandoned on SIGTERM to rank 0
#                 after its grace: checkpoint of the last complete round, exit 4, in seconds
#   killed_trainer  a trainer killed (SIGKILL) mid-epoch under plain mpirun and --enable-recovery:
#                 named, checkpointed, documented exit code within 2x --straggler-timeout; resume
#                 reaches the uninterrupted accuracy
#   continue      --on-trainer-loss continue: the job finishes without the dead trainer, every
#                 sample once, exit 5, accuracy within 1 point
#   rank0_lost    trainers that lose rank 0 (under --enable-recovery) end on their deadline
#   observe       --metrics / --timeline / --prometheus files of a run are well formed and add
#                 up; the plot script draws them
#   evaluate      hetrain evaluate under mpirun splits the test set by speed, same accuracy
#   overlap       --overlap (chunks sent during backward) gives exactly the result without it
#   aggregators   --aggregators 2 and 3 (shards of parameters and optimizer state on ranks 0..A-1)
#                 end where the one-process run does, resume across A, survive a killed trainer
#                 with a consistent checkpoint, and split the gradient bytes evenly
#   finalize_deadline  a finalize that cannot complete (rank 0 arrives 30 s late) ends each
#                 waiting rank after its 2 s deadline, named, with the exit code it was given
#   oom           micro-batches that run out of memory are halved, exactly, and reported
#   torn_checkpoint rank 0 dies (SIGKILL) inside its 3rd checkpoint write: the two before stay
#                 valid, the half-written one never appears under its final name, and
#                 --resume auto continues from the newest valid one to the end
set -euo pipefail
case_name=$1
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mpi() { local np=$1; shift; "$MPIEXEC" --oversubscribe -np "$np" --mca mpi_yield_when_idle 1 "$@"; }
here=$(cd "$(dirname "$0")" && pwd)
train=$DATA/fashion-mnist-train.h5
[ -f "$train" ] || { echo "missing $train: run scripts/prepare-data.sh" >&2; exit 1; }

case $case_name in
exactness)
  s=(--data "$train" --model mlp --epochs 1 --optimizer momentum --lr 0.05 --global-batch 256
     --micro-batch 32 --limit-train-samples 6000 --threads 1 --seed 7 --progress-seconds 1000)
  "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/one" >/dev/null
  mpi 3 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/two" --balance static:3,1 | tail -n 3
  mpi 4 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/three" --balance static:1,2,5 | tail -n 3
  $py "$here/compare_checkpoints.py" "$work"/one/ckpt-*.h5 "$work"/two/ckpt-*.h5 1e-4
  $py "$here/compare_checkpoints.py" "$work"/one/ckpt-*.h5 "$work"/three/ckpt-*.h5 1e-4
  # The checkpoint stores every trainer's report and its share.
  $py -c '
import glob, json, sys, h5py
with h5py.File(glob.glob(sys.argv[1] + "/ckpt-*.h5")[0]) as f:
    reports = [json.loads(r) for r in f["cluster/reports"][()]]
    assert f.attrs["world_size"] == 4
shares = [r["micro_batches"] for r in sorted(reports, key=lambda r: r["rank"])]
assert shares == [1, 2, 5], shares
print("checkpoint reports and shares:", shares)' "$work/three"
  ;;
resume)
  s=(--data "$train" --model mlp --optimizer momentum --lr 0.05 --global-batch 256 --micro-batch 32
     --limit-train-samples 6000 --threads 1 --seed 7 --progress-seconds 1000)
  # Fixed shares: every split sums in its own order, and the training dynamics can now and then
  # amplify those fp32 rounding differences past 1e-4 over two epochs (seen once at 3e-4, for
  # 4:4 then 3:3:2; continuing that same state in one process stays at 2e-7). Static shares make
  # the test repeatable; the resume itself adds nothing (from a one-process checkpoint, 1e-7).
  mpi 4 "$HETRAIN" train "${s[@]}" --epochs 2 --checkpoint-dir "$work/straight" \
    --balance static:2,3,3 | tail -n 2
  mpi 3 "$HETRAIN" train "${s[@]}" --epochs 1 --checkpoint-dir "$work/split" --balance static:4,4 \
    | tail -n 1
  mpi 4 "$HETRAIN" train "${s[@]}" --epochs 2 --checkpoint-dir "$work/split" --resume auto \
    --balance static:2,3,3 --summary-json "$work/split.json" | grep -E "resuming|finished"
  newest() { find "$1" -name 'ckpt-*-epoch.h5' | sort | tail -n 1; }
  $py "$here/compare_checkpoints.py" "$(newest "$work/straight")" "$(newest "$work/split")" 1e-4
  $py -c '
import json, sys
s = json.load(open(sys.argv[1]))
assert [r["epoch"] for r in s["history"]] == [1, 2], s["history"]
assert s["steps"] == 2 * 24, s["steps"]  # 6000 samples in rounds of 256: 24 a epoch
print("resumed run: history", [r["epoch"] for r in s["history"]], "steps", s["steps"])' "$work/split.json"
  # From the middle of the first epoch (a step checkpoint at step 10), with one trainer.
  mpi 3 "$HETRAIN" train "${s[@]}" --epochs 1 --checkpoint-every 10 --keep-checkpoints 10 \
    --balance static:5,3 --checkpoint-dir "$work/mid" | tail -n 1
  mkdir "$work/mid2"
  cp "$work"/mid/ckpt-s00000010-step.h5 "$work/mid2/"
  mpi 2 "$HETRAIN" train "${s[@]}" --epochs 2 --checkpoint-dir "$work/mid2" --resume auto \
    | grep -E "resuming|finished"
  $py "$here/compare_checkpoints.py" "$(newest "$work/straight")" "$(newest "$work/mid2")" 1e-4
  # Mismatches are refused with exit 2 and a message naming them.
  set +e
  out=$("$HETRAIN" train "${s[@]}" --epochs 2 --model cnn --checkpoint-dir "$work/x" \
    --resume "$(newest "$work/straight")" 2>&1); rc=$?
  set -e
  echo "$out" | tail -n 1
  [ $rc -eq 2 ] && echo "$out" | grep -q "a checkpoint of model 'mlp', this run trains 'cnn'" \
    || { echo "another model was not refused (rc $rc)"; exit 1; }
  set +e
  out=$("$HETRAIN" train "${s[@]/7/8}" --epochs 2 --checkpoint-dir "$work/x" \
    --resume "$(newest "$work/straight")" 2>&1); rc=$?
  set -e
  echo "$out" | tail -n 1
  [ $rc -eq 2 ] && echo "$out" | grep -q "made with --seed 7, this run has --seed 8" \
    || { echo "another seed was not refused (rc $rc)"; exit 1; }
  ;;
signal)
  s=(--data "$train" --model cnn --epochs 3 --limit-train-samples 4000 --threads 1
     --checkpoint-every 2 --keep-checkpoints 20 --progress-seconds 1000)
  # Waits for the run's first step checkpoint, sends the signal, returns the run's exit code.
  signal_run() {  # signal_run SIGNAL DIR CMD...
    local sig=$1 dir=$2; shift 2
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
  check_stopped() {  # check_stopped RC DIR: exit code 4 and a readable signal checkpoint
    [ "$1" -eq 4 ] || { echo "exit code $1, expected 4"; tail -n 20 "$2.log"; exit 1; }
    local ck
    ck=$(find "$2" -name 'ckpt-*-signal.h5' | head -n 1)
    [ -n "$ck" ] || { echo "no signal checkpoint in $2"; ls "$2"; exit 1; }
    "$HETRAIN" inspect "$ck" | grep -E "epoch|step" | head -n 2
  }
  rc=0; signal_run TERM "$work/one" "$HETRAIN" train "${s[@]}" || rc=$?
  check_stopped $rc "$work/one"
  "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/one" --resume auto \
    --summary-json "$work/one.json" | grep -E "resuming|finished"
  # mpirun itself (not a shell function around it) gets the signal, and forwards it.
  rc=0; signal_run USR1 "$work/mpi" "$MPIEXEC" --oversubscribe -np 3 --mca mpi_yield_when_idle 1 \
    "$HETRAIN" train "${s[@]}" || rc=$?
  check_stopped $rc "$work/mpi"
  mpi 4 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/mpi" --resume auto \
    --summary-json "$work/mpi.json" | grep -E "resuming|finished"
  $py -c '
import json, sys
for path in sys.argv[1:]:
    s = json.load(open(path))
    assert [r["epoch"] for r in s["history"]] == [1, 2, 3], s["history"]
    assert s["steps"] == 3 * 16, s["steps"]   # 4000 samples in steps of 256: 16 an epoch
    assert s["test_accuracy"] == -1 or s["test_accuracy"] > 0
    print(path.rsplit("/", 1)[-1], "completed after the resume: 3 epochs,", s["steps"], "steps")' \
    "$work/one.json" "$work/mpi.json"
  # Trainer 2 stalls in its 3rd round; SIGTERM to rank 0 alone while it waits for that round.
  "$MPIEXEC" --oversubscribe -np 3 --mca mpi_yield_when_idle 1 "$HETRAIN" train --data "$train" \
    --model mlp --epochs 1 --global-batch 64 --micro-batch 16 --limit-train-samples 2000 \
    --threads 1 --fault-stall-rank 2 --straggler-timeout 60 --checkpoint-every 1 \
    --keep-checkpoints 10 --checkpoint-dir "$work/stall" >"$work/stall.log" 2>&1 &
  job=$!
  for _ in $(seq 1 600); do [ -f "$work/stall/ckpt-s00000002-step.h5" ] && break; sleep 0.1; done
  sleep 1
  rank0=""
  for p in $(pgrep -f "$HETRAIN train --data"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=0 && rank0=$p
  done
  [ -n "$rank0" ] || { echo "rank 0 not found"; kill "$job"; exit 1; }
  start=$SECONDS
  kill -TERM "$rank0"
  rc=0; wait "$job" || rc=$?
  took=$((SECONDS - start))
  grep -E "abandoned" "$work/stall.log" | tail -n 1
  [ "$rc" -eq 4 ] || { echo "exit code $rc, expected 4"; tail -n 20 "$work/stall.log"; exit 1; }
  [ "$took" -lt 20 ] || { echo "took $took s to stop, --straggler-timeout is 60"; exit 1; }
  "$HETRAIN" inspect "$work/stall/ckpt-s00000002-signal.h5" | grep -E "step"
  echo "abandoned the stalled round and stopped in $took s"
  ;;
torn_checkpoint)
  s=(--data "$train" --model mlp --epochs 1 --global-batch 64 --micro-batch 16
     --limit-train-samples 2000 --threads 1 --checkpoint-every 2 --keep-checkpoints 10
     --progress-seconds 1000 --checkpoint-dir "$work/ck")
  set +e
  mpi 3 "$HETRAIN" train "${s[@]}" --fault-crash-in-checkpoint 3 >"$work/crash.log" 2>&1
  rc=$?
  set -e
  [ $rc -ne 0 ] || { echo "the job did not die"; exit 1; }
  ls "$work/ck"
  [ ! -e "$work/ck/ckpt-s00000006-step.h5" ] || { echo "the torn checkpoint has its final name"; exit 1; }
  compgen -G "$work/ck/ckpt-s00000006-step.h5.tmp-*" >/dev/null \
    || { echo "expected the half-written temporary file"; exit 1; }
  for f in "$work"/ck/ckpt-s00000002-step.h5 "$work"/ck/ckpt-s00000004-step.h5; do
    "$HETRAIN" inspect "$f" | grep -E "^  position"
  done
  mpi 2 "$HETRAIN" train "${s[@]}" --resume auto --summary-json "$work/s.json" \
    | grep -E "resuming|finished"
  $py -c '
import json, sys
s = json.load(open(sys.argv[1]))
assert s["steps"] == 32, s["steps"]  # 2000 samples in steps of 64
print("resumed from step 4 and finished:", s["steps"], "steps")' "$work/s.json"
  ;;
exactly_once)
  # 1000 samples in rounds of 96: the last round of each epoch is partial (40 samples).
  mpi 4 "$HETRAIN" train --data "$train" --model mlp --epochs 2 --global-batch 96 --micro-batch 8 \
    --limit-train-samples 1000 --threads 1 --balance benchmark --rebalance-every 3 \
    --checkpoint-dir "$work/ck" --debug-sample-log "$work/samples" --summary-json "$work/s.json" \
    --progress-seconds 1000 | tail -n 5
  $py "$here/check_samples.py" "$work/samples" 1000 2 3
  $py -c '
import json, sys
summary = json.load(open(sys.argv[1]))
assert sum(t["samples"] for t in summary["trainers"]) == 2000, summary["trainers"]' "$work/s.json"
  ;;
rejection)
  out=$(mpi 4 "$HETRAIN" train --data "$train" --model mlp --epochs 1 --global-batch 64 \
    --micro-batch 16 --limit-train-samples 640 --threads 1 --min-relative-speed 0.2 \
    --fault-slow-probe-rank 2 --checkpoint-dir "$work/ck" --summary-json "$work/s.json" 2>&1)
  echo "$out" | grep -E "rejected|plan:|finished"
  echo "$out" | grep -q "rank 2 rejected: .* below --min-relative-speed 0.2" || { echo "no rejection line for rank 2"; exit 1; }
  echo "$out" | grep -q "not admitted by rank 0" || { echo "rank 2 did not log its own rejection"; exit 1; }
  $py -c '
import json, sys
s = json.load(open(sys.argv[1]))
ranks = sorted(t["rank"] for t in s["trainers"])
assert ranks == [1, 3], ranks
assert sum(t["samples"] for t in s["trainers"]) == 640
print("rejection: rank 2 left out, ranks", ranks, "trained all 640 samples")' "$work/s.json"
  # No GPU anywhere and --require-gpu: nobody is admitted, so the job ends with a clear error.
  set +e
  none=$(mpi 3 "$HETRAIN" train --data "$train" --model mlp --epochs 1 --limit-train-samples 640 \
    --threads 1 --require-gpu --checkpoint-dir "$work/ck2" 2>&1)
  code=$?
  set -e
  echo "$none" | grep -E "no trainer was admitted" | head -1
  [ "$code" -ne 0 ] || { echo "a job without trainers exited 0"; exit 1; }
  echo "$none" | grep -q "no trainer was admitted" || { echo "no clear message"; echo "$none" | tail; exit 1; }
  ;;
wire_dtype)
  s=(--data "$train" --model mlp --epochs 1 --optimizer momentum --lr 0.05 --global-batch 256
     --micro-batch 32 --limit-train-samples 6000 --threads 1 --seed 7 --progress-seconds 1000)
  "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/one" >/dev/null
  mpi 4 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/bf16" --wire-dtype bf16 | tail -n 1
  mpi 4 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/fp16" --wire-dtype fp16 | tail -n 1
  $py "$here/compare_checkpoints.py" "$work"/one/ckpt-*.h5 "$work"/bf16/ckpt-*.h5 1e-2
  $py "$here/compare_checkpoints.py" "$work"/one/ckpt-*.h5 "$work"/fp16/ckpt-*.h5 1e-3
  # bf16 keeps 8 bits of mantissa: if the result were exact, nothing was converted.
  if $py "$here/compare_checkpoints.py" "$work"/one/ckpt-*.h5 "$work"/bf16/ckpt-*.h5 1e-6 >/dev/null; then
    echo "bf16 run is identical to fp32: the wire dtype was not applied"; exit 1
  fi
  ;;
straggler)
  start=$(date +%s)
  set +e
  out=$(mpi 4 "$HETRAIN" train --data "$train" --model mlp --epochs 1 --global-batch 64 \
    --micro-batch 16 --limit-train-samples 2000 --threads 1 --straggler-timeout 3 \
    --fault-stall-rank 2 --checkpoint-dir "$work/ck" 2>&1)
  code=$?
  set -e
  took=$(( $(date +%s) - start ))
  echo "$out" | grep -E "did not answer|wrote|stalling|stall:" | head -5
  echo "exit code $code after $took s"
  # The stall inspector named the late trainer before the timeout ended the job.
  echo "$out" | grep -q "stall: round 3 has waited 1.[0-9] s while waiting for rank 2 (.*last completed round 2)" ||
    { echo "no stall warning naming rank 2 before the timeout"; exit 1; }
  [ "$code" -eq 3 ] || { echo "expected exit code 3, got $code"; echo "$out" | tail -20; exit 1; }
  [ "$took" -lt 30 ] || { echo "took $took s to give up"; exit 1; }
  echo "$out" | grep -q "rank 2 did not answer within 3 s (round 3 .*from rank 2 (" ||
    { echo "the message does not name rank 2 and what it waited for"; exit 1; }
  ckpt=$(ls "$work"/ck/ckpt-*-abort.h5)
  "$HETRAIN" inspect "$ckpt" | head -2
  "$HETRAIN" inspect "$ckpt" --json | $py -c 'import json,sys; d=json.load(sys.stdin); assert d["global_step"] == 2, d["global_step"]'
  ;;
pinned_shares)
  [ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs to pin"; exit 1; }
  mpi 4 --bind-to none "$here/../scripts/pin-rank.sh" "1:0 2:0 3:1" "$HETRAIN" train \
    --data "$train" --model cnn --epochs 1 --global-batch 256 --micro-batch 32 --threads 1 \
    --limit-train-samples 7680 --balance benchmark --rebalance-every 5 \
    --checkpoint-dir "$work/ck" --summary-json "$work/s.json" --progress-seconds 1000 | grep -E "plan"
  $py -c '
import json, sys
s = json.load(open(sys.argv[1]))
share = {t["rank"]: t["share"] for t in s["trainers"]}
print("final shares", share, "plans", len(s["plan_history"]))
assert share[3] >= 1.5 * share[1] and share[3] >= 1.5 * share[2], share' "$work/s.json"
  ;;
params)
  mpi 4 "$HETRAIN" train --data "$train" --test-data "$DATA/fashion-mnist-test.h5" --model mlp \
    --epochs 2 --optimizer adam --lr 1e-3 --global-batch 256 --micro-batch 32 --threads 1 \
    --sync params --local-steps 4 --checkpoint-dir "$work/ck" --summary-json "$work/s.json" \
    --progress-seconds 1000 | tail -n 3
  $py -c '
import json, sys, h5py
s = json.load(open(sys.argv[1]))
acc = s["test_accuracy"]
assert acc >= 0.80, f"params mode reached only {acc}"
with h5py.File(s["final_checkpoint"]) as f:
    assert f.attrs["sync_mode"] == "params", f.attrs["sync_mode"]
print(f"params mode: test accuracy {acc:.4f} (needs >= 0.80)")' "$work/s.json"
  ;;
killed_trainer)
  # A trainer killed with SIGKILL in its 3rd round (--fault-kill-rank, testing only), two ways:
  #  plain mpirun: mpirun ends the job about a second later (exit 137 = 128 + SIGKILL) after its
  #    SIGTERM reaches rank 0, which names the trainer it was waiting for and checkpoints;
  #  mpirun --enable-recovery: rank 0 notices within --straggler-timeout, names the trainer,
  #    checkpoints, stops the others and exits 3 (through scripts/mpirun-hetrain.sh).
  # Either way the job ends within 2x the timeout of the death, and --resume auto completes it to
  # the accuracy of an uninterrupted run.
  s=(--data "$train" --test-data "$DATA/fashion-mnist-test.h5" --model mlp --epochs 2
     --optimizer momentum --lr 0.05 --global-batch 256 --micro-batch 32 --limit-train-samples 6000
     --threads 1 --seed 7 --checkpoint-every 4 --progress-seconds 1000 --balance static:2,3,3)
  timeout_s=6
  mpi 4 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/straight" \
    --summary-json "$work/straight.json" | tail -n 1
  kill_run() {  # kill_run NAME EXPECTED_RC LAUNCH...: runs, times from the death to the end
    local name=$1 expected=$2; shift 2
    "$@" "$HETRAIN" train "${s[@]}" --straggler-timeout $timeout_s --fault-kill-rank 2 \
      --checkpoint-dir "$work/$name" >"$work/$name.log" 2>&1 &
    local pid=$! died=""
    for _ in $(seq 1 1200); do
      grep -q "dying (SIGKILL)" "$work/$name.log" && { died=$(date +%s.%N); break; }
      kill -0 $pid 2>/dev/null || break
      sleep 0.05
    done
    local rc=0
    wait $pid || rc=$?
    local took
    took=$($py -c "import sys,time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "${died:-0}")
    grep -E "dying|warning: SIGTERM|error: lost|stall:" "$work/$name.log" | cut -c1-220
    echo "$name: exit code $rc, ended $took s after the trainer died (timeout $timeout_s s)"
    [ -n "$died" ] || { echo "the trainer never died"; tail -n 20 "$work/$name.log"; exit 1; }
    [ "$rc" -eq "$expected" ] || { echo "expected exit code $expected"; tail -n 30 "$work/$name.log"; exit 1; }
    $py -c "import sys; sys.exit(0 if float(sys.argv[1]) < 2 * $timeout_s else 1)" "$took" ||
      { echo "took longer than 2x --straggler-timeout"; exit 1; }
  }
  kill_run plain 137 mpi 4
  grep -q "SIGTERM during round 3 while waiting for rank 2 (.*last completed round 2).*wrote" \
    "$work/plain.log" || { echo "rank 0 did not name rank 2 and its checkpoint"; exit 1; }
  kill_run recovery 3 "$here/../scripts/mpirun-hetrain.sh" --enable-recovery --oversubscribe \
    -np 4 --mca mpi_yield_when_idle 1
  grep -q "error: lost rank 2 (.*last completed round 2) in round 3 (epoch 1); wrote .*abort.h5" \
    "$work/recovery.log" || { echo "rank 0 did not name rank 2 and its checkpoint"; exit 1; }
  for name in plain recovery; do
    ck=$(find "$work/$name" -name 'ckpt-*-signal.h5' -o -name 'ckpt-*-abort.h5' | head -n 1)
    "$HETRAIN" inspect "$ck" --json | $py -c '
import json, sys; d = json.load(sys.stdin)
assert d["global_step"] == 2, d["global_step"]
print(sys.argv[1], "checkpoint valid, at step", d["global_step"])' "$ck"
    # Resume on the survivors' number of trainers (2), to the end.
    mpi 3 "$HETRAIN" train "${s[@]}" --balance static:1,1 --checkpoint-dir "$work/$name" \
      --resume auto --summary-json "$work/$name.json" | grep -E "resuming|finished"
  done
  $py -c '
import json, sys
straight = json.load(open(sys.argv[1]))["test_accuracy"]
for path in sys.argv[2:]:
    s = json.load(open(path))
    assert s["steps"] == 48, s["steps"]
    acc = s["test_accuracy"]
    print(f"{path}: test accuracy {acc:.4f}, uninterrupted {straight:.4f}")
    assert abs(acc - straight) <= 0.005, "resumed run does not reach the uninterrupted accuracy"
' "$work/straight.json" "$work/plain.json" "$work/recovery.json"
  ;;
finalize_deadline)
  start=$(date +%s)
  rc=0
  out=$(mpi 3 "$FINALIZE_DEADLINE" 2>&1) || rc=$?
  took=$(( $(date +%s) - start ))
  echo "$out" | grep "MPI_Finalize"
  [ "$rc" -eq 7 ] || { echo "exit code $rc, expected 7"; echo "$out"; exit 1; }
  for r in 1 2; do
    echo "$out" | grep -q "^\[r$r .*MPI_Finalize has not returned after 2 s.*exit code 7" \
      || { echo "rank $r did not report its late finalize"; echo "$out"; exit 1; }
  done
  [ "$took" -lt 20 ] || { echo "took $took s: the deadline did not end the wait"; exit 1; }
  echo "late finalize ended after $took s with exit code $rc"
  ;;
continue)
  # --on-trainer-loss continue under mpirun --enable-recovery: trainer 2 dies in its 3rd round;
  # rank 0 drops it, redoes that round on the others and trains to the end. Every sample is used
  # once per epoch (counting each step's last attempt), the exit code is 5 and the summary names
  # the lost trainer, and the accuracy is within 1 point of an uninterrupted run.
  s=(--data "$train" --test-data "$DATA/fashion-mnist-test.h5" --model mlp --epochs 2
     --optimizer momentum --lr 0.05 --global-batch 256 --micro-batch 32 --limit-train-samples 6000
     --threads 1 --seed 7 --progress-seconds 1000)
  mpi 4 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/straight" \
    --summary-json "$work/straight.json" | tail -n 1
  rc=0
  "$here/../scripts/mpirun-hetrain.sh" --enable-recovery --oversubscribe -np 4 \
    --mca mpi_yield_when_idle 1 "$HETRAIN" train "${s[@]}" --straggler-timeout 4 \
    --on-trainer-loss continue --fault-kill-rank 2 --checkpoint-dir "$work/ck" \
    --debug-sample-log "$work/samples" --summary-json "$work/s.json" >"$work/log" 2>&1 || rc=$?
  grep -E "dying|error: lost|re-plan|completed without|accuracy" "$work/log" | cut -c1-200
  [ "$rc" -eq 5 ] || { echo "exit code $rc, expected 5"; tail -n 30 "$work/log"; exit 1; }
  $py "$here/check_samples.py" "$work/samples" 6000 2 3
  $py -c '
import json, sys
straight = json.load(open(sys.argv[1]))["test_accuracy"]
s = json.load(open(sys.argv[2]))
assert len(s["lost_trainers"]) == 1 and s["lost_trainers"][0].startswith("rank 2 "), s["lost_trainers"]
lost = [t["rank"] for t in s["trainers"] if t["lost"]]
assert lost == [2], lost
assert s["steps"] == 48, s["steps"]
assert sum(r["samples"] for r in s["history"]) == 12000, s["history"]
acc = s["test_accuracy"]
print(f"continued without rank 2: test accuracy {acc:.4f}, uninterrupted {straight:.4f}")
assert abs(acc - straight) <= 0.01, "more than 1 point from the uninterrupted run"
' "$work/straight.json" "$work/s.json"
  ;;
rank0_lost)
  # Rank 0 dies (SIGKILL, --fault-kill-rank 0) under mpirun --enable-recovery, which keeps the
  # trainers alive: each ends on its own deadline for rank 0's next command (2x
  # --straggler-timeout + 60 s, which leaves rank 0 time to evaluate and checkpoint between
  # epochs), naming rank 0. scripts/mpirun-hetrain.sh then fails: rank 0 recorded no exit code.
  start=$(date +%s)
  rc=0
  "$here/../scripts/mpirun-hetrain.sh" --enable-recovery --oversubscribe -np 3 \
    --mca mpi_yield_when_idle 1 "$HETRAIN" train --data "$train" --model mlp --epochs 1 \
    --global-batch 64 --micro-batch 16 --limit-train-samples 2000 --threads 1 \
    --straggler-timeout 1 --fault-kill-rank 0 --checkpoint-dir "$work/ck" >"$work/log" 2>&1 || rc=$?
  took=$(( $(date +%s) - start ))
  grep -E "dying|did not answer|recorded no exit code" "$work/log" | cut -c1-200
  echo "exit code $rc after $took s"
  [ "$rc" -eq 1 ] || { echo "expected exit code 1"; tail -n 20 "$work/log"; exit 1; }
  [ "$(grep -c "rank 0 did not answer within 62 s (waiting for the next round's command)" "$work/log")" -eq 2 ] ||
    { echo "not every trainer named rank 0"; exit 1; }
  [ "$took" -lt 90 ] || { echo "the trainers took $took s to give up"; exit 1; }
  ;;
observe)
  # --metrics, --timeline and --prometheus of a 3-trainer run (2 epochs, the last round of each
  # shorter), checked by tests/check_observability.py; promtool too where Debian's prometheus is
  # installed; then scripts/plot-metrics.py makes its four non-empty PNGs from the metrics.
  mpi 4 "$HETRAIN" train --data "$train" --test-data "$DATA/fashion-mnist-test.h5" --model mlp \
    --epochs 2 --global-batch 256 --micro-batch 32 --limit-train-samples 3000 --threads 1 \
    --checkpoint-dir "$work/ck" --metrics "$work/m.jsonl" --timeline "$work/t.json" \
    --prometheus "$work/p.prom" --progress-seconds 0.05 | grep -E "timeline|finished"
  $py "$here/check_observability.py" "$work/m.jsonl" "$work/t.json" "$work/p.prom" 3000 2 4
  if command -v promtool >/dev/null; then promtool check metrics <"$work/p.prom"; fi
  $py "$here/../scripts/plot-metrics.py" "$work/m.jsonl" --out "$work/plots"
  for png in throughput epochs shares rounds; do
    [ -s "$work/plots/$png.png" ] || { echo "no $png.png"; exit 1; }
    head -c 8 "$work/plots/$png.png" | grep -q PNG || { echo "$png.png is not a PNG"; exit 1; }
  done
  # A one-process run writes the same metrics and a one-row timeline.
  "$HETRAIN" train --data "$train" --model mlp --epochs 1 --limit-train-samples 1000 \
    --threads 1 --checkpoint-dir "$work/one" --metrics "$work/one.jsonl" \
    --timeline "$work/one.json" >/dev/null
  $py -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert sum(l["samples"] for l in lines if l["type"] == "round") == 1000, lines
trace = json.load(open(sys.argv[2]))
assert {e["pid"] for e in trace["traceEvents"]} == {0}
print("one process:", len(lines), "metrics records,", len(trace["traceEvents"]), "trace events")' \
    "$work/one.jsonl" "$work/one.json"
  ;;
evaluate)
  # hetrain evaluate under mpirun: 3 ranks, rank 2 slowed by sharing CPU 0 with rank 1 (pinned),
  # split the test set by measured speed and print the one-process accuracy and loss.
  "$HETRAIN" train --data "$train" --model mlp --epochs 1 --limit-train-samples 3000 --threads 1 \
    --checkpoint-dir "$work/ck" >/dev/null
  ck=$(ls "$work"/ck/ckpt-*-epoch.h5)
  test_set=$DATA/fashion-mnist-test.h5
  one=$("$HETRAIN" evaluate --checkpoint "$ck" --data "$test_set" --json)
  many=$(mpi 3 --bind-to none "$here/../scripts/pin-rank.sh" "1:0 2:0" "$HETRAIN" evaluate \
    --checkpoint "$ck" --data "$test_set" --json --threads 1 2>"$work/err")
  grep "evaluate:" "$work/err"
  $py -c '
import json, sys
one, many = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("one process:", one["accuracy"], one["loss"], "| 3 ranks:", many["accuracy"], many["loss"])
assert many["samples"] == one["samples"] == 10000, (one, many)
assert many["accuracy"] == one["accuracy"], "accuracy differs"
assert abs(many["loss"] - one["loss"]) <= 1e-6 * abs(one["loss"]), "loss differs"' "$one" "$many"
  ;;
overlap)
  # --overlap sends gradient chunks during the last backward pass, in the order backward finishes
  # them (chunks of 0.1 MB: the cnn's 1.7 MB travel as 17, last layers first). The bytes are the
  # same, so the result must equal the run without it exactly.
  s=(--data "$train" --model cnn --epochs 1 --optimizer momentum --lr 0.05 --global-batch 256
     --micro-batch 32 --limit-train-samples 2560 --threads 1 --seed 5 --progress-seconds 1000
     --balance static:3,5 --chunk-mb 0.1)
  mpi 3 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/plain" | tail -n 1
  mpi 3 "$HETRAIN" train "${s[@]}" --overlap --checkpoint-dir "$work/overlap" >"$work/log" 2>&1
  tail -n 1 "$work/log"
  if grep -q "warning" "$work/log"; then grep warning "$work/log"; exit 1; fi
  $py "$here/compare_checkpoints.py" "$work"/plain/ckpt-*epoch.h5 "$work"/overlap/ckpt-*epoch.h5 1e-7
  ;;
oom)
  # --fault-oom-above 8 (testing only) makes micro-batches above 8 samples fail as out of memory:
  # a trainer halves 32 -> 16 -> 8, recomputes from zeroed gradients and reports 8 to rank 0. The
  # mlp has no BatchNorm, so the result equals a run with --micro-batch 8 (same sums, same order).
  s=(--data "$train" --model mlp --epochs 1 --optimizer momentum --lr 0.05 --global-batch 64
     --limit-train-samples 1280 --threads 1 --seed 3 --progress-seconds 1000)
  "$HETRAIN" train "${s[@]}" --micro-batch 8 --checkpoint-dir "$work/eight" | tail -n 1
  "$HETRAIN" train "${s[@]}" --micro-batch 32 --fault-oom-above 8 --checkpoint-dir "$work/one" \
    2>&1 | grep -E "out of memory" | head -n 2
  $py "$here/compare_checkpoints.py" "$work"/eight/ckpt-*epoch.h5 "$work"/one/ckpt-*epoch.h5 1e-6
  mpi 3 "$HETRAIN" train "${s[@]}" --micro-batch 32 --fault-oom-above 8 --balance static:1,1 \
    --checkpoint-dir "$work/two" --summary-json "$work/s.json" >"$work/log" 2>&1
  grep -E "out of memory" "$work/log" | cut -c1-200 | head -n 3
  grep -q "rank 1 (.*) now runs micro-batches of 8 samples (--micro-batch 32)" "$work/log" ||
    { echo "rank 0 did not report the smaller micro-batch"; exit 1; }
  $py -c '
import json, sys
s = json.load(open(sys.argv[1]))
assert [t["micro_batch"] for t in s["trainers"]] == [8, 8], s["trainers"]
print("trainers report micro-batches of", [t["micro_batch"] for t in s["trainers"]])' "$work/s.json"
  $py "$here/compare_checkpoints.py" "$work"/eight/ckpt-*epoch.h5 "$work"/two/ckpt-*epoch.h5 1e-4
  ;;
aggregators)
  # Sharded aggregation (--aggregators A): ranks 0..A-1 each reduce and step 1/A of the flat buffer
  # with its own part of the optimizer state. Against the one-process run with the same seed:
  #  A = 2 with 2 trainers and A = 3 with 3 trainers (and --overlap) end within 1e-4 per tensor,
  #    parameters and Adam state (the checkpoint gathers every shard);
  #  a step checkpoint of the A = 2 run resumed with A = 3 (the state scattered again) ends there too;
  #  a trainer killed under --enable-recovery: rank 0 gathers the shards of the last complete round,
  #    exit 3, and that checkpoint equals the reference's at the same step; the same when the
  #    trainer's last gradient reached the shard server only (--fault-half-send-rank), so that the
  #    server stepped a round rank 0 never completed and must undo it;
  #  the metrics show each aggregator receiving about 1/A of the gradient bytes;
  #  too few ranks or --sync params are refused with exit code 2.
  s=(--data "$train" --model mlp --epochs 1 --optimizer adam --lr 1e-3 --global-batch 256
     --micro-batch 32 --limit-train-samples 6000 --threads 1 --seed 7 --progress-seconds 1000
     --chunk-mb 0.1 --keep-checkpoints 100)
  "$HETRAIN" train "${s[@]}" --checkpoint-every 2 --checkpoint-dir "$work/one" >/dev/null
  ref=$(ls "$work"/one/ckpt-*-epoch.h5)
  mpi 4 "$HETRAIN" train "${s[@]}" --aggregators 2 --balance static:3,1 --checkpoint-every 10 \
    --checkpoint-dir "$work/a2" --metrics "$work/a2.jsonl" | grep -E "aggregators:|finished"
  mpi 6 "$HETRAIN" train "${s[@]}" --aggregators 3 --balance static:1,2,5 --overlap \
    --checkpoint-dir "$work/a3" --metrics "$work/a3.jsonl" | grep -E "aggregators:|finished"
  $py "$here/compare_checkpoints.py" --optimizer "$ref" "$work"/a2/ckpt-*-epoch.h5 1e-4 | tail -n 2
  $py "$here/compare_checkpoints.py" --optimizer "$ref" "$work"/a3/ckpt-*-epoch.h5 1e-4 | tail -n 2
  # Resume the A = 2 run's step-10 checkpoint with A = 3 and 2 trainers.
  mkdir "$work/resumed"
  cp "$work"/a2/ckpt-s00000010-step.h5 "$work/resumed/"
  mpi 5 "$HETRAIN" train "${s[@]}" --aggregators 3 --resume auto --checkpoint-dir "$work/resumed" |
    grep -E "resum|finished"
  $py "$here/compare_checkpoints.py" --optimizer "$ref" "$work"/resumed/ckpt-*-epoch.h5 1e-4 |
    tail -n 2
  # A trainer (world rank 3) killed in its 3rd round under --enable-recovery, A = 2.
  rc=0
  "$here/../scripts/mpirun-hetrain.sh" --enable-recovery --oversubscribe -np 5 \
    --mca mpi_yield_when_idle 1 "$HETRAIN" train "${s[@]}" --aggregators 2 \
    --straggler-timeout 6 --fault-kill-rank 3 --checkpoint-dir "$work/killed" \
    >"$work/killed.log" 2>&1 || rc=$?
  grep -E "error: lost|dying" "$work/killed.log" | cut -c1-200
  [ "$rc" -eq 3 ] || { echo "expected exit code 3, got $rc"; tail -n 30 "$work/killed.log"; exit 1; }
  abort=$(ls "$work"/killed/ckpt-*-abort.h5)
  step=$(basename "$abort" | sed 's/ckpt-s0*\([0-9]*\)-abort.h5/\1/')
  echo "abort checkpoint at step $step"
  $py "$here/compare_checkpoints.py" --optimizer "$work/one/$(printf 'ckpt-s%08d-step.h5' "$step")" \
    "$abort" 1e-4 | tail -n 2
  # The same, but the trainer's 3rd-round gradient reaches the shard server only: the server
  # steps a round rank 0 never completes, and must undo that step before the abort checkpoint.
  rc=0
  "$here/../scripts/mpirun-hetrain.sh" --enable-recovery --oversubscribe -np 5 \
    --mca mpi_yield_when_idle 1 "$HETRAIN" train "${s[@]}" --aggregators 2 \
    --straggler-timeout 6 --fault-half-send-rank 3 --checkpoint-dir "$work/half" \
    >"$work/half.log" 2>&1 || rc=$?
  grep -E "error: lost|dying|undoing" "$work/half.log" | cut -c1-200
  [ "$rc" -eq 3 ] || { echo "expected exit code 3, got $rc"; tail -n 30 "$work/half.log"; exit 1; }
  grep -q "shard server: undoing step 3" "$work/half.log" ||
    { echo "the shard server did not undo its step"; tail -n 30 "$work/half.log"; exit 1; }
  $py "$here/compare_checkpoints.py" --optimizer "$work/one/ckpt-s00000002-step.h5" \
    "$work"/half/ckpt-s00000002-abort.h5 1e-4 | tail -n 2
  # Bytes into each aggregator: rank 0's and every server's gradient bytes of a round.
  $py -c '
import json, sys
for path, a in ((sys.argv[1], 2), (sys.argv[2], 3)):
    rounds = [r for r in map(json.loads, open(path)) if r["type"] == "round"]
    r = rounds[-1]
    into = [r["aggregator"]["bytes_received"]] + [s["bytes_received"] for s in r["shard_servers"]]
    print(f"A={a}: gradient bytes into each aggregator in the last round: {into}")
    assert len(into) == a, into
    assert max(into) < 1.1 * min(into) + 8 * 4096, "shards are not balanced"
' "$work/a2.jsonl" "$work/a3.jsonl"
  # Refused: fewer ranks than aggregators + 1; --sync params.
  for bad in "3 --aggregators 3" "4 --aggregators 2 --sync params"; do
    set -- $bad
    np=$1; shift
    rc=0
    mpi "$np" "$HETRAIN" train "${s[@]}" "$@" --checkpoint-dir "$work/bad" >"$work/bad.log" 2>&1 ||
      rc=$?
    grep -m1 "error:" "$work/bad.log" | cut -c1-200
    [ "$rc" -eq 2 ] || { echo "expected exit code 2 for '$bad', got $rc"; exit 1; }
  done
  ;;
*) echo "unknown case $case_name" >&2; exit 2 ;;
esac
