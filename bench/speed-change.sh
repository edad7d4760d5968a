#!/usr/bin/env bash
# A machine that changes speed while the job runs (issue 28), on two machines emulated with CPU
# cgroup quotas (docs/benchmarks.md "Unequal machines on one host"; root, cgroup v1): trainer 1 alone on
# CPU 1 (the fast machine), trainer 2 at 40% of CPU 0 (the slow one), rank 0 in a 50% group of its
# own on CPU 0. cnn, global batch 256, SAMPLES samples in one epoch. When a third of the rounds is
# in the metrics file, trainer 2's machine slows 4x (its quota 40% -> 10%); at two thirds it
# recovers (40%). Runs, interleaved, RUNS of each: hetrain with its default options, and with
# --rebalance-every 0 (the start-up plan for the whole run). The ideal of each phase is the sum of
# the two machines' standalone speeds then: one process (cnn, same batch) alone on CPU 1, and one
# in a 40% (10%) group on CPU 0, measured before each pair of runs and averaged.
# Per phase it prints the throughput (samples / seconds of the rounds, counting from 10 rounds
# after each change) against that phase's ideal, and writes JSON (and the default run's shares
# plot, scripts/plot-metrics.py). Exits 1 when a default run's phase is below 0.9 of its ideal
# (the issue's goal).
#   bench/speed-change.sh [RUNS=2] [SAMPLES=46080] [OUT=bench/results/speed-change-DATE.json]
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
runs=${1:-2} samples=${2:-46080}
out=${3:-bench/results/speed-change-$(date +%F).json}
[ "$(id -u)" -eq 0 ] || { echo "speed-change: needs root (cgroups)" >&2; exit 2; }
[ -w "$cg" ] || { echo "speed-change: no writable cgroup v1 cpu controller at $cg" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "speed-change: needs 2 CPUs" >&2; exit 2; }
py=$(bench_python matplotlib)  # for scripts/plot-metrics.py
work=$(mktemp -d)
cleanup() {
  cgroups_down
  rm -rf "$work"
}
trap cleanup EXIT
cgroups_up hsc_slow hsc_rank0
cgroup_quota hsc_rank0 5000
# The wrapper mpirun starts: rank 0 into its group on CPU 0, rank 1 alone on CPU 1, rank 2 into
# the slow group on CPU 0.
cgroup_placement "$work/place.sh" 0:hsc_rank0:0 1:-:1 2:hsc_slow:0
a=(--data data/fashion-mnist-train.h5 --model cnn --global-batch 256 --micro-batch 32 --threads 1
   --optimizer adam --lr 1e-3 --seed 5 --progress-seconds 1000)
