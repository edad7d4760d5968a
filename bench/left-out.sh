#!/usr/bin/env bash
# What a trainer the plan leaves out costs (issue 23), on a simulated LAN (scripts/lan-sim.sh,
# root): issue 23's reproduction, 4 hosts at 1,1,1 Gbit/s and 20 Mbit/s, one rank each (--map-by
# node), cnn, global batch 512, 10240 samples, -np 4 (the 20 Mbit/s trainer is left out by the
# plan) against -np 3 (it never starts); then --aggregators 2 on 5 hosts (the 5th at 20 Mbit/s),
# -np 5 against -np 4. RUNS runs of each, interleaved. Prints and writes JSON with, per layout,
# every run's samples/s, the median round (rounds 2.. of all runs, from --metrics) and the ratios
# with/without (median of runs, and from the median round); exits 1 when the median-round ratio is
# below 0.9 (the issue's goal).
#   bench/left-out.sh [RUNS=2] [OUT=bench/results/left-out-DATE.json]
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
runs=${1:-2}
out=${2:-bench/results/left-out-$(date +%F).json}
[ -x "$hetrain" ] || { echo "no $hetrain: run scripts/build.sh first" >&2; exit 2; }
[ -f data/fashion-mnist-train.h5 ] || { echo "no data: run scripts/prepare-data.sh" >&2; exit 2; }
work=$(mktemp -d)
sim=
trap '[ -z "$sim" ] || scripts/lan-sim.sh down "$sim" >/dev/null 2>&1; rm -rf "$work"' EXIT
a=(--data data/fashion-mnist-train.h5 --model cnn --epochs 1 --global-batch 512 --micro-batch 32
   --optimizer adam --lr 1e-3 --seed 4 --threads 1 --limit-train-samples 10240
   --progress-seconds 1000)
layout() { # layout NAME HOSTS RATES NP_WITH NP_WITHOUT ARGS...
  local name=$1 hosts=$2 rates=$3 with=$4 without=$5 k np
  shift 5
  sim=lo$$
  scripts/lan-sim.sh up "$sim" --hosts "$hosts" --rate "$rates" --slots 1 >/dev/null
  for k in $(seq "$runs"); do
    for np in "$with" "$without"; do
      scripts/lan-sim.sh run "$sim" -- --oversubscribe -np "$np" --mca mpi_yield_when_idle 1 \
        --map-by node "$hetrain" train "${a[@]}" "$@" --checkpoint-dir "$work/$name-$np-$k" \
        --summary-json "$work/$name-$np-$k.json" --metrics "$work/$name-$np-$k.jsonl" \
        >"$work/$name-$np-$k.log" 2>&1 || { tail -n 20 "$work/$name-$np-$k.log" >&2; exit 1; }
      echo "$name -np $np run $k: $(json_get "$work/$name-$np-$k.json" 'round(d["samples_per_sec"])') samples/s"
    done
  done
  scripts/lan-sim.sh down "$sim" >/dev/null
  sim=
}
layout one 4 1gbit,1gbit,1gbit,20mbit 4 3
layout two 5 1gbit,1gbit,1gbit,1gbit,20mbit 5 4 --aggregators 2
"$py" - "$work" "$runs" "$out" <<'PY'
import json, statistics, sys
work, runs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
result = {"machine": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": "),
          "runs": runs, "layouts": {}}
ok = True
for name, with_np, without_np in (("one", 4, 3), ("two", 5, 4)):
    r = {}
    for label, np in (("with", with_np), ("without", without_np)):
        rates = [json.load(open(f"{work}/{name}-{np}-{k}.json"))["samples_per_sec"]
                 for k in range(1, runs + 1)]
        rounds = [x["seconds"] for k in range(1, runs + 1)
                  for x in map(json.loads, open(f"{work}/{name}-{np}-{k}.jsonl"))
                  if x.get("type") == "round" and x["round"] >= 2]
        s = json.load(open(f"{work}/{name}-{np}-1.json"))
        r[label] = {"np": np, "samples_per_sec": rates, "median_round_seconds":
                    statistics.median(rounds),
                    "out": [(t["rank"], t["out_rounds"]) for t in s["trainers"] if t["out_rounds"]],
                    "first_plan": s["plan_history"][0]}
    r["ratio_median_runs"] = (statistics.median(r["with"]["samples_per_sec"]) /
                              statistics.median(r["without"]["samples_per_sec"]))
    r["ratio_median_round"] = (r["without"]["median_round_seconds"] /
                               r["with"]["median_round_seconds"])
    result["layouts"][name] = r
    print(f"{name}: -np {with_np} / -np {without_np}: samples/s ratio of medians "
          f"{r['ratio_median_runs']:.3f}, from the median round {r['ratio_median_round']:.3f} "
          f"({r['with']['median_round_seconds']:.3f} s vs {r['without']['median_round_seconds']:.3f} s); "
          f"left out: {r['with']['out']}")
    ok = ok and r["ratio_median_round"] >= 0.9 and bool(r["with"]["out"])
json.dump(result, open(out, "w"), indent=1)
print(f"wrote {out}")
sys.exit(0 if ok else 1)
PY
