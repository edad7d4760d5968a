#!/usr/bin/env bash
# What --overlap saves: the same distributed cnn training (1 aggregator + 2 trainers,
# one CPU each, static equal shares) with and without --overlap, interleaved REPEATS times, with
# gradient chunks of CHUNK_MB so that there is something to overlap. Reads every round's time from
# --metrics and prints the median round time of each and the ratio.
# Writes bench/results/overlap-<model>-<date>.json.
#   bench/overlap.sh [MODEL=cnn] [REPEATS=5] [SAMPLES=7680] [CHUNK_MB=0.25]
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
model=${1:-cnn} repeats=${2:-5} samples=${3:-7680} chunk_mb=${4:-0.25}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for r in $(seq 1 "$repeats"); do
  for mode in off on; do
    extra=()
    [ "$mode" = on ] && extra=(--overlap)
    mpi 3 --bind-to none \
      scripts/pin-rank.sh "1:0 2:1" "$hetrain" train --data data/fashion-mnist-train.h5 \
      --model "$model" --epochs 1 --global-batch 256 --micro-batch 32 --threads 1 \
      --limit-train-samples "$samples" --balance static:1,1 --chunk-mb "$chunk_mb" \
      --checkpoint-dir "$work/ck" --metrics "$work/$mode-$r.jsonl" --progress-seconds 1000 \
      "${extra[@]}" >"$work/log" 2>&1 || { cat "$work/log"; exit 1; }
  done
done
mkdir -p bench/results
out=bench/results/overlap-$model-$(date +%F).json
$py - "$work" "$repeats" "$out" "$model" "$chunk_mb" <<'PY'
import glob, json, statistics, sys
from benchstats import summary
work, repeats, out, model, chunk_mb = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
res = {"model": model, "chunk_mb": chunk_mb, "runs": []}
for mode in ("off", "on"):
    for r in range(1, repeats + 1):
        rounds = [json.loads(l) for l in open(f"{work}/{mode}-{r}.jsonl") if '"round"' in l][2:]
        res["runs"].append({"overlap": mode, "median_round_seconds": statistics.median(x["seconds"] for x in rounds),
                            "median_receive_seconds": statistics.median(x["aggregator"]["receive_seconds"] for x in rounds)})
for mode in ("off", "on"):
    v = [x["median_round_seconds"] for x in res["runs"] if x["overlap"] == mode]
    res[f"round_seconds_{mode}"] = summary(v, count=False)
res["ratio_on_over_off"] = res["round_seconds_on"]["median"] / res["round_seconds_off"]["median"]
json.dump(res, open(out, "w"), indent=2)
print(json.dumps({k: v for k, v in res.items() if k != "runs"}))
PY
echo "overlap: wrote $out"
