#!/usr/bin/env bash
# Runs build/bench_aggregate on the CPU RUNS times (these machines are shared and noisy) and writes
# bench/results/aggregate-cpu-<date>.json: every run, and per dtype and input count the median and
# range of the ratio weighted-sum bandwidth / all-core memcpy bandwidth (goal >= 0.80).
#   bench/aggregate-cpu.sh [RUNS=3] [extra bench_aggregate flags...]
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
runs=${1:-3}; shift || true
bin=${BENCH_AGGREGATE:-build/bench_aggregate}
[ -x "$bin" ] || { echo "aggregate-cpu: $bin not built (scripts/build.sh)" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for r in $(seq 1 "$runs"); do
  echo "aggregate-cpu: run $r of $runs" >&2
  "$bin" --device cpu --dtypes fp32,bf16,fp16 --inputs 2,4,8 "$@" --json "$tmp/run$r.json" >/dev/null
done
out=bench/results/aggregate-cpu-$(date +%F).json
"$py" - "$tmp" "$runs" "$out" <<'PY'
import json, statistics, sys
tmp, runs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
docs = [json.load(open(f"{tmp}/run{r}.json")) for r in range(1, runs + 1)]
rows = {}
for d in docs:
    for x in d["results"]:
        rows.setdefault((x["dtype"], x["inputs"]), []).append(x)
summary = []
for (dtype, n), xs in rows.items():
    ratios = [x["ratio"] for x in xs]
    summary.append({"dtype": dtype, "inputs": n, "elements": xs[0]["elements"],
                    "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
                    "ratio_max": max(ratios),
                    "weighted_sum_gbps_median": statistics.median(x["weighted_sum_gbps"] for x in xs),
                    "copy_gbps_median": statistics.median(x["copy_gbps"] for x in xs),
                    "max_relative_error": max(x["max_relative_error"] for x in xs),
                    "goal": 0.80})
    print(f"{dtype} n={n}: ratio median {summary[-1]['ratio_median']:.2f} "
          f"({min(ratios):.2f}-{max(ratios):.2f}), sum {summary[-1]['weighted_sum_gbps_median']:.1f} GB/s, "
          f"copy {summary[-1]['copy_gbps_median']:.1f} GB/s")
json.dump({"benchmark": "aggregate-cpu", "cpu": docs[0]["cpu"], "cpu_threads": docs[0]["cpu_threads"],
           "runs": runs, "summary": summary, "raw": docs}, open(out, "w"), indent=2)
print("wrote", out)
PY
