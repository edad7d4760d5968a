#!/usr/bin/env bash
# Proves that a refactor changed no result: trains a fixed set of jobs with one hetrain binary and
# keeps their final checkpoints, then compares two such sets bit for bit.
#
#   scripts/same-results.sh run HETRAIN OUTDIR     train every case with HETRAIN, keep the checkpoints
#   scripts/same-results.sh compare DIR_A DIR_B    exit 0 only when every case's state is identical
#
# Typical use: build the old commit into one folder and the new one into another, `run` both, then
# `compare`. The cases use static shares, no link probe and one torch thread per rank, so that each
# is the same computation on every run (a measured plan would follow the machine's noise).
# Environment: MPIEXEC (default mpiexec), DATA (default data/), PY (a python with h5py).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
MPIEXEC=${MPIEXEC:-mpiexec}
DATA=${DATA:-$repo/data}
PY=${PY:-/usr/bin/python3}
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

# name|ranks (0 = no mpirun)|extra flags
cases=(
  "one-process|0|"
  "ranks-1+3|4|--balance static:1,2,5"
  "aggregators-2|5|--balance static:1,2,5 --aggregators 2"
  "sync-params|3|--balance static:1,3 --sync params --local-steps 4"
  "overlap|3|--balance static:2,3 --overlap"
  "host-reduce|4|--balance static:1,2,5 --host-reduce on"
)
common=(--model cnn --data "$DATA/fashion-mnist-train.h5" --limit-train-samples 2560 --epochs 2
  --global-batch 256 --micro-batch 32 --threads 1 --rebalance-every 0 --link-probe-seconds 0
  --checkpoint-every 5 --progress-seconds 60 --seed 7)

run_cases() {
  local hetrain=$1 out=$2 entry name np extra log
  mkdir -p "$out"
  for entry in "${cases[@]}"; do
    IFS='|' read -r name np extra <<<"$entry"
    rm -rf "${out:?}/$name"
    log="$out/$name.log"
    # shellcheck disable=SC2086 # extra holds several flags
    if [ "$np" -eq 0 ]; then
      "$hetrain" train "${common[@]}" $extra --checkpoint-dir "$out/$name" >"$log" 2>&1
    else
      "$MPIEXEC" --oversubscribe -np "$np" --mca mpi_yield_when_idle 1 "$hetrain" train "${common[@]}" \
        $extra --checkpoint-dir "$out/$name" >"$log" 2>&1
    fi || { tail -n 20 "$log" >&2; echo "same-results: case $name failed (log $log)" >&2; exit 1; }
    echo "ran $name"
  done
}

compare_cases() {
  local a=$1 b=$2 entry name bad=0 fa fb
  for entry in "${cases[@]}"; do
    IFS='|' read -r name _ _ <<<"$entry"
    for fa in "$a/$name"/ckpt-*.h5; do
      fb="$b/$name/$(basename "$fa")"
      [ -f "$fb" ] || { echo "$name: $(basename "$fa") missing in $b"; bad=1; continue; }
      if "$PY" "$repo/tests/tools/compare_checkpoints.py" --exact --quiet "$fa" "$fb" \
          >/dev/null; then
        echo "$name/$(basename "$fa"): identical"
      else
        echo "$name/$(basename "$fa"): DIFFERENT"; bad=1
      fi
    done
  done
  return $bad
}

case "${1:-}" in
  run) [ $# -eq 3 ] || { sed -n '2,12p' "$0"; exit 2; }; run_cases "$2" "$3" ;;
  compare) [ $# -eq 3 ] || { sed -n '2,12p' "$0"; exit 2; }; compare_cases "$2" "$3" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
