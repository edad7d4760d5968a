#!/usr/bin/env bash
# hetrain against PyTorch DDP on unequal "machines" made by CPU pinning on one host.
#
#   bench/hetero.sh [MODEL=cnn] [REPEATS=3] [SAMPLES=15360] [MAP="0 0 1"] [ALIKE="0 1"] [G=768]
#
# MAP gives each trainer's CPU list (taskset -c syntax), trainer 1 first: "0 0 1" puts trainers 1
# and 2 on CPU 0 together and trainer 3 on CPU 1 alone, a 2:1 speed asymmetry. For each of
# REPEATS rounds it runs, interleaved so that the machine's noise hits all alike,
#   hetrain --balance benchmark, hetrain --balance equal, and DDP (bench/ddp_reference.py)
# on the same model, data, global batch (G), micro-batch (32), optimizer (Adam 1e-3), samples
# and pinning (hetrain's rank 0, the aggregator, is not pinned: DDP has no such process). Then
# the same with ALIKE (one CPU per trainer): hetrain --balance benchmark against DDP.
# Prints per run and as medians with spreads: samples/s, the ratios, hetrain's heterogeneous
# efficiency = samples/s / sum_i(samples_i / compute_seconds_i) (trainer i's own forward and
# backward time in that run) and test accuracy. Writes bench/results/hetero-<model>-<date>.json
# and .md.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
model=${1:-cnn} repeats=${2:-3} samples=${3:-15360} map=${4:-"0 0 1"} alike=${5:-"0 1"}
# 768 = 24 micro-batches of 32: shares of 6:6:12 fit a 2:1:1 speed split exactly, and a round
# (~0.3 s of cnn here) is long against its fixed cost (~6 ms: reduce, step, broadcast, wake-ups).
# With 384 the same runs gave hetrain-benchmark / hetrain-equal 1.17 instead of ~1.3.
global_batch=${6:-768}
py=$(bench_python torch h5py)  # for bench/ddp_reference.py
export MASTER_ADDR=127.0.0.1 GLOO_SOCKET_IFNAME=lo
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--model "$model" --global-batch "$global_batch" --micro-batch 32)
train=data/fashion-mnist-train.h5 test=data/fashion-mnist-test.h5
results="$work/runs.jsonl"

