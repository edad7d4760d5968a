#!/usr/bin/env bash
# What --timeline costs: the same distributed training (1 aggregator + 3 trainers, cnn) with and
# without --timeline (and --metrics, which records per round too), interleaved (off, on, off, ...)
# so that the machine's noise hits both alike. Prints every run's epoch seconds, the medians and
# spreads, and the ratio on/off; exits 1 when the median costs more than 2%.
# Writes bench/results/timeline-cost-<model>-<date>.json.
#   bench/timeline-cost.sh [MODEL=cnn] [REPEATS=5] [SAMPLES=7680]
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
model=${1:-cnn} repeats=${2:-5} samples=${3:-7680}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
runs=()
for r in $(seq 1 "$repeats"); do
  for mode in off on; do
    extra=()
    [ "$mode" = on ] && extra=(--timeline "$work/t.json" --metrics "$work/m.jsonl")
    mpi 4 "$hetrain" train \
      --data data/fashion-mnist-train.h5 --model "$model" --epochs 1 --global-batch 256 \
      --micro-batch 32 --threads 1 --limit-train-samples "$samples" --balance static:1,1,1 \
      --checkpoint-dir "$work/ck" --summary-json "$work/s.json" --progress-seconds 1000 \
      "${extra[@]}" >"$work/log" 2>&1 || { cat "$work/log"; exit 1; }
    seconds=$(json_get "$work/s.json" 'd["epoch_seconds"][0]')
    echo "run $r timeline $mode: epoch $seconds s"
    runs+=("{\"timeline\": \"$mode\", \"epoch_seconds\": $seconds}")
  done
done
mkdir -p bench/results
out=bench/results/timeline-cost-$model-$(date +%F).json
printf '%s\n' "${runs[@]}" | $py -c '
import json, sys
from benchstats import median, pick, spread
runs = [json.loads(l) for l in sys.stdin]
v = {m: pick(runs, "epoch_seconds", timeline=m) for m in ("off", "on")}
res = {"model": sys.argv[1], "samples": int(sys.argv[3]), "runs": runs,
       "median_off": median(v["off"]), "median_on": median(v["on"]),
       "spread_off": spread(v["off"]), "spread_on": spread(v["on"])}
res["ratio_on_over_off"] = res["median_on"] / res["median_off"]
json.dump(res, open(sys.argv[2], "w"), indent=2)
print(json.dumps({k: x for k, x in res.items() if k != "runs"}))
sys.exit(0 if res["ratio_on_over_off"] <= 1.02 else 1)' "$model" "$out" "$samples"
echo "timeline-cost: wrote $out"
