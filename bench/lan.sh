#!/usr/bin/env bash
# hetrain against PyTorch DDP on a LAN simulated inside this machine (issue 16, item 6).
#
#   bench/lan.sh                 the measured run (3 x hetrain, 3 x DDP; ~15 min on the 2-core VM)
#   QUICK=1 bench/lan.sh         a short check that everything works (1 run each, 3 rounds)
#   env: REPEATS (3), SAMPLES (15360), GLOBAL_BATCH (768), HETRAIN (build/hetrain), RESULTS
#        (bench/results/lan-<date>; QUICK: bench/results/lan-quick-<date>)
#
# Setup: scripts/lan-sim.sh makes 3 hosts with 1 Gbit/s links, pinned for a 2:1 compute asymmetry
# on this 2-core machine: host 0 runs on CPU 0 alone, hosts 1 and 2 share CPU 1, so host 0 has a
# whole core and hosts 1 and 2 half of one each (speeds 2:1:1, measured and printed from each
# run's trainer compute). The model is torchvision's ResNet-18 (3x32x32 input, 10 classes; 11.2 M
# parameters, 44.7 MB of fp32 gradient) exported by scripts/export_torchvision.py; the data a
# generated 3x32x32 file (10 classes, a class-dependent pattern plus noise, so accuracy means
# something), written once and read by both, with a test file of 1000 samples.
#  - hetrain: the co-located layout that lan.busiest_link shows moves the fewest bytes over the
#    busiest link: --aggregators 3, 6 ranks --map-by node (aggregator j and trainer 3+j on host
#    j); benchmark shares, re-planned every 2 rounds (the startup probe is short and the trainers'
#    probes need not overlap, so it may miss that hosts 1 and 2 share a CPU: a QUICK run on the
#    busy VM planned 8:8:8), --overlap, --threads 1;
#  - DDP: bench/ddp_train.py, gloo, one process per host started in the host's namespace with the
#    same pinning, the same initial weights, global batch, micro-batch, Adam 1e-3 and samples.
# Interleaved (hetrain, DDP, hetrain, DDP, ...) so the machine's noise hits both alike. Reported:
# medians and spread of samples/s, test accuracy and loss after the same samples, and hetrain's
# per-round communication time (the round's time minus its slowest trainer's compute and data
# wait, median over rounds 3..R) against the bound (bytes per round over the busiest link / 125
# MB/s, 1 Gbit/s of frames; the bytes from the sim's counters: a full run minus a 2-round run,
# divided by the rounds between, so startup and the end cancel). Goals (issue 16): hetrain >= 1.3x
# DDP's samples/s at equal or better accuracy; communication time <= 1.5x the bound. A missed goal
# is reported with the figures; exit code 1 only when a run fails or a result is malformed.
# Writes RESULTS.json and RESULTS.md. Needs root, a build and Debian's python3-torch,
# python3-torchvision and python3-h5py. Run it on a quiet machine: every "host" shares its CPUs.
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
quick=${QUICK:-0}
if [ "$quick" = 1 ]; then
  repeats=${REPEATS:-1} samples=${SAMPLES:-2304} results=${RESULTS:-bench/results/lan-quick-$(date +%F)}
else
  repeats=${REPEATS:-3} samples=${SAMPLES:-15360} results=${RESULTS:-bench/results/lan-$(date +%F)}
fi
global_batch=${GLOBAL_BATCH:-768}
hetrain=$(readlink -f "$hetrain")
py=$(bench_python torch torchvision h5py)
lan_sim=$repo/scripts/lan-sim.sh
fail() { echo "bench/lan: $*" >&2; exit 1; }
[ -x "$hetrain" ] || fail "no hetrain binary at $hetrain (build first, or set HETRAIN)"
$py -c 'import torch, torchvision, h5py' 2>/dev/null ||
  fail "needs Debian's python3-torch, python3-torchvision and python3-h5py"
rounds=$(((samples + global_batch - 1) / global_batch))
[ "$rounds" -ge 3 ] || [ "$quick" = 1 ] || fail "SAMPLES=$samples gives $rounds rounds; need >= 3"