rounds=$((samples / 256))
# standalone CPU QUOTA: one process's samples/s (quota "" = the whole CPU, no group)
standalone() {
  local cpu=$1 q=$2
  if [ -n "$q" ]; then
    cgroup_quota hsc_slow "$q"
    sh -c "echo \$\$ > $cg/hsc_slow/tasks; exec taskset -c $cpu $hetrain train ${a[*]} \
      --epochs 1 --limit-train-samples 5120 --summary-json $work/alone.json" >/dev/null 2>&1
  else
    taskset -c "$cpu" "$hetrain" train "${a[@]}" --epochs 1 --limit-train-samples 5120 \
      --summary-json "$work/alone.json" >/dev/null 2>&1
  fi
  json_get "$work/alone.json" 'd["samples_per_sec"]'
}
# Rounds in the metrics file so far: a grep every 0.2 s (a python start every 50 ms takes half a
# core from the trainers).
last_round() { local n; n=$(grep -c '"type":"round"' "$1" 2>/dev/null); echo "${n:-0}"; }
# one_run NAME ARGS...: the job, slowing the slow machine at a third and restoring it at 2/3.
one_run() {
  local name=$1 metrics=$work/$1.jsonl
  shift
  cgroup_quota hsc_slow 4000
  mpi 3 --bind-to none "$work/place.sh" \
    "$hetrain" train "${a[@]}" --epochs 1 --limit-train-samples "$samples" \
    --checkpoint-dir "$work/ck-$name" --metrics "$metrics" --summary-json "$work/$name.json" \
    "$@" >"$work/$name.log" 2>&1 &
  local job=$!
  while kill -0 $job 2>/dev/null && [ "$(last_round "$metrics")" -lt $((rounds / 3)) ]; do
    sleep 0.2; done
  cgroup_quota hsc_slow 1000
  while kill -0 $job 2>/dev/null && [ "$(last_round "$metrics")" -lt $((2 * rounds / 3)) ]; do
    sleep 0.2; done
  cgroup_quota hsc_slow 4000
  wait $job || { tail -n 20 "$work/$name.log" >&2; exit 1; }
  echo "$name: $(grep -c '"type": *"plan"' "$metrics") plans, $(json_get "$work/$name.json" 'round(d["samples_per_sec"])') samples/s"
}
# The standalone speeds are measured again before each pair of runs (this VM's speed drifts by
# 20-30% over minutes) and averaged.
echo -n >"$work/standalone"
for k in $(seq "$runs"); do
  fast=$(standalone 1 "") slow40=$(standalone 0 4000) slow10=$(standalone 0 1000)
  echo "$fast $slow40 $slow10" >>"$work/standalone"
  echo "standalone samples/s: CPU 1 alone $fast, 40% of CPU 0 $slow40, 10% of CPU 0 $slow10"
  one_run "default-$k"
  one_run "fixed-$k" --rebalance-every 0
done
read -r fast slow40 slow10 < <(awk '{f += $1; a += $2; b += $3} END {print f / NR, a / NR, b / NR}' \
  "$work/standalone")
mkdir -p "$(dirname "$out")"
rc=0
"$py" - "$work" "$runs" "$rounds" "$fast" "$slow40" "$slow10" "$out" <<'PY' || rc=$?
import json, sys
work, runs, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fast, slow40, slow10 = map(float, sys.argv[4:7])
out = sys.argv[7]
ideal = [fast + slow40, fast + slow10, fast + slow40]
# Phases by round number (1-based): the slow-down takes effect after round rounds/3, the recovery
# after 2*rounds/3; each phase counts from 10 rounds after its change (phase 1 from round 11).
bounds = [(11, rounds // 3), (rounds // 3 + 11, 2 * rounds // 3),
          (2 * rounds // 3 + 11, rounds)]
result = {"standalone": {"fast": fast, "slow_40": slow40, "slow_10": slow10}, "ideal": ideal,
          "phases": bounds, "runs": {}}
ok = True
for name in [f"{k}-{i}" for i in range(1, runs + 1) for k in ("default", "fixed")]:
    recs = [json.loads(l) for l in open(f"{work}/{name}.jsonl")]
    rs = [r for r in recs if r.get("type") == "round"]
    plans = [p["reason"][:160] for p in recs if p.get("type") == "plan"]
    phases = []
    for (lo, hi), best in zip(bounds, ideal):
        sel = [r for r in rs if lo <= r["round"] <= hi]
        rate = sum(r["samples"] for r in sel) / sum(r["seconds"] for r in sel)
        phases.append({"samples_per_sec": rate, "of_ideal": rate / best})
    result["runs"][name] = {"phases": phases, "plans": plans}
    print(f"{name:10} " + "  ".join(f"phase {i + 1}: {p['samples_per_sec']:6.0f} samples/s "
                                      f"({p['of_ideal']:.2f} of ideal)" for i, p in enumerate(phases))
          + f"  {len(plans) - 1} re-plans")
    if name.startswith("default"):
        ok = ok and all(p["of_ideal"] >= 0.9 for p in phases)
json.dump(result, open(out, "w"), indent=1)
print(f"wrote {out}")
sys.exit(0 if ok else 1)
PY
"$py" scripts/plot-metrics.py "$work/default-1.jsonl" --out "$work/plot" >/dev/null &&
  cp "$work/plot/shares.png" "${out%.json}-shares.png" && echo "wrote ${out%.json}-shares.png"
exit "$rc"
