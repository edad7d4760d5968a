#!/usr/bin/env bash
# The README's main job: installs what is missing, builds, prepares Fashion-MNIST, then trains the
# cnn with mpirun as 1 aggregator (rank 0) + 3 trainers (oversubscribed on a small machine). The log
# shows the cluster table, the plan of uneven shares and the accuracy per epoch. Extra arguments
# go to `hetrain train` (e.g. --balance equal, --epochs 1, --model mlp).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
scripts/prepare-data.sh
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
run_dir=runs/demo
rm -rf "$run_dir/checkpoints"
mkdir -p "$run_dir"
build/hetrain bench
# The four ranks share this machine's cores: each takes its share (the default --threads).
mpirun --oversubscribe -np 4 --mca mpi_yield_when_idle 1 \
  build/hetrain train --data data/fashion-mnist-train.h5 --test-data data/fashion-mnist-test.h5 \
  --model cnn --epochs 2 --optimizer adam --lr 1e-3 --global-batch 256 --micro-batch 32 \
  --balance benchmark --rebalance-every 20 \
  --checkpoint-dir "$run_dir/checkpoints" --summary-json "$run_dir/summary.json" \
  --metrics "$run_dir/metrics.jsonl" --timeline "$run_dir/timeline.json" \
  --prometheus "$run_dir/hetrain.prom" "$@"
ckpt=$(ls -1 "$run_dir"/checkpoints/ckpt-*.h5 | tail -n 1)
echo
echo "demo: summary in $run_dir/summary.json, final checkpoint $ckpt"
build/hetrain evaluate --checkpoint "$ckpt" --data data/fashion-mnist-test.h5
echo "demo: metrics $run_dir/metrics.jsonl, timeline $run_dir/timeline.json (open it in"
echo "      https://ui.perfetto.dev), Prometheus textfile $run_dir/hetrain.prom"
/usr/bin/python3 scripts/plot-metrics.py "$run_dir/metrics.jsonl" --out "$run_dir/plots"
echo "demo: plots in $run_dir/plots/"
