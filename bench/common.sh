# shellcheck shell=bash
# What the bench/*.sh scripts share. A script sources it first thing (after any handling of
# arguments that are paths relative to where it was started):
#   . "$(dirname "$0")/common.sh"
# It turns on strict mode and moves to the repository's root: every path in a bench script is
# relative to that root. It sets
#   repo          the repository's root, absolute
#   hetrain       the hetrain binary: $HETRAIN, else build/hetrain (where scripts/build.sh puts it)
#   py            the python for the scripts' reports: bench_python with no modules
# and exports
#   OMPI_ALLOW_RUN_AS_ROOT, OMPI_ALLOW_RUN_AS_ROOT_CONFIRM  when run as root: Open MPI's mpirun
#                 refuses to start as root without both
#   PYTHONPATH    with bench/ first, so that the scripts' python reports can `import benchstats`
#                 (bench/benchstats.py: median, spread and summary of repeated runs)
# and defines the functions below.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck disable=SC2034  # hetrain and py are for the scripts that source this file
hetrain=${HETRAIN:-build/hetrain}
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export PYTHONPATH=$repo/bench${PYTHONPATH:+:$PYTHONPATH}

# bench_python [MODULE...]: prints the python to use: $BENCH_PYTHON when set; else Debian's
# /usr/bin/python3 (where python3-torch, -torchvision, -h5py and -matplotlib install) when it
# imports every MODULE; else python3 from PATH. A script that needs torch or h5py still checks
# that the python it got imports them, and says which packages are missing.
# shellcheck disable=SC2120  # the scripts call it with modules
bench_python() {
  if [ -n "${BENCH_PYTHON:-}" ]; then
    echo "$BENCH_PYTHON"
  elif [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import sys${*:+, $(IFS=,; echo "$*")}" 2>/dev/null; then
    echo /usr/bin/python3
  else
    echo python3
  fi
}
# shellcheck disable=SC2119,SC2034
py=$(bench_python)

# mpi NP ARGS...: mpirun of NP ranks on this one machine: more ranks than cores are allowed, and
# a rank waiting for a message yields its core (the ranks of a bench job share few cores).
mpi() {
  local np=$1
  shift
  mpirun --oversubscribe -np "$np" --mca mpi_yield_when_idle 1 "$@"
}

# json_get FILE EXPR: prints the python expression EXPR, in which d is the JSON document in FILE,
# e.g. json_get s.json 'd["epoch_seconds"][0]'.
json_get() {
  "$py" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# Unequal machines on one host (docs/benchmarks.md "Unequal machines on one host"; root, cgroup
# v1): a rank in a CPU cgroup with a quota is a slower machine, whatever else runs.
#   cgroups_up GROUP...            makes the groups under $cg (set here)
#   cgroup_quota GROUP MICROS      MICROS of CPU per 10 ms period (4000 = 40% of one core)
#   cgroup_placement FILE R:G:C... writes FILE, a wrapper for mpirun to start each rank through:
#                                  world rank R into group G (- for none), pinned to CPU C
#   cgroups_down                   moves the groups' tasks back and removes the groups; call it
#                                  from the script's EXIT trap
cg=/sys/fs/cgroup/cpu
cgroup_names=()
cgroups_up() {
  cgroup_names=("$@")
  local g
  for g in "$@"; do mkdir -p "$cg/$g"; done
}
cgroup_quota() { echo 10000 >"$cg/$1/cpu.cfs_period_us"; echo "$2" >"$cg/$1/cpu.cfs_quota_us"; }
cgroup_placement() {
  local file=$1 spec r g c
  shift
  { echo '#!/bin/sh'
    # shellcheck disable=SC2016 # the wrapper reads its own rank when it runs
    echo 'case "$OMPI_COMM_WORLD_RANK" in'
    for spec in "$@"; do
      IFS=: read -r r g c <<<"$spec"
      if [ "$g" = - ]; then
        echo "  $r) exec taskset -c $c \"\$@\" ;;"
      else
        echo "  $r) echo \$\$ > $cg/$g/tasks; exec taskset -c $c \"\$@\" ;;"
      fi
    done
    echo 'esac'; } >"$file"
  chmod +x "$file"
}
cgroups_down() {
  local g pid
  for g in "${cgroup_names[@]}"; do
    if [ -d "$cg/$g" ]; then
      while read -r pid; do echo "$pid" >"$cg/tasks" 2>/dev/null || true; done <"$cg/$g/tasks"
      rmdir "$cg/$g" 2>/dev/null || true
    fi
  done
}
