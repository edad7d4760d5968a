#!/usr/bin/env bash
# Rebalancing under drift: 1 aggregator + 2 trainers, one CPU each (trainer 1 on CPU 0,
# trainer 2 on CPU 1). Partway through the run a competing CPU load (a busy loop pinned to CPU 1)
# starts on trainer 2's core and stops later. The same run is made with --balance benchmark
# --rebalance-every 2 and without re-planning, interleaved, REPEATS times each. Without
# re-planning the shares are --balance equal: the two trainers are alike until the load starts,
# so equal is the right plan for them; the startup probe's plan is not used there because its
# noise (7:5 instead of 6:6 in 2 of 3 runs here, by chance favouring the trainer that stays
# unloaded) would make the baseline depend on luck. From the --metrics file of every run it
# prints the throughput before, during and after the load, and the ratio with/without during it.
# The load starts when round LOAD_FROM is in the metrics file and stops at round LOAD_TO.
# Writes bench/results/drift-<model>-<date>.json and the shares plot of one rebalancing run
# (scripts/plot-metrics.py) as bench/results/drift-<model>-<date>-shares.png.
#   bench/drift.sh [MODEL=cnn] [REPEATS=2] [SAMPLES=38400] [LOAD_FROM=20] [LOAD_TO=60]
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
model=${1:-cnn} repeats=${2:-2} samples=${3:-38400} load_from=${4:-20} load_to=${5:-60}
py=$(bench_python matplotlib)  # for scripts/plot-metrics.py
work=$(mktemp -d)
load_pid=""
cleanup() { [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
last_step() { tail -n 1 "$1" 2>/dev/null | $py -c 'import json,sys
try: print(json.loads(sys.stdin.read()).get("step", 0))
except Exception: print(0)'; }

one_run() {  # one_run NAME REBALANCE_EVERY BALANCE
  local name=$1 every=$2 balance=$3 metrics="$work/$1.jsonl"
  mpi 3 --bind-to none \
    scripts/pin-rank.sh "1:0 2:1" "$hetrain" train --data data/fashion-mnist-train.h5 \
    --model "$model" --epochs 1 --global-batch 384 --micro-batch 32 --optimizer adam --lr 1e-3 \
    --threads 1 --limit-train-samples "$samples" --balance "$balance" --rebalance-every "$every" \
    --checkpoint-dir "$work/ck" --metrics "$metrics" --progress-seconds 1000 \
    >"$work/$name.log" 2>&1 &
  local run=$!
  while kill -0 $run 2>/dev/null && [ "$(last_step "$metrics")" -lt "$load_from" ]; do sleep 0.05; done
  taskset -c 1 "$py" -c 'while True: pass' &
  load_pid=$!
  while kill -0 $run 2>/dev/null && [ "$(last_step "$metrics")" -lt "$load_to" ]; do sleep 0.05; done
  kill "$load_pid"; wait "$load_pid" 2>/dev/null || true; load_pid=""
  wait $run || { cat "$work/$name.log"; exit 1; }
  $py - "$metrics" "$name" "$every" "$load_from" "$load_to" <<'PY' | tee -a "$work/runs.jsonl"
import json, sys
path, name, every, start, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rounds = [r for r in map(json.loads, open(path)) if r["type"] == "round"]
def rate(lo, hi):  # samples/s over rounds lo < step <= hi
    sel = [r for r in rounds if lo < r["step"] <= hi]
    return sum(r["samples"] for r in sel) / sum(r["seconds"] for r in sel)
last = rounds[-1]["step"]
# The first rounds after a change are the reaction time: leave 2 out of each window.
print(json.dumps({"run": name, "rebalance_every": every, "before": rate(2, start),
                  "during": rate(start + 2, stop), "after": rate(stop + 2, last),
                  "shares_during": rounds[(start + stop) // 2 - 1]["shares"],
                  "shares_after": rounds[-1]["shares"]}))
PY
}

for r in $(seq 1 "$repeats"); do
  one_run "rebalance-$r" 2 benchmark
  [ "$r" -eq 1 ] && cp "$work/rebalance-1.jsonl" "$work/plotted.jsonl"
  one_run "static-$r" 0 equal
done
mkdir -p bench/results
out=bench/results/drift-$model-$(date +%F)
$py - "$work/runs.jsonl" "$out.json" "$model" "$samples" "$load_from" "$load_to" <<'PY'
import json, sys
from benchstats import median, spread
runs = [json.loads(l) for l in open(sys.argv[1])]
def values(every, key): return [r[key] for r in runs if (r["rebalance_every"] > 0) == every]
res = {"model": sys.argv[3], "samples": int(sys.argv[4]), "load_rounds": [int(sys.argv[5]), int(sys.argv[6])],
       "runs": runs}
for key in ("before", "during", "after"):
    res[key] = {"rebalance": median(values(True, key)), "static": median(values(False, key)),
                "rebalance_spread": spread(values(True, key)), "static_spread": spread(values(False, key))}
res["during_ratio_rebalance_over_static"] = res["during"]["rebalance"] / res["during"]["static"]
json.dump(res, open(sys.argv[2], "w"), indent=2)
for key in ("before", "during", "after"):
    print(f"{key:>7}: rebalance {res[key]['rebalance']:.0f} samples/s {res[key]['rebalance_spread']}, "
          f"static {res[key]['static']:.0f} {res[key]['static_spread']}")
print(f"during the load, rebalance / static = {res['during_ratio_rebalance_over_static']:.2f}")
PY
$py scripts/plot-metrics.py "$work/plotted.jsonl" --out "$work/plots" >/dev/null &&
  cp "$work/plots/shares.png" "$out-shares.png"
echo "drift: wrote $out.json and $out-shares.png"
