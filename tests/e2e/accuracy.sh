#!/usr/bin/env bash
# Trains MODEL for 2 epochs on Fashion-MNIST with the foundation issue's settings and fails unless
# the test accuracy reaches MIN. Usage: accuracy.sh MODEL MIN DATA_DIR [NP]
# With NP > 1 it runs under $MPIEXEC as 1 aggregator + NP-1 trainers (oversubscribed; the default
# --threads divides the cores among them).
# Exit 77 (skipped, with the reason) when the data or mpiexec is missing.
#
# MIN is a target for the training recipe, not a comparison with a reference run, and where a run
# ends is chance: the same two epochs on another machine (another BLAS kernel, summation order)
# take another trajectory, as another seed does. Measured on the 2-core VM, mlp, one process,
# seeds 1-5: 0.853, 0.848, 0.857, 0.837, 0.854 (mean 0.850, sd 0.008): the target 0.83 is 2.6 sd
# below the mean, so about 1 run in 200 misses it by chance (cnn: 0.904-0.906 against 0.88). So
# when the first run (seed 1) falls short, two more run (seeds 2 and 3) and the recipe passes when
# the median of the three reaches MIN: a chance failure then needs two misses in three, about 1 in
# 15 000 for the mlp, while a recipe that really misses the target (a mean below MIN) still fails.
set -euo pipefail
model=$1 min=$2 data=$3 np=${4:-1}
skip() { echo "SKIPPED: $*"; exit 77; }
launch=()
if [ "$np" -gt 1 ]; then
  command -v "${MPIEXEC:-}" >/dev/null 2>&1 || skip "no mpiexec (MPIEXEC=${MPIEXEC:-})"
  if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  launch=("$MPIEXEC" --oversubscribe -np "$np" --mca mpi_yield_when_idle 1)
fi
for f in "$data/fashion-mnist-train.h5" "$data/fashion-mnist-test.h5"; do
  [ -f "$f" ] || skip "missing $f: run scripts/prepare-data.sh"
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# run SEED: trains, prints the line, echoes nothing else; the accuracy is left in $work/acc.SEED
run() {
  local seed=$1 acc sps
  "${launch[@]}" "$HETRAIN" train --data "$data/fashion-mnist-train.h5" \
    --test-data "$data/fashion-mnist-test.h5" --model "$model" --epochs 2 --optimizer adam \
    --lr 1e-3 --global-batch 256 --micro-batch 32 --seed "$seed" --checkpoint-dir "$work/ck$seed" \
    --summary-json "$work/summary$seed.json" --progress-seconds 30
  acc=$(sed -n 's/^ *"test_accuracy": *\([0-9.]*\).*/\1/p' "$work/summary$seed.json" | tail -n 1)
  sps=$(sed -n 's/^ *"samples_per_sec": *\([0-9.]*\).*/\1/p' "$work/summary$seed.json" | tail -n 1)
  echo "accuracy check ($np processes, seed $seed): $model test accuracy $acc (needs >= $min), $sps samples/s"
  echo "$acc" >"$work/acc.$seed"
}
reaches() { awk -v a="$1" -v m="$min" 'BEGIN { exit !(a >= m) }'; }
run 1
reaches "$(cat "$work/acc.1")" && exit 0
echo "seed 1 fell short of $min: two more seeds, the median of three decides"
run 2
run 3
median=$(sort -g "$work"/acc.* | sed -n 2p)
echo "accuracy check: median of seeds 1-3 $median (needs >= $min)"
reaches "$median"
