#!/usr/bin/env bash
# Pins this MPI rank to CPUs from a map, then runs the command (for mpirun's command line):
#   mpirun -np 4 scripts/pin-rank.sh "1:0 2:0 3:1" build/hetrain train ...
# MAP lists RANK:CPUS pairs (CPUS as taskset -c takes them, e.g. 0 or 0-3 or 0,2); ranks not named
# run unpinned. This makes a real speed asymmetry on one machine: above, ranks 1 and 2 share CPU 0
# and rank 3 has CPU 1 alone.
set -euo pipefail
map=$1
shift
rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${PMI_RANK:-}}}
[ -n "$rank" ] || { echo "pin-rank.sh: not started by an MPI launcher (no rank in the environment)" >&2; exit 2; }
for pair in $map; do
  if [ "${pair%%:*}" = "$rank" ]; then
    exec taskset -c "${pair#*:}" "$@"
  fi
done
exec "$@"
