#!/usr/bin/env bash
# mpi.cifar_recipe: the README's CIFAR-10 recipe end to end, on generated files in CIFAR-10's binary
# format (no download is possible here; tests/tools/make_cifar_batches.py: 1 label byte + 3072
# pixel bytes per record, a coloured square per class on noise):
#  - `hetrain data import-cifar` appends the five data_batch_N.bin files (200 records each) and
#    imports test_batch.bin; `data info` describes 1000 samples of 3x32x32 with CIFAR's classes;
#  - the built-in `resnet` with the recipe's settings (`--augment crop,flip`, momentum, weight
#    decay, cosine schedule, global batch 128) trains under mpirun (1 aggregator + 2 trainers) and
#    learns: `hetrain evaluate` on the test file gives accuracy above 0.5 (chance: 0.1), the same
#    as the run's own last evaluation;
#  - the commands are the README's: each of them (below, with the README's paths; the test runs in
#    a folder laid out as the README's) must appear in README.md verbatim, so a change to one side
#    fails here until the other follows.
#
# Numbers: 6 epochs of 1000 samples = 48 steps (the cosine schedule ends at lr 0 there). Measured
# (2-core VM, 2026-11-29): test accuracy per epoch 0.30, 0.10, 0.39, 0.46, 0.56, 0.89 (the early
# epochs' BatchNorm running statistics lag the fast-moving weights: test loss 90 after epoch 2),
# so the bound 0.5 is checked after the last epoch only. `--balance equal` (the README lets
# rank 0 measure) makes the shares, hence the rounding, the same on every machine. About 40 s.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
readme=$repo/README.md
# The recipe, as README.md writes it (build/hetrain there is $HETRAIN here; mpirun -np 4 there).
import_train="data import-cifar --input cifar-10-batches-bin/data_batch_{1,2,3,4,5}.bin"
import_train+=" --out data/cifar-train.h5"
import_test="data import-cifar --input cifar-10-batches-bin/test_batch.bin --out data/cifar-test.h5"
recipe_data=(--data data/cifar-train.h5 --test-data data/cifar-test.h5)
recipe_model=(--model resnet --augment "crop,flip" --optimizer momentum --lr 0.1
  --weight-decay 5e-4)
recipe_batch=(--lr-schedule cosine --global-batch 128 --micro-batch 32 --checkpoint-dir runs/cifar)
# shellcheck disable=SC2016  # $ckpt stays literal: the README's own variable, set below too
evaluate_cmd='evaluate --checkpoint "$ckpt" --data data/cifar-test.h5'
for line in "$import_train" "$import_test" "${recipe_data[*]}" "${recipe_model[*]}" \
    "${recipe_batch[*]}" "$evaluate_cmd"; do
  grep -qF -- "$line" "$readme" || fail "README.md's CIFAR-10 recipe no longer has: $line"
done
echo "README.md's CIFAR-10 recipe has the commands this test runs"
start=$(now)

cd "$work"
mkdir -p cifar-10-batches-bin data
for n in 1 2 3 4 5; do
  $py "$tools/make_cifar_batches.py" "cifar-10-batches-bin/data_batch_$n.bin" --count 200 \
    --seed "$n"
done
$py "$tools/make_cifar_batches.py" cifar-10-batches-bin/test_batch.bin --count 500 --seed 6
eval "\"\$HETRAIN\" $import_train"
eval "\"\$HETRAIN\" $import_test"
"$HETRAIN" data info data/cifar-train.h5 | tee info.txt
grep -q "1000 samples of 3x32x32 (uint8), 10 classes" info.txt || fail "data info: not 1000 samples"
grep -q "airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck" info.txt ||
  fail "data info: not CIFAR-10's class names"
grep -q "source: cifar10:data_batch_1.bin,data_batch_2.bin,data_batch_3.bin" info.txt ||
  fail "data info: the source does not list the batches in order"

mpi 3 "$HETRAIN" train "${recipe_data[@]}" --epochs 6 "${recipe_model[@]}" "${recipe_batch[@]}" \
  --threads 1 --seed 1 --balance equal --progress-seconds 1000 --summary-json summary.json |
  tail -n 1
ckpt=runs/cifar/ckpt-s00000048-epoch.h5
[ -f "$ckpt" ] || fail "no epoch checkpoint at step 48"
eval "\"\$HETRAIN\" $evaluate_cmd --json" >eval.json
$py - summary.json eval.json <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["history"]
ev = json.load(open(sys.argv[2]))
print("test accuracy per epoch:", [round(e["test_accuracy"], 3) for e in run],
      f"hetrain evaluate {ev['accuracy']:.3f} on {ev['samples']} samples")
assert ev["samples"] == 500, ev
assert abs(ev["accuracy"] - run[-1]["test_accuracy"]) <= 1e-9, (ev, run[-1])
assert ev["accuracy"] > 0.5, f"accuracy {ev['accuracy']:.3f}: did not learn (chance 0.1)"
PY
within "$start" 120 "import, training and evaluation"
