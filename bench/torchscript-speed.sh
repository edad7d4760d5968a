#!/usr/bin/env bash
# Does the TorchScript interpreter cost hetrain training speed? (issue 14, item 7)
# Exports torchvision resnet18 (3x32x32, 10 classes) and resnet50 (3x224x224, 10 classes) with
# scripts/export_torchvision.py, writes a random uint8 dataset for each, and trains one epoch of
# each model in turns: `hetrain train --model FILE.pt` in one process, then a PyTorch eager loop on
# the same torchvision model (bench/torchscript_eager.py), same data, normalisation, global batch,
# micro-batches, SGD and threads. Odd repeats start with hetrain, even ones with PyTorch, so that
# the noise of a shared machine and any order effect hit both.
#
# Timed on both sides: hetrain's summary samples_per_sec, i.e. samples / the epoch's seconds, from
# before the epoch's shuffle to after its last optimizer step (batch gathering and normalisation,
# forward, loss, backward, SGD); process start, loading, evaluation and checkpoints are not timed.
# Peak memory: "Maximum resident set size" of /usr/bin/time -v, for the whole process.
#
#   bench/torchscript-speed.sh [REPEATS=3]
# Environment:
#   HETRAIN=build/hetrain   the binary (relative to the repository root, or absolute)
#   THREADS=$(nproc)        --threads of hetrain and torch.set_num_threads of PyTorch
#   DEVICE=cpu              cpu | cuda: hetrain's --device and PyTorch's device (with cuda, the
#                           peak RSS is host memory only)
#   MODELS="resnet18 resnet50"
#   R18_N=2048 R18_G=256 R18_M=32   resnet18: samples, global batch, micro-batch (32x32 images)
#   R50_N=128  R50_G=32  R50_M=16   resnet50: the same (224x224 images)
#   SCRIPTED=1              also time the TorchScript file trained from Python (torch.jit.load):
#                           separates the interpreter's cost from hetrain's own
#   SMOKE=1                 tiny sizes, to check that everything runs end to end (not a measurement;
#                           the JSON then goes to $TMPDIR, not bench/results)
#   OUT=FILE.json           where to write the result
# Prints each run, the medians, the spread (min, max) and the ratio hetrain/PyTorch of samples/s,
# and whether each model met the goal of issue 14 (>= 0.95x PyTorch). Writes
# bench/results/torchscript-speed-<date>.json. Exit 0 whether or not the goal was met; non-zero
# when a run fails (its command and the end of its output are printed).
# Needs a build (scripts/build.sh) with --model FILE.pt, and Debian's python3-torch,
# python3-torchvision and python3-h5py. A full run takes ~6 min on the idle 2-core VM.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
repeats=${1:-3}
py=$(bench_python torch torchvision h5py)
threads=${THREADS:-$(nproc)}
device=${DEVICE:-cpu}
models=${MODELS:-resnet18 resnet50}
goal=0.95
gpu=""
if [[ $device == cuda* ]] && command -v nvidia-smi >/dev/null; then
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
fi
if [[ ${SMOKE:-0} == 1 ]]; then
  : "${R18_N:=64}" "${R18_G:=32}" "${R18_M:=16}" "${R50_N:=10}" "${R50_G:=10}" "${R50_M:=5}"
  out=${OUT:-${TMPDIR:-/tmp}/torchscript-speed-smoke-$(date +%F).json}
else
  out=${OUT:-bench/results/torchscript-speed-$(date +%F).json}
fi
$py -c 'import torch, torchvision, h5py' 2>/dev/null || {
  echo "torchscript-speed: needs Debian's python3-torch, python3-torchvision and python3-h5py" >&2
  exit 1
}
[[ -x $hetrain ]] || {
  echo "torchscript-speed: no $hetrain (build with scripts/build.sh, or set HETRAIN)" >&2
  exit 1
}
[[ -x /usr/bin/time ]] || {
  echo "torchscript-speed: needs /usr/bin/time (apt-get install time)" >&2
  exit 1
}
work=$(mktemp -d)
# Kept after a failed run, so that its command can be run again on the same files.
trap 'if [[ -e $work/keep ]]; then echo "torchscript-speed: kept $work" >&2; else rm -rf "$work"; fi' EXIT

