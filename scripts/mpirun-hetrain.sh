#!/usr/bin/env bash
# mpirun, but ending with hetrain rank 0's exit code (README "Exit codes").
#
#   scripts/mpirun-hetrain.sh [mpirun options] hetrain train ...
#
# Why: with --enable-recovery (needed by --on-trainer-loss continue) Open MPI 4.1's mpirun exits
# 0 whatever its ranks return, so "completed without a lost trainer" (5) or "a trainer was lost"
# (3) would not reach the shell or a batch system. Rank 0 writes its code to
# $HETRAIN_EXIT_CODE_FILE; this returns it. mpirun's own non-zero code (say 137 when a rank was
# killed and mpirun ended the job) is returned as it is.
set -uo pipefail
[ $# -gt 0 ] || { echo "usage: $0 [mpirun options] hetrain train ..." >&2; exit 2; }
code_file=$(mktemp "${TMPDIR:-/tmp}/hetrain-exit.XXXXXX")
trap 'rm -f "$code_file"' EXIT
: "${MPIRUN:=mpirun}"
"$MPIRUN" -x HETRAIN_EXIT_CODE_FILE="$code_file" "$@"
rc=$?
if [ "$rc" -eq 0 ]; then
  if [ -s "$code_file" ]; then
    rc=$(cat "$code_file")
  else
    echo "$0: mpirun exited 0 but hetrain's rank 0 recorded no exit code (it died?)" >&2
    rc=1
  fi
fi
exit "$rc"
