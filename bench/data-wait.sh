#!/usr/bin/env bash
# Does the background loader keep compute fed? (issue 15, item 4: data wait <= 2% of compute time)
# Trains each case with --metrics and sums, over every round record and every trainer in it,
# "data_wait_seconds" (the time the compute thread waited for a prepared batch) and
# "compute_seconds" (which includes that wait); the ratio wait/compute is the figure. The summary
# JSON's totals of both are recorded too, as a cross-check.
#
#   cnn-1       --model cnn --augment crop,flip on Fashion-MNIST, one process
#   cnn-mpi3    the same under mpiexec -np 3 (1 aggregator + 2 trainers)
#   cnn-1-plain the cnn-1 run without --augment: a reference for samples/s. The loader's thread
#               shares the cores with compute, so its cost can show as slower compute instead of
#               data wait; "cnn_augment_speed" (cnn-1 / cnn-1-plain median samples/s) shows that
#   r18-synth   torchvision resnet18 (scripts/export_torchvision.py, 3x32x32, 10 classes) on
#               --synthetic 3x32x32:10:R18_N, one process
#   r18-file    the same model on a generated 3x32x32 uint8 file of R18_N samples (random pixels,
#               bench/torchscript_eager.py data) with --augment crop,flip, one process
#
# Each case runs REPEATS times, the cases in turn (so a noisy moment hits all of them); the
# verdict uses the median ratio. "ratio_after_first_round" leaves out each epoch's first round,
# where the loader cannot have anything prepared yet (reported, not judged).
#
#   bench/data-wait.sh [REPEATS=3]
# Environment:
#   HETRAIN=build/hetrain   the binary (relative to the repository root, or absolute)
#   MPIEXEC=mpiexec         for cnn-mpi3 (as root, Open MPI's two OMPI_ALLOW_RUN_AS_ROOT are set)
#   DATA=data               the folder with fashion-mnist-train.h5 (scripts/prepare-data.sh)
#   CASES="cnn-1 cnn-1-plain cnn-mpi3 r18-synth r18-file"
#   THREADS=0               --threads of every run (0: hetrain's default, the cores per rank)
#   DEVICE=cpu              --device of every run
#   CNN_N=60000 R18_N=8192  samples per run (one epoch); global batch 256, micro-batch 32
#   SMOKE=1                 tiny sizes, to check that everything runs end to end (not a
#                           measurement; the JSON then goes to $TMPDIR, not bench/results)
#   OUT=FILE.json           where to write the result
# Prints one line per run and the medians per case, with whether each met the goal. Writes
# bench/results/data-wait-<date>.json. Exit 0 whether or not the goal was met; non-zero when a run
# fails (its command and the end of its output are printed, its folder kept).
# Needs a build with --augment, --synthetic and the data_wait_seconds metric, Debian's
# python3-torch, python3-torchvision and python3-h5py. The full run takes ~6 min on the idle
# 2-core VM (one repeat took 110 s there on 2026-11-29: cnn-1 2450 samples/s, cnn-1-plain 2400,
# cnn-mpi3 3280, r18-synth 510, r18-file 500).
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
repeats=${1:-3}
py=$(bench_python torch torchvision h5py)
mpiexec=${MPIEXEC:-mpiexec}
data_dir=${DATA:-data}
cases=${CASES:-cnn-1 cnn-1-plain cnn-mpi3 r18-synth r18-file}
threads=${THREADS:-0}
device=${DEVICE:-cpu}
goal=0.02
if [[ ${SMOKE:-0} == 1 ]]; then
  : "${CNN_N:=512}" "${R18_N:=128}"
  out=${OUT:-${TMPDIR:-/tmp}/data-wait-smoke-$(date +%F).json}
else
  out=${OUT:-bench/results/data-wait-$(date +%F).json}
fi
cnn_n=${CNN_N:-60000} r18_n=${R18_N:-8192}
train=$data_dir/fashion-mnist-train.h5
die() { echo "data-wait: $*" >&2; exit 1; }
$py -c 'import torch, torchvision, h5py' 2>/dev/null ||
  die "needs Debian's python3-torch, python3-torchvision and python3-h5py"
for c in $cases; do
  [[ $c =~ ^(cnn-1|cnn-1-plain|cnn-mpi3|r18-synth|r18-file)$ ]] ||
    die "unknown case $c (cnn-1 | cnn-1-plain | cnn-mpi3 | r18-synth | r18-file)"
