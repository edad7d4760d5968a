#!/usr/bin/env bash
# The README's main job: installs what is missing, builds, prepares Fashion-MNIST and trains the
# cnn on it, then prints the test accuracy. Extra arguments go to `hetrain train`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
scripts/prepare-data.sh
run_dir=runs/demo
mkdir -p "$run_dir"
build/hetrain bench
build/hetrain train --data data/fashion-mnist-train.h5 --test-data data/fashion-mnist-test.h5 \
  --model cnn --epochs 2 --optimizer adam --lr 1e-3 --global-batch 256 --micro-batch 32 \
  --checkpoint-dir "$run_dir/checkpoints" --summary-json "$run_dir/summary.json" "$@"
ckpt=$(ls -1 "$run_dir"/checkpoints/ckpt-*.h5 | tail -n 1)
echo
echo "demo: summary in $run_dir/summary.json, final checkpoint $ckpt"
build/hetrain evaluate --checkpoint "$ckpt" --data data/fashion-mnist-test.h5