# settings MODEL -> "size samples global micro"
settings() {
  case $1 in
  resnet18) echo "32 ${R18_N:-2048} ${R18_G:-256} ${R18_M:-32}" ;;
  resnet50) echo "224 ${R50_N:-128} ${R50_G:-32} ${R50_M:-16}" ;;
  *) echo "torchscript-speed: unknown model $1 (resnet18 | resnet50)" >&2 && return 1 ;;
  esac
}

# measure TOOL MODEL CMD...: runs CMD under /usr/bin/time -v, prints one JSON line for the run.
# The JSON of the run comes from hetrain's --summary-json or from the last line PyTorch printed.
measure() {
  local tool=$1 model=$2
  shift 2
  local log=$work/$tool-$model.log
  rm -rf "$work/ck" "$work/summary.json"
  if ! /usr/bin/time -v -o "$work/time.txt" "$@" >"$log" 2>&1; then
    {
      echo "torchscript-speed: $tool run failed: $*"
      tail -n 30 "$log"
      tail -n 25 "$work/time.txt" 2>/dev/null | grep -E 'Exit status|Command terminated' || true
    } >&2
    touch "$work/keep"
    return 1
  fi
  $py - "$tool" "$model" "$work/time.txt" "$log" "$work/summary.json" <<'EOF'
import json, re, sys
tool, model, time_txt, log, summary = sys.argv[1:]
t = open(time_txt).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
if tool == "hetrain":
    d = json.load(open(summary))
    run = {"samples_per_sec": d["samples_per_sec"], "epoch_seconds": d["epoch_seconds"],
           "final_train_loss": d["final_train_loss"], "samples": d["samples"]}
else:
    d = json.loads(open(log).read().strip().splitlines()[-1])
    run = {k: d[k] for k in ("samples_per_sec", "epoch_seconds", "final_train_loss", "samples")}
print(json.dumps({"tool": tool, "model": model, **run, "max_rss_mib": round(rss / 1024, 1)}))
EOF
}

declare -A file data
runs=()
for model in $models; do
  read -r size n g m < <(settings "$model")
  file[$model]=$work/$model.pt data[$model]=$work/$model.h5
  $py scripts/export_torchvision.py --arch "$model" --num-classes 10 --input-size "$size" \
    --out "${file[$model]}"
  $py bench/torchscript_eager.py data --out "${data[$model]}" --samples "$n" --size "$size"
done
for r in $(seq 1 "$repeats"); do
  for model in $models; do
    read -r size n g m < <(settings "$model")
    common=(--global-batch "$g" --micro-batch "$m" --lr 0.01 --threads "$threads" --device "$device")
    hetrain_cmd=("$hetrain" train --data "${data[$model]}" --model "${file[$model]}" --epochs 1
      "${common[@]}" --optimizer sgd --data-residency memory --summary-json "$work/summary.json"
      --checkpoint-dir "$work/ck" --progress-seconds 1000)
    pytorch_cmd=("$py" bench/torchscript_eager.py train --data "${data[$model]}" --arch "$model"
      --epochs 1 "${common[@]}")
    order=(hetrain pytorch)
    ((r % 2 == 0)) && order=(pytorch hetrain)
    [[ ${SCRIPTED:-0} == 1 ]] && order+=(pytorch-scripted)
    for tool in "${order[@]}"; do
      case $tool in
      hetrain) line=$(measure hetrain "$model" "${hetrain_cmd[@]}") ;;
      pytorch) line=$(measure pytorch "$model" "${pytorch_cmd[@]}") ;;
      pytorch-scripted) line=$(measure pytorch-scripted "$model" "${pytorch_cmd[@]}" \
        --scripted "${file[$model]}") ;;
      esac
      echo "run $r: $line"
      runs+=("$line")
    done
    # The commands as run, for the JSON, with $WORK written for the temporary folder.
    cmds[0]="${hetrain_cmd[*]}" cmds[1]="${pytorch_cmd[*]}"
    printf -v "cmd_$model" '%s\n' "${cmds[@]//$work\//\$WORK/}"
  done
done

mkdir -p "$(dirname "$out")"
for model in $models; do
  read -r size n g m < <(settings "$model")
  v=cmd_$model
  echo "$model $size $n $g $m"
  printf '%s' "${!v}"
