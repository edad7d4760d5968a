#!/usr/bin/env bash
# mpi.resume: a resume continues exactly.
#  - With the same trainers and the same static shares a resume is the same computation, so it is
#    bit-identical to the uninterrupted run (max abs difference exactly 0): 3 trainers 2,3,3 for 2
#    epochs straight, against 1 epoch then --resume auto, and against a resume from the straight
#    run's own step-5 checkpoint (mid-epoch).
#  - With other trainers it is the same maths summed in another order: 1 epoch on 2 trainers (4,4)
#    then --resume auto on 3 (2,3,3); and the step-5 checkpoint of a 5,3 run resumed on 1 trainer.
#    Compared at the end, step 20 (2 epochs of 2480 samples = 9 rounds of 256 and one of 176),
#    before rounding differences grow (see common.sh); tolerance $early_rtol, measured 2026-11 on
#    the 2-core VM: 5.3e-8 (2 then 3 trainers) and 5.1e-8 (from the middle, on 1 trainer).
#  - A checkpoint of another model or seed is refused with exit 2 and a message naming it.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
s=(--data "$train" --model mlp --optimizer momentum --lr 0.05 --global-batch 256 --micro-batch 32
   --limit-train-samples 2480 --threads 1 --seed 7 --progress-seconds 1000 --keep-checkpoints 20)
final=ckpt-s00000020-epoch.h5
# resumed NAME NP SHARES CHECKPOINT|"": --resume auto for 2 epochs in $work/NAME (holding a copy of
# CHECKPOINT when one is given), with the summary checked: both epochs in the history, 20 steps.
resumed() {
  local name=$1 np=$2 shares=$3 from=$4
  mkdir -p "$work/$name"
  [ -z "$from" ] || cp "$from" "$work/$name/"
  mpi "$np" "$HETRAIN" train "${s[@]}" --epochs 2 --checkpoint-dir "$work/$name" --resume auto \
    ${shares:+--balance "static:$shares"} --summary-json "$work/$name.json" |
    grep -E "resuming|finished"
  $py - "$work/$name.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert [r["epoch"] for r in s["history"]] == [1, 2], s["history"]
assert s["steps"] == 2 * 10, s["steps"]  # 2480 samples in rounds of 256: 10 an epoch
PY
  [ -f "$work/$name/$final" ] || fail "$name: no $final"
}

mpi 4 "$HETRAIN" train "${s[@]}" --epochs 2 --checkpoint-every 5 --checkpoint-dir "$work/straight" \
  --balance static:2,3,3 | tail -n 1
ref=$work/straight/$final

echo "--- the same trainers and shares: bit-identical"
mpi 4 "$HETRAIN" train "${s[@]}" --epochs 1 --checkpoint-dir "$work/same" --balance static:2,3,3 |
  tail -n 1
resumed same 4 2,3,3 ""
compare --quiet --exact "$ref" "$work/same/$final"
resumed same_mid 4 2,3,3 "$(step_ckpt "$work/straight" 5)"
compare --quiet --exact "$ref" "$work/same_mid/$final"

echo "--- other trainers: within $early_rtol at step 20"
mpi 3 "$HETRAIN" train "${s[@]}" --epochs 1 --checkpoint-dir "$work/split" --balance static:4,4 |
  tail -n 1
resumed split 4 2,3,3 ""
compare --quiet "$ref" "$work/split/$final" "$early_rtol"
mpi 3 "$HETRAIN" train "${s[@]}" --epochs 1 --checkpoint-every 5 --balance static:5,3 \
  --checkpoint-dir "$work/mid_first" | tail -n 1
resumed mid 2 "" "$(step_ckpt "$work/mid_first" 5)"
compare --quiet "$ref" "$work/mid/$final" "$early_rtol"

echo "--- mismatches are refused with exit 2 and a message naming them"
refused() { # refused PHRASE ARGS...
  local phrase=$1 out rc=0; shift
  out=$("$HETRAIN" train "$@" --epochs 2 --checkpoint-dir "$work/x" --resume "$ref" 2>&1) || rc=$?
  echo "$out" | tail -n 1
  [ $rc -eq 2 ] && echo "$out" | grep -q "$phrase" || fail "not refused as expected (rc $rc)"
}
refused "a checkpoint of model 'mlp' (fingerprint" "${s[@]}" --model cnn
refused "made with --seed 7, this run has --seed 8" "${s[@]}" --seed 8