done
[[ -x $hetrain ]] || die "no $hetrain (build with scripts/build.sh, or set HETRAIN)"
[[ -f $train ]] || [[ ! $cases =~ cnn ]] ||
  die "no $train (run scripts/prepare-data.sh, or set DATA)"
[[ ! $cases =~ mpi ]] || command -v "$mpiexec" >/dev/null || die "no $mpiexec (set MPIEXEC)"
work=$(mktemp -d)
# Kept after a failed run, so that its command can be run again on the same files.
trap 'if [[ -e $work/keep ]]; then echo "data-wait: kept $work" >&2; else rm -rf "$work"; fi' EXIT

if [[ $cases =~ r18 ]]; then
  $py scripts/export_torchvision.py --arch resnet18 --num-classes 10 --input-size 32 \
    --out "$work/r18.pt" >/dev/null
fi
if [[ $cases =~ r18-file ]]; then
  $py bench/torchscript_eager.py data --out "$work/r18.h5" --samples "$r18_n" --size 32 >/dev/null
fi

common=(--epochs 1 --global-batch 256 --micro-batch 32 --optimizer momentum --lr 0.01
  --threads "$threads" --device "$device" --progress-seconds 1000)
# command_of CASE: prints the case's command line, one word per line (paths under $work).
command_of() {
  local mpi=() augment=(--augment "crop,flip")
  case $1 in
  cnn-1 | cnn-1-plain | cnn-mpi3)
    [[ $1 == cnn-mpi3 ]] && mpi=("$mpiexec" --oversubscribe -np 3 --mca mpi_yield_when_idle 1)
    [[ $1 == cnn-1-plain ]] && augment=()
    printf '%s\n' "${mpi[@]}" "$hetrain" train --data "$train" --limit-train-samples "$cnn_n" \
      --model cnn "${augment[@]}" "${common[@]}" ;;
  r18-synth)
    printf '%s\n' "$hetrain" train --synthetic "3x32x32:10:$r18_n" --model "$work/r18.pt" \
      "${common[@]}" ;;
  r18-file)
    printf '%s\n' "$hetrain" train --data "$work/r18.h5" --model "$work/r18.pt" \
      --augment crop,flip "${common[@]}" ;;
  esac
}

# measure CASE REPEAT: runs the case with --metrics and --summary-json, prints one JSON line.
measure() {
  local name=$1 r=$2 dir=$work/$1-$2 cmd
  mapfile -t cmd < <(command_of "$name")
  mkdir -p "$dir"
  if ! "${cmd[@]}" --checkpoint-dir "$dir/ck" --metrics "$dir/metrics.jsonl" \
      --summary-json "$dir/summary.json" >"$dir/log" 2>&1; then
    {
      echo "data-wait: $name run $r failed: ${cmd[*]}"
      tail -n 30 "$dir/log"
    } >&2
    touch "$work/keep"
    return 1
  fi
  rm -rf "$dir/ck"
  $py - "$name" "$r" "$dir/metrics.jsonl" "$dir/summary.json" <<'EOF'
import json, sys
name, r, metrics, summary = sys.argv[1:]
rounds = [x for x in map(json.loads, open(metrics)) if x.get("type") == "round"]
wait = compute = wait_later = compute_later = 0.0
first = set()
for x in rounds:
    is_first = x["epoch"] not in first
    first.add(x["epoch"])
    for t in x["trainers"]:
        w, c = t["data_wait_seconds"], t["compute_seconds"]
        wait += w
        compute += c
        if not is_first:
            wait_later += w
            compute_later += c
s = json.load(open(summary))
print(json.dumps({
    "case": name, "run": int(r), "rounds": len(rounds), "samples": s["samples"],
    "samples_per_sec": s["samples_per_sec"],
    "data_wait_seconds": wait, "compute_seconds": compute, "ratio": wait / compute,
    "ratio_after_first_round": wait_later / compute_later if compute_later else None,
    "summary_data_wait_seconds": s.get("data_wait_seconds"),
    "summary_compute_seconds": s.get("compute_seconds")}))
EOF
}

runs=()
for r in $(seq 1 "$repeats"); do
  for c in $cases; do
    line=$(measure "$c" "$r")
    echo "run $r: $line"
    runs+=("$line")
  done
done