done >"$work/settings.txt"
printf '%s\n' "${runs[@]}" >"$work/runs.txt"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
# The commit of the checkout the binary lives in (HETRAIN may point into another worktree).
rev=$(git -C "$(dirname "$hetrain")" describe --always --dirty 2>/dev/null || echo unknown)
rev="$rev ($hetrain, version $("$hetrain" --version 2>/dev/null || echo unknown))"
$py - "$out" "$goal" "$cpu" "$(nproc)" "$threads" "$device" "$gpu" "$rev" "${SMOKE:-0}" "$repeats" \
  "$work/settings.txt" "$work/runs.txt" "$py" <<'EOF'
import datetime, json, os, platform, sys
import torch, torchvision
from benchstats import median, spread
out, goal, cpu, nproc, threads, device, gpu, rev, smoke, repeats, settings_txt, runs_txt, py = sys.argv[1:14]
goal = float(goal)
lines = open(settings_txt).read().splitlines()
runs = [json.loads(l) for l in open(runs_txt) if l.strip()]
res = {"benchmark": "torchscript-speed", "date": datetime.date.today().isoformat(),
       "smoke": smoke == "1", "repeats": int(repeats), "goal_ratio": goal,
       "machine": {"host": platform.node(), "cpu": cpu, "nproc": int(nproc), "gpu": gpu or None,
                   "mem_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1)},
       "threads": int(threads), "device": device, "torch": torch.__version__, "torchvision": torchvision.__version__,
       "hetrain_build": rev,
       "timed": "samples / seconds from before the epoch's shuffle to after its last optimizer step "
                "(hetrain's summary samples_per_sec; bench/torchscript_eager.py times the same span); "
                "max_rss: /usr/bin/time -v Maximum resident set size of the whole process",
       "models": {}}
for i in range(0, len(lines), 3):
    model, size, n, g, m = lines[i].split()
    size = int(size)
    e = {"image": [3, size, size], "classes": 10, "samples": int(n), "global_batch": int(g),
         "micro_batch": int(m), "lr": 0.01, "optimizer": "sgd",
         "commands": {
             "export": f"{py} scripts/export_torchvision.py --arch {model} --num-classes 10 "
                       f"--input-size {size} --out $WORK/{model}.pt",
             "data": f"{py} bench/torchscript_eager.py data --out $WORK/{model}.h5 "
                     f"--samples {n} --size {size}",
             "hetrain": lines[i + 1], "pytorch": lines[i + 2]}}
    for tool in ("hetrain", "pytorch", "pytorch-scripted"):
        mine = [r for r in runs if r["model"] == model and r["tool"] == tool]
        if mine:
            v, mem = [r["samples_per_sec"] for r in mine], [r["max_rss_mib"] for r in mine]
            e[tool] = {"median_samples_per_sec": median(v), "spread": spread(v),
                       "median_max_rss_mib": median(mem), "max_rss_spread_mib": spread(mem)}
    med = lambda tool: e[tool]["median_samples_per_sec"]
    e["ratio_hetrain_over_pytorch"] = med("hetrain") / med("pytorch")
    e["met"] = e["ratio_hetrain_over_pytorch"] >= goal
    if "pytorch-scripted" in e:
        e["ratio_hetrain_over_pytorch_scripted"] = med("hetrain") / med("pytorch-scripted")
    e["runs"] = [r for r in runs if r["model"] == model]
    res["models"][model] = e
with open(out, "w") as f:
    json.dump(res, f, indent=2)
    f.write("\n")
for model, e in res["models"].items():
    def fig(tool):
        t = e[tool]
        return (f"{t['median_samples_per_sec']:.2f} samples/s (min {t['spread'][0]:.2f}, max "
                f"{t['spread'][1]:.2f}), peak RSS {t['median_max_rss_mib']:.0f} MiB")
    print(f"{model}: hetrain {fig('hetrain')}; pytorch {fig('pytorch')}")
    if "pytorch-scripted" in e:
        print(f"{model}: pytorch training the TorchScript file {fig('pytorch-scripted')}; "
              f"hetrain/that {e['ratio_hetrain_over_pytorch_scripted']:.3f}")
    print(f"{model}: ratio hetrain/pytorch {e['ratio_hetrain_over_pytorch']:.3f} (medians): goal >= {goal} "
          f"{'met' if e['met'] else 'NOT met'}")
EOF
echo "torchscript-speed: wrote $out"
