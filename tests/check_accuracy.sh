#!/usr/bin/env bash
# Trains MODEL for 2 epochs on Fashion-MNIST with the foundation issue's settings and fails unless
# the test accuracy reaches MIN. Usage: check_accuracy.sh MODEL MIN DATA_DIR
set -euo pipefail
model=$1 min=$2 data=$3
for f in "$data/fashion-mnist-train.h5" "$data/fashion-mnist-test.h5"; do
  [ -f "$f" ] || { echo "missing $f: run scripts/prepare-data.sh" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$HETRAIN" train --data "$data/fashion-mnist-train.h5" --test-data "$data/fashion-mnist-test.h5" \
  --model "$model" --epochs 2 --optimizer adam --lr 1e-3 --global-batch 256 --micro-batch 32 \
  --checkpoint-dir "$work/ck" --summary-json "$work/summary.json" --progress-seconds 30
acc=$(sed -n 's/^ *"test_accuracy": *\([0-9.]*\).*/\1/p' "$work/summary.json" | tail -n 1)
sps=$(sed -n 's/^ *"samples_per_sec": *\([0-9.]*\).*/\1/p' "$work/summary.json" | tail -n 1)
echo "accuracy check: $model test accuracy $acc (needs >= $min), $sps samples/s"
awk -v a="$acc" -v m="$min" 'BEGIN { exit !(a >= m) }'
