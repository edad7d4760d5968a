#!/usr/bin/env bash
# mpi.augment: `--augment` draws each sample's augmentation from (seed, epoch, sample index), so it
# keeps every guarantee of the exact mode (issue 15):
#  - 3 trainers with static shares 1,2,5 end where one process ends, with `--augment crop,flip`
#    and with `--augment resized-crop`: within $early_rtol per tensor at step 20 (a draw tied to
#    the trainer, its position in the micro-batch or a per-thread generator would differ by far
#    more: the augmented images themselves would differ);
#  - the same for the cnn (BatchNorm) with crop,flip, parameters and BatchNorm buffers
#    (compare --buffers), at step 10;
#  - control: augmentation is really applied in training. The run without it ends far away (more
#    than 100x $early_rtol), and so does crop,flip against resized-crop;
#  - evaluation is never augmented: the test loss the run reports after its epoch equals
#    `hetrain evaluate`'s on the same checkpoint (which knows nothing of --augment);
#  - a resume continues exactly: the step-10 checkpoint of the 1,2,5 crop,flip run, resumed with
#    the same trainers and shares, ends bit-identical to the uninterrupted run at step 20
#    (compare --exact: parameters and optimizer state).
#
# Numbers: mlp, momentum lr 0.05, 5120 samples = exactly 20 rounds of 256 (no partial round), one
# epoch, so the epoch checkpoint is at step 20, before rounding differences grow (see common.sh).
# Without augmentation this setting measures 8.8e-8 (1,2,5 against one process, 2-core VM,
# 2026-11-29) and with augmentation 6.2e-8 (crop,flip) and 8.9e-8 (resized-crop). The cnn is more
# chaotic (its BatchNorm and max-pool amplify the rounding of another summation order): at lr
# 0.01, 1,2,5 against one process, without augmentation 0.9e-7 .. 1.4e-7 up to step 12, then
# 2.6e-6 at step 14 and 5.6e-5 at step 20; with crop,flip 1.4e-7 at step 5, 1.7e-7 at step 10,
# 1.4e-4 at step 15 (the rounding growing as without augmentation), so the cnn is compared at
# step 10. Every rank --threads 1.
# About 25 s on the idle 2-core VM.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
need_data "$test_set"
s=(--data "$train" --model mlp --epochs 1 --optimizer momentum --lr 0.05 --global-batch 256
   --micro-batch 32 --limit-train-samples 5120 --threads 1 --deterministic --seed 7 --progress-seconds 1000)
final=ckpt-s00000020-epoch.h5
start=$(now)

# one NAME ARGS...: one process into $work/NAME; three NAME ARGS...: 1 aggregator + 3 trainers.
one() {
  local name=$1; shift
  "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/$name" "$@" | tail -n 1
}
three() {
  local name=$1; shift
  mpi 4 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/$name" --balance static:1,2,5 "$@" |
    tail -n 1
}
one crop_one --augment crop,flip --test-data "$test_set" --summary-json "$work/crop_one.json"
three crop_three --augment crop,flip --checkpoint-every 10
one resized_one --augment resized-crop
three resized_three --augment resized-crop
one plain
# the cnn: lr 0.01 and step 10 (see above)
one cnn_one --model cnn --lr 0.01 --augment crop,flip --checkpoint-every 10
three cnn_three --model cnn --lr 0.01 --augment crop,flip --checkpoint-every 10
for name in crop_one crop_three resized_one resized_three plain; do
  [ -f "$work/$name/$final" ] || fail "$name: no epoch checkpoint at step 20"
done

echo "--- static:1,2,5 against one process"
echo "crop,flip:"
compare --quiet "$work/crop_one/$final" "$work/crop_three/$final" "$early_rtol"
echo "resized-crop:"
compare --quiet "$work/resized_one/$final" "$work/resized_three/$final" "$early_rtol"
echo "the cnn with crop,flip at step 10 (parameters and BatchNorm buffers):"
compare --quiet --buffers "$(step_ckpt "$work/cnn_one" 10)" "$(step_ckpt "$work/cnn_three" 10)" \
  "$early_rtol"

echo "--- control: augmentation changes the result"
# far NAME_A NAME_B: the two step-20 checkpoints differ by more than 100x $early_rtol
far() {
  local d
  d=$(drift "$work/$1/$final" "$work/$2/$final")
  echo "$1 against $2: worst relative L2 difference $d"
  $py -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 100 * float(sys.argv[2]) else 1)' \
    "$d" "$early_rtol" || fail "$1 and $2 differ by only $d: is the augmentation applied?"
}
far crop_one plain
far resized_one plain
far crop_one resized_one

echo "--- evaluation is not augmented"
"$HETRAIN" evaluate --checkpoint "$work/crop_one/$final" --data "$test_set" --json \
  >"$work/eval.json"
$py - "$work/crop_one.json" "$work/eval.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["history"][-1]
ev = json.load(open(sys.argv[2]))
print(f"test loss after the epoch {run['test_loss']:.6f}, hetrain evaluate {ev['loss']:.6f}")
assert abs(run["test_loss"] - ev["loss"]) <= 1e-5 * max(1.0, ev["loss"]), (run, ev)
assert abs(run["test_accuracy"] - ev["accuracy"]) <= 1e-4, (run, ev)
PY

echo "--- resume from step 10 with the same trainers and shares: bit-identical at step 20"
step10=$(step_ckpt "$work/crop_three" 10)
[ -f "$step10" ] || fail "crop_three: no step checkpoint at step 10"
mkdir -p "$work/resumed"
cp "$step10" "$work/resumed/"
mpi 4 "$HETRAIN" train "${s[@]}" --checkpoint-dir "$work/resumed" --balance static:1,2,5 \
  --augment crop,flip --resume auto --summary-json "$work/resumed.json" >"$work/resumed.log" 2>&1 ||
  expect_rc $? 0 "$work/resumed.log"
grep -E "resuming|finished" "$work/resumed.log" || true # shown, not checked
summary_check "$work/resumed.json" 's["resumed_step"] == 10' "the run did not resume at step 10"
compare --quiet --exact "$work/crop_three/$final" "$work/resumed/$final"
within "$start" 150 "the whole test"