work=$(mktemp -d)
sim=lanb$$
cleanup() {
  local rc=$?
  "$lan_sim" down "$sim" >/dev/null 2>&1 || true
  rm -rf "$work"
  return $rc
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

make_data() { # make_data FILE N SEED: 3x32x32 uint8, 10 classes, a pattern per class plus noise
  $py - "$@" <<'PY'
import sys, h5py, numpy as np
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
templates = np.random.default_rng(12345).normal(size=(10, 3, 4, 4))  # the same for train and test
templates = templates.repeat(8, axis=2).repeat(8, axis=3)  # 4x4 blocks of 8x8 pixels
rng = np.random.default_rng(seed)
labels = rng.integers(0, 10, size=n)
images = np.clip(128 + 40 * templates[labels] + 60 * rng.normal(size=(n, 3, 32, 32)), 0, 255)
images = images.astype(np.uint8)
with h5py.File(path, "w") as f:
    f["images"], f["labels"] = images, labels.astype(np.int32)
    x = images.astype(np.float64) / 255
    f.attrs["format"], f.attrs["format_version"] = "hetrain-dataset", 1
    f.attrs["class_names"] = [f"pattern{c}" for c in range(10)]
    f.attrs["mean"] = x.mean(axis=(0, 2, 3))
    f.attrs["std"] = x.std(axis=(0, 2, 3))
    f.attrs["source"] = f"bench/lan.sh: 10 class patterns + noise, seed {seed}"
PY
}

echo "bench/lan: $repeats x (hetrain, DDP), $samples samples ($rounds rounds of $global_batch)"
$py scripts/export_torchvision.py --arch resnet18 --num-classes 10 --seed 1 --out "$work/r18.pt" |
  tail -n 1
make_data "$work/train.h5" "$samples" 1
make_data "$work/test.h5" 1000 2
"$lan_sim" up "$sim" --hosts 3 --rate 1gbit --cpus 0,1,1
# shellcheck disable=SC1090
. "$("$lan_sim" env "$sim")"
read -r -a addrs <<<"$LAN_SIM_ADDRS"
read -r -a netns <<<"$LAN_SIM_NETNS"
mapfile -t veths < <($py -c 'import json,sys; [print(h["veth"] + "p") for h in json.load(open(sys.argv[1]))["hosts"]]' "$LAN_SIM_DIR/hosts.json")

common=(--global-batch "$global_batch" --micro-batch 32 --optimizer adam --lr 1e-3)
# run_hetrain TAG SAMPLES: one run; summary, metrics, log and counters under $work/TAG.*
run_hetrain() {
  local tag=$1 n=$2
  "$lan_sim" counters "$sim" >"$work/$tag.before.json"
  MPIRUN=${MPIRUN:-mpirun} "$lan_sim" run "$sim" -- --oversubscribe -np 6 --map-by node \
    --mca mpi_yield_when_idle 1 "$hetrain" train --data "$work/train.h5" \
    --test-data "$work/test.h5" --model "$work/r18.pt" "${common[@]}" --epochs 1 --threads 1 \
    --seed 1 --limit-train-samples "$n" --aggregators 3 --overlap --rebalance-every 2 \
    --straggler-timeout 600 --progress-seconds 1000 --checkpoint-dir "$work/ckpt-$tag" \
    --summary-json "$work/$tag.summary.json" --metrics "$work/$tag.metrics.jsonl" \
    >"$work/$tag.log" 2>&1 || { tail -n 40 "$work/$tag.log" >&2; fail "hetrain run $tag failed"; }
  "$lan_sim" counters "$sim" >"$work/$tag.after.json"
  rm -rf "$work/ckpt-$tag"
  grep -E "finished" "$work/$tag.log" | cut -c1-160
}
# run_ddp TAG: one DDP run, a process per host in its namespace; rank 0's JSON in $work/TAG.json
run_ddp() {
  local tag=$1 h pids=() port=$((29500 + RANDOM % 1000))
  "$lan_sim" counters "$sim" >"$work/$tag.before.json"
  for h in 0 1 2; do
    "$lan_sim" exec "$sim" "$h" -- env RANK=$h WORLD_SIZE=3 MASTER_ADDR="${addrs[0]}" \
      MASTER_PORT=$port GLOO_SOCKET_IFNAME="${veths[h]}" "$py" bench/ddp_train.py \
      --data "$work/train.h5" --test-data "$work/test.h5" "${common[@]}" --threads 1 \
      >"$work/$tag.$h.out" 2>"$work/$tag.$h.err" &
    pids+=($!)
  done
  for h in 0 1 2; do
    wait "${pids[h]}" || { tail -n 20 "$work/$tag".*.err >&2; fail "DDP run $tag: rank $h failed"; }
  done
  "$lan_sim" counters "$sim" >"$work/$tag.after.json"
  tail -n 1 "$work/$tag.0.out" >"$work/$tag.json"
  cut -c1-160 "$work/$tag.json"
}

# The bytes a hetrain round moves: a 2-round run, whose startup and end equal a full run's.
echo "== calibration: hetrain, 2 rounds"
run_hetrain calib $((2 * global_batch))
for r in $(seq 1 "$repeats"); do
  echo "== repeat $r"
  run_hetrain "hetrain$r" "$samples"
  run_ddp "ddp$r"
done
mkdir -p "$(dirname "$results")"
$py bench/lan_report.py "$work" "$repeats" "$rounds" "$samples" "$global_batch" "$results" "$quick"
echo "bench/lan: wrote $results.json and $results.md"
