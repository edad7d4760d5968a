#!/usr/bin/env bash
# hetrain against PyTorch on one process, same model, data and settings, interleaved
# (hetrain, pytorch, hetrain, pytorch, ...) so that the noise of a shared machine hits both.
# Prints each run, the medians and the ratio hetrain/pytorch of samples/s, and writes
# bench/results/compare-pytorch-<model>-<date>.json.
#   bench/compare-pytorch.sh [MODEL=cnn] [REPEATS=3] [EPOCHS=1]
# Needs a build (scripts/build.sh), the data (scripts/prepare-data.sh) and python3-torch.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
model=${1:-cnn} repeats=${2:-3} epochs=${3:-1}
py=$(bench_python torch h5py)
$py -c 'import torch, h5py' 2>/dev/null || {
  echo "compare-pytorch: needs Debian's python3-torch and python3-h5py (apt-get install python3-torch python3-h5py)" >&2
  exit 1
}
train=data/fashion-mnist-train.h5 test=data/fashion-mnist-test.h5
settings=(--model "$model" --epochs "$epochs" --global-batch 256 --micro-batch 32 --lr 1e-3)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
runs=()
for r in $(seq 1 "$repeats"); do
  "$hetrain" train --data "$train" --test-data "$test" "${settings[@]}" --optimizer adam \
    --checkpoint-dir "$work/ck" --summary-json "$work/h.json" --progress-seconds 1000 >/dev/null
  h=$(json_get "$work/h.json" 'json.dumps({"tool":"hetrain","samples_per_sec":d["samples_per_sec"],"epoch_seconds":d["epoch_seconds"],"test_accuracy":d["test_accuracy"]})')
  p=$($py bench/pytorch_reference.py --data "$train" --test-data "$test" "${settings[@]}" --threads "$(nproc)")
  echo "run $r: $h"
  echo "run $r: $p"
  runs+=("$h" "$p")
done
out=bench/results/compare-pytorch-$model-$(date +%F).json
printf '%s\n' "${runs[@]}" | $py -c '
import json, sys, platform
from benchstats import median, pick, spread
runs = [json.loads(l) for l in sys.stdin]
def values(tool): return pick(runs, "samples_per_sec", tool=tool)
def med(tool): return median(values(tool))
res = {"model": sys.argv[1], "host": platform.node(), "runs": runs,
       "hetrain_median_samples_per_sec": med("hetrain"), "pytorch_median_samples_per_sec": med("pytorch"),
       "hetrain_spread": spread(values("hetrain")), "pytorch_spread": spread(values("pytorch")),
       "ratio_hetrain_over_pytorch": med("hetrain") / med("pytorch")}
json.dump(res, open(sys.argv[2], "w"), indent=2)
print(json.dumps({k: v for k, v in res.items() if k != "runs"}))
' "$model" "$out"
echo "compare-pytorch: wrote $out"
