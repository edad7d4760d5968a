#!/usr/bin/env bash
# The default --threads against --threads 1 and against one thread per usable core (the old
# default), side by side: a 1+3-rank mlp epoch on this machine, runs interleaved, REPEATS each.
# Prints one JSON object (median samples/s per setting and the ratios) and exits 1 when the
# default is more than 10% slower than --threads 1.
# Usage: bench/threads.sh [REPEATS=3] [SAMPLES=60000]
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
repeats=${1:-3}
samples=${2:-60000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cores=$(nproc)
declare -A flags=([default]="" [one]="--threads 1" [per_core]="--threads $cores")
for r in $(seq 1 "$repeats"); do
  for name in default one per_core; do
    # shellcheck disable=SC2086
    mpi 4 "$hetrain" train \
      --data data/fashion-mnist-train.h5 --model mlp --epochs 1 --limit-train-samples "$samples" \
      --progress-seconds 1000 --checkpoint-dir "$work/ck" --summary-json "$work/$name-$r.json" \
      ${flags[$name]} >/dev/null 2>&1
  done
done
"$py" - "$work" "$repeats" "$cores" <<'PY'
import json, statistics, sys
work, repeats, cores = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rates = {n: [json.load(open(f"{work}/{n}-{r}.json"))["samples_per_sec"] for r in range(1, repeats + 1)]
         for n in ("default", "one", "per_core")}
med = {n: statistics.median(v) for n, v in rates.items()}
out = {"bench": "threads", "cores": cores, "ranks": 4, "model": "mlp",
       "samples_per_sec": rates, "median": med,
       "default_over_threads_1": med["default"] / med["one"],
       "default_over_threads_per_core": med["default"] / med["per_core"]}
print(json.dumps(out, indent=1))
sys.exit(0 if out["default_over_threads_1"] >= 0.9 else 1)
PY
