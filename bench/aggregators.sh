#!/usr/bin/env bash
# Sharded aggregation (--aggregators A): the busiest aggregator's receive-and-reduce time per round
# for A = 1, 2, 3 at a fixed model size, side by side in one MPI job (build/bench_shards, which
# checks its reduced values and exits 1 on a wrong one). Writes bench/results/aggregators-<date>.json.
#   bench/aggregators.sh [TRAINERS=3] [ELEMENTS=16777216] [ROUNDS=10]
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
trainers=${1:-3} elements=${2:-16777216} rounds=${3:-10}
[ -x build/bench_shards ] || { echo "aggregators: build/bench_shards missing: run scripts/build.sh" >&2; exit 1; }
mkdir -p bench/results
out=bench/results/aggregators-$(date +%F).json
mpi $((3 + trainers)) build/bench_shards \
  --elements "$elements" --rounds "$rounds" --json "$out" >/dev/null
"$py" - "$out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{d['trainers']} trainers, {d['elements']} floats each, median of {d['rounds']} rounds, "
      f"correct: {d['correct']}")
print("A  busiest aggregator ms  rank 0 ms  MiB into busiest  speedup (busiest)  speedup (rank 0)")
for r in d["results"]:
    print(f"{r['aggregators']}  {r['slowest_aggregator_seconds'] * 1e3:20.1f}  "
          f"{r['rank0_seconds'] * 1e3:9.1f}  {r['bytes_into_busiest_aggregator'] / 2**20:16.0f}  "
          f"{r['speedup_slowest_vs_a1']:17.2f}  {r['speedup_rank0_vs_a1']:16.2f}")
PY
echo "wrote $out"
