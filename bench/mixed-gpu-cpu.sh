#!/usr/bin/env bash
# hetrain's point on a real mixed cluster in one box: 1 GPU trainer and N CPU trainers (the GPU
# hidden from them with CUDA_VISIBLE_DEVICES=), run interleaved with --balance benchmark and
# --balance equal, R times each. Prints samples/s, test accuracy and shares per run and the ratio
# of the medians as JSON, and writes bench/results/mixed-gpu-cpu-<date>.json.
#
#   bench/mixed-gpu-cpu.sh [REPEATS=3] [SAMPLES=30720] [CPU_TRAINERS=2] [CORES_PER_CPU_TRAINER=4]
#   Environment: HETRAIN (default build-gpu/hetrain), MODEL (cnn), GLOBAL_BATCH (960).
# Needs a GPU, mpirun on PATH (after bench/gpu-check.sh: . /tmp/hetrain-prefix/env.sh) and the
# Fashion-MNIST files in data/. Exits non-zero if a run fails or its accuracy is not a number.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
repeats=${1:-3} samples=${2:-30720} cpu_trainers=${3:-2} cores=${4:-4}
hetrain=${HETRAIN:-build-gpu/hetrain} model=${MODEL:-cnn} global_batch=${GLOBAL_BATCH:-960}
command -v nvidia-smi >/dev/null && nvidia-smi -L | grep -q GPU || { echo "mixed-gpu-cpu: no GPU" >&2; exit 1; }
[ -x "$hetrain" ] || { echo "mixed-gpu-cpu: $hetrain not built" >&2; exit 1; }
[ "$(nproc)" -ge $((cpu_trainers * cores + 2)) ] ||
  { echo "mixed-gpu-cpu: needs $((cpu_trainers * cores + 2)) cores, have $(nproc)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | sed -n 1p)

run() {  # run BALANCE: one job, its summary line appended to $work/runs.jsonl
  local balance=$1
  local args=(train --data data/fashion-mnist-train.h5 --test-data data/fashion-mnist-test.h5
    --model "$model" --global-batch "$global_batch" --micro-batch 32 --optimizer adam --lr 1e-3
    --epochs 1 --threads "$cores" --limit-train-samples "$samples" --balance "$balance"
    --checkpoint-dir "$work/ck" --summary-json "$work/s.json" --progress-seconds 1000)
  # Rank 0 (aggregator) and rank 1 see the GPU; the CPU trainers get their own cores each.
  local mpmd=(-np 2 "$hetrain" "${args[@]}")
  for i in $(seq 1 "$cpu_trainers"); do
    local first=$(((i - 1) * cores + 2))
    mpmd+=(: -np 1 env CUDA_VISIBLE_DEVICES= taskset -c "$first-$((first + cores - 1))" "$hetrain" "${args[@]}")
  done
  mpirun --oversubscribe --bind-to none "${mpmd[@]}" >"$work/log" 2>&1 || { cat "$work/log"; exit 1; }
  "$py" -c '
import json, math, sys
s = json.load(open(sys.argv[1]))
assert math.isfinite(s["test_accuracy"]), "no accuracy"
print(json.dumps({"balance": sys.argv[2], "samples_per_sec": s["samples_per_sec"],
                  "test_accuracy": s["test_accuracy"],
                  "trainers": [{k: t.get(k) for k in ("rank", "share", "samples", "compute_seconds")}
                               for t in s["trainers"]]}))' "$work/s.json" "$balance" | tee -a "$work/runs.jsonl"
}

for r in $(seq 1 "$repeats"); do
  echo "== repeat $r"
  run benchmark
  run equal
done

mkdir -p bench/results
out=bench/results/mixed-gpu-cpu-$(date +%F).json
"$py" - "$work/runs.jsonl" "$out" "$gpu" "$model" "$samples" "$global_batch" "$cpu_trainers" "$cores" <<'PY'
import json, sys
from benchstats import pick, summary
runs = [json.loads(l) for l in open(sys.argv[1])]
out, gpu, model, samples, global_batch, cpu_trainers, cores = sys.argv[2:9]
def stats(balance, key): return summary(pick(runs, key, balance=balance))
res = {"gpu": gpu, "model": model, "samples": int(samples), "global_batch": int(global_batch),
       "gpu_trainer_rank": 1, "cpu_trainers": int(cpu_trainers), "cores_per_cpu_trainer": int(cores), "runs": runs,
       "benchmark": {"samples_per_sec": stats("benchmark", "samples_per_sec"),
                     "test_accuracy": stats("benchmark", "test_accuracy")},
       "equal": {"samples_per_sec": stats("equal", "samples_per_sec"),
                 "test_accuracy": stats("equal", "test_accuracy")}}
res["ratio_benchmark_over_equal"] = (res["benchmark"]["samples_per_sec"]["median"] /
                                     res["equal"]["samples_per_sec"]["median"])
with open(out, "w") as f:
    json.dump(res, f, indent=2)
    f.write("\n")
print(json.dumps({k: res[k] for k in ("benchmark", "equal", "ratio_benchmark_over_equal")}, indent=2))
print(f"wrote {out}")
PY
