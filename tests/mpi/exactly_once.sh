#!/usr/bin/env bash
# mpi.exactly_once: every sample index is used once per epoch, summed over 3 trainers, read from the
# trainers' own debug records (not from the plan), with re-planning every 3 rounds; 1000 samples
# in rounds of 96, so the last round of each epoch is partial (40 samples).
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
mpi 4 "$HETRAIN" train --data "$train" --model mlp --epochs 2 --global-batch 96 --micro-batch 8 \
  --limit-train-samples 1000 --threads 1 --balance benchmark --rebalance-every 3 \
  --checkpoint-dir "$work/ck" --debug-sample-log "$work/samples" --summary-json "$work/s.json" \
  --progress-seconds 1000 | tail -n 5
$py "$tests/check_samples.py" "$work/samples" 1000 2 3
$py - "$work/s.json" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
assert sum(t["samples"] for t in summary["trainers"]) == 2000, summary["trainers"]
PY