mkdir -p "$(dirname "$out")"
for c in $cases; do
  mapfile -t cmd < <(command_of "$c")
  printf '%s\t%s\n' "$c" "${cmd[*]//$work\//\$WORK/}"
done >"$work/commands.tsv"
printf '%s\n' "${runs[@]}" >"$work/runs.txt"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
# The commit of the checkout the binary lives in (HETRAIN may point into another worktree).
rev=$(git -C "$(dirname "$hetrain")" describe --always --dirty 2>/dev/null || echo unknown)
rev="$rev ($hetrain, version $("$hetrain" --version 2>/dev/null || echo unknown))"
$py - "$out" "$goal" "$cpu" "$(nproc)" "$threads" "$device" "$rev" "${SMOKE:-0}" "$repeats" \
  "$cnn_n" "$r18_n" "$work/commands.tsv" "$work/runs.txt" "$py" <<'EOF'
import datetime, json, os, platform, sys
from benchstats import median, spread
(out, goal, cpu, nproc, threads, device, rev, smoke, repeats, cnn_n, r18_n, commands_tsv,
 runs_txt, py) = sys.argv[1:15]
goal = float(goal)
runs = [json.loads(l) for l in open(runs_txt) if l.strip()]
res = {"benchmark": "data-wait", "date": datetime.date.today().isoformat(),
       "smoke": smoke == "1", "repeats": int(repeats), "goal_ratio": goal,
       "machine": {"host": platform.node(), "cpu": cpu, "nproc": int(nproc),
                   "mem_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
                                    / 2**30, 1)},
       "threads": int(threads), "device": device, "hetrain_build": rev,
       "samples": {"cnn": int(cnn_n), "r18": int(r18_n)},
       "measured": "ratio = sum over round records and their trainers of data_wait_seconds / the "
                   "same sum of compute_seconds (which includes the wait), from --metrics; "
                   "ratio_after_first_round leaves out each epoch's first round",
       "setup": {"r18_model": f"{py} scripts/export_torchvision.py --arch resnet18 "
                              "--num-classes 10 --input-size 32 --out $WORK/r18.pt",
                 "r18_file": f"{py} bench/torchscript_eager.py data --out $WORK/r18.h5 "
                             f"--samples {r18_n} --size 32"},
       "cases": {}}
for line in open(commands_tsv):
    name, command = line.rstrip("\n").split("\t")
    mine = [r for r in runs if r["case"] == name]
    ratios = [r["ratio"] for r in mine]
    later = [r["ratio_after_first_round"] for r in mine if r["ratio_after_first_round"] is not None]
    e = {"command": command + " --checkpoint-dir $WORK/ck --metrics $WORK/metrics.jsonl "
                              "--summary-json $WORK/summary.json",
         "median_ratio": median(ratios), "spread": spread(ratios),
         "median_ratio_after_first_round": median(later) if later else None,
         "median_samples_per_sec": median(r["samples_per_sec"] for r in mine),
         "runs": mine}
    e["met"] = e["median_ratio"] <= goal
    res["cases"][name] = e
c = res["cases"]
if "cnn-1" in c and "cnn-1-plain" in c:
    res["cnn_augment_speed"] = (c["cnn-1"]["median_samples_per_sec"]
                                / c["cnn-1-plain"]["median_samples_per_sec"])
with open(out, "w") as f:
    json.dump(res, f, indent=2)
    f.write("\n")
for name, e in res["cases"].items():
    later = e["median_ratio_after_first_round"]
    print(f"{name}: data wait / compute {100 * e['median_ratio']:.2f}% "
          f"(median of {len(e['runs'])}; "
          f"min {100 * e['spread'][0]:.2f}%, max {100 * e['spread'][1]:.2f}%)"
          + (f", {100 * later:.2f}% after each epoch's first round" if later is not None else "")
          + f", {e['median_samples_per_sec']:.0f} samples/s: goal <= {100 * goal:.0f}% "
          + ("met" if e["met"] else "NOT met"))
if "cnn_augment_speed" in res:
    print(f"cnn-1 with --augment crop,flip trains at {res['cnn_augment_speed']:.3f}x the samples/s "
          "of cnn-1-plain")
print(json.dumps({n: {"ratio": e["median_ratio"], "met": e["met"]}
                  for n, e in res["cases"].items()}))
EOF
echo "data-wait: wrote $out"
