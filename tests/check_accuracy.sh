#!/usr/bin/env bash
# Trains MODEL for 2 epochs on Fashion-MNIST with the foundation issue's settings and fails unless
# the test accuracy reaches MIN. Usage: check_accuracy.sh MODEL MIN DATA_DIR [NP]
# With NP > 1 it runs under $MPIEXEC as 1 aggregator + NP-1 trainers (oversubscribed).
set -euo pipefail
model=$1 min=$2 data=$3 np=${4:-1}
launch=()
if [ "$np" -gt 1 ]; then
  if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  launch=("$MPIEXEC" --oversubscribe -np "$np" --mca mpi_yield_when_idle 1)
fi
for f in "$data/fashion-mnist-train.h5" "$data/fashion-mnist-test.h5"; do
  [ -f "$f" ] || { echo "missing $f: run scripts/prepare-data.sh" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${launch[@]}" "$HETRAIN" train --data "$data/fashion-mnist-train.h5" --test-data "$data/fashion-mnist-test.h5" \
  --model "$model" --epochs 2 --optimizer adam --lr 1e-3 --global-batch 256 --micro-batch 32 \
  --checkpoint-dir "$work/ck" --summary-json "$work/summary.json" --progress-seconds 30 \
  $([ "$np" -gt 1 ] && echo --threads 1)
acc=$(sed -n 's/^ *"test_accuracy": *\([0-9.]*\).*/\1/p' "$work/summary.json" | tail -n 1)
sps=$(sed -n 's/^ *"samples_per_sec": *\([0-9.]*\).*/\1/p' "$work/summary.json" | tail -n 1)
echo "accuracy check ($np processes): $model test accuracy $acc (needs >= $min), $sps samples/s"
awk -v a="$acc" -v m="$min" 'BEGIN { exit !(a >= m) }'
