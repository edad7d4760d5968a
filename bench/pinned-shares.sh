#!/usr/bin/env bash
# A real heterogeneity on one machine: 1 aggregator + 3 trainers where trainers 1 and 2 share CPU 0
# and trainer 3 has CPU 1 alone (scripts/pin-rank.sh). Runs --balance benchmark and --balance equal
# interleaved (benchmark, equal, benchmark, ...), the same model, data and steps, and prints each
# run's epoch time and shares, the medians and the ratio equal/benchmark of epoch time.
# Writes bench/results/pinned-shares-<model>-<date>.json.
#   bench/pinned-shares.sh [MODEL=cnn] [REPEATS=3] [SAMPLES=12800] [MAP="1:0 2:0 3:1"]
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
model=${1:-cnn} repeats=${2:-3} samples=${3:-12800} map=${4:-"1:0 2:0 3:1"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
runs=()
for r in $(seq 1 "$repeats"); do
  for balance in benchmark equal; do
    mpi 4 --bind-to none \
      scripts/pin-rank.sh "$map" "$hetrain" train --data data/fashion-mnist-train.h5 \
      --model "$model" --epochs 1 --global-batch 256 --micro-batch 32 --threads 1 \
      --limit-train-samples "$samples" --balance "$balance" --checkpoint-dir "$work/ck" \
      --summary-json "$work/s.json" --progress-seconds 1000 > "$work/log" 2>&1 ||
      { cat "$work/log"; exit 1; }
    line=$($py -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(json.dumps({"balance": sys.argv[2], "epoch_seconds": s["epoch_seconds"][0],
                  "samples_per_sec": s["samples_per_sec"],
                  "shares": {t["rank"]: t["share"] for t in s["trainers"]},
                  "compute_seconds": {t["rank"]: round(t["compute_seconds"], 2) for t in s["trainers"]},
                  "wait_seconds": {t["rank"]: round(t["wait_seconds"], 2) for t in s["trainers"]}}))' \
      "$work/s.json" "$balance")
    echo "run $r: $line"
    runs+=("$line")
  done
done
mkdir -p bench/results
out=bench/results/pinned-shares-$model-$(date +%F).json
printf '%s\n' "${runs[@]}" | $py -c '
import json, sys
from benchstats import median, pick, spread
runs = [json.loads(l) for l in sys.stdin]
def values(b): return pick(runs, "epoch_seconds", balance=b)
def med(b): return median(values(b))
res = {"model": sys.argv[1], "map": sys.argv[3], "runs": runs,
       "benchmark_epoch_seconds_median": med("benchmark"), "equal_epoch_seconds_median": med("equal"),
       "benchmark_spread": spread(values("benchmark")), "equal_spread": spread(values("equal")),
       "speedup_benchmark_over_equal": med("equal") / med("benchmark")}
json.dump(res, open(sys.argv[2], "w"), indent=2)
print(json.dumps({k: v for k, v in res.items() if k != "runs"}))' "$model" "$out" "$map"
echo "pinned-shares: wrote $out"
