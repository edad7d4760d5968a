#!/usr/bin/env bash
# mpi.exactly_once: every sample index is used once per epoch, summed over 3 trainers, read from the
# trainers' own debug records (not from the plan), with re-planning every 3 rounds; 1000 samples
# in rounds of 96, so the last round of each epoch is partial (40 samples). The same holds with
# augmentation (`--augment crop,flip`: it changes a sample's pixels, never which sample is used)
# and with synthetic data (`--synthetic 1x28x28:10:3000`, no file: 3000 samples, a partial last
# round of 24), issue 15.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
# exactly_once NAME SAMPLES ARGS...: 2 epochs under mpi 4, then the checks on the records.
exactly_once() {
  local name=$1 samples=$2; shift 2
  echo "--- $name"
  mpi 4 "$HETRAIN" train --model mlp --epochs 2 --global-batch 96 --micro-batch 8 --threads 1 \
    --balance benchmark --rebalance-every 3 --checkpoint-dir "$work/$name" \
    --debug-sample-log "$work/$name-samples" --summary-json "$work/$name.json" \
    --progress-seconds 1000 "$@" | tail -n 5
  $py "$tools/check_samples.py" "$work/$name-samples" "$samples" 2 3
  $py - "$work/$name.json" "$samples" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
total = sum(t["samples"] for t in summary["trainers"])
assert total == 2 * int(sys.argv[2]), summary["trainers"]
PY
}
exactly_once plain 1000 --data "$train" --limit-train-samples 1000
exactly_once augment 1000 --data "$train" --limit-train-samples 1000 --augment crop,flip
exactly_once synthetic 3000 --synthetic 1x28x28:10:3000
