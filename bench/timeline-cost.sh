#!/usr/bin/env bash
# What --timeline costs: the same distributed training (1 aggregator + 3 trainers, cnn) with and
# without --timeline (and --metrics, which records per round too), interleaved (off, on, off, ...)
# so that the machine's noise hits both alike. Prints every run's epoch seconds, the medians and
# spreads, and the ratio on/off; exits 1 when the median costs more than 2%.
# Writes bench/results/timeline-cost-<model>-<date>.json.
#   bench/timeline-cost.sh [MODEL=cnn] [REPEATS=5] [SAMPLES=7680]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-cnn} repeats=${2:-5} samples=${3:-7680}
py=/usr/bin/python3
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
runs=()
for r in $(seq 1 "$repeats"); do
  for mode in off on; do
    extra=()
    [ "$mode" = on ] && extra=(--timeline "$work/t.json" --metrics "$work/m.jsonl")
    mpirun --oversubscribe -np 4 --mca mpi_yield_when_idle 1 build/hetrain train \
      --data data/fashion-mnist-train.h5 --model "$model" --epochs 1 --global-batch 256 \
      --micro-batch 32 --threads 1 --limit-train-samples "$samples" --balance static:1,1,1 \
      --checkpoint-dir "$work/ck" --summary-json "$work/s.json" --progress-seconds 1000 \
      "${extra[@]}" >"$work/log" 2>&1 || { cat "$work/log"; exit 1; }
    seconds=$($py -c 'import json,sys; print(json.load(open(sys.argv[1]))["epoch_seconds"][0])' "$work/s.json")
    echo "run $r timeline $mode: epoch $seconds s"
    runs+=("{\"timeline\": \"$mode\", \"epoch_seconds\": $seconds}")
  done
done
mkdir -p bench/results
out=bench/results/timeline-cost-$model-$(date +%F).json
printf '%s\n' "${runs[@]}" | $py -c '
import json, statistics, sys
runs = [json.loads(l) for l in sys.stdin]
v = {m: [r["epoch_seconds"] for r in runs if r["timeline"] == m] for m in ("off", "on")}
res = {"model": sys.argv[1], "samples": int(sys.argv[3]), "runs": runs,
       "median_off": statistics.median(v["off"]), "median_on": statistics.median(v["on"]),
       "spread_off": [min(v["off"]), max(v["off"])], "spread_on": [min(v["on"]), max(v["on"])]}
res["ratio_on_over_off"] = res["median_on"] / res["median_off"]
json.dump(res, open(sys.argv[2], "w"), indent=2)
print(json.dumps({k: x for k, x in res.items() if k != "runs"}))
sys.exit(0 if res["ratio_on_over_off"] <= 1.02 else 1)' "$model" "$out" "$samples"
echo "timeline-cost: wrote $out"