run_hetrain() {  # run_hetrain LABEL BALANCE CPUS...
  local label=$1 balance=$2; shift 2
  local pins="" r=1
  for cpus in "$@"; do pins+="$r:$cpus "; r=$((r + 1)); done
  mpi $(($# + 1)) --bind-to none \
    scripts/pin-rank.sh "$pins" "$hetrain" train --data "$train" --test-data "$test" \
    "${common[@]}" --optimizer adam --lr 1e-3 --epochs 1 --threads 1 \
    --limit-train-samples "$samples" --balance "$balance" --rebalance-every 5 \
    --checkpoint-dir "$work/ck" --summary-json "$work/s.json" --progress-seconds 1000 \
    >"$work/log" 2>&1 || { cat "$work/log"; exit 1; }
  $py -c '
import json, sys
s = json.load(open(sys.argv[1]))
ideal = sum(t["samples"] / t["compute_seconds"] for t in s["trainers"] if t["compute_seconds"] > 0)
print(json.dumps({"config": sys.argv[2], "tool": sys.argv[3], "samples_per_sec": s["samples_per_sec"],
                  "test_accuracy": s["test_accuracy"], "efficiency": s["samples_per_sec"] / ideal,
                  "shares": {t["rank"]: t["share"] for t in s["trainers"]},
                  "samples": {t["rank"]: t["samples"] for t in s["trainers"]}}))' \
    "$work/s.json" "$label" "hetrain-$balance" | tee -a "$results"
}

run_ddp() {  # run_ddp LABEL CPUS...
  local label=$1; shift
  local world=$# rank=0 port=$((29500 + RANDOM % 1000)) pids=()
  for cpus in "$@"; do
    RANK=$rank WORLD_SIZE=$world MASTER_PORT=$port taskset -c "$cpus" "$py" bench/ddp_reference.py \
      --data "$train" --test-data "$test" "${common[@]}" --samples "$samples" \
      >"$work/ddp$rank.out" 2>"$work/ddp$rank.err" &
    pids+=($!)
    rank=$((rank + 1))
  done
  for pid in "${pids[@]}"; do wait "$pid" || { cat "$work"/ddp*.err; exit 1; }; done
  $py -c '
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(json.dumps({"config": sys.argv[2], "tool": "ddp", "samples_per_sec": d["samples_per_sec"],
                  "test_accuracy": d["test_accuracy"],
                  "samples": {p["rank"]: p["samples"] for p in d["per_rank"]}}))' \
    "$work/ddp0.out" "$label" | tee -a "$results"
}

# shellcheck disable=SC2086  # the maps are word lists on purpose
for r in $(seq 1 "$repeats"); do
  echo "== repeat $r: unequal (trainer CPUs $map)"
  run_hetrain unequal benchmark $map
  run_hetrain unequal equal $map
  run_ddp unequal $map
done
# shellcheck disable=SC2086
for r in $(seq 1 "$repeats"); do
  echo "== repeat $r: alike (trainer CPUs $alike)"
  run_hetrain alike benchmark $alike
  run_ddp alike $alike
done

mkdir -p bench/results
out=bench/results/hetero-$model-$(date +%F)
$py - "$results" "$out" "$model" "$samples" "$map" "$alike" "$global_batch" <<'PY'
import json, sys
import benchstats
runs = [json.loads(l) for l in open(sys.argv[1])]
out, model, samples, unequal_map, alike_map, global_batch = sys.argv[2:8]
def values(config, tool, key):  # DDP runs have no "efficiency"
    return benchstats.pick([r for r in runs if key in r], key, config=config, tool=tool)
def summary(config, tool, key):
    v = values(config, tool, key)
    return benchstats.summary(v) if v else None
res = {"model": model, "samples": int(samples), "global_batch": int(global_batch), "micro_batch": 32,
       "unequal_cpus": unequal_map, "alike_cpus": alike_map, "runs": runs, "summary": {}}
for config, tools in (("unequal", ("hetrain-benchmark", "hetrain-equal", "ddp")),
                      ("alike", ("hetrain-benchmark", "ddp"))):
    res["summary"][config] = {t: {k: summary(config, t, k) for k in ("samples_per_sec", "test_accuracy", "efficiency")
                                  if summary(config, t, k)} for t in tools}
med = lambda c, t, k="samples_per_sec": res["summary"][c][t][k]["median"]
ratios = {
    "unequal: hetrain-benchmark / ddp": med("unequal", "hetrain-benchmark") / med("unequal", "ddp"),
    "unequal: hetrain-benchmark / hetrain-equal": med("unequal", "hetrain-benchmark") / med("unequal", "hetrain-equal"),
    "alike: hetrain-benchmark / ddp": med("alike", "hetrain-benchmark") / med("alike", "ddp"),
}
res["ratios_of_medians"] = ratios
json.dump(res, open(out + ".json", "w"), indent=2)
lines = [f"# hetrain vs PyTorch DDP, {model}, {samples} samples, global batch {global_batch}, micro-batch 32",
         "", f"unequal: trainer CPUs {unequal_map}; alike: {alike_map}. Medians of {len(values('alike', 'ddp', 'samples_per_sec'))} interleaved runs [min-max].", "",
         "| config | run | samples/s | test accuracy | heterogeneous efficiency |", "|---|---|---|---|---|"]
for config, tools in res["summary"].items():
    for tool, s in tools.items():
        fmt = lambda k, d: (f"{s[k]['median']:.{d}f} [{s[k]['min']:.{d}f}-{s[k]['max']:.{d}f}]" if k in s else "-")
        lines.append(f"| {config} | {tool} | {fmt('samples_per_sec', 0)} | {fmt('test_accuracy', 4)} | {fmt('efficiency', 3)} |")
lines += [""] + [f"- {k}: {v:.2f}" for k, v in ratios.items()]
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "hetero: wrote $out.json and $out.md"
